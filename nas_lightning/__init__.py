"""nas-lightning: neural architecture search with PyTorch Lightning and Hydra.

The Python API (imported on first use, so ``import nas_lightning`` stays fast):

* :func:`optimize`: search a space with your own evaluator in one call;
* :func:`make_strategy`: a named strategy preset, to drive with ``ask`` / ``tell``;
* :class:`ListSpace`: a space from a list of ``(name, choices)`` decisions;
* :func:`load_genotype`: a genotype from a file, a dict or a name.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "optimize": "nas_lightning.api",
    "Result": "nas_lightning.api",
    "Trial": "nas_lightning.api",
    "make_strategy": "nas_lightning.presets",
    "ListSpace": "nas_lightning.spaces",
    "load_genotype": "nas_lightning.genotypes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nas_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
