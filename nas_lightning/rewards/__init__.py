"""Rewards computed from a trained child's metrics."""

from nas_lightning.rewards.base import ChildMetrics, MaxRecentAccuracy, ValAccuracy

__all__ = ["ChildMetrics", "MaxRecentAccuracy", "ValAccuracy"]
