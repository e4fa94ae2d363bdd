"""Every strategy through the search loop (search.py's code path), and exact resume.

A search interrupted after k children and resumed must train exactly the
children of the uninterrupted search, in order, and end with the same best.
The resume tests train 8-10 tiny children each, so they are marked slow; the
strategy-level resume tests (no training) run by default in
tests/strategies/test_strategies.py and tests/strategies/test_strategies_sanity.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF, compose_config

from nas_lightning.core.records import read_children
from nas_lightning.execution import evaluator as evaluator_module
from nas_lightning.search.loop import run_search
from nas_lightning.search.resume import resume_config
from nas_lightning.strategies import (
    NSGA2,
    PPO,
    TPE,
    RandomSearch,
    RegularizedEvolution,
    Reinforce,
)

STRATEGY_CLASSES = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "reinforce": Reinforce,
    "ppo": PPO,
    "tpe": TPE,
    "nsga2": NSGA2,
}
# Small enough that a 5-child search crosses every phase: PPO updates after
# children 2 and 4; evolution mutates from child 3 on.
SMALL = {
    "random": [],
    "evolution": ["strategy.population_size=2", "strategy.sample_size=2"],
    "reinforce": [],
    "ppo": ["strategy.batch_size=2", "strategy.epochs=2"],
    "tpe": ["strategy.n_startup_trials=2"],
    "nsga2": ["strategy.population_size=2"],
}
SPACES = sorted(p.stem for p in (CONF / "search_space").glob("*.yaml"))


def actions(result) -> list[list[int]]:
    return [r["actions"] for r in result.records]


def test_strategy_configs_instantiate_with_the_paper_settings(tiny_search_cfg):
    from hydra.utils import instantiate

    from nas_lightning.spaces import NASNetSpace

    cfg = tiny_search_cfg("strategy=ppo_nasnet", "controller=lstm")
    ppo = instantiate(cfg.strategy)(space=NASNetSpace(), seed=0)
    assert isinstance(ppo, PPO)
    assert ppo.optimizer.param_groups[0]["lr"] == 3.5e-4
    assert (ppo.entropy_weight, ppo.baseline_decay, ppo.clip) == (1e-5, 0.95, 0.2)
    assert not ppo.normalize_advantage and ppo.batch_size == 10
    assert ppo.controller.hidden == 100
    cfg = tiny_search_cfg("strategy=evolution_amoebanet")
    evo = instantiate(cfg.strategy)(space=NASNetSpace(), seed=0)
    assert (evo.population_size, evo.sample_size) == (100, 25)
    # The plain names are sized to the budget.
    cfg = tiny_search_cfg("strategy=evolution", "search.num_children=100")
    evo = instantiate(cfg.strategy)(space=NASNetSpace(), seed=0)
    assert (evo.population_size, evo.sample_size) == (20, 10)
    rnd = instantiate(tiny_search_cfg("strategy=random").strategy)(space=NASNetSpace(), seed=0)
    assert isinstance(rnd, RandomSearch)


@pytest.mark.parametrize(
    "preset, strategy", [("nasnet", "PPO"), ("nas_rl", "Reinforce"), ("mnasnet", "PPO")]
)
def test_each_paper_preset_uses_its_papers_strategy(preset, strategy):
    cfg = compose_config("search", [f"experiment={preset}"])
    assert cfg.strategy._target_ == f"nas_lightning.strategies.{strategy}"
    assert cfg.strategy.normalize_advantage is False  # the papers use raw advantages
    if strategy == "PPO":
        assert (cfg.strategy.lr, cfg.strategy.entropy_weight, cfg.strategy.baseline_decay) == (
            3.5e-4, 1e-5, 0.95
        )
        assert (cfg.strategy.batch_size, cfg.controller.hidden, cfg.controller.layers) == (
            10 if preset == "nasnet" else 5, 100, 1
        )
    else:  # NAS-RL
        assert (cfg.strategy.lr, cfg.strategy.entropy_weight, cfg.strategy.baseline_decay) == (
            6e-4, 0.0, 0.95
        )
        assert (cfg.controller.hidden, cfg.controller.layers, cfg.controller.init_range) == (
            35, 2, 0.08
        )
    for size in ("small", "large"):  # PPO, then NetAdapt
        cfg = compose_config("search", [f"experiment=mobilenetv3_{size}"])
        assert cfg.strategy.first._target_ == "nas_lightning.strategies.PPO"
        assert (cfg.strategy.first.lr, cfg.controller.hidden) == (3.5e-4, 100)
        assert cfg.strategy.then._target_ == "nas_lightning.strategies.NetAdapt"


@pytest.mark.parametrize("name", list(STRATEGY_CLASSES))
def test_each_strategy_runs_end_to_end_on_nasnet(tiny_search_cfg, tmp_path, name):
    result = run_search(tiny_search_cfg(f"strategy={name}", *SMALL[name]))
    assert isinstance(result.strategy, STRATEGY_CLASSES[name])
    assert [r["status"] for r in result.records] == ["ok", "ok"]
    state = torch.load(tmp_path / "run" / "strategy.pt", weights_only=True)
    assert state["num_told"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", list(STRATEGY_CLASSES))
def test_each_strategy_runs_end_to_end_on_every_space(tmp_path, name, space):
    """Each conf/search_space/*.yaml with its own model config, on 64 training images."""
    overrides = [
        f"run_dir={tmp_path / 'run'}",
        "logger=csv",
        "child.batch_size=32",
        "child.train_subset=64",
        "child.limit_val_batches=1",
        "dataset.val_size=256",
        f"search_space={space}",
        f"strategy={name}",
        *SMALL[name],
        "search.num_children=3",
    ]
    result = run_search(compose_config("search", overrides))
    assert isinstance(result.strategy, STRATEGY_CLASSES[name])
    assert len(result.records) == 3
    assert all(r["status"] == "ok" for r in result.records), result.records


def resumed(tiny_search_cfg, run: Path, num_children: int, *overrides: str):
    """What `python search.py resume=<run> search.num_children=N` does."""
    cfg = tiny_search_cfg(*overrides, f"resume={run}")
    return run_search(resume_config(cfg, overrides=[f"search.num_children={num_children}"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGY_CLASSES))
def test_resume_after_a_smaller_budget_is_exact(tiny_search_cfg, tmp_path, name):
    overrides = [f"strategy={name}", *SMALL[name], "search.num_children=5"]
    full = run_search(tiny_search_cfg(*overrides, run_dir=tmp_path / "full"))

    part = tmp_path / "part"
    run_search(tiny_search_cfg(*overrides, "search.num_children=3", run_dir=part))
    result = resumed(tiny_search_cfg, part, 5, *overrides)

    assert actions(result) == actions(full)
    assert [r["reward"] for r in result.records] == [r["reward"] for r in full.records]
    assert result.best["index"] == full.best["index"]
    assert result.best["reward"] == full.best["reward"]
    assert [r["index"] for r in read_children(part)] == list(range(5))  # none trained twice
    state, expected = (
        torch.load(p / "strategy.pt", weights_only=True) for p in (part, tmp_path / "full")
    )
    assert state["num_told"] == expected["num_told"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "evolution"])
def test_resume_after_a_crash_inside_a_child_is_exact(tiny_search_cfg, tmp_path, monkeypatch, name):
    """Killed while training child 3 (after its ask): resuming retrains it, nothing else."""
    overrides = [f"strategy={name}", *SMALL[name], "search.num_children=5"]
    full = run_search(tiny_search_cfg(*overrides, run_dir=tmp_path / "full"))

    original = evaluator_module.LightningEvaluator.run
    trained = []

    def crash_at_3(self, trial):
        if trial.index == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C, or the machine going away
        trained.append(trial.index)
        return original(self, trial)

    part = tmp_path / "part"
    monkeypatch.setattr(evaluator_module.LightningEvaluator, "run", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_search_cfg(*overrides, run_dir=part))
    monkeypatch.undo()
    assert [r["index"] for r in read_children(part)] == [0, 1, 2]

    counted = []
    monkeypatch.setattr(
        evaluator_module.LightningEvaluator,
        "run",
        lambda self, trial: counted.append(trial.index) or original(self, trial),
    )
    result = resumed(tiny_search_cfg, part, 5, *overrides)
    assert counted == [3, 4]  # children already recorded are not trained again
    assert actions(result) == actions(full)
    assert result.best["reward"] == full.best["reward"]
