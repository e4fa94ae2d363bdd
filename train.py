"""Train a searched (or named) architecture fully: `python train.py [overrides]`.

    python train.py genotype=runs/search/<run>/best.json
    python train.py genotype=nasnet_a dataset=cifar10 model.cells_per_stage=6 model.filters=32
    python train.py ... ckpt_path=runs/train/<run>/checkpoints/last.ckpt     # resume
    python train.py eval_only=true ckpt_path=runs/train/<run>/checkpoints/best.ckpt

Every option lives in conf/ (root: conf/train.yaml). The model group follows
the genotype's kind (``genotype=mobilenetv3_small`` builds with ``model=mobile``)
unless the command line picks one. The installed command `nas-train` runs the
same function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nas_lightning.cli import train_task
from nas_lightning.entry import check_overrides


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train_task(cfg)


if __name__ == "__main__":
    from nas_lightning.training.cli import model_group_for

    extra = model_group_for(sys.argv[1:])
    if extra:
        sys.argv.append(extra)
    check_overrides("train", sys.argv[1:], Path(__file__).resolve().parent / "conf")
    main()
