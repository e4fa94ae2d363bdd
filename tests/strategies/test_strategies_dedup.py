"""The rule "never propose an architecture twice" (``dedup_tries``): distinct
proposals while the space has room, repeats once it is exhausted, exact resume,
and the papers' presets left without it."""

from __future__ import annotations

import io
import json

import pytest
import torch

from nas_lightning.errors import ConfigError
from nas_lightning.presets import make_strategy
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import NSGA2, TPE, RandomSearch, RegularizedEvolution, Strategy

DEDUP = ["random", "evolution", "tpe", "nsga2"]


def space(choices: int = 4, decisions: int = 3) -> ListSpace:
    """``choices ** decisions`` architectures (64 by default)."""
    return ListSpace([(f"d{i}", range(choices)) for i in range(decisions)])


def reward(actions) -> float:
    """Deterministic, with one best architecture (3, 0, 2, ...)."""
    target = (3, 0, 2, 1)
    return 1 - sum(abs(a - t) for a, t in zip(actions, target, strict=False)) / 12


def run(strategy: Strategy, n: int, batch: int = 1) -> list[tuple[int, ...]]:
    seen = []
    while len(seen) < n:
        proposals = strategy.ask(batch)
        strategy.tell(proposals, [reward(p.actions) for p in proposals])
        seen += [p.actions for p in proposals]
    return seen


@pytest.mark.parametrize("name", DEDUP)
@pytest.mark.parametrize("seed", [0, 1])
def test_proposals_are_distinct_while_the_space_has_room(name, seed):
    strategy = make_strategy(name, space(), budget=40, seed=seed)
    assert strategy.dedup_tries == 20
    seen = run(strategy, 40)
    assert len(set(seen)) == 40, f"{40 - len(set(seen))} repeats"


@pytest.mark.parametrize("name", DEDUP)
def test_without_the_rule_the_same_budget_repeats(name):
    """The comparison that makes the test above mean something."""
    strategy = make_strategy(name, space(), budget=40, seed=0, overrides=["strategy.dedup_tries=0"])
    assert len(set(run(strategy, 40))) < 40


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_distinct_within_one_batch_of_asks(name):
    strategy = make_strategy(name, space(), budget=40, seed=3)
    assert len(set(run(strategy, 32, batch=8))) == 32


@pytest.mark.parametrize("name", DEDUP)
def test_an_exhausted_space_falls_back_to_repeats(name):
    """9 architectures, 18 children: all 9 first, then repeats, and the search goes on."""
    small = space(choices=3, decisions=2)
    strategy = make_strategy(name, small, budget=18, seed=0, overrides=["strategy.dedup_tries=100"])
    seen = run(strategy, 18)
    assert len(seen) == 18
    assert len(set(seen[:9])) == 9


def test_evolution_mutations_stay_single_decision_and_unproposed():
    evo = RegularizedEvolution(space(), population_size=8, sample_size=3, dedup_tries=20, seed=2)
    before: set = set()
    for _ in range(50):
        p = evo.ask()
        if p.info["origin"] == "mutation":
            parent = next(m for m in evo.population if m["id"] == p.info["parent"])
            assert sum(a != b for a, b in zip(p.actions, parent["actions"], strict=True)) == 1
        assert p.actions not in before or len(before) == space().cardinality()
        before.add(p.actions)
        evo.tell(p, reward(p.actions))


@pytest.mark.parametrize("name", DEDUP)
@pytest.mark.parametrize("k", [5, 20])
def test_state_dict_round_trip_keeps_the_rule(name, k):
    """Interrupted after k children, resumed from torch and from JSON: the same proposals."""
    expected = run(make_strategy(name, space(), budget=30, seed=4), 30)
    first = make_strategy(name, space(), budget=30, seed=4)
    seen = run(first, k)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    for state in (
        torch.load(buffer, weights_only=True),
        json.loads(json.dumps(first.state_dict())),
    ):
        resumed = make_strategy(name, space(), budget=30, seed=99)
        resumed.load_state_dict(state)
        assert resumed.proposed == set(seen)
        assert seen + run(resumed, 30 - k) == expected


def test_optuna_repeats_are_pruned_trials_not_trained():
    tpe = TPE(space(choices=2, decisions=3), n_startup_trials=2, dedup_tries=20, seed=0)
    seen = run(tpe, 8)
    assert len(set(seen)) == 8
    states = [t.get("state") for t in tpe.trials]
    assert states.count("complete") == 8
    assert set(states) <= {"complete", "repeat"}
    pruned = [t for t in tpe.study.trials if t.state.name == "PRUNED"]
    assert len(pruned) == states.count("repeat") > 0


def test_the_papers_presets_and_random_with_replacement_keep_repeats():
    assert make_strategy("evolution_amoebanet", space()).dedup_tries == 0
    assert RandomSearch(space()).dedup_tries == 0
    assert NSGA2(space(), population_size=4).dedup_tries == 0
    # With the rule off, evolution draws what it drew before the rule existed.
    a = RegularizedEvolution(space(), population_size=4, sample_size=2, seed=5)
    b = RegularizedEvolution(space(), population_size=4, sample_size=2, dedup_tries=0, seed=5)
    assert run(a, 30) == run(b, 30)
    assert a.state_dict()["proposed"] == []


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_dedup_tries_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="dedup_tries"):
        RandomSearch(space(), dedup_tries=bad)


def table_space():
    """The tabular benchmark's space (tests/conftest.py's TABLE): 1296 action tuples, 441
    architectures, since the two operands of each cell's one ``add`` block commute."""
    from nas_lightning.spaces.nasnet import NASNetSpace

    return NASNetSpace(num_blocks=1, ops=["identity", "max_pool_3x3", "sep_conv_3x3"],
                       combines=["add"])


def table_reward(actions) -> float:
    return (sum(actions) % 7) / 7


def architectures(space, proposals):
    from nas_lightning.genotypes.base import architecture_key

    return [architecture_key(space.decode(a), a) for a in proposals]


@pytest.mark.parametrize("name", DEDUP)
def test_two_encodings_of_one_network_are_one_proposal(name):
    """Keyed by actions, about one in ten of these proposals re-encoded an earlier one."""
    table = table_space()
    strategy = make_strategy(name, table, budget=120, seed=0)
    seen = []
    while len(seen) < 120:
        p = strategy.ask()
        strategy.tell(p, table_reward(p.actions))
        seen.append(p.actions)
    keys = architectures(table, seen)
    assert len(set(keys)) == 120, f"{120 - len(set(keys))} re-encoded architectures"


def test_resumed_dedup_knows_the_architectures_not_only_the_actions():
    table = table_space()
    first = make_strategy("random", table, budget=60, seed=1)
    for _ in range(30):
        first.tell(first.ask(), 0.5)
    resumed = make_strategy("random", table, budget=60, seed=2)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.proposed_keys == first.proposed_keys
    assert len(resumed.proposed_keys) == 30


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_a_converged_controller_explores_the_nearest_unproposed_architectures(name):
    """Rewarded for one network only, the controller soon draws nothing else; it then
    proposes the nearest architectures not yet proposed, never a repeat while any is left."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        space = ListSpace([(f"d{i}", ["a", "b", "c"]) for i in range(3)])  # 27 networks
        s = make_strategy(name, space, budget=27, seed=0, overrides=["strategy.lr=0.05"])
        proposed, explored = [], []
        for _ in range(27):
            p = s.ask()
            proposed.append(tuple(p.actions))
            if p.info.get("explored"):
                explored.append(tuple(p.actions))
            s.tell(p, 1.0 if sum(p.actions) == 0 else 0.1)
    finally:
        torch.set_num_threads(threads)
    assert len(set(proposed)) == 27  # the whole space, once each
    assert explored  # the controller's own draws had converged
    assert sum(v != 0 for v in explored[0]) <= 2  # explored near the rewarded network
    last = s.ask()  # the space is exhausted: a repeat, not an exploration
    assert tuple(last.actions) in proposed and not last.info.get("explored")


def test_optuna_strategies_propose_the_nearest_new_network_when_every_draw_repeats():
    """NSGA-II with a population of 3 on 27 architectures: after dedup_tries repeated
    draws, the nearest architecture not proposed yet (an enqueued trial), until none is left."""
    from nas_lightning.spaces import ListSpace
    from nas_lightning.strategies import NSGA2

    s = NSGA2(ListSpace([(f"d{i}", ["a", "b", "c"]) for i in range(3)]), population_size=3,
              dedup_tries=2, seed=0)
    seen = []
    for _ in range(27):
        p = s.ask()
        seen.append(tuple(p.actions))
        s.tell(p, 1.0 if p.actions == (0, 0, 0) else 0.0)
    assert len(set(seen)) == 27
    p = s.ask()  # exhausted: a repeat at last
    assert tuple(p.actions) in set(seen)
    resumed = NSGA2(ListSpace([(f"d{i}", ["a", "b", "c"]) for i in range(3)]),
                    population_size=3, dedup_tries=2, seed=0)
    resumed.load_state_dict(s.state_dict())
    assert resumed.ask().actions == s.ask().actions
