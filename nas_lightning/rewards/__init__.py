"""Rewards computed from a trained child's metrics."""

from nas_lightning.rewards.base import ChildMetrics, MaxRecentAccuracy, ValAccuracy
from nas_lightning.rewards.mnas import MnasReward

__all__ = ["ChildMetrics", "MaxRecentAccuracy", "MnasReward", "ValAccuracy"]
