"""`runs report`: one self-contained HTML page per run or sweep, checked in headless Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from nas_lightning.runs.report import write_report

PNG = base64.b64decode(  # a 1x1 picture
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
HOSTILE = '<script>document.title="pwned"</script>[link=x]\x1b]0;t\x07'


def make_run(path: Path, rewards: list[float | None]) -> Path:
    path.mkdir(parents=True)
    config = {"seed": 0, "search_space": {"_target_": "nas_lightning.spaces.NASNetSpace"},
              "strategy": {"_target_": "nas_lightning.strategies.Reinforce"},
              "search": {"num_children": len(rewards)}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [json.dumps({"index": i, "status": "ok" if r is not None else "failed",
                         "reward": r, "val_acc": r, "params": 1000 + i, "seconds": 1.0,
                         "genotype": {"kind": "x", "note": HOSTILE},
                         "error": None if r is not None else HOSTILE})
             for i, r in enumerate(rewards)]
    (path / "children.jsonl").write_text("\n".join(lines) + "\n")
    (path / "best.json").write_text(json.dumps({"index": 1, "note": HOSTILE}))
    (path / "reward_curve.png").write_bytes(PNG)
    return path


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.scripts += tag == "script"


def test_report_holds_children_pictures_best_and_config_with_text_escaped(tmp_path):
    run = make_run(tmp_path / "run", [0.5, 0.9, None])
    out = write_report([run])
    assert out == run / "report.html"
    text = out.read_text()
    page = _Page()
    page.feed(text)
    assert page.scripts == 1  # only the page's own sorting script: record text is escaped
    rows = [a for t, a in page.tags if t == "tr"]
    assert len(rows) == 1 + 3 and {"class": "best"} in rows
    imgs = [a for t, a in page.tags if t == "img"]
    assert imgs and imgs[0]["src"].startswith("data:image/png;base64,")
    assert "&lt;script&gt;" in text and "pwned" in text
    assert "http" not in text.replace("http-equiv", "")  # nothing loaded from elsewhere


def test_a_sweep_report_starts_with_a_table_of_its_runs(tmp_path):
    sweep = tmp_path / "sweep"
    runs = [make_run(sweep / str(i), [0.1 * (i + 1), 0.2]) for i in range(3)]
    out = write_report(runs)
    assert out == sweep / "report.html"
    text = out.read_text()
    assert text.count('<section class="run"') == 3 and 'id="runs"' in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: clicks the reward header and records the order
# and any error, where --dump-dom can read them.
PROBE = """<script>
window.addEventListener("error", function (e) { document.body.dataset.error = e.message; });
var t = document.getElementById("children-0");
var heads = Array.prototype.slice.call(t.tHead.rows[0].cells);
heads.find(function (c) { return c.textContent === "reward"; }).click();
document.body.dataset.order = Array.prototype.map.call(t.tBodies[0].rows,
  function (r) { return r.cells[0].textContent; }).join(",");
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_loads_and_sorts_in_headless_chromium(tmp_path):
    run = make_run(tmp_path / "run", [0.5, 0.9, None, 0.7])
    page = write_report([run])
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr
    assert 'data-error' not in dom.stdout
    assert 'data-order="1,3,0,2"' in dom.stdout  # best reward first, the failed child last
    assert dom.stdout.count("<tr") == 5
    shot = tmp_path / "report.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,1600",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_report_command_writes_the_page_and_prints_its_path(tmp_path, capsys):
    from nas_lightning.runs.__main__ import main

    run = make_run(tmp_path / "run", [0.5, 0.9])
    main(["report", str(run), "-o", str(tmp_path / "page.html")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "page.html")
    assert "<table" in (tmp_path / "page.html").read_text()
