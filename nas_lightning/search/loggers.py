"""Search-level loggers: one run per search, one step per child.

The children's own Trainers log nothing (a W&B run per child would bury the
search); these loggers record what the search learns, with the child index
as the x-axis. The run folder's ``children.jsonl`` stays the source of
truth; loggers are views of it.
"""

from __future__ import annotations

import csv
import json
import netrc
import os
from pathlib import Path
from typing import Any

from nas_lightning.errors import ConfigError


def _flat(record: dict[str, Any], stats: dict[str, float]) -> dict[str, Any]:
    """The numeric per-child metrics, with slash-separated names."""
    row: dict[str, Any] = {"child/index": record["index"]}
    for key in ("reward", "val_acc", "params", "seconds"):
        value = record.get(key)
        if isinstance(value, (int, float)):
            row[f"child/{key}"] = value
    for key, value in (record.get("extra") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[f"child/{key}"] = value
    for key, value in stats.items():
        row[f"controller/{key}"] = value
    row["child/ok"] = int(record.get("status") == "ok")
    return row


class SearchLogger:
    """No-op base; subclasses override what they record."""

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        """Called once, before the first child."""

    def log_child(self, record: dict[str, Any], stats: dict[str, float]) -> None:
        """Called after each child, once the strategy has learned from it."""

    def log_image(self, name: str, path: Path) -> None:
        """Attach a picture (e.g. a Pareto plot)."""

    def log_metrics(self, metrics: dict[str, float], step_key: str) -> None:
        """Metrics on an x-axis of their own (``step_key``, e.g. ``supernet/step``)."""

    def finish(self, run_dir: Path, records: list[dict[str, Any]], best: dict | None) -> None:
        """Called once at the end (also after an error)."""


class CSVSearchLogger(SearchLogger):
    """``metrics.csv`` in the run folder: one row per child, no W&B needed."""

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self.columns: list[str] | None = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.path = Path(run_dir) / self.filename
        if self.path.exists():  # a resumed search appends to its own file
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)

    def log_child(self, record: dict[str, Any], stats: dict[str, float]) -> None:
        row = _flat(record, stats)
        if self.columns is None:
            self.columns = list(row) + [c for c in (
                "controller/loss", "controller/entropy", "controller/baseline",
                "controller/advantage") if c not in row]
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)

    def log_metrics(self, metrics: dict[str, float], step_key: str) -> None:
        """One row of ``<filename stem>_<prefix>.csv`` (``metrics_supernet.csv``)."""
        prefix = step_key.split("/")[0]
        path = self.path.with_name(f"{self.path.stem}_{prefix}.csv")
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, list(metrics), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(metrics)


def wandb_mode(mode: str | None) -> str:
    """The W&B mode: as configured, else ``WANDB_MODE``, else online only if logged in."""
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


class WandbSearchLogger(SearchLogger):
    """One W&B run per search, its files inside the run folder.

    Offline unless the user is logged in (``wandb login`` or
    ``WANDB_API_KEY``) or sets ``WANDB_MODE=online``; upload an offline run
    later with ``wandb sync <run folder>/wandb/offline-run-*``.

    Args:
        project: W&B project (default ``WANDB_PROJECT`` or ``nas-lightning``).
        entity: W&B entity (default ``WANDB_ENTITY``).
        mode: ``online``, ``offline`` or ``disabled``; None picks as above.
        name: run name (default: the run folder's name).
        tags: run tags.
    """

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        if mode not in (None, "online", "offline", "disabled"):
            raise ConfigError("mode", f"must be online, offline, disabled or null, got {mode!r}")
        self.project = project or os.environ.get("WANDB_PROJECT", "nas-lightning")
        self.entity = entity or os.environ.get("WANDB_ENTITY")
        self.mode = mode
        self.name = name
        self.tags = list(tags or [])
        self.run = None
        self._step_keys: set[str] = set()

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        if wandb.run is not None:  # a previous search in this process
            wandb.finish()
        run_dir = Path(run_dir)
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else None
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=wandb_mode(self.mode),
            dir=str(run_dir),
            name=self.name or run_dir.name,
            tags=self.tags,
            config=config,
            id=run_id,
            resume="allow" if run_id else None,
            job_type="search",
        )
        id_file.write_text(self.run.id)
        self.run.define_metric("child/index")
        for prefix in ("child/*", "controller/*", "best/*"):
            self.run.define_metric(prefix, step_metric="child/index")

    def log_child(self, record: dict[str, Any], stats: dict[str, float]) -> None:
        row = _flat(record, stats)
        if record.get("best_reward") is not None:
            row["best/reward"] = record["best_reward"]
        self.run.log(row)

    def log_metrics(self, metrics: dict[str, float], step_key: str) -> None:
        if step_key not in self._step_keys:
            self._step_keys.add(step_key)
            self.run.define_metric(step_key)
            self.run.define_metric(f"{step_key.split('/')[0]}/*", step_metric=step_key)
        self.run.log(metrics)

    def log_image(self, name: str, path: Path) -> None:
        import wandb

        self.run.log({name: wandb.Image(str(path))})

    def finish(self, run_dir: Path, records: list[dict[str, Any]], best: dict | None) -> None:
        import wandb

        if self.run is None:
            return
        columns = ["index", "reward", "val_acc", "params", "seconds", "status", "genotype"]
        rows = [
            [r["index"], r.get("reward"), r.get("val_acc"), r.get("params"), r.get("seconds"),
             r.get("status"), json.dumps(r.get("genotype"))]
            for r in records
        ]
        self.run.log({"children": wandb.Table(columns=columns, data=rows)})
        best_file = Path(run_dir) / "best.json"
        if best is not None and best_file.exists():
            self.run.summary["best/reward"] = best["reward"]
            self.run.summary["best/val_acc"] = best.get("val_acc")
            self.run.summary["best/index"] = best["index"]
            artifact = wandb.Artifact(f"best-genotype-{self.run.id}", type="genotype")
            artifact.add_file(str(best_file))
            self.run.log_artifact(artifact)
        self.run.finish()
        self.run = None
