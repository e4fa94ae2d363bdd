"""Value checks of a composed config, run before anything trains.

Hydra passes command-line values through as text when they do not parse as
numbers (``seed=x``), and most objects only meet their values when the first
child trains. These checks read every value a run depends on once, up front,
and turn a bad one into a :class:`ConfigError` that names its key and what it
may be, so that a search never trains children that were all bound to fail.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from omegaconf import DictConfig

from nas_lightning.errors import ConfigError

SCHEDULERS = ("cosine", "none")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_int(value: Any, key: str, minimum: int | None = None, optional: bool = False) -> None:
    """``value`` is an integer (>= ``minimum``), or None when ``optional``."""
    if value is None and optional:
        return
    bound = f" >= {minimum}" if minimum is not None else ""
    extra = " or null" if optional else ""
    if not _is_int(value) or (minimum is not None and value < minimum):
        raise ConfigError(key, f"must be an integer{bound}{extra}, got {value!r}")


def check_number(
    value: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """``value`` is a finite number in the given range, or None when ``optional``."""
    if value is None and optional:
        return
    ok = _is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        bound = f" {' and '.join(parts)}" if parts else ""
        extra = " or null" if optional else ""
        raise ConfigError(key, f"must be a number{bound}{extra}, got {value!r}")


def check_limit(value: Any, key: str) -> None:
    """A Trainer ``limit_*_batches``: null, a count >= 1 or a fraction in (0, 1]."""
    if value is None or (_is_int(value) and value >= 1):
        return
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return
    raise ConfigError(
        key, f"must be null, a batch count >= 1 or a fraction in (0, 1], got {value!r}"
    )


def check_optimizer(node: Any, key: str) -> None:
    """The numeric arguments every torch optimizer shares (lr > 0, decay >= 0)."""
    if not node:
        return
    if "lr" in node:
        check_number(node.get("lr"), f"{key}.lr", 0.0, low_open=True)
    for name in ("weight_decay", "momentum"):
        if name in node:
            check_number(node.get(name), f"{key}.{name}", 0.0)


def check_recipe(node: Any, key: str, epochs_key: str = "epochs") -> None:
    """A training recipe (``child`` of the search, ``recipe`` of train.py)."""
    check_int(node.get(epochs_key), f"{key}.{epochs_key}", 1)
    if "batch_size" in node:
        check_int(node.get("batch_size"), f"{key}.batch_size", 1)
    if "eval_batch_size" in node:
        check_int(node.get("eval_batch_size"), f"{key}.eval_batch_size", 1, optional=True)
    if "train_subset" in node:
        check_int(node.get("train_subset"), f"{key}.train_subset", 1, optional=True)
    scheduler = node.get("scheduler", "cosine")
    if scheduler not in SCHEDULERS:
        raise ConfigError(
            f"{key}.scheduler", f"must be one of {list(SCHEDULERS)}, got {scheduler!r}"
        )
    if "warmup_steps" in node:
        check_int(node.get("warmup_steps"), f"{key}.warmup_steps", 0)
    if "label_smoothing" in node:
        check_number(node.get("label_smoothing"), f"{key}.label_smoothing", 0.0, 1.0,
                     high_open=True)
    if "bn_recalibration_batches" in node:
        check_int(node.get("bn_recalibration_batches"), f"{key}.bn_recalibration_batches", 0)
    if "gradient_clip_val" in node:
        check_number(node.get("gradient_clip_val"), f"{key}.gradient_clip_val", 0.0,
                     optional=True)
    for name in ("limit_train_batches", "limit_val_batches"):
        if name in node:
            check_limit(node.get(name), f"{key}.{name}")
    check_optimizer(node.get("optimizer"), f"{key}.optimizer")


def _check_devices(devices: Any, key: str) -> None:
    if devices == "auto" or devices == -1 or (_is_int(devices) and devices >= 1):
        return
    if isinstance(devices, str):
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        if parts and all(p.isdigit() or p == "-1" for p in parts):
            return
    elif hasattr(devices, "__iter__"):  # a list (or ListConfig) of indices
        items = list(devices)
        if items and all(_is_int(i) and i >= 0 for i in items):
            return
    raise ConfigError(
        key, f"must be an integer >= 1, -1 (all), 'auto' or a list of device indices, "
        f"got {devices!r}"
    )


def _available_accelerators() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["gpu", "cuda"]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found += ["mps"] if "gpu" in found else ["gpu", "mps"]
    return found


def _check_accelerator(accelerator: Any, key: str) -> None:
    if accelerator is None:
        return
    name = accelerator.lower() if isinstance(accelerator, str) else None
    if name not in ACCELERATORS:
        raise ConfigError(key, f"must be one of {list(ACCELERATORS)}, got {accelerator!r}")
    if name in ("auto", "tpu"):
        return  # auto picks what exists; Lightning checks a TPU itself
    available = _available_accelerators()
    if name not in available:
        need = "a CUDA GPU" if name in ("gpu", "cuda") else "Apple's MPS"
        raise ConfigError(
            key, f"{name} needs {need} and this machine has none (available here: "
            f"{available}); use trainer=cpu or trainer.accelerator=cpu"
        )


def check_trainer(node: Any, key: str = "trainer") -> None:
    """Hardware values by name, then one throwaway Trainer for everything else.

    A ``Trainer`` costs milliseconds to build and checks strategy, precision
    and device combinations exactly as the children's will.
    """
    if not node:
        return
    _check_accelerator(node.get("accelerator"), f"{key}.accelerator")
    if "devices" in node:
        _check_devices(node.get("devices"), f"{key}.devices")
    if "max_epochs" in node:
        check_int(node.get("max_epochs"), f"{key}.max_epochs", 1)
    if "_target_" not in node:
        return
    from nas_lightning.search.builders import build
    from nas_lightning.utils import quiet_lightning

    quiet_lightning()
    factory = build(node, key)
    try:
        factory(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False)
    except (ValueError, TypeError, RuntimeError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(key, text) from None
    except Exception as err:  # Lightning's MisconfigurationException and kin
        if type(err).__name__ != "MisconfigurationException":
            raise
        raise ConfigError(key, str(err).strip().splitlines()[0]) from None


def check_model(cfg: DictConfig) -> None:
    """Build one network of the space, so that bad ``model.*`` values stop the run now."""
    from nas_lightning.search.builders import build

    if cfg.get("search_space") is None or cfg.get("model") is None:
        return
    space = build(cfg.search_space, "search_space")
    try:
        genotype = space.decode(space.sample(random.Random(0)))
    except Exception:  # spaces that cannot sample without a start network
        return
    factory = build(cfg.model, "model")
    dataset = cfg.get("dataset") or {}
    target = dataset.get("_target_") if dataset else None
    kwargs: dict[str, Any] = {}
    if target:
        from hydra.utils import get_class

        cls = get_class(target)
        kwargs = {"in_channels": getattr(cls, "in_channels", 3),
                  "num_classes": getattr(cls, "num_classes", 10)}
    try:
        factory(genotype, **kwargs)
    except ConfigError as err:
        raise err.prefixed("model") from None
    except Exception:  # a fault of this one network, not of the config: its child reports it
        return


def check_search_config(cfg: DictConfig) -> None:
    """Every value a search reads before or during its children, checked now."""
    check_int(cfg.get("seed"), "seed")
    search = cfg.get("search") or {}
    check_int(search.get("num_children"), "search.num_children", 1)
    threads = search.get("num_threads")
    if threads not in ("auto", "none", None) and not (_is_int(threads) and threads >= 1):
        raise ConfigError("search.num_threads",
                          f"must be an integer >= 1, auto or null, got {threads!r}")
    check_number(search.get("failed_reward"), "search.failed_reward", optional=True)
    if cfg.get("child") is not None:
        check_recipe(cfg.child, "child")
    check_trainer(cfg.get("trainer"))
    check_model(cfg)


def check_train_config(cfg: DictConfig) -> None:
    """The values of a ``train.py`` run, checked before the network is built."""
    check_int(cfg.get("seed"), "seed")
    check_int(cfg.get("num_threads"), "num_threads", 1, optional=True)
    if cfg.get("recipe") is not None:
        check_recipe(cfg.recipe, "recipe")
        recipe = cfg.recipe
        for name in ("aux_weight", "cutout"):
            if name in recipe:
                check_number(recipe.get(name), f"recipe.{name}", 0.0)
        if "drop_path" in recipe:
            check_number(recipe.get("drop_path"), "recipe.drop_path", 0.0, 1.0, high_open=True)
    check_trainer(cfg.get("trainer"))
