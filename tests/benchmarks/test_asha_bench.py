"""benchmarks/asha.py: pooling earlier runs and the interval over seeds."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import asha  # noqa: E402


def _row(setting: str, seed: int, archs: int, best: float | None, seconds: float = 100.0):
    return {"setting": setting, "seed": seed, "architectures": archs, "search_seconds": seconds,
            "epochs_trained": 2 * archs, "top_rung_children": 1, "best_top_val_acc": best}


def test_pooled_pairs_the_seeds_that_ran_both_settings() -> None:
    rows = [_row("plain", 0, 5, 0.80), _row("asha", 0, 15, 0.82),
            _row("plain", 1, 4, 0.81, seconds=200.0), _row("asha", 1, 12, 0.80),
            _row("plain", 2, 5, 0.79), _row("asha", 2, 10, 0.80),
            _row("asha", 3, 10, 0.90),                 # no plain run: left out
            _row("plain", 4, 5, 0.80), _row("asha", 4, 9, None)]  # none at the top rung
    p = asha.pooled(rows)
    assert p["seeds"] == [0, 1, 2]
    assert p["architecture_ratios"] == pytest.approx([3.0, 6.0, 2.0])
    assert p["differences"] == pytest.approx([0.02, -0.01, 0.01])
    assert p["mean_difference"] == pytest.approx(0.02 / 3)
    lo, hi = p["difference_95"]
    assert -0.01 - 1e-9 <= lo <= p["mean_difference"] <= hi <= 0.02 + 1e-9
    assert p["at_least_as_high"] == 2
    assert "Over 3 seeds (0, 1, 2)" in asha.pooled_lines(p)[0]


def test_combine_keeps_the_first_row_and_refuses_other_budgets(tmp_path, capsys) -> None:
    meta = {"minutes": 6, "overrides": ["child.epochs=9"]}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"meta": meta, "rows": [_row("plain", 0, 5, 0.80),
                                                     _row("asha", 0, 15, 0.82)]}))
    b.write_text(json.dumps({"meta": meta, "rows": [_row("asha", 0, 1, 0.10),
                                                     _row("plain", 1, 4, 0.81),
                                                     _row("asha", 1, 12, 0.83)]}))
    asha.main(["--combine", str(a), str(b), "--out", str(tmp_path / "pooled")])
    saved = json.loads((tmp_path / "pooled.json").read_text())
    assert saved["pooled"]["differences"] == pytest.approx([0.02, 0.02])  # seed 0 from a.json
    assert "Search budget 6 min" in (tmp_path / "pooled.md").read_text()
    assert "Over 2 seeds" in capsys.readouterr().out
    c.write_text(json.dumps({"meta": {**meta, "minutes": 8}, "rows": []}))
    with pytest.raises(SystemExit, match="different budgets"):
        asha.main(["--combine", str(a), str(c), "--out", str(tmp_path / "x")])
