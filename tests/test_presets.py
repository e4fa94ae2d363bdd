"""Named presets from Python mean what the same names mean on the command line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas_lightning.errors import ConfigError
from nas_lightning.presets import PRESETS, make_strategy, strategy_config
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import PPO, RegularizedEvolution, Reinforce


def space() -> ListSpace:
    return ListSpace([(f"d{i}", range(4)) for i in range(5)])


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_matches_the_cli_config(name):
    preset = PRESETS[name]
    overrides = [f"strategy={preset.strategy}", "search.num_children=60"]
    if preset.controller:
        overrides.append(f"controller={preset.controller}")
    cli = compose_config("search", overrides)
    strategy_node = OmegaConf.to_container(cli.strategy, resolve=True)
    assert OmegaConf.to_container(strategy_config(name, budget=60)) == strategy_node


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_builds_and_proposes_the_same_sequence(name):
    a = make_strategy(name, space(), budget=40, seed=3)
    b = instantiate(strategy_config(name, budget=40))(space=space(), seed=3)
    for _ in range(6):
        pa, pb = a.ask(), b.ask()
        assert pa.actions == pb.actions
        a.tell(pa, sum(pa.actions) / 15)
        b.tell(pb, sum(pb.actions) / 15)


def test_paper_presets_keep_the_papers_values():
    nasnet = make_strategy("ppo_nasnet", space())
    assert isinstance(nasnet, PPO) and not nasnet.normalize_advantage
    assert nasnet.optimizer.param_groups[0]["lr"] == 3.5e-4 and nasnet.entropy_weight == 1e-5
    assert (nasnet.batch_size, nasnet.controller.hidden) == (10, 100)
    nas_rl = make_strategy("reinforce_nas_rl", space())
    assert isinstance(nas_rl, Reinforce) and not nas_rl.normalize_advantage
    assert nas_rl.optimizer.param_groups[0]["lr"] == 6e-4 and nas_rl.entropy_weight == 0.0
    assert (nas_rl.controller.hidden, nas_rl.controller.num_layers) == (35, 2)
    amoeba = make_strategy("evolution_amoebanet", space(), budget=30)
    assert (amoeba.population_size, amoeba.sample_size) == (100, 25)


@pytest.mark.parametrize(
    "budget, population, sample",
    [(25, 8, 4), (50, 10, 5), (100, 20, 10), (200, 40, 20), (5000, 100, 50)],
)
def test_evolution_is_sized_to_the_budget(budget, population, sample):
    evo = make_strategy("evolution", space(), budget=budget)
    assert isinstance(evo, RegularizedEvolution)
    assert (evo.population_size, evo.sample_size) == (population, sample)
    assert make_strategy("nsga2", space(), budget=budget).population_size == min(
        50, max(3, budget // 100)
    )


def test_overrides_and_bad_names():
    ppo = make_strategy("ppo", space(), overrides=["strategy.lr=0.01", "controller.hidden=8"])
    assert ppo.optimizer.param_groups[0]["lr"] == 0.01 and ppo.controller.hidden == 8
    with pytest.raises(ConfigError, match="unknown preset 'reinforce_fast'"):
        make_strategy("reinforce_fast", space())
    with pytest.raises(ConfigError, match="budget"):
        make_strategy("evolution", space(), budget=0)
    with pytest.raises(ConfigError, match="key=value"):
        make_strategy("ppo", space(), overrides=["strategy.lr"])
    with pytest.raises(ConfigError, match="strategy"):
        make_strategy("ppo", space(), overrides=["strategy.lr=-1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("nonexistent_key=1", r"^nonexistent_key: no such key; preset 'ppo' has strategy\.\{.*lr"),
        ("lr=abc", r"^lr: no such key; did you mean strategy\.lr\?$"),
        ("strategy.nope=1", r"^strategy\.nope: no such key"),
        ("strategy.lr=abc", r"^strategy\.lr: expected a number, got 'abc'$"),
        ("controller.hidden=abc", r"^controller\.hidden: expected a number, got 'abc'$"),
        ("strategy.normalize_advantage=1", r"^strategy\.normalize_advantage: expected true or"),
    ],
)
def test_an_override_the_preset_cannot_take_is_a_one_line_error(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_strategy("ppo", space(), overrides=[override])
    assert "\n" not in str(err.value)


def test_overrides_of_keys_the_preset_has_still_apply():
    ppo = make_strategy("ppo", space(), overrides=["strategy.lr=1e-3", "search.num_children=7"])
    assert ppo.optimizer.param_groups[0]["lr"] == 1e-3
    nsga2 = make_strategy("nsga2", space(), overrides=["strategy.population_size=12"])
    assert nsga2.population_size == 12
    with pytest.raises(ConfigError, match=r"^controller\.hidden: no such key"):
        make_strategy("random", space(), overrides=["controller.hidden=8"])


@pytest.mark.parametrize("seed", ["x", "3", 1.5, 2.0, True, None])
def test_a_seed_that_is_not_an_integer_is_a_one_line_error(seed):
    message = rf"^seed: must be an integer, got {re.escape(repr(seed))}$"
    with pytest.raises(ConfigError, match=message):
        make_strategy("random", space(), seed=seed)


def test_numpy_integer_seeds_are_integers():
    a = make_strategy("random", space(), seed=np.int64(4))
    b = make_strategy("random", space(), seed=4)
    assert a.ask().actions == b.ask().actions
