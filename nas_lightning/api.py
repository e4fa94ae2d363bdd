"""Search your own space with your own evaluator, in one call.

``optimize`` runs the search loop's rule on a plain Python function: ask the
strategy, evaluate the proposal unless the same architecture was evaluated
already (``repeats="reuse"``: it is told the recorded reward and costs
nothing), tell the reward; a strategy that proposes only repeats has
converged and the search ends early. It is what ``search.py`` does with children,
without training, run folders or loggers::

    from nas_lightning import ListSpace, optimize

    space = ListSpace([("op", ["conv3", "conv5", "pool"]), ("width", [16, 32, 64])])
    result = optimize(lambda g: my_score(g), space, budget=50, strategy="tpe")
    print(result.best.genotype, result.best.reward)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_lightning.errors import ConfigError
from nas_lightning.execution.repeats import Repeats, proposal_key
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Strategy


@dataclass(frozen=True)
class Trial:
    """One evaluated architecture: its number (0-based), decisions, genotype and reward."""

    number: int
    actions: tuple[int, ...]
    genotype: Any
    reward: float | None  # None: the evaluator called it invalid


@dataclass
class Result:
    """What ``optimize`` found: every evaluated architecture, in order."""

    strategy: Strategy
    trials: list[Trial] = field(default_factory=list)
    reused: int = 0  # proposals of an architecture already evaluated (not evaluated again)
    converged: bool = False  # stopped early: the strategy proposed only repeats

    @property
    def best(self) -> Trial:
        """The trial with the highest reward (the first one on ties)."""
        valid = [t for t in self.trials if t.reward is not None]
        if not valid:
            raise ValueError("no trial has a reward: every evaluation returned None")
        return max(valid, key=lambda t: (t.reward, -t.number))


def optimize(
    evaluate: Callable[[Any], float | None],
    space: SearchSpace,
    budget: int,
    strategy: str | Strategy = "reinforce",
    seed: int = 0,
    overrides: Sequence[str] = (),
    repeats: str = "reuse",
    reuse_limit: int = 50,
) -> Result:
    """Search ``space`` for the genotype that ``evaluate`` scores highest.

    Args:
        evaluate: genotype -> reward (higher is better), or None for an
            invalid architecture (the strategy is told None). Its errors
            propagate.
        space: the search space (e.g. :class:`~nas_lightning.spaces.ListSpace`).
        budget: architectures to evaluate (repeats that are reused do not count).
        strategy: a preset name (``reinforce``, ``ppo``, ``evolution``, ``tpe``,
            ``random``, ...; see :mod:`nas_lightning.presets`) or a strategy.
        seed: the preset's seed.
        overrides: ``key=value`` settings of the preset (e.g. ``strategy.lr=0.01``).
        repeats: ``reuse`` (default) or ``train`` (evaluate every proposal).
        reuse_limit: reused proposals in a row after which the strategy has
            converged (it only repeats) and the search stops before its budget
            (``result.converged``).
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError("budget", f"must be an integer >= 1, got {budget!r}")
    if isinstance(strategy, str):
        from nas_lightning.presets import make_strategy

        strategy = make_strategy(strategy, space, budget=budget, seed=seed,
                                 overrides=list(overrides))
    rule: Repeats[float | None] = Repeats(repeats, reuse_limit)
    result = Result(strategy)
    while len(result.trials) < budget and not rule.converged:
        proposal = strategy.ask()
        key = proposal_key(proposal.genotype, proposal.actions)
        known = rule.reuse(key)
        if known is not None:
            strategy.tell(proposal, known)
            continue
        reward = evaluate(proposal.genotype)
        if reward is not None:
            reward = float(reward)
            if math.isnan(reward):
                raise ValueError(f"evaluate returned NaN for {proposal.genotype!r}")
        strategy.tell(proposal, reward)
        if reward is not None:
            rule.add(key, reward)
        result.trials.append(Trial(len(result.trials), tuple(proposal.actions),
                                   proposal.genotype, reward))
    result.reused, result.converged = rule.reused, rule.converged
    return result
