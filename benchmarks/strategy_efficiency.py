"""How many children does each strategy need? Best reward found per budget, against random.

Every strategy is a named preset of :mod:`nas_lightning.presets` (the same
config ``search.py strategy=<name>`` builds), run the search loop's way (one
child at a time: ``ask()`` then ``tell()``) on each problem and seed. For each
budget (25/50/100/200 children) the report gives the mean best reward found
and its difference to random search's with a 95% bootstrap interval. Presets
sized to the budget (evolution, nsga2) are built for each budget; the others
run once for the largest budget. Children are counted as ``search.py``
counts them (``search.repeats``, :mod:`nas_lightning.execution.repeats`): by
default a proposal of an architecture already trained is told its recorded
reward and is not a child (``--repeats train``: every query counts). The
papers' presets and ``random_with_replacement`` train every repeat, as their
experiments do; the default presets of random search, evolution, TPE and
NSGA-II also avoid proposing repeats themselves (``dedup_tries``), and
``random_with_replacement`` shows what random search does without either rule.

Problems (``--problems``; ``big`` is every problem of >= 10,000 architectures,
where 100 children see under 1% of the space; ``tune`` / ``test`` the problems
used to choose the presets' settings / kept only to report on):

* ``nk_tune`` (tune), ``nk_rugged``, ``nk_wide`` (test): NK landscapes
  (:class:`NKLandscape`) of different sizes, ruggedness K and noise.
* ``randnet_tune`` (tune), ``randnet``, ``randnet_noisy`` (test): rewards of a
  fixed random network of the one-hot decisions (:class:`RandomNetwork`), where
  every decision may interact with every other; some with evaluation noise.
* ``formula`` (tune): 10 decisions of 4 choices (1,048,576 architectures); the reward
  is an accuracy-like chain formula with pairwise interactions between
  neighbouring decisions, scaled to [0.55, 0.95]; the optimum (0.95) is found
  by dynamic programming and checked by brute force.
* ``table``: each committed tabular benchmark
  (``benchmarks/tabular/*.jsonl``, made by ``make_table.py``): every
  architecture of a small space trained once; reward = validation accuracy.

Usage (from the repository root; table lookups, no training)::

    nice -n 10 python benchmarks/strategy_efficiency.py --seeds 30
    nice -n 10 python benchmarks/strategy_efficiency.py --problems tune --seeds 10

It writes a JSON file of every seed's best reward per budget and a markdown report.
"""

from __future__ import annotations

import argparse
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

from nas_lightning.execution.repeats import Repeats, proposal_key
from nas_lightning.presets import make_strategy
from nas_lightning.spaces import ListSpace, SearchSpace
from nas_lightning.strategies import Strategy

Factory = Callable[[SearchSpace, int, int], Strategy]


def _with_overrides(name: str, overrides: list[str]) -> Factory:
    """A named preset of :mod:`nas_lightning.presets` with dot-list overrides,
    built for the run's budget."""
    return lambda space, seed, budget: make_strategy(
        name, space, budget=budget, seed=seed, overrides=overrides
    )


def preset(name: str, **overrides: Any) -> Factory:
    """A named preset, with ``strategy.<key>=<value>`` for each keyword."""
    return _with_overrides(name, [f"strategy.{k}={v}" for k, v in overrides.items()])


# name -> (what it is, factory, whether the preset depends on the budget). The
# plain names are the defaults; the suffixed ones the papers' exact settings.
# NSGA-II runs on the scalar reward here (one objective).
PRESETS: dict[str, tuple[str, Factory, bool]] = {
    "random": (
        "uniform sampling without replacement (redraws an architecture already proposed)",
        preset("random"),
        False,
    ),
    "random_with_replacement": (
        "uniform sampling with replacement (repeats are trained again)",
        preset("random", dedup_tries=0),
        False,
    ),
    "evolution": (
        "aging evolution sized to the budget: P = budget/5 (8..100), S = P/2",
        preset("evolution"),
        True,
    ),
    "reinforce": (
        "REINFORCE, LSTM 32x1, Adam 3e-3, replay of 64 with truncated importance weights, "
        "risk-seeking top 20%, 2 steps per child, redraws",
        preset("reinforce"),
        False,
    ),
    "ppo": (
        "PPO, LSTM 32x1, Adam 3e-3, clip 0.2 per update on a replay of 64, risk-seeking "
        "top 20%, 2 epochs per child, redraws",
        preset("ppo"),
        False,
    ),
    "tpe": ("Optuna multivariate TPE, 10 startup trials", preset("tpe"), False),
    "nsga2": ("Optuna NSGA-II, population budget/100 (3..50)", preset("nsga2"), True),
    "evolution_amoebanet": ("AmoebaNet: P=100, S=25", preset("evolution_amoebanet"), False),
    "reinforce_nas_rl": (
        "NAS-RL: LSTM 35x2, Adam 6e-4, EMA 0.95, no entropy, raw advantages; per child",
        preset("reinforce_nas_rl"),
        False,
    ),
    "ppo_nasnet": (
        "NASNet: LSTM 100x1, Adam 3.5e-4, entropy 1e-5, raw advantages, batch 10",
        preset("ppo_nasnet"),
        False,
    ),
}


# Run with every repeat trained as a child (``search.repeats=train``): the
# papers' presets (their experiments set it) and the with-replacement baseline,
# whose point is what training repeats costs. The others run as ``search.py``'s
# default, ``search.repeats=reuse`` (``--repeats`` changes it).
TRAIN_REPEATS = {"random_with_replacement", "evolution_amoebanet", "reinforce_nas_rl",
                 "ppo_nasnet"}


# The baselines every difference is measured against; ``--set`` leaves them alone.
BASELINES = {"random", "random_with_replacement"}


class Problem:
    """A space, a reward per action tuple and the known optimum."""

    name: str
    space: SearchSpace
    optimum: float
    description: str

    noise: float = 0.0  # sd of the Gaussian evaluation noise of a child (reward units)

    def reward(self, actions: Sequence[int]) -> float:
        """The architecture's true reward."""
        raise NotImplementedError

    def observe(self, actions: Sequence[int], rng: np.random.Generator) -> float:
        """What training the child tells the search: the true reward plus noise."""
        value = self.reward(actions)
        return value + float(rng.normal(0.0, self.noise)) if self.noise else value


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
        self.name = Path(path).stem
        self.optimum = max(r["val_acc"] for r in self.rows.values())
        self.description = (
            f"{Path(path).name}: {header.get('description', '')} "
            f"({self.space.cardinality()} action tuples)"
        )

    def reward(self, actions: Sequence[int]) -> float:
        return float(self.rows[tuple(actions)]["val_acc"])


class Synthetic(Problem):
    """A problem whose true rewards are computed for a whole batch at once (numpy)."""

    n: int
    a: int

    def true_batch(self, grid: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reward(self, actions: Sequence[int]) -> float:
        return float(self.true_batch(np.asarray([actions], dtype=np.int64))[0])

    def _best_known(self, rng: np.random.Generator) -> float:
        grid = rng.integers(0, self.a, (50000, self.n))
        values = self.true_batch(grid)
        best = float(values.max())
        for start in grid[np.argsort(values)[-50:]]:
            x, fx = start.copy(), self.true_batch(start[None])[0]
            while True:
                nbrs = np.repeat(x[None], self.n * self.a, 0)
                nbrs[np.arange(self.n * self.a), np.repeat(np.arange(self.n), self.a)] = (
                    np.tile(np.arange(self.a), self.n))
                vals = self.true_batch(nbrs)
                if vals.max() <= fx + 1e-12:
                    break
                x, fx = nbrs[vals.argmax()], vals.max()
            best = max(best, float(fx))
        return best


class NKLandscape(Synthetic):
    """Kauffman's NK landscape over ``n`` decisions of ``a`` choices.

    Decision ``i`` contributes a random value (uniform in [0, 1)) that depends
    on its own choice and on the choices of ``k`` other decisions (its
    "epistatic" neighbours, drawn at random): ``k = 0`` is separable, larger
    ``k`` makes the landscape more rugged. The reward is
    ``0.55 + 0.4 * mean contribution`` with evaluation noise ``noise``
    (Gaussian, standard deviation in reward units) if set. The optimum is
    not known in closed form: ``optimum`` is the best of 50,000 random
    architectures each improved by steepest-ascent hill climbing from the
    best 50 of them (a lower bound).
    """

    def __init__(self, name: str, n: int, a: int, k: int, seed: int,
                 noise: float = 0.0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.a, self.k = n, a, k
        self.neighbours = np.array([
            [i, *rng.choice([j for j in range(n) if j != i], k, replace=False)]
            for i in range(n)
        ], dtype=np.int64)  # (n, k + 1): decision i first
        self.table = rng.random((n, a ** (k + 1)))
        self.weights = a ** np.arange(k, -1, -1)
        self.noise = noise
        self.name = name
        self.space = ListSpace([(f"d{i}", range(a)) for i in range(n)])
        self.optimum = self._best_known(rng)
        self.description = (
            f"NK landscape, {n} decisions x {a} choices ({a**n:,} architectures), "
            f"K={k}" + (f", evaluation noise sd {noise}" if noise else ", no noise")
        )

    def true_batch(self, grid: np.ndarray) -> np.ndarray:
        index = (grid[:, self.neighbours] * self.weights).sum(-1)  # (batch, n)
        return 0.55 + 0.4 * self.table[np.arange(self.n), index].mean(-1)


class RandomNetwork(Synthetic):
    """A reward made by a fixed random two-layer network of the one-hot decisions.

    Every decision can interact with every other through the hidden layer
    (``hidden`` tanh units, weights N(0, 1/fan-in)), unlike NK's fixed
    neighbourhoods; the output, standardised over random architectures and
    divided by 1.5, is squashed by a sigmoid into [0.55, 0.95].
    ``noise`` adds Gaussian evaluation noise (reward units), as retraining a
    child with another seed would. ``optimum``: best known, as for
    :class:`NKLandscape`.
    """

    def __init__(self, name: str, n: int, a: int, hidden: int, seed: int,
                 noise: float = 0.0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.a = n, a
        self.w1 = rng.normal(0.0, 1.0 / math.sqrt(n), (n * a, hidden))
        self.b1 = rng.normal(0.0, 0.5, hidden)
        self.w2 = rng.normal(0.0, 1.0 / math.sqrt(hidden), hidden)
        self.noise = noise
        self.name = name
        self.space = ListSpace([(f"d{i}", range(a)) for i in range(n)])
        grid = rng.integers(0, a, (20000, n))
        raw = self._raw(grid)
        self.center, self.scale = float(raw.mean()), 1.5 * float(raw.std())
        self.optimum = self._best_known(rng)
        self.description = (
            f"random network reward, {n} decisions x {a} choices ({a**n:,} architectures), "
            f"{hidden} hidden units" + (f", evaluation noise sd {noise}" if noise else ", no noise")
        )

    def _raw(self, grid: np.ndarray) -> np.ndarray:
        hot = grid + self.a * np.arange(self.n)  # (batch, n) indices into n * a
        hidden = np.tanh(self.w1[hot].sum(1) + self.b1)
        return hidden @ self.w2

    def true_batch(self, grid: np.ndarray) -> np.ndarray:
        z = (self._raw(grid) - self.center) / self.scale
        return 0.55 + 0.4 / (1.0 + np.exp(-z))


# The big problems (>= 10,000 architectures): settings are tuned on TUNE only and
# reported on every problem; TEST problems are never looked at while tuning.
BIG_PROBLEMS: dict[str, tuple[str, Callable[[], Problem]]] = {
    "formula": ("tune", lambda: ChainFormula()),
    "nk_tune": ("tune", lambda: NKLandscape("nk_tune", n=10, a=4, k=2, seed=101)),
    "nk_rugged": ("test", lambda: NKLandscape("nk_rugged", n=12, a=3, k=4, seed=202)),
    "nk_wide": ("test", lambda: NKLandscape("nk_wide", n=8, a=6, k=1, seed=303,
                                            noise=0.005)),
    "randnet_tune": ("tune", lambda: RandomNetwork("randnet_tune", n=10, a=4, hidden=16,
                                                   seed=606, noise=0.005)),
    "randnet": ("test", lambda: RandomNetwork("randnet", n=9, a=5, hidden=16, seed=404)),
    "randnet_noisy": ("test", lambda: RandomNetwork("randnet_noisy", n=14, a=3, hidden=32,
                                                    seed=505, noise=0.01)),
}


ROLES = {
    "tune": "to choose the presets' settings (and to report)",
    "test": "only to report: never looked at while choosing settings",
    "table": "to report (a small table: random search covers much of it)",
}


def run(factory: Factory, problem: Problem, seed: int, budget: int,
        repeats: str = "reuse", reuse_limit: int = 50,
        marks: Sequence[int] = (25, 50, 100, 200)) -> dict[str, Any]:
    """One sequential search (the loop's way: ask, then tell); best reward after each child.

    ``repeats`` is the search's ``search.repeats`` rule (the same
    :class:`~nas_lightning.execution.repeats.Repeats` the engine uses): with
    ``reuse`` a proposal of an architecture already queried is told its
    reward and does not count as a child; with ``train`` every query counts.
    After ``reuse_limit`` reused proposals in a row the search stops, as the
    engine does; its best stays the best for the rest of the budget. On a
    noisy problem the strategy is told noisy rewards, and the curve holds the
    true reward of the child with the best told reward (what a user who picks
    the best child gets).

    At each of ``marks`` children it records the distinct architectures
    trained so far and the strategy's ``diagnostics()`` (the RL controllers:
    the policy's entropy), where the strategy has that method.
    """
    strategy = factory(problem.space, seed, budget)
    diagnose = getattr(strategy, "diagnostics", None)
    at: dict[str, dict[str, float]] = {}
    rule: Repeats[float] = Repeats(repeats, reuse_limit)
    noise = np.random.default_rng([seed, 7919])
    best_told, best, curve, seen = -math.inf, -math.inf, [], set()
    while len(curve) < budget:
        if rule.converged:  # the search stops; what it has stays for the rest of the budget
            for mark in marks:
                if len(curve) < mark <= budget:
                    at[str(mark)] = {"distinct": len(seen), **(diagnose() if diagnose else {})}
            curve += [best] * (budget - len(curve))
            break
        proposal = strategy.ask()
        key = proposal_key(proposal.genotype, proposal.actions)
        known = rule.reuse(key)
        if known is not None:
            strategy.tell(proposal, known)
            continue
        told = problem.observe(proposal.actions, noise)
        strategy.tell(proposal, told)
        rule.add(key, told)
        if told > best_told:
            best_told = told
            best = problem.reward(proposal.actions) if problem.noise else told
        curve.append(best)
        seen.add(proposal.actions)
        if len(curve) in marks:
            at[str(len(curve))] = {"distinct": len(seen), **(diagnose() if diagnose else {})}
    return {"curve": curve, "distinct": len(seen), "reused": rule.reused, "at": at}


def bootstrap_difference(
    x: Sequence[float], base: Sequence[float], boot: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``x`` minus mean of ``base`` with a 95% percentile bootstrap interval.

    Seeds of different strategies are independent runs, so each side is
    resampled on its own.
    """
    rng = np.random.default_rng(seed)
    x, base = np.asarray(x, dtype=float), np.asarray(base, dtype=float)
    diffs = rng.choice(x, (boot, len(x))).mean(1) - rng.choice(base, (boot, len(base))).mean(1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(x.mean() - base.mean()), float(lo), float(hi)


def summarise(best: dict[str, list[float]], base: str = "random") -> dict[str, dict[str, float]]:
    """Per strategy: mean best-found reward; difference to ``base``'s with a 95% interval."""
    out = {}
    for name, values in best.items():
        diff, lo, hi = bootstrap_difference(values, best[base])
        out[name] = {"mean": float(np.mean(values)), "diff": diff, "lo": lo, "hi": hi}
    return out


def _table(problem: dict[str, Any], budgets: Sequence[int], base: str) -> list[str]:
    """Markdown rows: mean best reward per budget, and the difference to ``base``'s."""
    lines = ["| strategy | " + " | ".join(f"{b} children" for b in budgets) + " |"]
    lines.append("|---" * (len(budgets) + 1) + "|")
    summary = {str(b): summarise(problem["best"][str(b)], base) for b in budgets}
    for name in problem["strategies"]:
        cells = []
        for b in budgets:
            s = summary[str(b)][name]
            if name == base:
                cells.append(f"{s['mean']:.4f}")
                continue
            diff = f"{s['diff']:+.4f} [{s['lo']:+.4f}, {s['hi']:+.4f}]"
            cells.append(f"{s['mean']:.4f}, " + (f"**{diff}**" if s["lo"] > 0 else diff))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def report(results: dict[str, Any]) -> str:
    """Markdown: per problem and budget, best reward found and its difference to random."""
    lines = [
        "# Strategy efficiency (generated by benchmarks/strategy_efficiency.py)",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{results['seeds']} seeds per strategy, problem and budget; one child at a time "
        f"(ask, tell); search.repeats={results.get('repeats', 'train')} for the default "
        f"presets (train for {', '.join(sorted(TRAIN_REPEATS))}): with reuse a proposal "
        "of an architecture already trained is told its reward and is not a child, with "
        "train every query counts. Budget-dependent presets "
        "(evolution, nsga2) are built for each budget; the others run once for the largest "
        "budget and are read at each (they do not depend on it)."
        + (f" Overrides of every strategy but the random baselines: "
           f"`{' '.join(results['overrides'])}`." if results.get("overrides") else ""),
        "",
        "Cell: mean best reward found, then the difference to random search's mean "
        "[95% bootstrap interval]; **bold** where the whole interval is above 0.",
        "",
    ]
    for problem in results["problems"]:
        budgets = results["budgets"]
        lines += [f"## {problem['name']}: {problem['description']}", ""]
        role = problem.get("role", "table")
        lines += [f"Used {ROLES[role]}. Optimum: {problem['optimum']:.4f}"
                  + (" (best known)" if problem.get("estimated") else ""), ""]
        lines += _table(problem, budgets, "random")
        if "random_with_replacement" in problem["strategies"]:
            lines += [
                "",
                "The same runs against random search with replacement (repeats trained "
                "again), to show how much of each difference is only not repeating:",
                "",
                *_table(problem, budgets, "random_with_replacement"),
            ]
        lines += ["", "| strategy | settings | distinct archs at the largest budget "
                  "| reused proposals |"]
        lines.append("|---|---|---|---|")
        for name in problem["strategies"]:
            st = problem["stats"][name]
            lines.append(f"| {name} | {PRESETS[name][0]} | {st['distinct']:.1f} "
                         f"| {st.get('reused', 0):.1f} |")
        with_entropy = [n for n in problem["strategies"]
                        if "entropy" in problem["stats"][n].get("at", {}).get(str(budgets[0]), {})]
        if with_entropy:
            lines += ["", "Policy entropy (nats, mean over seeds) / distinct architectures "
                      "trained, after each budget:", "",
                      "| strategy | " + " | ".join(f"{b} children" for b in budgets) + " |",
                      "|---" * (len(budgets) + 1) + "|"]
            for name in with_entropy:
                at = problem["stats"][name]["at"]
                lines.append(f"| {name} | " + " | ".join(
                    f"{at[str(b)]['entropy']:.2f} / {at[str(b)]['distinct']:.1f}"
                    for b in budgets) + " |")
        lines.append("")
    return "\n".join(lines)


def evaluate(problem: Problem, names: Sequence[str], seeds: int, budgets: Sequence[int],
             repeats: str = "reuse", overrides: Sequence[str] = ()) -> dict:
    """Every strategy on one problem: best reward per budget and seed.

    ``overrides`` (``key=value`` dot-lists, e.g. ``strategy.entropy_weight=0.03``)
    change every strategy but the random baselines.
    """
    best: dict[str, dict[str, list[float]]] = {str(b): {} for b in budgets}
    stats = {}
    top = max(budgets)
    for name in names:
        _, factory, by_budget = PRESETS[name]
        if overrides and name not in BASELINES:
            factory = _with_overrides(name, list(overrides))
        start = time.process_time()
        runs = {}
        rule = "train" if name in TRAIN_REPEATS else repeats
        for b in budgets if by_budget else [top]:
            runs[b] = [run(factory, problem, s, b, rule) for s in range(seeds)]
        for b in budgets:
            rs = runs[b] if by_budget else runs[top]
            best[str(b)][name] = [r["curve"][b - 1] for r in rs]
        stats[name] = {"distinct": statistics.mean(r["distinct"] for r in runs[top]),
                       "reused": statistics.mean(r["reused"] for r in runs[top])}
        at: dict[str, dict[str, float]] = {}
        for b in budgets:  # per budget: mean distinct architectures and diagnostics
            rs = [r["at"][str(b)] for r in (runs[b] if by_budget else runs[top])
                  if str(b) in r["at"]]
            if rs:
                at[str(b)] = {k: statistics.mean(x[k] for x in rs) for k in rs[0]}
        stats[name]["at"] = at
        print(
            f"{problem.name} {name}: {time.process_time() - start:.1f} CPU s",
            file=sys.stderr,
            flush=True,
        )
    return {
        "name": problem.name,
        "role": BIG_PROBLEMS[problem.name][0] if problem.name in BIG_PROBLEMS else "table",
        "estimated": isinstance(problem, Synthetic),
        "description": problem.description,
        "optimum": problem.optimum,
        "strategies": list(names),
        "summary": {b: summarise(v) for b, v in best.items()},
        "stats": stats,
        "best": best,  # per budget, per strategy: each seed's best reward (seed order)
    }


def merge(paths: Sequence[Path], out: Path) -> None:
    """One report from runs of different strategies on the same problems, seeds and budgets."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = parts[0]
    for part in parts[1:]:
        if (part["seeds"], part["budgets"]) != (first["seeds"], first["budgets"]):
            raise ValueError("runs to merge need the same seeds and budgets")
    problems: dict[str, dict[str, Any]] = {}
    for part in parts:
        for prob in part["problems"]:
            into = problems.setdefault(prob["name"], {**prob, "strategies": [], "stats": {}})
            into.setdefault("best", {b: {} for b in prob["best"]})
            for name in prob["strategies"]:
                if name in into["strategies"]:
                    continue  # random runs in every part, identically
                into["strategies"].append(name)
                into["stats"][name] = prob["stats"][name]
                for b in prob["best"]:
                    into["best"][b][name] = prob["best"][b][name]
    order = list(PRESETS)
    for prob in problems.values():
        prob["strategies"].sort(key=order.index)
        prob["summary"] = {b: summarise(v) for b, v in prob["best"].items()}
    results = {
        **first,
        "command": " ; ".join(p["command"] for p in parts),
        "problems": list(problems.values()),
    }
    suffix = "_".join(problems)
    out.with_name(f"{out.name}_{suffix}.json").write_text(json.dumps(results) + "\n")
    out.with_name(f"{out.name}_{suffix}.md").write_text(report(results) + "\n")
    print(report(results))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--problems", nargs="+", default=["big", "table"],
        choices=["big", "tune", "test", "table", *BIG_PROBLEMS],
        help="big: every problem of >= 10,000 architectures (tune + test); table: the "
             "committed tabular benchmarks",
    )
    parser.add_argument(
        "--tables",
        type=Path,
        nargs="+",
        default=sorted(Path(__file__).parent.glob("tabular/*.jsonl")),
    )
    parser.add_argument("--strategies", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--repeats", choices=["reuse", "train"], default="reuse",
                        help="search.repeats of the default presets (see TRAIN_REPEATS)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides for every strategy but the random baselines, "
                             "e.g. strategy.entropy_weight=0.03 (a sweep of one setting)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/strategy_efficiency"))
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="combine the JSON outputs of runs split over processes (--strategies) into one",
    )
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return
    if "random" not in args.strategies:
        args.strategies.insert(0, "random")  # every difference is to random search
    torch.set_num_threads(1)  # the controller's ops are tiny; threads only contend
    problems: list[Problem] = []
    names: list[str] = []
    for name in args.problems:
        if name == "table":
            problems += [Table(t) for t in args.tables if ".partial" not in t.name]
            continue
        names += [big for big, (role, _) in BIG_PROBLEMS.items()
                  if name in (big, role, "big") and big not in names]
    for name in names:
        problem = BIG_PROBLEMS[name][1]()
        if isinstance(problem, ChainFormula):
            checked = problem.brute_force_optimum()
            if abs(checked - problem.optimum) > 1e-9:
                raise RuntimeError(f"DP optimum {problem.optimum} != brute force {checked}")
        problems.append(problem)
    results: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        "seeds": args.seeds,
        "budgets": args.budgets,
        "repeats": args.repeats,
        "overrides": args.set,
        "problems": [evaluate(p, args.strategies, args.seeds, args.budgets, args.repeats,
                              args.set) for p in problems],
    }
    suffix = "_".join(p.name for p in problems)
    if args.strategies != list(PRESETS):
        suffix += "_" + "_".join(args.strategies)
    if args.set:  # one file per value of a sweep
        suffix += "_" + "_".join(o.replace("=", "-") for o in args.set)
    json_path = args.out.with_name(f"{args.out.name}_{suffix}.json")
    md_path = args.out.with_name(f"{args.out.name}_{suffix}.md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results) + "\n")
    md_path.write_text(report(results) + "\n")
    print(report(results))


if __name__ == "__main__":
    main()
