"""What a search prints: a start banner, one line per child, a progress bar with ETA.

The banner says what will run (space, strategy, budget, executor, run folder)
before anything slow happens: ``search.py`` prints it before torch is even
imported, so this module imports neither torch nor Lightning. Each finished
child gives one log line (also in ``search.log``) ending with the estimated
time left. On a terminal a ``rich`` progress bar sits below those lines;
``search.progress=plain`` (the default when stdout is not a terminal, e.g.
in CI or under ``nohup``, and under ``logger=csv``) keeps to plain lines.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.core.child_record import best_key
from nas_lightning.core.threads import resolve_num_threads
from nas_lightning.errors import ConfigError
from nas_lightning.execution.schedulers import rung_plan

log = logging.getLogger("nas_lightning.search")

MODES = ("auto", "bar", "plain")
BANNER_WIDTH = 80
_bannered: set[str] = set()  # run folders whose banner was printed by this process


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _short(node: Any) -> str | None:
    """The class or function name a config node instantiates."""
    if isinstance(node, DictConfig | dict) and node.get("_target_"):
        return str(node["_target_"]).rsplit(".", 1)[-1]
    return None


def _choices() -> dict[str, str]:
    """Hydra's group choices (``search_space: nasnet``), when run under Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return {k: str(v) for k, v in HydraConfig.get().runtime.choices.items()
                    if v is not None}
    except (ImportError, ValueError):
        pass
    return {}


def _select(cfg: DictConfig, key: str) -> Any:
    """A value by dotted key; None when missing or not resolvable outside Hydra."""
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # noqa: BLE001 - a resolver that needs Hydra: just leave it out
        return None


def _name(cfg: DictConfig, group: str, choices: dict[str, str]) -> str:
    short = _short(_select(cfg, group))
    choice = choices.get(group)
    if choice and short and choice.lower() != short.lower():
        return f"{choice} ({short})"
    return choice or short or "-"


def _recorded(run_dir: str | None) -> int:
    """Children already recorded in a run folder being resumed."""
    if not run_dir:
        return 0
    path = Path(run_dir) / "children.jsonl"
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _threads_text(cfg: DictConfig, threads: int | None) -> str:
    """Torch threads per child as the search will set them (no torch import)."""
    if threads is None:
        try:
            threads = resolve_num_threads(_select(cfg, "search.num_threads"),
                                          _select(cfg, "executor"))
        except ConfigError:
            return "torch threads: invalid search.num_threads"
    if threads is None:
        omp = os.environ.get("OMP_NUM_THREADS")
        return f"{omp} torch threads (OMP_NUM_THREADS)" if omp else "torch's default threads"
    return f"{threads} torch thread{'s' if threads != 1 else ''}"


def banner_lines(cfg: DictConfig, threads: int | None = None) -> list[str]:
    """What the search will do, in a few lines, from the config alone."""
    resume = _select(cfg, "resume")
    choices = {} if resume else _choices()  # this command's groups are not the run's
    total = _select(cfg, "search.num_children")
    done = _recorded(resume)
    budget = f"{total} child{'ren' if total != 1 else ''}"
    if resume:
        budget += f" (resuming after {done})"
    lines = [
        f"search: {_name(cfg, 'search_space', choices)} with "
        f"{_name(cfg, 'strategy', choices)}, {budget}, "
        f"reward {_name(cfg, 'reward', choices)}, seed {_select(cfg, 'seed')}",
    ]
    epochs = _select(cfg, "child.epochs")
    subset = _select(cfg, "child.train_subset")
    images = f"{subset} images" if subset else "all images"
    trainer = choices.get("trainer") or _select(cfg, "trainer.accelerator") or "-"
    child = (f"each child: {epochs} epoch{'s' if epochs != 1 else ''} x {images} of "
             f"{_name(cfg, 'dataset', choices)}, trainer {trainer}")
    child += f", {_threads_text(cfg, threads)}"
    lines.append(child)
    search = _select(cfg, "search")
    if search is not None and isinstance(epochs, int):
        try:
            plan = rung_plan(search, epochs)
        except ConfigError:  # said in one line when the search starts
            plan = None
        if plan is not None:
            lines.append(f"scheduler: {plan.kind}, rungs at "
                         f"{', '.join(map(str, plan.epochs))} epochs, 1 in "
                         f"{plan.reduction_factor} goes on")
    executor = _select(cfg, "executor")
    if executor:
        slots = executor.get("max_concurrent")
        lines.append(f"executor: {_name(cfg, 'executor', choices)}"
                     + (f", {slots} child{'ren' if slots != 1 else ''} at once" if slots else ""))
    if _select(cfg, "latency"):
        lines.append(f"latency: {_name(cfg, 'latency', choices)}")
    logger = _name(cfg, "logger", choices) if _select(cfg, "logger") else "none"
    lines.append(f"logger: {logger}; time left is estimated after the first child")
    # 80 columns: a long line goes on, indented, below (the run folder's path is never cut)
    lines = [part for line in lines for part in textwrap.wrap(
        line, BANNER_WIDTH, subsequent_indent="  ", break_on_hyphens=False)]
    run_dir = resume or _select(cfg, "run_dir")
    if run_dir:
        lines.append(f"run folder: {Path(str(run_dir)).resolve()}")
    return lines


def print_banner(cfg: DictConfig, threads: int | None = None) -> None:
    """Log the banner once per run folder and process."""
    key = str(_select(cfg, "resume") or _select(cfg, "run_dir"))
    if key in _bannered:
        return
    _bannered.add(key)
    for line in banner_lines(cfg, threads):
        log.info(line)


def progress_mode(cfg: DictConfig, stream: Any = None) -> str:
    """``bar`` or ``plain``, from ``search.progress`` (auto: bar on a terminal only)."""
    mode = _select(cfg, "search.progress") or "auto"
    if mode not in MODES:
        raise ConfigError("search.progress", f"must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    stream = sys.stdout if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    csv = "CSV" in (_short(_select(cfg, "logger")) or "")
    return "bar" if tty and not csv else "plain"


def child_line(record: dict[str, Any], stats: dict[str, float], total: int,
               best: float | None = None) -> str:
    """The one log line of a finished child (``best``: the best reward so far, to end it)."""
    # The child's number is its record's index (as in best.json, the pictures
    # and `runs`); the count of children recorded so far follows it.
    name = f"child {record['index']} ({record['index'] + 1}/{total})"
    if record["status"] != "ok":
        return f"{name} {record['status']} ({record.get('error')}) {_took(record['seconds'])}"
    # Short enough for an 80-column terminal: the accuracy only where the reward
    # is not the accuracy itself (MnasNet's), the controller's advantage to two
    # places (its baseline is in the logged metrics).
    parts = [name, f"reward={record['reward']:.4f}"]
    if record.get("rung") is not None:  # search.scheduler: told at the first rung
        epochs = len(record.get("val_curve") or [])
        parts = [name, f"reward@rung0={record['reward']:.4f}",
                 f"val_acc@{epochs}ep={record['val_acc']:.4f}"]
    elif record.get("val_acc") is not None and record["val_acc"] != record["reward"]:
        parts.append(f"val_acc={record['val_acc']:.4f}")
    if "advantage" in stats:
        parts.append(f"adv={stats['advantage']:+.2f}")
    for key, value in (record.get("extra") or {}).items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.3g}")
    if isinstance(record.get("params"), int | float):
        parts.append(f"params={record['params'] / 1e3:.1f}k")
    parts.append(_took(record["seconds"]))
    if best is not None:
        parts.append(f"best={best:.4f}")
    return " ".join(parts)


def _took(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else format_seconds(seconds)


class SearchProgress:
    """Banner, per-child lines with ETA, and (on a terminal) a live bar.

    Args:
        cfg: the search config (for the banner and ``search.progress``).
        total: the budget in children.
        done: children already recorded (a resumed search).
        enabled: False on every DDP rank but 0: they print nothing.
        threads: torch threads per child, for the banner.
    """

    def __init__(self, cfg: DictConfig, total: int, done: int = 0, enabled: bool = True,
                 threads: int | None = None) -> None:
        self.cfg = cfg
        self.total = total
        self.done = done
        self.enabled = enabled
        self.threads = threads
        self.mode = progress_mode(cfg)
        self.best: float | None = None
        self.baselines: dict[int, float] = {}  # child index -> controller baseline
        self._start = time.perf_counter()
        self._finished_here = 0
        self._bar: Any = None
        self._task: Any = None
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []
        self.in_flight: dict[int, tuple[float, str]] = {}  # index -> (submitted, architecture)
        self.leaders: list[dict[str, Any]] = []  # the best records so far, best first

    def eta_seconds(self) -> float | None:
        """Wall time left: the mean wall time per child so far times children left."""
        if self._finished_here == 0:
            return None
        per_child = (time.perf_counter() - self._start) / self._finished_here
        return per_child * max(0, self.total - self.done)

    def start(self) -> SearchProgress:
        if not self.enabled:
            return self
        print_banner(self.cfg, self.threads)
        self._start = time.perf_counter()
        if self.mode == "bar":
            self._start_bar()
        return self

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        view = self
        console = Console(soft_wrap=True)  # a long child line stays one line

        class LiveSearch(Progress):
            """The bar under a table of the children in flight and the best so far."""

            def get_renderables(self) -> Any:
                yield view.table(width=min(console.width, 80))
                yield self.make_tasks_table(self.tasks)

        self._bar = LiveSearch(
            SpinnerColumn(), TextColumn("children"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("left {task.fields[eta]}"),
            TextColumn("best {task.fields[best]}"),
            refresh_per_second=1, redirect_stdout=True, redirect_stderr=True,
            console=console,
        )
        self._task = self._bar.add_task("search", total=self.total, completed=self.done,
                                        eta="after child 1", best="-")
        originals = (sys.stdout, sys.stderr)
        self._bar.start()
        # Log lines go through the bar's console so they print above it.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler) and handler.stream in originals:
                proxy = sys.stdout if handler.stream is originals[0] else sys.stderr
                if proxy is not handler.stream:  # rich redirects only on a terminal
                    self._swapped.append((handler, handler.stream))
                    handler.setStream(proxy)

    def child_start(self, index: int, architecture: str = "") -> None:
        """A child handed to the executor (the live table lists it until it ends)."""
        self.in_flight[index] = (time.perf_counter(), architecture)

    def table(self, width: int = 80, top: int = 3) -> Any:
        """The live table (``rich``): the children in flight, then the best ``top``
        so far; at most ``width`` columns, the architecture cut to fit."""
        from rich.table import Table

        table = Table(width=width, box=None, pad_edge=False, header_style="bold",
                      show_edge=False)
        table.add_column("child", no_wrap=True, width=7)
        table.add_column("state", no_wrap=True, width=13)
        table.add_column("reward", no_wrap=True, justify="right", width=7)
        table.add_column("val_acc", no_wrap=True, justify="right", width=7)
        table.add_column("architecture", no_wrap=True, overflow="ellipsis", ratio=1)
        now = time.perf_counter()
        for index, (since, arch) in sorted(self.in_flight.items())[:4]:
            table.add_row(str(index), f"in flight {format_seconds(now - since)}", "-", "-", arch)
        if len(self.in_flight) > 4:
            table.add_row("", f"+{len(self.in_flight) - 4} more", "", "", "")
        for rank, r in enumerate(self.leaders[:top], 1):
            acc = r.get("val_acc")
            table.add_row(str(r["index"]), f"best #{rank}", f"{r['reward']:.4f}",
                          f"{acc:.4f}" if isinstance(acc, int | float) else "-",
                          r.get("architecture", ""))
        return table

    def _lead(self, record: dict[str, Any]) -> None:
        if record.get("status") != "ok" or not isinstance(record.get("reward"), int | float):
            return
        from nas_lightning.runs import genotype_text

        key = best_key(record)  # a multi-fidelity search: the highest rung first
        row = {"index": record["index"], "reward": key[1], "key": key,
               "val_acc": record.get("val_acc"),
               "architecture": genotype_text(record.get("genotype"))}
        self.leaders = sorted([*self.leaders, row],
                              key=lambda r: (-r["key"][0], -r["key"][1], r["index"]))[:5]

    def child_end(self, record: dict[str, Any], stats: dict[str, float],
                  best: float | None = None, done: int | None = None) -> None:
        """One finished child: its line (with time left) and the bar's step.

        ``best``: the best reward recorded when this child was recorded.
        ``done``: children finished by now (a batch's lines are printed after
        the whole batch ended; default: this child's number + 1).
        """
        self.done = max(self.done, record["index"] + 1, done or 0)
        self._finished_here += 1
        self.in_flight.pop(record["index"], None)
        self._lead(record)
        if isinstance(stats.get("baseline"), int | float):
            self.baselines[record["index"]] = float(stats["baseline"])
        if best is not None:
            self.best = best
        if not self.enabled:
            return
        eta = self.eta_seconds()
        # Under the live bar, which shows the best reward and the time left, the
        # line leaves them out (and fits an 80-column terminal).
        line = child_line(record, stats, self.total, best=best if self._bar is None else None)
        if eta is not None and self.done < self.total and self._bar is None:
            line += f" left~{format_seconds(eta)}"
        log.info(line)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done,
                             eta=format_seconds(eta) if eta is not None else "-",
                             best=f"{self.best:.4f}" if self.best is not None else "-")

    def close(self) -> None:
        """Stop the bar and give log handlers their streams back (idempotent)."""
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> SearchProgress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def end_summary(records: Sequence[dict[str, Any]], best: dict[str, Any] | None,
                run_dir: str | Path, top: int = 5, width: int = 80) -> list[str]:
    """The lines printed when a search ends, each at most ``width`` columns.

    The best ``top`` children (number, reward, accuracy, size), the best
    architecture in compact form wrapped to the width, and where its full
    genotype is (``best.json``).
    """
    ok = [r for r in records if r.get("status") == "ok" and r.get("reward") is not None]
    failed = len(records) - len(ok)
    lines = [f"{len(records)} children trained" + (f", {failed} failed" if failed else "")]
    if ok:
        lines.append(f"top {min(top, len(ok))} (child: reward, val_acc, params):")
        ranked = sorted(ok, key=lambda r: (*(-k for k in best_key(r)), r["index"]))
        for r in ranked[:top]:
            params = r.get("params")
            size = f", {params / 1e3:.1f}k" if isinstance(params, int | float) else ""
            reward = r.get("final_reward", r["reward"])
            lines.append(f"  child {r['index']}: {reward:.4f}, {r['val_acc']:.4f}{size}"
                         + _rung_text(r))
    if best is not None:
        lines.append(f"best child {best['index']}:")
        lines += _architecture_lines(best, Path(run_dir), width)
    return lines


def _architecture_lines(best: dict[str, Any], run_dir: Path, width: int) -> list[str]:
    """A best child's architecture in compact form, wrapped to ``width`` and indented,
    then where its full genotype is (``best.json``; the path is never cut)."""
    from nas_lightning.runs import genotype_text

    text = genotype_text(best.get("genotype"))
    wrapped = textwrap.wrap(text, width - 2, initial_indent="  ", subsequent_indent="  ",
                            break_on_hyphens=False) or ["  -"]
    return [*wrapped, f"full genotype: {_short_path(run_dir / 'best.json')}"]


def _short_path(path: Path) -> str:
    """``path`` relative to the working directory when that is shorter (never cut)."""
    full = os.path.abspath(path)
    try:
        rel = os.path.relpath(full)
    except ValueError:  # another drive
        return full
    return rel if len(rel) < len(full) else full


def sweep_summary(sweep_dir: str | Path, top: int = 5, width: int = 80) -> list[str]:
    """The lines printed when a sweep (Hydra multirun) ends, each at most ``width`` columns.

    Its jobs ranked by the best reward each found (job folder, status,
    children, best reward and child), then the best job's best architecture in
    compact form and where its full genotype is.
    """
    from nas_lightning.runs import find_runs, load_run, run_row

    runs = [load_run(p) for p in find_runs([str(sweep_dir)])]
    if not runs:
        return [f"sweep {_short_path(Path(sweep_dir))}: no search folder in it"]
    rows = [(run, run_row(run)) for run in runs]

    def rank(item: tuple[Any, dict[str, Any]]) -> tuple[bool, float, str]:
        reward = item[1]["best_reward"]
        return (reward is None, -(reward or 0.0), str(item[0].path))

    rows.sort(key=rank)
    def cut(name: str, room: int) -> str:
        return name if len(name) <= room else name[: room - 1] + "…"

    lines = [f"sweep of {len(runs)} searches",
             f"top {min(top, len(rows))} (job: status, children, best reward, child):"]
    for run, row in rows[:top]:
        best = (f"{row['best_reward']:.4f}, child {row['best_child']}"
                if row["best_reward"] is not None else "-")
        lines.append(f"  {cut(run.path.name, width - 36)}: {row['status']}, "
                     f"{row['children']}, {best}")
    winner, row = rows[0]
    if row["best_reward"] is not None and winner.best is not None:
        lines.append(f"best: {cut(winner.path.name, width - 20)}, "
                     f"child {winner.best.get('index')}:")
        lines += _architecture_lines(winner.best, winner.path, width)
    lines.append(f"sweep folder: {_short_path(Path(sweep_dir))}")
    return lines


def _rung_text(record: dict[str, Any]) -> str:
    """`` (rung 2, 9 epochs)`` for a child of a multi-fidelity search, else ``""``."""
    if record.get("rung") is None:
        return ""
    epochs = len(record.get("val_curve") or [])
    return f" (rung {record['rung']}, {epochs} epoch{'s' if epochs != 1 else ''})"
