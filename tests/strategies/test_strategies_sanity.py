"""Sanity suite: every strategy on a toy space whose reward is a formula with a known optimum.

A learning strategy must beat random search in expectation over seeds (here:
the mean over fixed seeds, so the test is deterministic), and a search
interrupted after k children and resumed from its saved state must propose
exactly what the uninterrupted search proposes.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from nas_lightning.presets import make_strategy
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import Strategy

TARGET = (3, 1, 4, 0, 2, 4)
OPTIMUM = 1.0
LEARNERS = ["evolution", "reinforce", "ppo", "tpe", "nsga2"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A controller's tiny ops run ~10x faster on one thread on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def formula_space() -> ListSpace:
    """5**6 = 15,625 architectures; a user-defined space from (name, choices)."""
    return ListSpace([(f"d{i}", [f"v{j}" for j in range(5)]) for i in range(len(TARGET))])


def formula_reward(genotype: dict) -> float:
    """1 at TARGET, falling linearly with each decision's distance from it (0.0 .. 1.0)."""
    values = [int(genotype[f"d{i}"][1:]) for i in range(len(TARGET))]
    return sum(1 - abs(v - t) / 4 for v, t in zip(values, TARGET, strict=True)) / len(TARGET)


def make(name: str, seed: int, budget: int = 200) -> Strategy:
    """The default preset of each name, sized to the budget (as search.py builds it)."""
    return make_strategy(name, formula_space(), budget=budget, seed=seed)


def search(strategy: Strategy, budget: int, batch: int) -> list[float]:
    """The user's loop: ask, evaluate, tell; returns every reward in order."""
    rewards: list[float] = []
    while len(rewards) < budget:
        proposals = strategy.ask(batch)
        batch_rewards = [formula_reward(p.genotype) for p in proposals]
        strategy.tell(proposals, batch_rewards)
        rewards += batch_rewards
    return rewards


def test_the_optimum_is_known():
    space = formula_space()
    best = space.decode(TARGET)
    assert formula_reward(best) == OPTIMUM
    assert formula_reward(space.decode((0,) * len(TARGET))) < OPTIMUM


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[float, float]]:
    """Per strategy: mean best-found regret and mean reward of the last 50 children.

    One child at a time, as the search loop tells them: the REINFORCE preset
    takes one controller step per tell, sized for that.
    """
    result = {}
    for name in ("random", *LEARNERS):
        regrets, late = [], []
        for seed in range(4):
            rewards = search(make(name, seed), budget=200, batch=1)
            regrets.append(OPTIMUM - max(rewards))
            late.append(statistics.mean(rewards[-50:]))
        result[name] = (statistics.mean(regrets), statistics.mean(late))
    return result


@pytest.mark.parametrize("name", LEARNERS)
def test_learning_strategies_beat_random(outcomes, name):
    regret, late = outcomes[name]
    random_regret, random_late = outcomes["random"]
    assert regret < random_regret - 0.03, outcomes  # a better best-found architecture
    assert late > random_late + 0.15, outcomes  # and it learned where the good region is


@pytest.mark.parametrize("name", ["random", *LEARNERS])
@pytest.mark.parametrize("k", [7, 23])
def test_resume_after_k_children_is_exact(tmp_path, name, k):
    """Interrupt, save with torch.save, resume from torch.load(weights_only=True)."""
    uninterrupted = make(name, seed=7)
    expected = []
    for _ in range(40):
        p = uninterrupted.ask()
        uninterrupted.tell(p, formula_reward(p.genotype))
        expected.append(p)

    first = make(name, seed=7)
    seen = []
    for _ in range(k):
        p = first.ask()
        first.tell(p, formula_reward(p.genotype))
        seen.append(p)
    torch.save(first.state_dict(), tmp_path / "strategy.pt")
    del first
    resumed = make(name, seed=123)
    resumed.load_state_dict(torch.load(tmp_path / "strategy.pt", weights_only=True))
    for _ in range(40 - k):
        p = resumed.ask()
        resumed.tell(p, formula_reward(p.genotype))
        seen.append(p)

    assert [p.genotype for p in seen] == [p.genotype for p in expected]
    assert [p.id for p in seen] == list(range(40))
    best = max(formula_reward(p.genotype) for p in seen)
    assert best == max(formula_reward(p.genotype) for p in expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_learning_strategies_beat_random_at_100_children(name):
    """The budget most users have, over more seeds."""
    regrets = {}
    for which in ("random", name):
        regrets[which] = statistics.mean(
            OPTIMUM - max(search(make(which, seed, budget=100), budget=100, batch=1))
            for seed in range(10)
        )
    assert regrets[name] < regrets["random"] - 0.03, regrets
