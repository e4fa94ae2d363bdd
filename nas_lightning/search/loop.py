"""The search loop: ask, train, record, tell, log, until the budget is spent.

``run_search(cfg)`` is a pure function of a composed config: ``search.py``
calls it from Hydra, tests call it with ``hydra.compose``. Every object is
built (and so every config value validated) before the first child trains.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.callbacks import ControllerCallback, FinishedChild, SearchCallback
from nas_lightning.checks import check_search_config
from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Executor, Result, Trial, one_line
from nas_lightning.execution.engine import Engine
from nas_lightning.execution.rank_errors import capture_stderr
from nas_lightning.execution.runner import make_runner
from nas_lightning.genotypes.base import genotype_to_dict
from nas_lightning.rewards.base import ChildMetrics
from nas_lightning.search.builders import build, build_partial
from nas_lightning.search.loggers import SearchLogger
from nas_lightning.search.progress import SearchProgress, end_summary, print_banner
from nas_lightning.search.records import RunRecorder
from nas_lightning.search.runfolder import RunFolder, open_run_folder
from nas_lightning.search.threads import apply_num_threads
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Strategy
from nas_lightning.utils import global_rank, quiet_lightning
from nas_lightning.viz import draw_search

log = logging.getLogger("nas_lightning.search")


@dataclass
class SearchResult:
    """What a finished search returns (and what its run folder holds)."""

    run_dir: Path
    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    strategy: Strategy
    space: SearchSpace
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def _record(trial: Trial, result: Result, reward: float | None) -> dict[str, Any]:
    genotype = trial.genotype
    extra = dict(result.extra)
    if result.status == "ok" and result.timing:
        extra["timing"] = result.timing  # after the reward: it never sees it
    record: dict[str, Any] = {
        "index": trial.index,
        "status": result.status,
        "reward": reward,
        "val_acc": result.val_acc,
        "val_curve": list(result.val_curve),
        "params": result.params,
        "seconds": round(result.seconds, 3),
        "genotype": genotype_to_dict(genotype) if hasattr(genotype, "kind") else genotype,
        "actions": list(trial.actions),
        "steps": trial.proposal.info.get("steps"),
        "extra": extra,
    }
    if result.error:
        record["error"] = result.error
    if trial.attempt:
        record["attempt"] = trial.attempt
    if result.worker:
        record["worker"] = result.worker
    return record


def _reward(reward_fn: Callable[[ChildMetrics], float], result: Result) -> float | None:
    """The driver's reward of an ok child; a reward that fails marks the child failed."""
    if result.status != "ok":
        return None
    try:
        reward = float(reward_fn(result.metrics()))
        if not math.isfinite(reward):
            raise ValueError(f"reward is {reward} for val_acc={result.val_acc}")
        return reward
    except Exception as err:  # a child's bad metrics must not end the search
        result.status, result.error = "failed", one_line(err)
        log.warning("child %d failed: %s", result.index, result.error)
        return None


def search_mode(cfg: DictConfig, executor: Executor) -> tuple[str, int]:
    """``search.mode`` and the batch size it implies (1 in async mode)."""
    mode = cfg.search.get("mode") or "async"
    if mode not in ("async", "batch"):
        raise ConfigError("search.mode", f"must be 'async' or 'batch', got {mode!r}")
    if mode == "async":
        return mode, 1
    size = cfg.search.get("batch_size")
    size = executor.max_concurrent if size is None else size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError("search.batch_size", f"must be an integer >= 1, got {size!r}")
    return mode, size


def run_search(cfg: DictConfig) -> SearchResult:
    """Run (or resume) a search described by ``cfg``; returns its result.

    Raises :class:`~nas_lightning.search.signals.SearchInterrupted` on
    SIGTERM or Ctrl-C, leaving a resumable run folder.
    """
    with open_run_folder(cfg) as folder:  # lock, torn-line repair, signals: runfolder.py
        return _run_search(cfg, folder)


def _run_search(cfg: DictConfig, folder: RunFolder) -> SearchResult:
    quiet_lightning()
    check_search_config(cfg)  # every value, before anything is built or trained
    threads = apply_num_threads(cfg)
    rank = global_rank()
    if rank == 0:
        print_banner(cfg, threads)
    start = time.perf_counter()
    num_children = int(cfg.search.num_children)
    if num_children < 1:
        raise ConfigError("search.num_children", f"must be >= 1, got {num_children}")
    run_dir = Path(cfg.resume or cfg.run_dir)
    if rank != 0:  # rank 0 quotes a failed child's reason from here (rank_errors.py)
        capture_stderr(run_dir, rank)

    # Build everything first: a bad value stops the run before any training.
    space: SearchSpace = build(cfg.search_space, "search_space")
    if cfg.strategy.get("controller") is not None:
        build_partial(cfg.controller, "controller", space.decisions)  # validates it
    strategy: Strategy = build_partial(cfg.strategy, "strategy", space=space, seed=int(cfg.seed))
    reward_fn = build(cfg.reward, "reward")
    logger: SearchLogger = build(cfg.logger, "logger") if cfg.get("logger") else SearchLogger()
    failed_reward = cfg.search.get("failed_reward")
    runner = make_runner(cfg, prepare=rank == 0)
    if hasattr(runner, "rank_errors"):
        runner.rank_errors = True
    executor: Executor = build_partial(
        cfg.get("executor") or {"_target_": "nas_lightning.execution.local.LocalExecutor",
                                 "_partial_": True},
        "executor", runner=runner, cfg=cfg,
    )
    try:
        mode, batch_size = search_mode(cfg, executor)
    except ConfigError:
        executor.shutdown()
        raise
    probe = getattr(runner, "probe", None)

    records = folder.records  # run folder checks: runfolder.py
    recorder = RunRecorder(run_dir, enabled=rank == 0, run_id=folder.run_id, recorded=records,
                           repair=False)
    engine = Engine(
        cfg, strategy, space, executor, recorder,
        reward_fn=lambda result: _reward(reward_fn, result),
        record_fn=_record,
        num_children=num_children, mode=mode, batch_size=batch_size,
        replay=ControllerCallback(strategy, None, failed_reward),  # no logging
        # run folders written before search.repeats existed trained every repeat
        repeats=cfg.search.get("repeats") or "train",
        reuse_limit=cfg.search.get("reuse_limit", 50),
    )
    completed = False
    progress = SearchProgress(cfg, num_children, done=len(records), enabled=rank == 0,
                              threads=threads).start()

    try:  # a refused resume leaves the folder as it was: nothing below is written
        engine.restore(records, folder.strategy_state() if records else None)
    except BaseException:
        executor.shutdown()
        progress.close()
        raise
    try:
        recorder.write_best()
        records = engine.records
        if rank == 0:
            folder.write_config(cfg)
            logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True))
        engine.callbacks = [ControllerCallback(strategy, logger if rank == 0 else None,
                                               failed_reward), *engine.callbacks]
        if rank == 0:
            engine.callbacks.append(ProgressCallback(progress))
        if cfg.search.get("rank_digest"):
            engine.callbacks.append(DigestCallback(strategy))
        engine.run()
        completed = True
    finally:
        executor.shutdown()
        progress.close()
        try:  # an error on the way out (a full disk) must not hide the one that ended the run
            if rank == 0:  # reward_curve.png, best_architecture.png (+ W&B images)
                draw_search(run_dir, engine.records, recorder.best, progress.baselines, logger)
            if rank == 0:
                strategy.finish(run_dir)  # a strategy's own results (NetAdapt)
            summary = _finish(cfg, run_dir, engine.records, recorder, probe, logger, rank, start,
                              folder.status(completed), engine.repeats.reused, engine.stopped)
            for callback in engine.callbacks:
                callback.on_search_end(engine.records)
            if cfg.search.get("rank_digest"):
                digest_dir = run_dir / "rank_digest"
                digest_dir.mkdir(parents=True, exist_ok=True)
                digest = next((c.rows for c in engine.callbacks
                               if isinstance(c, DigestCallback)), [])
                (digest_dir / f"rank{rank}.json").write_text(json.dumps(digest))
        except Exception as err:
            if completed:
                raise
            log.warning("the run folder was not finished: %s", one_line(err))
    return SearchResult(run_dir, records, recorder.best, strategy, space,
                        time.perf_counter() - start, summary)


class DigestCallback(SearchCallback):
    """Per-rank digest of each child and the controller after its update (DDP checks)."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.rows: list[dict[str, Any]] = []

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        for c in children:
            self.rows.append({"index": c.trial.index, "actions": list(c.trial.actions),
                              "reward": c.reward, **_controller_digest(self.strategy)})


class ProgressCallback(SearchCallback):
    """The search's progress display (bar or lines), one update per child."""

    def __init__(self, progress: SearchProgress) -> None:
        self.progress = progress

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        for c in children:
            self.progress.child_end(c.record, c.stats)


def _controller_digest(strategy: Strategy) -> dict[str, Any]:
    controller = getattr(strategy, "controller", None)
    if controller is None:
        return {}
    total = sum(float(p.detach().double().sum()) for p in controller.parameters())
    return {"controller_sum": total, "baseline": getattr(strategy, "baseline", None)}


def _finish(cfg, run_dir, records, recorder, probe, logger, rank, start,
            status: str, reused: int = 0, stopped: str | None = None) -> dict[str, Any]:
    """Write the summary, let the probe and logger close; rank 0 only."""
    ok = [r for r in records if r["status"] == "ok"]
    summary: dict[str, Any] = {
        "status": status,
        "children": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "reused": reused,  # repeated proposals told a recorded reward (search.repeats)
        "stopped": stopped,  # converged / exhausted: stopped before the budget (search.repeats)
        "wall_seconds": round(time.perf_counter() - start, 2),
        "child_seconds": round(sum(r["seconds"] for r in records), 2),
        "best_index": recorder.best["index"] if recorder.best else None,
        "best_reward": recorder.best["reward"] if recorder.best else None,
    }
    if rank != 0:
        return summary
    if probe is not None and hasattr(probe, "summary"):  # a LatencyProbe
        summary["latency"] = probe.summary()
    if probe is not None and hasattr(probe, "finish"):
        for name, path in (probe.finish(run_dir, records) or {}).items():
            logger.log_image(name, Path(path))
    recorder.write_json("summary.json", summary)
    logger.finish(run_dir, records, recorder.best)
    for line in end_summary(records, recorder.best, run_dir):
        log.info("%s", line)
    log.info("run folder: %s", os.path.abspath(run_dir))
    return summary
