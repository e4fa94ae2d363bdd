"""train.py with a wall-clock budget (recipe.minutes): schedule, stop, resume, errors."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback

from nas_lightning.errors import ConfigError
from nas_lightning.training import run as run_module
from nas_lightning.training import run_train
from nas_lightning.training.callbacks import TimeBudget

TINY = [
    "dataset=embedded",
    "train_logger=csv",
    "recipe.batch_size=16",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "model.filters=4",
    "model.cells_per_stage=1",
    "model.stem_stride=2",
]


def make_cfg(run_dir: Path, *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*TINY, f"run_dir={run_dir}", *overrides])


class StepClock:
    """A fake clock: ``seconds_per_step`` seconds per optimizer step done."""

    def __init__(self, seconds_per_step: float) -> None:
        self.seconds_per_step = seconds_per_step
        self.trainer = None

    def __call__(self) -> float:
        return 0.0 if self.trainer is None else self.seconds_per_step * self.trainer.global_step


class Watch(Callback):
    """Hands the trainer to the clock; records each step's learning rate and drop-path."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.lrs: list[float] = []
        self.drop_probs: list[float] = []

    def setup(self, trainer, pl_module, stage) -> None:
        self.clock.trainer = trainer

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.drop_probs.append(pl_module.net.cells[0].drop_prob)


def _fake_budget(monkeypatch, clock: StepClock) -> None:
    monkeypatch.setattr(run_module, "TimeBudget", functools.partial(TimeBudget, clock=clock))


def test_factor_warms_up_then_follows_the_time_spent() -> None:
    budget = TimeBudget(100.0, warmup_steps=3)
    assert [budget.factor(s, 0.0) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert budget.factor(10, 0.5) == pytest.approx(0.5)
    assert budget.factor(10, 1.0) == pytest.approx(0.0)
    assert TimeBudget(100.0, cosine=False).factor(10, 0.9) == 1.0


def test_budget_stops_the_fit_and_anneals_to_the_end(tmp_path, monkeypatch) -> None:
    clock = StepClock(10.0)  # 10 s per step, a 60 s budget: stops after the 5th step
    _fake_budget(monkeypatch, clock)
    watch = Watch(clock)
    cfg = make_cfg(
        tmp_path,
        "recipe.minutes=1",
        "recipe.epochs=50",
        "recipe.optimizer.lr=0.1",
        "recipe.drop_path=0.2",
        "trainer.limit_train_batches=3",
        "export.onnx=false",
    )
    card = run_train(cfg, callbacks=[watch])
    assert card["global_step"] == 5 and card["epochs"] < 50
    assert card["time_budget"] == {"minutes": 1.0, "spent_seconds": 50.0,
                                   "stopped_by_budget": True}
    # Each step's rate is the cosine of the time spent when it started.
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * 10 * s / 60)) for s in range(5)]
    assert watch.lrs == pytest.approx(expected)
    assert watch.drop_probs == pytest.approx([0.2 * 10 * s / 60 for s in range(5)])
    # The stop validated the last weights: two validations, one per (partial) epoch.
    assert len(card["val_curve"]) == 2 and card["test_acc"] is not None


def test_epochs_cap_still_anneals_the_schedule(tmp_path, monkeypatch) -> None:
    clock = StepClock(0.0)  # no time passes: the step estimate drives the schedule
    _fake_budget(monkeypatch, clock)
    watch = Watch(clock)
    cfg = make_cfg(tmp_path, "recipe.minutes=10", "recipe.epochs=2", "recipe.warmup_steps=1",
                   "recipe.optimizer.lr=0.1", "trainer.limit_train_batches=2",
                   "export.onnx=false")
    card = run_train(cfg, callbacks=[watch])
    assert card["global_step"] == 4 and not card["time_budget"]["stopped_by_budget"]
    cos = [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]
    assert watch.lrs == pytest.approx([0.1 * 0.5 * cos[0], *(0.1 * c for c in cos[1:])])


def test_resumed_fit_continues_the_budget(tmp_path, monkeypatch) -> None:
    clock = StepClock(10.0)
    _fake_budget(monkeypatch, clock)
    opts = ["recipe.minutes=1", "recipe.epochs=50", "trainer.limit_train_batches=3",
            "export.onnx=false", "trainer.limit_test_batches=1"]

    class StopAfterFirstEpoch(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    run_train(make_cfg(tmp_path / "first", *opts), callbacks=[Watch(clock), StopAfterFirstEpoch()])
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    watch = Watch(clock)
    card = run_train(make_cfg(tmp_path / "rest", *opts, f"ckpt_path={last}"), callbacks=[watch])
    # 30 s were spent before the checkpoint; the clock restarts at step 3 (30 s): the
    # resumed fit has 60 - 30 s left and stops after two more steps.
    assert card["global_step"] == 5
    assert card["time_budget"]["stopped_by_budget"]


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_minutes_is_a_config_error(tmp_path, value) -> None:
    with pytest.raises(ConfigError, match="minutes"):
        run_train(make_cfg(tmp_path, f"recipe.minutes={value}", "export.onnx=false"))


@pytest.mark.slow
def test_ddp_ranks_stop_together_on_the_budget(tmp_path) -> None:
    """Each rank has its own clock; rank 0's progress and a shared stop keep them in step."""
    import json
    import os
    import subprocess
    import sys

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "genotype=nasnet_a", "dataset=embedded",
         "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "recipe.minutes=0.1",
         "recipe.epochs=500", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "export.onnx=false", "train_logger=csv",
         "model.filters=4", "model.cells_per_stage=1", "model.stem_stride=2",
         "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["time_budget"]["stopped_by_budget"] is True
    assert summary["epochs"] < 500 and summary["test_acc"] is not None
