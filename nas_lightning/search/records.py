"""The run folder: everything needed to analyse or resume a search.

``runs/search/<date>_<time>/`` holds:

* ``config.yaml``: the resolved config of the search;
* ``children.jsonl``: one JSON line per child, appended (and flushed to
  disk) as soon as the child ends, before the strategy learns from it;
* ``best.json``: the best genotype so far with its metrics;
* ``strategy.pt``: the strategy's state after the last child (resume);
* ``summary.json``: totals written at the end.

Only the rank-0 process writes; other ranks get a recorder with
``enabled=False`` whose writes do nothing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from nas_lightning.errors import ConfigError

CHILDREN = "children.jsonl"
BEST = "best.json"
STRATEGY = "strategy.pt"
SUMMARY = "summary.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    """Plain JSON: NaN/inf become null, tuples lists, unknown objects strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


class RunRecorder:
    """Writes the run folder (rank 0 only)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.best: dict[str, Any] | None = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def children_path(self) -> Path:
        return self.run_dir / CHILDREN

    def append_child(self, record: dict[str, Any]) -> None:
        """Append one child's record and force it to disk."""
        if record.get("status") == "ok" and (
            self.best is None or record["reward"] > self.best["reward"]
        ):
            self.best = record
            if self.enabled:
                _atomic_write(self.run_dir / BEST, _dumps(record, indent=2))
        if not self.enabled:
            return
        with open(self.children_path, "ab") as f:
            f.write(_dumps(record) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def save_strategy(self, state: dict[str, Any]) -> None:
        if self.enabled:
            tmp = self.run_dir / (STRATEGY + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, self.run_dir / STRATEGY)

    def write_json(self, name: str, data: Any) -> None:
        if self.enabled:
            _atomic_write(self.run_dir / name, _dumps(data, indent=2))


def _dumps(data: Any, indent: int | None = None) -> bytes:
    return (json.dumps(_jsonable(data), indent=indent) + ("\n" if indent else "")).encode()


def read_children(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete child record of a run, in order.

    A last line cut short by a crash is dropped (its child is trained again on
    resume); a corrupt line elsewhere is an error naming the line.
    """
    path = Path(run_dir) / CHILDREN
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ConfigError("resume", f"{path}:{number} is not valid JSON") from None
    return records


def load_strategy_state(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STRATEGY
    if not path.is_file():
        return None
    return torch.load(path, weights_only=True)
