"""ChildModule details that a search's reward depends on."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from nas_lightning.child import ChildModule
from nas_lightning.data.base import ImageDataModule
from nas_lightning.utils import quiet_lightning


class ConstantImages(ImageDataModule):
    """Every training image is the grey level ``train_value``; labels alternate."""

    in_channels, num_classes, image_size = 1, 2, 4
    mean, std = (0.25,), (0.5,)

    def __init__(self, train_value: int, **kwargs) -> None:
        super().__init__(augment=False, **kwargs)
        self.train_value = train_value

    def load(self):
        x = np.full((64, 4, 4), self.train_value, np.uint8)
        y = np.arange(64) % 2
        return x, y, x[:8], y[:8]


def _fit(recalibration_batches: int) -> nn.BatchNorm2d:
    quiet_lightning()
    bn = nn.BatchNorm2d(1, affine=False)
    net = nn.Sequential(bn, nn.Flatten(), nn.Linear(16, 2))
    module = ChildModule(
        net, num_classes=2, bn_recalibration_batches=recalibration_batches, channels_last=False
    )
    dm = ConstantImages(train_value=204, batch_size=16, val_size=16)
    # One training step moves the running mean 10% of the way (momentum 0.1).
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    return bn


def test_bn_recalibration_uses_normalised_training_batches():
    normalised = (204 / 255 - 0.25) / 0.5  # what the network sees in training: 1.1
    bn = _fit(recalibration_batches=2)
    # an exact average over the recalibration batches of the images as trained on
    assert torch.allclose(bn.running_mean, torch.tensor([normalised]), atol=1e-5)
    assert float(bn.running_var) < 1e-5
    assert int(bn.num_batches_tracked) == 2
    assert bn.momentum == 0.1  # restored


def test_without_recalibration_running_mean_lags():
    normalised = (204 / 255 - 0.25) / 0.5
    bn = _fit(recalibration_batches=0)
    assert torch.allclose(bn.running_mean, torch.tensor([0.1 * normalised]), atol=1e-5)


def test_child_metrics_take_rank_zeros_latency_under_ddp():
    """Latency measured per rank would give each rank its own reward: rank 0's is used."""
    from types import SimpleNamespace

    from nas_lightning.execution.base import Result
    from nas_lightning.execution.evaluator import ChildMetricsCallback
    from nas_lightning.rewards.base import ChildMetrics

    class Broadcast:
        def broadcast(self, obj, src=0):
            assert src == 0
            return ({"latency_ms": 10.0}, 1.0)  # what rank 0 holds

    def reward(m: ChildMetrics) -> float:
        return m.val_acc / m.extra["latency_ms"]

    module = SimpleNamespace(val_curve=[0.5], net=nn.Linear(2, 2))
    for world_size, expected in ((1, 0.5 / 40.0), (2, 0.5 / 10.0)):
        cb = ChildMetricsCallback(extra={"latency_ms": 40.0})
        trainer = SimpleNamespace(
            callback_metrics={"val/acc": torch.tensor(0.5)},
            world_size=world_size,
            strategy=Broadcast(),
        )
        cb.on_fit_start(trainer, module)
        cb.on_fit_end(trainer, module)
        result = Result(index=0, val_acc=cb.val_acc, val_curve=cb.val_curve, params=cb.params,
                        extra=cb.extra, train_seconds=cb.seconds)
        assert reward(result.metrics()) == expected
        assert result.params == 6 and (world_size == 1 or cb.seconds == 1.0)


def test_networks_with_very_few_channels_train_in_the_default_memory_format():
    """Torch's CPU channels-last backward corrupts memory on some CPUs for convolutions
    of a few channels (a 4-filter search child crashed): such networks stay contiguous."""
    import torch
    from torch import nn

    from nas_lightning.child import ChildModule, channels_last_safe

    tiny = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 1, stride=2), nn.Flatten())
    wide = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Conv2d(16, 8, 1, stride=2), nn.Flatten())
    assert not channels_last_safe(tiny) and channels_last_safe(wide)
    assert ChildModule(tiny, 10, channels_last=True).channels_last is False
    module = ChildModule(wide, 10, channels_last=True)
    assert module.channels_last is True
    assert module.net[0].weight.is_contiguous(memory_format=torch.channels_last)
