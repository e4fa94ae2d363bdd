"""Random search: the baseline every strategy must beat.

Each proposal is drawn uniformly over the active decisions of the space,
independently of every reward, from the strategy's own seeded ``random.Random``.
Anchor decisions are categorical over their bitmasks, so a skip-connection
pattern is as likely as any other.

With ``dedup_tries`` > 0 (the ``random`` preset) a draw that was already
proposed is drawn again, up to that many times: uniform sampling without
replacement while the space has room, which is what a user paying for each
child expects; once the space is (nearly) exhausted repeats come back.
"""

from __future__ import annotations

from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy


class RandomSearch(Strategy):
    """Uniform sampling; learns nothing from rewards.

    Args:
        space: the search space.
        dedup_tries: redraws of an architecture already proposed (0: with
            replacement, every draw is kept).
        seed: the same seed gives the same sequence of proposals.
    """

    def __init__(self, space: SearchSpace, dedup_tries: int = 0, seed: int = 0) -> None:
        super().__init__(space, seed)
        self._avoid_repeats(dedup_tries)

    def _propose(self, n: int) -> list[Proposal]:
        return [self._remember(self._make(self._sample_unproposed())) for _ in range(n)]
