"""The search loop: ask, train, record, tell, log, until the budget is spent.

``run_search(cfg)`` is a pure function of a composed config: ``search.py``
calls it from Hydra, tests call it with ``hydra.compose``. Every object is
built (and so every config value validated) before the first child trains.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.checks import check_search_config
from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import genotype_to_dict
from nas_lightning.search.builders import build, build_partial
from nas_lightning.search.evaluator import ChildOutcome, LightningEvaluator
from nas_lightning.search.loggers import SearchLogger
from nas_lightning.search.progress import SearchProgress, print_banner
from nas_lightning.search.records import RunRecorder
from nas_lightning.search.runfolder import RunFolder, open_run_folder
from nas_lightning.search.threads import apply_num_threads
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy
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


def _record(index: int, proposal: Proposal, outcome: ChildOutcome, space: SearchSpace) -> dict:
    m = outcome.metrics
    record: dict[str, Any] = {
        "index": index,
        "status": outcome.status,
        "reward": outcome.reward,
        "val_acc": m.val_acc if m else None,
        "val_curve": m.val_curve if m else [],
        "params": outcome.params,
        "seconds": round(outcome.seconds, 3),
        "genotype": genotype_to_dict(proposal.genotype)
        if hasattr(proposal.genotype, "kind")
        else proposal.genotype,
        "actions": list(proposal.actions),
        "steps": proposal.info.get("steps"),
        "extra": m.extra if m else {},
    }
    if outcome.error:
        record["error"] = outcome.error
    return record


def _replay(strategy: Strategy, space: SearchSpace, records: list[dict], failed_reward) -> None:
    """Bring a restored strategy level with the recorded children.

    The strategy state on disk is saved after each child's ``tell``; a crash
    between a child's record and that save leaves records the state has not
    seen. Those are replayed: ``ask`` (the restored random state proposes the
    same architecture again, which is checked) and ``tell`` the recorded
    reward, with no training.
    """
    for record in records[strategy.num_proposed :]:
        space.set_progress(record["index"])
        proposal = strategy.ask()
        if list(proposal.actions) != list(record["actions"]):
            raise ConfigError(
                "resume",
                f"child {record['index']} replays as {list(proposal.actions)}, recorded "
                f"{record['actions']}: the config or seed differs from the original run",
            )
        reward = record["reward"] if record["status"] == "ok" else failed_reward
        if reward is not None:
            strategy.tell(proposal, reward)


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

    # Build everything first: a bad value stops the run before any training.
    space: SearchSpace = build(cfg.search_space, "search_space")
    if cfg.strategy.get("controller") is not None:
        build_partial(cfg.controller, "controller", space.decisions)  # validates it
    strategy: Strategy = build_partial(cfg.strategy, "strategy", space=space, seed=int(cfg.seed))
    model_factory = build(cfg.model, "model")
    reward_fn = build(cfg.reward, "reward")
    datamodule = build(cfg.dataset, "dataset")
    trainer_factory = build(cfg.trainer, "trainer")
    probe = build(cfg.latency, "latency") if cfg.get("latency") else None
    logger: SearchLogger = build(cfg.logger, "logger") if cfg.get("logger") else SearchLogger()
    optimizer = None
    if cfg.child.get("optimizer"):
        optimizer = build(cfg.child.optimizer, "child.optimizer")
    failed_reward = cfg.search.get("failed_reward")
    if rank == 0:
        datamodule.prepare_data()
    datamodule.setup("fit")
    evaluator = LightningEvaluator(
        datamodule, model_factory, trainer_factory, cfg.child, reward_fn, run_dir,
        seed=int(cfg.seed), probe=probe, optimizer=optimizer,
    )

    records = folder.records  # run folder checks: runfolder.py
    recorder = RunRecorder(run_dir, enabled=rank == 0, run_id=folder.run_id, recorded=records)
    if records:
        state = folder.strategy_state()
        if state is not None:
            strategy.load_state_dict(state)
        _replay(strategy, space, records, failed_reward)
        log.info("resuming %s after %d recorded children", run_dir, len(records))
    elif cfg.resume:
        log.info("resuming %s: no children recorded yet, starting afresh", run_dir)
    if rank == 0:
        folder.write_config(cfg)
        logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True))
    digest: list[dict[str, Any]] = []
    completed = False
    progress = SearchProgress(cfg, num_children, done=len(records), enabled=rank == 0,
                              threads=threads).start()

    try:
        for index in range(len(records), num_children):
            if getattr(strategy, "finished", False):
                log.info("strategy %s finished after %d children", type(strategy).__name__, index)
                break
            space.set_progress(index)
            proposal = strategy.ask()

            def write(outcome: ChildOutcome, index=index, proposal=proposal) -> None:
                record = _record(index, proposal, outcome, space)
                recorder.append_child(record)
                records.append(record)

            outcome = evaluator.evaluate(index, proposal, strategy, before_tell=write)
            if not outcome.recorded:  # failed child: record it, maybe tell a fixed reward
                write(outcome)
                if failed_reward is not None:
                    outcome.stats = strategy.tell(proposal, float(failed_reward))
            recorder.save_strategy(strategy.state_dict())
            record = records[-1]
            record["best_reward"] = recorder.best["reward"] if recorder.best else None
            if rank == 0:
                logger.log_child(record, outcome.stats)
                progress.child_end(record, outcome.stats)
            if cfg.search.get("rank_digest"):
                digest.append({"index": index, "actions": list(proposal.actions),
                               "reward": outcome.reward, **_controller_digest(strategy)})
        completed = True
    finally:
        progress.close()
        if rank == 0:  # reward_curve.png, best_architecture.png (+ W&B images)
            draw_search(run_dir, records, recorder.best, progress.baselines, logger)
        if rank == 0 and hasattr(strategy, "finish"):  # a strategy's own results (NetAdapt)
            strategy.finish(run_dir)
        summary = _finish(cfg, run_dir, records, recorder, probe, logger, rank, start,
                          folder.status(completed))
        if cfg.search.get("rank_digest"):
            digest_dir = run_dir / "rank_digest"
            digest_dir.mkdir(parents=True, exist_ok=True)
            (digest_dir / f"rank{rank}.json").write_text(json.dumps(digest))
    return SearchResult(run_dir, records, recorder.best, strategy, space,
                        time.perf_counter() - start, summary)


def _controller_digest(strategy: Strategy) -> dict[str, Any]:
    controller = getattr(strategy, "controller", None)
    if controller is None:
        return {}
    total = sum(float(p.detach().double().sum()) for p in controller.parameters())
    return {"controller_sum": total, "baseline": getattr(strategy, "baseline", None)}


def _finish(cfg, run_dir, records, recorder, probe, logger, rank, start,
            status: str) -> dict[str, Any]:
    """Write the summary, let the probe and logger close; rank 0 only."""
    ok = [r for r in records if r["status"] == "ok"]
    summary: dict[str, Any] = {
        "status": status,
        "children": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "child_seconds": round(sum(r["seconds"] for r in records), 2),
        "best_index": recorder.best["index"] if recorder.best else None,
        "best_reward": recorder.best["reward"] if recorder.best else None,
    }
    if rank != 0:
        return summary
    if probe is not None and hasattr(probe, "summary"):
        summary["latency"] = probe.summary()
    if probe is not None and hasattr(probe, "finish"):
        for name, path in (probe.finish(run_dir, records) or {}).items():
            logger.log_image(name, Path(path))
    recorder.write_json("summary.json", summary)
    logger.finish(run_dir, records, recorder.best)
    best = recorder.best
    if best is not None:
        log.info("best child %d: reward=%.4f val_acc=%.4f", best["index"], best["reward"],
                 best["val_acc"])
        log.info("best genotype: %s", json.dumps(best["genotype"]))
    log.info("run folder: %s", os.path.abspath(run_dir))
    return summary
