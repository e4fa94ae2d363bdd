"""Can ENAS's shared weights be trusted, and does ENAS find good cells?

Takes a finished ENAS run folder (``python search.py experiment=enas``) and:

1. samples ``--cells`` cells uniformly from the run's space (seeded);
2. scores each, and the run's best cell, with the supernet's shared weights on the
   whole validation split (batch statistics, as the run's final candidates);
3. trains each from scratch with the run's standalone child recipe (``child`` and
   ``model`` in the run's config.yaml: the standalone search's proxy training) and
   takes its validation accuracy;
4. reports Kendall's tau-b between shared score and standalone accuracy over all
   scored cells, and the found cell's standalone accuracy against the median and
   best of the first ``--random`` random cells.

Usage (from the repository root)::

    nice -n 10 python benchmarks/enas_quality.py --run runs/search/<run> --cells 16 \\
        --out benchmarks/results/enas_quality.json

``--limit-train-batches 2`` makes a seconds-long smoke run (meaningless figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lightning.child import ChildModule  # noqa: E402
from nas_lightning.enas.module import batch_statistics  # noqa: E402
from nas_lightning.genotypes.base import genotype_from_dict, genotype_to_dict  # noqa: E402
from nas_lightning.search.builders import build, build_partial  # noqa: E402
from nas_lightning.utils import quiet_lightning  # noqa: E402

log = logging.getLogger("enas_quality")


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties in either ranking handled), O(n^2)."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def load_supernet(run: Path, cfg: Any, datamodule: Any) -> torch.nn.Module:
    space = build(cfg.search_space, "search_space")
    supernet = build_partial(
        cfg.enas.supernet, "enas.supernet", num_blocks=space.num_blocks, ops=space.ops,
        combines=space.combines, in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
    )
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    prefix = "supernet."
    supernet.load_state_dict(
        {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    )
    return supernet.eval()


@torch.no_grad()
def shared_score(supernet: torch.nn.Module, genotype: Any, datamodule: Any, batch: int) -> float:
    data = datamodule.data["val"]
    correct = 0
    for start in range(0, len(data), batch):
        x, y = data[torch.arange(start, min(start + batch, len(data)))]
        x = datamodule.normalize(x).contiguous(memory_format=torch.channels_last)
        with batch_statistics(supernet):
            correct += int((supernet(x, genotype).argmax(1) == y).sum())
    return correct / len(data)


def train_standalone(genotype: Any, cfg: Any, datamodule: Any, seed: int, limit: Any) -> float:
    """The standalone search's proxy training of one child; its validation accuracy."""
    pl.seed_everything(seed, workers=True, verbose=False)
    datamodule.seed = seed
    child = cfg.child
    net = build(cfg.model, "model")(
        genotype, in_channels=datamodule.in_channels, num_classes=datamodule.num_classes
    )
    module = ChildModule(
        net,
        num_classes=datamodule.num_classes,
        optimizer=build(child.optimizer, "child.optimizer") if child.get("optimizer") else None,
        scheduler=child.get("scheduler", "cosine"),
        warmup_steps=int(child.get("warmup_steps", 0)),
        label_smoothing=float(child.get("label_smoothing", 0.0)),
        channels_last=bool(child.get("channels_last", True)),
        bn_recalibration_batches=int(child.get("bn_recalibration_batches", 0)),
    )
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_epochs=int(child.epochs), logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_train_batches=limit or child.get("limit_train_batches")
        or 1.0, gradient_clip_val=child.get("gradient_clip_val"),
    )
    trainer.fit(module, datamodule=datamodule)
    return module.val_curve[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished ENAS run folder")
    parser.add_argument("--cells", type=int, default=16, help="random cells (>= 16 for tau)")
    parser.add_argument("--random", type=int, default=8, help="random cells to compare with")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--limit-train-batches", type=int, default=None,
                        help="cap each standalone child's training (smoke runs only)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_lightning()
    torch.set_num_threads(args.threads)

    cfg = OmegaConf.load(args.run / "config.yaml")
    shared_data = build(cfg.dataset, "dataset")
    shared_data.setup("fit")
    child_cfg = OmegaConf.merge(cfg.dataset, {"train_subset": cfg.child.get("train_subset")})
    child_data = build(child_cfg, "dataset")
    child_data.setup("fit")
    supernet = load_supernet(args.run, cfg, shared_data)
    space = build(cfg.search_space, "search_space")
    found = genotype_from_dict(json.loads((args.run / "best.json").read_text())["genotype"])
    rng = random.Random(args.seed)
    cells = [("found", found)] + [
        (f"random{i}", space.decode([rng.randrange(d.size) for d in space.decisions]))
        for i in range(args.cells)
    ]
    rows = []
    for i, (name, genotype) in enumerate(cells):
        start = time.perf_counter()
        score = shared_score(supernet, genotype, shared_data, args.eval_batch_size)
        acc = train_standalone(genotype, cfg, child_data, args.seed + i, args.limit_train_batches)
        rows.append({"name": name, "shared_score": score, "standalone_acc": acc,
                     "seconds": round(time.perf_counter() - start, 2),
                     "genotype": genotype_to_dict(genotype)})
        log.info("%s: shared %.4f, standalone %.4f (%.0fs)", name, score, acc, rows[-1]["seconds"])
    tau = kendall_tau_b([r["shared_score"] for r in rows], [r["standalone_acc"] for r in rows])
    random_accs = [r["standalone_acc"] for r in rows[1 : 1 + args.random]]
    summary = {
        "kendall_tau_b": tau,
        "cells": len(rows),
        "found_standalone_acc": rows[0]["standalone_acc"],
        "random_median": statistics.median(random_accs),
        "random_best": max(random_accs),
        "found_above_median": rows[0]["standalone_acc"] > statistics.median(random_accs),
        "conditions": {
            "machine": platform.platform(), "threads": args.threads,
            "limit_train_batches": args.limit_train_batches, "run": str(args.run),
            "child_recipe": OmegaConf.to_container(cfg.child, resolve=True),
        },
    }
    log.info("Kendall tau-b over %d cells: %.3f", len(rows), tau)
    log.info("found %.4f vs %d random cells: median %.4f, best %.4f", rows[0]["standalone_acc"],
             len(random_accs), summary["random_median"], summary["random_best"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "cells": rows}, indent=2))


if __name__ == "__main__":
    main()
