"""The ask/tell interface every search strategy implements.

Strategies import nothing from Lightning: they see a space's decisions and
scalar rewards, so they run as well against a formula, a lookup table or a
surrogate as against trained children.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import architecture_key
from nas_lightning.spaces.base import Actions, SearchSpace

# What ``tell`` accepts per proposal: a scalar reward; None for an invalid
# architecture (it failed to build, train or measure); or, for strategies
# with several objectives (``Strategy.objectives``), a tuple or a dict of them.
Value = float | None | Sequence[float] | dict[str, float]


@dataclass
class Proposal:
    """One architecture proposed by a strategy.

    Attributes:
        id: the strategy's running count of proposals (0-based).
        actions: one index per decision of the space.
        genotype: ``space.decode(actions)``.
        log_prob: log-probability under the policy that proposed it (for
            PPO's ratio); None for strategies without a policy.
        info: anything else the strategy wants back in ``tell``.
    """

    id: int
    actions: Actions
    genotype: Any
    log_prob: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Propose architectures (``ask``) and learn from their rewards (``tell``).

    Invalid architectures, one rule for every strategy: ``tell(proposal, None)``.
    The proposal counts as told and is never learned from as if it had a
    reward: RL controllers skip it (or learn from ``invalid_reward`` when set),
    evolution keeps it out of its population, Optuna marks its trial FAIL.
    A non-finite number is refused with a ValueError: a NaN reward is a bug to
    surface (a diverged child should be told None or a chosen number).

    Args:
        space: the search space.
        seed: the only randomness source; the same seed gives the same
            sequence of proposals for the same rewards.

    Diagnostics a strategy may declare (read by ENAS and the DDP rank digest):
    ``controller``, its policy network (an ``nn.Module``; None: no policy), and
    ``baseline``, the reward baseline of a policy-gradient update.
    """

    controller: Any = None
    baseline: float | None = None

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise ConfigError("space", f"expected a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.num_proposed = 0
        self.num_told = 0
        # Avoiding repeats (off unless a strategy turns it on, see ``_avoid_repeats``).
        self.dedup_tries = 0
        self.proposed: set[Actions] = set()
        self.proposed_keys: set = set()  # their architectures (``architecture_key``)

    def _avoid_repeats(self, dedup_tries: int) -> None:
        """Turn on the rule "never propose an architecture twice", within ``dedup_tries`` draws.

        A repeat costs a whole child and, with a deterministic evaluation,
        teaches nothing. A strategy with the rule on draws again (its own way)
        up to ``dedup_tries`` times when a draw was already proposed by it
        (asked, told or in flight); after that it proposes the repeat, so a
        nearly exhausted space never stalls the search. 0 turns it off.
        """
        if isinstance(dedup_tries, bool) or not isinstance(dedup_tries, int) or dedup_tries < 0:
            raise ConfigError("dedup_tries", f"must be an integer >= 0, got {dedup_tries!r}")
        self.dedup_tries = dedup_tries

    def _is_repeat(self, actions: Sequence[int]) -> bool:
        """True when the rule is on, ``actions`` were proposed before and others remain.

        Once every architecture of the active decisions was proposed, nothing
        is a repeat worth redrawing (redraws would only cost time).
        """
        if self.dedup_tries == 0 or self._key(actions) not in self.proposed_keys:
            return False
        return len(self.proposed) < math.prod(self.space.sizes[: self.space.num_active])

    def _sample_unproposed(self) -> Actions:
        """A uniform draw from the space, drawn again (up to ``dedup_tries`` times) if a repeat."""
        actions = self.space.sample(self.rng)
        for _ in range(self.dedup_tries):
            if not self._is_repeat(actions):
                break
            actions = self.space.sample(self.rng)
        return actions

    def _nearest_unproposed(self, actions: Sequence[int], limit: int = 100_000) -> Actions | None:
        """An architecture not proposed yet, as few single-decision changes away from
        ``actions`` as there is one (active decisions only; a uniform draw among those
        nearest); None when none is found within ``limit`` architectures looked at."""
        k, sizes = self.space.num_active, self.space.sizes
        start = tuple(actions)
        seen, frontier = {start}, [start]
        while frontier and len(seen) < limit:
            ring = []
            for node in frontier:
                for i in range(k):
                    for v in range(sizes[i]):
                        a = node[:i] + (v,) + node[i + 1:]
                        if a not in seen:
                            seen.add(a)
                            ring.append(a)
            fresh = [a for a in ring if not self._is_repeat(a)]
            if fresh:
                return self.rng.choice(fresh)
            frontier = ring
        return None

    def _remember(self, proposal: Proposal) -> Proposal:
        """Note a proposal as made (when the rule is on), so later draws avoid it."""
        if self.dedup_tries > 0:
            self.proposed.add(proposal.actions)
            self.proposed_keys.add(self._key(proposal.actions))
        return proposal

    def _key(self, actions: Sequence[int]) -> Any:
        """The architecture ``actions`` stand for: two encodings of one network are one."""
        return architecture_key(self.space.decode(actions), actions)

    @overload
    def ask(self, n: None = None) -> Proposal: ...

    @overload
    def ask(self, n: int) -> list[Proposal]: ...

    def ask(self, n: int | None = None) -> Proposal | list[Proposal]:
        """One proposal, or a list of ``n`` when ``n`` is given."""
        if n is not None and n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        proposals = self._propose(1 if n is None else n)
        for i, proposal in enumerate(proposals):  # ids stay unique within a batch
            proposal.id = self.num_proposed + i
        self.num_proposed += len(proposals)
        return proposals[0] if n is None else proposals

    #: Objectives a strategy optimises jointly; one (the reward) for all but
    #: multi-objective strategies, which take a tuple or dict per proposal.
    objectives: tuple[str, ...] = ("reward",)

    def tell(
        self,
        proposals: Proposal | Sequence[Proposal],
        rewards: Value | Sequence[Value],
    ) -> dict[str, float]:
        """Learn from rewards (None: an invalid architecture); returns statistics to log."""
        values: Sequence[Value | Sequence[Value]]
        if isinstance(proposals, Proposal):
            proposals, values = [proposals], [rewards]
        else:  # a batch comes with one value per proposal (a scalar fails to iterate below)
            values = cast("Sequence[Value]", rewards)
        batch, checked = list(proposals), [self._check_value(r) for r in values]
        if len(batch) != len(checked):
            raise ValueError(f"{len(batch)} proposals but {len(checked)} rewards")
        self.num_told += len(batch)
        return self._learn(batch, checked)

    @property
    def finished(self) -> bool:
        """True once the strategy has nothing more to propose (the loop stops asking)."""
        return False

    def can_ask(self, in_flight: int) -> bool:
        """Whether a proposal may be asked while ``in_flight`` children are untold.

        True by default: any number of children may train at once. A strategy
        that must hear every reward of a round before proposing the next one
        (NetAdapt) says False while children are in flight.
        """
        return True

    def report(self) -> dict[str, Any]:
        """The strategy's own results, for the run folder (empty by default)."""
        return {}

    def outputs(self) -> dict[str, Any]:
        """The strategy's own result files for the run folder, written by the search
        at the end: file name -> JSON-able data (none by default). A strategy writes
        no file itself."""
        return {}

    def objective_values(self, reward: float, metrics: Any = None) -> Value:
        """What the search loop tells for a trained child.

        Single-objective strategies take the scalar reward; multi-objective
        ones override this to pick their objectives from the child's metrics
        (``ChildMetrics``: ``val_acc``, ``params``, ``extra["latency_ms"]``...).
        """
        return reward

    def _check_value(self, value: Any) -> Any:
        if value is None:
            return None
        if len(self.objectives) > 1 or isinstance(value, (dict, list, tuple)):
            raise ValueError(
                f"{type(self).__name__} optimises one reward; got {value!r} "
                "(a tuple or dict is for multi-objective strategies)"
            )
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(
                f"rewards must be finite, got {value}; tell None for an invalid architecture"
            )
        return value

    def _make(self, actions: Sequence[int], log_prob: float | None = None) -> Proposal:
        actions = self.space.check(actions)
        return Proposal(
            id=self.num_proposed,
            actions=actions,
            genotype=self.space.decode(actions),
            log_prob=log_prob,
        )

    @abstractmethod
    def _propose(self, n: int) -> list[Proposal]:
        """Return ``n`` new proposals."""

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        """Learn from rewards checked by ``_check_value`` (None: an invalid architecture)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this strategy is."""
        return {
            "seed": self.seed,
            "rng": _rng_state_as_lists(self.rng.getstate()),
            "num_proposed": self.num_proposed,
            "num_told": self.num_told,
            "proposed": sorted(list(a) for a in self.proposed),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self.rng.setstate(_as_rng_state(state["rng"]))
        self.num_proposed = state["num_proposed"]
        self.num_told = state["num_told"]
        self.proposed = {tuple(a) for a in state.get("proposed", [])}
        self.proposed_keys = {self._key(a) for a in self.proposed}


def _rng_state_as_lists(state: tuple) -> list:
    """Plain lists of ints, loadable by ``torch.load(..., weights_only=True)`` and JSON."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _as_rng_state(state: Any) -> tuple:
    """``random.Random`` state survives JSON/torch round trips as lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
