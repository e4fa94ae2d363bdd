"""Run a neural architecture search: `python search.py [overrides]`.

See README.md; every option lives in conf/ (root: conf/search.yaml).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from nas_lightning.entry import check_overrides, one_line_errors
from nas_lightning.errors import ConfigError
from nas_lightning.search.resume import resume_config

# `resume=<run>` continues in that run's folder instead of a new dated one.
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume or new, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    from nas_lightning.search.loop import run_search

    if cfg.resume:
        cfg = resume_config(cfg)
    try:
        result = run_search(cfg)
    except (EOFError, pickle.UnpicklingError) as err:  # the only pickle read: strategy.pt
        if not cfg.resume:
            raise
        state = Path(cfg.resume) / "strategy.pt"
        raise ConfigError(
            "resume", f"{state} is empty or corrupt ({type(err).__name__}); delete it, and the "
            "strategy is rebuilt by replaying children.jsonl"
        ) from None
    return result.best["reward"] if result.best else None


if __name__ == "__main__":
    check_overrides("search", sys.argv[1:])
    main()
