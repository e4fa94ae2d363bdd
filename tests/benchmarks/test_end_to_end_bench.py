"""benchmarks/end_to_end.py: the verdict arithmetic, and a tiny comparison in two lanes."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from conftest import ROOT, TINY

sys.path.insert(0, str(ROOT / "benchmarks"))  # spawned lanes import the script by name

import end_to_end as e2e  # noqa: E402

RANDOM = ["random_0", "random_1", "random_2"]


def _final(cell: str, acc: float, seed: int = 0, steps: int | None = None) -> dict:
    return {"job": "final", "cell": cell, "seed": seed, "status": "ok", "test_acc": acc,
            "steps": steps}


def _search(method: str, seed: int) -> dict:
    return {"job": "search", "method": method, "seed": seed, "status": "ok", "children": 5,
            "epochs_trained": 9, "best_reward": 0.7, "best_final_reward": None}


def test_picks_are_compared_with_the_random_median_and_one_cells_spread() -> None:
    args = e2e.parse_args(["--seeds", "0", "1", "--random", "3", "--spread-seeds", "3"])
    records = [
        _final("random_0", 0.80), _final("random_0", 0.82, seed=1),
        _final("random_0", 0.81, seed=2),                          # mean 0.81, range 0.02
        _final("random_1", 0.85), _final("random_2", 0.90),        # median: 0.85
        _search("asha", 0), _search("asha", 1),
        _final("pick_asha_0", 0.88), _final("pick_asha_1", 0.86),   # +0.03, +0.01
        _search("random", 0), _final("pick_random_0", 0.84),        # -0.01; seed 1 missing
    ]
    summary = e2e.summarize(records, args, RANDOM)
    assert summary["random_median"] == pytest.approx(0.85)
    assert summary["random_cells"]["random_0"] == pytest.approx(0.81)
    assert "pick_asha_0" not in summary["random_cells"]
    assert summary["spread"]["range"] == pytest.approx(0.02)
    assert summary["noise"]["dof"] == 2 and summary["noise"]["std"] == pytest.approx(0.01)
    asha = summary["methods"]["asha"]
    assert [r["margin"] for r in asha["rows"]] == pytest.approx([0.03, 0.01])
    assert asha["beats_median"] == 2 and asha["beats_by_spread"] == 1
    assert [r["random_beaten"] for r in asha["rows"]] == [2, 2]
    assert asha["rows"][0]["search_reward"] == 0.7  # no rungs: the reward itself
    rand = summary["methods"]["random"]
    assert rand["beats_median"] == 0 and rand["rows"][1]["status"] == "missing"
    assert rand["rows"][1]["test_acc"] is None
    assert summary["methods"]["default"]["mean_test_acc"] is None
    table = e2e.markdown({"settings": e2e.settings(args), "summary": summary, "command": "c",
                          "machine": "m", "lanes": 2, "loadavg_before": [0.0],
                          "loadavg_after": [0.0], "date": "d", "wall_seconds": 60})
    assert "| asha | 0 | 5 | 9 | 0.7000 | 0.8800 | 0.8800 | +0.0300 | 2/3 |" in table
    assert "| asha | 0.8700 | +0.0200 | 2/2 | 1/2 |" in table


def test_a_pick_trained_with_several_seeds_is_scored_by_the_mean_of_its_runs() -> None:
    records = [
        _final("random_0", 0.80), _final("random_1", 0.85), _final("random_2", 0.90),
        _search("asha", 0),
        _final("pick_asha_0", 0.88, steps=300), _final("pick_asha_0", 0.84, seed=1, steps=200),
        _final("pick_asha_0", 0.70, seed=2),   # beyond --pick-seeds 2: not counted
    ]
    args = e2e.parse_args(["--seeds", "0", "--random", "3", "--pick-seeds", "2"])
    row = e2e.summarize(records, args, RANDOM)["methods"]["asha"]["rows"][0]
    assert row["test_accs"] == pytest.approx([0.88, 0.84]) and row["steps"] == [300, 200]
    assert row["test_acc"] == pytest.approx(0.86) and row["margin"] == pytest.approx(0.01)
    assert row["random_beaten"] == 2
    one = e2e.summarize(records, e2e.parse_args(["--seeds", "0", "--random", "3"]), RANDOM)
    assert one["methods"]["asha"]["rows"][0]["test_acc"] == pytest.approx(0.88)
    summary = e2e.summarize(records, args, RANDOM)
    table = e2e.markdown({"settings": e2e.settings(args), "summary": summary, "command": "c",
                          "machine": "m", "lanes": 2, "loadavg_before": [0.0],
                          "loadavg_after": [0.0], "date": "d", "wall_seconds": 60})
    assert ("| asha | 0 | 5 | 9 | 0.7000 | 0.8600 | 0.8800 (300), 0.8400 (200) | +0.0100 | 2/3 |"
            in table)
    assert "| random_0 | 0.8000 | 0.8000 |" in table  # no steps recorded
    assert ("Each pick trained with 2 seeds, each random cell with 1; a cell's test acc is the "
            "mean of its runs.") in table
    # More seeds reuse every recorded job: the options are not part of the settings.
    assert e2e.settings(args) == e2e.settings(e2e.parse_args(["--seeds", "0", "--random", "3"]))


def test_random_cells_trained_with_several_seeds_and_the_pooled_noise() -> None:
    records = [
        _final("random_0", 0.80), _final("random_0", 0.84, seed=1),   # mean 0.82
        _final("random_1", 0.86), _final("random_1", 0.86, seed=1),   # mean 0.86
        _final("random_2", 0.90), _final("random_2", 0.70, seed=3),   # seed 3: not counted
        _search("asha", 0), _final("pick_asha_0", 0.87), _final("pick_asha_0", 0.85, seed=1),
    ]
    args = e2e.parse_args(["--seeds", "0", "--random", "3", "--random-seeds", "2",
                           "--pick-seeds", "2", "--spread-seeds", "1"])
    summary = e2e.summarize(records, args, RANDOM)
    assert summary["random_cells"] == pytest.approx(
        {"random_0": 0.82, "random_1": 0.86, "random_2": 0.90})
    assert summary["random_median"] == pytest.approx(0.86)
    assert summary["methods"]["asha"]["rows"][0]["margin"] == pytest.approx(0.0)
    # Within-cell deviations only: random_0 +-0.02, random_1 0, pick +-0.01; 3 dof.
    noise = summary["noise"]
    assert noise["cells"] == 3 and noise["dof"] == 3
    assert noise["std"] == pytest.approx(((2 * 0.02 ** 2 + 2 * 0.01 ** 2) / 3) ** 0.5)
    assert e2e.pooled_noise([[0.5]])["std"] is None


def test_bad_arguments_are_refused() -> None:
    for argv in (["--search-minutes", "0"], ["--lanes", "0"], ["--random", "0"],
                 ["--pick-seeds", "0"], ["--random-seeds", "0"]):
        with pytest.raises(SystemExit):
            e2e.parse_args(argv)


def test_searches_are_reused_from_another_file_by_their_search_settings(tmp_path) -> None:
    key = e2e.settings(e2e.parse_args(["--search-minutes", "30", "--final-set",
                                       "recipe.minutes=null", "recipe.epochs=2"]))
    timed = e2e.settings(e2e.parse_args(["--search-minutes", "30"]))  # other finals
    shorter = e2e.settings(e2e.parse_args(["--search-minutes", "6"]))
    lines = [
        {**_search("default", 0), "settings": timed, "run_dir": "first"},
        {**_search("default", 0), "settings": timed, "run_dir": "second"},
        {**_search("asha", 0), "settings": shorter},
        {**_search("random", 1), "settings": timed, "status": "failed"},
        {**_final("pick_default_0", 0.9), "settings": timed},
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"job": "sea')
    reused = e2e.reused_searches(path, key)
    assert [(r["method"], r["seed"], r["run_dir"]) for r in reused] == [("default", 0, "first")]
    with pytest.raises(SystemExit):
        e2e.parse_args(["--searches-from", str(tmp_path / "missing.jsonl")])


def test_a_pick_is_trained_from_the_genotype_recorded_with_its_search(tmp_path) -> None:
    from nas_lightning.genotypes.base import genotype_to_dict, load_genotype, named_genotypes

    cell = named_genotypes()["nasnet_a"]
    search = {**_search("asha", 2), "run_dir": str(tmp_path / "gone"),
              "genotype": genotype_to_dict(cell)}
    ref = e2e.pick_ref(search, tmp_path / "genotypes")
    assert ref == str(tmp_path / "genotypes" / "pick_asha_2.json")
    assert load_genotype(ref) == cell  # the run folder is not read
    # A record from before genotypes were recorded falls back to its run folder.
    assert e2e.pick_ref({**_search("asha", 2), "run_dir": "old"}, tmp_path) == "old"


@pytest.mark.slow
def test_tiny_comparison_in_two_lanes_and_rerun_skips_done_jobs(tmp_path) -> None:
    args = ["--search-minutes", "0.02", "--final-minutes", "0.01", "--seeds", "0",
            "--random", "1", "--spread-seeds", "2", "--dataset", "embedded",
            "--train-subset", "256", "--val-size", "64",
            "--set", *[o for o in TINY if not o.startswith(("logger=", "search.num_children="))],
            "search.reuse_limit=2",
            # finals of fixed epochs, not wall time: every run trains the same steps
            "--final-set", "model.filters=4", "trainer.limit_test_batches=1",
            "recipe.minutes=null", "recipe.epochs=1",
            "--out", str(tmp_path / "e2e"), "--runs-dir", str(tmp_path / "runs")]
    result = e2e.main(args)
    jobs = result["jobs"]
    assert {(j["job"], j.get("method", j.get("cell"))) for j in jobs} == {
        ("search", "default"), ("search", "asha"), ("search", "random"),
        ("final", "pick_default_0"), ("final", "pick_asha_0"), ("final", "pick_random_0"),
        ("final", "random_0")}
    assert all(j["status"] == "ok" for j in jobs), jobs
    finals = [j for j in jobs if j["job"] == "final"]
    assert all(j["epochs"] == 1 and j["steps"] == 2 for j in finals), finals  # 256 images
    assert len(result["summary"]["spread"]["test_accs"]) == 2  # random_0 at seeds 0 and 1
    saved = json.loads((tmp_path / "e2e.json").read_text())
    assert saved["summary"]["random_median"] == result["summary"]["random_median"]
    assert "| random | 0 |" in (tmp_path / "e2e.md").read_text()
    lines = (tmp_path / "e2e.runs.jsonl").read_text().splitlines()
    # A rerun with the same settings runs nothing again.
    e2e.main(args)
    assert len((tmp_path / "e2e.runs.jsonl").read_text().splitlines()) == len(lines)
    # A second seed of the picks trains the three picks again and nothing else.
    again = e2e.main([*args, "--pick-seeds", "2"])
    new = [json.loads(x) for x in (tmp_path / "e2e.runs.jsonl").read_text().splitlines()]
    assert sorted((j["cell"], j["seed"]) for j in new[len(lines):]) == [
        ("pick_asha_0", 1), ("pick_default_0", 1), ("pick_random_0", 1)]
    assert all(len(r["test_accs"]) == 2 for m in again["summary"]["methods"].values()
               for r in m["rows"])
    # The same searches, finals trained afresh into another file: no search runs again,
    # and the picks come from the genotypes recorded with them, not their run folders.
    for folder in (tmp_path / "runs").glob("*/search_*"):
        shutil.rmtree(folder)
    other = [*args[:-4], "--out", str(tmp_path / "e2e_b"), "--runs-dir", str(tmp_path / "runs"),
             "--searches-from", str(tmp_path / "e2e.runs.jsonl")]
    e2e.main(other)
    trained = [json.loads(x) for x in (tmp_path / "e2e_b.runs.jsonl").read_text().splitlines()]
    assert sorted((j["job"], j["cell"], j["seed"]) for j in trained) == [
        ("final", "pick_asha_0", 0), ("final", "pick_default_0", 0),
        ("final", "pick_random_0", 0), ("final", "random_0", 0), ("final", "random_0", 1)]
    assert all(j["status"] == "ok" for j in trained), trained
