"""What ``search.py`` and ``train.py`` share: one line per known error, exit status 2.

A user's mistake (a bad value, a missing file, an unknown key, a full disk)
gets ``error: <what and where>`` on stderr, not a traceback; set
``NAS_LIGHTNING_TRACEBACK=1`` to see the traceback anyway. Errors that are
not the user's (bugs) keep their traceback.
"""

from __future__ import annotations

import difflib
import errno
import functools
import os
import pickle
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from nas_lightning.errors import ConfigError, GenotypeError, first_line
from nas_lightning.utils import config_dir

EXIT_USAGE = 2
TRACEBACK_ENV = "NAS_LIGHTNING_TRACEBACK"


T = TypeVar("T")


def describe(err: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or None for a bug."""
    if isinstance(err, (ConfigError, GenotypeError)):
        return first_line(err)
    if isinstance(err, RecursionError):
        return "input nested too deeply (Python's recursion limit); is a genotype file malformed?"
    if isinstance(err, OSError):
        reason = err.strerror or first_line(err)
        if err.errno == errno.ENOSPC:
            reason = "no space left on device"
        where = err.filename
        if err.filename2:
            where = f"{err.filename} -> {err.filename2}"
        return f"{reason}: {where}" if where else f"{type(err).__name__}: {reason}"
    if isinstance(err, (EOFError, pickle.UnpicklingError)):
        return f"a saved file is empty or corrupt ({type(err).__name__})"
    try:
        import yaml

        if isinstance(err, yaml.YAMLError):
            mark = getattr(err, "problem_mark", None)
            problem = getattr(err, "problem", None) or first_line(err)
            if mark is not None:
                return f"{mark.name}:{mark.line + 1}: YAML does not parse: {problem}"
            return f"YAML does not parse: {problem}"
    except ImportError:  # pragma: no cover - yaml comes with omegaconf
        pass
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None)
        return f"{key}: {first_line(err)}" if key else first_line(err)
    return None


def exit_with(message: str) -> None:
    """Print ``error: message`` to stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def one_line_errors(main: Callable[..., T]) -> Callable[..., T]:
    """Decorate an entry point: known errors become ``error: ...`` and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return main(*args, **kwargs)
        except Exception as err:
            message = describe(err)
            if message is None or os.environ.get(TRACEBACK_ENV):
                raise
            exit_with(message)
            raise  # unreachable: exit_with exits

    return wrapper


# -- command-line overrides ----------------------------------------------------


def _keys(node: Any, prefix: str = "") -> Iterable[str]:
    """Every dotted key of a composed config (values are not resolved)."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return
    for key in node.keys():
        full = f"{prefix}{key}"
        yield full
        try:
            child = node._get_node(key)
        except Exception:  # pragma: no cover - odd nodes: skip their children
            continue
        yield from _keys(child, f"{full}.")


def _known(config_name: str, conf_dir: Path) -> tuple[list[str], list[str]]:
    """The dotted keys and the config groups of ``config_name`` as composed by default."""
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            base = compose(config_name, return_hydra_config=True)
    except Exception:  # the suggestion is a nicety; the error stands without it
        return [], []
    groups = [g for g in base.hydra.runtime.choices if not str(g).startswith("hydra/")]
    keys = [k for k in _keys(base) if not k.startswith("hydra")]
    return keys, groups


def _suggest(key: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    if found:
        return found[0]
    # a known group/key that ends like the unknown one (logger -> train_logger)
    tail = [c for c in candidates if c.endswith(f"_{key}") or c.endswith(f".{key}")]
    return tail[0] if len(tail) == 1 else None


def override_error(
    err: Exception, config_name: str, overrides: list[str], conf_dir: Path | None = None
) -> str:
    """One line for an override Hydra rejected, with the close key it probably meant."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(err).strip()
    if isinstance(err, MissingConfigException) and err.options:
        bad = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") in text), None)
        group = (bad or "").split("=", 1)[0].lstrip("+~")
        value = (bad or "").split("=", 1)[-1]
        options = ", ".join(sorted(err.options))
        if group:
            return f"{group}={value}: no such option in conf/{group}/; choose one of: {options}"
        return f"{first_line(err)} (options: {options})"
    if isinstance(err, OverrideParseException):
        return f"cannot parse the overrides {' '.join(overrides)!r}: {first_line(err)}"
    if text.startswith("Could not override '"):
        key = text[len("Could not override '"):].split("'", 1)[0]
        keys, groups = _known(config_name, conf_dir or config_dir())
        near = _suggest(key, sorted(set(keys) | set(groups)))
        what = "config group" if key in groups or near in groups else "key"
        hint = f"; did you mean {near!r}?" if near else ""
        if what == "config group":
            return f"unknown {what} {key!r} for {config_name}.py{hint}"
        return (f"unknown {what} {key!r} for {config_name}.py{hint} "
                f"(to add a new key on purpose, write +{key}=...)")
    return first_line(err)


def check_overrides(config_name: str, argv: list[str], conf_dir: Path | None = None) -> None:
    """Compose ``argv``'s overrides once before Hydra does, to report a bad one in one line.

    Hydra's own report of an unknown key is several lines and suggests
    adding it with ``+``, which is rarely what a user who mistyped a key
    wants. Command lines with Hydra flags (``-m``, ``--cfg``, ``--help``)
    are left to Hydra.
    """
    if any(a.startswith("-") for a in argv):
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(conf_dir or config_dir()), version_base="1.3"):
            compose(config_name, overrides=argv)
    except HydraException as err:
        exit_with(override_error(err, config_name, argv, conf_dir))
