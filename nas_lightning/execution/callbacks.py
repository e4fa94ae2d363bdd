"""Driver-side search callbacks; the controller callback is where the controller learns.

Children train wherever the executor puts them and return plain results. On
the driver, for each finished child, the loop computes the reward, writes the
record (fsynced) and only then fires these callbacks. :class:`ControllerCallback`
is the one place where the strategy learns from rewards (``strategy.tell``)
and where that update is logged (W&B or CSV, with the child's row). Under
DDP every rank runs the same loop with the same synced metrics, so every
rank makes the same update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_lightning.execution.base import Result, Trial
from nas_lightning.strategies.base import Proposal, Strategy

log = logging.getLogger("nas_lightning.search")


@dataclass
class FinishedChild:
    """One child as the driver knows it after recording it.

    Attributes:
        trial: what was trained.
        result: what the executor returned.
        reward: the driver's reward (None for a failed child).
        record: the line written to ``children.jsonl``.
        stats: what the strategy's update reported (filled by the controller callback).
        best_reward: the best reward recorded when it was told (this child included).
    """

    trial: Trial
    result: Result
    reward: float | None
    record: dict[str, Any]
    stats: dict[str, float] = field(default_factory=dict)
    best_reward: float | None = None


class SearchCallback:
    """Hooks the loop fires on the driver; override what you need."""

    def on_search_start(self, run_dir: Any, records: list[dict[str, Any]]) -> None:
        """Before the first child (``records``: children already recorded on resume)."""

    def on_child_start(self, trial: Trial) -> None:
        """A child handed to the executor to train (also one trained again on resume)."""

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        """Children recorded together (one in async mode, a batch in batch mode)."""

    def on_repeat(self, proposal: Proposal, child: FinishedChild, count: int) -> None:
        """A proposal of ``child``'s architecture, answered with its record
        (``search.repeats=reuse``): nothing trained; ``count`` such so far."""

    def on_search_end(self, records: list[dict[str, Any]]) -> None:
        """Once at the end (also after an error)."""


class ControllerCallback(SearchCallback):
    """Tell the strategy the children's rewards, then log the update.

    Args:
        strategy: the search strategy to update.
        logger: a :class:`~nas_lightning.search.loggers.SearchLogger`; each child's
            row carries the update's statistics (``controller/*``). None: no logging.
        failed_reward: reward told for a failed or diverged child; None: the
            child is told ``None`` (an invalid architecture, never learned from
            as if it had a reward; every strategy handles it).
    """

    def __init__(
        self, strategy: Strategy, logger: Any = None, failed_reward: float | None = None
    ) -> None:
        self.strategy = strategy
        self.logger = logger
        self.failed_reward = None if failed_reward is None else float(failed_reward)

    def reward_to_tell(self, child: FinishedChild) -> Any:
        """The value told for a child: its reward (or a multi-objective strategy's
        pick from its metrics), or ``failed_reward`` for a failed child (None:
        an invalid architecture)."""
        if child.record["status"] == "ok" and child.reward is not None:
            # a child told again on resume carries its record, not its metrics
            metrics = child.result.metrics() if child.result.val_acc is not None else None
            return self.strategy.objective_values(child.reward, metrics)  # NSGA-II: objectives
        return self.failed_reward

    def on_child_end(self, trial: Trial, result: Result, reward: float | None,
                     record: dict[str, Any]) -> dict[str, float]:
        """One child: tell its reward; returns the update's statistics."""
        child = FinishedChild(trial, result, reward, record)
        self.on_children_end([child])
        return child.stats

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        told = [(c, self.reward_to_tell(c)) for c in children]
        # A growing space (NAS-RL) scores one depth at a time: one tell per depth.
        groups: dict[Any, list[tuple[FinishedChild, Any]]] = {}
        for c, r in told:
            groups.setdefault(c.trial.proposed.info.get("steps"), []).append((c, r))
        for group in groups.values():
            if len(group) == 1:  # one child: the plain ``tell(proposal, reward)``
                stats = self.strategy.tell(group[0][0].trial.proposed, group[0][1])
            else:
                stats = self.strategy.tell([c.trial.proposed for c, _ in group],
                                           [r for _, r in group])
            for c, _ in group:
                c.stats = dict(stats)
                if len(group) > 1 and "advantage" in c.stats:  # the batch's mean, not the child's
                    c.stats["batch_advantage"] = c.stats.pop("advantage")
        if self.logger is not None:
            for c in children:
                self.logger.log_child(c.record, c.stats, c.best_reward)

    def on_repeat(self, proposal: Proposal, child: FinishedChild, count: int) -> None:
        """Tell a repeated proposal the recorded child's reward; log it as ``repeat/*``."""
        value = self.reward_to_tell(child)
        stats = self.strategy.tell(proposal, value) if value is not None else {}
        if self.logger is not None:
            row = {"repeat/count": count, "repeat/of_child": child.record["index"],
                   "repeat/reward": child.reward}
            row.update({f"repeat/{k}": v for k, v in stats.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
            self.logger.log_metrics(row, "repeat/count")
