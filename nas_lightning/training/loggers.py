"""Lightning loggers for ``train.py`` (one run per training, unlike the search's)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from nas_lightning.core.sweep import sweep_names
from nas_lightning.core.wandb_env import has_api_key, wandb_mode
from nas_lightning.errors import ConfigError
from nas_lightning.utils import global_rank

log = logging.getLogger("nas_lightning.train")


def _short(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class SafeWandbLogger(WandbLogger):
    """``WandbLogger`` whose logging errors (the W&B service died) warn once and turn it off.

    Training goes on: the run folder's checkpoints and CSV-free model card do
    not depend on W&B.
    """

    broken = False

    def _guard(self, name: str, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            return
        try:
            getattr(super(), name)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - never stop a training for W&B
            self.broken = True
            log.warning("W&B: %s; W&B logging is off for the rest of this training",
                        _short(err))

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self._guard("log_metrics", metrics, step)

    def log_hyperparams(self, params: Any) -> None:
        self._guard("log_hyperparams", params)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guard("after_save_checkpoint", checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guard("finalize", status)


def wandb_logger(
    save_dir: str | Path,
    project: str | None = None,
    entity: str | None = None,
    mode: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    init_timeout: float = 15.0,
    group: str | None = None,
) -> Logger:
    """Lightning's ``WandbLogger`` with the search's offline-unless-logged-in rule.

    W&B never stops a training: the run starts here (rank 0), and if an
    online run cannot start within ``init_timeout`` seconds (no key, no
    network, a wrong ``WANDB_BASE_URL``) it is started offline; if that
    fails too, Lightning's CSV logger takes its place. Each step is one
    warning line.

    Args:
        save_dir: the run folder; W&B writes its files under ``save_dir/wandb``.
        project: W&B project (default ``WANDB_PROJECT`` or ``nas-lightning``).
        entity: W&B entity (default ``WANDB_ENTITY``).
        mode: ``online``, ``offline`` or ``disabled``; None: ``WANDB_MODE``,
            else online only if logged in.
        name: run name (default: the job's overrides in a Hydra sweep, else the
            run folder's name).
        tags: run tags.
        init_timeout: seconds ``wandb.init`` may take (W&B's default: 90, retried).
        group: run group (default: the sweep's folder name in a Hydra sweep).
    """
    if mode not in (None, "online", "offline", "disabled"):
        raise ConfigError("mode", f"must be online, offline, disabled or null, got {mode!r}")
    if not (isinstance(init_timeout, (int, float)) and init_timeout > 0):
        raise ConfigError("init_timeout", f"must be a number > 0, got {init_timeout!r}")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    if wandb.run is not None:  # an earlier training or search in this process
        wandb.finish()
    chosen = wandb_mode(mode)
    if chosen == "online" and not has_api_key():
        log.warning("W&B: online but no API key (wandb login or WANDB_API_KEY): logging "
                    "offline; upload later with wandb sync")
        chosen = "offline"

    sweep_group, sweep_name = sweep_names()  # (None, None) outside a Hydra sweep

    def make(run_mode: str) -> WandbLogger:
        return SafeWandbLogger(
            project=project or os.environ.get("WANDB_PROJECT", "nas-lightning"),
            entity=entity or os.environ.get("WANDB_ENTITY"),
            save_dir=str(save_dir),
            name=name or sweep_name or Path(save_dir).name,
            group=group or sweep_group,
            tags=list(tags or []),
            mode=run_mode,
            job_type="train",
            settings=wandb.Settings(init_timeout=float(init_timeout)),
        )

    logger = make(chosen)
    if global_rank() != 0:
        return logger
    try:
        logger.experiment  # noqa: B018 - start the run now, where a failure can be handled
        return logger
    except Exception as err:  # noqa: BLE001 - any W&B failure: train without it
        if chosen == "online":
            log.warning("W&B: online run did not start (%s): logging offline; upload later "
                        "with wandb sync", _short(err))
            try:
                logger = make("offline")
                logger.experiment  # noqa: B018
                return logger
            except Exception as err2:  # noqa: BLE001
                err = err2
        log.warning("W&B: could not start (%s): logging to csv/metrics.csv instead", _short(err))
        return CSVLogger(str(save_dir), name="csv", version="")


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

        if getattr(logger, "broken", False):
            return
        try:
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
        except Exception as err:  # noqa: BLE001 - the run folder has all of it
            log.warning("W&B: final upload failed (%s); the run folder has every file",
                        _short(err))
    else:
        logger.log_metrics(flat)
        logger.save()
        logger.finalize("success")


def _plain(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, type(None)))}
