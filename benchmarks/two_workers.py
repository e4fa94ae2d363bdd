"""The most two one-thread workers can gain over one child on all cores.

``executor=ray`` (or any executor running children side by side) trains two
children at once, one torch thread each, where ``executor=local`` trains one
child on the machine's threads. Whatever the executor does, its children per
second cannot exceed what two bare processes reach training the same child
side by side. This measures that ceiling with the default search's runner and
one child of the default space (``benchmarks/threads_default.py``'s ``Bench``):

- ``single``: the main process trains the child with ``--threads`` threads
  (default: the usable cores), the workers wait;
- ``pair``: two worker processes, one thread each, train the child at the same
  moment (a barrier starts them together), the main process waits.

Every process is started once and warmed up with one untimed child, so
process start and first-fit costs are left out (an executor that keeps its
workers warm pays them once). The two phases alternate while the next round
fits in ``--budget`` seconds; the ratio of each round's children per second
is ``pair / single``.

    python benchmarks/two_workers.py                      # about 4 minutes
    python benchmarks/two_workers.py --tiny --budget 20   # a quick check

Writes ``benchmarks/results/two_workers.{json,md}`` (``--tiny``: into a
temporary folder unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # spawned workers import the scripts by name

from threads_default import TINY, Bench, load_average  # noqa: E402

_WORKER: dict[str, Any] = {}


def _init_worker(overrides: list[str], run_dir: str, barrier: Any) -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    _WORKER["bench"] = Bench(overrides, Path(run_dir) / f"worker_{os.getpid()}")
    _WORKER["barrier"] = barrier


def _worker_child(warm: bool) -> dict[str, Any]:
    """One child on one thread; both workers start it together unless warming up."""
    if not warm:
        _WORKER["barrier"].wait()
    t0 = time.perf_counter()
    row = _WORKER["bench"].child(1)
    row["end"] = time.perf_counter() - t0
    row["pid"] = os.getpid()
    return row


def ratio_per_round(rows: list[dict[str, Any]]) -> list[float]:
    """``pair / single`` children per second, round by round."""
    out = []
    for r in sorted({row["round"] for row in rows}):
        single = [x for x in rows if x["round"] == r and x["phase"] == "single"]
        pair = [x for x in rows if x["round"] == r and x["phase"] == "pair"]
        if single and pair:
            pair_wall = max(x["seconds"] for x in pair)
            out.append((len(pair) / pair_wall) / (1 / single[0]["seconds"]))
    return out


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    ratios = ratio_per_round(rows)
    single = [r["seconds"] for r in rows if r["phase"] == "single"]
    pair = [r["seconds"] for r in rows if r["phase"] == "pair"]
    return "\n".join([
        "# Two one-thread workers against one child on all cores",
        "",
        f"Machine: {meta['cpu']}, {meta['usable_cores']} usable cores, torch {meta['torch']};"
        f" load average {meta['load_at_start']} at start; overrides: "
        f"{' '.join(meta['overrides']) or '(none: the default child)'}.",
        "",
        "| | value |",
        "|---|---|",
        f"| rounds | {len(ratios)} |",
        f"| single: one child, {meta['threads']} threads, median s | "
        f"{statistics.median(single):.2f} |",
        f"| pair: each of two children at once, 1 thread, median s | "
        f"{statistics.median(pair):.2f} |",
        f"| children per second, pair / single: median [min, max] over rounds | "
        f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}] |",
        "",
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for all rounds")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the single child (default: the usable cores)")
    parser.add_argument("--tiny", action="store_true", help="tiny children (a quick check)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    parser.add_argument("overrides", nargs="*", help="extra search.py overrides")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")

    import torch

    from nas_lightning.core.threads import usable_cores
    from nas_lightning.latency.measure import cpu_name

    threads = args.threads or usable_cores()
    run_dir = Path(tempfile.mkdtemp(prefix="two_workers_"))
    overrides = [*(TINY if args.tiny else []), *args.overrides]
    meta = {"cpu": cpu_name(), "machine": platform.machine(), "usable_cores": usable_cores(),
            "torch": torch.__version__, "load_at_start": load_average(),
            "overrides": overrides, "threads": threads, "budget_s": args.budget}
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    bench = Bench(overrides, run_dir / "single")
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=_init_worker,
                             initargs=(overrides, str(run_dir), barrier)) as pool:
        warm = [pool.submit(_worker_child, True) for _ in range(2)]
        pids = {f.result()["pid"] for f in warm}
        bench.child(threads)  # warm-up, untimed
        start, r, last = time.perf_counter(), 0, 0.0
        while r == 0 or time.perf_counter() - start + last <= args.budget:
            t0 = time.perf_counter()
            row = {"round": r, "phase": "single", "threads": threads, **bench.child(threads)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            pair = [f.result() for f in [pool.submit(_worker_child, False) for _ in range(2)]]
            pids |= {p["pid"] for p in pair}
            for p in pair:
                p = {"round": r, "phase": "pair", "threads": 1, **p}
                rows.append(p)
                print(json.dumps(p), flush=True)
            last, r = time.perf_counter() - t0, r + 1
    meta["worker_processes"] = len(pids)
    table = markdown(meta, rows)
    print(table)
    out = args.out or (run_dir / "two_workers" if args.tiny
                       else ROOT / "benchmarks" / "results" / "two_workers")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "ratios": ratio_per_round(rows), "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(table)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return {"meta": meta, "rows": rows, "out": out}


if __name__ == "__main__":
    main()
