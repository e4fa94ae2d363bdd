"""Every ``experiment=`` preset composes and runs a tiny search end to end.

The presets are read from ``conf/experiment/``, so a new preset is run here without a
new test. What a preset needs to be tiny is decided from the keys its composed config
has (a latency probe, NetAdapt's phases, ENAS's supernet), not from its name.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import CONF, compose_config
from hydra.utils import instantiate
from omegaconf import DictConfig

from nas_lightning.genotypes.base import load_genotype
from nas_lightning.search.loop import run_search

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
CHILDREN = 2

# The genotype kind each search space proposes (what train.py's conf/model/<kind> loads).
KIND_OF_SPACE = {
    "nas_lightning.spaces.NASNetSpace": "nasnet",
    "nas_lightning.spaces.NASRLSpace": "nas_rl",
    "nas_lightning.spaces.MobileSpace": "mobile",
}

# Every child: one epoch of two training batches, one validation batch.
TINY_CHILD = [
    "logger=csv",
    f"search.num_children={CHILDREN}",
    "search.num_threads=1",
    "dataset.val_size=128",
    "child.epochs=1",
    "child.batch_size=32",
    "child.train_subset=64",
    "child.limit_train_batches=2",
    "child.limit_val_batches=1",
    "child.bn_recalibration_batches=1",
]
# The latency probe (MnasNet, MobileNetV3): a 32x32 input, no warm-up, one timed run.
TINY_LATENCY = [
    "latency.resolution=32",
    "latency.warmup=0",
    "latency.repeats=1",
    "latency.table_warmup=0",
    "latency.table_repeats=1",
]
# PPO then NetAdapt (MobileNetV3): one child of each phase.
TINY_PHASES = [
    "strategy.first_children=1",
    "strategy.first.batch_size=1",
    "strategy.then.max_proposals=1",
    "strategy.then.calibration_repeats=1",
    "strategy.then.verify_rounds=1",
]
# ENAS's own driver: one supernet epoch of two steps, then CHILDREN controller steps.
TINY_ENAS = [
    "enas.epochs=1",
    "enas.limit_train_batches=2",
    f"enas.controller_steps={CHILDREN}",
    "enas.final_candidates=2",
    "enas.batch_size=32",
    "enas.controller_batch_size=32",
    "enas.eval_batch_size=128",
    "enas.train_subset=64",
    "enas.supernet.filters=4",
]


def tiny_overrides(cfg: DictConfig) -> list[str]:
    """The overrides that shrink the preset composed as ``cfg`` to a few seconds."""
    overrides = list(TINY_CHILD)
    if "filters" in cfg.model:
        overrides.append("model.filters=4")
    if cfg.get("latency") is not None:
        overrides += TINY_LATENCY
    if "first_children" in cfg.strategy:
        overrides += TINY_PHASES
    if "enas" in cfg:
        overrides += TINY_ENAS
    return overrides


def expected_children(cfg: DictConfig) -> int:
    """Records in children.jsonl: one per child, or one per ENAS controller step."""
    if "enas" in cfg:
        return int(cfg.enas.epochs) * int(cfg.enas.controller_steps)
    return int(cfg.search.num_children)


def run_preset(cfg: DictConfig):
    """Run ``cfg`` as ``search.py`` does: the preset's own runner, else the search loop."""
    runner = instantiate(cfg.search.runner) if cfg.search.get("runner") else run_search
    return runner(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_a_tiny_search(tmp_path, preset):
    run = tmp_path / "run"
    base = [f"experiment={preset}", f"run_dir={run}"]
    cfg = compose_config("search", [*base, *tiny_overrides(compose_config("search", base))])
    space = cfg.search_space._target_
    assert space in KIND_OF_SPACE, f"{preset}: add {space}'s genotype kind to KIND_OF_SPACE"
    kind = KIND_OF_SPACE[space]

    run_preset(cfg)

    records = [json.loads(line) for line in (run / "children.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(expected_children(cfg)))
    for r in records:
        assert r["status"] == "ok", r.get("error")
        assert isinstance(r["reward"], int | float) and math.isfinite(r["reward"]), r
        assert r["genotype"]["kind"] == kind
    if cfg.get("latency") is not None:  # every child measured, saying how it was taken
        for r in records:
            assert r["extra"]["latency_ms"] > 0, r["extra"]
            assert r["extra"]["latency"]["settings"]["resolution"] == cfg.latency.resolution
    if "first_children" in cfg.strategy:  # the second phase (NetAdapt) took over
        assert records[0]["actions"] and records[1]["actions"] == []
        assert (run / "netadapt.json").is_file()

    best = json.loads((run / "best.json").read_text())
    assert best["genotype"]["kind"] == kind and math.isfinite(best["reward"])
    assert load_genotype(run / "best.json").kind == kind  # what train.py genotype=... reads
    if "enas" not in cfg:  # ENAS's best is a final candidate scored afresh, not a child
        assert best["reward"] == max(r["reward"] for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished", summary
    assert summary.get("children", len(records)) == len(records)


def test_the_presets_are_found():
    assert {"enas", "mnasnet", "nas_rl", "nasnet"} <= set(PRESETS)
