"""Sanity suite: every strategy on a toy space whose reward is a formula with a known optimum.

A learning strategy must beat random search in expectation over seeds (here:
the mean over fixed seeds, so the test is deterministic), and a search
interrupted after k children and resumed from its saved state must propose
exactly what the uninterrupted search proposes.
"""

from __future__ import annotations

import functools
import statistics

import pytest
import torch

from nas_lightning.controllers import LSTMController
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import PPO, RandomSearch, RegularizedEvolution, Reinforce, Strategy

TARGET = (3, 1, 4, 0, 2, 4)
OPTIMUM = 1.0
CONTROLLER = functools.partial(LSTMController, hidden=32)


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


def make(name: str, seed: int, sequential: bool = False) -> Strategy:
    """Learning rates depend on how many updates the budget allows: one per
    child (sequential REINFORCE) needs a smaller step than one per batch."""
    space = formula_space()
    if name == "random":
        return RandomSearch(space, seed=seed)
    if name == "evolution":
        return RegularizedEvolution(space, population_size=20, sample_size=5, seed=seed)
    if name == "reinforce":
        lr, entropy = (5e-3, 0.01) if sequential else (0.05, 0.0)
        return Reinforce(space, controller=CONTROLLER, lr=lr, entropy_weight=entropy, seed=seed)
    return PPO(space, controller=CONTROLLER, lr=0.02, entropy_weight=0.01, batch_size=10, seed=seed)


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
    """Per strategy: mean best-found regret and mean reward of the last 50 children."""
    result = {}
    for name in ("random", "evolution", "reinforce", "ppo"):
        regrets, late = [], []
        for seed in range(4):
            rewards = search(make(name, seed), budget=200, batch=10)
            regrets.append(OPTIMUM - max(rewards))
            late.append(statistics.mean(rewards[-50:]))
        result[name] = (statistics.mean(regrets), statistics.mean(late))
    return result


@pytest.mark.parametrize("name", ["evolution", "reinforce", "ppo"])
def test_learning_strategies_beat_random(outcomes, name):
    regret, late = outcomes[name]
    random_regret, random_late = outcomes["random"]
    assert regret < random_regret - 0.03, outcomes  # a better best-found architecture
    assert late > random_late + 0.15, outcomes  # and it learned where the good region is


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "ppo"])
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
@pytest.mark.parametrize("name", ["evolution", "reinforce", "ppo"])
def test_learning_strategies_beat_random_one_child_at_a_time(name):
    """The search loop's sequential mode, over more seeds."""
    regrets = {}
    for which in ("random", name):
        regrets[which] = statistics.mean(
            OPTIMUM - max(search(make(which, seed, sequential=True), budget=200, batch=1))
            for seed in range(10)
        )
    assert regrets[name] < regrets["random"] - 0.03, regrets
