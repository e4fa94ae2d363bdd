"""The controller callback: the adapter between a child's Trainer and the strategy.

After a child finishes training, it reads the child's metrics, computes the
reward, lets the search record the child (so the record exists before the
controller learns), then calls ``strategy.tell`` exactly once: the
reward-scaled gradient step of REINFORCE/PPO. Under DDP every rank runs it
with the same synced accuracy, rank 0's latency and timings (broadcast) and
the same seeded controller, so every rank makes the same update.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from nas_lightning.child import count_params
from nas_lightning.rewards.base import ChildMetrics
from nas_lightning.strategies.base import Proposal, Strategy


class ControllerCallback(Callback):
    """Tell the strategy the child's reward when the child's fit ends.

    Args:
        strategy: the search strategy to update.
        proposal: the architecture this Trainer trains.
        reward_fn: ``ChildMetrics -> float``.
        monitor: the logged metric holding validation accuracy.
        extra: metrics measured before training (latency, MACs), passed
            to the reward in ``ChildMetrics.extra``.
        before_tell: called as ``before_tell(metrics, reward)`` before the
            strategy learns; the search writes the child's record there.
    """

    def __init__(
        self,
        strategy: Strategy,
        proposal: Proposal,
        reward_fn: Callable[[ChildMetrics], float],
        monitor: str = "val/acc",
        extra: dict[str, Any] | None = None,
        before_tell: Callable[[ChildMetrics, float], None] | None = None,
    ) -> None:
        self.strategy = strategy
        self.proposal = proposal
        self.reward_fn = reward_fn
        self.monitor = monitor
        self.extra = dict(extra or {})
        self.before_tell = before_tell
        self.calls = 0
        self.reward: float | None = None
        self.metrics: ChildMetrics | None = None
        self.stats: dict[str, float] = {}
        self._start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        logged = trainer.callback_metrics
        if self.monitor not in logged:
            raise MisconfigurationException(
                f"ControllerCallback(monitor={self.monitor!r}) found no such metric; "
                f"logged metrics: {sorted(logged)}"
            )
        val_acc = float(logged[self.monitor])
        if trainer.world_size > 1:
            # Metrics measured outside the Trainer (latency, timing) differ per rank:
            # every rank takes rank 0's, so all compute the same reward and update.
            self.extra, seconds = trainer.strategy.broadcast((self.extra, seconds), src=0)
        curve = list(getattr(pl_module, "val_curve", []) or [val_acc])
        net = getattr(pl_module, "net", pl_module)
        self.metrics = ChildMetrics(
            val_acc=val_acc,
            val_curve=curve,
            params=count_params(net),
            train_seconds=seconds,
            extra=self.extra,
        )
        reward = float(self.reward_fn(self.metrics))
        if not math.isfinite(reward):
            raise ValueError(f"reward is {reward} for val_acc={val_acc}")
        self.reward = reward
        if self.before_tell is not None:
            self.before_tell(self.metrics, reward)
        # A multi-objective strategy (NSGA2) picks its values from the metrics;
        # any object with ask/tell will do, so the hook is optional.
        pick = getattr(self.strategy, "objective_values", None)
        value = reward if pick is None else pick(reward, self.metrics)
        self.stats = self.strategy.tell(self.proposal, value)
        self.calls += 1
