"""Which picture an architecture gets, and the pictures a finished search leaves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas_lightning.genotypes.base import Genotype
from nas_lightning.viz.cells import draw_nasnet
from nas_lightning.viz.curves import plot_search_curve
from nas_lightning.viz.networks import draw_mobile, draw_nas_rl

log = logging.getLogger("nas_lightning.viz")

CURVE_PNG = "reward_curve.png"
ARCHITECTURE_PNG = "best_architecture.png"

DRAWERS: dict[str, Callable[..., Path]] = {
    "nasnet": draw_nasnet,
    "nas_rl": draw_nas_rl,
    "mobile": draw_mobile,
}


def draw_architecture(genotype: Any, path: str | Path, title: str | None = None,
                      image_size: int | None = None) -> Path | None:
    """Draw a genotype (object or its JSON dict) by its kind; None for kinds with no drawing.

    ``image_size``: the input's side in pixels, for drawings that show feature
    map shapes (mobile networks; default: their own, 224).
    """
    if isinstance(genotype, dict):
        if genotype.get("kind") not in DRAWERS:
            return None
        from nas_lightning.genotypes import genotype_from_dict

        genotype = genotype_from_dict(genotype)
    drawer = DRAWERS.get(genotype.kind) if isinstance(genotype, Genotype) else None
    if drawer is None:
        return None
    if image_size is not None and drawer is draw_mobile:
        return draw_mobile(genotype, path, title=title, resolution=int(image_size))
    return drawer(genotype, path, title=title)


def save_architecture(genotype: Any, path: str | Path, title: str | None = None,
                      image_size: int | None = None) -> Path | None:
    """:func:`draw_architecture` that warns instead of raising (for run folders)."""
    try:
        return draw_architecture(genotype, path, title, image_size)
    except Exception as err:  # noqa: BLE001 - a drawing must not cost the run
        log.warning("could not draw %s: %s: %s", path, type(err).__name__, err)
        return None


def draw_search(
    run_dir: str | Path,
    records: Sequence[dict[str, Any]],
    best: dict[str, Any] | None,
    baselines: Mapping[int, float] | None = None,
    logger: Any = None,
    image_size: int | None = None,
) -> dict[str, Path]:
    """Write the search's pictures into ``run_dir`` and hand them to ``logger.log_image``.

    ``image_size``: the side of the children's input images, for drawings that
    show feature map shapes.

    A picture that fails is reported as a warning and skipped: a search's
    records and summary matter more than its drawings.
    """
    run_dir = Path(run_dir)
    out: dict[str, Path] = {}
    jobs: list[tuple[str, Callable[[], Path | None]]] = []
    if records:
        jobs.append(("reward_curve", lambda: plot_search_curve(
            records, run_dir / CURVE_PNG, baselines)))
    if best is not None and isinstance(best.get("genotype"), dict):
        title = f"best child {best['index']}, reward {best['reward']:.4f}"
        jobs.append(("best_architecture", lambda: draw_architecture(
            best["genotype"], run_dir / ARCHITECTURE_PNG, title, image_size)))
    for name, job in jobs:
        try:
            path = job()
        except Exception as err:  # noqa: BLE001 - a drawing must not cost the run
            log.warning("could not draw %s: %s: %s", name, type(err).__name__, err)
            continue
        if path is None:
            continue
        out[name] = path
        if logger is not None:
            try:
                logger.log_image(name, path)
            except Exception as err:  # noqa: BLE001 - same: the file is already written
                log.warning("could not log %s: %s: %s", name, type(err).__name__, err)
    return out
