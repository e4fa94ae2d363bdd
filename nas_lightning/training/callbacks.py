"""Callbacks of the full training."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from nas_lightning.errors import ConfigError


class DropPathSchedule(Callback):
    """NASNet's ScheduledDropPath: the drop probability grows linearly over training.

    The keep probability of every path falls linearly from 1 at the first
    step to ``1 - drop_prob`` at the last (Zoph et al. 2018, Sec. 4). The
    probability is recomputed from the global step before every batch, so a
    resumed training continues the schedule where it stopped.

    Args:
        drop_prob: the final drop probability, in [0, 1).
        progress: the fraction of training done, from the Trainer (a
            :class:`TimeBudget`'s ``progress``); None: steps done over the
            Trainer's estimate of all steps.
    """

    def __init__(
        self, drop_prob: float, progress: Callable[[pl.Trainer], float] | None = None
    ) -> None:
        if not 0.0 <= drop_prob < 1.0:
            raise ConfigError("drop_path", f"must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.progress = progress

    @staticmethod
    def _net(pl_module: pl.LightningModule):
        net = getattr(pl_module, "net", pl_module)
        if not hasattr(net, "set_drop_path"):
            raise ConfigError(
                "recipe.drop_path",
                f"{type(net).__name__} has no drop-path (no set_drop_path); set recipe.drop_path=0",
            )
        return net

    def prob_at(self, step: int, total: int) -> float:
        """The drop probability at optimizer step ``step`` of ``total``."""
        return self.drop_prob * min(1.0, step / max(1, total))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._net(pl_module)  # fail before the first step, with the config key

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.progress is not None:
            prob = self.drop_prob * min(1.0, self.progress(trainer))
        else:
            prob = self.prob_at(trainer.global_step, int(trainer.estimated_stepping_batches))
        self._net(pl_module).set_drop_path(prob)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._net(pl_module).set_drop_path(0.0)


class TimeBudget(Callback):
    """Fit within a wall-clock budget, with the learning rate annealed over that budget.

    A fixed number of epochs either overruns a time limit or, stopped by it,
    ends before its cosine schedule has annealed, which costs accuracy. Here
    the schedule follows the fraction of the budget spent: a linear warm-up
    over ``warmup_steps`` optimizer steps, then ``0.5 * (1 + cos(pi * p))``
    with ``p`` the larger of the time spent over the budget and the steps
    done over the Trainer's step estimate (so a capped ``max_epochs`` still
    anneals to zero). Fitting stops once the time left would not cover
    another step and one more validation; Lightning then validates the last
    weights and the checkpoint callback saves them.

    Time counts from the start of the fit (validation included); a resumed
    fit continues from the time its checkpoint had spent. Under DDP every
    rank uses rank 0's progress and all stop as soon as one is out of time. The schedule
    depends on the speed of the machine, so seeded reruns are not
    bit-identical.

    Args:
        seconds: the fit's budget, > 0.
        warmup_steps: linear warm-up steps.
        cosine: anneal by cosine; False keeps the rate after the warm-up.
        clock: seconds of a monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        seconds: float,
        warmup_steps: int = 0,
        cosine: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not seconds > 0:
            raise ConfigError("minutes", f"the time budget must be > 0, got {seconds / 60:g}")
        if warmup_steps < 0:
            raise ConfigError("warmup_steps", f"must be >= 0, got {warmup_steps}")
        self.seconds = float(seconds)
        self.warmup_steps = warmup_steps
        self.cosine = cosine
        self.clock = clock
        self.spent_before = 0.0  # restored from a checkpoint
        self.stopped = False
        self._start: float | None = None
        self._last_batch: float | None = None
        self._step_seconds = 0.0
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def elapsed(self) -> float:
        """Seconds of the budget spent so far."""
        running = 0.0 if self._start is None else self.clock() - self._start
        return self.spent_before + running

    def progress(self, trainer: pl.Trainer | None = None) -> float:
        """The fraction of the budget (or of the estimated steps) done, in [0, 1]."""
        done = self.elapsed() / self.seconds
        if trainer is not None:
            total = trainer.estimated_stepping_batches
            if total and total != float("inf"):
                done = max(done, trainer.global_step / max(1, int(total)))
        return min(1.0, done)

    def factor(self, step: int, progress: float) -> float:
        """The learning-rate multiplier at optimizer step ``step`` and ``progress``."""
        warm = (step + 1) / (self.warmup_steps + 1) if step < self.warmup_steps else 1.0
        if not self.cosine:
            return warm
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_batch = self.clock()
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])  # a resumed group keeps its own

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        progress = self.progress(trainer)
        if trainer.world_size > 1:  # rank 0's clock for all: every replica steps alike
            progress = trainer.strategy.broadcast(progress, src=0)
        scale = self.factor(trainer.global_step, progress)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = self.clock()
        if self._last_batch is not None:
            self._step_seconds = now - self._last_batch
        self._last_batch = now
        spent = self.elapsed() + self._step_seconds + self._val_seconds >= self.seconds
        if trainer.world_size > 1:  # one rank out of time stops them all
            spent = trainer.strategy.reduce_boolean_decision(spent, all=False)
        if spent:
            self.stopped = True
            trainer.should_stop = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = self.clock()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None and not trainer.sanity_checking:
            self._val_seconds = self.clock() - self._val_start
        self._last_batch = self.clock()  # a step's time excludes the validation

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.spent_before, self._start = self.elapsed(), None

    def state_dict(self) -> dict[str, float]:
        return {"spent": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.spent_before = float(state_dict.get("spent", 0.0))
