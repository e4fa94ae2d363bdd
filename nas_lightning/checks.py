"""Value checks of a composed config, run before anything trains.

Hydra passes command-line values through as text when they do not parse as
numbers (``seed=x``), and most objects only meet their values when the first
child trains. These checks read every value a run depends on once, up front,
and turn a bad one into a :class:`ConfigError` that names its key and what it
may be, so that a search never trains children that were all bound to fail.

Types and ranges are declared as pydantic models (one per config node);
what a type cannot say (accelerators present on this host, device lists, the
Trainer's own argument checks, a network that builds) is checked by code.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

import torch
from omegaconf import DictConfig, ListConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nas_lightning.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- types and ranges, declared once ---------------------------------------------
# pydantic models in strict mode: no "3" -> 3 or True -> 1 coercion, no inf/nan.
# Hydra structured configs are not used: OmegaConf checks types only (no
# ranges), converts "12" to 12, and fails at compose time with a multi-line
# message, before the key could be named in one line.


def _bound(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return f" {' and '.join(parts)}" if parts else ""


def integer(minimum: int | None = None, optional: bool = False) -> Any:
    """An integer field (>= ``minimum``; null allowed when ``optional``)."""
    text = f"an integer{_bound(minimum, None, False, False)}{' or null' if optional else ''}"
    kind: Any = Annotated[int, Field(strict=True, ge=minimum)]
    return Annotated[kind | None if optional else kind, Field(description=text)]


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Any:
    """A finite number field in the given range (null allowed when ``optional``)."""
    text = (f"a number{_bound(low, high, low_open, high_open)}"
            f"{' or null' if optional else ''}")
    kind: Any = Annotated[float, Field(
        strict=True, allow_inf_nan=False,
        gt=low if low_open else None, ge=None if low_open else low,
        lt=high if high_open else None, le=None if high_open else high,
    )]
    return Annotated[kind | None if optional else kind, Field(description=text)]


def one_of(*values: str) -> Any:
    """A field that takes one of ``values``."""
    return Annotated[Literal[values], Field(description=f"one of {list(values)}")]


class _Section(BaseModel):
    """Keys a run reads, typed; keys not declared here are checked where they are used."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Optimizer(_Section):
    """The numeric arguments every torch optimizer shares."""

    lr: number(0.0, low_open=True) = None
    weight_decay: number(0.0) = None
    momentum: number(0.0) = None


LIMIT = Annotated[
    None | Annotated[int, Field(strict=True, ge=1)]
    | Annotated[float, Field(strict=True, gt=0.0, le=1.0)],
    Field(description="null, a batch count >= 1 or a fraction in (0, 1]"),
]


class Recipe(_Section):
    """A training recipe (``child`` of the search, ``recipe`` of train.py)."""

    epochs: integer(1)
    batch_size: integer(1) = None
    eval_batch_size: integer(1, optional=True) = None
    train_subset: integer(1, optional=True) = None
    scheduler: one_of("cosine", "none") = "cosine"
    warmup_steps: integer(0) = None
    label_smoothing: number(0.0, 1.0, high_open=True) = None
    bn_recalibration_batches: integer(0) = None
    gradient_clip_val: number(0.0, optional=True) = None
    limit_train_batches: LIMIT = None
    limit_val_batches: LIMIT = None


class TrainRecipe(Recipe):
    """``train.py``'s recipe: the search's plus regularisation."""

    aux_weight: number(0.0) = None
    cutout: number(0.0) = None
    drop_path: number(0.0, 1.0, high_open=True) = None
    minutes: number(0.0, low_open=True, optional=True) = None
    test_flip: bool = None


class SearchKeys(_Section):
    """The ``search`` node."""

    num_children: integer(1)
    num_threads: Annotated[
        None | Literal["auto", "none"] | Annotated[int, Field(strict=True, ge=1)],
        Field(description="an integer >= 1, auto or null"),
    ] = None
    failed_reward: number(optional=True) = None
    repeats: Annotated[
        Literal["train", "reuse"], Field(description="train or reuse")
    ] = None
    reuse_limit: integer(1) = None
    max_minutes: number(0.0, low_open=True, optional=True) = None
    scheduler: one_of("none", "asha", "hyperband") = None
    min_epochs: integer(1) = None
    reduction_factor: integer(2) = None


class TrainerKeys(_Section):
    """Trainer values checked by name (the rest by a throwaway Trainer)."""

    max_epochs: integer(1) = None


class SearchRoot(_Section):
    seed: integer()


class TrainRoot(_Section):
    seed: integer()
    num_threads: integer(1, optional=True) = None


def check_section(model: type[_Section], node: Any, key: str = "") -> None:
    """Validate ``node`` against ``model``; the first bad key becomes a one-line ConfigError.

    Defaults are not validated, so a key that is absent passes and a key
    given as null is checked like any other value.
    """
    if node is None:
        node = {}
    if isinstance(node, DictConfig):
        data = {k: node.get(k) for k in model.model_fields if k in node}
    else:
        data = {k: node[k] for k in model.model_fields if k in node}
    try:
        model.model_validate(data)
    except ValidationError as err:
        name = str(err.errors()[0]["loc"][0])
        what = model.model_fields[name].description
        raise ConfigError(f"{key}.{name}" if key else name,
                          f"must be {what}, got {data.get(name)!r}") from None


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
    check_section(TrainerKeys, node, key)
    if "_target_" not in node:
        return
    from nas_lightning.core.builders import build
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
    from nas_lightning.core.builders import build

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


def _world_size(trainer: Any) -> int:
    """The ranks a child trains on, as far as the trainer node says (``auto``, ``-1``: 1)."""
    if not trainer:
        return 1
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes")
    if _is_int(devices) and devices > 0:
        world = devices
    elif isinstance(devices, (list, tuple, ListConfig)):
        world = max(len(devices), 1)
    else:
        world = 1
    return world * (nodes if _is_int(nodes) and nodes > 0 else 1)


def check_batches(cfg: DictConfig) -> None:
    """A training subset smaller than one batch on every rank stops the run now.

    Training drops a short last batch, so such a subset trains zero steps; the
    training loader says so too, but only inside the first child. Without a
    subset the size is known once the data is loaded, and the loader checks it.
    """
    dataset = cfg.get("dataset")
    if not dataset:
        return
    subset, batch = dataset.get("train_subset"), dataset.get("batch_size")
    if not (_is_int(subset) and _is_int(batch)) or subset < 1 or batch < 1:
        return
    world = _world_size(cfg.get("trainer"))
    if subset < batch * world:
        raise ConfigError.no_full_batch(subset, batch, world)


def check_search_config(cfg: DictConfig) -> None:
    """Every value a search reads before or during its children, checked now."""
    check_section(SearchRoot, cfg)
    check_section(SearchKeys, cfg.get("search"), "search")
    if cfg.get("child") is not None:
        check_section(Recipe, cfg.child, "child")
        check_section(Optimizer, cfg.child.get("optimizer"), "child.optimizer")
    check_trainer(cfg.get("trainer"))
    check_batches(cfg)
    check_model(cfg)


def check_train_config(cfg: DictConfig) -> None:
    """The values of a ``train.py`` run, checked before the network is built."""
    check_section(TrainRoot, cfg)
    if cfg.get("recipe") is not None:
        check_section(TrainRecipe, cfg.recipe, "recipe")
        check_section(Optimizer, cfg.recipe.get("optimizer"), "recipe.optimizer")
    check_trainer(cfg.get("trainer"))
    if not cfg.get("eval_only"):
        check_batches(cfg)
