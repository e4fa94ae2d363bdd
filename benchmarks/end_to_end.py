"""End to end on the real task: does a search pick a better cell than random sampling?

Three searches, each with the same wall-time budget (``search.max_minutes``)
and ``--seeds`` search seeds, pick a cell:

* ``default``: ``python search.py`` as shipped (REINFORCE, one-epoch children);
* ``asha``: the same with ``search.scheduler=asha child.epochs=9`` (rungs at
  1, 3 and 9 epochs; the pick is the best child at the highest rung reached);
* ``random``: ``strategy=random`` with the default children.

Each pick and ``--random`` cells drawn uniformly from the same space are then
trained with one final recipe (``recipe=fashion_mnist_93`` for
``--final-minutes`` of wall time, full Fashion-MNIST) through ``run_train``
(what ``python train.py`` runs); test accuracy of the best-validation
checkpoint, the test set touched once per run. One cell (``--spread-cell``)
is trained with ``--spread-seeds`` seeds: its spread is the noise of one
final training. Each pick is trained with ``--pick-seeds`` seeds and each
random cell with ``--random-seeds`` (default 1 each), scored by the mean of its
runs, so that a bad final run and a bad cell can be told apart; the noise of
one final training is also pooled over every cell trained more than once.
Every job (search or final training) runs in its own process with one torch
thread, ``--lanes`` jobs at once, so that every job has the same share of the
machine: run nothing else beside it.

    python benchmarks/end_to_end.py --search-minutes 6 --final-minutes 4 --seeds 0 1 2
    python benchmarks/end_to_end.py --search-minutes 0.3 --final-minutes 0.2 --seeds 0 \\
        --random 2 --spread-seeds 2 --train-subset 2000 --out /tmp/e2e    # a quick check

The final recipe runs for a fixed wall time, so a cell that trains faster
gets more steps, and two runs of one cell differ with the machine's speed;
``--final-set recipe.minutes=null recipe.epochs=3`` trains every final for
the same epochs instead.

Each finished job is appended to ``<out>.runs.jsonl`` at once; a rerun with the
same settings skips the jobs already there (``--fresh`` starts over), so a
rerun with a larger ``--pick-seeds`` or ``--random-seeds`` trains only the new seeds. Writes
``<out>.json`` and ``<out>.md``. ``--searches-from OTHER.runs.jsonl`` takes the
searches recorded there with the same search settings (``--search-minutes``,
``--set``) and trains only the finals, from the picks' genotypes recorded there
(the searches' run folders need not exist), e.g. the same picks with another final
recipe:

    python benchmarks/end_to_end.py --search-minutes 30 --final-minutes 6 \
        --final-set recipe.minutes=null recipe.epochs=2 \
        --searches-from benchmarks/results/end_to_end_30min.runs.jsonl \
        --out benchmarks/results/end_to_end_30min_epochs
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import transfer_compare  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METHODS: dict[str, list[str]] = {
    "default": [],
    "asha": ["search.scheduler=asha", "child.epochs=9"],
    "random": ["strategy=random"],
}


def search_job(method: str, seed: int, minutes: float, run_dir: Path,
               extra: list[str]) -> dict[str, Any]:
    """One search as a user runs it; its pick is the run's ``best.json``."""
    from nas_lightning.core.records import read_children
    from nas_lightning.genotypes.base import genotype_to_dict, load_genotype

    args = [sys.executable, str(ROOT / "search.py"), f"run_dir={run_dir}", f"seed={seed}",
            "logger=csv", "search.progress=plain", "search.num_children=100000",
            f"search.max_minutes={minutes}", "search.num_threads=1", *METHODS[method], *extra]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env={**os.environ, "WANDB_MODE": "offline"},
                          capture_output=True, text=True)
    record: dict[str, Any] = {"job": "search", "method": method, "seed": seed,
                              "run_dir": str(run_dir),
                              "wall_seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode != 0 or not (run_dir / "best.json").is_file():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        record.update(status="failed", error=f"exit {proc.returncode}: {tail}")
        return record
    children = read_children(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    record.update(
        status="ok",
        children=len(children),
        epochs_trained=sum(len(c.get("val_curve") or []) for c in children),
        best_reward=best.get("reward"),
        best_final_reward=best.get("final_reward"),
        best_index=best.get("index"),
        stopped=summary.get("stopped"),
        genotype=genotype_to_dict(load_genotype(run_dir)),
    )
    return record


def pick_name(method: str, seed: int) -> str:
    """The final-training name of a search's pick."""
    return f"pick_{method}_{seed}"


def pick_ref(search: dict[str, Any], folder: Path) -> str:
    """The genotype reference of a search's pick for ``train.py``: the genotype recorded
    with the search, written to ``folder``, so a search reused from another runs file
    trains without its run folder (older records without one fall back to the folder)."""
    from nas_lightning.genotypes.base import genotype_from_dict, save_genotype

    if search.get("genotype") is None:
        return str(search["run_dir"])
    path = folder / f"{pick_name(search['method'], search['seed'])}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_genotype(genotype_from_dict(search["genotype"]), path)
    return str(path)


def final_job(final: argparse.Namespace, name: str, genotype: str, seed: int,
              run_dir: Path) -> dict[str, Any]:
    """One final training (a failure is recorded, not raised)."""
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    record = transfer_compare.train_one(final, name, genotype, seed, run_dir)
    record["job"] = "final"
    return record


def final_args(args: argparse.Namespace) -> argparse.Namespace:
    """The final recipe, as ``transfer_compare`` trains it."""
    argv = ["--minutes", str(args.final_minutes), "--threads", "1", "--recipe", args.recipe,
            "--dataset", args.dataset, "--data-dir", args.data_dir]
    if args.train_subset:
        argv += ["--train-subset", str(args.train_subset)]
    if args.val_size:
        argv += ["--val-size", str(args.val_size)]
    for override in args.final_set:
        argv += ["--override", override]
    return transfer_compare.parse_args(argv)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two jobs comparable; a rerun reuses only jobs with equal settings."""
    return {"search_minutes": args.search_minutes, "final_minutes": args.final_minutes,
            "recipe": args.recipe, "dataset": args.dataset, "train_subset": args.train_subset,
            "val_size": args.val_size, "random_seed": args.random_seed,
            "search_overrides": list(args.set), "final_overrides": list(args.final_set)}


def search_settings(key: dict[str, Any]) -> dict[str, Any]:
    """The part of the settings a search depends on (the finals' settings are not)."""
    return {k: key.get(k) for k in ("search_minutes", "search_overrides")}


def reused_searches(path: Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished searches recorded in ``path`` with the same search settings as ``key``
    (one per method and seed, the first recorded)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for record in transfer_compare.read_records(path):
        if (record.get("job") == "search" and record.get("status") == "ok"
                and search_settings(record.get("settings") or {}) == search_settings(key)):
            found.setdefault((record["method"], record["seed"]), record)
    return list(found.values())


def summarize(records: list[dict[str, Any]], args: argparse.Namespace,
              random_names: list[str]) -> dict[str, Any]:
    """Per method and seed: the pick's test accuracy against the random cells' median."""
    finals: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:
        if r["job"] == "final" and r["status"] == "ok":
            finals.setdefault(r["cell"], {})[int(r["seed"])] = r

    def seeds_of(cell: str) -> int:
        if cell == args.spread_cell:
            return max(args.random_seeds, args.spread_seeds)
        return args.random_seeds if cell in random_names else args.pick_seeds

    # Each cell's counted runs (seeds 0..seeds_of - 1, in seed order).
    runs: dict[str, dict[str, list[Any]]] = {}
    for cell, by_seed in finals.items():
        kept = [by_seed[k] for k in sorted(by_seed) if k < seeds_of(cell)]
        runs[cell] = {"test_accs": [float(r["test_acc"]) for r in kept],
                      "steps": [r.get("steps") for r in kept]}
    none: dict[str, list[Any]] = {"test_accs": [], "steps": []}

    random_runs = {c: runs[c] for c in random_names if runs.get(c, none)["test_accs"]}
    randoms = {c: statistics.fmean(r["test_accs"]) for c, r in random_runs.items()}
    median = statistics.median(randoms.values()) if randoms else None
    spread_accs = runs.get(args.spread_cell, none)["test_accs"]
    spread = {"cell": args.spread_cell, "test_accs": spread_accs,
              "std": statistics.stdev(spread_accs) if len(spread_accs) > 1 else None,
              "range": max(spread_accs) - min(spread_accs) if len(spread_accs) > 1 else None}
    searches = {(r["method"], r["seed"]): r for r in records if r["job"] == "search"}
    methods: dict[str, Any] = {}
    for method in METHODS:
        rows = []
        for seed in args.seeds:
            s = searches.get((method, seed), {})
            pick = runs.get(pick_name(method, seed), none)
            accs = pick["test_accs"]
            acc = statistics.fmean(accs) if accs else None
            rows.append({
                "seed": seed, "children": s.get("children"),
                "epochs_trained": s.get("epochs_trained"),
                "search_reward": s.get("best_final_reward") if s.get("best_final_reward")
                is not None else s.get("best_reward"),
                "test_acc": acc,
                "test_accs": accs,
                "steps": pick["steps"],
                "margin": None if acc is None or median is None else acc - median,
                "random_beaten": None if acc is None else sum(m < acc for m in randoms.values()),
                "status": s.get("status", "missing"),
            })
        margins = [r["margin"] for r in rows if r["margin"] is not None]
        methods[method] = {
            "rows": rows,
            "beats_median": sum(m > 0 for m in margins),
            "beats_by_spread": sum(m > (spread["range"] or 0.0) for m in margins)
            if spread["range"] is not None else None,
            "mean_test_acc": statistics.fmean(r["test_acc"] for r in rows
                                              if r["test_acc"] is not None)
            if any(r["test_acc"] is not None for r in rows) else None,
            "mean_margin": statistics.fmean(margins) if margins else None,
        }
    return {"random_cells": randoms, "random_runs": random_runs,
            "random_median": median, "spread": spread,
            "noise": pooled_noise([r["test_accs"] for r in runs.values()
                                   if len(r["test_accs"]) > 1]),
            "pick_seeds": args.pick_seeds, "random_seeds": args.random_seeds,
            "methods": methods}


def pooled_noise(groups: list[list[float]]) -> dict[str, Any]:
    """Seed-to-seed noise of one final training, pooled over every cell trained more than once.

    The within-cell standard deviation (squared deviations from each cell's
    own mean over the pooled degrees of freedom), so that differences between
    cells do not count as noise.
    """
    dof = sum(len(g) - 1 for g in groups)
    if dof < 1:
        return {"cells": len(groups), "dof": 0, "std": None}
    squares = sum((a - statistics.fmean(g)) ** 2 for g in groups for a in g)
    return {"cells": len(groups), "dof": dof, "std": (squares / dof) ** 0.5}


def _f(value: Any, fmt: str = ".4f", sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+{fmt}}" if sign else f"{value:{fmt}}"


def _runs(accs: list[float], steps: list[int | None]) -> str:
    """A cell's final runs: test accuracy (training steps) per seed."""
    if len(steps) != len(accs):
        steps = [None] * len(accs)
    runs = (_f(a) + ("" if n is None else f" ({n})") for a, n in zip(accs, steps, strict=True))
    return ", ".join(runs) or "-"


def markdown(result: dict[str, Any]) -> str:
    s, summary = result["settings"], result["summary"]
    spread, picks = summary["spread"], summary.get("pick_seeds", 1)
    noise = summary.get("noise") or {"cells": 0, "dof": 0, "std": None}
    lines = [
        "# End to end: default search vs multi-fidelity search vs random search",
        "",
        f"Each search {s['search_minutes']:g} min of wall time (one torch thread); each pick "
        f"and {len(summary['random_cells'])} random cells trained with `recipe={s['recipe']}` "
        f"for {s['final_minutes']:g} min (one thread) on `{s.get('dataset', 'fashion_mnist')}` "
        f"({s.get('train_subset') or 'all'} training images); test "
        "accuracy of the best-validation checkpoint.",
        "",
        f"Random cells' median: {_f(summary['random_median'])}. Noise of one final training "
        f"({spread['cell']}, {len(spread['test_accs'])} seeds): std {_f(spread['std'])}, "
        f"range {_f(spread['range'])}. Pooled over every cell trained more than once "
        f"({noise['cells']} cells, {noise['dof']} degrees of freedom): std "
        f"{_f(noise['std'])}.",
        "",
        f"Each pick trained with {picks} seed{'s' if picks > 1 else ''}, each random cell with "
        f"{summary.get('random_seeds', 1)}; a cell's test acc is the mean of its runs.",
        "",
        "| method | search seed | children | epochs trained | pick's search reward | "
        "pick's test acc | its runs (steps) | - random median | random cells beaten |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    n_random = len(summary["random_cells"])
    for method, m in summary["methods"].items():
        for r in m["rows"]:
            beaten = "-" if r["random_beaten"] is None else f"{r['random_beaten']}/{n_random}"
            lines.append(
                f"| {method} | {r['seed']} | {r['children'] if r['children'] is not None else '-'}"
                f" | {r['epochs_trained'] if r['epochs_trained'] is not None else '-'} | "
                f"{_f(r['search_reward'])} | {_f(r['test_acc'])} | "
                f"{_runs(r.get('test_accs', []), r.get('steps', []))} | "
                f"{_f(r['margin'], sign=True)} | {beaten} |")
    lines += ["", "| method | mean test acc | mean margin | seeds above the median | "
              "seeds above it by more than the range |", "|---|---|---|---|---|"]
    for method, m in summary["methods"].items():
        runs = len(m["rows"])
        by_spread = "-" if m["beats_by_spread"] is None else f"{m['beats_by_spread']}/{runs}"
        lines.append(f"| {method} | {_f(m['mean_test_acc'])} | {_f(m['mean_margin'], sign=True)} "
                     f"| {m['beats_median']}/{len(m['rows'])} | {by_spread} |")
    lines += ["", "| random cell | test acc (mean over its runs) | its runs (steps) |",
              "|---|---|---|"]
    every = summary.get("random_runs", {})
    for c, a in summary["random_cells"].items():
        cell = every.get(c, {})
        its = _runs(cell.get("test_accs", []), cell.get("steps", []))
        lines.append(f"| {c} | {a:.4f} | {its} |")
    lines += [
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; {result['lanes']} jobs at once; load average "
        f"{result['loadavg_before'][0]:.1f} before, {result['loadavg_after'][0]:.1f} after; "
        f"{result['date']}; {result['wall_seconds'] / 60:.1f} min in all.",
        "",
    ]
    return "\n".join(lines)


def _load(path: Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished jobs recorded with these settings (failed ones run again)."""
    return [r for r in transfer_compare._load_runs(path, key) if r.get("status") == "ok"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-minutes", type=float, default=6.0)
    parser.add_argument("--final-minutes", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds")
    parser.add_argument("--random", type=int, default=8, help="random cells from the space")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--spread-cell", default="random_0",
                        help="the cell trained with several seeds")
    parser.add_argument("--spread-seeds", type=int, default=3)
    parser.add_argument("--random-seeds", type=int, default=1,
                        help="final trainings of each random cell (seeds 0..N-1), "
                             "scored by their mean")
    parser.add_argument("--pick-seeds", type=int, default=1,
                        help="final trainings of each pick (seeds 0..N-1), scored by their mean")
    parser.add_argument("--lanes", type=int, default=2, help="jobs at once")
    parser.add_argument("--recipe", default="fashion_mnist_93")
    parser.add_argument("--dataset", default="fashion_mnist", help="final training's dataset")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="final training on this many images only (quick checks)")
    parser.add_argument("--val-size", type=int, default=None,
                        help="final training's held-out validation images")
    parser.add_argument("--set", nargs="*", default=[], help="overrides of every search")
    parser.add_argument("--final-set", nargs="*", default=[],
                        help="train.py overrides of every final training")
    parser.add_argument("--out", default=str(RESULTS / "end_to_end"))
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "end_to_end"))
    parser.add_argument("--fresh", action="store_true", help="ignore jobs already recorded")
    parser.add_argument("--searches-from", default=None, metavar="RUNS_JSONL",
                        help="reuse the searches recorded in this file with the same "
                             "search settings; train only the finals")
    args = parser.parse_args(argv)
    if args.searches_from and not Path(args.searches_from).is_file():
        parser.error(f"--searches-from: no such file: {args.searches_from}")
    if not (args.search_minutes > 0 and args.final_minutes > 0):
        parser.error("--search-minutes and --final-minutes must be > 0")
    if min(args.random, args.spread_seeds, args.random_seeds, args.pick_seeds, args.lanes) < 1:
        parser.error("--random, --spread-seeds, --random-seeds, --pick-seeds and --lanes "
                     "must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs_path = out.with_name(out.name + ".runs.jsonl")
    key = settings(args)
    if args.fresh and runs_path.exists():
        runs_path.unlink()
    records = _load(runs_path, key)
    if args.searches_from:
        own = {(r["method"], r["seed"]) for r in records if r["job"] == "search"}
        reused = [r for r in reused_searches(Path(args.searches_from), key)
                  if (r["method"], r["seed"]) not in own]
        records += reused
        print(f"{len(reused)} searches reused from {args.searches_from}", flush=True)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder = Path(args.runs_dir) / stamp
    final = final_args(args)
    genotypes = transfer_compare.cells(
        argparse.Namespace(random=args.random, random_seed=args.random_seed,
                           genotype="nasnet_a"), folder / "genotypes")
    random_cells = [(name, ref) for name, role, ref in genotypes if role == "random"]

    def done(job: str, name: str, seed: int) -> bool:
        field = "method" if job == "search" else "cell"
        return any(r["job"] == job and r[field] == name and r["seed"] == seed for r in records)

    def keep(record: dict[str, Any]) -> None:
        record["settings"] = key
        records.append(record)
        with open(runs_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        what = record.get("method", record.get("cell"))
        score = next((record[k] for k in ("test_acc", "best_final_reward", "best_reward")
                      if record.get(k) is not None), None)
        print(f"{record['job']} {what} seed {record['seed']}: {record['status']} "
              f"{'' if score is None else f'{score:.4f}'} {record.get('error', '')}", flush=True)

    load_before, start = os.getloadavg(), time.perf_counter()
    context = multiprocessing.get_context("spawn")
    # A fresh process per job where Python allows it (3.11+): no job inherits another's memory.
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with futures.ProcessPoolExecutor(args.lanes, mp_context=context, **fresh) as pool:
        pending: dict[futures.Future[dict[str, Any]], tuple[str, str, int]] = {}

        submitted: set[tuple[str, int]] = set()

        def submit_final(name: str, ref: str, seed: int) -> None:
            if not done("final", name, seed) and (name, seed) not in submitted:
                submitted.add((name, seed))
                pending[pool.submit(final_job, final, name, ref, seed,
                                    folder / f"{name}_seed{seed}")] = ("final", name, seed)

        def submit_pick(search: dict[str, Any]) -> None:
            ref = pick_ref(search, folder / "genotypes")
            for seed in range(args.pick_seeds):
                submit_final(pick_name(search["method"], search["seed"]), ref, seed)

        for seed in args.seeds:
            for method in METHODS:
                if done("search", method, seed):
                    submit_pick(next(r for r in records if r["job"] == "search"
                                     and r["method"] == method and r["seed"] == seed))
                else:
                    pending[pool.submit(search_job, method, seed, args.search_minutes,
                                        folder / f"search_{method}_{seed}",
                                        list(args.set))] = ("search", method, seed)
        for name, ref in random_cells:
            for seed in range(args.random_seeds):
                submit_final(name, ref, seed)
        spread_ref = dict(random_cells).get(args.spread_cell)
        if spread_ref is not None:
            for seed in range(args.spread_seeds):
                submit_final(args.spread_cell, spread_ref, seed)
        while pending:
            finished, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for job in finished:
                kind, name, seed = pending.pop(job)
                try:
                    record = job.result()
                except Exception as err:  # a crashed job is recorded, the rest go on
                    record = {"job": kind, ("method" if kind == "search" else "cell"): name,
                              "seed": seed, "status": "failed",
                              "error": f"{type(err).__name__}: {err}"}
                keep(record)
                if kind == "search" and record["status"] == "ok":
                    submit_pick(record)
    result = {
        "benchmark": "default vs multi-fidelity vs random search, picks and random cells "
                     "trained with one final recipe",
        "settings": key,
        "summary": summarize(records, args, [name for name, _ in random_cells]),
        "jobs": records,
        "lanes": args.lanes,
        **transfer_compare.run_meta("end_to_end.py", argv, load_before, start, stamp),
    }
    table = markdown(result)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
