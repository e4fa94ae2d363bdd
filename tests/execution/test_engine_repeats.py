"""search.repeats: a proposal of an architecture already trained is told its reward, not trained."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import random
import shutil

import conftest
import pytest
from conftest import compose_config, interrupt_at, load_benchmark

from nas_lightning.core.records import read_children
from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Result
from nas_lightning.execution.repeats import Repeats, proposal_key
from nas_lightning.execution.simulated import TableRunner
from nas_lightning.genotypes.base import architecture_key
from nas_lightning.search.loop import run_search
from nas_lightning.search.resume import resume_config
from nas_lightning.strategies.base import Strategy
from nas_lightning.strategies.random_search import RandomSearch


def table_cfg(run_dir, *overrides):
    return conftest.table_cfg(run_dir, "strategy=random", *overrides)


def compose_space(tmp_path):
    from nas_lightning.core.builders import build

    return build(table_cfg(tmp_path).search_space, "search_space")


def swap_operands(actions: tuple[int, ...]) -> tuple[int, ...]:
    """The TABLE space's actions with the operands of the normal cell's add exchanged."""
    ia, ib, oa, ob, combine, *rest = actions
    return (ib, ia, ob, oa, combine, *rest)


def distinct_archs(space, n: int) -> list[tuple[int, ...]]:
    """``n`` action tuples of ``n`` different architectures (seeded)."""
    archs, keys, rng = [], set(), random.Random(1)
    while len(archs) < n:
        a = space.sample(rng)
        key = architecture_key(space.decode(a), a)
        if key not in keys:
            archs.append(a)
            keys.add(key)
    return archs


def propose_in_order(monkeypatch, pattern: list[int], n: int = 5) -> list[tuple[int, ...]]:
    """Random search that proposes ``archs[pattern[i]]`` as its i-th proposal, cycling."""
    archs = []

    def propose(self, k):
        if not archs:
            archs.extend(distinct_archs(self.space, n))
        return [self._make(archs[pattern[(self.num_proposed + i) % len(pattern)]])
                for i in range(k)]

    monkeypatch.setattr(RandomSearch, "_propose", propose)
    return archs


@pytest.fixture
def three_archs(monkeypatch):
    """Random search that cycles over three architectures (a strategy that repeats)."""
    return propose_in_order(monkeypatch, [0, 1, 2], n=3)


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


def test_repeats_are_told_the_recorded_reward_and_are_not_children(tmp_path, monkeypatch,
                                                                   tells):
    archs = propose_in_order(monkeypatch, [0, 1, 0, 2, 1, 0, 3, 1, 4, 0, 1, 2, 3])
    result = run_search(table_cfg(tmp_path, "search.num_children=5", "search.reuse_limit=4"))
    records = result.records
    assert [tuple(r["actions"]) for r in records] == [tuple(a) for a in archs]
    assert result.summary["reused"] == 4
    assert result.summary["stopped"] is None  # the budget ended it
    assert result.strategy.num_proposed == result.strategy.num_told == 9
    reward_of = {tuple(r["actions"]): r["reward"] for r in records}
    assert all(reward == reward_of[a] for a, reward in tells)
    assert [r["index"] for r in records] == list(range(5))  # no gap: repeats are not children


def test_a_strategy_that_only_repeats_stops_the_search(tmp_path, three_archs, caplog):
    """Instead of training the same networks again: the limit in a row, one line, a status."""
    with caplog.at_level(logging.INFO, logger="nas_lightning.search"):
        result = run_search(table_cfg(tmp_path, "search.num_children=8",
                                      "search.reuse_limit=4"))
    assert [tuple(r["actions"]) for r in result.records] == [tuple(a) for a in three_archs]
    assert result.summary["reused"] == 4 and result.strategy.num_told == 7
    assert result.summary["stopped"] == "converged"
    assert result.summary["status"] == "finished"
    assert json.loads((tmp_path / "summary.json").read_text())["stopped"] == "converged"
    lines = [r.getMessage() for r in caplog.records if "converged" in r.getMessage()]
    assert lines == ["every proposal in the last 4 was already trained: the strategy has "
                     "converged; stopping after 3 children"]


def test_two_encodings_of_one_network_are_one_child(tmp_path, monkeypatch, tells):
    """The two operands of an add swapped: the second encoding is told the first's reward."""
    arch = distinct_archs(compose_space(tmp_path), 1)[0]
    swapped = swap_operands(arch)
    assert swapped != arch
    sequence = [arch, swapped]

    def propose(self, k):
        return [self._make(sequence[min(self.num_proposed + i, 1)]) for i in range(k)]

    monkeypatch.setattr(RandomSearch, "_propose", propose)
    result = run_search(table_cfg(tmp_path / "reuse", "search.num_children=2",
                                  "search.reuse_limit=3"))
    assert [tuple(r["actions"]) for r in result.records] == [arch]
    assert result.summary["stopped"] == "converged"
    assert tells[1] == (swapped, result.records[0]["reward"])
    trained = run_search(table_cfg(tmp_path / "train", "search.num_children=2",
                                   "search.repeats=train"))
    assert [tuple(r["actions"]) for r in trained.records] == [arch, swapped]


def test_an_exhausted_space_stops_at_its_first_repeat(tmp_path):
    """TABLE with two ops: 256 action tuples, 100 architectures, each trained once."""
    cell = [[0, 1]] * 4 + [[0]]  # input_a, input_b, op_a, op_b, combine
    rows = [{"actions": list(a), "val_acc": 0.5 + sum(a) / 100}
            for a in itertools.product(*cell, *cell)]
    table = tmp_path / "table.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in [{"description": "two ops"}, *rows]))
    result = run_search(table_cfg(tmp_path, "search.num_children=256",
                                  "search_space.ops=[identity,max_pool_3x3]",
                                  f"runner.table={table}", "search.reuse_limit=1000"))
    keys = [architecture_key(r["genotype"], r["actions"]) for r in result.records]
    assert len(keys) == len(set(keys)) == 100
    assert result.summary["stopped"] == "exhausted"
    assert 0 < result.summary["reused"] < 1000


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


def fail_child_zero(monkeypatch) -> None:
    """Child 0 fails (out of memory); every other child trains from the table."""
    original = TableRunner.run

    def fail_first(self, trial):
        if trial.index == 0:
            return Result.failure(trial, "RuntimeError: out of memory")
        return original(self, trial)

    monkeypatch.setattr(TableRunner, "run", fail_first)


def test_a_failed_child_is_trained_again_not_reused(tmp_path, three_archs, monkeypatch):
    fail_child_zero(monkeypatch)
    result = run_search(table_cfg(tmp_path, "search.num_children=4"))
    assert [r["status"] for r in result.records] == ["failed", "ok", "ok", "ok"]
    assert result.records[3]["actions"] == result.records[0]["actions"]  # trained again


@pytest.mark.parametrize("crash_at", [3, 4])
def test_resume_reuses_as_the_uninterrupted_search(tmp_path, monkeypatch, crash_at):
    """Crashed before child 3 or 4; the uninterrupted search stops converged after 5 children."""
    propose_in_order(monkeypatch, [0, 1, 2, 0, 1, 3, 0, 1, 4, 0, 1, 2])
    over = ["search.num_children=7", "search.reuse_limit=3"]
    full = run_search(table_cfg(tmp_path / "full", *over))
    assert len(full.records) == 5 and full.summary["stopped"] == "converged"
    cycle = RandomSearch._propose
    interrupt_at(monkeypatch, TableRunner, crash_at)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_search(table_cfg(part, *over))
    monkeypatch.undo()
    monkeypatch.setattr(RandomSearch, "_propose", cycle)  # undone with the crash
    result = run_search(resume_config(table_cfg(part, *over, f"resume={part}"),
                                      overrides=[]))
    assert [r["actions"] for r in read_children(part)] == [r["actions"] for r in full.records]
    assert result.summary["reused"] == full.summary["reused"] == 7
    assert result.summary["stopped"] == "converged"
    assert result.strategy.num_told == full.strategy.num_told


@pytest.mark.parametrize("override, key", [("search.repeats=sometimes", "search.repeats"),
                                           ("search.reuse_limit=-1", "search.reuse_limit"),
                                           ("search.reuse_limit=0", "search.reuse_limit")])
def test_repeat_settings_are_checked(tmp_path, override, key):
    with pytest.raises(ConfigError) as err:
        run_search(table_cfg(tmp_path, override))
    assert err.value.key == key


def test_the_rule_alone():
    rule: Repeats[float] = Repeats("reuse", limit=2)
    assert rule.reuse((0, 1)) is None
    rule.add((0, 1), 0.5)
    rule.add((0, 1), 0.9)  # the first measurement is kept
    assert rule.reuse((0, 1)) == 0.5 and not rule.converged
    assert rule.reuse((0, 1)) == 0.5 and rule.converged  # never "train it again"
    assert rule.reuse((1, 1)) is None and not rule.converged  # the row restarts
    assert Repeats("train").reuse((0, 1)) is None
    rule.add(None, 0.3)  # no key (NetAdapt's genotype edits have no actions): never reused
    assert rule.reuse(None) is None
    assert proposal_key(None, ()) is None
    with pytest.raises(ConfigError):
        Repeats("never")
    with pytest.raises(ConfigError):
        Repeats("reuse", limit=0)


def test_efficiency_benchmark_counts_children_as_the_search_does():
    bench = load_benchmark("strategy_efficiency")
    problem = bench.ChainFormula(num=3, size=2)  # 8 architectures: repeats come soon
    factory = bench.PRESETS["random_with_replacement"][1]
    reuse = bench.run(factory, problem, seed=0, budget=12, repeats="reuse", reuse_limit=20)
    train = bench.run(factory, problem, seed=0, budget=12, repeats="train")
    assert len(reuse["curve"]) == len(train["curve"]) == 12
    assert reuse["reused"] > 0 and train["reused"] == 0
    assert reuse["distinct"] == 8 > train["distinct"]  # reuse spends children on new ones
    stopped = bench.run(factory, problem, seed=0, budget=12, repeats="reuse", reuse_limit=1)
    assert len(stopped["curve"]) == 12  # the best so far holds after the search stops
    assert stopped["curve"][-1] == stopped["curve"][stopped["distinct"] - 1]


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
    fail_child_zero(monkeypatch)
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
