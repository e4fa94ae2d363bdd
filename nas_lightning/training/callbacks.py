"""Callbacks of the full training."""

from __future__ import annotations

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
    """

    def __init__(self, drop_prob: float) -> None:
        if not 0.0 <= drop_prob < 1.0:
            raise ConfigError("drop_path", f"must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

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
        total = int(trainer.estimated_stepping_batches)
        self._net(pl_module).set_drop_path(self.prob_at(trainer.global_step, total))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._net(pl_module).set_drop_path(0.0)
