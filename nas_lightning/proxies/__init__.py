"""Scores of untrained networks (zero-cost proxies), to rank architectures before training."""

from nas_lightning.proxies.zero_cost import PROXIES, score

__all__ = ["PROXIES", "score"]
