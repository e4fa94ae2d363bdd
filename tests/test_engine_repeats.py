"""search.repeats: a proposal of an architecture already trained is told its reward, not trained."""

from __future__ import annotations

import csv
import random
import shutil

import conftest
import pytest
from conftest import compose_config, interrupt_at, load_benchmark

from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Result
from nas_lightning.execution.repeats import Repeats
from nas_lightning.execution.simulated import TableRunner
from nas_lightning.search.loop import run_search
from nas_lightning.search.records import read_children
from nas_lightning.search.resume import resume_config
from nas_lightning.strategies.base import Strategy
from nas_lightning.strategies.random_search import RandomSearch


def table_cfg(run_dir, *overrides):
    return conftest.table_cfg(run_dir, "strategy=random", *overrides)


@pytest.fixture
def three_archs(monkeypatch):
    """Random search that cycles over three architectures (a strategy that repeats)."""
    archs = []

    def propose(self, n):
        if not archs:
            rng = random.Random(1)
            while len(archs) < 3:
                a = self.space.sample(rng)
                if a not in archs:
                    archs.append(a)
        return [self._make(archs[(self.num_proposed + i) % 3]) for i in range(n)]

    monkeypatch.setattr(RandomSearch, "_propose", propose)
    return archs


@pytest.fixture
def tells(monkeypatch):
    """Every (actions, reward) the strategy is told."""
    seen = []
    original = Strategy.tell

    def tell(self, proposal, reward):
        seen.append((tuple(proposal.actions), reward))
        return original(self, proposal, reward)

    monkeypatch.setattr(Strategy, "tell", tell)
    return seen


def test_repeats_are_told_the_recorded_reward_and_are_not_children(tmp_path, three_archs,
                                                                   tells):
    result = run_search(table_cfg(tmp_path, "search.num_children=5", "search.reuse_limit=4"))
    records = result.records
    assert len(records) == 5
    # children 0-2: the three architectures; then 4 reused proposals before each of 3 and 4
    assert [tuple(r["actions"]) for r in records[:3]] == [tuple(a) for a in three_archs]
    assert result.summary["reused"] == 8
    assert result.strategy.num_proposed == result.strategy.num_told == 13
    reward_of = {tuple(r["actions"]): r["reward"] for r in records[:3]}
    assert all(reward == reward_of[a] for a, reward in tells)
    assert [r["index"] for r in records] == list(range(5))  # no gap: repeats are not children


def test_train_trains_every_repeat(tmp_path, three_archs):
    result = run_search(table_cfg(tmp_path, "search.num_children=5", "search.repeats=train"))
    assert [tuple(r["actions"]) for r in result.records[3:]] == [tuple(a) for a in three_archs[:2]]
    assert result.summary["reused"] == 0
    assert result.strategy.num_told == 5


def test_the_papers_presets_train_repeats():
    for name in ("nas_rl", "nasnet", "mnasnet", "mobilenetv3_large", "mobilenetv3_small"):
        cfg = compose_config("search", [f"experiment={name}"])
        assert cfg.search.repeats == "train", name
    assert compose_config("search", []).search.repeats == "reuse"


def test_reused_proposals_are_logged(tmp_path, three_archs):
    run_search(table_cfg(tmp_path, "search.num_children=4", "search.reuse_limit=3"))
    with open(tmp_path / "metrics_repeat.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["repeat/count"]) for r in rows] == [1, 2, 3]
    assert {int(r["repeat/of_child"]) for r in rows} == {0, 1, 2}


def test_a_failed_child_is_trained_again_not_reused(tmp_path, three_archs, monkeypatch):
    original = TableRunner.run

    def fail_first(self, trial):
        if trial.index == 0:
            return Result.failure(trial, "RuntimeError: out of memory")
        return original(self, trial)

    monkeypatch.setattr(TableRunner, "run", fail_first)
    result = run_search(table_cfg(tmp_path, "search.num_children=4"))
    assert [r["status"] for r in result.records] == ["failed", "ok", "ok", "ok"]
    assert result.records[3]["actions"] == result.records[0]["actions"]  # trained again


def test_resume_reuses_as_the_uninterrupted_search(tmp_path, three_archs, monkeypatch):
    over = ["search.num_children=7", "search.reuse_limit=2"]
    full = run_search(table_cfg(tmp_path / "full", *over))
    cycle = RandomSearch._propose
    interrupt_at(monkeypatch, TableRunner, 5)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_search(table_cfg(part, *over))
    monkeypatch.undo()
    monkeypatch.setattr(RandomSearch, "_propose", cycle)  # undone with the crash
    result = run_search(resume_config(table_cfg(part, *over, f"resume={part}"),
                                      overrides=[]))
    assert [r["actions"] for r in read_children(part)] == [r["actions"] for r in full.records]
    assert result.summary["reused"] == full.summary["reused"] == 8
    assert result.strategy.num_told == full.strategy.num_told


@pytest.mark.parametrize("override, key", [("search.repeats=sometimes", "search.repeats"),
                                           ("search.reuse_limit=-1", "search.reuse_limit")])
def test_repeat_settings_are_checked(tmp_path, override, key):
    with pytest.raises(ConfigError) as err:
        run_search(table_cfg(tmp_path, override))
    assert err.value.key == key


def test_the_rule_alone():
    rule: Repeats[float] = Repeats("reuse", limit=2)
    assert rule.reuse((0, 1)) is None
    rule.add((0, 1), 0.5)
    rule.add((0, 1), 0.9)  # the first measurement is kept
    assert [rule.reuse((0, 1)) for _ in range(3)] == [0.5, 0.5, None]
    assert rule.reuse((0, 1)) == 0.5  # the row restarts after a trained child
    assert Repeats("train").reuse((0, 1)) is None
    rule.add((), 0.3)  # no actions (NetAdapt's genotype edits): never reused
    assert rule.reuse(()) is None
    with pytest.raises(ConfigError):
        Repeats("never")


def test_efficiency_benchmark_counts_children_as_the_search_does():
    bench = load_benchmark("strategy_efficiency")
    problem = bench.ChainFormula(num=3, size=2)  # 8 architectures: repeats come soon
    factory = bench.PRESETS["random_with_replacement"][1]
    reuse = bench.run(factory, problem, seed=0, budget=12, repeats="reuse", reuse_limit=5)
    train = bench.run(factory, problem, seed=0, budget=12, repeats="train")
    assert len(reuse["curve"]) == len(train["curve"]) == 12
    assert reuse["reused"] > 0 and train["reused"] == 0
    assert reuse["distinct"] == 8 > train["distinct"]  # reuse spends children on new ones


def test_efficiency_benchmark_overrides_change_the_strategies_not_the_baselines(monkeypatch):
    bench = load_benchmark("strategy_efficiency")
    problem = bench.ChainFormula(num=3, size=2)
    built = bench._with_overrides("ppo", ["strategy.entropy_weight=0.3"])(problem.space, 0, 6)
    assert built.entropy_weight == 0.3
    overridden = []
    with_overrides = bench._with_overrides
    monkeypatch.setattr(bench, "_with_overrides",
                        lambda name, o: overridden.append((name, o)) or with_overrides(name, o))
    bench.evaluate(problem, ["random", "random_with_replacement", "ppo"], seeds=1, budgets=[4],
                   overrides=["strategy.batch_size=1"])
    assert overridden == [("ppo", ["strategy.batch_size=1"])]


def test_a_failed_child_is_told_none_and_replayed_as_none(tmp_path, three_archs, tells,
                                                         monkeypatch):
    original = TableRunner.run

    def fail_first(self, trial):
        if trial.index == 0:
            return Result.failure(trial, "RuntimeError: out of memory")
        return original(self, trial)

    monkeypatch.setattr(TableRunner, "run", fail_first)
    over = ["search.num_children=5", "search.reuse_limit=2"]
    full = run_search(table_cfg(tmp_path / "full", *over))
    assert tells[0] == (tuple(full.records[0]["actions"]), None)  # README: failed -> None
    assert full.strategy.num_told == len(tells)
    live = list(tells)
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    (part / "strategy.pt").unlink()  # rebuilt from the records: the same tells, None included
    tells.clear()
    result = run_search(resume_config(table_cfg(part, *over, f"resume={part}"), overrides=[]))
    assert tells == live
    assert result.summary["reused"] == full.summary["reused"] > 0
    assert [r["actions"] for r in read_children(part)] == [r["actions"] for r in full.records]
