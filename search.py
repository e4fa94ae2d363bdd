"""Run a neural architecture search: `python search.py [overrides]`.

See README.md; every option lives in conf/ (root: conf/search.yaml).
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.search.resume import resume_config

# `resume=<run>` continues in that run's folder instead of a new dated one.
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume or new, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> float | None:
    from nas_lightning.search.loop import run_search

    try:
        if cfg.resume:
            cfg = resume_config(cfg)
        # A search with its own runner (experiment=enas) replaces the standalone loop.
        run = instantiate(cfg.search.runner) if cfg.search.get("runner") else run_search
        result = run(cfg)
    except (ConfigError, GenotypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return result.best["reward"] if result.best else None


if __name__ == "__main__":
    main()
