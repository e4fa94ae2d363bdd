"""benchmarks/train_fashion_mnist.py: the train.py config it composes, and its results table."""

from __future__ import annotations

import pytest
from conftest import load_benchmark

bench = load_benchmark("train_fashion_mnist")


def test_defaults_are_the_preset_with_the_fit_inside_the_budget(tmp_path) -> None:
    args = bench.parse_args([])
    cfg = bench.compose(args, tmp_path)
    assert cfg.recipe.minutes == pytest.approx(args.minutes - args.reserve)
    assert args.minutes <= 60 and cfg.recipe.minutes < args.minutes
    assert cfg.model.filters == 16 and cfg.model.stem_stride == 2  # the preset's stacking
    assert cfg.dataset._target_.endswith("FashionMNIST") and cfg.dataset.download is False
    assert cfg.num_threads == args.threads and str(cfg.run_dir) == str(tmp_path)


def test_flags_override_the_preset(tmp_path) -> None:
    args = bench.parse_args(["--minutes", "20", "--reserve", "2", "--filters", "8",
                             "--stem-stride", "1", "--lr", "0.05", "--no-channels-last",
                             "--override", "recipe.drop_path=0.1"])
    cfg = bench.compose(args, tmp_path)
    assert cfg.recipe.minutes == pytest.approx(18.0)
    assert (cfg.model.filters, cfg.model.stem_stride) == (8, 1)
    assert cfg.recipe.optimizer.lr == 0.05 and cfg.recipe.channels_last is False
    assert cfg.recipe.drop_path == 0.1


def test_reserve_must_leave_a_fit(capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--minutes", "2", "--reserve", "3"])
    assert "--reserve" in capsys.readouterr().err


def test_markdown_keeps_an_older_table_and_starts_a_new_one(tmp_path) -> None:
    md = tmp_path / "r.md"
    md.write_text("| date | test acc | wall |\n|---|---|---|\n| old | 0.9 | 1 |\n")
    result = {"date": "d", "test_acc": 0.931, "wall_seconds": 3300, "epochs": 14,
              "val_curve": [0.85, 0.93], "params": 1, "macs": 2e6,
              "model": {"filters": 16, "cells_per_stage": 1, "stem_multiplier": 3,
                        "stem_stride": 2},
              "loadavg_before": [1.0], "loadavg_after": [1.2], "command": "python b.py"}
    bench._append_markdown(md, result)
    bench._append_markdown(md, result)
    text = md.read_text()
    assert text.startswith("| date | test acc | wall |\n") and "| old | 0.9 | 1 |" in text
    assert text.count("validation accuracy per epoch") == 1
    assert text.count("| d | 0.9310 | - | 55.0 min | 14 | 0.850 0.930 |") == 2
    bench._append_markdown(md, {**result, "test_acc_flip": 0.9345})
    assert "| d | 0.9310 | 0.9345 | 55.0 min |" in md.read_text()


def test_the_target_is_judged_on_the_recipes_prediction_rule() -> None:
    assert bench.headline({"test_acc": 0.92, "test_acc_flip": 0.931}) == 0.931
    assert bench.headline({"test_acc": 0.92, "test_acc_flip": None}) == 0.92
    assert bench.parse_args([]).minutes <= 60
