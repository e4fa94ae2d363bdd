"""How many queries does each strategy need? Mean regret per budget, against random search.

Every strategy runs the search loop's way (one child at a time: ``ask()`` then
``tell()``) for the largest budget on each problem and each seed; the best
reward found after 25/50/100/200 queries gives the regret ``optimum - best``.
Every query counts, repeats included (no cache), as in a loop that trains
every proposal.

Problems:

* ``formula``: 10 decisions of 4 choices (1,048,576 architectures); the reward
  is an accuracy-like chain formula with pairwise interactions between
  neighbouring decisions, scaled to [0.55, 0.95]; the optimum (0.95) is found
  by dynamic programming and checked by brute force.
* ``table``: the committed tabular benchmark (``benchmarks/tabular/*.jsonl``):
  every architecture of a small space trained once; reward = validation
  accuracy; the optimum is the table's best validation accuracy.

Usage (from the repository root)::

    nice -n 10 python benchmarks/strategy_efficiency.py --problems formula --seeds 20
    nice -n 10 python benchmarks/strategy_efficiency.py --problems table \\
        --table benchmarks/tabular/nasnet_b1.jsonl --seeds 20

It writes a JSON file of every run's best-so-far curve and a markdown report.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_lightning.controllers import LSTMController
from nas_lightning.spaces import ListSpace, SearchSpace
from nas_lightning.strategies import PPO, RandomSearch, RegularizedEvolution, Reinforce, Strategy

Factory = Callable[[SearchSpace, int], Strategy]

NASNET_LSTM = functools.partial(LSTMController, hidden=100, layers=1, init_range=0.1)
NAS_RL_LSTM = functools.partial(LSTMController, hidden=35, layers=2, init_range=0.08)
SMALL_LSTM = functools.partial(LSTMController, hidden=32)

# name -> (what it is, factory). Paper presets first; the "fast" RL variants
# and evolution_p20 are scaled to budgets of a few hundred queries, with
# learning rates and entropy weights chosen by a small sweep on the sanity
# formula of tests/test_strategies_sanity.py (a different space, one child at
# a time, 8 seeds), never on these problems.
PRESETS: dict[str, tuple[str, Factory]] = {
    "random": ("uniform sampling", lambda space, seed: RandomSearch(space, seed=seed)),
    "evolution": (
        "regularized evolution, paper: P=100, S=25, aging",
        lambda space, seed: RegularizedEvolution(space, 100, 25, seed=seed),
    ),
    "evolution_p20": (
        "regularized evolution scaled to the budget: P=20, S=5 (S/P as in the paper)",
        lambda space, seed: RegularizedEvolution(space, 20, 5, seed=seed),
    ),
    "ppo": (
        "NASNet: LSTM 100x1, init 0.1, Adam 3.5e-4, entropy 1e-5, EMA 0.95; "
        "batch 10, 4 epochs, clip 0.2",
        lambda space, seed: PPO(
            space,
            NASNET_LSTM,
            lr=3.5e-4,
            entropy_weight=1e-5,
            baseline_decay=0.95,
            batch_size=10,
            epochs=4,
            clip=0.2,
            seed=seed,
        ),
    ),
    "reinforce": (
        "NAS-RL: LSTM 35x2, init 0.08, Adam 6e-4, EMA 0.95, no entropy bonus; per child",
        lambda space, seed: Reinforce(
            space, NAS_RL_LSTM, lr=6e-4, entropy_weight=0.0, baseline_decay=0.95, seed=seed
        ),
    ),
    "ppo_fast": (
        "PPO, LSTM 32x1, Adam 1e-2, entropy 1e-2, EMA 0.95, batch 10, 4 epochs, clip 0.2",
        lambda space, seed: PPO(
            space,
            SMALL_LSTM,
            lr=0.01,
            entropy_weight=0.01,
            baseline_decay=0.95,
            batch_size=10,
            epochs=4,
            clip=0.2,
            seed=seed,
        ),
    ),
    "reinforce_fast": (
        "REINFORCE, LSTM 32x1, Adam 5e-3, entropy 1e-2, EMA 0.95; per child",
        lambda space, seed: Reinforce(
            space, SMALL_LSTM, lr=5e-3, entropy_weight=0.01, baseline_decay=0.95, seed=seed
        ),
    ),
}


class Problem:
    """A space, a reward per action tuple and the known optimum."""

    name: str
    space: SearchSpace
    optimum: float
    description: str

    def reward(self, actions: Sequence[int]) -> float:
        raise NotImplementedError


class ChainFormula(Problem):
    """``0.55 + 0.4 * normalised(sum_i u_i[a_i] + sum_i p_i[a_i, a_{i+1}])``.

    Neighbouring decisions interact (like an op and the input it reads), so a
    good value of one decision depends on the next: not separable, but the
    optimum is exact by dynamic programming along the chain.
    """

    def __init__(self, num: int = 10, size: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.u = rng.random((num, size))
        self.p = rng.random((num - 1, size, size))
        self.name = "formula"
        self.space = ListSpace([(f"d{i}", range(size)) for i in range(num)])
        raw_max, raw_min = self._extreme(max), self._extreme(min)
        self.lo, self.scale = raw_min, raw_max - raw_min
        self.optimum = 0.95
        self.description = (
            f"chain formula, {num} decisions x {size} choices "
            f"({size**num:,} architectures), rewards in [0.55, 0.95]"
        )

    def _raw(self, actions: Sequence[int]) -> float:
        total = sum(self.u[i, a] for i, a in enumerate(actions))
        return total + sum(self.p[i, actions[i], actions[i + 1]] for i in range(len(actions) - 1))

    def _extreme(self, pick: Callable) -> float:
        """Max or min over all action tuples, by dynamic programming along the chain."""
        size = self.u.shape[1]
        best = list(self.u[0])
        for i in range(1, len(self.u)):
            best = [
                self.u[i, b] + pick(best[a] + self.p[i - 1, a, b] for a in range(size))
                for b in range(size)
            ]
        return pick(best)

    def reward(self, actions: Sequence[int]) -> float:
        return 0.55 + 0.4 * (self._raw(actions) - self.lo) / self.scale

    def brute_force_optimum(self) -> float:
        """Every architecture scored at once (numpy), to check the DP."""
        num, size = self.u.shape
        grid = np.array(list(itertools.product(range(size), repeat=num)), dtype=np.int64)
        raw = self.u[np.arange(num), grid].sum(1)
        for i in range(num - 1):
            raw += self.p[i, grid[:, i], grid[:, i + 1]]
        return float(0.55 + 0.4 * (raw.max() - self.lo) / self.scale)


class Table(Problem):
    """A tabular benchmark: the first line describes the space, then one row per architecture."""

    def __init__(self, path: Path) -> None:
        lines = Path(path).read_text().splitlines()
        header = json.loads(lines[0])
        self.space = ListSpace([(name, choices) for name, choices in header["decisions"]])
        self.rows = {tuple(r["actions"]): r for r in map(json.loads, lines[1:])}
        if len(self.rows) != self.space.cardinality():
            raise ValueError(
                f"{path}: {len(self.rows)} rows for {self.space.cardinality()} architectures"
            )
        self.name = "table"
        self.optimum = max(r["val_acc"] for r in self.rows.values())
        self.description = (
            f"{Path(path).name}: {header.get('description', '')} "
            f"({self.space.cardinality()} action tuples)"
        )

    def reward(self, actions: Sequence[int]) -> float:
        return float(self.rows[tuple(actions)]["val_acc"])


def run(factory: Factory, problem: Problem, seed: int, budget: int) -> dict[str, Any]:
    """One sequential search; the best reward found after each query."""
    strategy = factory(problem.space, seed)
    best, curve, seen = -math.inf, [], set()
    for _ in range(budget):
        proposal = strategy.ask()
        reward = problem.reward(proposal.actions)
        strategy.tell(proposal, reward)
        best = max(best, reward)
        curve.append(best)
        seen.add(proposal.actions)
    return {"curve": curve, "distinct": len(seen)}


def t975(df: int) -> float:
    """Student's t 97.5% quantile (Cornish-Fisher; within 1e-3 of tables for df >= 5)."""
    z = 1.959963984540054
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def summarise(regrets: dict[str, list[float]], boot: int = 2000) -> dict[str, dict[str, float]]:
    """Mean regret with a 95% t-interval; ratio to random with a 95% bootstrap interval."""
    rng = np.random.default_rng(0)
    base = np.array(regrets["random"])
    out = {}
    for name, values in regrets.items():
        x = np.array(values)
        half = t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else math.nan
        row = {"mean": float(x.mean()), "ci95": float(half), "n": len(x)}
        if base.mean() > 0:
            xs = rng.choice(x, (boot, len(x))).mean(1)
            bs = rng.choice(base, (boot, len(base))).mean(1)
            ratios = np.where(bs > 0, xs / np.maximum(bs, 1e-12), np.nan)
            row["ratio"] = float(x.mean() / base.mean())
            row["ratio_lo"], row["ratio_hi"] = map(float, np.nanpercentile(ratios, [2.5, 97.5]))
        out[name] = row
    return out


def report(results: dict[str, Any]) -> str:
    """Markdown tables: mean regret ± 95% half-width, and the ratio to random."""
    lines = [
        "# Strategy efficiency (generated by benchmarks/strategy_efficiency.py)",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {results['machine']}; {results['seeds']} seeds per strategy and problem; "
        "one child at a time (ask, tell); every query counts, repeats included.",
        "",
        "Cell: mean regret (optimum - best found) ± 95% t-interval half-width, "
        "then [ratio to random's mean regret, 95% bootstrap interval]; below 1 beats random.",
        "",
    ]
    for problem in results["problems"]:
        budgets = results["budgets"]
        lines += [f"## {problem['name']}: {problem['description']}", ""]
        lines += [f"Optimum: {problem['optimum']:.4f}", ""]
        lines.append("| strategy | " + " | ".join(f"{b} queries" for b in budgets) + " |")
        lines.append("|---" * (len(budgets) + 1) + "|")
        for name in problem["strategies"]:
            cells = []
            for b in budgets:
                s = problem["summary"][str(b)][name]
                cell = f"{s['mean']:.4f} ± {s['ci95']:.4f}"
                if "ratio" in s:
                    cell += f" [{s['ratio']:.2f}, {s['ratio_lo']:.2f}-{s['ratio_hi']:.2f}]"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| strategy | settings | distinct archs in max budget | CPU seconds per run |",
        ]
        lines.append("|---|---|---|---|")
        for name in problem["strategies"]:
            st = problem["stats"][name]
            lines.append(
                f"| {name} | {PRESETS[name][0]} | {st['distinct']:.1f} | {st['seconds']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", default=["formula"], choices=["formula", "table"])
    parser.add_argument("--table", type=Path, default=Path("benchmarks/tabular/nasnet_b1.jsonl"))
    parser.add_argument("--strategies", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/strategy_efficiency"))
    args = parser.parse_args(argv)
    if "random" not in args.strategies:
        args.strategies.insert(0, "random")  # every ratio is to random search
    torch.set_num_threads(1)  # the controller's ops are tiny; threads only contend
    problems: list[Problem] = []
    for name in args.problems:
        if name == "formula":
            formula = ChainFormula()
            checked = formula.brute_force_optimum()
            if abs(checked - formula.optimum) > 1e-9:
                raise RuntimeError(f"DP optimum {formula.optimum} != brute force {checked}")
            problems.append(formula)
        else:
            problems.append(Table(args.table))
    budget = max(args.budgets)
    results: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread "
        "(CPU seconds measured on a shared, heavily loaded 2-core machine)",
        "seeds": args.seeds,
        "budgets": args.budgets,
        "problems": [],
    }
    for problem in problems:
        runs: dict[str, list[dict[str, Any]]] = {}
        stats = {}
        for name in args.strategies:
            start = time.process_time()
            runs[name] = [run(PRESETS[name][1], problem, s, budget) for s in range(args.seeds)]
            seconds = (time.process_time() - start) / args.seeds
            distinct = statistics.mean(r["distinct"] for r in runs[name])
            stats[name] = {"seconds": seconds, "distinct": distinct}
            print(f"{problem.name} {name}: {seconds:.2f} s/run", file=sys.stderr, flush=True)
        summary = {}
        for b in args.budgets:
            regrets = {
                n: [problem.optimum - r["curve"][b - 1] for r in rs] for n, rs in runs.items()
            }
            summary[str(b)] = summarise(regrets)
        results["problems"].append(
            {
                "name": problem.name,
                "description": problem.description,
                "optimum": problem.optimum,
                "strategies": args.strategies,
                "summary": summary,
                "stats": stats,
                # Per strategy, per budget: the regret of each seed (seed order).
                "regrets": {
                    n: {
                        str(b): [round(problem.optimum - r["curve"][b - 1], 6) for r in rs]
                        for b in args.budgets
                    }
                    for n, rs in runs.items()
                },
            }
        )
    suffix = "_".join(args.problems)
    json_path = args.out.with_name(f"{args.out.name}_{suffix}.json")
    md_path = args.out.with_name(f"{args.out.name}_{suffix}.md")
    json_path.write_text(json.dumps(results) + "\n")
    md_path.write_text(report(results) + "\n")
    print(report(results))


if __name__ == "__main__":
    main()
