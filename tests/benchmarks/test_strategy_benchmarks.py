"""The synthetic problems of benchmarks/strategy_efficiency.py: sizes, optima, noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import load_benchmark

bench = load_benchmark("strategy_efficiency")


def test_every_big_problem_has_over_ten_thousand_architectures_and_a_role():
    roles = {role for role, _ in bench.BIG_PROBLEMS.values()}
    assert roles == {"tune", "test"}
    for name, (_, build) in bench.BIG_PROBLEMS.items():
        problem = build()
        assert problem.name == name
        assert problem.space.cardinality() >= 10_000
        rng = np.random.default_rng(0)
        sizes = [len(d.choices) for d in problem.space.decisions]
        grid = rng.integers(0, sizes, (200, len(sizes)))
        values = [problem.reward(tuple(row)) for row in grid]
        assert 0.55 <= min(values) and max(values) <= problem.optimum + 1e-12 <= 0.95 + 1e-12


@pytest.mark.parametrize("make", [
    lambda: bench.NKLandscape("nk", n=5, a=3, k=2, seed=1),
    lambda: bench.RandomNetwork("rn", n=5, a=3, hidden=8, seed=1),
])
def test_best_known_optimum_is_the_true_optimum_on_a_small_space(make):
    problem = make()
    grid = np.array(list(itertools.product(range(3), repeat=5)))
    exact = problem.true_batch(grid).max()
    assert problem.optimum == pytest.approx(exact)
    # one architecture at a time agrees with the batch
    assert problem.reward(tuple(grid[7])) == pytest.approx(problem.true_batch(grid[7:8])[0])


def test_nk_contribution_depends_only_on_the_neighbourhood():
    problem = bench.NKLandscape("nk", n=6, a=3, k=1, seed=3)
    base = np.zeros((1, 6), dtype=np.int64)
    changed = base.copy()
    changed[0, 0] = 2
    affected = {i for i in range(6) if 0 in problem.neighbours[i]}
    index = lambda g: (g[:, problem.neighbours] * problem.weights).sum(-1)[0]  # noqa: E731
    moved = {i for i in range(6) if index(base)[i] != index(changed)[i]}
    assert moved == affected


def test_noisy_search_tells_noise_but_reports_the_true_reward_of_the_best_told_child():
    problem = bench.NKLandscape("nk", n=8, a=3, k=1, seed=3, noise=0.05)
    factory = bench.preset("random")
    a = bench.run(factory, problem, seed=0, budget=30)
    b = bench.run(factory, problem, seed=0, budget=30)
    assert a == b  # the noise is seeded
    # every point of the curve is a true reward of some architecture, not a noisy one
    grid = np.array(list(itertools.product(range(3), repeat=8)))
    truths = set(np.round(problem.true_batch(grid), 12))
    assert all(round(v, 12) in truths for v in a["curve"])
