"""Build the child runner from a search config, on the driver or in a worker.

The same function runs in both places, so a Ray worker trains a child with
exactly the objects the driver would have built (model builder, Trainer
arguments, optimizer, latency probe), from the same resolved config.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nas_lightning.core.builders import build
from nas_lightning.execution.base import Runner


def make_datamodule(cfg: DictConfig, prepare: bool = True) -> Any:
    """The proxy task, loaded once (``prepare`` downloads/decompresses first)."""
    datamodule = build(cfg.dataset, "dataset")
    if prepare:
        datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def make_runner(cfg: DictConfig, datamodule: Any = None, prepare: bool = True) -> Runner:
    """The runner described by ``cfg``: ``cfg.runner`` if set, else Lightning.

    Args:
        cfg: a composed search config.
        datamodule: the proxy task already loaded (a worker gets it from the
            object store); None: built here.
        prepare: whether this process may download/prepare the dataset
            (rank 0 only under DDP).
    """
    if cfg.get("runner") is not None:
        return build(cfg.runner, "runner")
    from nas_lightning.execution.evaluator import LightningEvaluator

    model_factory = build(cfg.model, "model")
    trainer_factory = build(cfg.trainer, "trainer")
    probe = build(cfg.latency, "latency") if cfg.get("latency") else None
    optimizer = None
    if cfg.child.get("optimizer"):
        optimizer = build(cfg.child.optimizer, "child.optimizer")
    if datamodule is None:
        datamodule = make_datamodule(cfg, prepare=prepare)
    return LightningEvaluator(
        datamodule, model_factory, trainer_factory, cfg.child, cfg.run_dir,
        seed=int(cfg.seed), probe=probe, optimizer=optimizer,
    )
