"""Seconds per default child with ``search.num_threads`` = 1, 2 and ``auto``.

One process builds the default search's runner (``conf/search.yaml``: space,
model, recipe, data) and one child of the default space (sampled with the
seed), then trains that same child again and again, alternating the thread
setting within each round (the order reverses every round, so that drift in
the machine's load hits every setting alike). ``auto`` is resolved before each
child exactly as a search resolves it at start (``nas_lightning/search/
threads.py``: free cores from the load average, capped at 4), and the count
it picked is recorded.

``--load N`` adds a second phase under an artificial background load: N busy
processes (pure-Python spin loops) started and stopped by this script. The
one-minute load average lags, so the phase first waits ``--settle`` seconds.

Rounds continue while the next one fits in ``--budget`` seconds (split
evenly between the phases), at least one round per phase. An untimed warm-up
child runs first (the first fit in a process pays one-off costs).

    python benchmarks/threads_default.py                  # about 4 minutes, idle only
    python benchmarks/threads_default.py --load 2 --budget 480
    python benchmarks/threads_default.py --tiny --budget 30   # a quick check

Writes ``benchmarks/results/threads_default.{json,md}`` (``--tiny``: into the
temporary run folder unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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

SETTINGS: tuple[str, ...] = ("1", "2", "auto")
TINY = ["child.batch_size=64", "child.train_subset=256", "child.limit_val_batches=2",
        "dataset.val_size=256", "model.filters=4"]


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return 0.0


def start_busy(n: int) -> list[subprocess.Popen]:
    """``n`` processes that spin on a core each until stopped."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Bench:
    """The default runner and one fixed child, trained under a given thread count."""

    def __init__(self, overrides: list[str], run_dir: Path) -> None:
        from hydra import compose, initialize_config_dir

        from nas_lightning.core.builders import build
        from nas_lightning.execution.base import Trial
        from nas_lightning.execution.runner import make_runner
        from nas_lightning.strategies.base import Proposal
        from nas_lightning.utils import quiet_lightning

        quiet_lightning()
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            self.cfg = compose("search", overrides=[f"run_dir={run_dir}", "logger=csv",
                                                    *overrides])
        space = build(self.cfg.search_space, "search_space")
        actions = space.sample(random.Random(int(self.cfg.seed)))
        self.trial = Trial(index=0, proposal=Proposal(0, actions, space.decode(actions)),
                           seed=int(self.cfg.seed))
        self.runner = make_runner(self.cfg)

    def threads_for(self, setting: str) -> int:
        from nas_lightning.core.threads import resolve_num_threads

        value: Any = "auto" if setting == "auto" else int(setting)
        return resolve_num_threads(value, self.cfg.get("executor"))

    def child(self, threads: int) -> dict[str, Any]:
        import torch

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        result = self.runner.run(self.trial)
        wall = time.perf_counter() - t0
        if result.status != "ok":
            raise RuntimeError(f"the child failed: {result.error}")
        return {"seconds": round(wall, 3), "train_seconds": round(result.train_seconds, 3),
                "val_acc": result.val_acc, "threads_used": torch.get_num_threads()}


def run_phase(bench: Bench, phase: str, budget: float, log: list[dict]) -> None:
    start, r, last = time.perf_counter(), 0, 0.0
    while r == 0 or time.perf_counter() - start + last <= budget:
        t0 = time.perf_counter()
        order = SETTINGS if r % 2 == 0 else tuple(reversed(SETTINGS))
        for setting in order:
            load = load_average()
            threads = bench.threads_for(setting)
            row = {"phase": phase, "round": r, "setting": setting, "threads": threads,
                   "load_before": load, **bench.child(threads)}
            print(json.dumps(row), flush=True)
            log.append(row)
        last, r = time.perf_counter() - t0, r + 1


def summarise(rows: list[dict]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for phase in dict.fromkeys(r["phase"] for r in rows):
        per = {s: [r["seconds"] for r in rows if r["phase"] == phase and r["setting"] == s]
               for s in SETTINGS}
        med = {s: statistics.median(v) for s, v in per.items()}
        picked = sorted({r["threads"] for r in rows if r["phase"] == phase
                         and r["setting"] == "auto"})
        out[phase] = {
            "median_seconds_per_child": {s: round(v, 2) for s, v in med.items()},
            "children_per_setting": len(per["1"]),
            "auto_picked_threads": picked,
            "ratio_vs_1_thread": {s: round(med[s] / med["1"], 3) for s in SETTINGS},
            "ratio_vs_auto": {s: round(med[s] / med["auto"], 3) for s in SETTINGS},
        }
    return out


def markdown(meta: dict[str, Any], summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Torch threads per default child: 1, 2 and auto",
        "",
        f"Machine: {meta['cpu']}, {meta['usable_cores']} usable cores, torch "
        f"{meta['torch']}; load average {meta['load_at_start']} at start; "
        f"overrides: {' '.join(meta['overrides']) or '(none: the default child)'}.",
        "Seconds per child: build to end of validation, median over the rounds; one "
        "process, settings alternating.",
        "",
        "| phase | setting | threads | s/child | vs 1 thread | vs auto |",
        "|---|---|---|---|---|---|",
    ]
    for phase, s in summary.items():
        for setting in SETTINGS:
            threads = (",".join(map(str, s["auto_picked_threads"])) if setting == "auto"
                       else setting)
            lines.append(
                f"| {phase} | {setting} | {threads} | "
                f"{s['median_seconds_per_child'][setting]:.2f} | "
                f"{s['ratio_vs_1_thread'][setting]:.3f} | {s['ratio_vs_auto'][setting]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for all rounds")
    parser.add_argument("--load", type=int, default=0, help="busy processes for phase 2")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to wait after starting the busy processes")
    parser.add_argument("--tiny", action="store_true", help="tiny children (a quick check)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    parser.add_argument("overrides", nargs="*", help="extra search.py overrides")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.pop("OMP_NUM_THREADS", None)  # auto must decide, as in a default search

    import torch

    from nas_lightning.core.threads import usable_cores
    from nas_lightning.latency.measure import cpu_name

    run_dir = Path(tempfile.mkdtemp(prefix="threads_default_"))
    overrides = [*(TINY if args.tiny else []), *args.overrides]
    meta = {"cpu": cpu_name(), "machine": platform.machine(), "usable_cores": usable_cores(),
            "torch": torch.__version__, "load_at_start": load_average(), "overrides": overrides,
            "budget_s": args.budget, "background_load": args.load}
    bench = Bench(overrides, run_dir)
    bench.child(1)  # warm-up, untimed
    phases = ["idle", f"load_{args.load}"] if args.load > 0 else ["idle"]
    rows: list[dict] = []
    for phase in phases:
        if phase == "idle":
            run_phase(bench, phase, args.budget / len(phases), rows)
            continue
        busy = start_busy(args.load)
        try:
            time.sleep(args.settle)
            run_phase(bench, phase, args.budget / len(phases), rows)
        finally:
            stop_busy(busy)
    summary = summarise(rows)
    table = markdown(meta, summary)
    print(table)
    out = args.out or (run_dir / "threads_default" if args.tiny
                       else ROOT / "benchmarks" / "results" / "threads_default")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(table)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
