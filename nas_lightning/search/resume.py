"""Continue an interrupted search from its run folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nas_lightning.errors import ConfigError

# Overrides that may differ between the original run and its continuation.
_FREE = ("resume", "run_dir", "search.num_children", "logger", "hydra", "executor")


def resume_config(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """The saved config of ``cfg.resume``, with this command's overrides on top.

    Only the budget (``search.num_children``), the logger and the executor
    may change: a
    different space, strategy, seed or recipe would not reproduce the
    recorded children, and is refused.

    Args:
        cfg: the config composed for this command (has ``resume``).
        overrides: this command's overrides (default: Hydra's).
    """
    run_dir = Path(cfg.resume)
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError("resume", f"{run_dir} has no config.yaml: not a search run folder")
    saved = OmegaConf.load(saved_path)
    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if not key.startswith(_FREE):
            raise ConfigError(
                "resume",
                f"cannot change {key!r} when resuming; only search.num_children, logger "
                "and executor",
            )
    budget = [o for o in overrides if o.startswith("search.num_children=")]
    merged = OmegaConf.merge(saved, OmegaConf.from_dotlist(budget))
    if any(o.lstrip("+~").startswith("executor") for o in overrides):
        merged.executor = cfg.executor  # where children train: results do not depend on it
    merged.resume = str(run_dir)
    merged.run_dir = str(run_dir)
    return merged
