"""The zero-cost filter (``search.prefilter``): k proposals per child, the best-scored trains."""

from __future__ import annotations

import math

import pytest

from nas_lightning.core.records import read_children
from nas_lightning.errors import ConfigError
from nas_lightning.presets import make_strategy
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies.prefilter import Prefilter

SPACE = [(f"d{i}", ["a", "b", "c", "d"]) for i in range(4)]  # 256 architectures


def by_sum(proposal) -> float:
    return float(sum(proposal.actions))


def inner(name: str = "random", seed: int = 0):
    return make_strategy(name, ListSpace(SPACE), budget=40, seed=seed)


def test_each_child_is_the_best_scored_of_k_and_rejects_are_not_proposed():
    space_strategy = inner()
    filtered = Prefilter(space_strategy, by_sum, k=4)
    trained = []
    for _ in range(30):
        p = filtered.ask()
        assert p.info["prefilter_score"] == max(filtered.last_scores) == by_sum(p)
        assert len(filtered.last_scores) == 4
        trained.append(tuple(p.actions))
        filtered.tell(p, by_sum(p) / 12)
    assert len(set(trained)) == 30  # the inner strategy's no-repeat rule still holds
    # only what was trained counts as proposed: rejected candidates may come again
    assert space_strategy.proposed == set(trained)
    assert space_strategy.num_told == filtered.num_told == 30
    # the filter moves the children towards the high scores: unfiltered random search,
    # same seed, averages about 6 (4 decisions of 0..3); the best of 4 draws scores more
    plain = inner()
    plain_mean = sum(by_sum(plain.ask()) for _ in range(30)) / 30
    assert sum(map(sum, trained)) / 30 > plain_mean + 1.5


def test_evolution_is_filtered_too_and_ties_go_to_the_first():
    filtered = Prefilter(inner("evolution"), lambda p: 0.0, k=3)
    p = filtered.ask()
    assert filtered.last_scores == [0.0, 0.0, 0.0] and p.info["prefilter_score"] == 0.0


def test_a_resumed_filter_proposes_what_the_uninterrupted_one_would():
    def run(stop_at: int | None):
        f = Prefilter(inner("evolution", seed=3), by_sum, k=4)
        out = []
        for i in range(25):
            if i == stop_at:  # a new filter and strategy from the saved state
                state = f.state_dict()
                f = Prefilter(inner("evolution", seed=3), by_sum, k=4)
                f.load_state_dict(state)
            p = f.ask()
            out.append(tuple(p.actions))
            f.tell(p, math.sin(sum(p.actions)))
        return out

    assert run(None) == run(12)


@pytest.mark.parametrize("name", ["reinforce", "ppo", "tpe"])
def test_strategies_that_learn_from_every_proposal_are_refused(name):
    with pytest.raises(ConfigError, match="search.prefilter: filters only RandomSearch"):
        Prefilter(inner(name), by_sum, k=4)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_k_below_two_is_refused(k):
    with pytest.raises(ConfigError, match="search.prefilter_k: must be an integer >= 2"):
        Prefilter(inner(), by_sum, k=k)


def test_a_search_with_the_filter_records_the_scores_that_chose(tiny_search_cfg, tmp_path):
    from nas_lightning.search.loop import run_search

    result = run_search(tiny_search_cfg("strategy=random", "search.num_children=3",
                                        "search.prefilter=grad_norm", "search.prefilter_k=3"))
    records = result.records
    assert [r["status"] for r in records] == ["ok"] * 3
    scores = [r["extra"]["prefilter_score"] for r in records]
    assert all(isinstance(s, float) and s > 0 for s in scores)
    # the same search again: the scores, and so the children, are the same
    again = run_search(tiny_search_cfg("strategy=random", "search.num_children=3",
                                       "search.prefilter=grad_norm", "search.prefilter_k=3",
                                       run_dir=tmp_path / "again"))
    assert [r["actions"] for r in again.records] == [r["actions"] for r in records]


@pytest.mark.parametrize("overrides, message", [
    (["search.prefilter=flops"], "search.prefilter: unknown zero-cost proxy 'flops'"),
    (["strategy=reinforce", "search.prefilter=grad_norm"], "filters only RandomSearch"),
    (["runner=table", "search.prefilter=grad_norm"], "builds none"),
])
def test_bad_filter_settings_stop_before_any_child(tiny_search_cfg, tmp_path, overrides,
                                                   message):
    from nas_lightning.search.loop import run_search

    table = ["search_space.num_blocks=1", "search_space.ops=[identity,max_pool_3x3,sep_conv_3x3]",
             "search_space.combines=[add]"] if "runner=table" in overrides else []
    with pytest.raises(ConfigError, match=message):
        run_search(tiny_search_cfg("strategy=random", *table, *overrides))
    assert not (tmp_path / "run" / "children.jsonl").exists() or not read_children(
        tmp_path / "run")
