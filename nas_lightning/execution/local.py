"""Children trained one after another in this process (the default)."""

from __future__ import annotations

from collections import deque
from typing import Any

from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Executor, Result, Runner, Trial


class LocalExecutor(Executor):
    """Runs each trial in this process when the loop waits for it.

    One slot: a search with it asks, trains, records and tells one child at a
    time, exactly as a plain loop would. Trials submitted beyond the slot (a
    batch) wait in a queue and train in submission order.

    Args:
        runner: trains one trial (``runner.run(trial) -> Result``).
        cfg: unused; executors share one signature.
        max_concurrent: must be 1 (one process trains one child at a time).
    """

    def __init__(self, runner: Runner, cfg: Any = None, max_concurrent: int = 1) -> None:
        if max_concurrent != 1:
            raise ConfigError(
                "max_concurrent",
                f"the local executor trains one child at a time, got {max_concurrent!r}; "
                "use executor=ray for several",
            )
        self.runner = runner
        self.max_concurrent = 1
        self.queue: deque[Trial] = deque()

    def submit(self, trial: Trial) -> None:
        self.queue.append(trial)

    @property
    def in_flight(self) -> int:
        return len(self.queue)

    def wait(self) -> list[Result]:
        if not self.queue:
            return []
        trial = self.queue[0]
        result = self.runner.run(trial)  # Ctrl-C leaves the trial queued: it never finished
        self.queue.popleft()
        return [result]

    def shutdown(self) -> None:
        self.queue.clear()
