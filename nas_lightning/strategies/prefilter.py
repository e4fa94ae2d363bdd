"""A zero-cost filter in front of a strategy: ask ``k`` proposals, train the best-scored.

``search.prefilter=<proxy>`` (``search.prefilter_k``, default 8) wraps the
search's strategy: for each child it asks the strategy for ``k`` proposals,
scores each one's untrained network with a zero-cost proxy
(:mod:`nas_lightning.proxies`) and proposes only the best-scored. The other
``k - 1`` were never trained: they are never told, and they are taken back
out of the strategy's record of what it proposed, so that its "never propose
an architecture twice" rule (``dedup_tries``) keeps meaning "never train one
twice" and a rejected architecture may be drawn (and scored) again later.

Only strategies that hold no other state for a proposal they are not told
can be filtered this way: random search and evolution. A policy-gradient
controller learns from the probabilities of what it proposed (filtering would
bias its gradient) and an Optuna study keeps every asked trial open, so they
are refused with a one-line error.

Which proxy, and whether it helps, is measured on the project's tabular
benchmarks (``benchmarks/zero_cost.py``, BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import architecture_key
from nas_lightning.strategies.base import Proposal, Strategy, Value
from nas_lightning.strategies.evolution import RegularizedEvolution
from nas_lightning.strategies.random_search import RandomSearch

#: Strategies a filter may wrap (see the module's docstring for why only these).
FILTERABLE: tuple[type[Strategy], ...] = (RandomSearch, RegularizedEvolution)

Scorer = Callable[[Proposal], float]


class Prefilter(Strategy):
    """Propose, for each child, the best-scored of ``k`` proposals of ``inner``.

    Args:
        inner: the strategy whose proposals are filtered (random search or evolution).
        scorer: ``proposal -> score``, larger is better; the same proposal must
            always get the same score (a resumed search proposes the same children).
        k: proposals scored per child (>= 2).

    Ties go to the first proposal. ``tell`` and every other part of the
    interface are the inner strategy's.
    """

    def __init__(self, inner: Strategy, scorer: Scorer, k: int = 8) -> None:
        if not isinstance(inner, FILTERABLE):
            names = ", ".join(c.__name__ for c in FILTERABLE)
            raise ConfigError("search.prefilter",
                              f"filters only {names}; {type(inner).__name__} learns from every "
                              "proposal it makes (set search.prefilter=null)")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError("search.prefilter_k", f"must be an integer >= 2, got {k!r}")
        super().__init__(inner.space, inner.seed)
        self.inner, self.scorer, self.k = inner, scorer, k
        self.kept: set[Any] = set()  # architectures proposed to be trained (never taken back)
        self.kept_actions: list[tuple[int, ...]] = []
        self.last_scores: list[float] = []  # the scores of the last child's candidates

    # -- the filter -----------------------------------------------------------
    def _propose(self, n: int) -> list[Proposal]:
        return [self._pick() for _ in range(n)]

    def _pick(self) -> Proposal:
        candidates = self.inner.ask(self.k)
        scores = [float(self.scorer(p)) for p in candidates]
        best = candidates[max(range(len(candidates)), key=lambda i: (scores[i], -i))]
        self.last_scores = scores
        key = architecture_key(best.genotype, best.actions)
        if key not in self.kept:
            self.kept.add(key)
            self.kept_actions.append(tuple(best.actions))
        for p in candidates:  # the rejected ones were never trained: not proposed either
            rejected = architecture_key(p.genotype, p.actions)
            if rejected not in self.kept:
                self.inner.proposed.discard(p.actions)
                self.inner.proposed_keys.discard(rejected)
        best.info["prefilter_score"] = scores[candidates.index(best)]
        return best

    # -- the inner strategy's interface ------------------------------------------
    def tell(self, proposals: Proposal | Sequence[Proposal],
             rewards: Value | Sequence[Value]) -> dict[str, float]:
        self.num_told += 1 if isinstance(proposals, Proposal) else len(proposals)
        return self.inner.tell(proposals, rewards)

    @property
    def finished(self) -> bool:
        return self.inner.finished

    def can_ask(self, in_flight: int) -> bool:
        return self.inner.can_ask(in_flight)

    def report(self) -> dict[str, Any]:
        return self.inner.report()

    def outputs(self) -> dict[str, Any]:
        return self.inner.outputs()

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner": self.inner.state_dict(),
                "kept": [list(a) for a in self.kept_actions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.inner.load_state_dict(state["inner"])
        self.kept_actions = [tuple(a) for a in state.get("kept", [])]
        self.kept = {self._key(a) for a in self.kept_actions}
