"""`python -m nas_lightning.runs`: tables of runs and children from run folders alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from nas_lightning.runs import config_differences, find_runs, load_run, run_row, status
from nas_lightning.runs.__main__ import main, sort_rows


def make_run(path: Path, rewards, budget=None, summary=True, seed=0, strategy="Reinforce",
             torn=False, extra=None) -> Path:
    path.mkdir(parents=True)
    config = {
        "seed": seed,
        "run_dir": str(path),
        "search_space": {"_target_": "nas_lightning.spaces.NASNetSpace", "num_blocks": 5},
        "strategy": {"_target_": f"nas_lightning.strategies.{strategy}", "lr": 0.00035},
        "reward": {"_target_": "nas_lightning.rewards.ValAccuracy"},
        "search": {"num_children": budget or len(rewards)},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    lines = []
    for i, reward in enumerate(rewards):
        record = {"index": i, "status": "ok" if reward is not None else "failed",
                  "reward": reward, "val_acc": reward, "params": 1000 * (i + 1),
                  "seconds": 2.0 + i, "genotype": {"kind": "mobile", "stages": [f"ir_r{i + 1}"]},
                  "extra": dict(extra or {})}
        if reward is None:
            record["error"] = "RuntimeError: boom"
        lines.append(json.dumps(record))
    text = "\n".join(lines) + "\n"
    if torn:
        text += '{"index": 99, "sta'
    (path / "children.jsonl").write_text(text)
    if summary:
        (path / "summary.json").write_text(json.dumps({"wall_seconds": 75.0 + len(rewards)}))
    return path


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs" / "search"
    a = make_run(root / "2026-01-01_10-00-00", [0.5, 0.7, None], seed=1)
    b = make_run(root / "2026-01-02_10-00-00", [0.6, 0.65], budget=5, summary=False,
                 strategy="PPO", torn=True, extra={"latency_ms": 3.5})
    sweep = root / "multirun" / "2026-01-03_10-00-00"
    c = make_run(sweep / "0", [0.2, 0.9, 0.4], seed=2)
    # Folders that only look like runs: Hydra's copy and a W&B run's config.
    (c / ".hydra").mkdir()
    (c / ".hydra" / "config.yaml").write_text((c / "config.yaml").read_text())
    wandb = c / "wandb" / "offline-run-x" / "files"
    wandb.mkdir(parents=True)
    (wandb / "config.yaml").write_text(yaml.safe_dump({"_wandb": {}, "search": {"value": 1},
                                                      "strategy": {"value": 2}}))
    return root, a, b, c


def test_find_runs_walks_folders_and_globs(runs):
    root, a, b, c = runs
    assert find_runs([str(root)]) == [a.resolve(), b.resolve(), c.resolve()]
    assert find_runs([str(root / "2026-01-0*")]) == [a.resolve(), b.resolve()]
    assert find_runs([str(a), str(a)]) == [a.resolve()]
    assert find_runs([str(root / "nothing-here")]) == []


def test_run_rows_and_status(runs):
    _, a, b, _ = runs
    row = run_row(load_run(a))
    assert row["space"] == "NASNetSpace" and row["strategy"] == "Reinforce"
    assert (row["children"], row["failed"], row["best_reward"], row["best_child"]) == (3, 1, 0.7, 1)
    assert row["wall_seconds"] == 78.0 and row["status"] == "done"
    run_b = load_run(b)
    assert run_b.torn_lines == 1 and len(run_b.children) == 2
    assert status(run_b) == "incomplete"
    assert run_row(run_b)["wall_seconds"] == 2.0 + 3.0  # no summary: the children's time


def test_list_sorts_by_any_column(runs, capsys):
    root, *_ = runs
    main(["list", str(root), "--sort", "best_reward"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "space", "strategy", "children"]
    bests = [line.split()[5] for line in lines[1:]]
    assert bests == ["0.9000", "0.7000", "0.6500"]  # best first
    main(["list", str(root), "--sort", "best_reward", "--reverse"])
    assert [ln.split()[5] for ln in capsys.readouterr().out.splitlines()[1:]] == bests[::-1]
    main(["list", str(root), "--sort", "children"])
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[3] for ln in out[1:]] == ["2", "3", "3"]
    assert "incomplete" in out[1] and "1m18s" in out[2]


def test_show_lists_children_with_extra_figures_and_errors(runs, capsys):
    _, a, b, _ = runs
    main(["show", str(a), "--sort", "reward", "--top", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert "best reward 0.7000 (child 1), done" in lines[0]
    assert lines[1].split() == ["index", "status", "reward", "val_acc", "params", "seconds"]
    assert [ln.split()[0] for ln in lines[2:]] == ["1", "0"]
    main(["show", str(a), "--genotype"])
    out = capsys.readouterr().out
    assert "RuntimeError: boom" in out and "ir_r3" in out
    main(["show", str(b)])
    out = capsys.readouterr().out
    assert "latency_ms" in out and "3.5000" in out and "1 unreadable line(s)" in out


def test_compare_shows_outcomes_and_the_config_keys_that_differ(runs, capsys):
    _, a, b, c = runs
    differing = config_differences([load_run(a), load_run(b), load_run(c)])
    assert set(differing) == {"seed", "strategy._target_", "search.num_children"}
    main(["compare", str(a), str(b), str(c), "--sort", "best_reward"])
    lines = capsys.readouterr().out.splitlines()
    header = lines[1].split()
    assert header[0] == "multirun/2026-01-03_10-00-00/0"  # best run first
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    assert rows["best_reward"] == ["0.9000", "0.7000", "0.6500"]
    assert rows["seed"] == ["2", "1", "0"]
    assert rows["strategy._target_"][2] == "nas_lightning.strategies.PPO"


def test_unknown_sort_column_and_no_runs_are_one_line_errors(runs, tmp_path):
    root, *_ = runs
    with pytest.raises(SystemExit) as err:
        sort_rows([{"a": 1}], "b")
    assert "no such column" in str(err.value.code)
    cmd = [sys.executable, "-m", "nas_lightning.runs", "list", str(tmp_path / "none")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: no search run folders found")
    assert "Traceback" not in done.stderr


def test_reads_a_real_search_folder(tiny_search_cfg, tmp_path, capsys):
    from nas_lightning.search.loop import run_search

    result = run_search(tiny_search_cfg())
    main(["show", str(tmp_path / "run"), "--sort", "reward"])
    lines = capsys.readouterr().out.splitlines()
    best = result.best
    assert f"best reward {best['reward']:.4f} (child {best['index']}), done" in lines[0]
    assert len(lines) == 2 + len(result.records)
