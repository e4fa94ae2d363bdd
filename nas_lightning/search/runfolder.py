"""One live process per run folder, unique folder names, checked resumes.

``open_run_folder(cfg)`` is entered around a whole search. On rank 0 it takes
the folder's lock (``fcntl.flock`` on ``.lock``: the kernel drops it when the
process dies, however it dies), refuses a fresh search in a folder that
already holds one, and on resume cuts a torn last record off
``children.jsonl`` and checks ``strategy.pt`` against the records. Every
rank turns SIGTERM and Ctrl-C into :class:`SearchInterrupted`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.core.records import (
    CHILDREN,
    MANIFEST,
    STRATEGY,
    atomic_write,
    read_children,
    recover_children,
)
from nas_lightning.core.signals import interruptible, received
from nas_lightning.errors import ConfigError
from nas_lightning.search.resume import identity, read_manifest, write_manifest
from nas_lightning.utils import global_rank

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK = ".lock"
# PROCESS_TOKEN (signals.py) is appended to every new run folder's name
# (`<date>_<time>_<token>`): one per process, so every part of Hydra's config
# that names the folder agrees.

class RunFolderError(ConfigError):
    """The run folder cannot be used as asked (busy, not empty, inconsistent)."""


class FolderLock:
    """An exclusive ``flock`` on ``<run folder>/.lock``, held by one live process.

    The lock belongs to the open file, not to the file on disk: a process
    killed by any signal loses it at once, so a stale ``.lock`` file never
    blocks a resume. The file says who holds it, for the error message.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            log.warning("no fcntl on this platform: %s is not locked", self.path.parent)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderError(
                "resume",
                f"{self.path.parent} is in use by a running search ({holder}); wait for it to "
                "end or stop it",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None


class RunFolder:
    """The run folder as one search sees it: lock, records, checks."""

    def __init__(self, cfg: DictConfig, rank: int) -> None:
        self.resuming = bool(cfg.get("resume"))
        self.run_dir = Path(cfg.resume or cfg.run_dir)
        self.rank = rank
        self.lock = FolderLock(self.run_dir)
        self.run_id: str | None = None
        self.records: list[dict[str, Any]] = []

    def open(self) -> None:
        """Lock the folder (rank 0) and read what a resume continues from."""
        if self.rank != 0:
            if self.resuming:
                self.records = read_children(self.run_dir)
                self.run_id = (read_manifest(self.run_dir) or {}).get("run_id")
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        if not self.resuming:
            held = [n for n in (CHILDREN, "config.yaml", MANIFEST) if (self.run_dir / n).exists()]
            if held:
                raise RunFolderError(
                    "run_dir",
                    f"{self.run_dir} already holds a search ({held[0]}); continue it with "
                    f"resume={self.run_dir} or choose another folder",
                )
            self.run_id = uuid.uuid4().hex
            return
        self.records = recover_children(self.run_dir)
        self.run_id = (read_manifest(self.run_dir) or {}).get("run_id")

    def close(self) -> None:
        self.lock.release()

    def write_config(self, cfg: DictConfig) -> None:
        """``config.yaml`` (atomically); a fresh search also writes ``run.json``."""
        if self.rank != 0:
            return
        text = OmegaConf.to_yaml(cfg, resolve=True)
        atomic_write(self.run_dir / "config.yaml", text.encode())
        if not self.resuming or read_manifest(self.run_dir) is None:  # after: a crash between
            if self.run_id is None:  # the two leaves a folder that resumes unchecked
                self.run_id = uuid.uuid4().hex
            written = OmegaConf.create(text)
            assert isinstance(written, DictConfig)  # the YAML of a search config
            write_manifest(self.run_dir, self.run_id, identity(written))

    def strategy_state(self) -> dict[str, Any] | None:
        """The saved strategy state if it matches the records, else None (replay).

        A state from another search, or one that cannot be read, is refused;
        a state ahead of the records (records lost after it was saved) is set
        aside and the strategy replays every record from its seed, which gives
        the same strategy as an uninterrupted search.
        """
        path = self.run_dir / STRATEGY
        if not path.is_file():
            return None
        import torch

        hint = "delete it to rebuild the strategy from children.jsonl"
        try:
            state = torch.load(path, weights_only=True)
        except Exception as err:  # empty, truncated, garbage, or unsafe content
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
            raise RunFolderError("resume", f"{path} cannot be read ({first}); {hint}") from None
        if not isinstance(state, dict) or "num_proposed" not in state:
            raise RunFolderError("resume", f"{path} is not a strategy state; {hint}")
        info: dict[str, Any] = state.pop("run_folder", None) or {}
        n = len(self.records)
        if info.get("run_id") and self.run_id and info["run_id"] != self.run_id:
            raise RunFolderError(
                "resume",
                f"{path} belongs to another search (run {info['run_id'][:8]}, this folder is "
                f"run {self.run_id[:8]}); {hint}",
            )
        children: Any = info.get("children", state["num_proposed"])
        saved = int(children)
        if saved > n:
            log.warning("%s has learned from %d children but %s holds %d: rebuilding the "
                        "strategy from the records", path, saved, CHILDREN, n)
            return None
        last = info.get("last_actions")
        if saved and last is not None and list(self.records[saved - 1]["actions"]) != list(last):
            raise RunFolderError(
                "resume", f"{path} does not match {CHILDREN} (child {saved - 1} differs); {hint}"
            )
        return state

    def status(self, completed: bool) -> str:
        """``finished``, ``failed`` (every child failed), ``interrupted`` or ``error``."""
        if not completed:
            return "interrupted" if received() is not None else "error"
        if self.records and not any(r.get("status") == "ok" for r in self.records):
            return "failed"
        return "finished"


@contextmanager
def open_run_folder(cfg: DictConfig) -> Iterator[RunFolder]:
    """Hold the run folder (lock, signals) for the length of a search."""
    folder = RunFolder(cfg, global_rank())
    try:
        with interruptible():
            folder.open()
            yield folder
    finally:
        folder.close()
