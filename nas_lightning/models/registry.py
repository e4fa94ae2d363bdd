"""Which network class builds which genotype kind.

``train.py`` loads any genotype (a name or a JSON file) and must build the
right network for it; the genotype's ``kind`` picks the builder here, and the
``model`` config's keys are passed through to it. A new search space adds
one :func:`register_builder` line at the bottom of this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from nas_lightning.errors import ConfigError, GenotypeError

Builder = Callable[..., nn.Module]
"""``builder(genotype, in_channels=, num_classes=, **model_kwargs) -> nn.Module``."""

Check = Callable[[Any], None]
"""``check(genotype)`` raises :class:`GenotypeError` for a genotype its builder cannot build."""

_BUILDERS: dict[str, Builder] = {}
_CHECKS: dict[str, Check] = {}


def register_builder(kind: str, builder: Builder, check: Check | None = None) -> None:
    """Build genotypes of ``kind`` with ``builder``, after ``check`` (if any) accepts them."""
    if kind in _BUILDERS and _BUILDERS[kind] is not builder:
        raise ValueError(f"a builder for genotype kind {kind!r} is already registered")
    _BUILDERS[kind] = builder
    if check is not None:
        _CHECKS[kind] = check


def builders() -> dict[str, Builder]:
    """Every registered builder by genotype kind."""
    return dict(_BUILDERS)


def get_builder(kind: str) -> Builder:
    """The builder of ``kind``.

    Raises:
        GenotypeError: no builder is registered for ``kind``.
    """
    if kind not in _BUILDERS:
        known = sorted(_BUILDERS)
        raise GenotypeError(f"no network builder for genotype kind {kind!r}; known: {known}")
    return _BUILDERS[kind]


def builder_arguments(kind: str) -> list[str]:
    """The keyword arguments a ``model`` config may set for ``kind``."""
    params = inspect.signature(get_builder(kind)).parameters
    return [n for n in params if n not in ("self", "genotype", "in_channels", "num_classes")]


def build_model(
    genotype: Any,
    in_channels: int,
    num_classes: int,
    model_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the network of ``genotype`` with its kind's builder.

    Args:
        genotype: any registered genotype.
        in_channels: image channels.
        num_classes: classifier outputs.
        model_kwargs: the builder's other arguments (the ``model`` config).

    Raises:
        GenotypeError: the genotype names something the builder lacks (an op).
        ConfigError: ``model.<key>`` is not an argument of the builder or
            has a bad value.
    """
    builder = get_builder(genotype.kind)
    if genotype.kind in _CHECKS:
        _CHECKS[genotype.kind](genotype)
    kwargs = dict(model_kwargs or {})
    allowed = builder_arguments(genotype.kind)
    for key in kwargs:
        if key not in allowed:
            name = getattr(builder, "__name__", str(builder))
            raise ConfigError(f"model.{key}", f"not an argument of {name}; it takes {allowed}")
    try:
        return builder(genotype, in_channels=in_channels, num_classes=num_classes, **kwargs)
    except ConfigError as err:
        raise err.prefixed("model") from None


def _check_nasnet_ops(genotype: Any) -> None:
    from nas_lightning.models.ops import OPS

    for name in ("normal", "reduction"):
        for op in getattr(genotype, name).ops:
            if op not in OPS:
                raise GenotypeError(f"{name} cell: unknown op {op!r}; known: {sorted(OPS)}")


def _register_builtin() -> None:
    from nas_lightning.models.mobile import MobileNetwork
    from nas_lightning.models.nas_rl import NASRLNetwork
    from nas_lightning.models.nasnet import NASNetwork

    register_builder("nasnet", NASNetwork, _check_nasnet_ops)
    register_builder("nas_rl", NASRLNetwork)
    register_builder("mobile", MobileNetwork)
    # A new kind: register_builder("<kind>", <NetworkClass>)


_register_builtin()
