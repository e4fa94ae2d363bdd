"""W&B names for the jobs of a Hydra sweep (``-m``).

A sweep's jobs should read as one comparison in W&B: every job's run goes in
one group named after the sweep's folder, and is named by the overrides that
make it different (``controller.hidden=50``) rather than by its number.
Hydra knows both only while a job runs, so they are read here from
``HydraConfig`` when a logger starts, not resolved in the YAML: a config
composed in a test or a notebook, with no Hydra job around it, still works.
"""

from __future__ import annotations

from pathlib import Path


def sweep_names() -> tuple[str | None, str | None]:
    """``(group, name)`` of this Hydra multirun job; ``(None, None)`` outside a sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None, None
        hydra = HydraConfig.get()
    except (ImportError, ValueError):
        return None, None
    if hydra.mode != RunMode.MULTIRUN:
        return None, None
    group = Path(str(hydra.sweep.dir)).name or None
    overrides = str(hydra.job.get("override_dirname") or "")
    name = overrides or f"job {hydra.job.get('num', 0)}"
    return group, name
