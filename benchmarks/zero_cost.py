"""Zero-cost proxies on the tabular benchmarks: do scores at initialisation rank architectures?

Scores (``--tables``, default both): every distinct architecture of a table
(``benchmarks/tabular/<name>.jsonl``, made by ``tabular/make_table.py``) is
built exactly as the table's children were (``make_table.SPACES``: the same
space, network class and model settings; one image channel, ten classes) and
scored by each proxy of :mod:`nas_lightning.proxies` at initialisation, for
``--seeds`` initialisations (``torch.manual_seed(s)`` before building, as the
search's evaluator seeds a child; seed 0 is the initialisation the table's
children were trained from). The batch is fixed: the first ``--batch``
images of the training split of the datamodule the tables were trained on
(``EmbeddedFashionMNIST`` with ``make_table.RECIPE``'s split), normalised as
in training. Reported per table and proxy: Kendall tau-b and Spearman of the
mean score over seeds against the table's ``val_acc`` and ``test_acc``; the
same statistics between every two seeds (how much the score depends on the
initialisation); and the time to score one architecture once. The table's
own ``val_acc`` against ``test_acc`` is the reference: no proxy of the
validation accuracy can rank the test accuracy much better than it.

Filter (``--filter``): for each table and proxy whose Kendall tau-b against
``val_acc`` is at least ``--min-kendall``, random search and evolution (the
presets of ``strategy_efficiency.py``, driven by its ``run``) ask ``k``
proposals per child and train only the best-scored one (a table lookup), at
each budget. The score of a proposal is its initialisation-0 score: what a
user who scores a network, then trains that same network, sees.

Usage (from the repository root; one thread)::

    nice -n 10 python benchmarks/zero_cost.py --tables nasnet_b1 nas_rl_l3 --seeds 3
    nice -n 10 python benchmarks/zero_cost.py --filter --tables nasnet_b1 nas_rl_l3

Writes ``benchmarks/results/zero_cost_<tables>.json`` / ``.md`` (scores) and
``zero_cost_filter_<tables>.json`` / ``.md`` (filter, reading the scores file).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE / "tabular"):  # the benchmarks are scripts, not a package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import make_table  # noqa: E402
from strategy_efficiency import PRESETS, Table, bootstrap_difference, run  # noqa: E402

from nas_lightning.core.ranks import kendall_tau_b, spearman  # noqa: E402
from nas_lightning.proxies import PROXIES, score  # noqa: E402
from nas_lightning.strategies.prefilter import Prefilter  # noqa: E402

RESULTS = HERE / "results"
Batch = tuple[torch.Tensor, torch.Tensor]


# -- scores -----------------------------------------------------------------
def fixed_batch(size: int = 64) -> Batch:
    """The first ``size`` training images of the tables' datamodule, normalised."""
    return make_table.datamodule().fixed_batch(size)


def architectures(name: str) -> tuple[list[dict[str, Any]], Any]:
    """One row per distinct architecture of table ``name`` (its ``arch`` order) and the space."""
    lines = (HERE / "tabular" / f"{name}.jsonl").read_text().splitlines()
    make_space, _, _, canonical, _ = make_table.SPACES[name]
    rows: dict[int, dict[str, Any]] = {}
    for row in map(json.loads, lines[1:]):
        rows.setdefault(row["arch"], {**row, "actions": list(canonical(tuple(row["actions"])))})
    return [rows[a] for a in sorted(rows)], make_space()


def score_table(
    name: str,
    proxies: Sequence[str],
    seeds: int,
    batch: Batch,
    limit: int | None = None,
) -> dict[str, Any]:
    """Every proxy's score of every architecture of table ``name``, per initialisation seed."""
    rows, space = architectures(name)
    rows = rows[:limit]
    _, network, model, _, _ = make_table.SPACES[name]
    scores = {p: [[0.0] * seeds for _ in rows] for p in proxies}
    seconds = {p: 0.0 for p in ["build", *proxies]}
    for a, row in enumerate(rows):
        genotype = space.decode(tuple(row["actions"]))
        for s in range(seeds):
            start = time.perf_counter()
            torch.manual_seed(s)
            net = network(genotype, in_channels=1, num_classes=10, **model)
            seconds["build"] += time.perf_counter() - start
            for p in proxies:
                start = time.perf_counter()
                scores[p][a][s] = score(p, net, batch)
                seconds[p] += time.perf_counter() - start
        if (a + 1) % 50 == 0:
            print(f"{name}: {a + 1}/{len(rows)}", file=sys.stderr, flush=True)
    scored = len(rows) * seeds
    return {
        "name": name,
        "architectures": [
            {k: row[k] for k in ("arch", "actions", "val_acc", "test_acc", "params")}
            for row in rows
        ],
        "scores": scores,  # proxy -> per architecture, per seed
        "ms_per_score": {p: 1000 * t / scored for p, t in seconds.items()},
    }


def correlations(table: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per proxy: rank correlations of the mean score with val/test, and seed to seed."""
    val = [r["val_acc"] for r in table["architectures"]]
    test = [r["test_acc"] for r in table["architectures"]]
    out = {"table val_acc": {"kendall_test": kendall_tau_b(val, test),
                             "spearman_test": spearman(val, test)}}
    for proxy, per_arch in table["scores"].items():
        values = np.asarray(per_arch, dtype=float)  # (archs, seeds)
        with np.errstate(invalid="ignore"):
            mean = values.mean(1)
        pairs = list(itertools.combinations(range(values.shape[1]), 2))
        best = int(np.argmax(mean))
        out[proxy] = {
            "kendall_val": kendall_tau_b(mean, val),
            "spearman_val": spearman(mean, val),
            "kendall_test": kendall_tau_b(mean, test),
            "spearman_test": spearman(mean, test),
            "seed_kendall": float(np.mean([kendall_tau_b(values[:, s], values[:, t])
                                           for s, t in pairs])) if pairs else float("nan"),
            "seed_spearman": float(np.mean([spearman(values[:, s], values[:, t])
                                            for s, t in pairs])) if pairs else float("nan"),
            "best_scored_val_acc": val[best],
            "best_scored_val_rank": int(sum(v > val[best] for v in val)) + 1,
        }
    return out


def scores_report(results: dict[str, Any]) -> str:
    lines = [
        "# Zero-cost proxies on the tabular benchmarks (generated by benchmarks/zero_cost.py)",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{results['seeds']} initialisations per architecture, a fixed batch of "
        f"{results['batch']} embedded Fashion-MNIST training images; correlations of the mean "
        f"score over initialisations; seed to seed: mean over pairs of initialisations. "
        f"Time: one score of one architecture, {results['machine']}.",
        "",
    ]
    for table in results["tables"]:
        corr, n = table["correlations"], len(table["architectures"])
        vals = [r["val_acc"] for r in table["architectures"]]
        lines += [
            f"## {table['name']}: {n} architectures",
            "",
            f"val_acc: best {max(vals):.4f}, mean {np.mean(vals):.4f}. Reference: the table's "
            f"val_acc against its test_acc, Kendall {corr['table val_acc']['kendall_test']:.3f}, "
            f"Spearman {corr['table val_acc']['spearman_test']:.3f}.",
            "",
            "| proxy | Kendall val | Spearman val | Kendall test | Spearman test "
            "| seed-to-seed Kendall | seed-to-seed Spearman | best-scored arch: val_acc (rank) "
            "| ms per score |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for proxy in table["scores"]:
            c = corr[proxy]
            lines.append(
                f"| {proxy} | {c['kendall_val']:.3f} | {c['spearman_val']:.3f} "
                f"| {c['kendall_test']:.3f} | {c['spearman_test']:.3f} "
                f"| {c['seed_kendall']:.3f} | {c['seed_spearman']:.3f} "
                f"| {c['best_scored_val_acc']:.4f} ({c['best_scored_val_rank']}/{n}) "
                f"| {table['ms_per_score'][proxy]:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


# -- the filter ---------------------------------------------------------------
class RecordedTable(Table):
    """A table that remembers the children trained (queried), in order."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.trained: list[tuple[int, ...]] = []

    def observe(self, actions: Sequence[int], rng: np.random.Generator) -> float:
        self.trained.append(tuple(actions))
        return super().observe(actions, rng)


def best_found(problem: RecordedTable, budget: int) -> tuple[float, float]:
    """val_acc and test_acc of the best-validated child of the first ``budget`` trained."""
    rows = [problem.rows[a] for a in problem.trained[:budget]]
    best = max(rows, key=lambda r: r["val_acc"])  # the first of equals, as ``run`` keeps
    return best["val_acc"], best["test_acc"]


def filtered(factory: Callable, k: int, problem: Table, arch_scores: Sequence[float]) -> Callable:
    """A strategy factory whose strategies keep the best-scored of ``k`` proposals."""

    def score_of(actions: tuple[int, ...]) -> float:
        return arch_scores[problem.rows[actions]["arch"]]

    return lambda space, seed, budget: Prefilter(
        factory(space, seed, budget), lambda p: score_of(tuple(p.actions)), k)


def filter_table(
    name: str,
    proxy_scores: dict[str, list[float]],
    ks: Sequence[int],
    budgets: Sequence[int],
    seeds: int,
    strategies: Sequence[str] = ("random", "evolution"),
) -> dict[str, Any]:
    """Best val/test accuracy found by each strategy, plain and filtered, per budget and seed.

    ``proxy_scores``: proxy -> one score per architecture (the table's ``arch`` order).
    """
    problem = RecordedTable(HERE / "tabular" / f"{name}.jsonl")
    variants: list[tuple[str, str | None, int]] = [("plain", None, 1)]
    variants += [(f"{p} k={k}", p, k) for p in proxy_scores for k in ks]
    found: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {}
    for strategy in strategies:
        _, factory, by_budget = PRESETS[strategy]
        found[strategy] = {}
        for label, proxy, k in variants:
            per_budget: dict[str, dict[str, list[float]]] = {
                str(b): {"val": [], "test": []} for b in budgets}
            for b in budgets if by_budget else [max(budgets)]:
                for seed in range(seeds):
                    make = factory
                    if proxy is not None:
                        make = filtered(factory, k, problem, proxy_scores[proxy])
                    problem.trained = []
                    curve = run(make, problem, seed, b)["curve"]
                    for read in [b] if by_budget else budgets:
                        val, test = best_found(problem, read)
                        if abs(val - curve[read - 1]) > 1e-12:
                            raise RuntimeError(f"{label}: best {val} != run's {curve[read - 1]}")
                        per_budget[str(read)]["val"].append(val)
                        per_budget[str(read)]["test"].append(test)
            found[strategy][label] = per_budget
    return {"name": name, "optimum": problem.optimum, "found": found,
            "best_test": max(r["test_acc"] for r in problem.rows.values())}


def filter_report(results: dict[str, Any]) -> str:
    lines = [
        "# Zero-cost filter on the tabular benchmarks (generated by benchmarks/zero_cost.py)",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{results['seeds']} seeds per strategy, variant and budget. A filtered variant asks "
        "k proposals per child and trains (looks up) only the one with the best "
        "initialisation-0 proxy score. Cell: mean best val_acc (test_acc of that child), then "
        "the difference to the plain strategy [95% bootstrap interval]; **bold** where the "
        "interval excludes 0.",
        "",
    ]
    for table in results["tables"]:
        lines += [f"## {table['name']} (best val_acc {table['optimum']:.4f}, best test_acc "
                  f"{table['best_test']:.4f})", ""]
        if not table["proxies"]:
            lines += [f"No proxy reaches Kendall {results['min_kendall']} on this table.", ""]
            continue
        budgets = results["budgets"]
        for strategy, variants in table["found"].items():
            lines += [f"### {strategy}", "",
                      "| variant | " + " | ".join(f"{b} children" for b in budgets) + " |",
                      "|---" * (len(budgets) + 1) + "|"]
            plain = variants["plain"]
            for label, per_budget in variants.items():
                cells = []
                for b in budgets:
                    got = per_budget[str(b)]
                    cell = f"{np.mean(got['val']):.4f} ({np.mean(got['test']):.4f})"
                    if label != "plain":
                        for key in ("val", "test"):
                            d, lo, hi = bootstrap_difference(got[key], plain[str(b)][key])
                            text = f"{key} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                            cell += "<br>" + (f"**{text}**" if lo > 0 or hi < 0 else text)
                    cells.append(cell)
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=["nasnet_b1", "nas_rl_l3"],
                        choices=sorted(make_table.SPACES))
    parser.add_argument("--proxies", nargs="+", default=list(PROXIES), choices=list(PROXIES))
    parser.add_argument("--seeds", type=int, default=3, help="initialisations per architecture")
    parser.add_argument("--batch", type=int, default=64, help="images in the fixed batch")
    parser.add_argument("--limit", type=int, default=None,
                        help="score only the first N architectures of each table (timing)")
    parser.add_argument("--filter", action="store_true",
                        help="run the filter on the scores written by a run without --filter")
    parser.add_argument("--scores", type=Path, default=None,
                        help="--filter: the scores JSON (default: zero_cost_<tables>.json)")
    parser.add_argument("--min-kendall", type=float, default=0.3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--filter-seeds", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    suffix = "_".join(args.tables)
    command = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    scores_path = RESULTS / f"zero_cost_{suffix}.json"
    if args.filter:
        scores_path = args.scores or scores_path
        scored = {t["name"]: t for t in json.loads(scores_path.read_text())["tables"]}
        tables = []
        for name in args.tables:
            corr = scored[name]["correlations"]
            chosen = {p: [row[0] for row in scored[name]["scores"][p]]
                      for p in scored[name]["scores"]
                      if corr[p]["kendall_val"] >= args.min_kendall}
            start = time.process_time()
            result = filter_table(name, chosen, args.ks, args.budgets, args.filter_seeds)
            print(f"{name}: {time.process_time() - start:.1f} CPU s", file=sys.stderr)
            tables.append({**result, "proxies": sorted(chosen)})
        results: dict[str, Any] = {
            "command": command, "seeds": args.filter_seeds, "budgets": args.budgets,
            "ks": args.ks, "min_kendall": args.min_kendall, "tables": tables}
        out, text = RESULTS / f"zero_cost_filter_{suffix}", filter_report(results)
    else:
        batch = fixed_batch(args.batch)
        tables = []
        for name in args.tables:
            table = score_table(name, args.proxies, args.seeds, batch, args.limit)
            table["correlations"] = correlations(table)
            tables.append(table)
        results = {
            "command": command, "seeds": args.seeds, "batch": args.batch,
            "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread, CPU",
            "tables": tables}
        out, text = scores_path.with_suffix(""), scores_report(results)
    if args.limit is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results) + "\n")
        out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
