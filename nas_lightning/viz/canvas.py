"""Drawing primitives shared by the pictures: boxes, arrows, labelled curved edges.

Everything draws on an Agg canvas (no display, no pyplot global state), so
the pictures are made the same way on a laptop, a CI runner or a worker
without a screen. Graphs are laid out by hand: the architectures are small
DAGs whose natural order (cell inputs, blocks, output) is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "input": "#cfe2f3",
    "state": "#fff2cc",
    "output": "#d9ead3",
    "op": "#f4cccc",
    "edge": "0.35",
    "skip": "#3d85c6",
}


def new_figure(width: float, height: float, dpi: int = 120) -> Any:
    """A matplotlib Figure on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def node(ax: Any, x: float, y: float, text: str, color: str, fontsize: float = 8) -> Any:
    """A rounded box with ``text`` centred at (x, y); returns its text artist."""
    return ax.text(
        x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3,
        bbox={"boxstyle": "round,pad=0.35", "fc": color, "ec": "0.3", "lw": 0.8},
    )


def edge(
    ax: Any,
    start: tuple[float, float],
    end: tuple[float, float],
    source: Any = None,
    target: Any = None,
    label: str | None = None,
    rad: float = 0.0,
    color: str = COLORS["edge"],
    fontsize: float = 6.5,
    lw: float = 0.9,
    at: float = 0.7,
    style: str = "-",
) -> None:
    """An arrow from ``start`` to ``end`` clipped at the two node boxes.

    ``rad`` bends it (matplotlib's arc3); the label sits at the middle of the
    curve, which for a quadratic Bezier through arc3's control point is the
    chord's midpoint moved by ``rad / 2`` times the chord turned a quarter.
    The axes must have an equal aspect for that point to lie on the curve.
    The label sits at ``at`` along the curve (near the target by default, where
    edges into different nodes have already fanned out).
    """
    from matplotlib.patches import FancyArrowPatch

    arrow = FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=10, lw=lw, color=color, zorder=2,
        connectionstyle=f"arc3,rad={rad}",
        patchA=source.get_bbox_patch() if source is not None else None,
        patchB=target.get_bbox_patch() if target is not None else None,
        shrinkA=1, shrinkB=1, linestyle=style,
    )
    ax.add_patch(arrow)
    if label:
        mx, my = curve_point(start, end, rad, at)
        ax.text(
            mx, my, label, ha="center", va="center", fontsize=fontsize, zorder=2.5,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        )


def curve_point(
    start: tuple[float, float], end: tuple[float, float], rad: float, t: float
) -> tuple[float, float]:
    """The point at ``t`` along arc3's curve: a quadratic Bezier through its control point."""
    (x1, y1), (x2, y2) = start, end
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    u = 1.0 - t
    return (u * u * x1 + 2 * u * t * cx + t * t * x2, u * u * y1 + 2 * u * t * cy + t * t * y2)


def clear_bend(
    start: tuple[float, float],
    end: tuple[float, float],
    obstacles: list[tuple[float, float]],
    bends: tuple[float, ...] = (0.0, 0.3, -0.3, 0.5, -0.5),
) -> float:
    """The bend whose curve passes farthest from the other nodes (first of ties)."""
    def clearance(rad: float) -> float:
        points = [curve_point(start, end, rad, t / 10) for t in range(1, 10)]
        return min(
            (min(abs(px - ox) / 0.9, abs(py - oy) / 0.45) for px, py in points
             for ox, oy in obstacles),
            default=float("inf"),
        )

    best = max(clearance(rad) for rad in bends)
    return next(rad for rad in bends if clearance(rad) >= min(best, 1.0))


def settle(ax: Any) -> None:
    """Lay out the node boxes before arrows are clipped at them.

    A text's box is placed only when the text is drawn; arrows added after
    one draw of the canvas are clipped at the real boxes instead of ending
    hidden under them. Set the axes limits first.
    """
    ax.figure.canvas.draw()


def bare_axes(fig: Any, rect: tuple[float, float, float, float] | None = None) -> Any:
    """Axes with no frame or ticks and an equal aspect (for graphs)."""
    ax = fig.add_axes(rect) if rect else fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    return ax
