"""ENAS under hostile input and kills: checked values, safe checkpoints, resumes per epoch."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from test_enas import TINY_ENAS

# `python search.py` with the tiny ENAS search of test_enas.py, `epochs` epochs
CLI_ENAS = [
    "logger=csv", "search.num_threads=1", *[o for o in TINY_ENAS if o != "logger=csv"],
]


def _cli(run: Path, *overrides: str) -> list[str]:
    return [sys.executable, "search.py", *CLI_ENAS, f"hydra.run.dir={run}", *overrides]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _records(run: Path) -> list[dict]:
    path = run / "children.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


# -- values checked before anything is built ----------------------------------------


BAD_VALUES = [
    ("seed=x", "seed"),
    ("enas.optimizer.lr=-1", "enas.optimizer.lr"),
    ("enas.optimizer.lr=nan", "enas.optimizer.lr"),
    ("enas.limit_train_batches=-1", "enas.limit_train_batches"),
    ("enas.grad_clip=-1", "enas.grad_clip"),
    ("enas.grad_clip=abc", "enas.grad_clip"),
    ("enas.entropy_reward_weight=abc", "enas.entropy_reward_weight"),
    ("enas.channels_last=abc", "enas.channels_last"),
    pytest.param("trainer=gpu", "trainer.accelerator", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a GPU is present: trainer=gpu is valid")),
]


@pytest.mark.parametrize("override, key", BAD_VALUES)
def test_bad_enas_values_exit_2_in_one_line(override, key, tiny_search_cfg, tmp_path, capsys):
    """The search's entry body (search.py's): status 2, one line naming the key, no training."""
    from nas_lightning.cli import search_task

    cfg = tiny_search_cfg(*TINY_ENAS, override)
    with pytest.raises(SystemExit) as info:
        search_task(cfg)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert err.startswith(f"error: {key}: ") and "\n" not in err, err
    assert not (tmp_path / "run" / "children.jsonl").exists()


def test_a_bad_enas_value_from_the_command_line(tmp_path):
    proc = subprocess.run(
        _cli(tmp_path / "run", "enas.grad_clip=-1"), cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == "error: enas.grad_clip: must be a number >= 0 or null, got -1"


# -- checkpoints ---------------------------------------------------------------------


class _Payload:
    """Unpickling it would create ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_checkpoint_is_refused_not_run(tiny_search_cfg, tmp_path):
    """`python search.py resume=<run>` over a pickle planted as last.ckpt: one line, no payload."""
    from nas_lightning.search.runfolder import RunFolder

    run = tmp_path / "run"
    cfg = tiny_search_cfg(*TINY_ENAS, run_dir=run)
    run.mkdir()
    RunFolder(cfg, 0).write_config(cfg)  # a search's config.yaml and run.json
    marker = tmp_path / "payload-ran"
    (run / "checkpoints").mkdir()
    torch.save({"enas": _Payload(str(marker))}, run / "checkpoints" / "last.ckpt")
    proc = subprocess.run(
        [sys.executable, "search.py", f"resume={run}"], cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert not marker.exists()
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "\n" not in err and err.startswith(f"error: resume: {run / 'checkpoints' / 'last.ckpt'}")
    assert "cannot be loaded safely" in err


@pytest.mark.parametrize("content", ["pickle", "garbage", "empty", "not_enas"])
def test_unsafe_or_broken_checkpoints_are_one_line_errors(content, tiny_search_cfg, tmp_path):
    from nas_lightning.enas.search import run_enas
    from nas_lightning.errors import ConfigError

    run = tmp_path / "run"
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    if content == "pickle":
        path.write_bytes(pickle.dumps({"enas": _Payload(str(marker))}))
    elif content == "garbage":
        path.write_bytes(b"PK\x03\x04 not a checkpoint")
    elif content == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ConfigError) as info:
        run_enas(tiny_search_cfg(*TINY_ENAS, f"resume={run}", run_dir=run))
    assert not marker.exists()
    assert info.value.key == "resume" and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_checkpoint_is_on_disk_after_every_epoch(tiny_search_cfg, tmp_path, monkeypatch):
    """At the start of epochs 2 and 3, last.ckpt holds the epochs before, controller steps too."""
    from nas_lightning.enas.module import EnasModule
    from nas_lightning.enas.search import run_enas

    run = tmp_path / "run"
    seen = []

    def on_train_epoch_start(self):
        path = run / "checkpoints" / "last.ckpt"
        if self.current_epoch > 0 and path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            seen.append((self.current_epoch, state["epoch"], state["enas"]["controller_step"]))
        elif self.current_epoch > 0:
            seen.append((self.current_epoch, None, None))

    monkeypatch.setattr(EnasModule, "on_train_epoch_start", on_train_epoch_start, raising=False)
    run_enas(tiny_search_cfg(*TINY_ENAS, "enas.epochs=3", run_dir=run))
    assert seen == [(1, 0, 2), (2, 1, 4)]
    assert not (run / "checkpoints" / "last.ckpt.tmp").exists()


# -- kills ---------------------------------------------------------------------------


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> bool:
    """SIGKILL ``proc`` once ``ready()`` holds; False if it ended first."""
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            return True
        time.sleep(0.02)
    proc.communicate()
    return False


def _check_records(run: Path, epochs: int, steps: int = 2) -> None:
    records = _records(run)
    assert [r["index"] for r in records] == list(range(epochs * steps))
    expected = [e for e in range(epochs) for _ in range(steps)]
    assert [r["extra"]["epoch"] for r in records] == expected


@pytest.mark.slow
def test_killed_after_the_first_epoch_resumes_at_the_second(tmp_path):
    """kill -9 once epoch 1's checkpoint is on disk; the resume trains epochs 2 and 3 only."""
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = _start(_cli(run, "enas.epochs=3"))
    assert _kill_when(proc, ckpt.is_file), "the search ended before its first checkpoint"
    kept = len(_records(run))
    assert kept >= 2  # epoch 1's controller steps, maybe some of epoch 2's
    out = subprocess.run([sys.executable, "search.py", f"resume={run}"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "after epoch 1 (2 controller steps)" in out.stdout + out.stderr
    assert "epoch 1:" not in out.stdout + out.stderr  # epoch 1 is not trained again
    _check_records(run, epochs=3)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["controller_steps"] == 6


@pytest.mark.slow
def test_kills_per_epoch(tmp_path):
    """kill -9 at random points across epochs, resume each time: every record once, in order."""
    rng = random.Random(0)
    epochs, steps = 4, 2
    run = tmp_path / "run"
    # kill once children.jsonl holds n records (mid-epoch or after it), a little later
    targets = sorted(rng.sample(range(1, epochs * steps), 3))
    cmd = _cli(run, f"enas.epochs={epochs}")
    kills = 0
    for n in targets:
        proc = _start(cmd)
        delay = rng.uniform(0.0, 0.3)

        def ready(n=n, delay=delay):
            if len(_records(run)) < n:
                return False
            time.sleep(delay)
            return True

        if _kill_when(proc, ready):
            kills += 1
        cmd = [sys.executable, "search.py", f"resume={run}"]
        records = _records(run)
        assert len({r["index"] for r in records}) == len(records)  # no duplicates, ever
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert kills >= 2
    _check_records(run, epochs, steps)
    assert json.loads((run / "summary.json").read_text())["controller_steps"] == epochs * steps
