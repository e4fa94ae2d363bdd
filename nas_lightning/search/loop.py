"""The search loop: ask, train, record, tell, log, until the budget is spent.

``run_search(cfg)`` is a pure function of a composed config: ``search.py``
calls it from Hydra, tests call it with ``hydra.compose``. Every object is
built (and so every config value validated) before the first child trains.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nas_lightning.checks import check_search_config
from nas_lightning.core.builders import build, build_partial
from nas_lightning.core.child_record import ChildRecord, final_reward
from nas_lightning.core.records import RunRecorder
from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Executor, Result, Trial, one_line
from nas_lightning.execution.callbacks import ControllerCallback, FinishedChild, SearchCallback
from nas_lightning.execution.engine import Engine
from nas_lightning.execution.evaluator import LightningEvaluator
from nas_lightning.execution.rank_errors import capture_stderr
from nas_lightning.execution.runner import make_runner
from nas_lightning.execution.schedulers import RungPlan, RungTable, first_rung_metrics, rung_plan
from nas_lightning.genotypes.base import Genotype, genotype_to_dict
from nas_lightning.latency.probe import LatencyProbe
from nas_lightning.proxies import PROXIES, score
from nas_lightning.rewards.base import ChildMetrics
from nas_lightning.runs import genotype_text
from nas_lightning.search.progress import SearchProgress, end_summary, print_banner
from nas_lightning.search.runfolder import RunFolder, open_run_folder
from nas_lightning.search.setup import SearchParts, build_parts, finish_outputs, start_outputs
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy
from nas_lightning.strategies.prefilter import Prefilter
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


def _record(trial: Trial, result: Result, reward: float | None,
            rungs: tuple[RungPlan, Callable[[ChildMetrics], float]] | None = None,
            ) -> dict[str, Any]:
    genotype = trial.genotype
    extra = dict(result.extra)
    if result.status == "ok" and result.timing:
        extra["timing"] = result.timing  # after the reward: it never sees it
    info = trial.proposed.info
    if "prefilter_score" in info:  # search.prefilter: the score that chose it
        extra["prefilter_score"] = info["prefilter_score"]
    rung = final = None
    if rungs is not None and result.status == "ok":  # search.scheduler: where it stopped
        plan, reward_fn = rungs
        rung = plan.rung_of(len(result.val_curve))
        final = _reward(reward_fn, result)
    return ChildRecord(
        index=trial.index,
        status=result.status,
        reward=reward,
        val_acc=result.val_acc,
        val_curve=tuple(result.val_curve),
        params=result.params,
        seconds=round(result.seconds, 3),
        genotype=genotype_to_dict(genotype) if isinstance(genotype, Genotype) else genotype,
        actions=tuple(trial.actions),
        steps=trial.proposed.info.get("steps"),
        extra=extra,
        error=result.error,
        attempt=trial.attempt,
        worker=result.worker,
        rung=rung,
        final_reward=final,
    ).to_dict()


def _reward(reward_fn: Callable[[ChildMetrics], float], result: Result,
            plan: RungPlan | None = None) -> float | None:
    """The driver's reward of an ok child; a reward that fails marks the child failed.

    With a multi-fidelity scheduler (``plan``), the reward at the first rung,
    which every child reaches: the one the strategy is told.
    """
    if result.status != "ok":
        return None
    try:
        metrics = result.metrics()
        if plan is not None:
            first = first_rung_metrics(metrics, plan)
            if first is None:
                raise ValueError(f"trained {len(metrics.val_curve)} epochs, fewer than the "
                                 f"first rung's {plan.min_epochs}")
            metrics = first
        reward = float(reward_fn(metrics))
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


def run_search(
    cfg: DictConfig,
    *,
    strategy: Strategy | None = None,
    callbacks: Sequence[SearchCallback] = (),
) -> SearchResult:
    """Run (or resume) a search described by ``cfg``; returns its result.

    Args:
        cfg: the composed config (``search.py``'s).
        strategy: a strategy built for ``cfg``'s space, used instead of
            building ``cfg.strategy`` (resume restores its state all the same).
        callbacks: more :class:`SearchCallback` objects, told of each group of
            finished children after the strategy has learned from it (and of
            repeats, the start and the end of the search).

    Raises :class:`~nas_lightning.core.signals.SearchInterrupted` on
    SIGTERM or Ctrl-C, leaving a resumable run folder.
    """
    with open_run_folder(cfg) as folder:  # lock, torn-line repair, signals: runfolder.py
        return _run_search(cfg, folder, strategy, list(callbacks))


def _run_search(cfg: DictConfig, folder: RunFolder, strategy: Strategy | None,
                extra_callbacks: list[SearchCallback]) -> SearchResult:
    check_search_config(cfg)  # every value, before anything is built or trained
    num_children = int(cfg.search.num_children)
    if num_children < 1:
        raise ConfigError("search.num_children", f"must be >= 1, got {num_children}")
    # Build everything first: a bad value stops the run before any training.
    parts = build_parts(cfg, strategy)
    rank, run_dir, threads, start = parts.rank, parts.run_dir, parts.threads, parts.start
    space, strategy, logger = parts.space, parts.strategy, parts.logger
    if rank == 0:
        print_banner(cfg, threads)
    if rank != 0:  # rank 0 quotes a failed child's reason from here (rank_errors.py)
        capture_stderr(run_dir, rank)
    reward_fn = build(cfg.reward, "reward")
    failed_reward = cfg.search.get("failed_reward")
    runner: Any = make_runner(cfg, prepare=rank == 0)
    lightning = isinstance(runner, LightningEvaluator)  # else a runner of the config's own
    if lightning:
        runner.rank_errors = True
    strategy = _prefilter(cfg, strategy, runner)
    plan, table = _rungs(cfg, runner, reward_fn, folder.records)
    executor: Executor = build_partial(
        cfg.get("executor") or {"_target_": "nas_lightning.execution.local.LocalExecutor",
                                 "_partial_": True},
        "executor", runner=runner, cfg=cfg,
    )
    try:
        mode, batch_size = search_mode(cfg, executor)
        if table is not None:
            executor.share_rungs(table)
    except ConfigError:
        executor.shutdown()
        raise
    probe = runner.probe if lightning and isinstance(runner.probe, LatencyProbe) else None

    records = folder.records  # run folder checks: runfolder.py
    recorder = RunRecorder(run_dir, enabled=rank == 0, run_id=folder.run_id, recorded=records,
                           repair=False)
    completed = False
    progress = SearchProgress(cfg, num_children, done=len(records), enabled=rank == 0,
                              threads=threads).start()
    callbacks: list[SearchCallback] = [
        ControllerCallback(strategy, logger if rank == 0 else None, failed_reward)
    ]
    if rank == 0:
        callbacks.append(ProgressCallback(progress))
    if cfg.search.get("rank_digest"):
        callbacks.append(DigestCallback(strategy, run_dir / "rank_digest" / f"rank{rank}.json"))
    engine = Engine(
        cfg, strategy, space, executor, recorder,
        reward_fn=lambda result: _reward(reward_fn, result, plan),
        record_fn=lambda trial, result, reward: _record(
            trial, result, reward, (plan, reward_fn) if plan is not None else None),
        num_children=num_children, mode=mode, batch_size=batch_size,
        replay=ControllerCallback(strategy, None, failed_reward),  # no logging
        # run folders written before search.repeats existed trained every repeat
        repeats=cfg.search.get("repeats") or "train",
        reuse_limit=cfg.search.get("reuse_limit", 50),
        callbacks=[*callbacks, *extra_callbacks],
        max_seconds=_max_seconds(cfg.search.get("max_minutes")),
    )

    try:  # a refused resume leaves the folder as it was: nothing below is written
        engine.restore(records, folder.strategy_state() if records else None)
    except BaseException:
        executor.shutdown()
        progress.close()
        raise
    try:
        recorder.write_best()
        records = engine.records
        start_outputs(parts, folder)
        engine.run()
        completed = True
    finally:
        executor.shutdown()
        progress.close()
        try:  # an error on the way out (a full disk) must not hide the one that ended the run
            if rank == 0:  # reward_curve.png, best_architecture.png (+ W&B images)
                draw_search(run_dir, engine.records, recorder.best, progress.baselines, logger,
                            image_size=runner.datamodule.image_size if lightning else None)
                for name, data in strategy.outputs().items():  # its own results (NetAdapt)
                    recorder.write_json(name, data)
            summary = _finish(parts, engine.records, recorder, probe,
                              folder.status(completed), engine.repeats.reused, engine.stopped)
            for callback in engine.callbacks:  # the rank digest writes its file here
                callback.on_search_end(engine.records)
        except Exception as err:
            if completed:
                raise
            log.warning("the run folder was not finished: %s", one_line(err))
    return SearchResult(run_dir, records, recorder.best, strategy, space,
                        time.perf_counter() - start, summary)


class DigestCallback(SearchCallback):
    """Per-rank digest of each child and the controller after its update (DDP checks),
    written to ``path`` when the search ends."""

    def __init__(self, strategy: Strategy, path: Path) -> None:
        self.strategy = strategy
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        for c in children:
            self.rows.append({"index": c.trial.index, "actions": list(c.trial.actions),
                              "reward": c.reward, **_controller_digest(self.strategy)})

    def on_search_end(self, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rows))


class ProgressCallback(SearchCallback):
    """The search's progress display (bar or lines), one update per child."""

    def __init__(self, progress: SearchProgress) -> None:
        self.progress = progress

    def on_child_start(self, trial: Trial) -> None:
        self.progress.child_start(trial.index, _architecture_text(trial.proposed.genotype))

    def on_children_end(self, children: Sequence[FinishedChild]) -> None:
        done = max(c.trial.index for c in children) + 1  # a batch has ended as a whole
        for c in children:
            self.progress.child_end(c.record, c.stats, c.best_reward, done=done)


def _prefilter(cfg: DictConfig, strategy: Strategy, runner: Any) -> Strategy:
    """``strategy`` behind a zero-cost filter when ``search.prefilter`` names a proxy."""
    proxy = cfg.search.get("prefilter")
    if proxy is None:
        return strategy
    if proxy not in PROXIES:
        raise ConfigError("search.prefilter", f"unknown zero-cost proxy {proxy!r}; known: "
                          f"{', '.join(sorted(PROXIES))} (or null)")
    if not isinstance(runner, LightningEvaluator):
        raise ConfigError("search.prefilter", "scores the networks the Lightning runner builds; "
                          f"{type(runner).__name__} builds none (set search.prefilter=null)")
    k = cfg.search.get("prefilter_k", 8)
    return Prefilter(strategy, zero_cost_scorer(runner, proxy, seed=int(cfg.seed)), k)


def _max_seconds(minutes: float | None) -> float | None:
    """``search.max_minutes`` (checked by ``check_search_config``) in seconds."""
    return None if minutes is None else float(minutes) * 60.0


def _rungs(cfg: DictConfig, runner: Any, reward_fn: Callable[[ChildMetrics], float],
           records: list[dict[str, Any]]) -> tuple[RungPlan | None, RungTable | None]:
    """``search.scheduler``: the runner's children report to a table of rung rewards,
    rebuilt from the records on resume (None, None: no scheduler)."""
    plan = rung_plan(cfg.search, int(cfg.child.epochs))
    if plan is None:
        return None, None
    if not isinstance(runner, LightningEvaluator):
        raise ConfigError("search.scheduler", "stops children of the Lightning runner early; "
                          f"{type(runner).__name__} trains none (set search.scheduler=none)")
    table = RungTable(plan)
    table.restore(records, reward_fn)
    runner.rungs, runner.rung_score = table, reward_fn
    return plan, table


def zero_cost_scorer(runner: LightningEvaluator, proxy: str, seed: int = 0,
                     images: int = 64) -> Callable[[Proposal], float]:
    """``proposal -> score``: ``proxy`` of the proposal's network as the runner builds it,
    initialised from ``seed`` (the same score for the same proposal, also on resume), on
    the first ``images`` training images; on the CPU, leaving the search's random streams
    as they were."""
    batch = runner.datamodule.fixed_batch(images)

    def score_of(proposal: Proposal) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = runner.build(proposal.genotype)
        value = score(proxy, net, batch)
        return value if math.isfinite(value) else -math.inf  # a degenerate network: last

    return score_of


def _architecture_text(genotype: Any) -> str:
    """A proposal's genotype in the compact form of ``runs`` (its JSON form's text)."""
    if isinstance(genotype, Genotype):
        return genotype_text(genotype_to_dict(genotype))
    return genotype_text(genotype)


def _controller_digest(strategy: Strategy) -> dict[str, Any]:
    if strategy.controller is None:
        return {}
    total = sum(float(p.detach().double().sum()) for p in strategy.controller.parameters())
    return {"controller_sum": total, "baseline": strategy.baseline}


def _finish(parts: SearchParts, records: list[dict[str, Any]], recorder: RunRecorder,
            probe: LatencyProbe | None, status: str, reused: int = 0,
            stopped: str | None = None) -> dict[str, Any]:
    """The summary; rank 0 also lets the probe and the logger close and writes the folder."""
    ok = [r for r in records if r["status"] == "ok"]
    summary: dict[str, Any] = {
        "status": status,
        "children": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "reused": reused,  # repeated proposals told a recorded reward (search.repeats)
        "stopped": stopped,  # converged / exhausted (search.repeats), time (search.max_minutes)
        "wall_seconds": round(time.perf_counter() - parts.start, 2),
        "child_seconds": round(sum(r["seconds"] for r in records), 2),
        "best_index": recorder.best["index"] if recorder.best else None,
        "best_reward": final_reward(recorder.best) if recorder.best else None,
    }
    if parts.rank != 0:
        return summary
    if probe is not None:
        summary["latency"] = probe.summary()
        for name, path in (probe.finish(parts.run_dir, records) or {}).items():
            parts.logger.log_image(name, Path(path))
    finish_outputs(parts, recorder, records, recorder.best, summary,
                   end_summary(records, recorder.best, parts.run_dir))
    return summary
