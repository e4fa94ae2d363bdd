"""Train one child with Lightning and report its reward through the callback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from nas_lightning.callbacks import ControllerCallback
from nas_lightning.child import ChildDivergedError, ChildModule, count_params
from nas_lightning.data.base import ImageDataModule
from nas_lightning.errors import ConfigError
from nas_lightning.rewards.base import ChildMetrics
from nas_lightning.strategies.base import Proposal, Strategy

log = logging.getLogger(__name__)


@dataclass
class ChildOutcome:
    """What became of one child: its metrics and reward, or why it failed."""

    status: str  # "ok", "diverged" or "failed"
    metrics: ChildMetrics | None = None
    reward: float | None = None
    stats: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    params: int | None = None
    seconds: float = 0.0
    recorded: bool = False


class LightningEvaluator:
    """Builds, trains and validates children with a fresh Trainer each.

    Args:
        datamodule: the proxy task, loaded once and shared by all children.
        model_factory: ``(genotype, in_channels=, num_classes=) -> nn.Module``.
        trainer_factory: a Hydra partial of ``pytorch_lightning.Trainer``
            (accelerator, devices, strategy, precision ...).
        child: the proxy training recipe (``conf/child``).
        reward_fn: ``ChildMetrics -> float``.
        run_dir: the search's run folder (Trainer's default_root_dir).
        seed: base seed; child ``i`` trains with seed ``seed + i``.
        probe: optional ``probe(net, genotype, in_channels=, num_classes=) ->
            dict`` run before training (latency, MACs).
        optimizer: ``params -> Optimizer`` (the instantiated
            ``child.optimizer``); None: ChildModule's default SGD.
    """

    def __init__(
        self,
        datamodule: ImageDataModule,
        model_factory: Callable[..., nn.Module],
        trainer_factory: Callable[..., pl.Trainer],
        child: Any,
        reward_fn: Callable[[ChildMetrics], float],
        run_dir: Path,
        seed: int = 0,
        probe: Callable[..., dict[str, Any]] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> None:
        self.datamodule = datamodule
        self.model_factory = model_factory
        self.trainer_factory = trainer_factory
        self.child = child
        self.reward_fn = reward_fn
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.probe = probe
        self.optimizer_factory = optimizer
        if int(child.epochs) < 1:
            raise ConfigError("child.epochs", f"must be >= 1, got {child.epochs}")

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

    def evaluate(
        self,
        index: int,
        proposal: Proposal,
        strategy: Strategy,
        before_tell: Callable[[ChildOutcome], None],
    ) -> ChildOutcome:
        """Train child ``index``; the callback tells the strategy its reward.

        A child that crashes or diverges is returned with its status and a
        one-line error; the strategy is not told (the loop decides).
        """
        start = time.perf_counter()
        pl.seed_everything(self.seed + index, workers=True, verbose=False)
        self.datamodule.seed = self.seed + index
        outcome = ChildOutcome(status="ok")
        callback: ControllerCallback | None = None
        try:
            net = self.build(proposal.genotype)
            outcome.params = count_params(net)
            extra = {}
            if self.probe is not None:
                extra = dict(self.probe(
                    net,
                    proposal.genotype,
                    in_channels=self.datamodule.in_channels,
                    num_classes=self.datamodule.num_classes,
                ))
            module = ChildModule(
                net,
                num_classes=self.datamodule.num_classes,
                optimizer=self.optimizer_factory,
                scheduler=self.child.get("scheduler", "cosine"),
                warmup_steps=int(self.child.get("warmup_steps", 0)),
                label_smoothing=float(self.child.get("label_smoothing", 0.0)),
                channels_last=bool(self.child.get("channels_last", True)),
            )

            def record_then_tell(metrics: ChildMetrics, reward: float) -> None:
                outcome.metrics, outcome.reward = metrics, reward
                outcome.seconds = time.perf_counter() - start
                before_tell(outcome)
                outcome.recorded = True

            callback = ControllerCallback(
                strategy, proposal, self.reward_fn, extra=extra, before_tell=record_then_tell
            )
            trainer = self.make_trainer([callback])
            trainer.fit(module, datamodule=self.datamodule)
            if callback.calls != 1:
                raise RuntimeError("training ended without validation (no reward computed)")
            outcome.stats = callback.stats
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a bad child must not end the search
            if outcome.recorded:  # failed after the record: the strategy's update
                raise
            outcome.status = "diverged" if isinstance(err, ChildDivergedError) else "failed"
            outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            log.warning("child %d %s: %s", index, outcome.status, outcome.error)
        finally:
            outcome.seconds = time.perf_counter() - start
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return outcome
