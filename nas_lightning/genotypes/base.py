"""Genotype registry and JSON I/O shared by every search space.

A genotype is a frozen dataclass with a class attribute ``kind``, a
``to_dict()`` that returns plain JSON data and a ``from_dict()`` classmethod
that validates and rebuilds it. On disk a genotype is
``{"kind": ..., **to_dict()}``; a run's ``best.json`` wraps it under the key
``"genotype"`` and :func:`load_genotype` reads either form.

A genotype also has ``canonical()``: a hashable key equal for two genotypes
exactly when their networks compute the same function up to the names of
their parameters (e.g. the two operands of an ``add`` swapped). Searches
know architectures by :func:`architecture_key`, so two encodings of one
network are trained once.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from nas_lightning.errors import GenotypeError


@runtime_checkable
class Genotype(Protocol):
    """What every genotype kind declares (``isinstance(x, Genotype)`` checks it)."""

    kind: str

    def to_dict(self) -> dict[str, Any]: ...

    def canonical(self) -> Hashable:
        """The same key for every encoding of the same network, another for any other."""
        ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genotype: ...


_TYPES: dict[str, type] = {}
_NAMED: dict[str, Any] = {}

T = TypeVar("T", bound=type)


def register_genotype(cls: T) -> T:
    """Class decorator: make ``cls`` loadable by its ``kind``."""
    kind = cls.kind
    if kind in _TYPES and _TYPES[kind] is not cls:
        raise ValueError(f"genotype kind {kind!r} registered twice")
    _TYPES[kind] = cls
    return cls


def register_named(name: str, genotype: Any) -> None:
    """Make ``genotype`` loadable as ``genotype=<name>`` (e.g. ``nasnet_a``)."""
    _NAMED[name] = genotype


def named_genotypes() -> dict[str, Any]:
    """Every named genotype, e.g. for ``--help`` texts and tests."""
    _load_builtin_names()
    return dict(_NAMED)


def genotype_to_dict(genotype: Any) -> dict[str, Any]:
    """JSON-ready dict of any registered genotype, tagged with its kind."""
    return {"kind": genotype.kind, **genotype.to_dict()}


def genotype_from_dict(data: Any) -> Any:
    """Rebuild a genotype from :func:`genotype_to_dict`'s output.

    Raises:
        GenotypeError: one line saying what is wrong.
    """
    if not isinstance(data, dict):
        raise GenotypeError(f"a genotype must be a JSON object, got {type(data).__name__}")
    if "genotype" in data and isinstance(data["genotype"], dict):
        data = data["genotype"]
    kind = data.get("kind")
    _load_builtin_names()
    if kind not in _TYPES:
        raise GenotypeError(f"unknown genotype kind {kind!r}; known: {sorted(_TYPES)}")
    body = {k: v for k, v in data.items() if k != "kind"}
    try:
        return _TYPES[kind].from_dict(body)
    except GenotypeError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise GenotypeError(f"malformed {kind} genotype: {err}") from None


def architecture_key(genotype: Any, actions: Sequence[int] = ()) -> Hashable:
    """What tells two proposals apart: the canonical form of their network.

    Args:
        genotype: a genotype, its dict (a record's ``"genotype"``), or any
            other value (a :class:`~nas_lightning.spaces.base.ListSpace`'s
            dict of choices), which has no canonical form.
        actions: the proposal's actions, the key of a genotype without a
            canonical form.

    Returns:
        ``(kind, genotype.canonical())``, or ``tuple(actions)``.
    """
    if isinstance(genotype, dict):
        _load_builtin_names()
    if isinstance(genotype, dict) and genotype.get("kind") in _TYPES:
        try:
            genotype = genotype_from_dict(genotype)
        except GenotypeError:
            return tuple(actions)
    if isinstance(genotype, Genotype):
        return (genotype.kind, genotype.canonical())
    return tuple(actions)


def genotype_to_json(genotype: Any, indent: int | None = None) -> str:
    return json.dumps(genotype_to_dict(genotype), indent=indent)


def genotype_from_json(text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GenotypeError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise GenotypeError("JSON nested too deeply to be a genotype") from None
    return genotype_from_dict(data)


def load_genotype(ref: str | Path | Any) -> Any:
    """A genotype from a name (``nasnet_a``), a JSON file, or a genotype.

    Files are read as JSON only (never pickled or evaluated), and may be a
    bare genotype or a run's ``best.json``.
    """
    if isinstance(ref, Genotype):
        return ref
    _load_builtin_names()
    text_ref = str(ref)
    if text_ref in _NAMED:
        return _NAMED[text_ref]
    path = Path(text_ref)
    if path.is_dir() and (path / "best.json").is_file():
        path = path / "best.json"
    if not path.is_file():
        raise GenotypeError(
            f"genotype {text_ref!r} is neither a file nor a known name; "
            f"known names: {sorted(_NAMED)}"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise GenotypeError(f"cannot read genotype file {path}: {err}") from None
    try:
        return genotype_from_json(text)
    except GenotypeError as err:
        raise GenotypeError(f"{path}: {err}") from None


def save_genotype(genotype: Any, path: str | Path) -> None:
    Path(path).write_text(genotype_to_json(genotype, indent=2) + "\n")


def _load_builtin_names() -> None:
    """Import the modules that register genotype kinds and named genotypes."""
    import nas_lightning.genotypes  # noqa: F401  (registers on import)
