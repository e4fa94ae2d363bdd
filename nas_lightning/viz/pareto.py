"""Accuracy-latency trade-off of a search: the Pareto front and its plot.

A child is on the front when no other child is at least as fast and at least
as accurate, and strictly better in one of the two. The front is written to
``pareto.json`` and added to ``best.json`` (key ``pareto_front``) so that the
run folder alone shows the trade-off; ``pareto.png`` draws every child, the
front and the latency target T.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PNG = "pareto.png"
FRONT = "pareto.json"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(latency, accuracy)`` points, fastest first.

    Lower latency and higher accuracy are better. Of exact duplicates only
    the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best_acc = [], -math.inf
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def points_from_records(
    records: Sequence[dict[str, Any]], acc_key: str = "val_acc", lat_key: str = "latency_ms"
) -> list[dict[str, Any]]:
    """The finished children that have both an accuracy and a latency.

    The latency is read from the record itself or from its ``extra`` (where
    the search loop puts what the latency probe returned).
    """
    points = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        acc = _number(r.get(acc_key))
        lat = _number(r.get(lat_key, (r.get("extra") or {}).get(lat_key)))
        if acc is None or lat is None:
            continue
        points.append(
            {
                "index": r.get("index"),
                acc_key: acc,
                lat_key: lat,
                "reward": _number(r.get("reward")),
                "genotype": r.get("genotype"),
            }
        )
    return points


def plot_pareto(
    points: Sequence[dict[str, Any]],
    front: Sequence[int],
    path: str | Path,
    target_ms: float | None = None,
    title: str | None = None,
    acc_key: str = "val_acc",
    lat_key: str = "latency_ms",
) -> Path:
    """Save accuracy vs latency as a PNG (Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lat = [p[lat_key] for p in points]
    acc = [p[acc_key] for p in points]
    ax.scatter(lat, acc, s=18, c="0.6", label=f"children ({len(points)})", zorder=2)
    f_lat = [lat[i] for i in front]
    f_acc = [acc[i] for i in front]
    ax.step(f_lat, f_acc, where="post", c="tab:red", lw=1.2, zorder=3)
    ax.scatter(f_lat, f_acc, s=36, c="tab:red", label=f"Pareto front ({len(front)})", zorder=4)
    for i in front:
        ax.annotate(
            str(points[i]["index"]),
            (lat[i], acc[i]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    rewards = [(p["reward"], i) for i, p in enumerate(points) if p["reward"] is not None]
    if rewards:
        _, b = max(rewards)
        ax.scatter(
            [lat[b]],
            [acc[b]],
            marker="*",
            s=180,
            c="gold",
            edgecolors="k",
            label=f"best reward (child {points[b]['index']})",
            zorder=5,
        )
    if target_ms is not None:
        ax.axvline(target_ms, ls="--", c="tab:blue", lw=1, label=f"target T = {target_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("validation accuracy")
    if title:
        ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def write_pareto(
    run_dir: str | Path,
    records: Sequence[dict[str, Any]],
    target_ms: float | None = None,
    title: str | None = None,
) -> Path | None:
    """Write ``pareto.json`` and ``pareto.png``; add the front to ``best.json``.

    Returns the PNG's path, or None when no child has both figures.
    """
    run_dir = Path(run_dir)
    points = points_from_records(records)
    if not points:
        return None
    front = pareto_front([(p["latency_ms"], p["val_acc"]) for p in points])
    front_points = [points[i] for i in front]
    _write_json(
        run_dir / FRONT,
        {
            "objectives": {"latency_ms": "min", "val_acc": "max"},
            "target_ms": target_ms,
            "children": len(points),
            "front": front_points,
        },
    )
    best_path = run_dir / "best.json"
    if best_path.is_file():
        best = json.loads(best_path.read_text())
        best["pareto_front"] = front_points
        _write_json(best_path, best)
    return plot_pareto(points, front, run_dir / PNG, target_ms=target_ms, title=title)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
