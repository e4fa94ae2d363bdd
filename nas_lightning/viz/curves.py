"""The search's learning curve: reward per child, running best, controller baseline.

The baseline (the controller's moving average of rewards) shows whether the
policy is improving: it rises when the children it samples get better, while
the running best only records the luckiest one. Validation accuracy is drawn
too when the reward is something else (NAS-RL's accuracy cubed, MnasNet's
accuracy times a latency term).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from nas_lightning.viz.canvas import new_figure, save


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def running_best(values: Sequence[float | None]) -> list[float | None]:
    """The best value so far at every position (None until the first value)."""
    best: float | None = None
    out = []
    for v in values:
        if v is not None and (best is None or v > best):
            best = v
        out.append(best)
    return out


def plot_search_curve(
    records: Sequence[dict[str, Any]],
    path: str | Path,
    baselines: Mapping[int, float] | None = None,
    title: str | None = None,
) -> Path:
    """Save the reward curve of ``records`` (children.jsonl rows) as a PNG."""
    return save(search_curve_figure(records, baselines, title), path)


def search_curve_figure(
    records: Sequence[dict[str, Any]],
    baselines: Mapping[int, float] | None = None,
    title: str | None = None,
) -> Any:
    """The reward curve's matplotlib Figure (legend beside the axes)."""
    fig = new_figure(8.4, 4.2)
    ax = fig.add_subplot()
    xs = [r["index"] for r in records]  # the child's number, as everywhere
    ok = [r.get("status") == "ok" and _number(r.get("reward")) is not None for r in records]
    rewards = [_number(r.get("reward")) if good else None for r, good in zip(records, ok,
                                                                               strict=True)]
    rungs = any(r.get("rung") is not None for r in records)  # search.scheduler
    top_rung = max((r.get("rung") or 0 for r in records), default=0)
    ax.scatter([x for x, v in zip(xs, rewards, strict=True) if v is not None],
               [v for v in rewards if v is not None], s=16, c="tab:blue", zorder=3,
               label="reward at the first rung" if rungs else "reward")
    accs = [_number(r.get("val_acc")) if good else None for r, good in zip(records, ok,
                                                                           strict=True)]
    if rungs:  # where each child stopped, the top rung's children filled
        for reached, style in ((True, "tab:green"), (False, "none")):
            pts = [(x, a) for x, a, r in zip(xs, accs, records, strict=True)
                   if a is not None and (r.get("rung") == top_rung) == reached]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, facecolors=style,
                           edgecolors="tab:green", zorder=3,
                           label="accuracy at the top rung" if reached
                           else "accuracy where it stopped")
    elif any(a is not None and a != v for a, v in zip(accs, rewards, strict=True)):
        ax.scatter([x for x, a in zip(xs, accs, strict=True) if a is not None],
                   [a for a in accs if a is not None], s=16, facecolors="none",
                   edgecolors="tab:green", zorder=3, label="validation accuracy")
    chosen = rewards  # what the search picks its best from
    if rungs:  # the top rung's rewards
        chosen = [_number(r.get("final_reward")) if good and r.get("rung") == top_rung else None
                  for r, good in zip(records, ok, strict=True)]
    best = running_best(chosen)
    if any(b is not None for b in best):
        ax.step(xs, [b if b is not None else math.nan for b in best], where="post",
                c="tab:orange", lw=1.4, zorder=2,
                label="best at the top rung so far" if rungs else "best so far")
    if baselines:
        pts = sorted((i, b) for i, b in baselines.items() if _number(b) is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], c="tab:purple", lw=1.1, ls="--",
                label="controller baseline", zorder=2)
    failed = [x for x, good in zip(xs, ok, strict=True) if not good]
    if failed:
        low = min([v for v in rewards if v is not None] + [0.0])
        ax.scatter(failed, [low] * len(failed), marker="x", c="tab:red", s=24, zorder=3,
                   label=f"failed ({len(failed)})")
    ax.set_xlabel("child")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("reward" if len(ax.collections) < 2 else "reward / accuracy")
    if not title:
        top = max(((v, x) for x, v in zip(xs, chosen, strict=True) if v is not None),
                  default=None)
        title = f"{len(records)} children" + (
            f", best reward {top[0]:.4f} (child {top[1]}"
            + (", top rung)" if rungs else ")") if top else "")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if xs:  # beside the axes, where it can hide no point
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig
