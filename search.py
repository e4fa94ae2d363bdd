"""Run a neural architecture search: `python search.py [overrides]`.

See README.md; every option lives in conf/ (root: conf/search.yaml).
Exit status: 0 finished, 2 bad config or unusable run folder, 3 every child
failed, 128 + signal when interrupted (130 Ctrl-C, 143 SIGTERM): resumable.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.search.resume import resume_config
from nas_lightning.search.runfolder import PROCESS_TOKEN
from nas_lightning.search.signals import SearchInterrupted

EXIT_BAD_CONFIG = 2
EXIT_ALL_FAILED = 3

# `resume=<run>` continues in that run's folder instead of a new dated one.
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume or new, replace=True)
# A per-process token in new folder names: searches started together never share one.
OmegaConf.register_new_resolver("run_token", lambda: PROCESS_TOKEN, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> float | None:
    from nas_lightning.search.loop import run_search

    run_dir = cfg.resume or cfg.run_dir
    try:
        if cfg.resume:
            cfg = resume_config(cfg)
        result = run_search(cfg)
    except (ConfigError, GenotypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    except SearchInterrupted as stop:
        print(f"interrupted ({stop}): resume with python search.py resume={run_dir}",
              file=sys.stderr)
        sys.exit(stop.exit_code)
    if result.summary.get("status") == "failed":
        first = next((r.get("error") for r in result.records if r.get("error")), None)
        print(f"error: all {len(result.records)} children failed (first: {first}); "
              f"see {run_dir}/children.jsonl", file=sys.stderr)
        sys.exit(EXIT_ALL_FAILED)
    return result.best["reward"] if result.best else None


if __name__ == "__main__":
    main()
