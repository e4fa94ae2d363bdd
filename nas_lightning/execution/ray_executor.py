"""Children in Ray workers: one machine with several GPUs, or a Ray cluster.

Each child is a Ray task with the declared resources (``cpus_per_child``,
fractional ``gpus_per_child``); Ray places it on a worker process, which
builds the runner once from the search config (long-lived workers import
torch once) and trains the child with the same Lightning Trainer as the
local executor. The dataset goes into Ray's object store once and every
worker reads it from there. Workers return plain results; the driver alone
writes the run folder, updates the strategy and logs.

A child whose Trainer runs several processes (``trainer=ddp``,
``trainer.devices=N``) reserves N GPUs (or N x ``cpus_per_child`` CPUs) on one
node; its worker starts the N ranks (``execution/ddp.py``) and Lightning's DDP
trains the child across them unchanged.

A child whose worker dies (process killed, node lost) is submitted again up
to ``max_retries`` times, then recorded as failed; the search goes on.

``address: null`` starts a private Ray, never a cluster that ``ray start``
left running on the machine. Starting or joining Ray is bounded by
``connect_timeout_s``: an address where nothing answers, or a Ray that does
not come up in time, ends the search with one line and exit status 75 (try
again later). Ray replaces SIGTERM/SIGINT handlers when it starts; the
search's own are put back, so a preempted search stops as without Ray.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.core.signals import HANDLED, SearchInterrupted, critical
from nas_lightning.errors import ConfigError, TransientError
from nas_lightning.execution.base import Executor, Result, Runner, Trial, one_line
from nas_lightning.execution.ddp import RankLost
from nas_lightning.execution.schedulers import RungTable

log = logging.getLogger("nas_lightning.search")

WAIT_SLICE = 0.5  # seconds: how soon a signal held during a wait for children is raised
CONNECT_TIMEOUT_S = 120.0  # starting a local Ray or joining a cluster, at most
PROBE_TIMEOUT_S = 10.0  # a TCP connect to the cluster's address, at most
STATE_DUMP = "[state-dump]"  # a raylet's periodic debug dump, streamed to drivers by Ray

_RUNNERS: dict[str, Runner] = {}  # per worker process: built once per search config


def import_ray() -> Any:
    """``ray``, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "", "executor=ray needs Ray: pip install -e \".[ray]\" (or pip install ray)"
        ) from None
    return ray


def package_env() -> dict[str, Any]:
    """A runtime environment whose workers import this very copy of nas_lightning."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def init_local_ray(num_cpus: int | None = None, num_gpus: int | None = None, **kwargs: Any) -> None:
    """Start a private Ray on this machine (no dashboard) whose workers import this package.

    ``address="local"``: without it Ray joins the cluster that the last
    ``ray start`` on this machine recorded.
    """
    ray = import_ray()
    ray.init(
        address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
        runtime_env=package_env(), **kwargs,
    )


def endpoint(address: str) -> tuple[str, int] | None:
    """Host and port of ``host:port`` or ``ray://host:port``; None for ``auto``/``local``."""
    if address in ("auto", "local"):
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("address", (
            f"expected host:port, ray://host:port or auto, got {address!r}"))
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """Fail at once, in one line, where nothing answers at ``address`` (Ray would retry long)."""
    where = endpoint(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=min(timeout_s, PROBE_TIMEOUT_S)).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise TransientError(
            f"executor.address={address}: nothing answers at {where[0]}:{where[1]} ({reason}); "
            "is the Ray cluster up?") from None


class _Late(BaseException):  # noqa: N818 - raised by the alarm inside ray.init
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Late` in the main thread after ``seconds`` (elsewhere: no bound)."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def late(signum: int, frame: object) -> None:
        raise _Late

    previous = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _without_dump_lines(lines: Any) -> list[str]:
    """``lines`` without ``[state-dump]`` lines, also those inside a multi-line entry."""
    out = []
    for entry in lines or ():
        kept = "\n".join(part for part in str(entry).split("\n") if STATE_DUMP not in part)
        if kept.strip():
            out.append(kept)
    return out


class _WithoutStateDumps:
    """A Ray printer (``printer(data, ...)``) that leaves ``[state-dump]`` lines out."""

    def __init__(self, printer: Any) -> None:
        self.printer = printer

    def __call__(self, data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        lines = _without_dump_lines(data.get("lines"))
        if lines:
            self.printer({**data, "lines": lines}, *args, **kwargs)


def drop_state_dumps() -> None:
    """Leave the raylets' ``[state-dump]`` lines out of what Ray prints in this process.

    A raylet dumps its state every few seconds; when a node dies Ray streams
    those dumps to the driver (worker output, and the node's last log lines in
    its error message), where they would bury the search's own lines.
    """
    try:
        from ray._private import worker as ray_worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:  # another Ray layout: its lines stay as they are
        return
    handlers = getattr(dispatcher, "handlers", None)
    if isinstance(handlers, list):
        for name, handler in list(handlers):
            if name == "ray_print_logs" and not isinstance(handler, _WithoutStateDumps):
                dispatcher.remove_handler(name)
                dispatcher.add_handler(name, _WithoutStateDumps(handler))
    printer = ray_worker.__dict__.get("print_to_stdstream")  # error messages print through it
    if callable(printer) and not isinstance(printer, _WithoutStateDumps):
        ray_worker.print_to_stdstream = _WithoutStateDumps(printer)


def connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S, **kwargs: Any) -> None:
    """Start a private Ray (``address=None``) or join one, within ``timeout_s`` seconds.

    Ray installs its own SIGTERM handler (``sys.exit``) and, in its core
    worker, one that aborts the process; the handlers found before (the
    search's, see ``search/signals.py``) are put back once Ray is up.

    Raises:
        TransientError: nothing answers at ``address``, or Ray did not start
            or connect in time: the same command may work later.
    """
    ray = import_ray()
    what = "start a local Ray" if address is None else f"connect to {address}"
    if address is not None:
        probe(address, timeout_s)
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in HANDLED} if main else {}
    try:
        with deadline(timeout_s):
            if address is None:
                init_local_ray(**kwargs)
            else:
                ray.init(address=address, runtime_env=package_env())
    except _Late:
        _shutdown_quietly(ray)
        raise TransientError(
            f"executor: could not {what} within {timeout_s:g} s (executor.connect_timeout_s); "
            "try again later") from None
    except SystemExit as err:  # Ray's own SIGTERM handler, during its start
        _shutdown_quietly(ray)
        if err.code == signal.SIGTERM:
            raise SearchInterrupted(signal.SIGTERM) from None
        raise
    except (ValueError, TypeError) as err:
        _shutdown_quietly(ray)
        raise ConfigError("address" if address else "", f"Ray refused: {one_line(err)}") from None
    except Exception as err:  # Ray's start-up time-outs, refused connections, ...
        _shutdown_quietly(ray)
        raise TransientError(f"executor: could not {what}: {one_line(err)}") from None
    finally:
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)
    drop_state_dumps()


def _shutdown_quietly(ray: Any) -> None:
    """Stop what a failed ``ray.init`` started (its processes), ignoring its errors."""
    try:
        ray.shutdown()
    except Exception:  # half started: nothing more to stop
        pass


def _worker_run(handles: list[Any], trial: Trial) -> Result:
    """Runs in a Ray worker: build the runner on first use, then train one child.

    Only the runner's own imports are paid: a Lightning runner imports torch
    and Lightning once per worker, a simulated child (``runner=table``) neither.
    """
    import sys

    import ray

    from nas_lightning.execution.runner import make_runner
    from nas_lightning.utils import quiet_lightning

    cfg_ref, data_ref, threads, world, rungs = handles
    # Ray may give this worker other GPUs for its next task: ranks started on the
    # last ones must not train there, so the GPUs are part of what the runner is for.
    key = f"{cfg_ref.hex()}:{os.environ.get('CUDA_VISIBLE_DEVICES')}"
    runner = _RUNNERS.get(key)
    if runner is None:
        container = ray.get(cfg_ref)
        datamodule = ray.get(data_ref) if data_ref is not None else None
        for old in _RUNNERS.values():  # one search per worker at a time: free the last one's
            close = getattr(old, "close", None)
            if close is not None:
                close()
        _RUNNERS.clear()
        if world > 1:  # the ranks build their runners; this worker only relays
            from nas_lightning.execution.ddp import RankGroup

            runner = RankGroup(container, datamodule, threads, world)
        else:
            runner = make_runner(OmegaConf.create(container), datamodule=datamodule,
                                 prepare=False)
            if "torch" in sys.modules:  # the runner trains with torch: its threads, its logs
                import torch

                quiet_lightning()
                torch.set_num_threads(threads)
        _RUNNERS[key] = runner
    if rungs is not None:  # search.scheduler: one table of rung rewards, in an actor
        from nas_lightning.core.builders import build
        from nas_lightning.execution.evaluator import LightningEvaluator

        assert isinstance(runner, LightningEvaluator)  # the driver refuses other runners
        if runner.rung_score is None:
            runner.rung_score = build(OmegaConf.create(ray.get(cfg_ref)).reward, "reward")
        runner.rungs = RemoteRungs(rungs)
    try:
        return runner.run(trial)
    except BaseException:  # a rank group that failed closed itself: start new ranks next time
        if world > 1:
            _RUNNERS.pop(key, None)
        raise


class RemoteRungs:
    """A worker's client of the search's rung table (a Ray actor)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def report(self, index: int, epoch: int, value: float) -> bool:
        import ray

        return bool(ray.get(self.actor.report.remote(index, epoch, value)))


def child_processes(trainer: Any, gpus_per_child: float = 0) -> int:
    """How many processes one child trains in: 1, or its DDP ranks (``trainer.devices``).

    A child spans one node: its ranks are started by its worker.
    """
    if not trainer:
        return 1
    nodes = trainer.get("num_nodes", 1)
    if nodes not in (None, 1):
        raise ConfigError("trainer.num_nodes", (
            f"under executor=ray a child trains on one node (its ranks start in its worker), "
            f"got {nodes!r}; give each child up to a node's GPUs with trainer.devices"))
    devices = trainer.get("devices", 1)
    strategy = trainer.get("strategy")
    ddp = isinstance(strategy, str) and strategy.startswith("ddp")
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    elif not isinstance(devices, (int, str)):  # a list of device indices
        devices = len(devices)
    if devices in ("auto", -1):  # Lightning: every device this process sees
        devices = int(gpus_per_child) if gpus_per_child >= 1 else 1
        if ddp and devices == 1 and gpus_per_child == 0:
            raise ConfigError("trainer.devices", (
                f"a DDP child under executor=ray needs a number of ranks, got {devices!r}; "
                "set trainer.devices=N"))
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError("trainer.devices", f"must be an integer >= 1, got {devices!r}")
    return devices


def ddp_on_gpus(trainer: Any, gpus_per_child: float, cluster_gpus: float) -> bool:
    """Whether a DDP child's ranks take GPUs: ``gpu``/``cuda``, or ``auto`` where GPUs exist."""
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and (gpus_per_child > 0 or cluster_gpus > 0)


def _check_arguments(address: Any, cpus_per_child: Any, gpus_per_child: Any,
                     max_concurrent: Any, max_retries: Any, connect_timeout_s: Any) -> None:
    """The executor's values, each checked before Ray starts (errors name the key)."""
    if not (isinstance(connect_timeout_s, (int, float)) and connect_timeout_s > 0):
        raise ConfigError(
            "connect_timeout_s", f"must be a number of seconds > 0, got {connect_timeout_s!r}"
        )
    if address is not None and not isinstance(address, str):
        raise ConfigError("address", f"expected host:port, ray://host:port or auto, "
                                     f"got {address!r}")
    if address is not None and address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what Ray Client talks through)
        except ImportError:
            raise ConfigError("address", (
                f"{address} joins through Ray Client, which needs "
                "pip install \"ray[client]\" (or pip install -e \".[ray]\")")) from None
    if not (isinstance(cpus_per_child, (int, float)) and cpus_per_child > 0):
        raise ConfigError("cpus_per_child", f"must be > 0, got {cpus_per_child!r}")
    if not (isinstance(gpus_per_child, (int, float)) and gpus_per_child >= 0):
        raise ConfigError("gpus_per_child", f"must be >= 0, got {gpus_per_child!r}")
    if gpus_per_child > 1 and gpus_per_child != int(gpus_per_child):
        raise ConfigError(
            "gpus_per_child", f"above 1 must be whole, got {gpus_per_child!r}"
        )
    if max_concurrent is not None and not (
        isinstance(max_concurrent, int) and max_concurrent >= 1
    ):
        raise ConfigError(
            "max_concurrent", f"must be an integer >= 1, got {max_concurrent!r}"
        )
    if not (isinstance(max_retries, int) and max_retries >= 0):
        raise ConfigError(
            "max_retries", f"must be an integer >= 0, got {max_retries!r}"
        )


class RayExecutor(Executor):
    """Train children as Ray tasks.

    Args:
        runner: the driver's runner; its dataset (if any) is put in the object
            store once and shared by all workers.
        cfg: the resolved search config; workers build their runner from it.
        cpus_per_child: CPUs reserved per child (also its torch threads unless
            ``search.num_threads`` is an integer).
        gpus_per_child: GPUs per child; fractions share a GPU (0.5: two children).
        max_concurrent: children in flight at once; None: as many as the
            cluster's CPUs (and GPUs) fit.
        address: None: start a private Ray on this machine (never one that
            ``ray start`` left running); ``auto``, ``host:6379`` or
            ``ray://host:10001``: join a running cluster.
        max_retries: submissions again of a child whose worker died.
        num_cpus, num_gpus: resources of a local Ray (None: Ray detects them).
        connect_timeout_s: starting or joining Ray takes at most this long;
            then the search ends with exit status 75 (try again later).
    """

    def __init__(
        self,
        runner: Runner,
        cfg: DictConfig,
        cpus_per_child: float = 1,
        gpus_per_child: float = 0,
        max_concurrent: int | None = None,
        address: str | None = None,
        max_retries: int = 2,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        _check_arguments(address, cpus_per_child, gpus_per_child, max_concurrent, max_retries,
                         connect_timeout_s)
        trainer: Any = {}  # a simulated runner (runner=...) ignores the Trainer config
        if cfg is not None and cfg.get("runner") is None:
            trainer = cfg.get("trainer") or {}
        world = child_processes(trainer, gpus_per_child)
        if world > 1 and gpus_per_child not in (0, world) and ddp_on_gpus(
            trainer, gpus_per_child, 0
        ):
            raise ConfigError("gpus_per_child", (
                f"a child with trainer.devices={world} under DDP takes {world} whole GPUs, "
                f"one per rank; set executor.gpus_per_child={world} or leave it 0, "
                f"got {gpus_per_child!r}"))
        ray = self.ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            connect(address, connect_timeout_s, num_cpus=num_cpus, num_gpus=num_gpus)
            self.started = True
        total = ray.cluster_resources()
        num_cpus_task, num_gpus_task = cpus_per_child, gpus_per_child
        if world > 1:  # N ranks: N GPUs (all on one node) or N x cpus_per_child CPUs
            num_cpus_task = cpus_per_child * world
            if ddp_on_gpus(trainer, gpus_per_child, total.get("GPU", 0)):
                num_gpus_task = world
        if num_gpus_task and address is None and total.get("GPU", 0) < num_gpus_task:
            self._stop()
            raise ConfigError("gpus_per_child", (
                f"each child needs {num_gpus_task} GPU(s) and the local Ray has "
                f"{total.get('GPU', 0):g}; use trainer=cpu executor.gpus_per_child=0, or a "
                "machine or cluster with GPUs"))
        if max_concurrent is None:
            fits = [int(total.get("CPU", 1) // num_cpus_task)]
            if num_gpus_task:
                fits.append(int(total.get("GPU", 0) // num_gpus_task))
            max_concurrent = max(1, min(fits))
        self.max_concurrent = max_concurrent
        self.max_retries = max_retries
        threads = max(1, int(cpus_per_child))  # a child's torch threads: its reserved CPUs
        if cfg is not None:
            from nas_lightning.core.threads import resolve_num_threads

            threads = resolve_num_threads(cfg.search.get("num_threads"), cfg.get("executor")) or (
                threads
            )
        container = OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {}
        datamodule = getattr(runner, "datamodule", None)
        # Into the object store once; workers read these, never a copy per child.
        self.handles = [
            ray.put(container),
            ray.put(datamodule) if datamodule is not None else None,
            int(threads),
            world,
            None,  # search.scheduler's rung table (share_rungs): a Ray actor
        ]
        self.task = ray.remote(_worker_run).options(
            num_cpus=num_cpus_task, num_gpus=num_gpus_task, max_retries=0
        )
        self.queue: deque[Trial] = deque()
        self.running: dict[Any, Trial] = {}
        log.info("ray executor: %d children at once, %s CPU + %s GPU each%s (%s)",
                 max_concurrent, num_cpus_task, num_gpus_task,
                 f", {world} DDP ranks" if world > 1 else "", address or "local Ray")

    def share_rungs(self, table: RungTable) -> None:
        """The driver's table of rung rewards, moved to one Ray actor every worker asks."""
        world = self.handles[3]  # processes per child: its DDP ranks
        if world > 1:
            raise ConfigError("search.scheduler", (
                "stops children early in one process; with executor=ray a child "
                f"that trains on {world} DDP ranks cannot be stopped at a rung "
                "(set search.scheduler=none, or trainer.devices=1)"))
        actor = self.ray.remote(RungTable).options(num_cpus=0).remote(table.plan)
        self.ray.get(actor.load.remote(list(table.reports)))
        self.handles[4] = actor

    def submit(self, trial: Trial) -> None:
        self.queue.append(trial)
        self._fill()

    def _fill(self) -> None:
        while self.queue and len(self.running) < self.max_concurrent:
            trial = self.queue.popleft()
            self.running[self.task.remote(self.handles, trial.shipped())] = trial

    @property
    def in_flight(self) -> int:
        return len(self.running) + len(self.queue)

    def wait(self) -> list[Result]:
        ray = self.ray
        results: list[Result] = []
        while not results:
            self._fill()
            if not self.running:
                return results
            # Ray's blocking calls run Python signal handlers inside C code and turn the
            # exception ours raises into a SystemError once the call returns: Ctrl-C and
            # SIGTERM are held while Ray has control and raised between short waits.
            with critical():
                ready, _ = ray.wait(list(self.running), num_returns=1, timeout=WAIT_SLICE)
                if ready:
                    more, _ = ray.wait(list(self.running), num_returns=len(self.running),
                                       timeout=0)
                    ready = list(dict.fromkeys([*ready, *more]))
            for ref in ready:
                trial = self.running.pop(ref)
                try:
                    with critical():
                        results.append(ray.get(ref))
                except ray.exceptions.RayTaskError as err:  # raised by our code in the worker
                    cause = getattr(err, "cause", err)
                    if isinstance(cause, RankLost):  # a DDP rank died: as if the worker had
                        self._retry_or_fail(trial, cause, results)
                    else:
                        results.append(Result.failure(trial, one_line(cause)))
                except ray.exceptions.RayError as err:  # the worker or its node went away
                    self._retry_or_fail(trial, err, results)
        return results

    def _retry_or_fail(self, trial: Trial, err: BaseException, results: list[Result]) -> None:
        """A child that lost its worker (or a DDP rank): queue it again, or record it failed."""
        if trial.attempt < self.max_retries:
            log.warning("child %d: its worker or node was lost (%s); training it again "
                        "(retry %d of %d)", trial.index, type(err).__name__,
                        trial.attempt + 1, self.max_retries)
            trial.attempt += 1
            self.queue.appendleft(trial)
        else:
            results.append(Result.failure(
                trial, f"worker lost {trial.attempt + 1} times: {one_line(err)}"
            ))

    def _stop(self) -> None:
        """Stop the local Ray this executor started (a config it refused)."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
            self.started = False

    def shutdown(self) -> None:
        for ref in list(self.running):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or gone
                pass
        self.running.clear()
        self.queue.clear()
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
            self.started = False
