"""Search spaces as sequences of named decisions.

A search space is pure data: an ordered list of decisions, each a finite set
of choices, plus ``decode`` (action indices -> genotype) and ``encode``
(genotype -> action indices). Strategies only ever see action indices, so
every strategy works on every space; builders only ever see genotypes.

Two kinds of decision exist:

* :class:`Decision`: a categorical choice among ``choices``.
* :class:`AnchorDecision`: NAS-RL's skip connections. The action is a bitmask
  over ``num_prev`` earlier anchors (bit ``j`` set = connect layer ``j``).
  It is still a categorical decision of size ``2 ** num_prev`` for strategies
  that treat decisions as opaque (random search, evolution), while the LSTM
  controller samples it as ``num_prev`` Bernoulli draws scored by attention
  over earlier anchors.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas_lightning.errors import ConfigError, GenotypeError

Actions = tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    """One categorical decision.

    Attributes:
        name: unique within its space; used in records and logs.
        choices: the values this decision can take, in index order.
    """

    name: str
    choices: tuple[Any, ...]

    kind = "categorical"

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError(self.name, "a decision needs at least one choice")

    @property
    def size(self) -> int:
        """Number of distinct actions."""
        return len(self.choices)

    def value(self, action: int) -> Any:
        """The choice that ``action`` selects."""
        return self.choices[action]

    def index(self, value: Any) -> int:
        """The action that selects ``value``."""
        try:
            return self.choices.index(value)
        except ValueError:
            raise GenotypeError(
                f"{self.name}: {value!r} is not one of {list(self.choices)}"
            ) from None


@dataclass(frozen=True)
class AnchorDecision:
    """Skip connections into one layer, chosen by an anchor point.

    Attributes:
        name: unique within its space.
        num_prev: how many earlier anchors this one may connect from.
        anchor: index of this anchor among all anchors of the space; the
            controller keeps one hidden state per anchor.
    """

    name: str
    num_prev: int
    anchor: int

    kind = "anchor"

    @property
    def size(self) -> int:
        """Number of distinct connection patterns (a bitmask each)."""
        return 2**self.num_prev

    @property
    def choices(self) -> range:
        """Every bitmask; a range, so a deep layer costs no memory."""
        return range(self.size)

    def value(self, action: int) -> tuple[int, ...]:
        """The earlier anchors that ``action`` connects, ascending."""
        return tuple(j for j in range(self.num_prev) if action >> j & 1)

    def index(self, value: Sequence[int]) -> int:
        """The bitmask of the connected earlier anchors ``value``."""
        mask = 0
        for j in value:
            if not 0 <= j < self.num_prev:
                raise GenotypeError(
                    f"{self.name}: connection from {j} is outside 0..{self.num_prev - 1}"
                )
            mask |= 1 << j
        return mask


AnyDecision = Decision | AnchorDecision


class SearchSpace(ABC):
    """An ordered list of decisions with a genotype codec.

    Subclasses set ``self.decisions`` in ``__init__`` and implement
    :meth:`decode` and :meth:`encode` so that ``decode(encode(g)) == g``.
    """

    decisions: tuple[AnyDecision, ...]

    def __len__(self) -> int:
        return len(self.decisions)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.decisions)

    @property
    def num_anchors(self) -> int:
        return sum(isinstance(d, AnchorDecision) for d in self.decisions)

    @property
    def num_active(self) -> int:
        """How many leading decisions are live now.

        A space that grows over the search (NAS-RL adds layers every K
        children) returns fewer than ``len(decisions)``; strategies sample
        only that prefix and fill the rest with action 0, which ``decode``
        ignores. Most spaces are always fully active.
        """
        return len(self.decisions)

    def set_progress(self, num_children: int) -> None:  # noqa: B027 (a hook, no-op by default)
        """Told by the search loop before each proposal; growing spaces grow here."""

    def cardinality(self) -> int:
        """Number of distinct action sequences (an upper bound on genotypes)."""
        total = 1
        for d in self.decisions:
            total *= d.size
        return total

    def check(self, actions: Sequence[int]) -> Actions:
        """Return ``actions`` as a tuple of ints, or raise GenotypeError."""
        if len(actions) != len(self.decisions):
            raise GenotypeError(f"expected {len(self.decisions)} actions, got {len(actions)}")
        out = tuple(int(a) for a in actions)
        for d, a in zip(self.decisions, out, strict=True):
            if not 0 <= a < d.size:
                raise GenotypeError(f"{d.name}: action {a} outside 0..{d.size - 1}")
        return out

    def sample(self, rng: random.Random) -> Actions:
        """Uniformly random actions over the active prefix, drawn from ``rng`` only."""
        k = self.num_active
        return tuple(rng.randrange(d.size) if i < k else 0 for i, d in enumerate(self.decisions))

    def describe(self, actions: Sequence[int]) -> dict[str, Any]:
        """Name -> chosen value, for records and logs."""
        actions = self.check(actions)
        return {d.name: d.value(a) for d, a in zip(self.decisions, actions, strict=True)}

    @abstractmethod
    def decode(self, actions: Sequence[int]) -> Any:
        """Turn action indices into a genotype."""

    @abstractmethod
    def encode(self, genotype: Any) -> Actions:
        """Turn a genotype into the action indices that decode to it."""


class ListSpace(SearchSpace):
    """A space defined by a plain list of ``(name, choices)`` pairs.

    The genotype is a dict ``{name: value}``. This is the entry point for
    users who search their own space against their own evaluator, such as a
    tabular benchmark or a surrogate.
    """

    def __init__(self, decisions: Sequence[tuple[str, Sequence[Any]]]) -> None:
        if not decisions:
            raise ConfigError("decisions", "a space needs at least one decision")
        names = [name for name, _ in decisions]
        if len(set(names)) != len(names):
            raise ConfigError("decisions", f"decision names must be unique, got {names}")
        self.decisions = tuple(Decision(str(name), tuple(ch)) for name, ch in decisions)

    def decode(self, actions: Sequence[int]) -> dict[str, Any]:
        return self.describe(actions)

    def encode(self, genotype: dict[str, Any]) -> Actions:
        missing = [d.name for d in self.decisions if d.name not in genotype]
        if missing:
            raise GenotypeError(f"genotype lacks decisions {missing}")
        return tuple(d.index(genotype[d.name]) for d in self.decisions)
