"""Where children train: the executor contract, the local and Ray executors, runners.

``Trial`` goes out, ``Result`` comes back; the driver (``nas_lightning.search.loop``)
computes rewards, records and tells. ``ray_executor`` imports Ray only when used.
"""

from nas_lightning.execution.base import Executor, Result, Runner, Trial
from nas_lightning.execution.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "Result", "Runner", "Trial"]
