"""The error of every DDP rank in the child's error line, not only rank 0's.

When a rank fails inside ``fit`` (an exception, a native abort such as
gloo's "collective mismatch"), the others only see their collective fail
("Connection reset by peer") or wait in it. The rank that failed is the one
whose message explains the failure, so: ranks other than 0 write their
stderr to ``<run>/ranks/rank<r>.stderr`` (native aborts included), a rank
whose child fails inside ``fit`` writes one marked line there and leaves,
and rank 0 puts each other rank's line in front of its own.

A rank that leaves takes the process group with it, so rank 0 stops the
search after such a child (:class:`~nas_lightning.errors.RanksStopped`) instead of starting the
next one on a broken group; the run folder keeps every record.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MARK = "nas-lightning child failed:"


def stderr_path(run_dir: str | Path, rank: int) -> Path:
    return Path(run_dir) / "ranks" / f"rank{rank}.stderr"


def capture_stderr(run_dir: str | Path, rank: int) -> Path:
    """Send this process's stderr (Python's and native code's) to its rank file."""
    path = stderr_path(run_dir, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    return path


def stderr_sizes(run_dir: str | Path, world: int) -> dict[int, int]:
    """How far each other rank's file goes now: its lines after this belong to the next child."""
    sizes = {}
    for rank in range(1, world):
        path = stderr_path(run_dir, rank)
        sizes[rank] = path.stat().st_size if path.exists() else 0
    return sizes


def _reason(text: str) -> str | None:
    """The line that says why a rank failed: its mark, a native ``what():``, or an error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(MARK):
            return line[len(MARK):].strip()
    for line in reversed(lines):
        if "what():" in line:
            return line.split("what():", 1)[1].strip()
    for line in reversed(lines):
        if "Error" in line and "Warning" not in line:
            return line
    return None


def peer_errors(run_dir: str | Path, since: dict[int, int], wait: float = 5.0) -> dict[int, str]:
    """Each other rank's reason, read from its file past ``since``; waits up to ``wait`` s."""
    deadline = time.monotonic() + wait
    found: dict[int, str] = {}
    while True:
        for rank, offset in since.items():
            path = stderr_path(run_dir, rank)
            if rank in found or not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(offset)
                reason = _reason(f.read().decode("utf-8", "replace"))
            if reason:
                found[rank] = reason[:500]
        if len(found) == len(since) or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def leave(index: int, error: str) -> None:
    """On a rank other than 0: say why child ``index`` failed, then end this rank.

    Exit status 0, so that the launcher does not kill rank 0 before it has
    recorded the child.
    """
    print(f"{MARK} child {index}: {error}", file=sys.stderr, flush=True)
    os._exit(0)
