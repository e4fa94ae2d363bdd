"""Search-level loggers: one run per search, one step per child.

The children's own Trainers log nothing (a W&B run per child would bury the
search); these loggers record what the search learns, with the child index
as the x-axis. The run folder's ``children.jsonl`` stays the source of
truth; loggers are views of it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

from nas_lightning.core.child_record import final_reward
from nas_lightning.core.records import fault_point
from nas_lightning.core.sweep import sweep_names
from nas_lightning.core.wandb_env import has_api_key, wandb_mode
from nas_lightning.errors import ConfigError

log = logging.getLogger("nas_lightning.search")


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

    def log_child(self, record: dict[str, Any], stats: dict[str, float],
                  best_reward: float | None = None) -> None:
        """Called after each child, once the strategy has learned from it.

        ``best_reward``: the best reward recorded so far, this child included.
        """

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

    def _file(self) -> Path:
        if self.path is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        return self.path

    def log_child(self, record: dict[str, Any], stats: dict[str, float],
                  best_reward: float | None = None) -> None:
        row = _flat(record, stats)
        if self.columns is None:
            self.columns = list(row) + [c for c in (
                "controller/loss", "controller/entropy", "controller/baseline",
                "controller/advantage") if c not in row]
            with open(self._file(), "w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with open(self._file(), "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)

    def log_metrics(self, metrics: dict[str, float], step_key: str) -> None:
        """One row of ``<filename stem>_<prefix>.csv`` (``metrics_supernet.csv``)."""
        prefix = step_key.split("/")[0]
        file = self._file()
        path = file.with_name(f"{file.stem}_{prefix}.csv")
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, list(metrics), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(metrics)


def _short(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _teardown_wandb() -> None:
    """Close W&B's service connection now, quietly, when W&B has failed.

    W&B tears its service down in an ``atexit`` hook; with the service
    process dead, that hook prints a long "Exception ignored in atexit
    callback" traceback as the search exits. Torn down here (errors
    swallowed), the hook has nothing left to do. A later search in the same
    process starts a new service.
    """
    try:
        import wandb

        wandb.teardown()
    except (Exception, SystemExit):  # noqa: BLE001 - a dead service fails in any way
        pass


class WandbSearchLogger(SearchLogger):
    """One W&B run per search, its files inside the run folder.

    Offline unless the user is logged in (``wandb login`` or
    ``WANDB_API_KEY``) or sets ``WANDB_MODE=online``; upload an offline run
    later with ``wandb sync <run folder>/wandb/offline-run-*``.

    W&B never stops a search: if an online run cannot start (no API key, no
    network, a wrong ``WANDB_BASE_URL``) within ``init_timeout`` seconds,
    the logger warns once and logs offline; if even that fails, it writes
    ``metrics.csv`` like :class:`CSVSearchLogger`. An error while logging
    (the W&B service died) warns once and turns W&B off for the rest of the
    search; the run folder's records do not depend on it.

    Args:
        project: W&B project (default ``WANDB_PROJECT`` or ``nas-lightning``).
        entity: W&B entity (default ``WANDB_ENTITY``).
        mode: ``online``, ``offline`` or ``disabled``; None picks as above.
        name: run name (default: the job's overrides in a Hydra sweep, e.g.
            ``controller.hidden=50``; else the run folder's name).
        tags: run tags.
        init_timeout: seconds ``wandb.init`` may take before the search
            goes on without it (W&B's own default is 90 s, retried).
        group: run group (default: the sweep's folder name in a Hydra sweep).
    """

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        init_timeout: float = 15.0,
        group: str | None = None,
    ) -> None:
        if mode not in (None, "online", "offline", "disabled"):
            raise ConfigError("mode", f"must be online, offline, disabled or null, got {mode!r}")
        if not (isinstance(init_timeout, (int, float)) and init_timeout > 0):
            raise ConfigError("init_timeout", f"must be a number > 0, got {init_timeout!r}")
        self.project = project or os.environ.get("WANDB_PROJECT", "nas-lightning")
        self.entity = entity or os.environ.get("WANDB_ENTITY")
        self.mode = mode
        self.name = name
        self.tags = list(tags or [])
        self.init_timeout = float(init_timeout)
        self.group = group
        self.run: Any = None  # the wandb Run once started
        self.fallback: CSVSearchLogger | None = None
        self._step_keys: set[str] = set()

    def _init(self, wandb: Any, mode: str, run_dir: Path, config: dict[str, Any]) -> Any:
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else None
        sweep_group, sweep_name = sweep_names()  # (None, None) outside a Hydra sweep
        return wandb.init(
            project=self.project,
            entity=self.entity,
            mode=mode,
            dir=str(run_dir),
            name=self.name or sweep_name or run_dir.name,
            group=self.group or sweep_group,
            tags=self.tags,
            config=config,
            id=run_id,
            resume="allow" if run_id else None,
            job_type="search",
            settings=wandb.Settings(init_timeout=self.init_timeout),
        )

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        run_dir = Path(run_dir)
        mode = wandb_mode(self.mode)
        if mode == "online" and not has_api_key():
            log.warning("W&B: online but no API key (wandb login or WANDB_API_KEY): logging "
                        "offline; upload later with wandb sync")
            mode = "offline"
        try:
            if wandb.run is not None:  # a previous search in this process
                wandb.finish()
            self.run = self._init(wandb, mode, run_dir, config)
        except Exception as err:  # noqa: BLE001 - any W&B failure: go on without it
            self.run = None
            if mode == "online":
                log.warning("W&B: online run did not start (%s): logging offline; upload "
                            "later with wandb sync", _short(err))
                try:
                    self.run = self._init(wandb, "offline", run_dir, config)
                except Exception as err2:  # noqa: BLE001
                    err = err2
            if self.run is None:
                log.warning("W&B: could not start (%s): logging to metrics.csv instead",
                            _short(err))
                self.fallback = CSVSearchLogger()
                self.fallback.start(run_dir, config)
                return
        try:
            (run_dir / "wandb_id.txt").write_text(self.run.id)
            self.run.define_metric("child/index")
            for prefix in ("child/*", "controller/*", "best/*"):
                self.run.define_metric(prefix, step_metric="child/index")
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def _disable(self, err: BaseException) -> None:
        """Stop using W&B for the rest of the search, with one warning."""
        log.warning("W&B: %s; W&B logging is off for the rest of this search (the run "
                    "folder has every record)", _short(err))
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - it is already broken
                pass
        _teardown_wandb()

    def log_child(self, record: dict[str, Any], stats: dict[str, float],
                  best_reward: float | None = None) -> None:
        if self.fallback is not None:
            self.fallback.log_child(record, stats, best_reward)
        if self.run is None:
            return
        row = _flat(record, stats)
        if best_reward is not None:
            row["best/reward"] = best_reward
        try:
            fault_point("wandb.log", RuntimeError)
            self.run.log(row)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def log_metrics(self, metrics: dict[str, float], step_key: str) -> None:
        if self.fallback is not None:
            self.fallback.log_metrics(metrics, step_key)
        if self.run is None:
            return
        try:
            if step_key not in self._step_keys:
                self._step_keys.add(step_key)
                self.run.define_metric(step_key)
                self.run.define_metric(f"{step_key.split('/')[0]}/*", step_metric=step_key)
            self.run.log(metrics)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def log_image(self, name: str, path: Path) -> None:
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({name: wandb.Image(str(path))})
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def finish(self, run_dir: Path, records: list[dict[str, Any]], best: dict | None) -> None:
        if self.run is None:
            return
        try:
            self._finish(run_dir, records, best)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def _finish(self, run_dir: Path, records: list[dict[str, Any]], best: dict | None) -> None:
        import wandb

        columns: list[str | int] = ["index", "reward", "val_acc", "params", "seconds", "status",
                                    "genotype"]
        rows = [
            [r["index"], r.get("reward"), r.get("val_acc"), r.get("params"), r.get("seconds"),
             r.get("status"), json.dumps(r.get("genotype"))]
            for r in records
        ]
        self.run.log({"children": wandb.Table(columns=columns, data=rows)})
        best_file = Path(run_dir) / "best.json"
        if best is not None and best_file.exists():
            self.run.summary["best/reward"] = final_reward(best)
            self.run.summary["best/val_acc"] = best.get("val_acc")
            self.run.summary["best/index"] = best["index"]
            artifact = wandb.Artifact(f"best-genotype-{self.run.id}", type="genotype")
            artifact.add_file(str(best_file))
            self.run.log_artifact(artifact)
        self.run.finish()
        self.run = None
