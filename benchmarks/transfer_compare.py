"""Benchmark: does a searched cell transfer better than random cells of its space?

The best cell of the default search (``benchmarks/results/default_search_best.json``),
NASNet-A and ``--random`` cells sampled from the default search's space (the
``search_space`` of ``conf/search.yaml``) are each stacked into the same
network and trained with the same recipe (``recipe=fashion_mnist_93`` by
default) for the same wall-clock budget, ``--seeds`` times each, through
``run_train`` (what ``python train.py`` runs). Each run touches the test set
once, at its end.

    python benchmarks/transfer_compare.py                        # 10 min per run, 2 seeds
    python benchmarks/transfer_compare.py --minutes 30 --seeds 3 --random 8
    python benchmarks/transfer_compare.py --minutes 0.2 --random 2 --seeds 1 --train-subset 2000

Every finished run is appended to ``<out>.runs.jsonl`` at once, so an
interrupted comparison loses at most the run in progress; a rerun with the
same settings skips the runs already there (``--fresh`` starts over). The
summary, ``<out>.json`` and ``<out>.md``, gives per cell the mean, spread
(sample standard deviation, min, max) of the test accuracy, the parameters
and multiply-adds, and says whether the searched cell's mean beats the median
of the random cells' means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_GENOTYPE = RESULTS / "default_search_best.json"


def random_genotypes(count: int, seed: int) -> list[Any]:
    """``count`` cells drawn uniformly from the default search's space."""
    from hydra import compose, initialize_config_dir

    from nas_lightning.core.builders import build

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("search")
    space = build(cfg.search_space, "search_space")
    rng = random.Random(seed)
    return [space.decode(space.sample(rng)) for _ in range(count)]


def cells(args: argparse.Namespace, folder: Path) -> list[tuple[str, str, str]]:
    """``(name, role, genotype reference for train.py)`` of every compared cell."""
    from nas_lightning.genotypes.base import save_genotype

    found = [("searched", "searched", str(args.genotype)), ("nasnet_a", "reference", "nasnet_a")]
    folder.mkdir(parents=True, exist_ok=True)
    for i, genotype in enumerate(random_genotypes(args.random, args.random_seed)):
        path = folder / f"random_{i}.json"
        save_genotype(genotype, path)
        found.append((f"random_{i}", "random", str(path)))
    return found


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs comparable; a rerun reuses only runs with equal settings."""
    return {
        "minutes": args.minutes,
        "recipe": args.recipe,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "train_subset": args.train_subset,
        "val_size": args.val_size,
        "threads": args.threads,
        "random_seed": args.random_seed,
        "overrides": list(args.override),
    }


def train_overrides(args: argparse.Namespace, genotype: str, seed: int, run_dir: Path) -> list[str]:
    """The ``train.py`` overrides of one run."""
    data = [f"dataset={args.dataset}"]
    if args.dataset == "fashion_mnist":
        data += [f"dataset.data_dir={args.data_dir}", "dataset.download=false"]
    if args.train_subset:
        data.append(f"dataset.train_subset={args.train_subset}")
    if args.val_size:
        data.append(f"dataset.val_size={args.val_size}")
    return [
        f"genotype={genotype}",
        f"recipe={args.recipe}",
        f"recipe.minutes={args.minutes}",
        *data,
        "train_logger=csv",
        "export.onnx=false",
        "trainer.enable_progress_bar=false",
        f"num_threads={args.threads}",
        f"seed={seed}",
        f"run_dir={run_dir}",
        *args.override,
    ]


def train_one(args: argparse.Namespace, name: str, genotype: str, seed: int,
              run_dir: Path) -> dict[str, Any]:
    """Train one cell once; a failure is recorded, not raised."""
    from hydra import compose, initialize_config_dir

    from nas_lightning.training import run_train

    record: dict[str, Any] = {"cell": name, "seed": seed, "run_dir": str(run_dir)}
    start = time.perf_counter()
    try:
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=train_overrides(args, genotype, seed, run_dir))
        card = run_train(cfg)
    except Exception as err:  # one broken cell must not end the comparison
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        record.update(status="failed", error=f"{type(err).__name__}: {first}")
        return record
    budget = card.get("time_budget") or {}
    record.update(
        status="ok",
        test_acc=card["test_acc"],
        test_acc_flip=card.get("test_acc_flip"),
        best_val_acc=card["best_val_acc"],
        val_curve=card["val_curve"],
        epochs=card["epochs"],
        steps=card["global_step"],
        fit_seconds=card["fit_seconds"],
        wall_seconds=round(time.perf_counter() - start, 2),
        stopped_by_budget=budget.get("stopped_by_budget"),
        params=card["params"],
        macs=card["macs"],
        model=card["model"],
        genotype=card["genotype"],
    )
    return record


def summarize(records: list[dict[str, Any]], roles: dict[str, str]) -> dict[str, Any]:
    """Per-cell statistics and the verdict: searched mean against the random cells' median."""
    per_cell: dict[str, dict[str, Any]] = {}
    for name, role in roles.items():
        runs = [r for r in records if r["cell"] == name and r["status"] == "ok"]
        accs = [float(r["test_acc"]) for r in runs]
        entry: dict[str, Any] = {"role": role, "runs": len(runs),
                                 "failed": sum(r["cell"] == name and r["status"] != "ok"
                                               for r in records)}
        if accs:
            entry.update(
                mean=statistics.fmean(accs),
                std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
                min=min(accs),
                max=max(accs),
                test_accs=accs,
                seeds=[r["seed"] for r in runs],
                params=runs[0]["params"],
                macs=runs[0]["macs"],
                epochs_mean=statistics.fmean(r["epochs"] for r in runs),
            )
        per_cell[name] = entry
    random_means = [c["mean"] for c in per_cell.values() if c["role"] == "random" and "mean" in c]
    searched = next((c for c in per_cell.values() if c["role"] == "searched"), {})
    verdict: dict[str, Any] = {"random_cells": len(random_means)}
    if random_means and "mean" in searched:
        median = statistics.median(random_means)
        ranked = sorted((c["mean"] for c in per_cell.values() if "mean" in c), reverse=True)
        verdict.update(
            random_median=median,
            searched_mean=searched["mean"],
            margin=searched["mean"] - median,
            searched_beats_random_median=searched["mean"] > median,
            searched_rank=ranked.index(searched["mean"]) + 1,
            cells_ranked=len(ranked),
            random_beaten=sum(m < searched["mean"] for m in random_means),
        )
        beats = "BEATS" if verdict["searched_beats_random_median"] else "does NOT beat"
        verdict["text"] = (
            f"The searched cell {beats} the random cells' median: mean test accuracy "
            f"{searched['mean']:.4f} against a median of {median:.4f} over {len(random_means)} "
            f"random cells (margin {verdict['margin']:+.4f}; it beats {verdict['random_beaten']} "
            f"of {len(random_means)}; rank {verdict['searched_rank']} of {len(ranked)} cells)."
        )
    else:
        verdict["text"] = "No verdict: the searched cell or every random cell has no finished run."
    return {"cells": per_cell, "verdict": verdict}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Transfer: searched cell vs NASNet-A vs random cells",
        "",
        f"Each cell stacked as the recipe `{s['recipe']}` builds it, trained for "
        f"{s['minutes']:g} min of wall time per run, {result['seeds']} seed(s) each, on "
        f"`{s['dataset']}`; test accuracy of the best-validation checkpoint, test set touched "
        "once per run.",
        "",
        f"**{result['summary']['verdict']['text']}**",
        "",
        "| cell | role | runs | mean test acc | std | min | max | params | MACs | epochs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in result["summary"]["cells"].items():
        if "mean" not in c:
            lines.append(f"| {name} | {c['role']} | 0 ({c['failed']} failed) | - | - | - | - "
                         "| - | - | - |")
            continue
        lines.append(
            f"| {name} | {c['role']} | {c['runs']} | {c['mean']:.4f} | {c['std']:.4f} | "
            f"{c['min']:.4f} | {c['max']:.4f} | {c['params']:,} | {c['macs'] / 1e6:.1f}M | "
            f"{c['epochs_mean']:.1f} |"
        )
    lines += [
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}, {s['threads']} torch thread(s); load average "
        f"{result['loadavg_before'][0]:.1f} before, {result['loadavg_after'][0]:.1f} after; "
        f"{result['date']}; {result['wall_seconds'] / 60:.1f} min in all.",
        "",
    ]
    return "\n".join(lines)


def _genotype_dict(ref: str) -> dict[str, Any]:
    from nas_lightning.genotypes.base import genotype_to_dict, load_genotype

    return genotype_to_dict(load_genotype(ref))


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a ``runs.jsonl`` file (none if it does not exist)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
    return records


def _load_runs(path: Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in read_records(path) if r.get("settings") == key]


def run_meta(script: str, argv: list[str] | None, load_before: tuple[float, ...],
             start: float, stamp: str) -> dict[str, Any]:
    """What a comparison's result says of how it ran: command, machine, load, time."""
    return {
        "command": f"python benchmarks/{script} "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(time.perf_counter() - start, 1),
        "date": stamp,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="fit budget of each run")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per cell (0, 1, ...)")
    parser.add_argument("--random", type=int, default=5, help="random cells from the space")
    parser.add_argument("--random-seed", type=int, default=0, help="seed of the random cells")
    parser.add_argument("--genotype", default=str(DEFAULT_GENOTYPE), help="the searched cell")
    parser.add_argument("--recipe", default="fashion_mnist_93", help="a conf/recipe preset")
    parser.add_argument("--dataset", default="fashion_mnist", help="a conf/dataset config")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="train on this many images only (quick checks)")
    parser.add_argument("--val-size", type=int, default=None, help="held-out validation images")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--override", action="append", default=[],
                        help="a further train.py override for every run, e.g. model.filters=12")
    parser.add_argument("--out", default=str(RESULTS / "transfer_compare"),
                        help="writes <out>.json, <out>.md and <out>.runs.jsonl")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "transfer"),
                        help="each comparison's run folders go in a dated folder here")
    parser.add_argument("--fresh", action="store_true", help="ignore runs already recorded")
    args = parser.parse_args(argv)
    for key in ("minutes",):
        if not getattr(args, key) > 0:
            parser.error(f"--{key} must be > 0")
    if args.seeds < 1 or args.random < 1:
        parser.error("--seeds and --random must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs_path = out.with_name(out.name + ".runs.jsonl")
    key = settings(args)
    if args.fresh and runs_path.exists():
        runs_path.unlink()
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder = Path(args.runs_dir) / stamp
    compared = cells(args, folder / "genotypes")
    roles = {name: role for name, role, _ in compared}
    current = {name: _genotype_dict(ref) for name, _, ref in compared}
    # A recorded run counts only if it finished, for the same cell (the searched file or
    # the space may have changed since); failed runs are tried again.
    records = [r for r in _load_runs(runs_path, key)
               if r["status"] == "ok" and r["cell"] in roles
               and r["genotype"] == current[r["cell"]]]
    done = {(r["cell"], r["seed"]) for r in records}
    load_before, start = os.getloadavg(), time.perf_counter()
    for seed in range(args.seeds):  # seed-major: a stopped comparison still covers every cell
        for name, _, genotype in compared:
            if (name, seed) in done:
                continue
            record = train_one(args, name, genotype, seed, folder / f"{name}_seed{seed}")
            record["settings"] = key
            records.append(record)
            with open(runs_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            acc = record.get("test_acc")
            print(f"{name} seed {seed}: {record['status']} "
                  f"{'' if acc is None else f'test_acc={acc:.4f}'} {record.get('error', '')}",
                  flush=True)
    result = {
        "benchmark": "searched cell vs NASNet-A vs random cells, same recipe and time budget",
        "settings": key,
        "seeds": args.seeds,
        "summary": summarize(records, roles),
        "runs": records,
        **run_meta("transfer_compare.py", argv, load_before, start, stamp),
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(result["summary"]["verdict"]["text"])
    return result


if __name__ == "__main__":
    main()
