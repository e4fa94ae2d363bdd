"""The NAS-RL preset composes, builds the paper's controller, and runs a tiny search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir

from nas_lightning.core.builders import build, build_partial
from nas_lightning.rewards import MaxRecentAccuracy
from nas_lightning.search.loop import run_search
from nas_lightning.spaces import NASRLSpace


def _compose(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "search",
            overrides=["experiment=nas_rl", f"run_dir={tmp_path}", "logger=csv", *overrides],
        )


def test_preset_is_the_papers_controller_and_reward(tmp_path):
    cfg = _compose(tmp_path)
    ctrl_cfg = cfg.controller
    assert (ctrl_cfg.hidden, ctrl_cfg.layers, ctrl_cfg.init_range) == (35, 2, 0.08)
    assert cfg.strategy._target_ == "nas_lightning.strategies.Reinforce"
    assert cfg.strategy.lr == pytest.approx(6e-4) and cfg.strategy.optimizer == "adam"
    reward = build(cfg.reward, "reward")
    assert isinstance(reward, MaxRecentAccuracy) and (reward.last, reward.power) == (5, 3)
    space = build(cfg.search_space, "search_space")
    assert isinstance(space, NASRLSpace)
    assert space.filter_heights == space.filter_widths == (1, 3, 5, 7)
    assert space.num_filters == (24, 36, 48, 64)
    strategy = build_partial(cfg.strategy, "strategy", space=space, seed=0)
    ctrl = strategy.controller
    assert len(ctrl.cells) == 2 and ctrl.hidden == 35
    assert all(p.abs().max() <= 0.08 for p in ctrl.parameters())
    assert strategy.optimizer.param_groups[0]["lr"] == pytest.approx(6e-4)
    # the growing depth schedule is on in the preset
    assert [space.depth_at(n) for n in (0, cfg.search_space.grow_every)] == [2, 4]


def test_preset_accepts_the_stride_variant(tmp_path):
    cfg = _compose(tmp_path, "search_space.strides=[1,2,3]", "search_space.connect_previous=false")
    space = build(cfg.search_space, "search_space")
    assert space.strides == (1, 2, 3) and "layer0/stride" in space.names


def test_tiny_search_records_layers_and_skip_connections(tmp_path):
    cfg = _compose(
        tmp_path,
        "search.num_children=3",
        "search_space.num_layers=3",
        "search_space.start_layers=2",
        "search_space.grow_every=2",
        "search_space.grow_by=1",
        "child.epochs=2",
        "child.train_subset=128",
        "child.limit_train_batches=1",
        "child.limit_val_batches=1",
    )
    result = run_search(cfg)
    lines = (tmp_path / "children.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == ["ok"] * 3
    depths = [len(r["genotype"]["layers"]) for r in records]
    assert depths == [2, 2, 3]  # grows by one layer after two children
    for r in records:
        assert r["genotype"]["kind"] == "nas_rl"
        layers = r["genotype"]["layers"]
        assert set(layers[0]) == {"filter_height", "filter_width", "filters", "stride", "inputs"}
        assert layers[0]["inputs"] == []
        assert all(i - 1 in layer["inputs"] for i, layer in enumerate(layers) if i)
        assert len(r["val_curve"]) == 2
        assert r["reward"] == pytest.approx(max(r["val_curve"]) ** 3)
        assert r["steps"] == 4 * len(r["genotype"]["layers"])
    assert result.best is not None and (tmp_path / "best.json").is_file()
