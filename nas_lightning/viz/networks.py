"""Whole networks: NAS-RL layer graphs with their skip connections, mobile stage charts.

A NAS-RL child is a chain of convolutions where each layer may read any
earlier layers (its anchor-point skips); layers that nobody reads are
concatenated into the classifier. The chain is drawn left to right; the
previous-layer edges are straight and the skips arc above it.

A mobile network (MnasNet, MobileNetV3) is a sequence of stages of identical
blocks; the chart gives each stage a box as wide as its layers and as tall as
its channels (log scale), labelled with its block string's parts, with the
feature map's resolution under it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nas_lightning.viz.canvas import COLORS, bare_axes, edge, new_figure, node, save, settle

_TYPE_COLORS = {"ds": "#d9ead3", "ir": "#cfe2f3", "cn": "#fce5cd"}
_ACT_NAMES = {"relu": "ReLU", "relu6": "ReLU6", "hswish": "h-swish"}


def draw_nas_rl(genotype: Any, path: str | Path, title: str | None = None) -> Path:
    """A NAS-RL network: image, conv layers, skip connections, concat -> classifier."""
    layers = genotype.layers
    n = len(layers)
    dx = 2.2
    fig = new_figure(max(5.0, 1.2 + 0.95 * (n + 2)), 2.8)
    ax = bare_axes(fig)
    ax.set_xlim(-1.0, (n + 1) * dx + 1.0)
    spans = [i - j for i, layer in enumerate(layers) for j in layer.inputs if i - j > 1]
    ax.set_ylim(-1.6, 0.9 + 0.28 * dx * max(spans, default=0))
    image = node(ax, 0.0, 0.0, "image", COLORS["input"])
    boxes = []
    for i, layer in enumerate(layers):
        text = (f"L{i}\n{layer.filter_height}x{layer.filter_width}\n{layer.filters} ch"
                + (f"\ns{layer.stride}" if layer.stride != 1 else ""))
        boxes.append(node(ax, (i + 1) * dx, 0.0, text, COLORS["state"], fontsize=7))
    head = node(ax, (n + 1) * dx, 0.0, "concat\npool\nfc", COLORS["output"], fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    settle(ax)
    for i, layer in enumerate(layers):
        here = ((i + 1) * dx, 0.0)
        if not layer.inputs:
            edge(ax, (0.0, 0.0), here, image, boxes[i], rad=0.0 if i == 0 else -0.35)
        for j in layer.inputs:
            skip = i - j > 1
            edge(ax, ((j + 1) * dx, 0.0), here, boxes[j], boxes[i],
                 rad=-0.35 if skip else 0.0, color=COLORS["skip"] if skip else COLORS["edge"])
    for j in genotype.outputs:
        last = j == n - 1
        edge(ax, ((j + 1) * dx, 0.0), ((n + 1) * dx, 0.0), boxes[j], head,
             rad=0.0 if last else 0.3, color="0.55", lw=0.7, style="--")
    return save(fig, path)


def _stage_text(stage: Any, genotype: Any) -> str:
    parts = [f"{stage.type} x{stage.repeats}", f"k{stage.kernel}"]
    if stage.type == "ir":
        parts.append(f"e{stage.expansion:g}")
    lines = [parts[0], " ".join(parts[1:]), f"{stage.out_channels} ch"]
    if stage.se_ratio > 0:
        lines.append(f"SE {stage.se_ratio:g}")
    lines.append(_ACT_NAMES[genotype.resolve(stage.activation)])
    if not stage.skip and stage.type != "cn":
        lines.append("no skip")
    return "\n".join(lines)


def draw_mobile(
    genotype: Any, path: str | Path, title: str | None = None, resolution: int = 224
) -> Path:
    """A mobile network as a chart: stem, one box per stage, head.

    ``resolution`` is the input's side in pixels (the children's images in a
    search, 224 for ImageNet); the chart's title says which one it used.
    """
    from matplotlib.patches import FancyBboxPatch

    stages = genotype.stages
    widths = [0.9 + 0.35 * s.repeats for s in stages]
    fig = new_figure(max(6.0, 0.6 * (sum(widths) + 0.25 * len(widths) + 2.4)), 3.6)
    ax = fig.add_subplot()
    ax.set_axis_off()

    def height(channels: int) -> float:
        return 0.6 + 0.45 * math.log2(max(channels, 8) / 8)

    def box(x: float, w: float, channels: int, color: str, text: str, res: int | None,
            stride: int) -> None:
        h = height(channels)
        style = "round,pad=0.02,rounding_size=0.08"
        ax.add_patch(FancyBboxPatch((x, -h / 2), w, h, boxstyle=style, fc=color, ec="0.3",
                                    lw=0.8))
        ax.text(x + w / 2, 0.0, text, ha="center", va="center", fontsize=6.5)
        if res is not None:
            under = f"{res}x{res}" + (f"\ns{stride}" if stride > 1 else "")
            ax.text(x + w / 2, -h / 2 - 0.2, under, ha="center", va="top", fontsize=6,
                    color="0.35")

    x, res = 0.0, resolution
    res = math.ceil(res / genotype.stem_stride)
    box(x, 0.9, genotype.stem_channels, "#eeeeee",
        f"stem\n3x3\n{genotype.stem_channels} ch", res, genotype.stem_stride)
    x += 0.9 + 0.25
    for stage, w in zip(stages, widths, strict=True):
        res = math.ceil(res / stage.stride)
        box(x, w, stage.out_channels, _TYPE_COLORS[stage.type], _stage_text(stage, genotype),
            res, stage.stride)
        x += w + 0.25
    head = "pool\n1x1 conv" if genotype.efficient_head else "1x1 conv\npool"
    box(x, 1.0, genotype.head_channels, "#d9d2e9", f"{head}\n{genotype.head_channels} ch\nfc",
        None, 1)
    x += 1.0
    top = height(max([genotype.head_channels] + [s.out_channels for s in stages])) / 2
    ax.set_xlim(-0.2, x + 0.2)
    ax.set_ylim(-top - 0.9, top + 0.5)
    shapes = f"feature maps for a {resolution}x{resolution} input; box height: channels, log scale"
    ax.set_title(f"{title}\n{shapes}" if title else f"mobile network ({shapes})", fontsize=9)
    ax.text(0.0, top + 0.2, " ".join(genotype.block_strings()), fontsize=5.5, color="0.3",
            va="bottom", wrap=True)
    fig.tight_layout()
    return save(fig, path)
