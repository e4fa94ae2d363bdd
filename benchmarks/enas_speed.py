"""Architectures evaluated per second: ENAS's shared weights vs standalone children.

One process alternates, round after round, side by side on the same machine:

(i)   ``--shared K`` controller steps of the ENAS preset, exactly as the search runs
      them (``EnasModule.train_controller``: sample, score on one validation
      minibatch with the shared weights and batch statistics, REINFORCE update);
(ii)  ``--standalone M`` children trained from scratch and validated with the
      standalone search's default child recipe, through the search's own runner;
(iii) ``--supernet-steps S`` supernet training steps (one sampled architecture,
      one training minibatch, SGD), to charge the shared weights' training to the
      architectures they score.

It prints architectures/second for (i) and (ii) and their ratio, plus an
amortised shared rate: the preset's controller steps divided by the time of its
supernet steps and controller steps together (one epoch's mix). Timing starts
after a warm-up of each kind; the supernet is untrained (speed does not depend
on its weights). Run it on a quiet machine; figures under load are worthless.

    python benchmarks/enas_speed.py                       # default: about 3 minutes
    python benchmarks/enas_speed.py --rounds 1 --shared 4 --standalone 1 \\
        --supernet-steps 2 --limit-train-batches 2 --out /tmp/speed.json   # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas_lightning.core.builders import build, build_partial  # noqa: E402
from nas_lightning.enas.module import EnasModule  # noqa: E402
from nas_lightning.enas.search import build_supernet, standalone_search_config  # noqa: E402
from nas_lightning.execution.base import Trial  # noqa: E402
from nas_lightning.execution.runner import make_runner  # noqa: E402
from nas_lightning.utils import quiet_lightning  # noqa: E402

log = logging.getLogger("enas_speed")


def supernet_steps(module: EnasModule, optimizer: torch.optim.Optimizer, datamodule: Any,
                   steps: int, grad_clip: float | None) -> None:
    """``steps`` supernet training steps as EnasModule.training_step, in a plain loop."""
    module.train()
    batches = iter(datamodule.train_dataloader())
    for _ in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(datamodule.train_dataloader())
            x, y = next(batches)
        x, y = datamodule.on_after_batch_transfer((x, y), 0)
        genotype = module.strategy.ask().genotype
        loss = F.cross_entropy(module(x, genotype), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(module.supernet.parameters(), grad_clip)
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared", type=int, default=50, help="controller steps per round")
    parser.add_argument("--standalone", type=int, default=2, help="standalone children per round")
    parser.add_argument("--supernet-steps", type=int, default=20, help="per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-train-batches", type=int, default=None,
                        help="cap each standalone child's training (smoke runs only)")
    parser.add_argument("overrides", nargs="*", help="config overrides (e.g. enas.supernet."
                        "share_inputs=true), applied to `search.py experiment=enas`")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/enas_speed.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_lightning()
    torch.set_num_threads(args.threads)

    tmp = tempfile.mkdtemp(prefix="enas_speed_")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("search", ["experiment=enas", "logger=csv", f"run_dir={tmp}",
                                 f"seed={args.seed}", *args.overrides])
    e = cfg.enas
    space = build(cfg.search_space, "search_space")
    strategy = build_partial(cfg.strategy, "strategy", space=space, seed=args.seed)
    datamodule = build(cfg.dataset, "dataset")
    datamodule.setup("fit")
    torch.manual_seed(args.seed)
    supernet = build_supernet(cfg, space, datamodule)
    module = EnasModule(
        supernet, strategy, controller_batch_size=e.controller_batch_size,
        entropy_reward_weight=float(e.entropy_reward_weight),
        channels_last=bool(e.channels_last), seed=args.seed,
    )
    module.use_data(datamodule)
    optimizer = build(e.optimizer, "enas.optimizer")(module.supernet.parameters())
    child_cfg = standalone_search_config(cfg, run_dir=tmp,
                                         limit_train_batches=args.limit_train_batches)
    runner = make_runner(child_cfg)
    child_strategy = build_partial(cfg.strategy, "strategy", space=space, seed=args.seed + 1)

    # warm-up: first calls allocate, and the first Trainer in a process costs more
    module.train()
    module.train_controller(2)
    supernet_steps(module, optimizer, datamodule, 2, e.get("grad_clip"))
    runner.run(Trial(0, child_strategy.ask(), args.seed))

    rounds = []
    child_index = 1
    for r in range(args.rounds):
        module.train()  # as during fit; scoring uses batch statistics either way
        t0 = time.perf_counter()
        module.train_controller(args.shared)
        shared_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        supernet_steps(module, optimizer, datamodule, args.supernet_steps, e.get("grad_clip"))
        step_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.standalone):
            result = runner.run(Trial(child_index, child_strategy.ask(), args.seed + child_index))
            if result.status != "ok":
                raise RuntimeError(f"standalone child {child_index}: {result.error}")
            child_index += 1
        standalone_s = time.perf_counter() - t0
        rounds.append({"shared_seconds": shared_s, "supernet_step_seconds": step_s,
                       "standalone_seconds": standalone_s})
        log.info("round %d: shared %.2f arch/s, standalone %.4f arch/s, supernet step %.3fs",
                 r + 1, args.shared / shared_s, args.standalone / standalone_s,
                 step_s / max(1, args.supernet_steps))

    shared_rate = args.rounds * args.shared / sum(r["shared_seconds"] for r in rounds)
    standalone_rate = args.rounds * args.standalone / sum(r["standalone_seconds"] for r in rounds)
    step_seconds = sum(r["supernet_step_seconds"] for r in rounds) / max(
        1, args.rounds * args.supernet_steps)
    epoch_steps = len(datamodule.train_dataloader())
    if e.get("limit_train_batches"):
        epoch_steps = min(epoch_steps, int(e.limit_train_batches))
    per_score = 1 / shared_rate
    amortised = e.controller_steps / (epoch_steps * step_seconds + e.controller_steps * per_score)
    report = {
        "shared_arch_per_s": shared_rate,
        "standalone_arch_per_s": standalone_rate,
        "ratio": shared_rate / standalone_rate,
        "shared_amortised_arch_per_s": amortised,
        "amortised_ratio": amortised / standalone_rate,
        "supernet_step_seconds": step_seconds,
        "per_round_ratio_median": statistics.median(
            (args.shared / r["shared_seconds"]) / (args.standalone / r["standalone_seconds"])
            for r in rounds),
        "rounds": rounds,
        "conditions": {
            "machine": platform.platform(), "processor": platform.processor(),
            "threads": args.threads, "device": "cpu" if not torch.cuda.is_available() else "cuda",
            "rounds": args.rounds, "shared_per_round": args.shared,
            "standalone_per_round": args.standalone, "supernet_steps_per_round":
            args.supernet_steps, "controller_batch_size": int(e.controller_batch_size),
            "preset_epoch": {"supernet_steps": epoch_steps,
                             "controller_steps": int(e.controller_steps)},
            "limit_train_batches": args.limit_train_batches, "overrides": args.overrides,
            "child_recipe": {k: child_cfg.child[k] for k in ("epochs", "batch_size",
                                                             "train_subset")},
            "warm_up": "2 controller steps, 2 supernet steps, 1 standalone child",
            "supernet": "untrained (speed does not depend on the weights)",
        },
    }
    log.info("shared weights: %.2f arch/s; standalone children: %.4f arch/s; ratio %.1fx",
             shared_rate, standalone_rate, report["ratio"])
    log.info("with the supernet's training charged (preset epoch: %d supernet steps, %d "
             "controller steps): %.2f arch/s, ratio %.1fx", epoch_steps, e.controller_steps,
             amortised, report["amortised_ratio"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    shutil.rmtree(tmp, ignore_errors=True)


def markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    return "\n".join([
        "# ENAS speed: architectures evaluated per second",
        "",
        f"{c['machine']}, {c['device']}, {c['threads']} thread(s); {c['rounds']} alternating "
        f"rounds of {c['shared_per_round']} shared-weight scores ({c['controller_batch_size']} "
        f"validation images each), {c['supernet_steps_per_round']} supernet steps and "
        f"{c['standalone_per_round']} standalone children "
        f"({c['child_recipe']['epochs']} epoch x {c['child_recipe']['train_subset']} images)."
        f" Warm-up: {c['warm_up']}.",
        "",
        "| | arch/s | ratio to standalone |",
        "|---|---|---|",
        f"| shared weights (controller step) | {report['shared_arch_per_s']:.2f} | "
        f"{report['ratio']:.1f}x |",
        f"| shared weights, supernet training charged ({c['preset_epoch']['supernet_steps']} "
        f"steps per {c['preset_epoch']['controller_steps']} scores) | "
        f"{report['shared_amortised_arch_per_s']:.2f} | {report['amortised_ratio']:.1f}x |",
        f"| standalone children | {report['standalone_arch_per_s']:.4f} | 1x |",
        "",
        f"Median ratio over rounds: {report['per_round_ratio_median']:.1f}x; one supernet step: "
        f"{report['supernet_step_seconds']:.3f} s.",
        "",
    ])


if __name__ == "__main__":
    main()
