"""Small process-level helpers."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The config folder: the package's copy (installed wheel) or the clone's ``conf/``."""
    for candidate in (PACKAGE / "conf", PACKAGE.parent / "conf"):
        if (candidate / "search.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"no configs found in {PACKAGE / 'conf'} or {PACKAGE.parent / 'conf'}: "
        "reinstall nas-lightning, or run from a clone"
    )


def global_rank() -> int:
    """This process's rank, from the variables launchers set (0 if none).

    Read from the environment (not from a Trainer) because the search
    decides who writes the run folder before the first Trainer exists.
    """
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    if "LOCAL_RANK" in os.environ:
        node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
        local = int(os.environ["LOCAL_RANK"])
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        return node * per_node + local
    return 0


def quiet_lightning() -> None:
    """Silence the banner and tips every Trainer prints; keep warnings that matter."""
    prefixes = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")
    # Lightning gives some child loggers (utilities.rank_zero) their own level,
    # which a parent's level does not override: set each one.
    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith(prefixes)]
    for name in (*prefixes, *names, "pytorch_lightning.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
