"""Rank correlations for judging proxies: Kendall's tau-b, Spearman's rho, bootstrap intervals.

Pure Python (no SciPy): the scores compared are tens of architectures, not
millions. Ties are handled as SciPy does (tau-b; Spearman on average ranks).
A constant list has no ranking: its correlations are ``nan``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"rank correlation of lists of different lengths ({len(x)}, {len(y)})")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (``nan`` with fewer than 2 pairs or a constant list)."""
    _check(x, y)
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks."""
    _check(x, y)
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def bootstrap_interval(
    x: Sequence[float], y: Sequence[float],
    statistic: Callable[[Sequence[float], Sequence[float]], float] = kendall_tau_b,
    samples: int = 2000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic(x, y)``, resampling the pairs."""
    _check(x, y)
    if len(x) < 3:
        return math.nan, math.nan
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        pick = [rng.randrange(len(x)) for _ in x]
        value = statistic([x[i] for i in pick], [y[i] for i in pick])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    values.sort()
    lo = values[int((1 - level) / 2 * (len(values) - 1))]
    hi = values[int((1 + level) / 2 * (len(values) - 1))]
    return lo, hi
