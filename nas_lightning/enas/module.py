"""ENAS's alternation as one Lightning training of the supernet.

Each training step samples an architecture (``strategy.ask()``) and trains
the shared weights on one minibatch through that architecture's sub-graph.
After each epoch the controller trains for ``controller_steps`` steps: sample,
reward = accuracy on one validation minibatch with the shared weights (plus
``entropy_reward_weight`` times the sample's entropy, as in the paper),
``strategy.tell``. The strategy is the standalone search's (REINFORCE, PPO,
or any other ask/tell strategy); it owns the controller and its optimizer, so
Lightning's optimizer only ever steps the supernet.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from nas_lightning.core.child_record import ChildRecord
from nas_lightning.enas.supernet import Supernet
from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import genotype_to_dict
from nas_lightning.strategies.base import Proposal, Strategy

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class EnasHooks:
    """Where the module reports what it does; the search writes and logs it.

    The module stays testable without a run folder: these defaults do nothing.
    """

    def supernet_step(self, metrics: dict[str, float]) -> None:
        """Every ``log_every_n_steps`` supernet steps: loss, accuracy, learning rate."""

    def controller_record(self, record: dict[str, Any]) -> None:
        """One controller step's sample and reward, *before* the strategy learns from it."""

    def controller_told(self, record: dict[str, Any], stats: dict[str, float]) -> None:
        """The same step after ``tell``, with the strategy's statistics."""

    def epoch_end(self, epoch: int, steps: int, records: list[dict[str, Any]]) -> None:
        """After an epoch's controller steps (their records given)."""


@contextmanager
def batch_statistics(net: nn.Module) -> Iterator[None]:
    """BatchNorm normalises with each batch's statistics and updates nothing.

    Running averages of a shared network mix every sampled architecture, so
    they fit none; ENAS scores sub-graphs with batch statistics. Nothing in
    ``net`` changes (running statistics, counters), so scoring never
    perturbs the shared weights.
    """
    saved = []
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.training, m.track_running_stats))
            m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, training, track in saved:
            m.training, m.track_running_stats = training, track


class EnasModule(pl.LightningModule):
    """Trains a :class:`Supernet` and, between epochs, the strategy's controller.

    Args:
        supernet: the shared network.
        strategy: proposes architectures and learns from rewards.
        optimizer: ``params -> Optimizer`` for the shared weights (SGD).
        lr_min: the cosine schedule's final learning rate (per step).
        controller_steps: controller steps after each supernet epoch.
        controller_batch_size: validation images per controller reward.
        entropy_reward_weight: the sample's entropy times this is added to
            the reward (ENAS: 1e-4); none for strategies without a controller.
        channels_last: run convolutions in channels-last memory format.
        hooks: receives records and metrics (default: none).
        log_every_n_steps: supernet metrics every this many steps.
        seed: seeds the choice of validation minibatches.
    """

    def __init__(
        self,
        supernet: Supernet,
        strategy: Strategy,
        optimizer: OptimizerFactory | None = None,
        lr_min: float = 0.0,
        controller_steps: int = 10,
        controller_batch_size: int = 128,
        entropy_reward_weight: float = 0.0,
        channels_last: bool = True,
        hooks: EnasHooks | None = None,
        log_every_n_steps: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(controller_steps, int) or controller_steps < 0:
            raise ConfigError(
                "controller_steps", f"must be an integer >= 0, got {controller_steps!r}"
            )
        if not isinstance(controller_batch_size, int) or controller_batch_size < 1:
            raise ConfigError(
                "controller_batch_size", f"must be an integer >= 1, got {controller_batch_size!r}"
            )
        if entropy_reward_weight < 0:
            raise ConfigError("entropy_reward_weight", f"must be >= 0, got {entropy_reward_weight}")
        if entropy_reward_weight and strategy.controller is None:
            log.info("%s samples without a controller: no entropy bonus in the reward",
                     type(strategy).__name__)
            entropy_reward_weight = 0.0
        if lr_min < 0:
            raise ConfigError("lr_min", f"must be >= 0, got {lr_min}")
        if not isinstance(log_every_n_steps, int) or log_every_n_steps < 1:
            raise ConfigError(
                "log_every_n_steps", f"must be an integer >= 1, got {log_every_n_steps!r}"
            )
        self.supernet = supernet
        self.strategy = strategy  # a plain object: its controller is not a submodule
        self.optimizer_factory = optimizer or (
            lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True)
        )
        self.lr_min = lr_min
        self.controller_steps = controller_steps
        self.controller_batch_size = controller_batch_size
        self.entropy_reward_weight = entropy_reward_weight
        self.channels_last = channels_last
        self.hooks = hooks or EnasHooks()
        self.log_every_n_steps = log_every_n_steps
        self.val_generator = torch.Generator().manual_seed(int(seed))
        self.controller_step = 0  # controller steps done, over the whole search
        self.scoring_data: Any = None  # set by use_data(); else the Trainer's datamodule
        if channels_last:
            self.supernet = self.supernet.to(memory_format=torch.channels_last)

    # -- supernet ----------------------------------------------------------
    def forward(self, x: torch.Tensor, genotype: Any) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.supernet(x, genotype)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        proposal = self.strategy.ask()
        logits = self(x, proposal.genotype)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"supernet loss is {loss.item()} at step {self.global_step}")
        if self.global_step % self.log_every_n_steps == 0:
            acc = (logits.detach().argmax(1) == y).float().mean()
            self.hooks.supernet_step(
                {
                    "supernet/step": self.global_step,
                    "supernet/epoch": self.current_epoch,
                    "supernet/loss": float(loss.detach()),
                    "supernet/acc": float(acc),
                    "supernet/lr": self.trainer.optimizers[0].param_groups[0]["lr"],
                }
            )
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.supernet.parameters())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        base = optimizer.param_groups[0]["lr"]
        floor = self.lr_min / base if base > 0 else 0.0

        def cosine(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- controller --------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        records = self.train_controller(self.controller_steps)
        self.hooks.epoch_end(self.current_epoch, self.global_step, records)

    def use_data(self, datamodule: Any) -> None:
        """Score controller steps on ``datamodule``'s validation split outside ``fit``.

        Lets benchmarks and analysis run :meth:`train_controller` on a supernet
        that no Trainer holds; during ``fit`` the Trainer's datamodule is used.
        """
        self.scoring_data = datamodule

    def _val_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        datamodule = self.scoring_data or self.trainer.datamodule
        data = datamodule.data["val"]
        n = len(data)
        index = torch.randperm(n, generator=self.val_generator)[: min(size, n)]
        x, y = data[index]
        x = datamodule.normalize(x.to(self.device))
        return x, y.to(self.device)

    @torch.no_grad()
    def accuracy(self, genotype: Any, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy of ``genotype``'s sub-graph on one batch, with batch statistics."""
        with batch_statistics(self.supernet):
            return float((self(x, genotype).argmax(1) == y).float().mean())

    def _sample_entropy(self, proposal: Proposal) -> float:
        steps = int(proposal.info.get("steps", len(proposal.actions)))
        with torch.no_grad():
            out = self.strategy.controller(actions=torch.tensor([proposal.actions[:steps]]))
        return float(out.entropy[0])

    def train_controller(self, steps: int) -> list[dict[str, Any]]:
        """``steps`` controller steps on validation minibatches; returns their records."""
        records = []
        for _ in range(steps):
            start = time.perf_counter()
            proposal = self.strategy.ask()
            x, y = self._val_batch(self.controller_batch_size)
            acc = self.accuracy(proposal.genotype, x, y)
            entropy = self._sample_entropy(proposal) if self.entropy_reward_weight else None
            reward = acc + (self.entropy_reward_weight * entropy if entropy is not None else 0.0)
            record = ChildRecord(
                index=self.controller_step,
                status="ok",
                reward=reward,
                val_acc=acc,
                seconds=round(time.perf_counter() - start, 4),
                genotype=genotype_to_dict(proposal.genotype),
                actions=tuple(proposal.actions),
                steps=proposal.info.get("steps"),
                weight_sharing=True,
                extra={
                    "epoch": self.current_epoch,
                    "supernet_step": self.global_step,
                    "val_images": len(y),
                    "sample_entropy": entropy,
                },
            ).to_dict()
            self.hooks.controller_record(record)
            stats = self.strategy.tell(proposal, reward)
            self.controller_step += 1
            self.hooks.controller_told(record, stats)
            records.append(record)
        return records

    @torch.no_grad()
    def score(self, genotype: Any, datamodule: Any, batch_size: int = 500) -> float:
        """Accuracy of ``genotype``'s sub-graph on the whole validation split."""
        data = datamodule.data["val"]
        correct = 0
        for start in range(0, len(data), batch_size):
            x, y = data[torch.arange(start, min(start + batch_size, len(data)))]
            x, y = datamodule.normalize(x.to(self.device)), y.to(self.device)
            with batch_statistics(self.supernet):
                correct += int((self(x, genotype).argmax(1) == y).sum())
        return correct / len(data)

    # -- checkpoints -------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["enas"] = {
            "strategy": self.strategy.state_dict(),
            "controller_step": self.controller_step,
            "val_generator": self.val_generator.get_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["enas"]
        self.strategy.load_state_dict(state["strategy"])
        self.controller_step = int(state["controller_step"])
        self.val_generator.set_state(state["val_generator"])
