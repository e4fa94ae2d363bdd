"""NSGA-II's population sized to the budget, its uniform crossover's swapping_prob, and checks."""

from __future__ import annotations

import pytest

from nas_lightning.errors import ConfigError
from nas_lightning.presets import make_strategy
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import NSGA2
from nas_lightning.strategies.optuna_samplers import nsga2_population


def space() -> ListSpace:
    return ListSpace([("width", [8, 16, 32, 64]), ("depth", [1, 2, 3]), ("op", ["a", "b"])])


@pytest.mark.parametrize(
    "budget, population", [(1, 3), (25, 3), (100, 3), (399, 3), (400, 4), (1000, 10), (9000, 50)]
)
def test_the_preset_keeps_a_small_population(budget, population):
    assert nsga2_population(budget) == population
    assert make_strategy("nsga2", space(), budget=budget).population_size == population


def test_divisor_and_floor_size_the_population():
    assert nsga2_population(100, divisor=5, low=8) == 20  # the previous default
    assert nsga2_population(25, divisor=5, low=8) == 8
    strategy = make_strategy(
        "nsga2",
        space(),
        budget=100,
        overrides=["strategy.population_divisor=10", "strategy.min_population=4"],
    )
    assert strategy.population_size == 10
    by_budget = NSGA2(space(), population_size=None, budget=30, population_divisor=10)
    assert by_budget.population_size == 3
    assert NSGA2(space(), population_size=7, budget=30).population_size == 7  # given: kept


def test_swapping_prob_reaches_optunas_sampler():
    strategy = NSGA2(space(), population_size=4, swapping_prob=0.25, seed=0)
    sampler = strategy._make_sampler(0)
    assert sampler._child_generation_strategy._swapping_prob == 0.25
    for _ in range(12):  # three generations of children bred with it
        p = strategy.ask()
        strategy.tell(p, p.genotype["width"] * p.genotype["depth"] / 192)
    assert len(strategy.study.trials) >= 12


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"population_divisor": 0}, "population_divisor"),
        ({"population_divisor": 2.5}, "population_divisor"),
        ({"min_population": 1}, "min_population"),
        ({"min_population": True}, "min_population"),
        ({"swapping_prob": 1.5}, "swapping_prob"),
        ({"swapping_prob": -0.1}, "swapping_prob"),
    ],
)
def test_bad_settings_are_one_line_config_errors(kwargs, key):
    with pytest.raises(ConfigError, match=key) as info:
        NSGA2(space(), population_size=None, budget=100, **kwargs)
    assert "\n" not in str(info.value)


def test_a_population_from_the_budget_needs_a_budget():
    with pytest.raises(ConfigError, match="budget"):
        NSGA2(space(), population_size=None)
