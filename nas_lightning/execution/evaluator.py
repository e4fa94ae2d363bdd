"""Train one child with Lightning: the runner of every executor.

``LightningEvaluator.run(trial) -> Result`` builds the network, trains it
with a fresh Lightning Trainer (DDP included) and returns its metrics. It
knows nothing of the strategy or the reward; the driver computes both.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import nn

from nas_lightning.child import ChildDivergedError, ChildModule, count_params
from nas_lightning.data.base import ImageDataModule
from nas_lightning.errors import ConfigError, RanksStopped
from nas_lightning.execution import rank_errors
from nas_lightning.execution.base import Result, Trial, one_line
from nas_lightning.execution.schedulers import safe_score
from nas_lightning.rewards.base import ChildMetrics

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    """Wait for queued kernels, so that a wall-clock mark means what it says."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ChildTimer(Callback):
    """Wall-clock seconds inside a child's training steps and validation.

    Training time runs from the start of a span's first batch (after the
    loader has produced it) to the start of validation or the end of the
    epoch; validation from its start to its end. Everything else in ``fit``
    (optimizer and loader set-up, hooks, teardown) is the framework's fixed
    cost. The device is synchronised only at these few boundaries, never per
    step, so timing costs nothing measurable.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.train = self.val = 0.0
        self.steps = 0
        self.first_batch: float | None = None
        self._open: float | None = None
        self._val_start: float | None = None

    def _close(self, pl_module: pl.LightningModule) -> None:
        if self._open is not None:
            _sync(pl_module.device)
            self.train += time.perf_counter() - self._open
            self._open = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._open is None:
            self._open = time.perf_counter()
            if self.first_batch is None:
                self.first_batch = self._open
        self.steps += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close(pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close(pl_module)
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None:
            _sync(pl_module.device)
            self.val += time.perf_counter() - self._val_start
            self._val_start = None


class LightningEvaluator:
    """The Lightning runner: builds, trains and validates children, a fresh Trainer each.

    Args:
        datamodule: the proxy task, loaded once and shared by all children.
        model_factory: ``(genotype, in_channels=, num_classes=) -> nn.Module``.
        trainer_factory: a Hydra partial of ``pytorch_lightning.Trainer``
            (accelerator, devices, strategy, precision ...).
        child: the proxy training recipe (``conf/child``).
        run_dir: the search's run folder (Trainer's default_root_dir).
        seed: base seed; child ``i`` trains with seed ``seed + i``.
        probe: optional ``probe(net, genotype, in_channels=, num_classes=) ->
            dict`` run before training (latency, MACs).
        optimizer: ``params -> Optimizer`` (the instantiated
            ``child.optimizer``); None: ChildModule's default SGD.
        callbacks: extra callbacks for every child's Trainer (profilers,
            benchmarks); each must reset its state in ``on_fit_start``.

    Attributes:
        rank_errors: under DDP with ranks started by Lightning (the search's
            own processes), report every rank's error in a child's error line
            and stop after a child that failed inside ``fit``
            (:mod:`nas_lightning.execution.rank_errors`).
    """

    def __init__(
        self,
        datamodule: ImageDataModule,
        model_factory: Callable[..., nn.Module],
        trainer_factory: Callable[..., pl.Trainer],
        child: Any,
        run_dir: Path,
        seed: int = 0,
        probe: Callable[..., dict[str, Any]] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        callbacks: list[pl.Callback] | None = None,
    ) -> None:
        self.datamodule = datamodule
        self.model_factory = model_factory
        self.trainer_factory = trainer_factory
        self.child = child
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.probe = probe
        self.optimizer_factory = optimizer
        self.callbacks = list(callbacks or [])
        self.rank_errors = False
        self.rungs: Any = None  # search.scheduler: the table a child's rungs report to
        self.rung_score: Callable[[ChildMetrics], float] | None = None
        self._stopped: str | None = None
        if int(child.epochs) < 1:
            raise ConfigError("child.epochs", f"must be >= 1, got {child.epochs}")
        self.compile_mode = compile_mode(child.get("compile", False))
        eval_batch_size = child.get("eval_batch_size")
        if eval_batch_size is not None:
            if not isinstance(eval_batch_size, int) or eval_batch_size < 1:
                raise ConfigError(
                    "child.eval_batch_size", f"must be an integer >= 1, got {eval_batch_size!r}"
                )
            # The proxy task is this evaluator's. A limit counted in batches keeps
            # batches of the training size, so that a debug limit keeps its cost.
            if not isinstance(child.get("limit_val_batches"), int):
                datamodule.eval_batch_size = eval_batch_size

    def build(self, genotype: Any) -> nn.Module:
        return self.model_factory(
            genotype,
            in_channels=self.datamodule.in_channels,
            num_classes=self.datamodule.num_classes,
        )

    def make_trainer(self, callbacks: list[pl.Callback]) -> pl.Trainer:
        c = self.child
        return self.trainer_factory(
            max_epochs=int(c.epochs),
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            limit_train_batches=c.get("limit_train_batches") or 1.0,
            limit_val_batches=c.get("limit_val_batches") or 1.0,
            gradient_clip_val=c.get("gradient_clip_val"),
            default_root_dir=str(self.run_dir),
        )

    def run(self, trial: Trial) -> Result:
        """Train one child and return its metrics; never raises for a bad child.

        A child that crashes or diverges comes back with its status and a
        one-line error. Ctrl-C is not a child's failure and propagates.
        """
        if self._stopped is not None:
            raise RanksStopped(self._stopped)
        start = time.perf_counter()
        index = trial.index
        since: dict[int, int] | None = None  # other ranks' stderr files at fit's start
        pl.seed_everything(trial.seed, workers=True, verbose=False)
        self.datamodule.seed = trial.seed
        result = Result(index=index, attempt=trial.attempt, worker=worker_name())
        timer = ChildTimer()
        marks = {"start": start}
        try:
            net = self.build(trial.genotype)
            result.params = count_params(net)
            marks["build"] = time.perf_counter()
            extra = {}
            if self.probe is not None:
                extra = dict(self.probe(
                    net,
                    trial.genotype,
                    in_channels=self.datamodule.in_channels,
                    num_classes=self.datamodule.num_classes,
                ))
            marks["probe"] = time.perf_counter()
            module = ChildModule(
                net,
                num_classes=self.datamodule.num_classes,
                optimizer=self.optimizer_factory,
                scheduler=self.child.get("scheduler", "cosine"),
                warmup_steps=int(self.child.get("warmup_steps", 0)),
                label_smoothing=float(self.child.get("label_smoothing", 0.0)),
                channels_last=bool(self.child.get("channels_last", True)),
                bn_recalibration_batches=int(self.child.get("bn_recalibration_batches", 0)),
            )
            if self.compile_mode is not None:  # in place: parameter names stay the same
                module.net.compile(mode=self.compile_mode)
            metrics = ChildMetricsCallback(extra=extra)
            callbacks: list[Callback] = [timer, *self.callbacks]
            if self.rungs is not None:
                callbacks.append(RungStopper(self.rungs, index, self.rung_score, extra,
                                             result.params or 0))
            trainer = self.make_trainer([*callbacks, metrics])
            marks["init"] = time.perf_counter()
            if self.rank_errors and trainer.world_size > 1:
                since = rank_errors.stderr_sizes(self.run_dir, trainer.world_size)
            trainer.fit(module, datamodule=self.datamodule)
            if metrics.calls != 1:
                raise RuntimeError("training ended without validation (no reward computed)")
            result.val_acc, result.val_curve = metrics.val_acc, metrics.val_curve
            result.params, result.extra = metrics.params, metrics.extra
            result.train_seconds = metrics.seconds
            result.timing = _split(marks, timer, time.perf_counter())
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a bad child must not end the search
            result.status = "diverged" if isinstance(err, ChildDivergedError) else "failed"
            result.error = one_line(err)
            if since is not None and result.status == "failed":
                result.error = self._every_rank(index, trainer.global_rank, result.error, since)
            result.val_acc, result.val_curve, result.extra = None, [], {}
            log.warning("child %d %s: %s", index, result.status, result.error)
        finally:
            result.seconds = time.perf_counter() - start
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return result

    def _every_rank(self, index: int, rank: int, error: str, since: dict[int, int]) -> str:
        """Rank 0: the other ranks' errors, then its own; other ranks: report and leave.

        A failure inside ``fit`` may leave the ranks in different collectives,
        so the process group cannot train another child: the next call stops.
        """
        if rank != 0:
            rank_errors.leave(index, error)
        peers = rank_errors.peer_errors(self.run_dir, since)
        error = "; ".join([*(f"rank {r}: {e}" for r, e in sorted(peers.items())),
                           f"rank 0: {error}"])
        self._stopped = (f"DDP ranks cannot go on after child {index} failed inside fit "
                         f"({error})")
        return error


class RungStopper(Callback):
    """Report a child's reward after each epoch; stop it where its rung says so.

    ``search.scheduler`` (:mod:`nas_lightning.execution.schedulers`). Under DDP
    every rank reports (ranks that run the search each keep a table) and rank
    0's decision is every rank's.

    Args:
        table: a :class:`~nas_lightning.execution.schedulers.RungTable` (or its
            Ray actor's client): ``report(index, epoch, reward) -> stop``.
        index: the child's number.
        score: the reward of the child's metrics so far (None: validation accuracy).
        extra: metrics measured before training (latency, MACs), seen by ``score``.
        params: the network's trainable parameters, seen by ``score``.
    """

    def __init__(self, table: Any, index: int,
                 score: Callable[[ChildMetrics], float] | None,
                 extra: dict[str, Any], params: int) -> None:
        self.table, self.index, self.score, self.extra = table, index, score, dict(extra)
        self.params = params

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        acc = float(trainer.callback_metrics["val/acc"])
        value = acc
        if self.score is not None:
            metrics = ChildMetrics(val_acc=acc, val_curve=[], params=self.params,
                                   extra=dict(self.extra))
            value = safe_score(self.score, metrics)
        stop = self.table.report(self.index, trainer.current_epoch + 1, value)
        if trainer.world_size > 1:
            stop = trainer.strategy.broadcast(stop, src=0)
        if stop:
            trainer.should_stop = True


class ChildMetricsCallback(Callback):
    """Collect a child's validation results at the end of its ``fit``.

    Under DDP every rank ends ``fit`` with the same synced accuracy (the
    metric is reduced across ranks); figures measured outside the Trainer
    (latency, seconds) differ per rank, so every rank takes rank 0's and
    all ranks compute the same reward and make the same controller update.

    Args:
        monitor: the logged metric holding validation accuracy.
        extra: metrics measured before training (latency, MACs).
    """

    def __init__(self, monitor: str = "val/acc", extra: dict[str, Any] | None = None) -> None:
        self.monitor = monitor
        self.extra = dict(extra or {})
        self.calls = 0
        self.val_acc: float | None = None
        self.val_curve: list[float] = []
        self.params = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        logged = trainer.callback_metrics
        if self.monitor not in logged:
            raise MisconfigurationException(
                f"ChildMetricsCallback(monitor={self.monitor!r}) found no such metric; "
                f"logged metrics: {sorted(logged)}"
            )
        self.val_acc = float(logged[self.monitor])
        if trainer.world_size > 1:
            self.extra, seconds = trainer.strategy.broadcast((self.extra, seconds), src=0)
        self.seconds = seconds
        self.val_curve = list(getattr(pl_module, "val_curve", []) or [self.val_acc])
        self.params = count_params(getattr(pl_module, "net", pl_module))
        self.calls += 1


def worker_name() -> str:
    """``pid@host`` of this process: where a child ran."""
    return f"{os.getpid()}@{socket.gethostname()}"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: Any) -> str | None:
    """``child.compile`` as a ``torch.compile`` mode, or None when off.

    Off by default: compiling takes minutes per child on a CPU, longer than a
    proxy child trains, and did not speed CPU training up; on a GPU it can
    pay off for long children.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    raise ConfigError(
        "child.compile", f"must be true, false or one of {list(COMPILE_MODES)}, got {value!r}"
    )


def _split(marks: dict[str, float], timer: ChildTimer, end: float) -> dict[str, float]:
    """Seconds of each phase of a child, up to the moment its record is written.

    ``build`` the network; ``probe`` the latency probe (0 without one);
    ``init`` the LightningModule and Trainer; ``setup`` from ``fit`` to the
    first training batch (optimizer, loaders); ``train`` inside training
    steps; ``val`` validation; ``other`` the rest of ``fit`` (hooks between
    phases, teardown, the reward).
    """
    build = marks.get("build", marks["start"])
    probe = marks.get("probe", build)
    init = marks.get("init", probe)
    first = timer.first_batch if timer.first_batch is not None else end
    out = {
        "build": build - marks["start"],
        "probe": probe - build,
        "init": init - probe,
        "setup": max(0.0, first - init),
        "train": timer.train,
        "val": timer.val,
    }
    out["other"] = max(0.0, end - marks["start"] - sum(out.values()))
    out = {k: round(v, 4) for k, v in out.items()}
    out["train_steps"] = timer.steps
    return out
