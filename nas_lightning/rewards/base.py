"""Rewards: what a strategy maximises, computed from a child's metrics.

A reward is a callable ``ChildMetrics -> float``, chosen in ``conf/reward/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas_lightning.errors import ConfigError


@dataclass
class ChildMetrics:
    """What is known about a trained child when its reward is computed.

    Attributes:
        val_acc: validation accuracy at the end of training (0..1).
        val_curve: validation accuracy after each validation run, in order.
        params: trainable parameters.
        train_seconds: wall time of training and validation.
        extra: anything else measured (e.g. ``latency_ms``, ``macs``).
    """

    val_acc: float
    val_curve: list[float] = field(default_factory=list)
    params: int = 0
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ValAccuracy:
    """Reward = final validation accuracy (NASNet)."""

    def __call__(self, metrics: ChildMetrics) -> float:
        return float(metrics.val_acc)


class MaxRecentAccuracy:
    """Reward = (max validation accuracy over the last ``last`` runs) ** ``power``.

    NAS-RL's reward is ``last=5, power=3``: the cube sharpens differences
    between good children, and the max over recent epochs smooths noise.
    """

    def __init__(self, last: int = 5, power: float = 3.0) -> None:
        if last < 1:
            raise ConfigError("last", f"must be >= 1, got {last}")
        if power <= 0:
            raise ConfigError("power", f"must be > 0, got {power}")
        self.last, self.power = last, power

    def __call__(self, metrics: ChildMetrics) -> float:
        curve = metrics.val_curve or [metrics.val_acc]
        return float(max(curve[-self.last :]) ** self.power)
