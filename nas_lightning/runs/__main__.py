"""``python -m nas_lightning.runs list|show|compare|report|study``: search runs as tables.

    python -m nas_lightning.runs list                          # every run under runs/search
    python -m nas_lightning.runs list "runs/search/2026-12-*" --sort best_reward
    python -m nas_lightning.runs show runs/search/<run> --sort reward --top 10
    python -m nas_lightning.runs compare runs/search/multirun/<sweep>
    python -m nas_lightning.runs report runs/search/<run or sweep>   # one HTML page
    python -m nas_lightning.runs study runs/search/<run>   # study.db for optuna-dashboard

Sorting: ``--sort KEY`` on any column; rewards and accuracies sort best
first, everything else ascending; ``--reverse`` flips it. Tables use rich on
a terminal and aligned plain text otherwise (``--plain`` forces it).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas_lightning.runs import (
    Run,
    child_rows,
    config_differences,
    find_runs,
    load_run,
    run_row,
)

DESCENDING = ("reward", "best_reward", "val_acc")

# Characters a terminal acts on rather than prints: C0/C1 controls (escape sequences that
# retitle the window, clear the screen or erase lines) and the bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``), never acted on."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float) and key == "wall_seconds":
        return _duration(value)
    if isinstance(value, float) and key == "seconds":
        return f"{value:.1f}"
    if key == "params" and isinstance(value, int | float):
        return f"{value / 1e3:.1f}k" if value < 1e6 else f"{value / 1e6:.2f}M"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def sort_rows(rows: list[dict[str, Any]], key: str | None, reverse: bool = False) -> list:
    """Rows sorted by ``key``; missing values always last."""
    if not key:
        return rows
    if rows and key not in rows[0]:
        raise SystemExit(f"error: --sort {key}: no such column; columns: {', '.join(rows[0])}")
    descending = (key in DESCENDING) != reverse
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    try:
        present.sort(key=lambda r: r[key], reverse=descending)
    except TypeError:  # mixed types: compare as text
        present.sort(key=lambda r: str(r[key]), reverse=descending)
    return present + missing


def render(rows: list[dict[str, Any]], columns: Sequence[str], title: str | None,
           plain: bool, out: Any = None) -> None:
    """Print a table: rich on a terminal, aligned text otherwise."""
    out = out or sys.stdout
    # Every text comes from files a search (or anyone) wrote: shown, never interpreted.
    cells = [[printable(_fmt(c, row.get(c))) for c in columns] for row in rows]
    title = printable(title) if title is not None else None
    if not plain:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(title) if title is not None else None, title_justify="left")
        for c in columns:
            numeric = any(isinstance(r.get(c), int | float) for r in rows)
            table.add_column(Text(printable(c)), justify="right" if numeric else "left",
                             overflow="fold" if c in ("genotype", "error", "run") else "ellipsis")
        for line in cells:
            table.add_row(*(Text(cell) for cell in line))
        Console(file=out).print(table)
        return
    columns = [printable(c) for c in columns]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    if title:
        print(title, file=out)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=out)


def _short(path: Path) -> str:
    """The path relative to here when it lies below, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def warn(message: str) -> None:
    """One line on stderr: a folder or record skipped, the command goes on."""
    print(f"warning: {printable(message)}", file=sys.stderr)


def _runs(patterns: list[str]) -> list[Run]:
    """The runs found, each read with its ``run_row``; a folder that cannot be read is skipped."""
    paths = find_runs(patterns)
    if not paths:
        raise SystemExit(f"error: no search run folders found in {' '.join(patterns)}")
    runs = []
    for path in paths:
        try:
            run = load_run(path)
            run_row(run)  # everything the tables read: a folder that fails here is skipped
        except Exception as err:  # any odd content: this folder only
            warn(f"{_short(path)}: skipped, cannot be read ({type(err).__name__}: {err})")
            continue
        if run.bad_records:
            warn(f"{_short(path)}: {run.bad_records} malformed record(s) in children.jsonl "
                 "skipped")
        runs.append(run)
    if not runs:
        raise SystemExit(f"error: no readable search run folders in {' '.join(patterns)}")
    return runs


def cmd_list(args: argparse.Namespace) -> None:
    rows = []
    for run in _runs(args.paths):
        row = run_row(run)
        row["run"] = _short(run.path)
        rows.append(row)
    columns = ["run", "space", "strategy", "children", "failed", "best_reward", "best_child",
               "wall_seconds", "status"]
    render(sort_rows(rows, args.sort, args.reverse), columns, None, args.plain)


def cmd_show(args: argparse.Namespace) -> None:
    run = _runs([args.run])[0]
    rows = sort_rows(child_rows(run), args.sort, args.reverse)
    if args.top:
        rows = rows[: args.top]
    columns = [c for c in (rows[0] if rows else {"index": None}) if c not in ("genotype", "error")]
    if any("error" in r for r in rows):
        columns.append("error")
    if args.genotype:
        columns.append("genotype")
    head = run_row(run)
    title = (f"{_short(run.path)}: {head['space']} with {head['strategy']}, "
             f"{head['children']}/{head['budget'] or '?'} children, best reward "
             f"{_fmt('best_reward', head['best_reward'])} (child {head['best_child']}), "
             f"{head['status']}")
    if run.torn_lines:
        title += f"; {run.torn_lines} unreadable line(s) in children.jsonl skipped"
    render(rows, columns, title, args.plain)


def cmd_compare(args: argparse.Namespace) -> None:
    runs = _runs(args.paths)
    names = [_short(r.path) for r in runs]
    if len(set(names)) == len(names) and len(names) > 1:  # drop the common prefix
        common = os.path.commonpath(names)
        if common and common not in names:
            names = [os.path.relpath(n, common) for n in names]
    heads = [run_row(r) for r in runs]
    order = list(range(len(runs)))
    if args.sort:
        order = [heads.index(h) for h in sort_rows(list(heads), args.sort, args.reverse)]
    keys = ["children", "failed", "best_reward", "best_child", "wall_seconds", "status"]
    rows = [{"": k, **{names[i]: _fmt(k, heads[i][k]) for i in order}} for k in keys]
    for key, values in config_differences(runs).items():
        rows.append({"": key, **{names[i]: _fmt(key, values[i]) for i in order}})
    render(rows, [""] + [names[i] for i in order], "runs compared (config: keys that differ)",
           args.plain)


def cmd_report(args: argparse.Namespace) -> None:
    from nas_lightning.runs.report import write_report

    runs = _runs(args.paths)
    print(write_report([r.path for r in runs], args.output))


def cmd_study(args: argparse.Namespace) -> None:
    from nas_lightning.runs.study import STUDY_NAME, write_study

    for run in _runs(args.paths):
        try:
            path = write_study(run.path)
        except Exception as err:  # any odd content: this run only
            warn(f"{_short(run.path)}: no study written ({type(err).__name__}: {err})")
            continue
        print(f"{path}  (optuna-dashboard sqlite:///{path}; study name {STUDY_NAME!r})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nas_lightning.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sort", help="column to sort by (rewards: best first)")
        p.add_argument("--reverse", action="store_true", help="flip the sort order")
        p.add_argument("--plain", action="store_true", help="plain text, not a rich table")

    p = sub.add_parser("list", help="one line per run")
    p.add_argument("paths", nargs="*", default=["runs/search"],
                   help="run folders, folders holding runs, or globs (default: runs/search)")
    common(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one line per child of a run")
    p.add_argument("run", help="a run folder")
    p.add_argument("--top", type=int, help="only the first N rows after sorting")
    p.add_argument("--genotype", action="store_true", help="add each child's genotype")
    common(p)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("compare", help="runs side by side, with the config keys that differ")
    p.add_argument("paths", nargs="+", help="run folders, folders holding runs, or globs")
    common(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("report", help="one self-contained HTML page for a run or a sweep")
    p.add_argument("paths", nargs="+", help="run folders, folders holding runs, or globs")
    p.add_argument("-o", "--output", help="the page to write (default: report.html in the "
                   "run folder, or in the sweep folder for several runs)")
    p.set_defaults(func=cmd_report, plain=True)
    p = sub.add_parser("study", help="write each run as an Optuna study (study.db)")
    p.add_argument("paths", nargs="+", help="run folders, folders holding runs, or globs")
    p.set_defaults(func=cmd_study, plain=True)
    args = parser.parse_args(argv)
    args.plain = args.plain or not sys.stdout.isatty()
    try:
        args.func(args)
    except SystemExit as err:
        if isinstance(err.code, str):
            print(err.code, file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
