"""A simulated child: sleeps, then reads its accuracy from a tabular benchmark.

It measures the engine itself (how many children per second one driver can
ask, record, tell and log) and lets fault-tolerance tests kill a worker in the
middle of a child without training anything. Select it with::

    python search.py runner=table search_space.num_blocks=1 \\
        'search_space.ops=[identity,max_pool_3x3,sep_conv_3x3]' 'search_space.combines=[add]'
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Result, Trial

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "benchmarks" / "tabular" / "nasnet_b1.jsonl"


class TableRunner:
    """``run(trial)``: sleep ``seconds``, then the table's accuracy of ``trial.actions``.

    Args:
        table: a JSON-lines tabular benchmark (header line, then rows with
            ``actions`` and ``val_acc``); None: ``benchmarks/tabular/nasnet_b1.jsonl``.
        seconds: how long each child "trains" (a sleep: no CPU used).
    """

    def __init__(self, table: str | Path | None = None, seconds: float = 0.0) -> None:
        path = Path(table) if table else DEFAULT_TABLE
        if not path.is_file():
            raise ConfigError("table", f"no such file: {path}")
        if not seconds >= 0:
            raise ConfigError("seconds", f"must be >= 0, got {seconds!r}")
        lines = path.read_text().splitlines()
        self.rows = {tuple(r["actions"]): r for r in map(json.loads, lines[1:]) if r}
        self.seconds = float(seconds)
        self.probe = None

    def run(self, trial: Trial) -> Result:
        start = time.perf_counter()
        if self.seconds:
            time.sleep(self.seconds)
        row = self.rows.get(tuple(trial.actions))
        if row is None:
            return Result.failure(trial, f"KeyError: {list(trial.actions)} is not in the table")
        return Result(
            index=trial.index,
            val_acc=float(row["val_acc"]),
            val_curve=[float(row["val_acc"])],
            params=int(row.get("params", 0)),
            train_seconds=self.seconds,
            seconds=time.perf_counter() - start,
            attempt=trial.attempt,
            worker=f"{os.getpid()}@{socket.gethostname()}",
        )
