"""One self-contained HTML page for a run or a sweep, readable without W&B.

``python -m nas_lightning.runs report <run or sweep> [-o report.html]`` writes
a single file (pictures embedded, no network, no scripts from elsewhere): for
each run its outcome, its pictures, a sortable table of its children (click
a column's header), the best architecture and the config; for several runs
(a sweep) a table of the runs first. Everything comes from the run folders.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas_lightning.runs import Run, child_rows, load_run, run_row

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #e8f5e9; }
pre { background: #f7f7f7; padding: 0.75em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.25em; }
"""

# Click a header to sort by that column (numbers as numbers, largest first, blanks last);
# again to reverse.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.dataset.order !== "desc";
      th.dataset.order = down ? "desc" : "asc";
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (!isNaN(nx) && !isNaN(ny)) return down ? ny - nx : nx - ny;
        if (!isNaN(nx) || !isNaN(ny)) return isNaN(nx) ? 1 : -1;  // blanks last
        return down ? String(y).localeCompare(String(x)) : String(x).localeCompare(String(y));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        shown = f"{value:.4f}"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = str(value)
    else:
        return f'<td data-value="{_esc(value)}">{_esc(value)}</td>'
    return f'<td class="num" data-value="{value}">{_esc(shown)}</td>'


def _table(rows: list[dict[str, Any]], table_id: str, best: Any = None,
           key: str = "index") -> str:
    if not rows:
        return "<p>No children recorded.</p>"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = [f'<table class="sortable" id="{table_id}"><thead><tr>']
    out += [f"<th>{_esc(c)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for row in rows:
        mark = ' class="best"' if best is not None and row.get(key) == best else ""
        out.append(f"<tr{mark}>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _pictures(path: Path) -> str:
    parts = []
    for png in sorted(path.glob("*.png")):
        try:
            data = base64.b64encode(png.read_bytes()).decode()
        except OSError:
            continue
        parts.append(f'<figure><img alt="{_esc(png.name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_esc(png.name)}</figcaption></figure>")
    return "".join(parts)


def _run_section(run: Run, number: int) -> str:
    row = run_row(run)
    config = ""
    try:
        config = (run.path / "config.yaml").read_text()
    except OSError:
        pass
    facts = ", ".join(f"{k}: {_esc(row[k])}" for k in
                      ("status", "strategy", "space", "children", "budget", "failed",
                       "best_reward", "best_child", "seed"))
    best = json.dumps(run.best, indent=2, sort_keys=True) if run.best else "-"
    return (
        f'<section class="run" id="run-{number}"><h2>{_esc(run.name)}</h2><p>{facts}</p>'
        f"{_pictures(run.path)}"
        f"<h3>Children</h3>{_table(child_rows(run), f'children-{number}', row['best_child'])}"
        f"<h3>Best architecture</h3><pre>{_esc(best)}</pre>"
        f"<h3>Config</h3><pre>{_esc(config)}</pre></section>"
    )


def render(runs: Sequence[Run], title: str) -> str:
    """The page for ``runs`` (one run, or the runs of a sweep)."""
    body = [f"<h1>{_esc(title)}</h1>"]
    if len(runs) > 1:
        rows = [run_row(r) for r in runs]
        scored = [r for r in rows if isinstance(r["best_reward"], (int, float))]
        top = max(scored, key=lambda r: r["best_reward"])["run"] if scored else None
        body.append("<h2>Runs</h2>" + _table(rows, "runs", top, key="run"))
    body += [_run_section(run, i) for i, run in enumerate(runs)]
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>"
        + "".join(body) + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(paths: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of the runs at ``paths``; default ``<first run>/report.html``."""
    runs = [load_run(p) for p in paths]
    if not runs:
        raise ValueError("no run folders to report")
    target = Path(out) if out else runs[0].path / "report.html"
    if not out and len(runs) > 1:
        target = runs[0].path.parent / "report.html"
    title = str(runs[0].path if len(runs) == 1 else target.parent)
    target.write_text(render(runs, f"nas-lightning: {title}"), encoding="utf-8")
    return target
