"""benchmarks/two_workers.py: the ratio arithmetic, and a tiny run of both phases."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))  # spawned workers import the script by name

import two_workers  # noqa: E402


def test_the_ratio_counts_both_children_of_a_pair_against_one_single_child() -> None:
    rows = [
        {"round": 0, "phase": "single", "seconds": 4.0},
        {"round": 0, "phase": "pair", "seconds": 5.0},
        {"round": 0, "phase": "pair", "seconds": 6.0},   # the pair's wall: the slower one
        {"round": 1, "phase": "single", "seconds": 5.0},
        {"round": 1, "phase": "pair", "seconds": 5.0},
        {"round": 1, "phase": "pair", "seconds": 5.0},
        {"round": 2, "phase": "single", "seconds": 5.0},  # a round cut short: left out
    ]
    assert two_workers.ratio_per_round(rows) == pytest.approx([2 / 6 * 4, 2.0])


@pytest.mark.slow
def test_a_tiny_run_trains_in_two_warm_workers(tmp_path) -> None:
    out = tmp_path / "two"
    result = two_workers.main(["--tiny", "--budget", "1", "--out", str(out)])
    rows = result["rows"]
    assert [r["phase"] for r in rows] == ["single", "pair", "pair"]
    assert result["meta"]["worker_processes"] == 2  # each child of the pair in its own process
    assert len({r["pid"] for r in rows if r["phase"] == "pair"}) == 2
    pair = [r["val_acc"] for r in rows if r["phase"] == "pair"]
    assert pair[0] == pair[1]  # the same seeded child on one thread each
    assert "pair / single" in out.with_suffix(".md").read_text()
