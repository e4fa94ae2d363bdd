"""What a search does with a proposal of an architecture it has already trained.

``search.repeats``:

* ``reuse``: the proposal is told the recorded child's reward at once;
  nothing trains and no child is counted, and the strategy asks again. A
  strategy that only repeats has converged: after ``reuse_limit`` reused
  proposals in a row the search stops asking (and stops at the first repeat
  once every architecture of a small space was trained), rather than train
  the same network again.
* ``train``: every proposal trains as a new child, repeats too (the papers).

Only children recorded ``ok`` are reused: a repeat of a failed child, or of
one still training, trains. Architectures are known by
:func:`~nas_lightning.genotypes.base.architecture_key` (two encodings of the
same network are one architecture); a proposal without actions (NetAdapt's
edits of a genotype) always trains.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import architecture_key

Known = TypeVar("Known")

#: Spaces with at most this many action tuples are enumerated to count their
#: architectures (so that an exhausted space is told from a converged strategy).
ENUMERATE_LIMIT = 20_000


class Repeats(Generic[Known]):
    """The known children by architecture, and the rule that decides a reuse.

    Args:
        mode: ``reuse`` or ``train``.
        limit: reused proposals in a row after which the strategy has
            converged and the search stops (>= 1).
    """

    def __init__(self, mode: str = "train", limit: int = 50) -> None:
        if mode not in ("train", "reuse"):
            raise ConfigError("search.repeats", f"must be 'train' or 'reuse', got {mode!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError("search.reuse_limit", f"must be an integer >= 1, got {limit!r}")
        self.mode, self.limit = mode, limit
        self.known: dict[Hashable, Known] = {}
        self.reused = 0  # proposals answered from the known children
        self.in_row = 0  # reused since the last child was trained

    def add(self, key: Hashable | None, known: Known) -> None:
        """A child recorded ok (the first one of an architecture is kept); None: never reused."""
        if self.mode == "reuse" and key is not None:
            self.known.setdefault(key, known)

    def reuse(self, key: Hashable | None) -> Known | None:
        """The known child to answer a proposal with, or None: train it (and count a child)."""
        known = self.known.get(key) if self.mode == "reuse" and key is not None else None
        if known is None:
            self.in_row = 0
            return None
        self.reused += 1
        self.in_row += 1
        return known

    @property
    def converged(self) -> bool:
        """True after ``limit`` reused proposals in a row: the strategy only repeats."""
        return self.mode == "reuse" and self.in_row >= self.limit

    def state_dict(self) -> dict[str, Any]:
        return {"reused": self.reused, "reused_in_row": self.in_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reused = int(state.get("reused", 0))
        self.in_row = int(state.get("reused_in_row", 0))


def proposal_key(genotype: Any, actions: Any) -> Hashable | None:
    """The architecture a proposal or record stands for; None without actions (never reused)."""
    if not len(actions):
        return None
    return architecture_key(genotype, actions)


def space_architectures(space: Any, limit: int = ENUMERATE_LIMIT) -> frozenset | None:
    """The keys of every architecture of the space's live decisions; None if too many to list.

    Found by decoding every action tuple of the live decisions (the rest
    padded with 0, as strategies do).
    """
    live = space.sizes[: space.num_active]
    if math.prod(live) > limit:
        return None
    pad = (0,) * (len(space.sizes) - len(live))
    keys = set()
    for prefix in itertools.product(*(range(n) for n in live)):
        actions = (*prefix, *pad)
        keys.add(architecture_key(space.decode(actions), actions))
    return frozenset(keys)
