"""What a search does with a proposal of an architecture it has already trained.

``search.repeats``:

* ``reuse``: the proposal is told the recorded child's reward at once;
  nothing trains and no child is counted, and the strategy asks again. A
  strategy that only repeats (a converged controller) would ask forever, so
  after ``reuse_limit`` reused proposals in a row the next repeat trains as a
  new child (a fresh measurement of it).
* ``train``: every proposal trains as a new child, repeats too (the papers).

Only children recorded ``ok`` are reused: a repeat of a failed child, or of
one still training, trains. Architectures are known by their action tuple;
a proposal without actions (NetAdapt's edits of a genotype) always trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from nas_lightning.errors import ConfigError

Known = TypeVar("Known")


class Repeats(Generic[Known]):
    """The known children by action tuple, and the rule that decides a reuse.

    Args:
        mode: ``reuse`` or ``train``.
        limit: reused proposals in a row before a repeat trains (>= 0).
    """

    def __init__(self, mode: str = "train", limit: int = 20) -> None:
        if mode not in ("train", "reuse"):
            raise ConfigError("search.repeats", f"must be 'train' or 'reuse', got {mode!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError("search.reuse_limit", f"must be an integer >= 0, got {limit!r}")
        self.mode, self.limit = mode, limit
        self.known: dict[tuple[int, ...], Known] = {}
        self.reused = 0  # proposals answered from the known children
        self.in_row = 0  # reused since the last child was trained

    def add(self, actions: Sequence[int], known: Known) -> None:
        """A child recorded ok (the first one of an action tuple is kept)."""
        if self.mode == "reuse" and len(actions):
            self.known.setdefault(tuple(actions), known)

    def reuse(self, actions: Sequence[int]) -> Known | None:
        """The known child to answer a proposal with, or None: train it (and count a child)."""
        reusable = len(actions) and self.in_row < self.limit
        known = self.known.get(tuple(actions)) if reusable else None
        if known is None:
            self.in_row = 0
            return None
        self.reused += 1
        self.in_row += 1
        return known

    def state_dict(self) -> dict[str, Any]:
        return {"reused": self.reused, "reused_in_row": self.in_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reused = int(state.get("reused", 0))
        self.in_row = int(state.get("reused_in_row", 0))
