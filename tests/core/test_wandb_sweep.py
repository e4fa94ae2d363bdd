"""W&B runs of a Hydra sweep: one group per sweep, each run named by its job's overrides."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

import nas_lightning.cli  # noqa: F401  (registers the config's resolvers)
from nas_lightning.core.sweep import sweep_names
from nas_lightning.search.loggers import WandbSearchLogger


@pytest.fixture
def hydra_job():
    """Pretend to be inside a Hydra job of the given mode."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("search", overrides=["controller.hidden=50"], return_hydra_config=True)

    def enter(mode: RunMode, sweep_dir: str = "", overrides: str = "") -> None:
        cfg.hydra.mode = mode
        cfg.hydra.sweep.dir = sweep_dir
        cfg.hydra.overrides.task = [overrides] if overrides else []
        HydraConfig.instance().set_config(cfg)

    yield enter
    HydraConfig.instance().cfg = None


def test_no_names_outside_hydra():
    assert sweep_names() == (None, None)


def test_single_run_keeps_the_folder_name(hydra_job):
    hydra_job(RunMode.RUN)
    assert sweep_names() == (None, None)


def test_multirun_job_is_grouped_and_named_by_its_overrides(hydra_job, tmp_path, monkeypatch):
    hydra_job(RunMode.MULTIRUN, "runs/search/multirun/2026-12-02_10-00-00_abc123",
              "controller.hidden=50")
    assert sweep_names() == ("2026-12-02_10-00-00_abc123", "controller.hidden=50")
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbSearchLogger()
    logger.start(tmp_path, {"a": 1})
    try:
        assert logger.run.name == "controller.hidden=50"
        assert logger.run.group == "2026-12-02_10-00-00_abc123"
    finally:
        logger.finish(tmp_path, [], None)
    named = WandbSearchLogger(name="mine", group="g")  # explicit values win
    named.start(tmp_path / "b", {})
    try:
        assert (named.run.name, named.run.group) == ("mine", "g")
    finally:
        named.finish(tmp_path / "b", [], None)


@pytest.mark.slow
def test_a_sweep_writes_grouped_named_offline_runs(tmp_path):
    sweep = tmp_path / "sweep_7"
    cmd = [sys.executable, "search.py", "-m", "debug=fast", "logger=wandb",
           "search.num_children=1", "child.train_subset=128", "controller.hidden=20,30",
           f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for job, hidden in (("0_controller.hidden-20", 20), ("1_controller.hidden-30", 30)):
        (record,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        data = record.read_bytes()
        assert f"controller.hidden={hidden}".encode() in data
        assert b"sweep_7" in data
