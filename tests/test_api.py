"""The one-call Python API: nas_lightning.optimize and the package's exports."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import nas_lightning
from nas_lightning import ListSpace, optimize
from nas_lightning.errors import ConfigError

SPACE = ListSpace([("op", ["a", "b", "c"]), ("width", [1, 2, 3, 4])])


def score(genotype):
    return {"a": 0.1, "b": 0.5, "c": 0.3}[genotype["op"]] + genotype["width"] / 10


def test_optimize_with_the_whole_space_as_budget_finds_the_best():
    result = optimize(score, SPACE, budget=12, strategy="random", seed=3)
    assert len(result.trials) == 12
    assert len({t.actions for t in result.trials}) == 12  # random search does not repeat
    assert result.best.genotype == {"op": "b", "width": 4}
    assert result.best.reward == pytest.approx(0.9)
    assert [t.number for t in result.trials] == list(range(12))


def test_repeats_are_told_their_reward_and_not_evaluated_again():
    calls = []

    def counted(genotype):
        calls.append(tuple(sorted(genotype.items())))
        return score(genotype)

    # a controller that settles fast, without redraws, proposes repeats: each costs no
    # evaluation (the default redraws, then explores: it repeats only an exhausted space)
    result = optimize(counted, SPACE, budget=12, strategy="reinforce", seed=0,
                      overrides=["strategy.lr=0.5", "strategy.dedup_tries=0"], reuse_limit=5)
    assert len(calls) == len(set(calls)) == len(result.trials)
    assert result.reused > 0
    assert len(result.trials) == 12 or result.converged


def test_invalid_architectures_are_told_none_and_never_best():
    result = optimize(lambda g: None if g["op"] == "b" else score(g), SPACE, budget=12,
                      strategy="evolution", seed=0)
    told = [t.reward for t in result.trials]
    assert told.count(None) == 4
    assert result.best.genotype["op"] == "c" and result.best.reward == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no trial has a reward"):
        _ = optimize(lambda g: None, SPACE, budget=2, strategy="random").best


@pytest.mark.parametrize("budget", [0, -1, 2.5, True, "3"])
def test_a_bad_budget_is_one_line(budget):
    with pytest.raises(ConfigError, match=r"^budget: must be an integer >= 1"):
        optimize(score, SPACE, budget=budget)


def test_nan_reward_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        optimize(lambda g: math.nan, SPACE, budget=3, strategy="random")


def test_package_exports_load_on_use_and_keep_import_light():
    assert {"optimize", "make_strategy", "ListSpace", "load_genotype"} <= set(dir(nas_lightning))
    assert nas_lightning.make_strategy.__module__ == "nas_lightning.presets"
    with pytest.raises(AttributeError):
        nas_lightning.nothing_here  # noqa: B018
    fresh = subprocess.run(
        [sys.executable, "-c", "import sys, nas_lightning; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "False"
