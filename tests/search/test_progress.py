"""The start banner, per-child lines with time left, the live bar, the thread default."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from omegaconf import OmegaConf

from nas_lightning.core.threads import auto_num_threads, resolve_num_threads
from nas_lightning.errors import ConfigError
from nas_lightning.search import progress as progress_mod
from nas_lightning.search.progress import (
    SearchProgress,
    banner_lines,
    child_line,
    format_seconds,
    progress_mode,
)


def _cfg(tmp_path, *overrides):
    return compose_config("search", [f"run_dir={tmp_path / 'run'}", *overrides])


def _record(index, reward, status="ok"):
    return {"index": index, "status": status, "reward": reward, "val_acc": reward,
            "params": 12345, "seconds": 1.5, "extra": {},
            "error": None if status == "ok" else "boom"}


def test_format_seconds():
    assert format_seconds(0) == "0s"
    assert format_seconds(59.4) == "59s"
    assert format_seconds(185) == "3m05s"
    assert format_seconds(3 * 3600 + 120) == "3h02m"


def test_banner_names_space_strategy_budget_and_run_folder(tmp_path):
    lines = banner_lines(_cfg(tmp_path, "experiment=nasnet", "search.num_children=7"),
                         threads=1)
    assert all(len(line) <= 80 for line in lines[:-1])  # a long line goes on below
    text = " ".join(line.strip() for line in lines)
    assert "NASNetSpace" in text and "PPO" in text
    assert "7 children" in text and "1 torch thread" in text
    assert "EmbeddedFashionMNIST" in text
    assert str((tmp_path / "run").resolve()) in lines[-1]


def test_banner_of_a_resumed_run_counts_recorded_children(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / "children.jsonl").write_text('{"index": 0}\n{"index": 1}\n')
    text = "\n".join(banner_lines(_cfg(tmp_path, f"resume={run}")))
    assert "resuming after 2" in text and str(run.resolve()) in text


def test_banner_shows_an_executor_when_configured(tmp_path):
    cfg = _cfg(tmp_path)
    OmegaConf.set_struct(cfg, False)
    cfg.executor = {"_target_": "x.RayExecutor", "max_concurrent": 3}
    assert any("RayExecutor, 3 children at once" in line for line in banner_lines(cfg))


def test_banner_is_printed_before_torch_is_imported():
    code = (
        "import sys, logging; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from hydra import compose, initialize_config_dir\n"
        "from nas_lightning.search.progress import print_banner\n"
        f"with initialize_config_dir({str(ROOT / 'conf')!r}, version_base='1.3'):\n"
        "    cfg = compose('search', overrides=['run_dir=/tmp/x'])\n"
        "print_banner(cfg)\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True).stdout
    assert "search: " in out and "10 children" in out
    assert "torch imported: False" in out


def test_progress_mode(tmp_path):
    tty = type("Tty", (), {"isatty": lambda self: True})()
    assert progress_mode(_cfg(tmp_path), stream=tty) == "bar"
    assert progress_mode(_cfg(tmp_path), stream=io.StringIO()) == "plain"
    assert progress_mode(_cfg(tmp_path, "logger=csv"), stream=tty) == "plain"
    assert progress_mode(_cfg(tmp_path, "search.progress=plain"), stream=tty) == "plain"
    with pytest.raises(ConfigError, match="search.progress"):
        progress_mode(_cfg(tmp_path, "search.progress=fancy"))


def test_child_lines_carry_time_left_until_the_last(tmp_path, caplog, monkeypatch):
    clock = iter([100.0, 100.0, 110.0, 130.0])
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: next(clock))
    progress_mod._bannered.clear()
    caplog.set_level(logging.INFO, logger="nas_lightning.search")
    p = SearchProgress(_cfg(tmp_path, "search.progress=plain", "search.num_children=3"), 3)
    with p:
        p.child_end(_record(0, 0.5), {"baseline": 0.4, "advantage": 0.1}, 0.5)
        p.child_end(_record(1, None, status="failed"), {}, 0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("search: ")
    child = [line for line in lines if line.startswith("child ")]
    assert child[0].startswith("child 0 (1/3) reward=0.5000 adv=+0.10 params=12.3k")
    assert child[0].endswith("left~20s")  # 10 s per child, 2 to go
    assert child[1].startswith("child 1 (2/3) failed (boom)") and child[1].endswith("left~15s")


def test_last_child_line_has_no_time_left():
    line = child_line(_record(2, 0.7), {}, 3, best=0.7)
    assert line == "child 2 (3/3) reward=0.7000 params=12.3k 1.5s best=0.7000"


def test_child_lines_fit_an_80_column_terminal():
    # under the live bar (a terminal): no best and no time left on the line
    record = {**_record(999, 0.9123), "seconds": 1234.5}
    line = child_line(record, {"baseline": 0.8, "advantage": -1.234}, 1000)
    assert line == "child 999 (1000/1000) reward=0.9123 adv=-1.23 params=12.3k 20m34s"
    # plain lines (not a terminal: a log file, a batch job) keep the best reward
    line = child_line({**record, "index": 98, "seconds": 123.4}, {"advantage": -1.2}, 100,
                      best=0.9123)
    assert line.endswith(" 2m03s best=0.9123")
    mnas = {**record, "reward": 0.7, "extra": {"latency_ms": 12.345}}
    assert "val_acc=0.9123" in child_line(mnas, {}, 1000)  # shown where it is not the reward


def test_bar_prints_log_lines_above_it_and_restores_handlers(tmp_path, capsys):
    progress_mod._bannered.clear()
    logger = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    old_level = logging.getLogger("nas_lightning.search").level
    logging.getLogger("nas_lightning.search").setLevel(logging.INFO)
    try:
        p = SearchProgress(_cfg(tmp_path, "search.progress=bar", "search.num_children=2"), 2)
        with p:
            assert p._bar is not None
            p.child_end(_record(0, 0.6), {}, 0.6)
        assert p._bar is None and handler.stream is sys.stdout
    finally:
        logger.removeHandler(handler)
        logging.getLogger("nas_lightning.search").setLevel(old_level)
    assert "child 0 (1/2) reward=0.6000" in capsys.readouterr().out


def test_live_table_lists_children_in_flight_and_the_best_within_80_columns(tmp_path):
    from rich.console import Console

    from nas_lightning.genotypes import genotype_to_dict, named_genotypes
    from nas_lightning.runs import genotype_text

    genotype = genotype_to_dict(named_genotypes()["nasnet_a"])
    p = SearchProgress(_cfg(tmp_path, "search.progress=plain"), 10, enabled=False)
    for i in range(7):
        p.child_start(i, genotype_text(genotype))
    for i, reward in ((0, 0.61), (1, 0.72), (2, 0.55), (3, 0.70)):
        p.child_end({**_record(i, reward), "genotype": genotype}, {}, reward)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(p.table(width=80))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    rows = [line.split()[:3] for line in lines[1:]]
    assert rows == [["4", "in", "flight"], ["5", "in", "flight"], ["6", "in", "flight"],
                    ["1", "best", "#1"], ["3", "best", "#2"], ["0", "best", "#3"]]
    assert "0.7200" in lines[4] and lines[4].rstrip().endswith("…")  # cut to fit
    assert "sep_conv" in lines[4]


def test_bar_shows_the_live_table_above_it(tmp_path, monkeypatch):
    from rich.console import Console

    out = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda **kw: Console(
        file=out, width=80, force_terminal=True, **kw))
    p = SearchProgress(_cfg(tmp_path, "search.progress=bar", "search.num_children=2"), 2)
    progress_mod._bannered.add(str(p.cfg.run_dir))  # no banner: the table alone
    with p:
        p.child_start(0, "conv3x3")
        p._bar.refresh()
        shown = out.getvalue()
        p.child_end(_record(0, 0.6), {}, 0.6)
    assert "in flight" in shown and "conv3x3" in shown and "children" in shown
    frame = shown[shown.rindex("state"):]  # the last frame drawn: the table above the bar
    assert frame.index("in flight") < frame.index("children")


def test_sweep_summary_ranks_the_jobs_and_fits_80_columns(tmp_path):
    from conftest import table_cfg

    from nas_lightning.cli import SweepSummary
    from nas_lightning.search.loop import run_search
    from nas_lightning.search.progress import sweep_summary

    sweep = tmp_path / "sweep"
    bests = {}
    for seed in (0, 1, 2):
        name = f"{seed}_seed-{seed}_and_a_very_long_override_list_that_does_not_fit_the_line"
        result = run_search(table_cfg(sweep / name, f"seed={seed}", "search.num_children=3"))
        bests[name] = result.best["reward"]
    (sweep / "empty").mkdir()  # not a search: left out
    lines = sweep_summary(sweep)
    assert lines[0] == "sweep of 3 searches"
    ranked = sorted(bests, key=lambda n: -bests[n])
    jobs = lines[2:5]
    for line, name in zip(jobs, ranked, strict=True):
        assert line.startswith("  " + name[:20]) and line.rstrip().count("…") == 1
        assert f"{bests[name]:.4f}" in line and ": done, 3, " in line
    assert lines[5].startswith(f"best: {ranked[0][:20]}")
    assert lines[-2].startswith("full genotype: ") and lines[-2].endswith("best.json")
    label, folder = lines[-1].split(": ", 1)  # the path whole (relative where shorter)
    assert label == "sweep folder" and Path(folder).resolve() == sweep.resolve()
    assert all(len(line) <= 80 for line in lines[:-2])
    nothing = sweep_summary(tmp_path / "nothing")
    assert len(nothing) == 1 and nothing[0].startswith("sweep ")
    assert nothing[0].endswith(": no search folder in it")
    assert Path(nothing[0][len("sweep "):-len(": no search folder in it")]).resolve() == (
        tmp_path / "nothing").resolve()
    # the Hydra callback prints it (and says why when it cannot)
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        SweepSummary().on_multirun_end(cfg)
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {}}))
    printed = out.getvalue().splitlines()
    assert printed[:len(lines)] == lines and printed[-1].startswith("no sweep summary: ")


def test_auto_threads_share_free_cores():
    assert auto_num_threads(cores=2, load=0.3) == 2          # idle: all cores
    assert auto_num_threads(cores=2, load=9.0) == 1          # busy machine: one thread
    assert auto_num_threads(cores=64, load=1.0) == 4         # capped
    assert auto_num_threads(concurrent=2, cores=4, load=0.0) == 2
    assert auto_num_threads(concurrent=8, cores=4, load=0.0) == 1


def test_resolve_num_threads(monkeypatch):
    assert resolve_num_threads(3) == 3
    assert resolve_num_threads(None) is None
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("nas_lightning.core.threads.usable_cores", lambda: 8)
    monkeypatch.setattr("nas_lightning.core.threads.other_load", lambda: 1.0)
    assert resolve_num_threads("auto") == 4
    assert resolve_num_threads("auto", {"max_concurrent": 4}) == 2
    assert resolve_num_threads("auto", {"max_concurrent": 2, "cpus_per_child": 1}) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_num_threads("auto") is None  # the user's choice stands
    for bad in (0, -2, "many", True):
        with pytest.raises(ConfigError, match="search.num_threads"):
            resolve_num_threads(bad)


def test_tiny_search_prints_banner_then_a_line_per_child(tiny_search_cfg, caplog):
    from nas_lightning.search.loop import run_search

    progress_mod._bannered.clear()
    caplog.set_level(logging.INFO, logger="nas_lightning.search")
    run_search(tiny_search_cfg())
    lines = [r.getMessage() for r in caplog.records]
    first_child = next(i for i, line in enumerate(lines) if line.startswith("child 0 (1/2)"))
    assert any(line.startswith("search: ") for line in lines[:first_child])
    assert "left~" in lines[first_child]
    assert sum(line.startswith("child ") for line in lines) == 2


def test_batch_mode_lines_show_each_childs_own_best_and_no_time_left_at_the_end(
        tmp_path, caplog):
    """A batch's lines come out together, after the batch: they must not mislead."""
    from conftest import table_cfg

    from nas_lightning.search.loop import run_search

    progress_mod._bannered.clear()
    caplog.set_level(logging.INFO, logger="nas_lightning.search")
    result = run_search(table_cfg(tmp_path, "search.progress=plain", "strategy=reinforce",
                                  "search.mode=batch", "search.batch_size=3",
                                  "search.num_children=6"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("child ")]
    assert len(lines) == 6
    best = None
    for record, line in zip(result.records, lines, strict=True):
        best = record["reward"] if best is None else max(best, record["reward"])
        assert line.startswith(f"child {record['index']} ")
        assert line.split(" best=")[1].split()[0] == f"{best:.4f}"  # its own, not the batch's
        assert " adv=" not in line  # a batch's mean advantage is not the child's
    assert not any("left~" in line for line in lines[3:])  # the search had ended
    assert all("left~" in line for line in lines[:3])
