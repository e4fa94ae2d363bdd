"""Random search: the baseline every strategy must beat.

Each proposal is drawn uniformly over the active decisions of the space,
independently of every reward, from the strategy's own seeded ``random.Random``.
Anchor decisions are categorical over their bitmasks, so a skip-connection
pattern is as likely as any other.
"""

from __future__ import annotations

from nas_lightning.strategies.base import Proposal, Strategy


class RandomSearch(Strategy):
    """Uniform sampling with replacement; learns nothing from rewards.

    Args:
        space: the search space.
        seed: the same seed gives the same sequence of proposals.
    """

    def _propose(self, n: int) -> list[Proposal]:
        return [self._make(self.space.sample(self.rng)) for _ in range(n)]
