"""Can ENAS's shared weights be trusted, and does ENAS find good cells?

Takes a finished ENAS run folder (``python search.py experiment=enas``) and:

1. samples ``--cells`` cells uniformly from the run's space (seeded: the same
   seed gives the same cells, so runs compare on the same cells);
2. scores each, and the run's best cell, with the supernet's shared weights on the
   whole validation split (batch statistics, as the run's final candidates);
3. trains each from scratch exactly as the standalone search trains a child
   (``python search.py``'s default child recipe, through the search's own runner),
   child ``i`` with seed ``seed + i``, and takes its validation accuracy;
4. reports Kendall's tau-b between shared score and standalone accuracy over the
   random cells (a permutation p-value and a bootstrap 95% interval), and the found
   cell's standalone accuracy against the median and best of the first ``--random``
   random cells.

Standalone accuracies do not depend on the supernet, so they are kept in
``--standalone-cache`` (keyed by genotype, seed and recipe): a second ENAS run on the
same cells only trains its own found cell.

Usage (from the repository root)::

    nice -n 19 python benchmarks/enas_quality.py --run runs/search/<run> --cells 16 \\
        --out benchmarks/results/enas_quality.json

``--limit-train-batches 2`` makes a seconds-long smoke run (meaningless figures,
never cached).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lightning.core.builders import build  # noqa: E402
from nas_lightning.core.ranks import kendall_tau_b  # noqa: E402
from nas_lightning.enas.module import batch_statistics  # noqa: E402
from nas_lightning.enas.search import load_supernet, standalone_search_config  # noqa: E402
from nas_lightning.execution.base import Trial  # noqa: E402
from nas_lightning.execution.runner import make_runner  # noqa: E402
from nas_lightning.genotypes.base import genotype_from_dict, genotype_to_dict  # noqa: E402
from nas_lightning.strategies.base import Proposal  # noqa: E402
from nas_lightning.utils import quiet_lightning  # noqa: E402

log = logging.getLogger("enas_quality")


def tau_statistics(
    x: list[float], y: list[float], seed: int = 0, permutations: int = 10000,
    resamples: int = 2000,
) -> dict[str, float]:
    """Tau-b, its two-sided permutation p-value and a 95% percentile bootstrap interval.

    The p-value is the share of random pairings of the two lists with a tau at
    least as far from 0 as the observed one; the interval resamples cells.
    """
    rng = random.Random(seed)
    tau = kendall_tau_b(x, y)
    shuffled = list(y)
    extreme = 0
    for _ in range(permutations):
        rng.shuffle(shuffled)
        extreme += abs(kendall_tau_b(x, shuffled)) >= abs(tau) - 1e-12
    boot = []
    n = len(x)
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        t = kendall_tau_b([x[i] for i in idx], [y[i] for i in idx])
        if t == t:  # a resample of one repeated cell has no ranking
            boot.append(t)
    boot.sort()
    return {
        "tau_b": tau,
        "p_value": (extreme + 1) / (permutations + 1),
        "ci95": [boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]],
        "cells": n,
    }


@torch.no_grad()
def shared_score(supernet: torch.nn.Module, genotype: Any, datamodule: Any, batch: int) -> float:
    """Accuracy of the sub-graph on the whole validation split (batch statistics)."""
    data = datamodule.data["val"]
    device = next(supernet.parameters()).device
    correct = 0
    for start in range(0, len(data), batch):
        x, y = data[torch.arange(start, min(start + batch, len(data)))]
        x = datamodule.normalize(x.to(device)).contiguous(memory_format=torch.channels_last)
        with batch_statistics(supernet):
            correct += int((supernet(x, genotype).argmax(1) == y.to(device)).sum())
    return correct / len(data)


def recipe_key(cfg: Any) -> str:
    """A short hash of what a standalone child's accuracy depends on besides genotype and seed."""
    parts = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("child", "dataset", "model")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


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
    parser.add_argument("--standalone-cache", type=Path,
                        default=Path("benchmarks/results/enas_standalone.json"),
                        help="standalone accuracies already measured (read and extended)")
    parser.add_argument("--repeat-seed-offset", type=int, default=None,
                        help="also train every cell with seed + this + i: how far two "
                        "standalone trainings of the same cells agree (tau's ceiling)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (and .md)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_lightning()
    torch.set_num_threads(args.threads)

    cfg = OmegaConf.load(args.run / "config.yaml")
    supernet, shared_data = load_supernet(args.run)
    child_cfg = standalone_search_config(cfg, run_dir=str(args.run / "standalone"),
                                         limit_train_batches=args.limit_train_batches)
    runner = make_runner(child_cfg)
    key = recipe_key(child_cfg)
    use_cache = args.limit_train_batches is None
    cache: dict[str, Any] = {}
    if use_cache and args.standalone_cache.is_file():
        cache = json.loads(args.standalone_cache.read_text())
    space = build(cfg.search_space, "search_space")
    found = genotype_from_dict(json.loads((args.run / "best.json").read_text())["genotype"])
    rng = random.Random(args.seed)
    cells = [("found", found)] + [
        (f"random{i}", space.decode([rng.randrange(d.size) for d in space.decisions]))
        for i in range(args.cells)
    ]
    def standalone(name: str, genotype: Any, i: int, seed: int) -> tuple[float, bool]:
        """The cell's standalone accuracy (trained now, or from the cache) and whether cached."""
        entry_key = json.dumps([genotype_to_dict(genotype), seed, key], sort_keys=True)
        if entry_key in cache:
            return cache[entry_key]["val_acc"], True
        result = runner.run(Trial(i, Proposal(i, (), genotype), seed))
        if result.status != "ok":
            raise RuntimeError(f"{name} {result.status}: {result.error}")
        if use_cache:
            cache[entry_key] = {"val_acc": result.val_acc, "seconds": round(result.seconds, 2)}
            if args.standalone_cache.is_file():  # keep what other runs added meanwhile
                cache.update({**json.loads(args.standalone_cache.read_text()), **cache})
            args.standalone_cache.parent.mkdir(parents=True, exist_ok=True)
            args.standalone_cache.write_text(json.dumps(cache, indent=1, sort_keys=True))
        return result.val_acc, False

    rows = []
    for i, (name, genotype) in enumerate(cells):
        start = time.perf_counter()
        score = shared_score(supernet, genotype, shared_data, args.eval_batch_size)
        acc, cached = standalone(name, genotype, i, args.seed + i)
        row = {"name": name, "shared_score": score, "standalone_acc": acc,
               "seed": args.seed + i, "standalone_cached": cached}
        if args.repeat_seed_offset is not None:
            row["repeat_seed"] = args.seed + args.repeat_seed_offset + i
            row["standalone_acc_repeat"], _ = standalone(name, genotype, i, row["repeat_seed"])
        row.update(seconds=round(time.perf_counter() - start, 2),
                   genotype=genotype_to_dict(genotype))
        rows.append(row)
        log.info("%s: shared %.4f, standalone %.4f%s%s (%.0fs)", name, score, acc,
                 " (cached)" if cached else "",
                 f", repeat {row['standalone_acc_repeat']:.4f}" if "repeat_seed" in row else "",
                 row["seconds"])
    random_rows = rows[1:]
    stats = tau_statistics([r["shared_score"] for r in random_rows],
                           [r["standalone_acc"] for r in random_rows], seed=args.seed)
    if args.repeat_seed_offset is not None:
        first = [r["standalone_acc"] for r in random_rows]
        repeat = [r["standalone_acc_repeat"] for r in random_rows]
        mean = [(a + b) / 2 for a, b in zip(first, repeat, strict=True)]
        stats["standalone_repeat"] = {
            "tau_b_between_seeds": tau_statistics(first, repeat, seed=args.seed),
            "mean_abs_difference": statistics.mean(abs(a - b) for a, b in zip(first, repeat,
                                                                              strict=True)),
            "tau_b_shared_vs_seed_mean": tau_statistics(
                [r["shared_score"] for r in random_rows], mean, seed=args.seed),
        }
    tau_all = kendall_tau_b([r["shared_score"] for r in rows], [r["standalone_acc"] for r in rows])
    random_accs = [r["standalone_acc"] for r in rows[1 : 1 + args.random]]
    found_acc = rows[0]["standalone_acc"]
    summary = {
        "kendall_tau_b_random_cells": stats,
        "kendall_tau_b_with_found": tau_all,
        "found_standalone_acc": found_acc,
        "found_shared_score": rows[0]["shared_score"],
        "random_compared": len(random_accs),
        "random_median": statistics.median(random_accs),
        "random_best": max(random_accs),
        "found_above_median": found_acc > statistics.median(random_accs),
        "found_rank_among_all_cells": 1 + sum(r["standalone_acc"] > found_acc for r in rows[1:]),
        "conditions": {
            "machine": platform.platform(), "threads": args.threads,
            "limit_train_batches": args.limit_train_batches, "run": str(args.run),
            "supernet": OmegaConf.to_container(cfg.enas.supernet, resolve=True),
            "enas_epochs": cfg.enas.epochs, "seed": args.seed,
            "child_recipe": OmegaConf.to_container(child_cfg.child, resolve=True),
        },
    }
    log.info("Kendall tau-b over %d random cells: %.3f (p=%.4f, 95%% CI %.3f..%.3f); "
             "with the found cell: %.3f", stats["cells"], stats["tau_b"], stats["p_value"],
             *stats["ci95"], tau_all)
    log.info("found %.4f vs %d random cells: median %.4f, best %.4f", found_acc,
             len(random_accs), summary["random_median"], summary["random_best"])
    if "standalone_repeat" in stats:
        rep = stats["standalone_repeat"]
        log.info("standalone seed vs seed: tau-b %.3f (p=%.4f), mean |difference| %.4f; shared "
                 "vs the two seeds' mean: tau-b %.3f (p=%.4f)",
                 rep["tau_b_between_seeds"]["tau_b"], rep["tau_b_between_seeds"]["p_value"],
                 rep["mean_abs_difference"], rep["tau_b_shared_vs_seed_mean"]["tau_b"],
                 rep["tau_b_shared_vs_seed_mean"]["p_value"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "cells": rows}, indent=2))
        args.out.with_suffix(".md").write_text(markdown(summary, rows))


def markdown(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    s = summary["kendall_tau_b_random_cells"]
    lines = [
        f"# ENAS quality: {summary['conditions']['run']}",
        "",
        f"Kendall tau-b (shared score vs standalone accuracy), {s['cells']} random cells: "
        f"**{s['tau_b']:.3f}** (permutation p = {s['p_value']:.4f}, bootstrap 95% interval "
        f"{s['ci95'][0]:.3f} to {s['ci95'][1]:.3f}); with the found cell: "
        f"{summary['kendall_tau_b_with_found']:.3f}.",
        "",
        f"Found cell, trained from scratch: **{summary['found_standalone_acc']:.4f}**; "
        f"the first {summary['random_compared']} random cells: median "
        f"{summary['random_median']:.4f}, best {summary['random_best']:.4f}.",
        "",
    ]
    rep = s.get("standalone_repeat")
    if rep:
        lines += [
            f"Two standalone trainings of the random cells (different seeds): tau-b "
            f"{rep['tau_b_between_seeds']['tau_b']:.3f} (p = "
            f"{rep['tau_b_between_seeds']['p_value']:.4f}), mean |difference| "
            f"{rep['mean_abs_difference']:.4f}; shared score vs their mean: tau-b "
            f"{rep['tau_b_shared_vs_seed_mean']['tau_b']:.3f} (p = "
            f"{rep['tau_b_shared_vs_seed_mean']['p_value']:.4f}).",
            "",
        ]
    lines += ["| cell | shared score | standalone acc | standalone, second seed |",
              "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['shared_score']:.4f} | {r['standalone_acc']:.4f} | "
              + (f"{r['standalone_acc_repeat']:.4f} |" if "standalone_acc_repeat" in r else "|")
              for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
