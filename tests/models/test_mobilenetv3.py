"""MobileNetV3's options: the presets, NetAdapt's config, train.py on the published networks.

h-swish, hard-sigmoid and the SE gate width are tested against their formulas
in test_mobile_models.py; here every new config option must compose and build.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import compose_config
from hydra.utils import instantiate

from nas_lightning.core.builders import build, build_partial
from nas_lightning.core.records import read_children
from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import load_genotype, save_genotype
from nas_lightning.genotypes.mobile import MOBILENETV3_LARGE, MOBILENETV3_SMALL
from nas_lightning.models.mobile import MobileNetwork
from nas_lightning.models.profile import count_params
from nas_lightning.rewards import MnasReward, ValAccuracy
from nas_lightning.search.loop import run_search
from nas_lightning.strategies import PPO, NetAdapt, StrategySequence
from nas_lightning.strategies.netadapt_parts import proxy_network
from nas_lightning.training.run import build_network

PUBLISHED = {
    "small": (MOBILENETV3_SMALL, 2_542_856, -0.15),
    "large": (MOBILENETV3_LARGE, 5_483_032, -0.07),
}
# Seconds, not minutes: tiny children, latency at 32x32 with single timed runs.
TINY = [
    "logger=csv",
    "dataset.val_size=256",
    "child.batch_size=32",
    "child.train_subset=64",
    "child.limit_val_batches=1",
    "latency.resolution=32",
    "latency.warmup=0",
    "latency.repeats=1",
    "latency.table_warmup=0",
    "latency.table_repeats=1",
]


def search_cfg(tmp_path, *overrides: str):
    return compose_config("search", [f"run_dir={tmp_path / 'run'}", *overrides])


@pytest.mark.parametrize("size", ["small", "large"])
def test_presets_build_the_papers_search(tmp_path, size):
    genotype, params, w = PUBLISHED[size]
    cfg = search_cfg(tmp_path, f"experiment=mobilenetv3_{size}")
    space = build(cfg.search_space, "search_space")
    assert space.base == genotype and space.activations == ("relu", "hswish")
    reward = build(cfg.reward, "reward")
    assert isinstance(reward, MnasReward) and reward.alpha == reward.beta == w
    assert reward.target_ms == cfg.latency.target_ms
    build(cfg.latency, "latency")
    # The children's builder makes the published network from its block strings.
    net = build(cfg.model, "model")(space.base, in_channels=3, num_classes=1000)
    assert isinstance(net, MobileNetwork) and count_params(net) == params
    assert {m.momentum for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.5}
    strategy = build_partial(cfg.strategy, "strategy", space=space, seed=0)
    assert isinstance(strategy, StrategySequence) and isinstance(strategy.first, PPO)
    assert strategy.first.entropy_weight == 1e-5 and strategy.first.batch_size == 3
    then = strategy.make_then(space=space, seed=0, genotype=space.base)
    assert isinstance(then, NetAdapt) and then.start == genotype
    assert then.target_ratio == 0.9 and then.calibrate


def test_netadapt_preset_takes_a_genotype_name_or_file_and_a_target(tmp_path):
    cfg = search_cfg(
        tmp_path, "strategy=netadapt", "genotype=mobilenetv3_small", "latency.target_ms=140"
    )
    space = build(cfg.search_space, "search_space")
    strategy = build_partial(cfg.strategy, "strategy", space=space, seed=0)
    assert isinstance(strategy, NetAdapt) and strategy.start == MOBILENETV3_SMALL
    assert strategy.target_ms == 140 and strategy.latency.resolution == 224
    assert isinstance(build(cfg.reward, "reward"), ValAccuracy)
    assert cfg.model.width_mult == 1.0
    save_genotype(MOBILENETV3_LARGE, tmp_path / "g.json")
    cfg = search_cfg(tmp_path, "strategy=netadapt", f"genotype={tmp_path / 'g.json'}")
    strategy = instantiate(cfg.strategy)(space=space, seed=0)
    assert strategy.start == MOBILENETV3_LARGE and strategy.target_ms is None


def test_proxy_network_only_changes_the_bn_momentum():
    net = proxy_network("mobilenetv3_small", 1, 10, width_mult=0.5)
    ref = MobileNetwork("mobilenetv3_small", 1, 10, width_mult=0.5)
    assert repr(net).replace("momentum=0.5", "momentum=0.1") == repr(ref)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.5 for m in bns)
    with pytest.raises(ConfigError, match="bn_momentum"):
        proxy_network("mobilenetv3_small", bn_momentum=0.0)


@pytest.mark.parametrize("name", ["mobilenetv3_small", "mobilenetv3_large"])
def test_train_builds_the_published_networks(tmp_path, name):
    cfg = compose_config(
        "train", [f"run_dir={tmp_path}", f"genotype={name}", "model=mobile", "dataset=embedded"]
    )
    genotype, net, arch, datamodule = build_network(cfg)
    assert genotype == load_genotype(name) and isinstance(net, MobileNetwork)
    assert arch["in_channels"] == datamodule.in_channels == 1
    assert net.head.classifier.out_features == datamodule.num_classes == 10


@pytest.mark.slow
def test_netadapt_search_end_to_end(tmp_path):
    cfg = search_cfg(
        tmp_path,
        "strategy=netadapt",
        "genotype=mobilenetv3_small",
        *TINY,
        "strategy.max_proposals=2",
        "strategy.step_ratio=0.1",
        "strategy.target_ratio=0.75",
        "strategy.calibration_repeats=2",
        "search.num_children=7",
    )
    result = run_search(cfg)
    run = tmp_path / "run"
    report = json.loads((run / "netadapt.json").read_text())
    records = read_children(run)
    assert records[0]["genotype"]["stages"] == list(MOBILENETV3_SMALL.block_strings())
    assert len(records) <= 7 and all(r["actions"] == [] for r in records)
    assert all("latency_measured_ms" in r["extra"] for r in records)
    steps = report["path"]
    assert steps[0]["kind"] == "start" and steps[0]["child"] == 0
    for step in steps:  # each chosen network is a recorded child with its accuracy
        assert records[step["child"]]["genotype"]["stages"] == step["genotype"]
        assert records[step["child"]]["reward"] == pytest.approx(step["reward"])
    assert all(a["latency_ms"] > b["latency_ms"] for a, b in zip(steps, steps[1:], strict=False))
    # the strategy's state when the search ended (the `finished` property would go on:
    # it verifies a target the table claims and prepares the next iteration)
    state = result.strategy.state_dict()
    assert report["finished"] == state["finished"]
    assert report["verification_pending"] == (state["needs_verify"] and not state["finished"])
    assert load_genotype(run / "netadapt_final.json") == result.strategy.current["genotype"]
    with open(run / "metrics.csv") as f:
        assert "controller/netadapt/current_latency_ms" in next(csv.reader(f))


@pytest.mark.slow
def test_mobilenetv3_small_preset_end_to_end(tmp_path):
    cfg = search_cfg(
        tmp_path,
        "experiment=mobilenetv3_small",
        *TINY,
        "strategy.first_children=2",
        "strategy.first.batch_size=2",
        "strategy.then.max_proposals=1",
        "strategy.then.calibration_repeats=2",
        "search.num_children=4",
    )
    result = run_search(cfg)
    records = read_children(tmp_path / "run")
    assert len(records) == 4 and [bool(r["actions"]) for r in records] == [1, 1, 0, 0]
    assert result.strategy.phase == 1
    start = max(records[:2], key=lambda r: r["reward"])
    assert records[2]["genotype"] == start["genotype"]  # NetAdapt starts from the best
    assert (tmp_path / "run" / "netadapt.json").is_file()
