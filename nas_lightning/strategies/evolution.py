"""Regularized (aging) evolution, Real et al. 2019 (AmoebaNet).

The first ``population_size`` proposals are uniformly random. After that,
each proposal samples ``sample_size`` members of the population uniformly
(with replacement, as in the paper's code), takes the one with the best
reward as the parent and mutates exactly one of its active decisions to a
different value. Every told child joins the population and the *oldest*
member leaves, not the worst: aging keeps re-testing what survives, which
makes the search robust to noisy rewards. An invalid child (told None) never
joins the population.

It works on any space's decision list: an anchor decision (NAS-RL skip
connections) is just a categorical of size ``2 ** num_prev``.

With ``dedup_tries`` > 0 (the budget-sized ``evolution`` preset; the paper's
``evolution_amoebanet`` keeps it off) no architecture is proposed twice while
there is room: a random member of the first population is drawn again when
already proposed, and a mutation is drawn from the parent's single-decision
mutations not yet proposed, with the same probabilities as an ordinary
mutation restricted to them. When every mutation of the parent was proposed,
a new tournament picks a parent, up to ``dedup_tries`` times; then the
ordinary (repeated) mutation is taken. Selection and aging are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, overload

from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import Actions, SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy

# Ordinary mutations tried before listing a parent's mutations (avoiding repeats).
_REJECTION_DRAWS = 8


def _fitness(reward: float | None) -> float:
    """None or NaN (from a state saved by an older version) ranks below everything."""
    return -math.inf if reward is None or math.isnan(reward) else reward


def budget_population(budget: int | None, low: int, high: int, divisor: int = 5) -> int:
    """A population for a budget: a fifth of it, within ``[low, high]``.

    The first population is drawn at random, so a population as large as the
    budget is random search; a fifth leaves four fifths of the children to
    selection (P=20 for 100 children; the papers' 100 from 500 on). The
    floor (8 for evolution and NSGA-II) keeps small budgets from spending
    their first 10-20 children on random draws. ``divisor``: another share
    than a fifth (NSGA-II's preset: a hundredth).
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(
            "budget", f"must be an integer >= 1 when population_size is null, got {budget!r}"
        )
    return min(high, max(low, budget // divisor))


@overload
def _copy(member: dict[str, Any]) -> dict[str, Any]: ...


@overload
def _copy(member: None) -> None: ...


def _copy(member: dict[str, Any] | None) -> dict[str, Any] | None:
    """A member as plain data that later changes cannot reach."""
    return None if member is None else dict(member, actions=list(member["actions"]))


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection and single-decision mutation.

    Args:
        space: the search space.
        population_size: P, members kept alive (the paper: 100); None: from
            ``budget`` (:func:`budget_population`).
        sample_size: S, tournament size (the paper: 25); None: P / 2, at
            least 2 (the paper's P / 4 needs the paper's budget: with P=8
            a tournament of 2 is close to a random parent).
        budget: the children the search will train; only read when
            ``population_size`` is None.
        dedup_tries: draws (or tournaments) to find an architecture not yet
            proposed; 0: repeats allowed, as in the paper.
        seed: the only randomness source.
    """

    def __init__(
        self,
        space: SearchSpace,
        population_size: int | None = 100,
        sample_size: int | None = 25,
        budget: int | None = None,
        dedup_tries: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        self._avoid_repeats(dedup_tries)
        if population_size is None:
            population_size = budget_population(budget, low=8, high=100)
        if sample_size is None:
            sample_size = min(population_size, max(2, population_size // 2))
        if not isinstance(population_size, int) or population_size < 1:
            raise ConfigError(
                "population_size", f"must be an integer >= 1, got {population_size!r}"
            )
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ConfigError(
                "sample_size",
                f"must be an integer in 1..population_size={population_size}, got {sample_size!r}",
            )
        self.population_size = population_size
        self.sample_size = sample_size
        # Oldest first; each member is {"id", "actions", "reward"}.
        self.population: list[dict[str, Any]] = []
        # Every told child in tell order, as [id, reward]; actions of the best.
        self.history: list[list[float]] = []
        self.best: dict[str, Any] | None = None

    def _propose(self, n: int) -> list[Proposal]:
        proposals = []
        for i in range(n):
            if self.num_proposed + i < self.population_size or not self.population:
                proposal = self._make(self._sample_unproposed())
                proposal.info["origin"] = "random"
            else:
                parent, actions, changed = self._select_and_mutate()
                proposal = self._make(actions)
                proposal.info.update(
                    origin="mutation", parent=parent["id"], mutated=self.space.names[changed]
                )
            proposals.append(self._remember(proposal))
        return proposals

    def _select_and_mutate(self) -> tuple[dict[str, Any], Actions, int]:
        """A tournament winner and one mutation of it (unproposed, when avoiding repeats)."""
        parent = self._tournament()
        if self.dedup_tries == 0:
            return (parent, *self._mutate(parent["actions"]))
        for _ in range(self.dedup_tries):
            fresh = self._fresh_mutation(parent["actions"])
            if fresh is not None:
                return (parent, *fresh)
            parent = self._tournament()  # every mutation of this parent was proposed
        return (parent, *self._mutate(parent["actions"]))

    def _fresh_mutation(self, actions: Sequence[int]) -> tuple[Actions, int] | None:
        """A single-decision mutation not yet proposed, drawn as ``_mutate`` would; None if none.

        A few ordinary mutations are drawn first (rejection keeps ``_mutate``'s
        probabilities, restricted to unproposed children); if all were
        proposed, every mutation of the parent is listed with its weight under
        ``_mutate``, ``1 / (size - 1)`` per decision, and one unproposed is
        drawn: exact, and bounded in a large space's common case.
        """
        for _ in range(_REJECTION_DRAWS):
            child, changed = self._mutate(actions)
            if changed < 0 or not self._is_repeat(child):
                return (child, changed) if changed >= 0 else None
        k, sizes = self.space.num_active, self.space.sizes
        base = list(actions)
        base[k:] = [0] * (len(base) - k)
        options, weights = [], []
        for i in (i for i in range(k) if sizes[i] > 1):
            for value in range(sizes[i]):
                child = tuple(base[:i] + [value] + base[i + 1 :])
                if value != base[i] and not self._is_repeat(child):
                    options.append((child, i))
                    weights.append(1.0 / (sizes[i] - 1))
        if not options:
            return None
        return self.rng.choices(options, weights=weights)[0]

    def _tournament(self) -> dict[str, Any]:
        """The fittest of S members drawn with replacement; ties go to the first drawn."""
        sample = [self.rng.choice(self.population) for _ in range(self.sample_size)]
        return max(sample, key=lambda m: _fitness(m["reward"]))

    def _mutate(self, actions: Sequence[int]) -> tuple[Actions, int]:
        """Change exactly one active decision that has an alternative to a different value.

        Returns the new actions and the index of the changed decision (-1
        when no active decision has two values, the only case that copies).
        """
        k = self.space.num_active
        sizes = self.space.sizes
        mutable = [i for i in range(k) if sizes[i] > 1]
        child = list(actions)
        child[k:] = [0] * (len(child) - k)  # a shrunk space: inactive decisions are 0
        if not mutable:
            return tuple(child), -1
        i = self.rng.choice(mutable)
        new = self.rng.randrange(sizes[i] - 1)
        child[i] = new + 1 if new >= child[i] else new
        return tuple(child), i

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        for p, r in zip(proposals, rewards, strict=True):
            if r is None or not p.actions:  # invalid, or outside the action grid
                continue
            member = {"id": p.id, "actions": list(p.actions), "reward": r}
            self.population.append(member)
            if len(self.population) > self.population_size:
                self.population.pop(0)  # aging: the oldest dies, not the worst
            self.history.append([p.id, r])
            if self.best is None or _fitness(r) > _fitness(self.best["reward"]):
                self.best = dict(member)
        if not self.population:
            return {}
        return {
            "population": float(len(self.population)),
            "population_best": max(_fitness(m["reward"]) for m in self.population),
            "best": _fitness(self.best["reward"]) if self.best else -math.inf,
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [_copy(m) for m in self.population]
        state["history"] = [list(h) for h in self.history]
        state["best"] = _copy(self.best)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [_copy(m) for m in state["population"]]
        self.history = [list(h) for h in state["history"]]
        self.best = _copy(state["best"])
