"""Names for the jobs of a Hydra sweep (``-m``): W&B runs and job folders.

A sweep's jobs should read as one comparison in W&B: every job's run goes in
one group named after the sweep's folder, and is named by the overrides that
make it different (``controller.hidden=50``) rather than by its number. Job
folders are named the same way (``0_controller.hidden-50``). The overrides
that differ between jobs are those the command line sweeps over
(``key=a,b`` or ``key=range(...)``); where that command line is not known
(a launcher that runs jobs in other processes), all of the job's overrides.
Hydra knows both only while a job runs, so they are read here from
``HydraConfig`` when a logger starts, not resolved in the YAML: a config
composed in a test or a notebook, with no Hydra job around it, still works.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

# Hydra's sweep functions: ``key=range(1,4)`` sweeps over key as ``key=1,2,3`` does.
_SWEEP_FUNCTIONS = ("range(", "choice(", "interval(", "glob(", "shuffle(", "sort(", "tag(")
_FOLDER_NAME = 80  # characters of overrides in a job folder's name


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _top_level_comma(value: str) -> bool:
    """Whether ``value`` lists choices (``a,b``), not one list or dict value (``[a,b]``)."""
    depth, quote = 0, None
    for ch in value:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def swept_keys(argv: Sequence[str]) -> set[str]:
    """The config keys a command line sweeps over."""
    keys = set()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if _top_level_comma(value) or value.startswith(_SWEEP_FUNCTIONS):
            keys.add(key.lstrip("+~"))
    return keys


def job_overrides(task: Sequence[str], argv: Sequence[str] | None = None) -> list[str]:
    """The overrides of one job that set it apart from the sweep's other jobs.

    Args:
        task: the job's overrides (``hydra.overrides.task``).
        argv: the sweep's command line (default: this process's).
    """
    keys = swept_keys(sys.argv[1:] if argv is None else argv)
    chosen = [str(o) for o in task if _key(str(o)) in keys]
    return chosen or [str(o) for o in task]


def job_dirname(num: object, task: Sequence[str] | None) -> str:
    """A multirun job's folder: its number, then its swept overrides (``0_controller.hidden-50``).

    The folder's path must itself be a valid override value (``genotype=<job>/best.json``,
    ``resume=<job>``), so ``=`` becomes ``-``, overrides are joined by ``_``, any
    other character Hydra's grammar or a file system would trip on becomes ``_``,
    and the name is cut at 80 characters.
    """
    joined = "_".join(str(o).replace("=", "-", 1) for o in job_overrides(list(task or [])))
    name = re.sub(r"[^\w.+-]", "_", joined)
    return f"{num}_{name[:_FOLDER_NAME]}" if name else str(num)


def sweep_names() -> tuple[str | None, str | None]:
    """``(group, name)`` of this Hydra multirun job; ``(None, None)`` outside a sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        if not HydraConfig.initialized():
            return None, None
        hydra = HydraConfig.get()
    except (ImportError, ValueError):
        return None, None
    if hydra.mode != RunMode.MULTIRUN:
        return None, None
    group = Path(str(hydra.sweep.dir)).name or None
    task = [str(o) for o in hydra.overrides.task or []]
    num = OmegaConf.select(hydra, "job.num", default=0)  # type: ignore[arg-type]
    name = ",".join(job_overrides(task)) or f"job {num}"
    return group, name
