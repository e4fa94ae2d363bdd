"""The LightningModule that trains one child network.

It trains any ``nn.Module`` classifier, so the same module serves the search
(short proxy training) and ``train.py`` (full training). Accuracy comes from
torchmetrics, which reduces across DDP ranks, so every rank sees the same
validation accuracy and therefore computes the same reward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import move_data_to_device
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn
from torchmetrics.classification import MulticlassAccuracy

from nas_lightning.errors import ConfigError

OptimizerFactory = Callable[..., torch.optim.Optimizer]



#: Fewer channels than this in any convolution: train in the default memory format.
CHANNELS_LAST_MIN = 8


def channels_last_safe(net: nn.Module) -> bool:
    """Whether ``net`` may train in channels-last memory format on a CPU.

    Torch's CPU channels-last convolution backward corrupts memory (crashes
    with ``free(): invalid next size`` or a segmentation fault) on some CPUs
    when a convolution has very few channels, as the tiny networks of tests
    and smoke runs do; real networks have many more. Channels-last is a speed
    option only, so such networks train in the default format instead.
    """
    return all(m.in_channels >= CHANNELS_LAST_MIN and m.out_channels >= CHANNELS_LAST_MIN
               for m in net.modules() if isinstance(m, nn.Conv2d))

class ChildDivergedError(RuntimeError):
    """The child's training loss became NaN or infinite."""


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


class ChildModule(pl.LightningModule):
    """Train and validate a classifier.

    Args:
        net: the network (logits out).
        num_classes: classes of the task, for the accuracy metrics.
        optimizer: a factory ``params -> Optimizer`` (a Hydra partial of e.g.
            ``torch.optim.SGD``); default SGD(lr=0.05, momentum=0.9, nesterov).
        scheduler: ``cosine`` (per step, to 0 over the whole fit) or ``none``.
        warmup_steps: linear warm-up steps before the schedule.
        label_smoothing: cross-entropy label smoothing.
        channels_last: train in channels-last memory format (much faster
            for convolutions on CPUs and on GPUs with tensor cores).
        bn_recalibration_batches: before each validation during fit,
            recompute BatchNorm statistics on this many training batches
            (0: off); see :meth:`recalibrate_batchnorm`.
        test_flip: also score the test set with horizontal-flip test-time
            augmentation (``test/acc_flip``, beside the plain ``test/acc``).
        aux_weight: weight of the auxiliary head's loss when the network
            returns ``(logits, aux_logits)`` in training (NASNet: 0.4); 0
            ignores the auxiliary logits.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory | None = None,
        scheduler: str = "cosine",
        warmup_steps: int = 0,
        label_smoothing: float = 0.0,
        channels_last: bool = True,
        aux_weight: float = 0.0,
        bn_recalibration_batches: int = 0,
        test_flip: bool = False,
    ) -> None:
        super().__init__()
        if scheduler not in ("cosine", "none"):
            raise ConfigError("scheduler", f"must be 'cosine' or 'none', got {scheduler!r}")
        if not 0 <= label_smoothing < 1:
            raise ConfigError("label_smoothing", f"must be in [0, 1), got {label_smoothing}")
        if not aux_weight >= 0:
            raise ConfigError("aux_weight", f"must be >= 0, got {aux_weight}")
        self.net = net
        self.optimizer_factory = optimizer or (
            lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True)
        )
        self.scheduler_name = scheduler
        self.warmup_steps = warmup_steps
        self.label_smoothing = label_smoothing
        self.channels_last = channels_last
        self.aux_weight = aux_weight
        if bn_recalibration_batches < 0:
            raise ConfigError(
                "bn_recalibration_batches", f"must be >= 0, got {bn_recalibration_batches}"
            )
        self.bn_recalibration_batches = bn_recalibration_batches
        if channels_last and not channels_last_safe(self.net):
            self.channels_last = False  # see channels_last_safe
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_flip = bool(test_flip)
        self.test_acc_flip = MulticlassAccuracy(num_classes, average="micro")
        self.val_curve: list[float] = []
        self.train_loss_last = math.nan
        self._loss_sum, self._loss_count = torch.zeros(()), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _logits(self, out: Any) -> torch.Tensor:
        """Networks with auxiliary heads return ``(logits, aux_logits)``."""
        return out[0] if isinstance(out, tuple) else out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        out = self(x)
        loss = self.compute_loss(out, y)
        if not torch.isfinite(loss):
            raise ChildDivergedError(f"training loss is {loss.item()} at step {self.global_step}")
        self.train_acc.update(self._logits(out).detach(), y)
        # Epoch means, summed here and logged once in on_train_epoch_end: two
        # self.log calls per step cost a large share of a proxy child's short
        # step (BENCHMARKS.md).
        self._loss_sum = self._loss_sum + loss.detach() * len(y)
        self._loss_count += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_count = torch.zeros((), device=self.device), 0

    def on_train_epoch_end(self) -> None:
        if self._loss_count:  # the same values as self.log(..., on_epoch=True) each step
            self.log("train/loss", self._loss_sum / self._loss_count, sync_dist=True)
            self.log("train/acc", self.train_acc.compute())  # reduced across ranks
        self.train_acc.reset()

    def compute_loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, plus ``aux_weight`` times the auxiliary head's."""
        loss = F.cross_entropy(self._logits(out), y, label_smoothing=self.label_smoothing)
        if self.aux_weight and isinstance(out, tuple):
            aux = F.cross_entropy(out[1], y, label_smoothing=self.label_smoothing)
            loss = loss + self.aux_weight * aux
        return loss

    def on_validation_epoch_start(self) -> None:
        if self.bn_recalibration_batches and self.trainer.state.fn == "fit":
            self.recalibrate_batchnorm(self.bn_recalibration_batches)

    @torch.no_grad()
    def recalibrate_batchnorm(self, num_batches: int) -> None:
        """Recompute BatchNorm running statistics on ``num_batches`` training batches.

        After a proxy training of a few dozen steps, the running averages lag
        far behind the weights, and validation in eval mode scores near chance
        for some networks (a width-0.25 MnasNet-A1 proxy child scored at chance
        with running statistics, far above it with batch statistics; see
        docs/mnasnet.md). Recomputing them as an
        exact average over a few batches removes that noise from the reward.
        """
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        datamodule = getattr(self.trainer, "datamodule", None)
        if not norms or datamodule is None:
            return

        def inputs():
            for i, batch in enumerate(datamodule.train_dataloader()):
                if i >= num_batches:
                    break
                # The datamodule's own transform (normalisation), once: the strategy's
                # batch_to_device would run it too. No augmentation: the trainer is
                # validating, not training.
                x, _ = datamodule.on_after_batch_transfer(
                    move_data_to_device(batch, self.device), 0
                )
                yield x

        # torch's own recalibration: reset, cumulative average (momentum None)
        # in train mode over the batches, then momenta and mode restored.
        update_bn(inputs(), self)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self._logits(self(x))
        self.val_acc.update(logits, y)
        loss = F.cross_entropy(logits, y)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        acc = self.val_acc.compute()  # reduced across ranks by torchmetrics
        self.val_acc.reset()
        self.log("val/acc", acc, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.val_curve.append(float(acc))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self._logits(self(x))
        self.test_acc.update(logits, y)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True, batch_size=len(y))
        if self.test_flip:
            # Test-time augmentation in the same pass over the test set: the
            # mean of the softmaxes of the image and its mirror image.
            flipped = self._logits(self(torch.flip(x, dims=[-1])))
            probs = (logits.softmax(-1) + flipped.softmax(-1)) / 2
            self.test_acc_flip.update(probs, y)
            self.log(
                "test/acc_flip", self.test_acc_flip, on_step=False, on_epoch=True,
                batch_size=len(y),
            )

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_name == "none" and not self.warmup_steps:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.warmup_steps, total - 1)
        cosine = self.scheduler_name == "cosine"

        # A closed form in LambdaLR rather than SequentialLR(LinearLR,
        # CosineAnnealingLR): torch's cosine is computed recursively and its
        # rates differ from the closed form in the last bits, so seeded reruns
        # of earlier runs would no longer be bit-identical.
        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}
