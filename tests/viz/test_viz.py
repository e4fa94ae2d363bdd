"""Pictures: every space's architectures draw to valid PNGs; a search leaves its pictures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from nas_lightning.genotypes import genotype_to_dict, named_genotypes
from nas_lightning.spaces import MobileSpace, NASNetSpace, NASRLSpace
from nas_lightning.viz import ARCHITECTURE_PNG, CURVE_PNG, draw_architecture, draw_search
from nas_lightning.viz import report as report_mod
from nas_lightning.viz.cells import layout, short_op, state_depths
from nas_lightning.viz.curves import plot_search_curve, running_best, search_curve_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        # Not a blank canvas: something was drawn.
        assert len(set(image.convert("L").getdata())) > 10


@pytest.mark.parametrize("name", ["nasnet_a", "mnasnet_a1", "mobilenetv3_small",
                                  "mobilenetv3_large"])
def test_named_genotypes_draw(tmp_path, name):
    path = draw_architecture(named_genotypes()[name], tmp_path / f"{name}.png", title=name)
    assert_png(path)


@pytest.mark.parametrize("space", [NASNetSpace(), NASRLSpace(num_layers=8),
                                   NASRLSpace(num_layers=4, strides=[1, 2, 3]), MobileSpace()],
                         ids=["nasnet", "nas_rl", "nas_rl_strides", "mobile"])
def test_sampled_architectures_of_every_space_draw(tmp_path, space):
    rng = random.Random(0)
    for i in range(3):
        genotype = space.decode(space.sample(rng))
        # Drawn from the JSON form, as the run folder stores it.
        assert_png(draw_architecture(genotype_to_dict(genotype), tmp_path / f"{i}.png"))


def test_cell_layout_follows_the_data_flow():
    cell = named_genotypes()["nasnet_a"].reduction
    depth = state_depths(cell)
    assert depth[:2] == [0, 0]
    for b, block in enumerate(cell.blocks):  # a block sits right of both its inputs
        assert depth[b + 2] > max(depth[block.input_a], depth[block.input_b])
    pos, out = layout(cell)
    assert len(set(pos.values())) == len(pos)  # no two states on one spot
    assert out[0] > max(x for x, _ in pos.values())
    assert short_op("sep_conv_5x5") == "sep 5x5" and short_op("identity") == "id"


def test_genotypes_without_a_drawing_are_skipped(tmp_path):
    assert draw_architecture({"op": "conv3", "width": 16}, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_running_best():
    assert running_best([None, 0.2, 0.1, None, 0.5, 0.4]) == [None, 0.2, 0.2, 0.2, 0.5, 0.5]


def _records():
    out = []
    for i in range(12):
        failed = i == 4
        acc = 0.3 + 0.03 * i
        out.append({"index": i, "status": "failed" if failed else "ok",
                    "reward": None if failed else acc ** 3, "val_acc": None if failed else acc})
    return out


def test_reward_curve_with_failures_and_baseline(tmp_path):
    records = _records()
    baselines = {r["index"]: 0.02 * r["index"] for r in records}
    assert_png(plot_search_curve(records, tmp_path / CURVE_PNG, baselines))
    assert_png(plot_search_curve(records[:1], tmp_path / "one.png"))


def test_reward_curve_legend_sits_beside_the_points(tmp_path):
    records = _records()
    fig = search_curve_figure(records, {r["index"]: 0.02 * r["index"] for r in records})
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # it can hide no point
    assert legend.x1 <= fig.bbox.x1  # and is not cut off
    assert len(legend_texts := [t.get_text() for t in ax.get_legend().get_texts()]) >= 3
    assert "best so far" in legend_texts


class _ImageLogger:
    def __init__(self):
        self.images = {}

    def log_image(self, name, path):
        self.images[name] = Path(path)


def test_draw_search_writes_and_logs_both_pictures(tmp_path):
    records = _records()
    best = {**records[-1], "genotype": genotype_to_dict(named_genotypes()["nasnet_a"])}
    logger = _ImageLogger()
    out = draw_search(tmp_path, records, best, {0: 0.1, 1: 0.2}, logger)
    assert set(out) == {"reward_curve", "best_architecture"} == set(logger.images)
    assert_png(tmp_path / CURVE_PNG)
    assert_png(tmp_path / ARCHITECTURE_PNG)


def test_a_failing_drawing_warns_and_keeps_the_others(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ValueError("no room")

    monkeypatch.setitem(report_mod.DRAWERS, "nasnet", broken)
    best = {"index": 0, "reward": 0.5,
            "genotype": genotype_to_dict(named_genotypes()["nasnet_a"])}
    out = draw_search(tmp_path, _records(), best)
    assert set(out) == {"reward_curve"}
    assert "could not draw best_architecture: ValueError: no room" in caplog.text


def test_search_leaves_pictures_in_the_run_folder_and_the_offline_wandb_run(
        tiny_search_cfg, tmp_path, monkeypatch):
    from nas_lightning.search.loop import run_search

    monkeypatch.setenv("WANDB_MODE", "offline")
    run_search(tiny_search_cfg("logger=wandb", "search.num_children=3"))
    run = tmp_path / "run"
    assert_png(run / CURVE_PNG)
    assert_png(run / ARCHITECTURE_PNG)
    media = list((run / "wandb").glob("offline-run-*/files/media/images/*.png"))
    names = sorted(p.name.split("_")[0] for p in media)
    assert any(n.startswith("reward") for n in names), names
    assert any(n.startswith("best") for n in names), names
    best = json.loads((run / "best.json").read_text())
    assert best["genotype"]["kind"] == "nasnet"


def _labels_on_other_edges(cell, fixed: bool = False) -> int:
    """How many op labels have a point of another edge inside their box."""
    from nas_lightning.viz.canvas import curve_point
    from nas_lightning.viz.cells import label_clearance, plan_cell

    plan = plan_cell(cell)
    curves = [[curve_point(plan.pos[s], plan.out if d is None else plan.pos[d], rad, t / 40)
               for t in range(1, 40)] for s, d, _, rad in plan.edges]
    crossed = 0
    for k, ((src, dst, _, rad), at) in enumerate(zip(plan.edges, plan.label_at, strict=True)):
        if at is None:
            continue
        if fixed:  # the old rule: alternate two points along the edges
            at = 0.7 if k % 2 == 0 else 0.45
        point = curve_point(plan.pos[src], plan.pos[dst], rad, at)
        others = [q for j, curve in enumerate(curves) if j != k for q in curve]
        crossed += label_clearance(point, others) < 1
    return crossed


def test_edge_labels_keep_off_the_other_edges():
    nasnet_a = named_genotypes()["nasnet_a"]
    for cell in (nasnet_a.normal, nasnet_a.reduction):
        assert _labels_on_other_edges(cell) <= 1 < _labels_on_other_edges(cell, fixed=True)
    space, rng = NASNetSpace(), random.Random(0)
    cells = [c for _ in range(20) for c in
             (lambda g: (g.normal, g.reduction))(space.decode(space.sample(rng)))]
    placed = sum(_labels_on_other_edges(c) for c in cells)
    fixed = sum(_labels_on_other_edges(c, fixed=True) for c in cells)
    assert placed * 4 <= fixed, (placed, fixed)


def test_mobile_chart_names_the_input_size(tmp_path):
    from nas_lightning.viz.networks import draw_mobile

    genotype = named_genotypes()["mnasnet_a1"]
    assert_png(draw_architecture(genotype, tmp_path / "a.png", "best", image_size=28))
    import matplotlib.figure

    titles = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        titles.append(fig.axes[0].get_title())
        return original(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "savefig", spy)
        draw_mobile(genotype, tmp_path / "b.png", "best", resolution=28)
        draw_architecture(genotype, tmp_path / "c.png")
    assert "28x28 input" in titles[0] and "best" in titles[0]
    assert "224x224 input" in titles[1]


def test_reward_curve_of_a_multi_fidelity_search_names_the_rungs():
    from nas_lightning.viz.curves import search_curve_figure

    def rec(i, reward, acc, rung):
        return {"index": i, "status": "ok", "reward": reward, "val_acc": acc,
                "rung": rung, "final_reward": acc, "val_curve": [reward] * (3 if rung else 1)}

    fig = search_curve_figure([rec(0, 0.6, 0.8, 1), rec(1, 0.7, 0.7, 0), rec(2, 0.65, 0.85, 1)])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["reward at the first rung", "accuracy at the top rung",
                      "accuracy where it stopped", "best at the top rung so far"]
    assert ax.get_title() == "3 children, best reward 0.8500 (child 2, top rung)"
