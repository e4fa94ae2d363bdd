"""Instantiate config nodes, turning any construction error into a one-line
:class:`ConfigError` that names the config key at fault."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from nas_lightning.errors import ConfigError, GenotypeError, first_line


def _translate(err: BaseException, key: str) -> ConfigError:
    cause: BaseException = err
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, ConfigError):
        return cause.prefixed(key)
    return ConfigError(key, first_line(cause))


def build(node: Any, key: str) -> Any:
    """``instantiate(node)``; errors name ``key``."""
    if node is None:
        raise ConfigError(key, "is missing")
    try:
        return instantiate(node)
    except (InstantiationException, ConfigError, GenotypeError, TypeError, ValueError) as err:
        raise _translate(err, key) from err


def build_partial(node: Any, key: str, *args: Any, **kwargs: Any) -> Any:
    """Instantiate a ``_partial_`` node and call it with runtime arguments."""
    factory = build(node, key)
    try:
        return factory(*args, **kwargs)
    except (ConfigError, GenotypeError, TypeError, ValueError) as err:
        raise _translate(err, key) from err
