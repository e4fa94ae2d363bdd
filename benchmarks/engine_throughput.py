"""Children per hour of the default search: Ray with 2 one-thread children vs local.

On a small CPU one default child cannot use both cores well (small channel
counts and depthwise convolutions: per-operation and memory cost, not
arithmetic), so two one-thread children at once may train more children per
hour than one child with two threads. This script runs, alternating so that
both see the same machine:

* ``executor=local search.num_threads=2`` (one child at a time, 2 threads);
* ``executor=ray executor.max_concurrent=2 executor.cpus_per_child=1
  search.num_threads=1`` (two children at once, 1 thread each);

each as ``python search.py`` in its own process, and reports children per
hour (from the run's ``summary.json`` wall time, Ray start included) and the
ratio ray/local per round and overall.

    python benchmarks/engine_throughput.py                     # 2 rounds of 10 children
    python benchmarks/engine_throughput.py --rounds 1 --children 2 --tiny   # a check
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
}


def run(name: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"engine_throughput_{name}_"))
    cmd = [sys.executable, str(ROOT / "search.py"), *SETUPS[name], "logger=csv",
           f"search.num_children={args.children}", f"seed={seed}", f"hydra.run.dir={run_dir}",
           *(TINY if args.tiny else [])]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    children = summary["children"]
    return {
        "setup": name,
        "seed": seed,
        "children": children,
        "ok": summary["ok"],
        "search_wall_s": summary["wall_seconds"],
        "process_wall_s": round(wall, 2),
        "children_per_hour": round(3600 * children / summary["wall_seconds"], 2),
        "run_dir": str(run_dir),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--children", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="tiny children (a quick check)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    rows = []
    for r in range(args.rounds):
        order = list(SETUPS) if r % 2 == 0 else list(reversed(SETUPS))  # alternate
        for name in order:
            row = run(name, args, seed=r)
            row["round"] = r
            print(json.dumps(row), flush=True)
            rows.append(row)
    total = {
        name: sum(x["children"] for x in rows if x["setup"] == name)
        / sum(x["search_wall_s"] for x in rows if x["setup"] == name) * 3600
        for name in SETUPS
    }
    ratio = total["ray_2x1_thread"] / total["local_2_threads"]
    lines = ["| round | setup | children | wall s | children/hour |", "|---|---|---|---|---|"]
    lines += [f"| {x['round']} | {x['setup']} | {x['children']} | {x['search_wall_s']} | "
              f"{x['children_per_hour']} |" for x in rows]
    lines.append(f"\nOverall: local {total['local_2_threads']:.1f}/h, ray "
                 f"{total['ray_2x1_thread']:.1f}/h, ratio ray/local {ratio:.2f}x")
    table = "\n".join(lines)
    print(json.dumps({"children_per_hour": total, "ratio": ratio}))
    print(table)
    if args.out:
        args.out.with_suffix(".json").write_text(
            json.dumps({"rows": rows, "children_per_hour": total, "ratio": ratio}, indent=1)
        )
        args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
