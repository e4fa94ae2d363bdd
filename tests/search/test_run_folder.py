"""What a run folder guarantees: torn lines, one owner, clean stops, checked resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, compose_config, table_cfg
from omegaconf import OmegaConf

from nas_lightning.core.records import read_children
from nas_lightning.core.signals import SearchInterrupted
from nas_lightning.errors import ConfigError
from nas_lightning.search.loop import run_search
from nas_lightning.search.resume import resume_config


def tiny(run: Path, *overrides: str):
    return compose_config("search", [f"run_dir={run}", *TINY, *overrides])


def resume(run: Path, num_children: int, *overrides: str):
    """What `python search.py resume=<run> search.num_children=N <overrides>` does."""
    cfg = tiny(run, f"resume={run}", *overrides)
    return run_search(resume_config(cfg, [f"search.num_children={num_children}", *overrides]))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One uninterrupted 3-child search; tests work on copies of it."""
    run = tmp_path_factory.mktemp("base") / "run"
    run_search(tiny(run, "search.num_children=3"))
    return run


def copy_of(base: Path, tmp_path: Path, children: int | None = None) -> Path:
    run = tmp_path / "copy"
    shutil.copytree(base, run)
    if children is not None:  # as if stopped after `children` children
        lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
        (run / "children.jsonl").write_bytes(b"".join(lines[:children]))
    return run


def sequence(records):
    return [(r["actions"], r["reward"]) for r in records]


# 1. A torn last line of children.jsonl -----------------------------------------------------


def test_a_torn_last_line_is_cut_off_and_the_child_trained_again(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    full = (base / "children.jsonl").read_bytes().splitlines(keepends=True)
    with open(run / "children.jsonl", "ab") as f:
        f.write(full[2][:40])  # the third record, cut short by a crash
    result = resume(run, 3)
    assert sequence(result.records) == sequence(read_children(base))
    data = (run / "children.jsonl").read_bytes()
    assert data.endswith(b"\n") and len(data.splitlines()) == 3
    assert sequence(read_children(run)) == sequence(read_children(base))
    resume(run, 3)  # and the folder stays resumable


def test_records_out_of_sequence_are_a_one_line_error(base, tmp_path):
    run = copy_of(base, tmp_path)
    lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
    (run / "children.jsonl").write_bytes(lines[0] + lines[1] + lines[1] + lines[2])
    with pytest.raises(ConfigError, match=r"children.jsonl:3 records child 1 .*recorded twice"):
        resume(run, 4)


def test_a_corrupt_line_before_the_end_is_a_one_line_error(base, tmp_path):
    run = copy_of(base, tmp_path)
    lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
    (run / "children.jsonl").write_bytes(lines[0] + lines[1][:30] + b"\n" + lines[2])
    with pytest.raises(ConfigError) as err:
        resume(run, 4)
    assert "children.jsonl:2 is not a valid record" in str(err.value)
    assert "\n" not in str(err.value)


# 2. One live process per folder; names never collide --------------------------------------


def test_a_folder_locked_by_a_live_process_is_refused_and_freed_by_its_death(base, tmp_path):
    run = copy_of(base, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(run / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid 1 on elsewhere')\n"
         "print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="is in use by a running search"):
            resume(run, 3)
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait()
    assert len(resume(run, 3).records) == 3


def test_a_fresh_search_refuses_a_folder_that_holds_one(base, tmp_path):
    run = copy_of(base, tmp_path)
    with pytest.raises(ConfigError, match="already holds a search"):
        run_search(tiny(run))
    assert sequence(read_children(run)) == sequence(read_children(base))


_RUN_DIR = (
    "import sys\n"
    f"sys.path.insert(0, {str(ROOT)!r})\n"
    "import search\n"
    "from hydra import compose, initialize_config_dir\n"
    f"with initialize_config_dir({str(ROOT / 'conf')!r}, version_base='1.3'):\n"
    "    cfg = compose('search', return_hydra_config=True)\n"
    "print(cfg.hydra.run.dir, cfg.hydra.sweep.dir)\n"
)


def test_searches_started_in_the_same_second_get_different_folders():
    procs = [subprocess.Popen([sys.executable, "-c", _RUN_DIR], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    (a_run, a_sweep), (b_run, b_sweep) = (p.communicate(timeout=120)[0].split() for p in procs)
    assert a_run.startswith("runs/search/20") and a_sweep.startswith("runs/search/multirun/20")
    assert a_run != b_run and a_sweep != b_sweep


# 3. SIGTERM / Ctrl-C stop cleanly; exit status says what happened ---------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_a_child_stops_the_search_resumably(base, tmp_path, monkeypatch, signum):
    from nas_lightning.child import ChildModule

    run = tmp_path / "run"
    original = ChildModule.training_step
    seen = []

    def step(self, batch, batch_idx):
        seen.append(1)
        if len(read_children(run)) == 1 and len(seen) > 1:  # inside child 1
            os.kill(os.getpid(), signum)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ChildModule, "training_step", step)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(SearchInterrupted) as stop:
        run_search(tiny(run, "search.num_children=3"))
    monkeypatch.undo()
    assert stop.value.exit_code == 128 + signum
    assert [r["index"] for r in read_children(run)] == [0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored
    result = resume(run, 3)
    assert sequence(result.records) == sequence(read_children(base))
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def _cli(args, cwd, env_extra=None, **kwargs):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, str(ROOT / "search.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_cli_sigterm_exits_143_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = _cli([*TINY, "search.num_children=4", f"hydra.run.dir={run}"], cwd=tmp_path)
    deadline = time.time() + 300
    while len(read_children(run)) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert f"interrupted (SIGTERM): resume with python search.py resume={run}" in err
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_cli_exits_3_when_every_child_failed(tmp_path):
    run = tmp_path / "run"
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from nas_lightning.models import nasnet\n"
        "def boom(self, *a, **k):\n"
        "    raise RuntimeError('out of memory (simulated)')\n"
        "nasnet.NASNetwork.__init__ = boom\n"
        f"sys.argv = [{str(ROOT / 'search.py')!r}, *{TINY!r}, 'hydra.run.dir={run}']\n"
        "import runpy\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 3, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: all 2 children failed (first: RuntimeError: out of memory")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


# 6. Resume checks what it finds -------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("seed", 1), ("child.optimizer.lr", 0.5)])
def test_a_hand_edited_config_yaml_is_refused(base, tmp_path, key, value):
    run = copy_of(base, tmp_path, children=2)
    saved = OmegaConf.load(run / "config.yaml")
    OmegaConf.update(saved, key, value)
    OmegaConf.save(saved, run / "config.yaml")
    with pytest.raises(ConfigError) as err:
        resume(run, 3)
    assert f"{key} is {value!r}" in str(err.value) and "\n" not in str(err.value)


def test_a_strategy_from_another_search_is_refused(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    other = tmp_path / "other"
    run_search(tiny(other, "search.num_children=2"))
    shutil.copy(other / "strategy.pt", run / "strategy.pt")
    with pytest.raises(ConfigError, match="strategy.pt belongs to another search"):
        resume(run, 3)


def test_a_strategy_ahead_of_the_records_is_rebuilt_from_them(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)  # strategy.pt has learned from 3
    result = resume(run, 3)
    assert sequence(result.records) == sequence(read_children(base))
    assert torch.load(run / "strategy.pt", weights_only=True)["num_told"] == 3


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04broken"])
def test_an_unreadable_strategy_is_a_one_line_error(base, tmp_path, content):
    run = copy_of(base, tmp_path, children=2)
    (run / "strategy.pt").write_bytes(content)
    with pytest.raises(ConfigError) as err:
        resume(run, 3)
    assert "strategy.pt cannot be read" in str(err.value) and "\n" not in str(err.value)


def test_a_moved_folder_still_resumes(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    moved = tmp_path / "moved"
    run.rename(moved)
    assert sequence(resume(moved, 3).records) == sequence(read_children(base))


def test_a_logger_given_on_resume_is_used(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    resume(run, 3, "logger=csv", "logger.filename=resumed.csv")
    rows = (run / "resumed.csv").read_text().splitlines()
    assert len(rows) == 2  # header + child 2
    assert OmegaConf.load(run / "config.yaml").logger.filename == "resumed.csv"


def test_config_yaml_and_run_json_are_written_whole(base):
    manifest = json.loads((base / "run.json").read_text())
    assert len(manifest["run_id"]) == 32 and manifest["config"]["seed"] == 0
    state = torch.load(base / "strategy.pt", weights_only=True)
    assert state["run_folder"]["run_id"] == manifest["run_id"]
    assert state["run_folder"]["children"] == 3
    assert not list(base.glob("*.tmp"))


# 7. Resume after reused proposals (search.repeats=reuse) -----------------------------------

# A 9-architecture table space and a controller without redraws: reuses between children.
REUSES = ["search_space.ops=[identity]", "strategy.dedup_tries=0", "search.reuse_limit=5"]


def table_resume(run: Path, num_children: int):
    cfg = table_cfg(run, *REUSES, f"resume={run}")
    return run_search(resume_config(cfg, [f"search.num_children={num_children}"]))


def outcome(run: Path) -> list:
    return [(r["index"], r["actions"], r["reward"], r["status"]) for r in read_children(run)]


@pytest.fixture(scope="module")
def reused(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted 8-child table search with reuses, and its summary."""
    run = tmp_path_factory.mktemp("reused") / "run"
    result = run_search(table_cfg(run, *REUSES, "search.num_children=8"))
    assert result.summary["reused"] >= 5
    return run, result.summary


def _missing_state(run: Path) -> None:
    (run / "strategy.pt").unlink()


def _torn_last_line(run: Path) -> None:  # strategy.pt is then ahead of the records
    lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
    (run / "children.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][:40])


def _state_ahead(run: Path) -> None:  # the last record lost, after the state was saved
    lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
    (run / "children.jsonl").write_bytes(b"".join(lines[:7]))


@pytest.mark.parametrize("fault", [_missing_state, _torn_last_line, _state_ahead])
def test_a_resume_after_reuses_replays_them(reused, tmp_path, fault):
    base, summary = reused
    run = copy_of(base, tmp_path)
    fault(run)
    result = table_resume(run, 8)
    assert outcome(run) == outcome(base)
    assert result.summary["reused"] == summary["reused"]
    state = torch.load(run / "strategy.pt", weights_only=True)
    assert state["num_told"] == torch.load(base / "strategy.pt", weights_only=True)["num_told"]


def test_an_older_strategy_of_the_same_run_is_replayed_forward(reused, tmp_path):
    base, _ = reused
    run = tmp_path / "run"
    run_search(table_cfg(run, *REUSES, "search.num_children=2"))
    old = (run / "strategy.pt").read_bytes()
    table_resume(run, 3)
    (run / "strategy.pt").write_bytes(old)  # a backup of the same run put back
    table_resume(run, 5)
    assert [i for i, *_ in outcome(run)] == [0, 1, 2, 3, 4]
    table_resume(run, 8)
    assert outcome(run) == outcome(base)


def test_a_refused_resume_leaves_the_folder_untouched(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    other = tmp_path / "other"
    run_search(tiny(other, "search.num_children=2"))
    shutil.copy(other / "strategy.pt", run / "strategy.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    with pytest.raises(ConfigError, match="belongs to another search"):
        resume(run, 3)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before


def test_resume_accepts_the_original_command_and_refuses_real_changes(base, tmp_path):
    run = copy_of(base, tmp_path, children=2)
    same = [*TINY, "search.num_children=3", "child.batch_size=64.0", "seed=0"]
    assert len(resume(run, 3, *same).records) == 3  # the requeue pattern: same command + resume=
    for change in ("child.batch_size=32", "seed=1", "strategy=random"):
        with pytest.raises(ConfigError, match=f"cannot change '{change.split('=')[0]}'"):
            resume(run, 4, change)


# 8. Full disk, the resume banner, an unusable run folder on the command line ---------------


def test_a_full_disk_names_the_file_exits_75_and_the_folder_resumes(tmp_path, monkeypatch,
                                                                     capsys):
    import errno

    from nas_lightning.cli import EXIT_FULL_DISK, search_task
    from nas_lightning.core import records

    fsync = os.fsync
    writes = []

    def full_at_child_1(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("children.jsonl"):
            writes.append(fd)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell which file an fsync is for")
    run, reference = tmp_path / "run", tmp_path / "reference"
    monkeypatch.setattr(records.os, "fsync", full_at_child_1)
    with pytest.raises(SystemExit) as stop:
        search_task(table_cfg(run, "search.num_children=3"))
    monkeypatch.undo()
    assert stop.value.code == EXIT_FULL_DISK == 75
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no space left on device: ") and "children.jsonl" in err
    assert f"resume={run}" in err
    table_resume_plain = resume_config(table_cfg(run, f"resume={run}"), [])
    run_search(table_resume_plain)
    run_search(table_cfg(reference, "search.num_children=3"))
    assert outcome(run) == outcome(reference)


def test_the_resume_banner_shows_the_run_s_own_config(tmp_path):
    run = tmp_path / "run"
    run_search(table_cfg(run, "search.num_children=3", "seed=5", "strategy=random"))
    proc = _cli([f"resume={run}"], cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    banner = out + err
    assert "3 children (resuming after 3)" in banner and "seed 5" in banner, banner
    assert "RandomSearch" in banner and "W&B" not in banner and "Wandb" not in banner


def test_an_unusable_hydra_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = _cli([f"hydra.run.dir={blocker / 'run'}"], cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert err.strip() == (f"error: hydra.run.dir={blocker / 'run'}: cannot create the run "
                           "folder (Not a directory)")


def test_a_batch_search_with_reuses_replays_its_batches(tmp_path):
    batch = ["search.mode=batch", "search.batch_size=2"]
    full, part = tmp_path / "full", tmp_path / "part"
    summary = run_search(table_cfg(full, *REUSES, *batch, "search.num_children=10")).summary
    assert summary["reused"] > 0
    shutil.copytree(full, part)
    (part / "strategy.pt").unlink()
    result = run_search(resume_config(table_cfg(part, *REUSES, *batch, f"resume={part}"), []))
    assert outcome(part) == outcome(full)
    assert result.summary["reused"] == summary["reused"]
    told = [torch.load(run / "strategy.pt", weights_only=True)["num_told"] for run in (full, part)]
    assert told[0] == told[1]
