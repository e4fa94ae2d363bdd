"""Lightning loggers for ``train.py`` (one run per training, unlike the search's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger, WandbLogger

from nas_lightning.errors import ConfigError
from nas_lightning.search.loggers import wandb_mode


def wandb_logger(
    save_dir: str | Path,
    project: str | None = None,
    entity: str | None = None,
    mode: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
) -> WandbLogger:
    """Lightning's ``WandbLogger`` with the search's offline-unless-logged-in rule.

    Args:
        save_dir: the run folder; W&B writes its files under ``save_dir/wandb``.
        project: W&B project (default ``WANDB_PROJECT`` or ``nas-lightning``).
        entity: W&B entity (default ``WANDB_ENTITY``).
        mode: ``online``, ``offline`` or ``disabled``; None: ``WANDB_MODE``,
            else online only if logged in.
        name: run name (default: the run folder's name).
        tags: run tags.
    """
    if mode not in (None, "online", "offline", "disabled"):
        raise ConfigError("mode", f"must be online, offline, disabled or null, got {mode!r}")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    if wandb.run is not None:  # an earlier training or search in this process
        wandb.finish()
    return WandbLogger(
        project=project or os.environ.get("WANDB_PROJECT", "nas-lightning"),
        entity=entity or os.environ.get("WANDB_ENTITY"),
        save_dir=str(save_dir),
        name=name or Path(save_dir).name,
        tags=list(tags or []),
        mode=wandb_mode(mode),
        job_type="train",
    )


def log_final(logger: Logger | None, summary: dict[str, Any], files: list[Path]) -> None:
    """Record the model card's numbers and files in the logger, then close it.

    W&B gets the numbers in the run summary and ``files`` (summary.json,
    model.onnx, the best checkpoint, the genotype) as one ``model`` artifact.
    """
    if logger is None:
        return
    flat = {
        f"final/{k}": v
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    onnx = summary.get("onnx") or {}
    if isinstance(onnx.get("max_abs_diff"), float):
        flat["final/onnx_max_abs_diff"] = onnx["max_abs_diff"]
    if isinstance(logger, WandbLogger):
        import wandb

        run = logger.experiment
        run.summary.update(flat)
        for path in files:  # pictures (the architecture) as W&B images too
            if path.suffix == ".png" and path.is_file():
                run.log({path.stem: wandb.Image(str(path))})
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=_plain(summary))
        for path in files:
            if path.is_file():
                artifact.add_file(str(path))
        run.log_artifact(artifact)
        wandb.finish()
    else:
        logger.log_metrics(flat)
        logger.save()
        logger.finalize("success")


def _plain(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, type(None)))}
