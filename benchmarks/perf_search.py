"""The default search, run as ``python search.py`` runs it, with timers around the loop.

``python benchmarks/perf.py --sections search`` starts this file as a
subprocess (``python benchmarks/perf_search.py [--threads N] EVENTS
OVERRIDES...``): it wraps the loop's steps (ask, evaluate, record, tell, save,
log) in timers, runs ``search.py``'s Hydra main, and writes the timed spans
to EVENTS; :func:`search` turns them and the children's own records
(``extra.timing``) into the per-child and per-process split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def load() -> float:
    """The 1-minute load average (how busy the machine was)."""
    return round(os.getloadavg()[0], 2)

_EVENTS: list[tuple[str, float, float, float, float]] = []  # label, wall and CPU start/end


def _timed(owner: type, name: str, label: str) -> None:
    original = owner.__dict__[name]

    def wrapper(*a, **k):
        t0, c0 = time.time(), time.process_time()
        try:
            return original(*a, **k)
        finally:
            _EVENTS.append((label, t0, time.time(), c0, time.process_time()))

    setattr(owner, name, wrapper)


def worker(events_path: str, overrides: list[str], threads: int | None) -> None:
    """Run ``search.py``'s Hydra main with timers around the loop's steps."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    import runpy

    from nas_lightning.core import records
    from nas_lightning.execution import evaluator
    from nas_lightning.search import loggers, loop
    from nas_lightning.strategies.base import Strategy

    _timed(Strategy, "ask", "ask")
    _timed(Strategy, "tell", "tell")
    _timed(records.RunRecorder, "append_child", "record")
    _timed(records.RunRecorder, "save_strategy", "save_strategy")
    _timed(evaluator.LightningEvaluator, "run", "evaluate")
    for cls in (loggers.SearchLogger, loggers.CSVSearchLogger, loggers.WandbSearchLogger):
        for method in ("start", "log_child", "finish"):
            if method in cls.__dict__:
                _timed(cls, method, f"logger_{method}")
    _timed(loop, "run_search", "run_search")
    _timed(loop, "_finish", "finish")
    sys.argv = [str(ROOT / "search.py"), *overrides]
    try:  # as `python search.py ...` runs it (Hydra finds conf/ next to the file)
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        Path(events_path).write_text(json.dumps(_EVENTS))


def _spans(events, label):
    return [(e[1], e[2]) for e in events if e[0] == label]


def _cpu(events, label):
    return [e[4] - e[3] for e in events if e[0] == label]


def _within(events, label: str, lo: float, hi: float) -> float:
    """Seconds spent in ``label`` spans lying between ``lo`` and ``hi``."""
    return sum(b - a for a, b in _spans(events, label) if lo <= a and b <= hi)


def search(args, overrides: list[str]) -> dict[str, Any]:
    from nas_lightning.core.records import read_children

    run_dir = Path(tempfile.mkdtemp(prefix="perf_search_"))
    events_path = run_dir / "perf_events.json"
    cmd = [sys.executable, str(Path(__file__).resolve())]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += [str(events_path), *overrides, f"hydra.run.dir={run_dir}"]
    print("  " + shlex.join(cmd), flush=True)
    before = load()
    cpu0 = os.times()
    t_spawn = time.time()
    with open(run_dir / "perf_stdout.log", "w") as log_file:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    t_exit = time.time()
    cpu1 = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"search failed, see {run_dir / 'perf_stdout.log'}")
    events = json.loads(events_path.read_text())
    records = read_children(run_dir)
    wall = t_exit - t_spawn
    (rs_start, rs_end), = _spans(events, "run_search")
    asks, evals = _spans(events, "ask"), _spans(events, "evaluate")
    per_child = []
    for i, rec in enumerate(records):
        timing = dict((rec.get("extra") or {}).get("timing") or {})
        e0, e1 = evals[i]
        nxt = asks[i + 1][0] if i + 1 < len(asks) else math.inf
        log_child = _within(events, "logger_log_child", e1, nxt)
        child_end = nxt if i + 1 < len(asks) else e1 + log_child
        row = {
            "index": i,
            "wall": child_end - asks[i][0],
            "ask": asks[i][1] - asks[i][0],
            **{k: v for k, v in timing.items() if k != "train_steps"},
            "record": _within(events, "record", e0, e1),
            "tell": _within(events, "tell", e0, e1),
            "save_strategy": _within(events, "save_strategy", e1, nxt),
            "log_child": log_child,
            "val_acc": rec.get("val_acc"),
            "seconds": rec["seconds"],
            "cpu_evaluate": _cpu(events, "evaluate")[i],
        }
        row["fixed"] = row["wall"] - row.get("train", 0.0) - row.get("val", 0.0)
        per_child.append(row)
    train = sum(r.get("train", 0.0) for r in per_child)
    val = sum(r.get("val", 0.0) for r in per_child)
    first_child = asks[0][0] if asks else rs_end
    last_child = per_child[-1]["wall"] + asks[-1][0] if asks else rs_start
    keys = ["wall", "ask", "build", "probe", "init", "setup", "train", "val", "other", "record",
            "tell", "save_strategy", "log_child", "fixed"]
    mean = {k: round(statistics.fmean(r.get(k, 0.0) for r in per_child), 4) for k in keys}
    # The first child of a process pays one-off costs (first Trainer, lazy imports):
    later = per_child[1:] or per_child
    mean_later = {k: round(statistics.fmean(r.get(k, 0.0) for r in later), 4) for k in keys}
    return {
        "command": "python search.py " + shlex.join(overrides),
        "children": len(records),
        "wall_s": round(wall, 2),
        "cpu_s": round((cpu1.children_user + cpu1.children_system)
                       - (cpu0.children_user + cpu0.children_system), 2),
        "train_s": round(train, 2),
        "val_s": round(val, 2),
        "share_train": round(train / wall, 4),
        "share_train_val": round((train + val) / wall, 4),
        "process": {
            "startup_s": round(rs_start - t_spawn, 2),  # interpreter, imports, Hydra compose
            "before_first_child_s": round(first_child - rs_start, 2),  # objects, data, logger
            "children_s": round(last_child - first_child, 2),
            "after_last_child_s": round(rs_end - last_child, 2),  # summary, logger finish
            "exit_s": round(t_exit - rs_end, 2),
            "logger_start_s": round(sum(b - a for a, b in _spans(events, "logger_start")), 3),
            "logger_finish_s": round(sum(b - a for a, b in _spans(events, "logger_finish")), 3),
        },
        # CPU seconds of the search process: with one thread, about its wall time on an
        # idle machine (with two, spinning threads inflate it)
        "cpu": {
            "startup_s": round(next(e[3] for e in events if e[0] == "run_search"), 2),
            "evaluate_s": round(sum(_cpu(events, "evaluate")), 2),
            "run_search_s": round(sum(_cpu(events, "run_search")), 2),
        },
        "per_child_mean": mean,
        "per_child_mean_after_first": mean_later,
        "per_child": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                      for r in per_child],
        "load": [before, load()],
        "run_dir": str(run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the timed search worker")
    parser.add_argument("events")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    worker(args.events, args.overrides, args.threads)


if __name__ == "__main__":
    main()
