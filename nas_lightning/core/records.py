"""The run folder: everything needed to analyse or resume a search.

``runs/search/<date>_<time>/`` holds:

* ``config.yaml``: the resolved config of the search;
* ``run.json``: the run's id and the config it started with (resume checks);
* ``children.jsonl``: one JSON line per child, appended (and fsynced) as
  soon as the child ends, before the strategy learns from it;
* ``best.json``: the best genotype so far with its metrics;
* ``strategy.pt``: the strategy's state after the last child (resume);
* ``summary.json``: totals and the search's status, written at the end.

Every file but ``children.jsonl`` is replaced atomically (temporary file,
fsync, rename, fsync of the folder); ``children.jsonl`` only grows by whole
fsynced lines, and a line cut short by a crash is cut off on resume
(:func:`recover_children`). Writes hold SIGTERM/Ctrl-C until they end.

Only the rank-0 process writes; other ranks get a recorder with
``enabled=False`` whose writes do nothing.

Fault injection (tests only): ``NAS_LIGHTNING_FAULT=<point>:<n>`` kills the
process with SIGKILL the ``n``-th time it reaches ``<point>``. Points:
``children.before``, ``children.torn`` (half a line written and fsynced),
``children.after``, ``strategy.before_replace``, ``strategy.after`` and
``<file stem>.before_replace`` for ``best``, ``config``, ``summary`` and
``run``; ``engine.reuse`` (a proposal about to be told a recorded reward,
``search.repeats=reuse``); and ``wandb.log``, which does not kill but makes the W&B logger's
``n``-th child log raise ``RuntimeError``, as when the W&B service dies
mid-search.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas_lightning.core.child_record import best_key
from nas_lightning.core.signals import critical
from nas_lightning.errors import ConfigError

log = logging.getLogger(__name__)

CHILDREN = "children.jsonl"
BEST = "best.json"
STRATEGY = "strategy.pt"
SUMMARY = "summary.json"
MANIFEST = "run.json"
FAULT_ENV = "NAS_LIGHTNING_FAULT"
_fault_counts: dict[str, int] = {}


def fault_point(name: str, error: type[Exception] | None = None) -> None:
    """Die by SIGKILL here if ``NAS_LIGHTNING_FAULT`` names this point (tests).

    With ``error``, raise it instead: a failure the caller must survive.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(count or 1):
        if error is not None:
            raise error(f"fault injected at {name}:{count or 1}")
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Make a file's creation or rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an ``OSError`` raised without a file name (a write, an fsync) ``path``'s name.

    ``write`` and ``fsync`` report a full disk without saying which file;
    the one-line error of the entry point names it from here.
    """
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: a crash leaves the old or the new file, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with critical(), naming(path):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fault_point(f"{path.name.split('.')[0]}.before_replace")
        os.replace(tmp, path)
        fsync_dir(path.parent)


def jsonable(value: Any) -> Any:
    """Plain JSON: NaN/inf become null, tuples lists, unknown objects strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


class RunRecorder:
    """Writes the run folder (rank 0 only)."""

    def __init__(
        self,
        run_dir: str | Path,
        enabled: bool = True,
        run_id: str | None = None,
        recorded: list[dict[str, Any]] | None = None,
        repair: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.run_id = run_id
        self.best: dict[str, Any] | None = None
        # What strategy.pt is checked against on resume.
        self.num_children = len(recorded or [])
        self.last_actions = list(recorded[-1]["actions"]) if recorded else None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for record in recorded or []:
            self._is_best(record)
        if repair:
            self.write_best()

    def write_best(self) -> None:
        """``best.json`` from the records (a crash may have come before it was written).

        A search whose resume may still be refused passes ``repair=False`` and
        calls this once the folder is accepted: a refused resume writes nothing.
        """
        if self.enabled and self.best is not None:
            atomic_write(self.run_dir / BEST, _dumps(self.best, indent=2))

    def _is_best(self, record: dict[str, Any]) -> bool:
        if record.get("status") == "ok" and record.get("reward") is not None and (
            self.best is None or best_key(record) > best_key(self.best)
        ):
            self.best = record
            return True
        return False

    @property
    def children_path(self) -> Path:
        return self.run_dir / CHILDREN

    def append_child(self, record: dict[str, Any]) -> None:
        """Append one child's record and force it to disk, then update best.json."""
        self.num_children += 1
        self.last_actions = list(record.get("actions") or [])
        is_best = self._is_best(record)
        if not self.enabled:
            return
        line = _dumps(record) + b"\n"
        with critical(), naming(self.children_path):
            fault_point("children.before")
            created = not self.children_path.exists()
            with open(self.children_path, "ab") as f:
                if os.environ.get(FAULT_ENV, "").startswith("children.torn:"):
                    f.write(line[: len(line) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                    fault_point("children.torn")
                    f.write(line[len(line) // 2 :])
                else:
                    f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if created:
                fsync_dir(self.run_dir)
            fault_point("children.after")
            if is_best:
                atomic_write(self.run_dir / BEST, _dumps(record, indent=2))

    def save_strategy(self, state: dict[str, Any]) -> None:
        """Save the strategy's state with what it has learned from (checked on resume)."""
        if not self.enabled:
            return
        state = {**state, "run_folder": {
            "run_id": self.run_id,
            "children": self.num_children,
            "last_actions": self.last_actions,
        }}
        import torch  # here: `search.py --help` need not load it

        buffer = io.BytesIO()
        torch.save(state, buffer)
        with critical():
            atomic_write(self.run_dir / STRATEGY, buffer.getvalue())
            fault_point("strategy.after")

    def write_json(self, name: str, data: Any) -> None:
        if self.enabled:
            atomic_write(self.run_dir / name, _dumps(data, indent=2))


def _dumps(data: Any, indent: int | None = None) -> bytes:
    return (json.dumps(jsonable(data), indent=indent) + ("\n" if indent else "")).encode()


def _parse_children(path: Path, data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of ``data`` and the length of its intact part.

    Only the last line can be cut short by a crash (lines are appended whole
    and fsynced one after another): it is left out. A corrupt line before
    it, or a child recorded twice, is an error naming the line.
    """
    records: list[dict[str, Any]] = []
    seen: set[int] = set()
    lines = data.split(b"\n")  # the piece after the last newline is b"" when intact
    offset = good = 0
    for number, line in enumerate(lines, start=1):
        end = offset + len(line) + (1 if number < len(lines) else 0)
        last = all(not rest.strip() for rest in lines[number:])
        if line.strip():
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or number == len(lines):
                    raise ValueError("not a whole record line")
            except ValueError:
                if last:
                    break  # a torn tail: everything before it is intact
                raise ConfigError(
                    "resume", f"{path}:{number} is not a valid record (the file is corrupt "
                    "before its last line)"
                ) from None
            # Children trained in parallel are recorded as they end, not in index
            # order; a child recorded twice is corruption.
            if not isinstance(record.get("index"), int) or record["index"] in seen:
                raise ConfigError(
                    "resume", f"{path}:{number} records child {record.get('index')!r} again "
                    "(recorded twice) or without an index"
                )
            seen.add(record["index"])
            records.append(record)
        offset = end
        if line.strip() or number < len(lines):
            good = end
    return records, good


def read_children(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete child record of a run, in order (read-only).

    A last line cut short by a crash is left out (its child is trained again
    on resume); a corrupt line elsewhere is an error naming the line.
    """
    path = Path(run_dir) / CHILDREN
    if not path.is_file():
        return []
    return _parse_children(path, path.read_bytes())[0]


def recover_children(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run about to be continued, its torn last line cut off.

    The file is truncated to its last complete record (and fsynced) so that
    the next record starts on a line of its own. Call only while holding the
    run folder's lock.
    """
    path = Path(run_dir) / CHILDREN
    if not path.is_file():
        return []
    data = path.read_bytes()
    records, good = _parse_children(path, data)
    if good < len(data):
        with critical(), naming(path), open(path, "r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
        log.warning("%s: cut off a torn last line (%d bytes); child %d will be trained again",
                    path, len(data) - good, len(records))
    return records


def load_strategy_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The raw saved state (None without one); the resume checks are in ``resume.py``."""
    import torch

    path = Path(run_dir) / STRATEGY
    if not path.is_file():
        return None
    return torch.load(path, weights_only=True)
