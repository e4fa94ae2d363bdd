"""Multi-fidelity search against the plain search, at the same wall time.

For each seed, ``python search.py`` runs with a time budget
(``search.max_minutes``) and a budget of children too large to reach, once
per setting:

* ``plain``: every child trains the whole recipe (``child.epochs``);
* ``asha``: ``search.scheduler=asha``, rungs at ``min_epochs`` x 3^k epochs up
  to ``child.epochs``; the worse children stop at a rung;
* ``asha_ray`` (``--ray``): the same on ``executor=ray`` with one-thread
  workers, one per core (children in flight at once, one table of rungs).

Per run: architectures trained (children started and recorded), children
that reached the top rung, epochs trained, the best validation accuracy at
the top rung (the plain search's children are all at the top rung), and the
wall time. Ratios (asha / plain, asha_ray / asha) are per seed, side by side
on one machine; run nothing else beside it.

Usage (from the repository root)::

    python benchmarks/asha.py --minutes 8 --seeds 0 1 2 --ray-seeds 0 \\
        --out benchmarks/results/asha

Extra search overrides go after ``--set`` (``--set child.epochs=9 strategy=random``);
``--settings asha asha_ray`` runs only those two (Ray against local ASHA).
``--combine A.json B.json ...`` runs nothing: it pools the rows of earlier runs
(the first row of a setting and seed is kept) and adds, over the seeds, the
mean ratio of architectures per second and the mean difference of the best
validation accuracy at the top rung with a 95% bootstrap interval (pairs of
one seed resampled). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas_lightning.core.ranks import bootstrap_interval  # noqa: E402
from nas_lightning.core.records import read_children  # noqa: E402

SETTINGS = {
    "plain": ["search.scheduler=none"],
    "asha": ["search.scheduler=asha"],
    "asha_ray": ["search.scheduler=asha", "executor=ray", "search.num_threads=1",
                 "executor.cpus_per_child=1"],
}


def run_one(name: str, seed: int, minutes: float, common: list[str], work: Path) -> dict[str, Any]:
    run_dir = work / f"{name}_{seed}"
    args = [sys.executable, str(ROOT / "search.py"), f"run_dir={run_dir}", f"seed={seed}",
            "logger=csv", "search.progress=plain", "search.num_children=100000",
            f"search.max_minutes={minutes}", *common, *SETTINGS[name]]
    env = {**os.environ, "WANDB_MODE": "offline"}
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed:\n{proc.stderr[-3000:]}")
    records = read_children(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    epochs = [len(r.get("val_curve") or []) for r in records if r["status"] == "ok"]
    top = max(epochs, default=0) if name == "plain" else None
    if top is None:
        top = max((len(r["val_curve"]) for r in records if r.get("rung") is not None
                   and r["status"] == "ok"), default=0)
    at_top = [r for r in records if r["status"] == "ok" and len(r["val_curve"]) == top]
    return {
        "setting": name, "seed": seed, "wall_seconds": round(wall, 1),
        "search_seconds": summary.get("wall_seconds"),
        "architectures": len(records),
        "failed": sum(1 for r in records if r["status"] != "ok"),
        "top_rung_children": len(at_top), "top_epochs": top, "epochs_trained": sum(epochs),
        "best_top_val_acc": max((r["val_acc"] for r in at_top), default=None),
        "best_first_rung_reward": max((r["reward"] for r in records
                                       if r["status"] == "ok"), default=None),
    }


def _rate(row: dict[str, Any], key: str) -> float:
    return row[key] / row["search_seconds"]


def table(rows: list[dict[str, Any]], minutes: float, common: list[str]) -> str:
    by = {(r["setting"], r["seed"]): r for r in rows}
    lines = [f"Search budget {minutes:g} min per run; overrides: `{' '.join(common)}`.", "",
             "| seed | setting | architectures | at top rung | epochs trained | best val_acc at "
             "top rung | search s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        best = r["best_top_val_acc"]
        lines.append(f"| {r['seed']} | {r['setting']} | {r['architectures']} | "
                     f"{r['top_rung_children']} | {r['epochs_trained']} | "
                     f"{best:.4f} | {r['search_seconds']} |" if best is not None else
                     f"| {r['seed']} | {r['setting']} | {r['architectures']} | 0 | - | - | - |")
    lines += ["", "Ratios of rates per second of search (a search ends with the children in "
              "flight when its time is up, so runs last a little longer than the budget).", "",
              "| seed | asha / plain architectures | asha - plain best top val_acc | "
              "asha_ray / asha architectures | asha_ray / asha epochs |", "|---|---|---|---|---|"]
    for seed in sorted({r["seed"] for r in rows}):
        p, a, y = by.get(("plain", seed)), by.get(("asha", seed)), by.get(("asha_ray", seed))
        ratio = f"{_rate(a, 'architectures') / _rate(p, 'architectures'):.2f}" if a and p else "-"
        diff = (f"{a['best_top_val_acc'] - p['best_top_val_acc']:+.4f}"
                if a and p and a["best_top_val_acc"] is not None
                and p["best_top_val_acc"] is not None else "-")
        ray_arch = (f"{_rate(y, 'architectures') / _rate(a, 'architectures'):.2f}"
                    if y and a else "-")
        ray_ep = (f"{_rate(y, 'epochs_trained') / _rate(a, 'epochs_trained'):.2f}"
                  if y and a else "-")
        lines.append(f"| {seed} | {ratio} | {diff} | {ray_arch} | {ray_ep} |")
    return "\n".join(lines) + "\n"


def _mean_difference(a: list[float], b: list[float]) -> float:
    return sum(x - y for x, y in zip(a, b, strict=True)) / len(a)


def pooled(rows: list[dict[str, Any]], setting: str = "asha",
           base: str = "plain") -> dict[str, Any]:
    """``setting`` against ``base`` over the seeds that ran both.

    Returns the seeds, the ratio of architectures per second per seed and its mean,
    the difference of the best validation accuracy at the top rung per seed, its mean
    with a 95% bootstrap interval, and the seeds where ``setting`` was at least as high.
    """
    by = {(r["setting"], r["seed"]): r for r in rows}
    seeds = sorted(s for (name, s) in by if name == setting and (base, s) in by
                   and by[(setting, s)]["best_top_val_acc"] is not None
                   and by[(base, s)]["best_top_val_acc"] is not None)
    ratios = [_rate(by[(setting, s)], "architectures") / _rate(by[(base, s)], "architectures")
              for s in seeds]
    mine = [by[(setting, s)]["best_top_val_acc"] for s in seeds]
    theirs = [by[(base, s)]["best_top_val_acc"] for s in seeds]
    diffs = [a - b for a, b in zip(mine, theirs, strict=True)]
    lo, hi = (bootstrap_interval(mine, theirs, _mean_difference, samples=10000)
              if len(seeds) >= 3 else (float("nan"), float("nan")))
    return {"setting": setting, "base": base, "seeds": seeds, "architecture_ratios": ratios,
            "mean_architecture_ratio": sum(ratios) / len(ratios) if ratios else float("nan"),
            "differences": diffs,
            "mean_difference": sum(diffs) / len(diffs) if diffs else float("nan"),
            "difference_95": [lo, hi], "at_least_as_high": sum(d >= 0 for d in diffs)}


def pooled_lines(p: dict[str, Any]) -> list[str]:
    n = len(p["seeds"])
    if not n:
        return [f"No seed ran both {p['setting']} and {p['base']}."]
    lo, hi = p["difference_95"]
    return [
        f"Over {n} seeds ({', '.join(map(str, p['seeds']))}), {p['setting']} against "
        f"{p['base']}: {p['mean_architecture_ratio']:.2f}x the architectures per second "
        f"(per seed: {', '.join(f'{r:.2f}' for r in p['architecture_ratios'])}); best "
        f"val_acc at the top rung {p['mean_difference']:+.4f} on average, 95% bootstrap "
        f"interval [{lo:+.4f}, {hi:+.4f}]; at least as high in {p['at_least_as_high']} of {n}.",
    ]


def combine(files: list[Path]) -> tuple[list[dict[str, Any]], float, list[str]]:
    """The rows of earlier runs (the first row of a setting and seed is kept), their
    budget in minutes and their overrides, which must be the same in every file."""
    rows: dict[tuple, dict[str, Any]] = {}
    budgets = set()
    for path in files:
        data = json.loads(Path(path).read_text())
        budgets.add((data["meta"]["minutes"], tuple(data["meta"]["overrides"])))
        for row in data["rows"]:
            rows.setdefault((row["setting"], row["seed"]), row)
    if len(budgets) != 1:
        raise SystemExit(f"error: --combine: the files ran different budgets or overrides: "
                         f"{sorted(budgets)}")
    minutes, overrides = budgets.pop()
    order = sorted(rows.values(), key=lambda r: (r["seed"], list(SETTINGS).index(r["setting"])))
    return order, minutes, list(overrides)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ray-seeds", type=int, nargs="*", default=[],
                        help="seeds also run as asha_ray")
    parser.add_argument("--set", nargs="*", default=["child.epochs=9"],
                        help="search overrides shared by every run")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS),
                        default=["plain", "asha"],
                        help="settings run for every seed (asha_ray also for --ray-seeds)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/asha")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, metavar="JSON",
                        help="pool the rows of earlier runs (runs nothing)")
    args = parser.parse_args(argv)
    if args.combine:
        rows, minutes, overrides = combine(args.combine)
        summary = pooled(rows)
        text = table(rows, minutes, overrides) + "\n" + "\n".join(pooled_lines(summary)) + "\n"
        meta = {"combined": [str(f) for f in args.combine], "command": " ".join(sys.argv)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "rows": rows, "pooled": summary}, indent=2))
        args.out.with_suffix(".md").write_text(text)
        print(text)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            names = [n for n in ("plain", "asha", "asha_ray") if n in args.settings
                     or (n == "asha_ray" and seed in args.ray_seeds)]
            for name in names:
                row = run_one(name, seed, args.minutes, list(args.set), Path(tmp))
                print(json.dumps(row), flush=True)
                rows.append(row)
    meta = {"minutes": args.minutes, "overrides": list(args.set), "machine": platform.machine(),
            "processor": platform.processor(), "cpus": os.cpu_count(),
            "command": " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    args.out.with_suffix(".md").write_text(table(rows, args.minutes, list(args.set)))
    print(table(rows, args.minutes, list(args.set)))


if __name__ == "__main__":
    main()
