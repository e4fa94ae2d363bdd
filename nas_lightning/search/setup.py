"""What every search driver does first and last: the standalone search and ENAS alike.

First (:func:`build_parts`): quiet Lightning, set torch's threads, build the
space, the strategy and the logger from the config (a bad value stops the run
before anything trains). Then (:func:`start_outputs`): write the run's config
and start the logger. Last (:func:`finish_outputs`): write ``summary.json``,
close the logger and print where the run folder is. Rank 0 alone writes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from nas_lightning.core.builders import build, build_partial
from nas_lightning.core.records import RunRecorder
from nas_lightning.core.threads import apply_num_threads
from nas_lightning.search.loggers import SearchLogger
from nas_lightning.search.runfolder import RunFolder
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Strategy
from nas_lightning.utils import global_rank, quiet_lightning

log = logging.getLogger("nas_lightning.search")


@dataclass
class SearchParts:
    """The parts of a search that do not depend on how children are scored."""

    cfg: DictConfig
    run_dir: Path
    rank: int
    threads: int
    space: SearchSpace
    strategy: Strategy
    logger: SearchLogger
    start: float = field(default_factory=time.perf_counter)


def build_parts(cfg: DictConfig, strategy: Strategy | None = None) -> SearchParts:
    """Build the space, the strategy (unless given) and the logger of ``cfg``.

    Args:
        cfg: the composed search config, its values already checked.
        strategy: a strategy the caller built for this space (default: ``cfg.strategy``).
    """
    start = time.perf_counter()
    quiet_lightning()
    threads = apply_num_threads(cfg)
    space: SearchSpace = build(cfg.search_space, "search_space")
    if strategy is None:
        if cfg.strategy.get("controller") is not None:
            build_partial(cfg.controller, "controller", space.decisions)  # validates it
        strategy = build_partial(cfg.strategy, "strategy", space=space, seed=int(cfg.seed))
    logger: SearchLogger = build(cfg.logger, "logger") if cfg.get("logger") else SearchLogger()
    return SearchParts(cfg, Path(cfg.resume or cfg.run_dir), global_rank(), threads, space,
                       strategy, logger, start)


def start_outputs(parts: SearchParts, folder: RunFolder) -> None:
    """The run's config in its folder, and the logger started (rank 0)."""
    if parts.rank == 0:
        folder.write_config(parts.cfg)
        config = OmegaConf.to_container(parts.cfg, resolve=True)
        assert isinstance(config, dict)  # a search config is a mapping with string keys
        parts.logger.start(parts.run_dir, cast(dict[str, Any], config))


def finish_outputs(parts: SearchParts, recorder: RunRecorder, records: list[dict[str, Any]],
                   best: dict[str, Any] | None, summary: dict[str, Any],
                   lines: Iterable[str] = ()) -> None:
    """``summary.json``, the logger closed, the end lines and the run folder's path (rank 0)."""
    if parts.rank != 0:
        return
    recorder.write_json("summary.json", summary)
    parts.logger.finish(parts.run_dir, records, best)
    for line in lines:
        log.info("%s", line)
    log.info("run folder: %s", os.path.abspath(parts.run_dir))
