"""`python -m nas_lightning.runs`: tables of runs and children from run folders alone."""

from __future__ import annotations

import io
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


# -- hostile records: shown as text, never acted on; a bad folder or record is skipped --------

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[2K\x9b31m"
MARKUP = "[link=http://evil.example]click[/link] [/] [bold]"


def test_record_text_is_shown_not_acted_on(tmp_path, capsys):
    from nas_lightning.runs.__main__ import render

    run = make_run(tmp_path / "run", [0.5, None])
    lines = (run / "children.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["error"] = f"boom {ESCAPES} {MARKUP}"
    bad["genotype"] = {"kind": "custom", "name": ESCAPES + MARKUP}
    (run / "children.jsonl").write_text(lines[0] + "\n" + json.dumps(bad) + "\n")
    main(["show", str(run), "--genotype"])
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\x9b")
    assert "\\x1b]0;owned\\x07" in out and MARKUP in out
    # the rich table (a terminal): markup in a record is text, not links or a MarkupError
    rows = [{"error": bad["error"], "genotype": ESCAPES + MARKUP}]
    buffer = io.StringIO()
    render(rows, ["error", "genotype"], f"title {MARKUP} {ESCAPES}", plain=False, out=buffer)
    text = buffer.getvalue()
    assert not any(c in text for c in "\x1b\x07\x9b")
    assert "[/]" in text and "[link=http://evil.example]" in text.replace("\n", "")


def test_a_malformed_genotype_shows_a_placeholder(tmp_path, capsys):
    from nas_lightning.runs import MALFORMED, genotype_text

    run = make_run(tmp_path / "run", [0.5, 0.6])
    lines = (run / "children.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    record["genotype"] = {"kind": "nasnet", "normal": {"blocks": [{"ops": "x", "inputs": [0]}]}}
    (run / "children.jsonl").write_text(lines[0] + "\n" + json.dumps(record) + "\n")
    main(["show", str(run), "--genotype"])
    out = capsys.readouterr().out
    assert MALFORMED in out and "ir_r1" in out
    for genotype in ({"kind": "nasnet", "normal": {"blocks": [{"ops": ["a"], "inputs": [0]}]}},
                     {"kind": "nasnet", "normal": []}, {"kind": "mobile", "stages": "ir"},
                     {"kind": "nas_rl", "layers": 3}):
        assert isinstance(genotype_text(genotype), str)


def test_odd_folders_and_records_are_skipped_with_one_warning(tmp_path, capsys):
    root = tmp_path / "runs"
    good = make_run(root / "a-good", [0.5, 0.7])
    utf = make_run(root / "b-utf8", [0.4, 0.3])
    with (utf / "children.jsonl").open("ab") as f:
        f.write(b'{"index": 2, "status": "ok", "error": "\xff\xfe"}\n')
    (make_run(root / "c-config", [0.2]) / "config.yaml").write_bytes(
        b"search: {num_children: 1}\nstrategy: \xff\n")
    listed = make_run(root / "d-extra", [0.1, 0.8])
    lines = (listed / "children.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["extra"] = ["latency", 3]
    (listed / "children.jsonl").write_text(json.dumps(record) + "\n" + lines[1] + "\n")
    main(["list", str(root)])
    captured = capsys.readouterr()
    rows = captured.out.splitlines()[1:]
    names = ["a-good", "b-utf8", "c-config", "d-extra"]
    assert [r.split()[0].rsplit("/", 1)[-1] for r in rows] == names
    assert [r.split()[3] for r in rows] == ["2", "2", "1", "1"]  # the bad records left out
    warnings = captured.err.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "d-extra: 1 malformed record(s)" in warnings[0]
    main(["show", str(utf)])
    assert "1 unreadable line(s)" in capsys.readouterr().out
    main(["show", str(good)])  # unaffected


def test_one_unreadable_folder_does_not_stop_list(runs, monkeypatch, capsys):
    import nas_lightning.runs.__main__ as cli

    root, a, *_ = runs
    real = cli.load_run

    def load(path):
        if Path(path).resolve() == a.resolve():
            raise RuntimeError("odd\nfolder")
        return real(path)

    monkeypatch.setattr(cli, "load_run", load)
    main(["list", str(root)])
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 2
    [warning] = captured.err.splitlines()
    assert warning.startswith("warning: ") and "skipped" in warning and "RuntimeError" in warning
