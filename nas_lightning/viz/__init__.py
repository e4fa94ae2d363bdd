"""Pictures of a search and of architectures, written into run folders.

- ``reward_curve.png``: reward per child, best so far, controller baseline.
- ``best_architecture.png``: the best child drawn by its kind: NASNet normal
  and reduction cells as graphs, a NAS-RL network with its skips, a mobile
  network as a stage chart.

Pure matplotlib on an Agg canvas: nothing beyond the package's dependencies,
no display needed.
"""

from nas_lightning.viz.report import (
    ARCHITECTURE_PNG,
    CURVE_PNG,
    draw_architecture,
    draw_search,
    save_architecture,
)

__all__ = ["ARCHITECTURE_PNG", "CURVE_PNG", "draw_architecture", "draw_search",
           "save_architecture"]
