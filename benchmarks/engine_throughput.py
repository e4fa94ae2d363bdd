"""Children per hour of the default search: Ray with 2 one-thread children vs local.

On a small CPU one default child cannot use both cores well (small channel
counts and depthwise convolutions: per-operation and memory cost, not
arithmetic), so two one-thread children at once may train more children per
hour than one child with two threads. This script runs, alternating so that
both see the same machine:

* ``executor=local search.num_threads=2`` (one child at a time, 2 threads);
* ``executor=ray executor.max_concurrent=2 executor.cpus_per_child=1
  search.num_threads=1`` (two children at once, 1 thread each);

each as ``python search.py`` in its own process, and reports per round and
overall, with the ratio ray/local:

* children per hour over the whole search (``summary.json``'s wall time, Ray's
  start-up and every worker's first child included);
* the steady-state rate: children per hour after every worker has finished its
  first child (imports, data from the object store, first-call costs). The
  script watches ``children.jsonl`` while the search runs and stamps each
  record as it lands; the rate is the records after that warm-up divided by
  the time from the warm-up to the last record. Long sets (``--children 30``)
  make it meaningful.

    python benchmarks/engine_throughput.py                     # 2 rounds of 10 children
    python benchmarks/engine_throughput.py --rounds 2 --children 30 --out ...   # steady state
    python benchmarks/engine_throughput.py --rounds 1 --children 3 --tiny   # a check
    python benchmarks/engine_throughput.py --pair gpu          # one GPU: see scripts/gpu_smoke.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ["child.batch_size=64", "child.train_subset=256", "child.limit_val_batches=2",
        "dataset.val_size=256", "model.filters=4"]
SETUPS = {
    "local_2_threads": ["executor=local", "search.num_threads=2"],
    "ray_2x1_thread": ["executor=ray", "executor.max_concurrent=2", "executor.cpus_per_child=1",
                       "executor.num_cpus=2", "search.num_threads=1"],
    # One GPU (scripts/gpu_smoke.py): one child at a time vs two sharing it.
    "local_gpu": ["executor=local", "trainer=gpu", "search.num_threads=2"],
    "ray_gpu_2_per_gpu": ["executor=ray", "trainer=gpu", "executor.gpus_per_child=0.5",
                          "executor.max_concurrent=2", "executor.cpus_per_child=2",
                          "executor.num_gpus=1", "search.num_threads=2"],
}
PAIRS = {  # (local, ray): the ratio is ray / local
    "cpu": ("local_2_threads", "ray_2x1_thread"),
    "gpu": ("local_gpu", "ray_gpu_2_per_gpu"),
}


def watch(proc: subprocess.Popen, children: Path, poll: float = 0.05) -> list[tuple[float, dict]]:
    """Stamp each record of ``children`` with the moment it appears, until ``proc`` ends."""
    stamped: list[tuple[float, dict]] = []
    offset = 0
    while True:
        done = proc.poll() is not None
        if children.exists():
            with children.open() as f:
                f.seek(offset)
                chunk = f.read()
            now = time.perf_counter()
            complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits
            offset += len(complete.encode())
            stamped += [(now, json.loads(line)) for line in complete.splitlines() if line]
        if done:
            return stamped
        time.sleep(poll)


def steady_rate(stamped: list[tuple[float, dict]]) -> tuple[float | None, int]:
    """Children per hour after every worker's first child, and how many children that counts.

    Warm-up ends when the last worker to finish its first child records it;
    the rate counts the records after that moment over the time to the last one.
    """
    first: dict[str, float] = {}
    for t, record in stamped:
        first.setdefault(record.get("worker") or "?", t)
    if not first:
        return None, 0
    warm = max(first.values())
    after = [t for t, _ in stamped if t > warm]
    if not after or after[-1] <= warm:
        return None, 0
    return round(3600 * len(after) / (after[-1] - warm), 2), len(after)


def run(name: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"engine_throughput_{name}_"))
    cmd = [sys.executable, str(ROOT / "search.py"), *SETUPS[name], "logger=csv",
           f"search.num_children={args.children}", f"seed={seed}", f"hydra.run.dir={run_dir}",
           *(TINY if args.tiny else [])]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                text=True)
        stamped = watch(proc, run_dir / "children.jsonl")
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{name} failed:\n{err.read()[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    children = summary["children"]
    steady, counted = steady_rate(stamped)
    return {
        "setup": name,
        "seed": seed,
        "children": children,
        "ok": summary["ok"],
        "workers": len({r.get("worker") for _, r in stamped}),
        "search_wall_s": summary["wall_seconds"],
        "process_wall_s": round(wall, 2),
        "children_per_hour": round(3600 * children / summary["wall_seconds"], 2),
        "steady_children_per_hour": steady,
        "steady_children": counted,
        "run_dir": str(run_dir),
    }


def _pooled_steady(rows: list[dict[str, Any]]) -> float | None:
    """Steady-state children per hour pooled over rounds (weighted by children counted)."""
    counted = [(x["steady_children"], x["steady_children_per_hour"]) for x in rows
               if x["steady_children_per_hour"]]
    if not counted:
        return None
    hours = sum(n / rate for n, rate in counted)
    return round(sum(n for n, _ in counted) / hours, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--children", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="tiny children (a quick check)")
    parser.add_argument("--pair", choices=list(PAIRS), default="cpu",
                        help="cpu: 2 one-thread children vs one with 2 threads; gpu: 2 children "
                        "sharing one GPU vs one at a time")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    summary, table = compare(args)
    print(json.dumps(summary))
    print(table)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
        args.out.with_suffix(".md").write_text(table + "\n")


def compare(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run the pair's two setups, alternating; returns the summary and a markdown table."""
    local, ray = PAIRS[args.pair]
    rows = []
    for r in range(args.rounds):
        order = [local, ray] if r % 2 == 0 else [ray, local]  # alternate
        for name in order:
            row = run(name, args, seed=r)
            row["round"] = r
            print(json.dumps(row), flush=True)
            rows.append(row)
    pair = (local, ray)
    total = {
        name: sum(x["children"] for x in rows if x["setup"] == name)
        / sum(x["search_wall_s"] for x in rows if x["setup"] == name) * 3600
        for name in pair
    }
    steady = {name: _pooled_steady([x for x in rows if x["setup"] == name]) for name in pair}
    ratio = total[ray] / total[local]
    steady_ratio = steady[ray] / steady[local] if all(steady.values()) else None
    lines = ["| round | setup | children | wall s | children/hour | steady children/hour "
             "(children counted) |", "|---|---|---|---|---|---|"]
    lines += [f"| {x['round']} | {x['setup']} | {x['children']} | {x['search_wall_s']} | "
              f"{x['children_per_hour']} | {x['steady_children_per_hour']} "
              f"({x['steady_children']}) |" for x in rows]
    lines.append(f"\nOverall: {local} {total[local]:.1f}/h, {ray} {total[ray]:.1f}/h, "
                 f"ratio ray/local {ratio:.2f}x")
    if steady_ratio is not None:
        lines.append(f"Steady state: {local} {steady[local]:.1f}/h, {ray} {steady[ray]:.1f}/h, "
                     f"ratio ray/local {steady_ratio:.2f}x")
    summary = {"pair": args.pair, "rows": rows, "children_per_hour": total, "ratio": ratio,
               "steady_children_per_hour": steady, "steady_ratio": steady_ratio}
    return summary, "\n".join(lines)


if __name__ == "__main__":
    main()
