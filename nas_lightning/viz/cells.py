"""NASNet cells drawn as graphs, as in the paper's figures.

States follow the genotype's numbering: 0 = h_{i-1}, 1 = h_i (the two cell
inputs), k >= 2 = the output of block k-1. Each block is one node, reached by
two edges labelled with their ops; the node says how the two are combined.
The states the cell concatenates feed the output h_{i+1}. Columns are the
depth of a state (the longest path from an input), so the data flows left to
right and blocks that can run in parallel share a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_lightning.viz.canvas import (
    COLORS,
    bare_axes,
    clear_bend,
    curve_point,
    edge,
    new_figure,
    node,
    save,
    settle,
)

DX, DY = 3.0, 1.5  # spacing between columns and between nodes of a column

_SHORT = (
    ("sep_conv_", "sep "), ("dil_conv_", "dil "), ("avg_pool_", "avg "), ("max_pool_", "max "),
    ("conv_1x3_3x1", "1x3+3x1"), ("conv_1x7_7x1", "1x7+7x1"), ("conv_", "conv "),
    ("identity", "id"),
)


def short_op(op: str) -> str:
    """``sep_conv_3x3`` -> ``sep 3x3``: labels that fit on an edge."""
    for long, short in _SHORT:
        op = op.replace(long, short)
    return op.replace("_", " ")


def state_depths(cell: Any) -> list[int]:
    """Depth of every state: inputs 0, a block one more than its deepest input."""
    depth = [0, 0]
    for block in cell.blocks:
        depth.append(1 + max(depth[block.input_a], depth[block.input_b]))
    return depth


def layout(cell: Any) -> tuple[dict[int, tuple[float, float]], tuple[float, float]]:
    """Positions of every state and of the output node."""
    depth = state_depths(cell)
    columns: dict[int, list[int]] = {}
    for state, d in enumerate(depth):
        columns.setdefault(d, []).append(state)
    pos: dict[int, tuple[float, float]] = {}
    for d in sorted(columns):
        states = columns[d]
        if d > 0:  # order a column by where its inputs sit: fewer crossings
            inputs = {s: cell.blocks[s - 2] for s in states}
            states.sort(key=lambda s: -(pos[inputs[s].input_a][1] + pos[inputs[s].input_b][1]))
        top = (len(states) - 1) * DY / 2
        for row, state in enumerate(states):
            pos[state] = (d * DX, top - row * DY)
    return pos, ((max(depth) + 1) * DX, 0.0)


def _between(pos: dict[int, tuple[float, float]], src: int, dst: int) -> list:
    """Nodes an edge from ``src`` to ``dst`` must not cross: all others."""
    return [p for s, p in pos.items() if s not in (src, dst)]


@dataclass
class CellPlan:
    """Where everything of a cell goes: nodes, bent edges, and the extent they cover."""

    pos: dict[int, tuple[float, float]]
    out: tuple[float, float]
    edges: list[tuple[int, int | None, str | None, float]]  # src, dst (None: out), op, bend
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    label_at: list[float | None] = field(default_factory=list)  # per edge; None: no label


# Where along its edge a label may sit, in order of preference (near the
# target, where edges into different nodes have fanned out), and the half
# extent of a label's box and of a node's box in layout units.
_LABEL_AT = (0.7, 0.45, 0.58, 0.82, 0.33, 0.25)
_LABEL_HALF = (0.42, 0.16)
_NODE_HALF = (0.45, 0.35)


def label_clearance(point: tuple[float, float], obstacles: list[tuple[float, float]],
                    half: tuple[float, float] = _LABEL_HALF) -> float:
    """How far ``point``'s label box keeps from the obstacles, in box sizes:
    below 1, some obstacle point lies inside the box."""
    return min((max(abs(point[0] - x) / half[0], abs(point[1] - y) / half[1])
                for x, y in obstacles), default=float("inf"))


def place_labels(pos: dict[int, tuple[float, float]], out: tuple[float, float],
                 edges: list[tuple[int, int | None, str | None, float]]) -> list[float | None]:
    """For each labelled edge, the point along it (``at``) whose label box keeps
    farthest from the other edges, the nodes and the labels placed before it
    (the first candidate that is clear of all of them, else the clearest)."""
    def end(dst: int | None) -> tuple[float, float]:
        return out if dst is None else pos[dst]

    curves = [[curve_point(pos[src], end(dst), rad, t / 40) for t in range(1, 40)]
              for src, dst, _, rad in edges]
    nodes = [*pos.values(), out]
    labels: list[tuple[float, float]] = []
    ats: list[float | None] = []
    for k, (src, dst, op, rad) in enumerate(edges):
        if dst is None or not op:
            ats.append(None)
            continue
        others = [q for j, curve in enumerate(curves) if j != k for q in curve]

        def score(at: float, src: int = src, dst: int = dst, rad: float = rad,
                  others: list = others) -> float:
            p = curve_point(pos[src], pos[dst], rad, at)
            return min(label_clearance(p, others),
                       label_clearance(p, labels, (2 * _LABEL_HALF[0], 2 * _LABEL_HALF[1])),
                       label_clearance(p, nodes, (_LABEL_HALF[0] + _NODE_HALF[0],
                                                  _LABEL_HALF[1] + _NODE_HALF[1])))

        scores = {at: score(at) for at in _LABEL_AT}
        best = max(scores.values())
        at = next(a for a in _LABEL_AT if scores[a] >= min(best, 1.0))
        ats.append(at)
        labels.append(curve_point(pos[src], pos[dst], rad, at))
    return ats


def plan_cell(cell: Any) -> CellPlan:
    """Lay out a cell and bend each edge around the nodes it would otherwise cross."""
    pos, out = layout(cell)
    edges: list[tuple[int, int | None, str | None, float]] = []
    for b, block in enumerate(cell.blocks):
        state = b + 2
        same = block.input_a == block.input_b
        for i, (src, op) in enumerate(((block.input_a, block.op_a), (block.input_b, block.op_b))):
            if same:
                rad = 0.3 if i == 0 else -0.3
            else:
                rad = clear_bend(pos[src], pos[state], _between(pos, src, state))
            edges.append((src, state, op, rad))
    for state in cell.concat:
        others = [p for s, p in pos.items() if s != state]
        edges.append((state, None, None,
                      clear_bend(pos[state], out, others, bends=(0.0, 0.2, -0.2, 0.35, -0.35))))
    points = list(pos.values()) + [out]
    for src, dst, _, rad in edges:
        end = out if dst is None else pos[dst]
        points += [curve_point(pos[src], end, rad, t / 8) for t in range(1, 8)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return CellPlan(pos, out, edges, (min(xs) - 0.9, max(xs) + 1.1, min(ys) - 0.6, max(ys) + 0.6),
                    place_labels(pos, out, edges))


def draw_cell(ax: Any, cell: Any, title: str, plan: CellPlan | None = None) -> None:
    """Draw one cell into ``ax`` (its axes are switched off, aspect equal)."""
    plan = plan or plan_cell(cell)
    pos = plan.pos
    names = {0: r"$h_{i-1}$", 1: r"$h_i$"}
    artists = {s: node(ax, *pos[s], names[s], COLORS["input"], fontsize=9) for s in (0, 1)}
    for b, block in enumerate(cell.blocks):
        combine = "+" if block.combine == "add" else "concat"
        artists[b + 2] = node(ax, *pos[b + 2], f"b{b + 1}\n{combine}", COLORS["state"])
    out = node(ax, *plan.out, "concat\n" + r"$h_{i+1}$", COLORS["output"], fontsize=8)
    xmin, xmax, ymin, ymax = plan.bounds
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_title(title, fontsize=9)
    settle(ax)
    for k, (src, dst, op, rad) in enumerate(plan.edges):
        if dst is None:  # dashed: concatenated as they are, no op
            edge(ax, pos[src], plan.out, artists[src], out, color="0.55", lw=0.7, rad=rad,
                 style="--")
        else:  # the label where it keeps clear of the other edges and labels
            at = plan.label_at[k] if plan.label_at else 0.7
            edge(ax, pos[src], pos[dst], artists[src], artists[dst], short_op(op), rad=rad,
                 at=at if at is not None else 0.7)


def draw_nasnet(genotype: Any, path: str | Path, title: str | None = None) -> Path:
    """The normal and the reduction cell of a NASNet genotype, one above the other."""
    prefix = f"{title}: " if title else ""
    cells = (
        (f"{prefix}normal cell", genotype.normal),
        (f"{prefix}reduction cell (ops reading the cell inputs use stride 2)",
         genotype.reduction),
    )
    plans = [plan_cell(cell) for _, cell in cells]
    width = max(p.bounds[1] - p.bounds[0] for p in plans)
    heights = [p.bounds[3] - p.bounds[2] + 0.8 for p in plans]  # + room for the title
    scale = 0.62  # inches per layout unit
    fig = new_figure(width * scale + 0.4, sum(heights) * scale + 0.3)
    total = sum(heights)
    bottom = 1.0
    for (name, cell), plan, h in zip(cells, plans, heights, strict=True):
        frac = h / total
        ax = bare_axes(fig, (0.02, bottom - frac + 0.4 / total, 0.96, frac - 0.8 / total))
        bottom -= frac
        draw_cell(ax, cell, name, plan)
    return save(fig, path)
