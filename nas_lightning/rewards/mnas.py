"""MnasNet's multi-objective reward (Tan et al. 2019, eq. 2)."""

from __future__ import annotations

import math

from nas_lightning.errors import ConfigError
from nas_lightning.rewards.base import ChildMetrics


class MnasReward:
    """Reward = ACC × (LAT / T) ** w, with w = ``alpha`` if LAT <= T else ``beta``.

    The exponent trades accuracy for latency: with the soft preset
    (α = β = -0.07) a model twice as fast as another is worth about 5% more
    relative accuracy on either side of T, so the search explores the whole
    front; with the hard preset (α = 0, β = -1) latency does not matter under
    T and is penalised steeply above it.

    Args:
        target_ms: the latency target T in milliseconds (paper: 75 ms on a Pixel 1).
        alpha: exponent when LAT <= T.
        beta: exponent when LAT > T.
        key: where the latency is read in ``ChildMetrics.extra`` (the latency
            probe writes ``latency_ms``).
    """

    def __init__(
        self,
        target_ms: float = 75.0,
        alpha: float = -0.07,
        beta: float = -0.07,
        key: str = "latency_ms",
    ) -> None:
        if not isinstance(target_ms, int | float) or not math.isfinite(target_ms) or target_ms <= 0:
            raise ConfigError("target_ms", f"must be a positive number of ms, got {target_ms!r}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(name, f"must be a finite number, got {value!r}")
        self.target_ms, self.alpha, self.beta, self.key = float(target_ms), alpha, beta, key

    def exponent(self, latency_ms: float) -> float:
        """w for a given latency."""
        return self.alpha if latency_ms <= self.target_ms else self.beta

    def __call__(self, metrics: ChildMetrics) -> float:
        if self.key not in metrics.extra:
            raise ConfigError(
                "latency",
                f"MnasReward needs metrics.extra[{self.key!r}] from a latency probe "
                f"(set latency=eager_cpu or another conf/latency preset); "
                f"extra has {sorted(metrics.extra)}",
            )
        latency = metrics.extra[self.key]
        if latency is None or not math.isfinite(latency) or latency <= 0:
            raise ValueError(f"{self.key} must be a positive number of ms, got {latency!r}")
        latency = float(latency)
        return float(metrics.val_acc) * (latency / self.target_ms) ** self.exponent(latency)

    def __repr__(self) -> str:
        return f"MnasReward(target_ms={self.target_ms}, alpha={self.alpha}, beta={self.beta})"
