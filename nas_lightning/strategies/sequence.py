"""Two strategies in one search: the first for a number of children, then the second
started from the first's best genotype (MobileNetV3: platform-aware NAS, then NetAdapt).

One ``python search.py`` run is one strategy and one loop; this composition
keeps it so. The switch happens at the first ``ask`` after ``first_children``
proposals: the best *told* child of the first phase (highest reward) becomes
the second strategy's ``genotype`` (children never told, i.e. failed, do not count).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import genotype_from_dict, genotype_to_dict
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy

log = logging.getLogger(__name__)

StrategyFactory = Callable[..., Strategy]


class StrategySequence(Strategy):
    """Run ``first`` for ``first_children`` children, then ``then`` from its best genotype.

    Args:
        space: the search space (both phases get it).
        first: ``(space=, seed=) -> Strategy`` (a Hydra partial, e.g. PPO).
        then: ``(space=, seed=, genotype=) -> Strategy`` (e.g. NetAdapt).
        first_children: proposals of the first phase.
        seed: passed to both phases.
    """

    def __init__(
        self,
        space: SearchSpace,
        first: StrategyFactory,
        then: StrategyFactory,
        first_children: int,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        if not isinstance(first_children, int) or first_children < 1:
            raise ConfigError("first_children", f"must be an integer >= 1, got {first_children!r}")
        if not callable(first) or not callable(then):
            raise ConfigError("first", "first and then must be strategy factories (partials)")
        self.first_children = first_children
        self.make_then = then
        self.first = first(space=space, seed=seed)
        self.then: Strategy | None = None
        self.phase = 0
        self.asked_first = 0
        self.best: dict[str, Any] | None = None  # {"genotype", "reward", "child"} of phase 0

    @property
    def active(self) -> Strategy:
        return self.first if self.phase == 0 else self._then()

    def _then(self) -> Strategy:
        """The second phase's strategy, which ``_switch`` makes when it starts phase 1."""
        assert self.then is not None, "the second phase has not started"
        return self.then

    @property
    def finished(self) -> bool:
        """The second phase's ``finished`` (the first phase never finishes the search)."""
        self._advance()
        return self.phase == 1 and self._then().finished

    def can_ask(self, in_flight: int) -> bool:
        """The switch takes the first phase's best: every first-phase child must be told."""
        if self.phase == 0:
            return self.asked_first < self.first_children or in_flight == 0
        return self._then().can_ask(in_flight)

    def _advance(self) -> None:
        if self.phase == 0 and self.asked_first >= self.first_children:
            self._switch()

    def _switch(self) -> None:
        if self.best is None:
            genotype = getattr(self.space, "base", None)
            log.warning(
                "sequence: no child of the first phase succeeded; the second phase "
                "starts from the space's base"
            )
        else:
            genotype = self.best["genotype"]
            log.info(
                "sequence: first phase done, best child %s (reward %.4f); starting %s",
                self.best["child"],
                self.best["reward"],
                _name(self.make_then),
            )
        self.then = self.make_then(space=self.space, seed=self.seed, genotype=genotype)
        self.phase = 1

    def _propose(self, n: int) -> list[Proposal]:
        self._advance()
        if self.phase == 0:
            n = min(n, self.first_children - self.asked_first)
            self.asked_first += n
        proposals = self.active.ask(n)
        for p in proposals:
            p.info["phase"] = self.phase
        return proposals

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        stats: dict[str, float] = {}
        for phase in (0, 1):
            batch = [
                (p, r)
                for p, r in zip(proposals, rewards, strict=True)
                if p.info.get("phase", 0) == phase
            ]
            if not batch:
                continue
            strategy = self.first if phase == 0 else self._then()  # phase 1: proposed by then
            stats.update(strategy.tell([p for p, _ in batch], [r for _, r in batch]))
            if phase == 0:
                for p, r in batch:
                    if r is None or not math.isfinite(r):
                        continue
                    if self.best is None or r > self.best["reward"]:
                        self.best = {"genotype": p.genotype, "reward": r, "child": p.id}
        keys = getattr(getattr(self.make_then, "func", self.make_then), "STAT_KEYS", ())
        for key in keys:  # one set of columns for the CSV logger, whatever the phase
            stats.setdefault(key, math.nan)
        stats["phase"] = float(self.phase)
        return stats

    def outputs(self) -> dict[str, Any]:
        """The second phase's result files (``NetAdapt.outputs``)."""
        return self.then.outputs() if self.then is not None else {}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        best = self.best
        state.update(
            phase=self.phase,
            asked_first=self.asked_first,
            first=self.first.state_dict(),
            best=None if best is None else {**best, "genotype": genotype_to_dict(best["genotype"])},
            then=None if self.then is None else self.then.state_dict(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.first.load_state_dict(state["first"])
        self.asked_first = state["asked_first"]
        best = state["best"]
        self.best = (
            None if best is None else {**best, "genotype": genotype_from_dict(best["genotype"])}
        )
        self.phase, self.then = 0, None
        if state["phase"] == 1:
            self._switch()
            self._then().load_state_dict(state["then"])


def _name(factory: Any) -> str:
    return getattr(getattr(factory, "func", factory), "__name__", str(factory))
