"""benchmarks/transfer_compare.py: the verdict arithmetic, and a tiny end-to-end comparison."""

from __future__ import annotations

import json

import pytest
from conftest import load_benchmark

tc = load_benchmark("transfer_compare")


def _run(cell: str, seed: int, acc: float | None) -> dict:
    if acc is None:
        return {"cell": cell, "seed": seed, "status": "failed", "error": "RuntimeError: x"}
    return {"cell": cell, "seed": seed, "status": "ok", "test_acc": acc, "params": 10,
            "macs": 2e6, "epochs": 3}


ROLES = {"searched": "searched", "nasnet_a": "reference", "random_0": "random",
         "random_1": "random", "random_2": "random"}


def test_verdict_compares_the_searched_mean_with_the_random_median() -> None:
    records = [
        _run("searched", 0, 0.90), _run("searched", 1, 0.92),
        _run("nasnet_a", 0, 0.95),
        _run("random_0", 0, 0.80), _run("random_0", 1, 0.84),   # mean 0.82
        _run("random_1", 0, 0.93), _run("random_1", 1, None),   # mean 0.93, one failure
        _run("random_2", 0, 0.905), _run("random_2", 1, 0.905),  # mean 0.905: the median
    ]
    summary = tc.summarize(records, ROLES)
    cells, verdict = summary["cells"], summary["verdict"]
    assert cells["searched"]["mean"] == pytest.approx(0.91)
    assert cells["searched"]["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert cells["random_1"]["runs"] == 1 and cells["random_1"]["failed"] == 1
    assert verdict["random_median"] == pytest.approx(0.905)
    assert verdict["searched_beats_random_median"] is True
    assert verdict["random_beaten"] == 2 and verdict["searched_rank"] == 3
    assert "BEATS" in verdict["text"]
    # One point lower and the searched cell falls below the median.
    records[1] = _run("searched", 1, 0.90)
    verdict = tc.summarize(records, ROLES)["verdict"]
    assert verdict["searched_beats_random_median"] is False
    assert "does NOT beat" in verdict["text"]


def test_no_verdict_without_random_runs() -> None:
    records = [_run("searched", 0, 0.9), _run("random_0", 0, None)]
    verdict = tc.summarize(records, ROLES)["verdict"]
    assert "searched_beats_random_median" not in verdict
    assert verdict["text"].startswith("No verdict")


def test_random_cells_are_reproducible_and_distinct() -> None:
    a, b = tc.random_genotypes(3, seed=1), tc.random_genotypes(3, seed=1)
    assert a == b and len({str(g) for g in a}) == 3
    assert a != tc.random_genotypes(3, seed=2)


@pytest.mark.slow
def test_tiny_comparison_end_to_end_and_rerun_skips_done_runs(tmp_path) -> None:
    args = ["--minutes", "0.01", "--random", "1", "--seeds", "1", "--dataset", "embedded",
            "--train-subset", "64", "--val-size", "64", "--threads", "1",
            "--override", "model.filters=4", "--override", "trainer.limit_test_batches=1",
            # one epoch, not wall time: every run trains, however slow the machine
            "--override", "recipe.minutes=null", "--override", "recipe.epochs=1",
            "--override", "recipe.batch_size=32",
            "--out", str(tmp_path / "cmp"), "--runs-dir", str(tmp_path / "runs")]
    result = tc.main(args)
    assert set(result["summary"]["cells"]) == {"searched", "nasnet_a", "random_0"}
    assert all(r["status"] == "ok" for r in result["runs"]), result["runs"]
    assert all(0.0 <= r["test_acc"] <= 1.0 and r["epochs"] == 1 and r["steps"] == 2
               for r in result["runs"]), [(r["epochs"], r["steps"]) for r in result["runs"]]
    assert "searched_beats_random_median" in result["summary"]["verdict"]
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert saved["summary"]["verdict"]["text"] in (tmp_path / "cmp.md").read_text()
    lines = (tmp_path / "cmp.runs.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # A rerun with the same settings trains nothing again.
    again = tc.main(args)
    assert len((tmp_path / "cmp.runs.jsonl").read_text().splitlines()) == 3
    assert again["summary"]["cells"] == result["summary"]["cells"]
