"""Console entry points ``nas-search`` and ``nas-train``, and the bodies of search.py/train.py.

``search.py`` and ``train.py`` in a clone and the installed commands run the
same functions (``search_task``, ``train_task``) on the same configs: a clone
reads its top-level ``conf/``; an installed wheel carries a copy of it inside
the package (``nas_lightning/conf``, made when the wheel is built, see
setup.py). Output folders are relative to the working directory either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nas_lightning import utils
from nas_lightning.core.signals import PROCESS_TOKEN, SearchInterrupted
from nas_lightning.core.sweep import job_dirname
from nas_lightning.entry import (
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    check_overrides,
    describe,
    exit_status,
    exit_with,
    one_line_errors,
)
from nas_lightning.errors import first_line

# Exit status of a search (README, "What a run folder guarantees").
EXIT_BAD_CONFIG = EXIT_USAGE  # one line: a bad value or key, a missing file
EXIT_ALL_FAILED = 3
EXIT_FULL_DISK = EXIT_TEMPFAIL  # one line naming the file; free space, then resume

# `resume=<run>` continues in that run's folder instead of a new dated one.
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume or new, replace=True)
# A per-process token in new folder names: searches started together never share one.
OmegaConf.register_new_resolver("run_token", lambda: PROCESS_TOKEN, replace=True)

# A multirun job's folder is named by its swept overrides: 0_controller.hidden-50
OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


class SweepSummary(Callback):
    """Hydra callback (``conf/search.yaml``): when a sweep ends, print its jobs
    ranked by their best reward and the best job's architecture."""

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        from nas_lightning.search.progress import sweep_summary

        try:
            lines = sweep_summary(config.hydra.sweep.dir)
        except Exception as err:  # noqa: BLE001 - the jobs' folders are already written
            lines = [f"no sweep summary: {type(err).__name__}: {first_line(err)}"]
        print("\n".join(lines), flush=True)


def config_dir() -> str:
    """The config folder: the package's copy (installed) or the clone's ``conf/``."""
    return str(utils.config_dir())


@one_line_errors
def search_task(cfg: DictConfig) -> float | None:
    """Run (or resume) the configured search.

    Exit status: 0 finished, 2 bad config or unusable run folder, 3 every
    child failed, 75 try again later (a full disk: free space and resume; something
    needed did not answer in time), 128 + signal when interrupted (130 Ctrl-C, 143
    SIGTERM): the folder is then resumable.
    """
    from nas_lightning.search.progress import print_banner
    from nas_lightning.search.resume import resume_config

    run_dir = cfg.resume or cfg.run_dir
    if cfg.resume:
        cfg = resume_config(cfg)  # the banner shows the run's own config
    print_banner(cfg)  # before torch is imported: what will run, in the first second
    from hydra.utils import instantiate

    from nas_lightning.search.loop import run_search

    fresh = not cfg.resume and _only_leftovers(Path(run_dir))
    try:
        # A search with its own runner (experiment=enas) replaces the standalone loop.
        run = instantiate(cfg.search.runner) if cfg.search.get("runner") else run_search
        result = run(cfg)
    except (Exception, SearchInterrupted) as err:
        if fresh and describe(err) is not None and exit_status(err) == EXIT_USAGE:
            _remove_leftovers(Path(run_dir))  # a rejected config leaves no folder behind
        _stopped(err, run_dir)
        raise
    if result.summary.get("status") == "failed":
        first = next((r.get("error") for r in result.records if r.get("error")), None)
        print(f"error: all {len(result.records)} children failed (first: {first}); "
              f"see {run_dir}/children.jsonl", file=sys.stderr)
        sys.exit(EXIT_ALL_FAILED)
    return result.best["reward"] if result.best else None


def _stopped(err: BaseException, run_dir: str) -> None:
    """Exit for an interrupted search or a full disk (both resumable); else return."""
    if isinstance(err, SearchInterrupted):
        print(f"interrupted ({err}): resume with python search.py resume={run_dir}",
              file=sys.stderr)
        sys.exit(err.exit_code)
    if isinstance(err, OSError) and exit_status(err) == EXIT_FULL_DISK:
        exit_with(f"{describe(err)}; free space, then resume with python search.py "
                  f"resume={run_dir}", EXIT_FULL_DISK)


# What Hydra and the run folder write before the first child: a config rejected
# by then leaves only these, and they are removed with the folder.
_LEFTOVERS = {".hydra", "search.log", ".lock", "config.yaml", "run.json", "summary.json"}


def _only_leftovers(path: Path) -> bool:
    try:
        return {p.name for p in path.iterdir()} <= _LEFTOVERS
    except OSError:
        return False


def _remove_leftovers(path: Path) -> None:
    """Remove a new run folder that holds nothing but the files written at start-up."""
    import shutil

    if not _only_leftovers(path):
        return  # something else was written meanwhile: keep it all
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    try:
        path.rmdir()
    except OSError:
        pass


@one_line_errors
def train_task(cfg: DictConfig) -> float | None:
    """Train (or evaluate) the configured architecture; bad input exits 2 with one line."""
    from nas_lightning.training import run_train

    summary = run_train(cfg)
    return summary["test_acc"]


def search() -> None:
    """``nas-search [overrides]``: the same as ``python search.py [overrides]``."""
    import hydra

    check_overrides("search", sys.argv[1:], Path(config_dir()))
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="search")(
        search_task
    )()


def train() -> None:
    """``nas-train [overrides]``: the same as ``python train.py [overrides]``."""
    import hydra

    from nas_lightning.training.cli import model_group_for

    extra = model_group_for(sys.argv[1:], Path(config_dir()))
    if extra:
        sys.argv.append(extra)
    check_overrides("train", sys.argv[1:], Path(config_dir()))
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(train_task)()
