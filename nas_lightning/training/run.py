"""Train one architecture fully, test it, measure it and export it.

``run_train(cfg)`` is a pure function of a composed config: ``train.py``
calls it from Hydra, tests call it with ``hydra.compose``. Every object is
built (so every config value is checked) before training starts. The run
folder gets the checkpoints, ``model.onnx``, ``genotype.json``,
``config.yaml`` and the model card ``summary.json``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from torch import nn

from nas_lightning.checks import check_train_config
from nas_lightning.core.builders import build, build_partial
from nas_lightning.core.records import jsonable
from nas_lightning.errors import ConfigError
from nas_lightning.export import export_onnx, model_metadata
from nas_lightning.genotypes.base import (
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    save_genotype,
)
from nas_lightning.models.profile import count_macs, count_params
from nas_lightning.models.registry import build_model, builder_arguments, get_builder
from nas_lightning.training.callbacks import DropPathSchedule, TimeBudget
from nas_lightning.training.loggers import log_final
from nas_lightning.training.module import (
    TrainModule,
    read_checkpoint_architecture,
    resume_sampler_epoch,
)
from nas_lightning.utils import global_rank, quiet_lightning
from nas_lightning.viz import save_architecture

log = logging.getLogger("nas_lightning.train")

MACS_NOTE = (
    "multiply-adds of conv and linear layers for one image (batch 1), eval mode "
    "(no auxiliary head), counted by forward hooks (nas_lightning.models.profile)"
)


def _model_kwargs(cfg: DictConfig, genotype: Any) -> dict[str, Any]:
    """The builder's arguments: the ``model`` config, checked against the genotype's kind."""
    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") else {}
    kind = model.pop("kind", genotype.kind)
    if kind != genotype.kind:
        raise ConfigError(
            "model",
            f"genotype {cfg.genotype!r} is of kind {genotype.kind!r}, but the model config "
            f"builds {kind!r} networks; add model={genotype.kind}",
        )
    if float(cfg.recipe.aux_weight) > 0:
        if "auxiliary" not in builder_arguments(kind):
            name = getattr(get_builder(kind), "__name__", kind)
            raise ConfigError("recipe.aux_weight", f"{name} has no auxiliary head; set it to 0")
        model["auxiliary"] = True
    return model


def _check_same(stored: dict[str, Any], arch: dict[str, Any]) -> None:
    """A resumed training must rebuild exactly the checkpoint's network."""
    if stored["genotype"] != arch["genotype"]:
        raise ConfigError("ckpt_path", "the checkpoint was trained on another genotype")
    for key in sorted(set(stored["model"]) | set(arch["model"])):
        old, new = stored["model"].get(key), arch["model"].get(key)
        if old != new:
            raise ConfigError("ckpt_path", f"the checkpoint has model.{key}={old}, this run {new}")


def _check_data(stored: dict[str, Any], datamodule: Any) -> None:
    if (stored["in_channels"], stored["num_classes"]) != (
        datamodule.in_channels,
        datamodule.num_classes,
    ):
        raise ConfigError(
            "dataset",
            f"the checkpoint was trained on {stored.get('dataset')} ({stored['in_channels']} "
            f"channels, {stored['num_classes']} classes); choose that dataset",
        )


def _example_inputs(datamodule: Any, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``n`` normalised test images (random ones for datamodules not held in memory)."""
    data = getattr(datamodule, "data", None)
    if isinstance(data, dict) and "test" in data and hasattr(datamodule, "normalize"):
        return datamodule.normalize(data["test"].images[:n]).float()
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(0))


def _inference_params(net: nn.Module) -> int:
    """Parameters of the deployed network: without a training-only auxiliary head."""
    aux = getattr(net, "aux_head", None)
    return count_params(net) - (count_params(aux) if aux is not None else 0)


def _overrides() -> list[str] | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        return None


def build_network(
    cfg: DictConfig, stored: dict[str, Any] | None = None
) -> tuple[Any, nn.Module, dict[str, Any], Any]:
    """The genotype, its network, the architecture record and the datamodule of ``cfg``.

    Args:
        cfg: a ``conf/train.yaml`` config; ``genotype`` and ``model`` pick the
            network, ``dataset`` its input channels and classes.
        stored: a checkpoint's architecture (``eval_only``): rebuild that instead.

    Returns:
        ``(genotype, net, architecture, datamodule)``; the datamodule is built
        but not loaded, and ``architecture`` is the plain data a checkpoint keeps.
    """
    datamodule = build(cfg.dataset, "dataset")
    if stored is not None:
        _check_data(stored, datamodule)
        genotype = genotype_from_dict(stored["genotype"])
        model_kwargs = dict(stored["model"])
    else:
        if not cfg.get("genotype"):
            raise ConfigError("genotype", "is missing: a name (nasnet_a) or a JSON file")
        genotype = load_genotype(str(cfg.genotype))
        model_kwargs = _model_kwargs(cfg, genotype)
    arch = {
        "genotype": genotype_to_dict(genotype),
        "model": model_kwargs,
        "in_channels": datamodule.in_channels,
        "num_classes": datamodule.num_classes,
        "image_size": int(getattr(datamodule, "image_size", 32)),
        "dataset": cfg.dataset.get("_target_"),
    }
    net = build_model(genotype, datamodule.in_channels, datamodule.num_classes, model_kwargs)
    return genotype, net, arch, datamodule


def run_train(cfg: DictConfig, callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train (or, with ``eval_only``, evaluate) the configured architecture.

    Args:
        cfg: a config composed from ``conf/train.yaml``.
        callbacks: extra Lightning callbacks (tests use them to watch steps).

    Returns:
        The model card (also written to ``<run_dir>/summary.json``).
    """
    start = time.perf_counter()
    _quiet()
    check_train_config(cfg)  # every value, before anything is built or trained
    rank, run_dir, seed = global_rank(), Path(cfg.run_dir), int(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    eval_only = bool(cfg.get("eval_only", False))
    ckpt_path = str(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if eval_only and not ckpt_path:
        raise ConfigError("ckpt_path", "eval_only=true needs ckpt_path=<a train.py checkpoint>")
    stored = read_checkpoint_architecture(ckpt_path) if ckpt_path else None

    # Build everything first: a bad value stops the run before any training.
    pl.seed_everything(seed, workers=True, verbose=False)
    genotype, net, arch, datamodule = build_network(cfg, stored if eval_only else None)
    datamodule.seed = seed
    if stored is not None and not eval_only:
        _check_data(stored, datamodule)
        _check_same(stored, arch)
    budget = None if eval_only else _time_budget(cfg.recipe)
    module = _train_module(cfg, net, datamodule, arch, budget)
    trainer, checkpoint, logger = _trainer(cfg, net, eval_only, budget, callbacks)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        save_genotype(genotype, run_dir / "genotype.json")
        save_architecture(genotype, run_dir / "architecture.png", title=genotype.kind,
                          image_size=arch["image_size"])
    log.info("%s %s: %s", "evaluating" if eval_only else "training", genotype.kind, genotype)

    t0 = time.perf_counter()
    if not eval_only:
        if ckpt_path:
            resume_sampler_epoch(datamodule, ckpt_path)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    fit_seconds = time.perf_counter() - t0 if not eval_only else 0.0
    # Read before testing: loading a checkpoint restores the callback's older state.
    saved = {"best": checkpoint.best_model_path or None, "last": checkpoint.last_model_path or None}
    trained = {"best_val_acc": _float(checkpoint.best_model_score), "val_curve":
               list(module.val_curve), "epochs": trainer.current_epoch,
               "global_step": trainer.global_step, "time_budget": _spent(cfg, budget)}
    test_ckpt = ckpt_path if eval_only else saved["best"]
    t0 = time.perf_counter()
    results = trainer.test(
        module, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True, verbose=False
    )
    test_seconds = time.perf_counter() - t0
    summary = _model_card(cfg, genotype, arch, datamodule, results, test_ckpt, saved, trained,
                          ckpt_path, eval_only)
    if rank == 0:
        _measure_and_export(cfg, module.net, datamodule, _input_shape(arch), run_dir, summary)
    summary["fit_seconds"] = round(fit_seconds, 2)
    summary["test_seconds"] = round(test_seconds, 2)
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    if rank == 0:
        (run_dir / "summary.json").write_text(_dumps(summary))
        files = [run_dir / "summary.json", run_dir / "genotype.json", run_dir / "model.onnx",
                 run_dir / "architecture.png", *([Path(saved["best"])] if saved["best"] else [])]
        log_final(logger, summary, files)
        _report(summary)
    return summary


def _quiet() -> None:
    quiet_lightning()
    # TrainModule seeds each batch in on_before_batch_transfer, on purpose.
    warnings.filterwarnings("ignore", message=".*overridden `on_before_batch_transfer`.*")
    # eval_only tests a checkpoint without the checkpoint callback that wrote it.
    warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")


def _spent(cfg: DictConfig, budget: TimeBudget | None) -> dict[str, Any] | None:
    """The time budget and what the fit spent of it (None: no budget)."""
    if budget is None:
        return None
    return {"minutes": float(cfg.recipe.minutes), "spent_seconds": round(budget.elapsed(), 2),
            "stopped_by_budget": budget.stopped}


def _input_shape(arch: dict[str, Any]) -> tuple[int, int, int]:
    return (arch["in_channels"], arch["image_size"], arch["image_size"])


def _train_module(cfg: DictConfig, net: nn.Module, datamodule: Any, arch: dict[str, Any],
                  budget: TimeBudget | None) -> TrainModule:
    """The LightningModule of the recipe (``recipe.*`` errors name their key)."""
    recipe = cfg.recipe
    if float(recipe.get("drop_path", 0.0)) and not hasattr(net, "set_drop_path"):
        raise ConfigError("recipe.drop_path", f"{type(net).__name__} has no drop-path; set it to 0")
    optimizer = build(recipe.optimizer, "recipe.optimizer")
    try:
        return TrainModule(
            net,
            datamodule.num_classes,
            architecture=arch,
            recipe=OmegaConf.to_container(recipe, resolve=True),
            optimizer=optimizer,
            # a time budget owns the learning rate (warm-up and schedule)
            scheduler="none" if budget else str(recipe.scheduler),
            warmup_steps=0 if budget else int(recipe.warmup_steps),
            label_smoothing=float(recipe.label_smoothing),
            channels_last=bool(recipe.channels_last),
            test_flip=bool(recipe.get("test_flip", False)),
            aux_weight=float(recipe.aux_weight),
            seed=int(cfg.seed),
        )
    except ConfigError as err:
        raise err.prefixed("recipe") from None


def _trainer(cfg: DictConfig, net: nn.Module, eval_only: bool, budget: TimeBudget | None,
             callbacks: list[Callback] | None) -> tuple[pl.Trainer, ModelCheckpoint, Any]:
    """The Trainer with its checkpoints, time budget, drop-path schedule and logger."""
    run_dir = Path(cfg.run_dir)
    # Best by validation accuracy (tested at the end) and the last (resume), saved at
    # the end of each training epoch, after its validation.
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val/acc",
        mode="max",
        save_last=True,
        auto_insert_metric_name=False,
        save_on_train_epoch_end=True,
    )
    trainer_callbacks: list[Callback] = [] if eval_only else [checkpoint]
    if budget is not None:
        trainer_callbacks.append(budget)
    drop_path = float(cfg.recipe.get("drop_path", 0.0))
    if drop_path:
        trainer_callbacks.append(
            DropPathSchedule(drop_path, budget.progress if budget is not None else None)
        )
    logger = (
        build_partial(cfg.train_logger, "train_logger", save_dir=str(run_dir))
        if cfg.get("train_logger")
        else None
    )
    if logger is not None:
        trainer_callbacks.append(LearningRateMonitor("step"))
    trainer_callbacks += list(callbacks or [])
    trainer: pl.Trainer = build_partial(
        cfg.trainer,
        "trainer",
        callbacks=trainer_callbacks,
        logger=logger or False,
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        enable_checkpointing=not eval_only,
    )
    return trainer, checkpoint, logger


def _model_card(cfg: DictConfig, genotype: Any, arch: dict[str, Any], datamodule: Any,
                results: list[dict[str, float]], test_ckpt: str | None,
                saved: dict[str, str | None], trained: dict[str, Any],
                ckpt_path: str | None, eval_only: bool) -> dict[str, Any]:
    """``summary.json``: what was trained, how, and how well it tests."""
    return {
        "run_dir": str(cfg.run_dir),
        "task": "eval" if eval_only else "train",
        "genotype_source": ckpt_path if eval_only else str(cfg.genotype),
        "kind": genotype.kind,
        "genotype": arch["genotype"],
        "genotype_text": str(genotype),
        "model": arch["model"],
        "dataset": {
            "target": arch["dataset"],
            "input_shape": list(_input_shape(arch)),
            "num_classes": datamodule.num_classes,
            **_split_sizes(datamodule),
        },
        "test_acc": float(results[0]["test/acc"]) if results else None,
        "test_acc_flip": (
            float(results[0]["test/acc_flip"])
            if results and "test/acc_flip" in results[0] else None
        ),
        "tested_checkpoint": test_ckpt,
        **{k: v for k, v in trained.items() if k != "time_budget"},
        "resumed_from": None if eval_only else ckpt_path,
        "time_budget": trained["time_budget"],
        "checkpoints": saved,
        "seed": int(cfg.seed),
        "recipe": OmegaConf.to_container(cfg.recipe, resolve=True),
        "trainer": {
            k: v
            for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
            if not k.startswith("_")
        },
        "overrides": _overrides(),
        "versions": {
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
            "python": sys.version.split()[0],
        },
    }


def _time_budget(recipe: DictConfig) -> TimeBudget | None:
    """The recipe's wall-clock budget of the fit (``recipe.minutes``, checked), or None."""
    minutes = recipe.get("minutes")
    if minutes is None:
        return None
    return TimeBudget(
        60.0 * float(minutes),
        warmup_steps=int(recipe.warmup_steps),
        cosine=str(recipe.scheduler) == "cosine",
    )


def _measure_and_export(cfg, net, datamodule, input_shape, run_dir, summary) -> None:
    """Parameters, multiply-adds and the checked ONNX export, into ``summary``."""
    summary["params"] = _inference_params(net)
    summary["params_train"] = count_params(net)
    summary["macs"] = count_macs(net, input_shape)
    summary["macs_note"] = MACS_NOTE
    export = cfg.get("export") or {}
    if not export.get("onnx", True):
        summary["onnx"] = None
        return
    inputs = _example_inputs(datamodule, int(export.get("check_batch", 16)), input_shape)
    try:
        summary["onnx"] = export_onnx(
            net,
            inputs,
            run_dir / "model.onnx",
            opset=int(export.get("opset", 17)),
            atol=float(export.get("atol", 1e-4)),
            metadata=model_metadata(
                datamodule, genotype_from_dict(summary["genotype"]), tuple(input_shape)
            ),
        )
    except Exception as err:  # keep the trained model and its card even if export fails
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        summary["onnx"] = {"ok": False, "error": f"{type(err).__name__}: {first}"}
        log.warning("ONNX export failed: %s", summary["onnx"]["error"])


def _split_sizes(datamodule: Any) -> dict[str, int]:
    data = getattr(datamodule, "data", None)
    if not isinstance(data, dict):
        return {}
    return {f"{split}_size": len(ds) for split, ds in data.items()}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _dumps(summary: dict[str, Any]) -> str:
    import json

    return json.dumps(jsonable(summary), indent=2) + "\n"


def _report(summary: dict[str, Any]) -> None:
    onnx = summary.get("onnx") or {}
    log.info(
        "test_acc=%.4f params=%s (%.2fM) MACs=%s (%.1fM) onnx_max_abs_diff=%s",
        summary["test_acc"] or float("nan"),
        summary["params"],
        summary["params"] / 1e6,
        summary["macs"],
        summary["macs"] / 1e6,
        onnx.get("max_abs_diff"),
    )
    log.info("run folder: %s", os.path.abspath(summary["run_dir"]))
