"""The W&B search logger when W&B's own service process dies under it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TABLE, TINY

from nas_lightning.core.records import read_children

pytest.importorskip("wandb")


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _wandb_core(pid: int) -> list[int]:
    """The W&B service processes a search started (children of its process)."""
    out = []
    for child in _children_of(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"wandb-core" in cmd or b"wandb_core" in cmd:
            out.append(child)
    return out


@pytest.mark.slow
def test_a_dead_wandb_service_gives_one_warning_not_an_atexit_traceback(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT),
           "WANDB_SILENT": "true"}
    env.pop("WANDB_DISABLED", None)
    args = [a for a in TINY if not a.startswith("logger=")]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "search.py"), *args, *TABLE, "logger=wandb",
         "search.num_children=4", "runner.seconds=1", "search.progress=plain",
         f"hydra.run.dir={run}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 240
    killed = []
    while time.time() < deadline and not killed and proc.poll() is None:
        if read_children(run):
            for pid in _wandb_core(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.1)
    assert killed, "no wandb-core process was found"
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert sorted(r["index"] for r in read_children(run)) == [0, 1, 2, 3]
    assert "Exception ignored in atexit" not in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    warnings = [line for line in (out + err).splitlines() if "W&B" in line]
    assert len(warnings) <= 2, warnings
