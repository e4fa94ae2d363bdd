"""Run a neural architecture search: `python search.py [overrides]`.

See README.md; every option lives in conf/ (root: conf/search.yaml). The
installed command `nas-search` runs the same function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nas_lightning.cli import search_task
from nas_lightning.entry import check_overrides


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> float | None:
    return search_task(cfg)


if __name__ == "__main__":
    check_overrides("search", sys.argv[1:], Path(__file__).resolve().parent / "conf")
    main()
