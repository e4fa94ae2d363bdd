"""How many workers can one search driver feed? Simulated children on a local Ray.

Each child is :class:`~nas_lightning.execution.simulated.TableRunner`: it sleeps
``--child-seconds`` (no CPU) and reads its accuracy from
``benchmarks/tabular/nasnet_b1.jsonl``. With S slots busy, the driver asks,
records (fsynced), tells, saves the strategy and logs every child; this script
times those driver steps and reports, per strategy and slot count:

* children per second;
* driver seconds per child (ask + record + tell + save + log);
* workers one driver can keep busy at a 20-minute child (NASNet's proxy
  training): 1200 s / driver seconds per child.

    python benchmarks/engine_scale.py                      # 8, 32, 64 slots; ~10 min
    python benchmarks/engine_scale.py --slots 4 --children 20 --child-seconds 0.2  # a check

Every slot is a Ray worker process; a simulated child imports neither torch nor
Lightning, so a worker holds about a hundred MB.
Prints JSON and a markdown table; ``--out`` writes both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLE_SPACE = [
    "runner=table",
    "search_space.num_blocks=1",
    "search_space.ops=[identity,max_pool_3x3,sep_conv_3x3]",
    "search_space.combines=[add]",
]
STRATEGIES = {
    "reinforce": ["strategy=reinforce"],
    "ppo": ["strategy=ppo"],
    "evolution": ["strategy=evolution"],
}
DRIVER_STEPS = {"_ask": "ask", "_finish": "record", "_tell_ready": "tell_log_save"}


def timed_engine(spans: dict[str, float]) -> None:
    """Wrap the engine's driver steps with timers (adds up seconds per step)."""
    from nas_lightning.execution.engine import Engine

    for method, label in DRIVER_STEPS.items():
        original = getattr(Engine, method)

        def wrapper(self, *args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spans[_label] = spans.get(_label, 0.0) + time.perf_counter() - t0

        setattr(Engine, method, wrapper)


def one(strategy: str, slots: int, args: argparse.Namespace) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from nas_lightning.search.loop import run_search

    spans: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(
        str(ROOT / "conf"), version_base="1.3"
    ):
        cfg = compose("search", [
            f"run_dir={tmp}/run", *TABLE_SPACE, *STRATEGIES[strategy],
            f"runner.seconds={args.child_seconds}", f"search.num_children={args.children}",
            "executor=ray", f"executor.max_concurrent={slots}", "search.num_threads=1",
            f"logger={args.logger}",
        ])
        from nas_lightning.execution import engine

        original = engine.Engine.__dict__.copy()
        timed_engine(spans)
        try:
            t0 = time.perf_counter()
            result = run_search(cfg)
            wall = time.perf_counter() - t0
        finally:
            for method in DRIVER_STEPS:
                setattr(engine.Engine, method, original[method])
    # wait() blocks while children sleep; _ask includes submitting to Ray.
    driver = sum(spans.values())
    n = len(result.records)
    per_child = driver / n
    return {
        "strategy": strategy,
        "slots": slots,
        "children": n,
        "ok": sum(r["status"] == "ok" for r in result.records),
        "errors": Counter(r["error"] for r in result.records if r.get("error")).most_common(3),
        "child_seconds": args.child_seconds,
        "wall_s": round(wall, 3),
        "children_per_s": round(n / wall, 3),
        "ideal_children_per_s": round(slots / args.child_seconds, 3),
        "driver_s_per_child": round(per_child, 6),
        "driver_split_ms": {k: round(1000 * v / n, 3) for k, v in spans.items()},
        "workers_fed_at_20min_child": int(1200 / per_child) if per_child else None,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| strategy | slots | children | children/s (ideal) | driver ms/child "
        "(ask / record / tell+log+save) | workers fed at a 20-min child |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        split = r["driver_split_ms"]
        lines.append(
            f"| {r['strategy']} | {r['slots']} | {r['children']} | {r['children_per_s']} "
            f"({r['ideal_children_per_s']}) | {1000 * r['driver_s_per_child']:.2f} "
            f"({split.get('ask', 0):.2f} / {split.get('record', 0):.2f} / "
            f"{split.get('tell_log_save', 0):.2f}) | {r['workers_fed_at_20min_child']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--children", type=int, default=400, help="children per search")
    parser.add_argument("--child-seconds", type=float, default=2.0)
    parser.add_argument("--logger", default="wandb", choices=["wandb", "csv"])
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    import ray
    import torch

    from nas_lightning.execution.ray_executor import init_local_ray

    torch.set_num_threads(1)
    rows = []
    for slots in args.slots:
        init_local_ray(num_cpus=slots, log_to_driver=False)  # logical CPUs: children sleep
        try:
            # Warm-up: start every worker before timing.
            warm = argparse.Namespace(**{**vars(args), "children": 2 * slots})
            one(args.strategies[0], slots, warm)
            for strategy in args.strategies:
                row = one(strategy, slots, args)
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            ray.shutdown()
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
