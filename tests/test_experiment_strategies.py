"""An experiment's strategy comes from the preset it selects, so ``strategy=`` swaps it whole."""

from __future__ import annotations

import pytest
from conftest import CONF, compose_config
from omegaconf import OmegaConf

from nas_lightning.core.builders import build, build_partial

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))



@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_set_strategy_keys_only_through_a_preset(experiment):
    """Keys an experiment set under ``strategy:`` would leak into any ``strategy=`` swap."""
    text = OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml")
    assert "strategy" not in text
    for entry in text.get("defaults", []):
        name = next(iter(entry)) if not isinstance(entry, str) else entry
        assert "@strategy" not in name, entry  # a package inside the strategy node


@pytest.mark.parametrize(
    "experiment, strategy",
    [(e, "nsga2") for e in EXPERIMENTS] + [("mnasnet", s) for s in ("random", "ppo", "tpe")],
)
def test_a_swapped_strategy_gets_its_own_defaults(tmp_path, experiment, strategy):
    swapped = compose_config(
        "search", [f"experiment={experiment}", f"strategy={strategy}", f"run_dir={tmp_path}"]
    )
    alone = compose_config("search", [f"strategy={strategy}", f"run_dir={tmp_path}"])
    assert OmegaConf.to_container(swapped.strategy) == OmegaConf.to_container(alone.strategy)
    OmegaConf.to_container(swapped.search, resolve=True)  # no key reads the old preset's


@pytest.mark.parametrize("strategy", ["nsga2", "tpe", "random", "evolution"])
def test_the_mnasnet_experiment_builds_any_strategy(tmp_path, strategy):
    """The nsga2 preset's own example: experiment=mnasnet strategy=nsga2 (two objectives)."""
    overrides = [f"run_dir={tmp_path}", "experiment=mnasnet", f"strategy={strategy}"]
    if strategy == "nsga2":
        overrides.append("strategy.objectives=[val_acc,latency_ms]")
    cfg = compose_config("search", overrides)
    space = build(cfg.search_space, "search_space")
    built = build_partial(cfg.strategy, "strategy", space=space, seed=0)
    assert type(built).__name__ == cfg.strategy._target_.rsplit(".", 1)[1]
    built.ask()


def test_the_experiments_keep_their_papers_strategies(tmp_path):
    mnasnet = compose_config("search", ["experiment=mnasnet", f"run_dir={tmp_path}"])
    assert (mnasnet.strategy.batch_size, mnasnet.strategy.lr) == (5, 3.5e-4)
    nasnet = compose_config("search", ["experiment=nasnet", f"run_dir={tmp_path}"])
    assert nasnet.search.batch_size == nasnet.strategy.batch_size == 10
    for size in ("small", "large"):
        cfg = compose_config("search", [f"experiment=mobilenetv3_{size}", f"run_dir={tmp_path}"])
        assert (cfg.strategy.first_children, cfg.strategy.first.batch_size) == (6, 3)
        assert cfg.strategy.then.target_ratio == 0.9
