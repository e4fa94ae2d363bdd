"""Multi-fidelity search: children stopped early at rungs (``search.scheduler``).

``search.scheduler=asha`` (asynchronous successive halving, Li et al. 2020)
or ``hyperband`` (its asynchronous Hyperband form, several brackets) gives
every child the budget of the child recipe (``child.epochs``) and checks it
at **rungs**: ``search.min_epochs`` epochs, then ``reduction_factor`` times
as many, and so on below ``child.epochs``. At a rung, a child goes on only
if its reward is in the top ``1 / reduction_factor`` of the rewards recorded
at that rung so far (by any child, finished or still training); otherwise it
stops there. The decisions are Optuna's (``SuccessiveHalvingPruner``,
``HyperbandPruner``), asked of a study that holds no parameters, only the
children's rewards at each epoch.

A child that goes on trains on in the same process, from where it was: its
weights, optimizer state, learning-rate schedule (cosine over the full
``child.epochs``) and data order are those of a child trained without a
scheduler, so a child that reaches the top rung is the plain search's child.

What the strategy learns from: every child reaches the first rung
(``min_epochs`` epochs; Hyperband's brackets only stop children later), so
the strategy is told each child's reward **at the first rung**, and all the
rewards it sees were measured at the same budget. The record keeps that
reward (``reward``), the epochs trained, the highest rung reached (``rung``)
and the reward where training stopped (``final_reward``); the search's best
is the best child of the highest rung reached
(:func:`nas_lightning.core.child_record.best_key`).

Resume: the rungs' rewards are rebuilt from the records (each record's
validation curve), in record order; children in flight train again.

Executors: with the local executor the table of rung rewards is an object
of the driver; with ``executor=ray`` it lives in one Ray actor that every
worker asks (:mod:`nas_lightning.execution.ray_executor`).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas_lightning.errors import ConfigError
from nas_lightning.rewards.base import ChildMetrics

SCHEDULERS = ("none", "asha", "hyperband")


@dataclass(frozen=True)
class RungPlan:
    """Where a search's children are checked.

    Attributes:
        kind: ``asha`` or ``hyperband``.
        min_epochs: the first rung (every child trains at least this long).
        reduction_factor: 1 in this many children goes on at each rung.
        max_epochs: the child recipe's epochs (the top rung).
    """

    kind: str
    min_epochs: int
    reduction_factor: int
    max_epochs: int

    @property
    def epochs(self) -> tuple[int, ...]:
        """The rungs' epochs, the top rung (``max_epochs``) last."""
        out, e = [], self.min_epochs
        while e < self.max_epochs:
            out.append(e)
            e *= self.reduction_factor
        return (*out, self.max_epochs)

    def rung_of(self, epochs: int) -> int:
        """The highest rung a child trained for ``epochs`` epochs reached (-1: none)."""
        return sum(1 for e in self.epochs if e <= epochs) - 1


def rung_plan(search: Mapping[str, Any], max_epochs: int) -> RungPlan | None:
    """``search.scheduler`` and its settings, checked (None: no scheduler)."""
    kind = search.get("scheduler") or "none"
    if kind not in SCHEDULERS:
        raise ConfigError("search.scheduler", f"must be one of {', '.join(SCHEDULERS)}, "
                          f"got {kind!r}")
    if kind == "none":
        return None
    min_epochs = search.get("min_epochs", 1)
    factor = search.get("reduction_factor", 3)
    if not _integer(min_epochs) or min_epochs < 1:
        raise ConfigError("search.min_epochs", f"must be an integer >= 1, got {min_epochs!r}")
    if not _integer(factor) or factor < 2:
        raise ConfigError("search.reduction_factor",
                          f"must be an integer >= 2, got {factor!r}")
    if min_epochs >= max_epochs:
        raise ConfigError("search.min_epochs", (
            f"the first rung ({min_epochs} epochs) must come before the end of the child "
            f"recipe (child.epochs={max_epochs}); raise child.epochs, e.g. child.epochs="
            f"{min_epochs * factor ** 2}"))
    return RungPlan(kind, min_epochs, factor, max_epochs)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RungTable:
    """The rewards every child reported at each epoch, and Optuna's stop decisions.

    Plain to pickle (its plan and reports); the Optuna study is rebuilt from
    them where it is first needed, in the driver or in a Ray actor.
    Thread-safe: a Ray actor may answer several workers at once.
    """

    def __init__(self, plan: RungPlan) -> None:
        self.plan = plan
        self.reports: list[tuple[int, int, float]] = []  # (child, epoch, reward), in order
        self._decisions: dict[tuple[int, int], bool] = {}
        self._trials: dict[int, Any] = {}
        self._study: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "reports": list(self.reports)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["plan"])  # type: ignore[misc]
        self.load(state["reports"])

    def load(self, reports: Sequence[tuple[int, int, float]]) -> None:
        """Report these ``(child, epoch, reward)`` again, in order (another table's)."""
        for index, epoch, value in reports:
            self.report(index, epoch, value)

    def _make_study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        p = self.plan
        if p.kind == "asha":
            pruner: Any = optuna.pruners.SuccessiveHalvingPruner(
                min_resource=p.min_epochs, reduction_factor=p.reduction_factor,
                min_early_stopping_rate=0)
        else:
            pruner = optuna.pruners.HyperbandPruner(
                min_resource=p.min_epochs, max_resource=p.max_epochs,
                reduction_factor=p.reduction_factor)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.create_study(study_name="rungs", direction="maximize", pruner=pruner)

    def report(self, index: int, epoch: int, value: float) -> bool:
        """Child ``index`` scored ``value`` after ``epoch`` epochs: True if it stops here.

        A child trained again (a lost worker, a resumed search) that reports
        an epoch it reported before gets the decision it got then.
        """
        with self._lock:
            known = self._decisions.get((index, epoch))
            if known is not None:
                return known
            if self._study is None:
                self._study = self._make_study()
            trial = self._trials.get(index)
            if trial is None:
                trial = self._trials[index] = self._study.ask()
            value = float(value) if math.isfinite(value) else -math.inf
            trial.report(value, epoch)
            stop = bool(trial.should_prune()) if epoch < self.plan.max_epochs else False
            self.reports.append((index, epoch, value))
            self._decisions[(index, epoch)] = stop
            return stop

    def restore(self, records: Sequence[Mapping[str, Any]],
                score: Callable[[ChildMetrics], float]) -> None:
        """Report the recorded children's epochs again, in record order (resume)."""
        for record in records:
            for epoch, acc in enumerate(record.get("val_curve") or [], start=1):
                metrics = ChildMetrics(val_acc=float(acc), val_curve=[],
                                       params=int(record.get("params") or 0),
                                       extra=dict(record.get("extra") or {}))
                self.report(int(record["index"]), epoch, safe_score(score, metrics))

    def counts(self) -> list[int]:
        """Children that reached each rung."""
        reached: dict[int, int] = {}
        for index, epoch, _ in self.reports:
            reached[index] = max(reached.get(index, 0), epoch)
        return [sum(1 for e in reached.values() if e >= r) for r in self.plan.epochs]


def safe_score(score: Callable[[ChildMetrics], float], metrics: ChildMetrics) -> float:
    """A rung's reward; one that fails or is not finite ranks last."""
    try:
        value = float(score(metrics))
    except Exception:
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def first_rung_metrics(metrics: ChildMetrics, plan: RungPlan) -> ChildMetrics | None:
    """A child's metrics as they stood at the first rung (None: it never got there)."""
    curve = metrics.val_curve
    if len(curve) < plan.min_epochs:
        return None
    return ChildMetrics(val_acc=float(curve[plan.min_epochs - 1]),
                        val_curve=list(curve[:plan.min_epochs]), params=metrics.params,
                        train_seconds=metrics.train_seconds, extra=dict(metrics.extra))
