"""A child trained data-parallel inside one Ray worker.

Lightning's default DDP launcher re-executes ``sys.argv`` for every extra
rank, and in a Ray worker ``sys.argv`` is Ray's worker script. So the worker
starts the ranks itself, the way ``torchrun`` does: N spawned processes on
its node, each told its rank through ``LOCAL_RANK``/``MASTER_PORT``, where
Lightning's DDP finds that "processes are created externally", launches
nothing and trains with the Trainer config unchanged. Every rank runs the
same runner on the same trial, as every rank of a local DDP search does;
rank 0's result goes back to the driver.

Why not ``ddp_spawn`` or Ray Train: ``ddp_spawn`` re-spawns (and re-imports
torch in) every rank for every child and leaves callback state in the
spawned processes, so the child's metrics would not come back; Ray Train
starts a worker group and a placement group per ``fit``, which a child of a
few minutes cannot repay. Ranks started once per worker keep torch imported
and the process group up from one child to the next.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import Any

from nas_lightning.execution.base import Result, Trial, one_line

# Lightning strategies that launch their own processes, and the name of the
# same strategy when the processes already exist.
_LAUNCHING = ("ddp_spawn", "ddp_fork", "ddp_notebook")


class RankLost(RuntimeError):
    """A rank process died mid-child (killed, out of memory): the executor retries the child."""


def external_strategy(strategy: Any) -> Any:
    """``ddp_spawn_find_unused_parameters_true`` -> ``ddp_find_unused_parameters_true``."""
    if isinstance(strategy, str):
        for name in _LAUNCHING:
            if strategy.startswith(name):
                return "ddp" + strategy[len(name):]
    return strategy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exit_with_parent(parent: int) -> None:
    """Rank processes end when the worker that started them goes (killed, cancelled)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _rank_main(rank: int, world: int, port: int, parent: int, container: dict[str, Any],
               datamodule: Any, threads: int, inbox: Any, outbox: Any) -> None:
    """One rank: build the runner once, then train every trial the worker sends."""
    os.environ.update({
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
        "NODE_RANK": "0", "LOCAL_RANK": str(rank), "RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world),
    })
    _exit_with_parent(parent)
    import torch
    from omegaconf import OmegaConf

    from nas_lightning.execution.runner import make_runner
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    torch.set_num_threads(threads)
    cfg = OmegaConf.create(container)
    cfg.trainer.strategy = external_strategy(cfg.trainer.get("strategy", "ddp"))
    try:
        runner = make_runner(cfg, datamodule=datamodule, prepare=False)
    except Exception as err:  # a config every rank rejects: say so once, then stop
        outbox.put((rank, None, one_line(err)))
        return
    outbox.put((rank, "ready", None))
    while True:
        trial = inbox.get()
        if trial is None:
            return
        try:
            outbox.put((rank, runner.run(trial), None))
        except BaseException as err:  # noqa: BLE001  (the worker must hear of it)
            outbox.put((rank, None, one_line(err)))
            raise


class RankGroup:
    """``world`` processes that train each child together; a runner like any other.

    Args:
        container: the resolved search config (plain data).
        datamodule: the proxy task (pickled once to each rank).
        threads: torch threads per rank.
        world: ranks per child (the Trainer's ``devices``).
    """

    def __init__(self, container: dict[str, Any], datamodule: Any, threads: int,
                 world: int) -> None:
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")  # never fork a Ray worker: its threads do not survive
        self.world = world
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(world)]
        port, parent = free_port(), os.getpid()
        self.procs = [
            ctx.Process(target=_rank_main, daemon=True, name=f"nas-child-rank{rank}",
                        args=(rank, world, port, parent, container, datamodule, threads,
                              self.inboxes[rank], self.outbox))
            for rank in range(world)
        ]
        for p in self.procs:
            p.start()
        self._gather("starting")

    def _gather(self, what: str) -> list[Any]:
        """One message from every rank; a rank that dies instead ends the group."""
        got: dict[int, Any] = {}
        while len(got) < self.world:
            try:
                rank, value, error = self.outbox.get(timeout=0.5)
            except queue.Empty:
                dead = [(r, p.exitcode) for r, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    self.close()
                    raise RankLost(f"DDP rank {dead[0][0]} exited with code {dead[0][1]} "
                                   f"while {what}") from None
                continue
            if error is not None:
                self.close()
                raise RuntimeError(f"DDP rank {rank}: {error}")
            got[rank] = value
        return [got[r] for r in range(self.world)]

    def run(self, trial: Trial) -> Result:
        for inbox in self.inboxes:
            inbox.put(trial)
        return self._gather(f"training child {trial.index}")[0]  # every rank agrees: rank 0's

    def close(self) -> None:
        for inbox, p in zip(self.inboxes, self.procs, strict=True):
            if p.is_alive():
                inbox.put(None)
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
