"""The contract between the search loop and whatever trains children.

The loop (driver) turns a strategy's proposal into a :class:`Trial`, hands it
to an :class:`Executor` and gets a :class:`Result` back. A result is plain,
picklable data: the child's metrics, cost and error, never a reward (the
driver computes it) and never a reference to the strategy. That is what lets
a child train in this process, in a Ray worker or on another machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nas_lightning.rewards.base import ChildMetrics

if TYPE_CHECKING:  # importing strategies imports torch: workers of simulated children skip it
    from nas_lightning.execution.schedulers import RungTable
    from nas_lightning.strategies.base import Proposal



@dataclass(frozen=True)
class Shipped:
    """What a worker needs of a proposal: unpickling it imports no strategy (nor torch)."""

    actions: tuple[int, ...]
    genotype: Any


@dataclass
class Trial:
    """One child to train.

    Attributes:
        index: the child's number in the search (0-based, in ask order).
        proposal: what the strategy proposed (actions, genotype, log-prob).
        seed: seeds the child's weights and data order.
        attempt: 0 for the first try; retries after a lost worker count up.
    """

    index: int
    proposal: Proposal | Shipped
    seed: int
    attempt: int = 0

    def shipped(self) -> Trial:
        """A copy to send to a worker: only what training needs (no strategy classes)."""
        return Trial(self.index, Shipped(tuple(self.actions), self.genotype), self.seed,
                     self.attempt)

    @property
    def proposed(self) -> Proposal:
        """The strategy's proposal: on the driver (a shipped trial carries only what trains)."""
        if isinstance(self.proposal, Shipped):
            raise TypeError(f"trial {self.index} was shipped: its proposal stays on the driver")
        return self.proposal

    @property
    def actions(self) -> tuple[int, ...]:
        return tuple(self.proposal.actions)

    @property
    def genotype(self) -> Any:
        return self.proposal.genotype


@dataclass
class Result:
    """What became of one trial: metrics and cost, or why it failed.

    Attributes:
        index: the trial's index.
        status: ``ok``, ``failed`` or ``diverged``.
        val_acc: final validation accuracy (None unless ok).
        val_curve: validation accuracy after each validation run.
        params: trainable parameters (None if the network did not build).
        train_seconds: seconds from ``fit`` start to its end.
        seconds: the whole child, build to end.
        extra: measured before training, seen by the reward (latency, MACs).
        timing: where the seconds went (build, probe, init, setup, train, val,
            other, train_steps); never seen by the reward.
        error: one line for a failed child.
        attempt: which try this result comes from.
        worker: where it ran (``pid@host``).
    """

    index: int
    status: str = "ok"
    val_acc: float | None = None
    val_curve: list[float] = field(default_factory=list)
    params: int | None = None
    train_seconds: float = 0.0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    attempt: int = 0
    worker: str | None = None

    def metrics(self) -> ChildMetrics:
        """The reward's view of an ok child (a copy: the reward cannot change the record)."""
        if self.val_acc is None:
            raise ValueError(f"child {self.index} has no metrics: it did not finish")
        return ChildMetrics(
            val_acc=float(self.val_acc),
            val_curve=list(self.val_curve),
            params=int(self.params or 0),
            train_seconds=self.train_seconds,
            extra=dict(self.extra),
        )

    @classmethod
    def failure(cls, trial: Trial, err: BaseException | str, status: str = "failed") -> Result:
        """A failed result with a one-line error."""
        return cls(index=trial.index, status=status, error=one_line(err), attempt=trial.attempt)


def one_line(err: BaseException | str) -> str:
    """``Type: first line`` of an exception (or the string itself)."""
    if isinstance(err, str):
        return err.splitlines()[0] if err else err
    text = str(err)
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


class Runner(Protocol):
    """Trains one trial where it is called; knows nothing of the strategy."""

    def run(self, trial: Trial) -> Result: ...


class Executor(ABC):
    """Runs trials somewhere and hands back their results as they finish.

    ``submit`` never blocks: trials beyond ``max_concurrent`` wait in the
    executor's queue. ``wait`` blocks until at least one submitted trial has
    finished (retries of lost workers happen inside) and returns every
    finished result; it returns ``[]`` only when nothing is in flight.
    """

    max_concurrent: int = 1

    @abstractmethod
    def submit(self, trial: Trial) -> None:
        """Queue one trial."""

    @abstractmethod
    def wait(self) -> list[Result]:
        """Results of finished trials (at least one while any is in flight)."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Trials submitted and not yet returned by ``wait``."""

    def free_slots(self) -> int:
        """How many more trials would start at once."""
        return max(0, self.max_concurrent - self.in_flight)

    def shutdown(self) -> None:
        """Stop running trials and release resources (idempotent)."""
        return None

    def share_rungs(self, table: RungTable) -> None:
        """Let every child report to ``table`` (``search.scheduler``), before the first
        submit. Here: nothing to do, the runner of this process holds it already."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
