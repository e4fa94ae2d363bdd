"""Multi-fidelity search (``search.scheduler``): rungs, Optuna's stop decisions, records, resume."""

from __future__ import annotations

import math
import pickle
import signal

import pytest
from conftest import compose_config

from nas_lightning.core.child_record import ChildRecord, best_key
from nas_lightning.core.records import read_children
from nas_lightning.core.signals import SearchInterrupted
from nas_lightning.errors import ConfigError
from nas_lightning.execution.evaluator import RungStopper
from nas_lightning.execution.schedulers import RungPlan, RungTable, rung_plan
from nas_lightning.search.loop import run_search
from nas_lightning.search.resume import resume_config

ASHA = RungPlan("asha", min_epochs=1, reduction_factor=3, max_epochs=9)


def test_rungs_grow_by_the_factor_up_to_the_child_recipe():
    assert ASHA.epochs == (1, 3, 9)
    assert RungPlan("asha", 2, 2, 10).epochs == (2, 4, 8, 10)
    assert [ASHA.rung_of(e) for e in range(1, 10)] == [0, 0, 1, 1, 1, 1, 1, 1, 2]


@pytest.mark.parametrize("search, match", [
    ({"scheduler": "sha"}, "search.scheduler: must be one of none, asha, hyperband"),
    ({"scheduler": "asha", "min_epochs": 9}, "search.min_epochs: the first rung"),
    ({"scheduler": "asha", "min_epochs": 0}, "search.min_epochs: must be an integer >= 1"),
    ({"scheduler": "asha", "reduction_factor": 1}, "search.reduction_factor: must be an integer"),
])
def test_bad_settings_are_one_line_errors(search, match):
    with pytest.raises(ConfigError, match=match):
        rung_plan(search, max_epochs=9)
    assert rung_plan({"scheduler": "none"}, 9) is None


def test_asha_keeps_the_top_third_of_each_rung_as_results_arrive():
    table = RungTable(ASHA)
    values = [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.1, 0.8, 0.45]
    stops = [table.report(i, 1, v) for i, v in enumerate(values)]
    # With n rewards at the rung, a child goes on if it is among the best max(1, n // 3).
    expected = []
    for n in range(1, len(values) + 1):
        seen = sorted(values[:n], reverse=True)
        expected.append(values[n - 1] < seen[max(1, n // 3) - 1])
    assert stops == expected
    assert stops == [False, True, False, True, False, True, True, False, True]
    # the second rung compares only the children that reached it; the top never stops
    assert table.report(0, 2, 0.55) is False  # epoch 2 is no rung
    assert table.report(0, 3, 0.55) is False and table.report(2, 3, 0.5) is True
    assert table.report(0, 9, 0.0) is False
    assert table.counts() == [9, 2, 1]


def test_a_child_trained_again_gets_its_decisions_and_a_pickled_table_decides_the_same():
    table = RungTable(ASHA)
    for i, v in enumerate([0.5, 0.6, 0.2]):
        table.report(i, 1, v)
    assert table.report(2, 1, 0.99) is True  # retrained: the decision it got before
    copy = pickle.loads(pickle.dumps(table))
    assert copy.reports == table.reports
    for t in (table, copy):
        assert [t.report(3, 1, 0.55), t.report(4, 1, 0.1)] == [True, True]
    assert table.report(5, 1, math.nan) is True  # a reward that is not finite ranks last


def test_hyperband_spreads_children_over_brackets():
    table = RungTable(RungPlan("hyperband", 1, 3, 9))
    # bracket 0 checks at 1 epoch, the others later: some children pass their first rung
    # whatever they score, where ASHA would stop the worse ones
    stops = [table.report(i, 1, 0.1 if i % 2 else 0.9) for i in range(30)]
    asha = RungTable(ASHA)
    asha_stops = [asha.report(i, 1, 0.1 if i % 2 else 0.9) for i in range(30)]
    assert sum(stops) < sum(asha_stops)


def test_records_rank_by_rung_then_reward():
    low = ChildRecord(0, "ok", reward=0.9, val_acc=0.9, rung=0, final_reward=0.9).to_dict()
    high = ChildRecord(1, "ok", reward=0.5, val_acc=0.7, rung=1, final_reward=0.7).to_dict()
    assert low["rung"] == 0 and "rung" not in ChildRecord(2, "ok", reward=0.1).to_dict()
    assert best_key(high) > best_key(low)
    assert ChildRecord.from_dict(high).rung == 1
    with pytest.raises(ValueError, match="rung must be an integer >= 0"):
        ChildRecord(0, "ok", reward=0.1, rung=-1)


TINY_ASHA = [
    "logger=csv", "child.batch_size=64", "child.train_subset=256", "child.limit_val_batches=2",
    "dataset.val_size=256", "model.filters=4", "child.epochs=3", "search.scheduler=asha",
    "search.num_children=6", "strategy=random",
]


def _search(run_dir, *over):
    return run_search(compose_config("search", [f"run_dir={run_dir}", *TINY_ASHA, *over]))


def _same(record):
    return {k: v for k, v in record.items() if k not in ("seconds", "worker", "extra")}


def test_children_stop_at_rungs_and_the_strategy_hears_the_first_rung(tmp_path):
    result = _search(tmp_path / "a")
    records = read_children(tmp_path / "a")
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    epochs = [len(r["val_curve"]) for r in records]
    assert set(epochs) == {1, 3} and epochs[0] == 3  # the first child always goes on
    for r in records:
        assert r["reward"] == r["val_curve"][0]  # told: the reward at the first rung
        assert r["final_reward"] == r["val_acc"] == r["val_curve"][-1]
        assert r["rung"] == (1 if len(r["val_curve"]) == 3 else 0)
    stopped = [r for r in records if r["rung"] == 0]
    assert stopped and all(r["reward"] < max(x["reward"] for x in records) for r in stopped)
    best = result.best
    assert best["rung"] == 1
    assert best["final_reward"] == max(r["final_reward"] for r in records if r["rung"] == 1)
    # a child that goes on is the plain search's child: same weights, schedule and data
    plain = run_search(compose_config("search", [
        f"run_dir={tmp_path / 'plain'}", *TINY_ASHA[:-2], "search.scheduler=none",
        "search.num_children=1", "strategy=random"]))
    assert plain.records[0]["val_curve"] == records[0]["val_curve"]


def test_a_search_killed_inside_a_rung_resumes_to_the_same_records(tmp_path, monkeypatch):
    full = [_same(r) for r in _search(tmp_path / "full").records]
    k = next(r["index"] for r in full if r["index"] > 0 and r["rung"] == 1)
    original = RungStopper.on_validation_end

    def killed(self, trainer, pl_module):  # child k, between its first and second rung
        if self.index == k and trainer.current_epoch == 1:
            raise SearchInterrupted(signal.SIGTERM)
        original(self, trainer, pl_module)

    monkeypatch.setattr(RungStopper, "on_validation_end", killed)
    part = tmp_path / "part"
    with pytest.raises(SearchInterrupted):
        _search(part)
    monkeypatch.undo()
    assert [r["index"] for r in read_children(part)] == list(range(k))
    cfg = compose_config("search", [f"run_dir={part}", *TINY_ASHA, f"resume={part}"])
    run_search(resume_config(cfg, overrides=[]))
    assert [_same(r) for r in read_children(part)] == full


def test_scheduler_needs_a_runner_that_trains(tmp_path):
    from conftest import table_cfg

    with pytest.raises(ConfigError, match="search.scheduler: stops children of the Lightning"):
        run_search(table_cfg(tmp_path / "t", "child.epochs=3", "search.scheduler=asha"))


def test_max_minutes_stops_asking_and_the_children_in_flight_finish(tmp_path, monkeypatch):
    from conftest import table_cfg

    from nas_lightning.execution import engine

    ticks = iter(range(0, 10_000, 10))  # a clock that moves 10 s each time it is read
    monkeypatch.setattr(engine, "clock", lambda: float(next(ticks)))
    result = run_search(table_cfg(tmp_path / "t", "search.num_children=50",
                                  "search.max_minutes=0.5", "runner.seconds=0.01"))
    assert 1 <= len(result.records) < 50 and result.summary["stopped"] == "time"
    assert all(r["status"] == "ok" for r in result.records)
    with pytest.raises(ConfigError, match="search.max_minutes"):
        run_search(table_cfg(tmp_path / "u", "search.max_minutes=0"))
