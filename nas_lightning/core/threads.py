"""How many torch CPU threads a search process uses.

torch defaults to one intra-op thread per physical core. That is right on an
idle machine running one child, and badly wrong when the cores are shared:
OpenMP worker threads spin while they wait for each other, so a process with
more threads than free cores spends its time waiting for descheduled
threads, and a child can run several times slower than with one thread.
The default here (``search.num_threads: auto``) therefore never asks for more
threads than there are free cores per concurrent child:

- cores free = usable cores (the process's CPU affinity) minus the one-minute
  load average when the search starts, less one unit for the search process
  itself (it is already running, importing torch), at least 1;
- divided among the children that run at once (``executor.max_concurrent``,
  or ``executor.cpus_per_child`` when the executor reserves cores per child);
- capped at 4: the search's children are small networks (a few thousand to a
  few hundred thousand parameters at 14x14 to 28x28) whose operations are too
  small to split usefully over many threads.

An explicit integer wins, and so does ``OMP_NUM_THREADS`` when the user set
it (torch already honours it at start-up).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from nas_lightning.errors import ConfigError

log = logging.getLogger("nas_lightning.search")

MAX_AUTO_THREADS = 4


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def other_load() -> float:
    """The one-minute load average (0 where the OS does not report one)."""
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def auto_num_threads(
    concurrent: int = 1, cores: int | None = None, load: float | None = None
) -> int:
    """Threads per child: free cores shared among ``concurrent`` children, in [1, 4]."""
    cores = usable_cores() if cores is None else cores
    load = other_load() if load is None else load
    others = max(0.0, load - 1.0)  # the load average counts this process too
    free = max(1, int(cores - others + 0.5))
    return max(1, min(MAX_AUTO_THREADS, free // max(1, concurrent)))


def _concurrency(executor: Any) -> tuple[int, int | None]:
    """(children at once, cores reserved per child) from an executor config, if any."""
    if not executor:
        return 1, None
    concurrent = executor.get("max_concurrent") or executor.get("num_workers") or 1
    per_child = executor.get("cpus_per_child")
    return max(1, int(concurrent)), int(per_child) if per_child else None


def resolve_num_threads(value: Any, executor: Any = None) -> int | None:
    """The thread count ``search.num_threads`` asks for (None: leave torch alone).

    Args:
        value: an integer >= 1, ``auto`` (the default above) or null (torch's own
            default, i.e. one thread per physical core).
        executor: the ``executor`` config group, if the search has one.
    """
    if value is None or value == "none":
        return None
    if value == "auto":
        if os.environ.get("OMP_NUM_THREADS"):
            return None
        concurrent, per_child = _concurrency(executor)
        if per_child:
            return max(1, min(MAX_AUTO_THREADS, per_child))
        return auto_num_threads(concurrent)
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1 or isinstance(value, bool):
        raise ConfigError("search.num_threads", f"must be an integer >= 1, auto or null, "
                          f"got {value!r}")
    return threads


def apply_num_threads(cfg: Any) -> int:
    """Set torch's intra-op threads from ``cfg.search.num_threads``; returns the count used."""
    import torch

    threads = resolve_num_threads(cfg.search.get("num_threads"), cfg.get("executor"))
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()
