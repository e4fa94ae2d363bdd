"""Continue an interrupted search from its run folder, refusing what would differ.

A fresh search writes ``run.json``: a run id (``strategy.pt`` carries it
too) and the config that fixes which children the search produces: all of
it but the budget (``search.num_children``), the logger and the folder's
own path. Resuming compares ``config.yaml`` with it, so a hand-edited seed or
learning rate is refused instead of silently changing the rest of the run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

from nas_lightning.core.records import MANIFEST, atomic_write
from nas_lightning.errors import ConfigError

# Overrides that may differ between the original run and its continuation.
_FREE = ("resume", "run_dir", "search.num_children", "logger", "hydra", "executor")
# Config keys left out of a run's identity (may change on resume).
_NOT_IDENTITY = ("resume", "run_dir", "logger", "executor")
MANIFEST_FORMAT = 1


def _rebase(data: Any, old: str, new: str) -> Any:
    """``data`` with every string equal to ``old`` (the run folder's path) set to ``new``."""
    if isinstance(data, dict):
        return {k: _rebase(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_rebase(v, old, new) for v in data]
    return new if data == old else data


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The part of a resolved config that decides which children a search produces.

    Paths equal to the run folder's own (a cache kept in it) are left out, so
    a folder that was moved still resumes.
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)  # a search config is a mapping with string keys
    data = cast(dict[str, Any], container)
    if isinstance(data.get("run_dir"), str):
        data = _rebase(data, data["run_dir"], "<run_dir>")
    for key in _NOT_IDENTITY:
        data.pop(key, None)
    if isinstance(data.get("search"), dict):
        data["search"].pop("num_children", None)
    return data


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def write_manifest(run_dir: Path, run_id: str, ident: dict[str, Any]) -> None:
    """``run.json``: the run id and the identity a resume must match."""
    manifest = {"format": MANIFEST_FORMAT, "run_id": run_id, "config_sha256": _digest(ident),
                "config": ident}
    atomic_write(Path(run_dir) / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """``run.json`` of a run folder; None for folders written before it existed."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("resume", f"{path} is corrupt (not JSON)") from None
    if not isinstance(manifest, dict) or "run_id" not in manifest:
        raise ConfigError("resume", f"{path} is not a run manifest")
    return manifest


def _first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def check_identity(run_dir: Path, saved: DictConfig) -> None:
    """Refuse a ``config.yaml`` changed (by hand) since the search started."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        return
    now = identity(saved)
    if _digest(now) == manifest.get("config_sha256"):
        return
    found = _first_difference(manifest.get("config"), now)
    what = f"{found[0]} is {found[2]!r}, the search started with {found[1]!r}" if found else (
        "it differs from the config the search started with")
    raise ConfigError(
        "resume", f"{run_dir / 'config.yaml'} was edited: {what}; only search.num_children and "
        "logger may change (on the command line)"
    )


def _load_saved(run_dir: Path) -> DictConfig:
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError("resume", f"{run_dir} has no config.yaml: not a search run folder")
    try:
        saved = OmegaConf.load(saved_path)
    except Exception as err:  # YAML syntax, bad encoding ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError("resume", f"{saved_path} cannot be read: {first}") from None
    if not isinstance(saved, DictConfig) or "search" not in saved:
        raise ConfigError("resume", f"{saved_path} is not a search config")
    return saved


def _plain(node: Any) -> Any:
    """A config value as plain data, resolved; numbers compare by value (64 == 64.0)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _unchanged(cfg: DictConfig, saved: DictConfig, key: str) -> bool:
    """Whether this command's value of ``key`` is the one the run was saved with.

    A key that names no node (a config group of the global package, such as
    ``experiment``) is unchanged when the whole identity of the run is.
    """
    missing = object()
    now = OmegaConf.select(cfg, key, default=missing, throw_on_missing=False)
    then = OmegaConf.select(saved, key, default=missing, throw_on_missing=False)
    if now is missing and then is missing:
        return identity(cfg) == identity(saved)
    if now is missing or then is missing:
        return False
    return _plain(now) == _plain(then)


def resume_config(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """The saved config of ``cfg.resume``, with this command's overrides on top.

    Only the budget (``search.num_children``), the logger and the executor
    may change: a
    different space, strategy, seed or recipe would not reproduce the
    recorded children, and is refused, on the command line as in a
    hand-edited ``config.yaml``. ``logger=<name>`` replaces the logger;
    ``logger.<key>=<value>`` changes one of its values.

    Args:
        cfg: the config composed for this command (has ``resume``).
        overrides: this command's overrides (default: Hydra's).
    """
    run_dir = Path(cfg.resume)
    saved = _load_saved(run_dir)
    check_identity(run_dir, saved)
    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    keys = [item.split("=", 1)[0].lstrip("+~") for item in overrides]
    if isinstance(saved.get("run_dir"), str):  # paths into the folder follow it
        saved = OmegaConf.create(_rebase(OmegaConf.to_container(saved), saved.run_dir,
                                         str(run_dir)))
    for key in keys:
        if not key.startswith(_FREE) and not _unchanged(cfg, saved, key):
            raise ConfigError(
                "resume",
                f"cannot change {key!r} when resuming; only search.num_children, logger "
                "and executor (the command of the original run may be repeated as it was)",
            )
    changes = [o for o, k in zip(overrides, keys, strict=True)
               if k == "search.num_children" or k.startswith("logger.")]
    merged = OmegaConf.merge(saved, OmegaConf.from_dotlist([o.lstrip("+") for o in changes]))
    assert isinstance(merged, DictConfig)  # a search config merged with overrides
    if "logger" in keys:  # a new logger group: this command's, with its logger.* values
        merged.logger = cfg.get("logger")
    if any(k.startswith("executor") for k in keys):
        merged.executor = cfg.executor  # where children train: results do not depend on it
    merged.resume = str(run_dir)
    merged.run_dir = str(run_dir)
    return merged
