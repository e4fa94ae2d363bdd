"""Value checks of an ENAS config, with the standalone search's declarations.

``enas.*`` is typed here the way :mod:`nas_lightning.checks` types the
standalone search's keys; the seed, ``search.*`` and the Trainer are checked
by the same functions the standalone search calls, so both searches refuse
the same bad values with the same one-line errors.
"""

from __future__ import annotations

from typing import Annotated

from omegaconf import DictConfig
from pydantic import Field

from nas_lightning.checks import (
    LIMIT,
    Optimizer,
    SearchKeys,
    SearchRoot,
    _Section,
    check_section,
    check_trainer,
    integer,
    number,
)


class EnasKeys(_Section):
    """The ``enas`` node (``conf/enas/default.yaml``); the supernet checks its own keys."""

    epochs: integer(1)
    batch_size: integer(1) = None
    train_subset: integer(1, optional=True) = None
    limit_train_batches: LIMIT = None
    lr_min: number(0.0) = None
    grad_clip: number(0.0, optional=True) = None
    controller_steps: integer(0) = None
    controller_batch_size: integer(1) = None
    entropy_reward_weight: number(0.0) = None
    final_candidates: integer(1) = None
    eval_batch_size: integer(1) = None
    log_every_n_steps: integer(1) = None
    channels_last: Annotated[bool, Field(strict=True, description="true or false")] = None


def check_enas_config(cfg: DictConfig) -> None:
    """Every value an ENAS search reads, checked before anything is built or trained."""
    check_section(SearchRoot, cfg)
    check_section(SearchKeys, cfg.get("search"), "search")
    check_section(EnasKeys, cfg.enas, "enas")
    check_section(Optimizer, cfg.enas.get("optimizer"), "enas.optimizer")
    check_trainer(cfg.get("trainer"))
