"""Unit tests of the search strategies: ask/tell contract, state, each algorithm's rules."""

from __future__ import annotations

import functools
import io
import math

import pytest
import torch

from nas_lightning.controllers import LSTMController
from nas_lightning.errors import ConfigError
from nas_lightning.spaces import AnchorDecision, Decision, ListSpace, NASNetSpace, SearchSpace
from nas_lightning.strategies import (
    NSGA2,
    PPO,
    TPE,
    Proposal,
    RandomSearch,
    RegularizedEvolution,
    Reinforce,
    Strategy,
)

SMALL = functools.partial(LSTMController, hidden=16)


@pytest.fixture(autouse=True)
def one_thread():
    """A controller's tiny ops run ~10x faster on one thread on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class AnchorSpace(SearchSpace):
    """NAS-RL-like layers: a kernel choice and skip connections from earlier layers."""

    def __init__(self, layers: int = 4) -> None:
        decisions: list = []
        for i in range(layers):
            decisions.append(Decision(f"l{i}/kernel", (1, 3, 5)))
            decisions.append(AnchorDecision(f"l{i}/skip", num_prev=i, anchor=i))
        self.decisions = tuple(decisions)

    def decode(self, actions):
        return self.check(actions)

    def encode(self, genotype):
        return tuple(genotype)


class GrowingSpace(ListSpace):
    """Two more decisions become active every 5 children."""

    def __init__(self) -> None:
        super().__init__([(f"d{i}", range(4)) for i in range(8)])
        self.active = 2

    @property
    def num_active(self) -> int:
        return self.active

    def set_progress(self, num_children: int) -> None:
        self.active = min(len(self.decisions), 2 + 2 * (num_children // 5))


def toy_space() -> ListSpace:
    return ListSpace([("a", [0, 1, 2]), ("b", ["x", "y"]), ("c", [1, 2, 3, 4]), ("d", [True])])


def reward_of(actions) -> float:
    return sum(actions) / 10.0


STRATEGIES = {
    "random": lambda space, seed=0: RandomSearch(space, seed=seed),
    "evolution": lambda space, seed=0: RegularizedEvolution(
        space, population_size=6, sample_size=3, seed=seed
    ),
    "reinforce": lambda space, seed=0: Reinforce(space, controller=SMALL, lr=0.01, seed=seed),
    "ppo": lambda space, seed=0: PPO(
        space, controller=SMALL, lr=0.01, batch_size=4, epochs=3, seed=seed
    ),
    "tpe": lambda space, seed=0: TPE(space, n_startup_trials=4, seed=seed),
    "nsga2": lambda space, seed=0: NSGA2(space, population_size=4, seed=seed),
}


def drive(strategy: Strategy, num: int, space: SearchSpace | None = None) -> list[tuple]:
    """Sequential ask/tell with a formula reward; returns the proposed actions."""
    seen = []
    for _ in range(num):
        if space is not None:
            space.set_progress(strategy.num_told)
        proposal = strategy.ask()
        seen.append(proposal.actions)
        strategy.tell(proposal, reward_of(proposal.actions))
    return seen


def roundtrip(state: dict) -> dict:
    """Through torch.save and the safe loader the search loop uses."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", STRATEGIES)
def test_ask_returns_valid_proposals_with_unique_ids(name):
    space = toy_space()
    strategy = STRATEGIES[name](space)
    single = strategy.ask()
    assert isinstance(single, Proposal) and single.id == 0
    batch = strategy.ask(5)
    assert [p.id for p in batch] == [1, 2, 3, 4, 5]
    for p in [single, *batch]:
        assert space.check(p.actions) == p.actions
        assert p.genotype == space.decode(p.actions)
    strategy.tell(batch, [reward_of(p.actions) for p in batch])
    strategy.tell(single, 0.5)
    assert strategy.num_told == 6


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_sequence_other_seed_differs(name):
    runs = [drive(STRATEGIES[name](toy_space(), seed=s), 20) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("k", [0, 9])
def test_state_dict_resumes_exactly_through_safe_torch_load(name, k):
    space = toy_space()
    full = STRATEGIES[name](space, seed=1)
    expected = drive(full, 16)
    first = STRATEGIES[name](space, seed=1)
    head = drive(first, k)
    state = roundtrip(first.state_dict())
    second = STRATEGIES[name](space, seed=99)  # the state, not the seed, must decide
    second.load_state_dict(state)
    assert head + drive(second, 16 - k) == expected
    assert same_state(roundtrip(second.state_dict()), roundtrip(full.state_dict()))


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_dict_is_a_snapshot(name):
    strategy = STRATEGIES[name](toy_space(), seed=0)
    drive(strategy, 6)
    state = strategy.state_dict()
    frozen = roundtrip(state)
    drive(strategy, 10)
    assert same_state(roundtrip(state), frozen)


@pytest.mark.parametrize("name", STRATEGIES)
def test_anchor_space(name):
    space = AnchorSpace(layers=4)
    strategy = STRATEGIES[name](space, seed=0)
    seen = drive(strategy, 24)
    for actions in seen:
        assert space.check(actions) == actions
    masks = {a[7] for a in seen}  # layer 3 may connect from 3 earlier layers
    assert len(masks) > 1 and max(masks) < 8
    assert all(a[1] == 0 for a in seen)  # layer 0 has no earlier anchor


@pytest.mark.parametrize("name", STRATEGIES)
def test_growing_space_samples_only_the_active_prefix(name):
    space = GrowingSpace()
    strategy = STRATEGIES[name](space, seed=0)
    seen = drive(strategy, 40, space=space)
    for i, actions in enumerate(seen):
        active = min(8, 2 + 2 * (i // 5))
        assert all(a == 0 for a in actions[active:]), (i, actions)
    assert any(a != 0 for actions in seen[15:] for a in actions[6:])


@pytest.mark.parametrize("name", STRATEGIES)
def test_out_of_order_batches_as_under_concurrent_workers(name):
    strategy = STRATEGIES[name](toy_space(), seed=0)
    pending = strategy.ask(7)
    strategy.tell(pending[5], 0.1)
    pending += strategy.ask(3)
    strategy.tell(pending[:3][::-1], [0.3, 0.2, 0.9])
    strategy.tell([pending[9], pending[3]], [0.5, 0.4])
    strategy.tell(pending[6:9] + [pending[4]], [0.7, 0.6, 0.8, 0.0])
    assert strategy.num_told == 10
    assert len(strategy.ask(4)) == 4


def test_random_search_covers_choices_uniformly():
    space = ListSpace([("a", range(4)), ("b", range(3))])
    strategy = RandomSearch(space, seed=0)
    counts = [0] * 4
    for p in strategy.ask(4000):
        counts[p.actions[0]] += 1
    assert all(900 < c < 1100 for c in counts), counts


def test_evolution_random_until_population_full_then_single_mutations():
    space = ListSpace([(f"d{i}", range(5)) for i in range(6)])
    strategy = RegularizedEvolution(space, population_size=10, sample_size=4, seed=0)
    by_id = {}
    for _ in range(60):
        p = strategy.ask()
        by_id[p.id] = p
        if p.id < 10:
            assert p.info["origin"] == "random"
        else:
            assert p.info["origin"] == "mutation"
            parent = by_id[p.info["parent"]]
            pairs = zip(p.actions, parent.actions, strict=True)
            diff = [i for i, (a, b) in enumerate(pairs) if a != b]
            assert len(diff) == 1
            assert space.names[diff[0]] == p.info["mutated"]
            assert p.info["parent"] in {m["id"] for m in strategy.population}
        strategy.tell(p, reward_of(p.actions))
    # Aging: the population is the 10 most recently told children, oldest first.
    assert [m["id"] for m in strategy.population] == list(range(50, 60))
    assert strategy.best["reward"] == max(reward_of(p.actions) for p in by_id.values())


def test_evolution_tournament_prefers_fit_and_never_picks_invalid_children():
    space = ListSpace([("a", range(50))])
    strategy = RegularizedEvolution(space, population_size=50, sample_size=10, seed=0)
    proposals = strategy.ask(50)
    rewards = [None if p.id % 2 else p.id / 50 for p in proposals]
    strategy.tell(proposals, rewards)
    assert strategy.num_told == 50
    assert [m["id"] for m in strategy.population] == list(range(0, 50, 2))
    parents = [strategy._tournament()["reward"] for _ in range(300)]
    assert all(r is not None and math.isfinite(r) for r in parents)
    assert sum(parents) / len(parents) > 0.75  # uniform choice would average ~0.49


def test_evolution_never_mutates_a_decision_with_one_choice():
    space = ListSpace([("fixed", ["only"]), ("free", range(2))])
    strategy = RegularizedEvolution(space, population_size=2, sample_size=1, seed=0)
    drive(strategy, 30)
    assert all(m["actions"][0] == 0 for m in strategy.population)
    assert {p.info["mutated"] for p in strategy.ask(10)} == {"free"}


def unchanged(before: list[torch.Tensor], strategy: PPO) -> bool:
    after = list(strategy.controller.parameters())
    return all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_ppo_buffers_and_updates_every_batch_size_children():
    strategy = PPO(toy_space(), controller=SMALL, lr=0.05, batch_size=4, epochs=2, seed=0)
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    stats = []
    for i in range(8):
        p = strategy.ask()
        stats.append(strategy.tell(p, reward_of(p.actions)))
        assert unchanged(before, strategy) == (i < 3)
    assert [s["buffered"] for s in stats] == [1, 2, 3, 0, 1, 2, 3, 0]
    assert strategy.num_updates == 2
    for key in ("loss", "entropy", "baseline", "advantage", "log_prob", "approx_kl", "clip_frac"):
        assert math.isfinite(stats[3][key])
    # A batch larger than batch_size is learned from in batch_size chunks.
    proposals = strategy.ask(9)
    strategy.tell(proposals, [reward_of(p.actions) for p in proposals])
    assert strategy.num_updates == 4 and len(strategy.buffer) == 1


def test_ppo_clipped_ratio_stops_the_gradient():
    """With a positive advantage and a ratio above 1 + clip, the surrogate is flat."""

    def update(shift: float) -> bool:
        strategy = PPO(
            toy_space(),
            controller=SMALL,
            lr=0.1,
            entropy_weight=0.0,
            batch_size=2,
            epochs=1,
            seed=0,
        )
        strategy.baseline = 0.0
        before = [p.detach().clone() for p in strategy.controller.parameters()]
        proposals = strategy.ask(2)
        for p in proposals:
            p.log_prob -= shift  # as if proposed by a much less likely policy
        strategy.tell(proposals, [1.0, 1.0])
        return not unchanged(before, strategy)

    assert update(0.0)
    assert not update(5.0)


def test_ppo_scores_mixed_depths_in_one_batch():
    space = GrowingSpace()
    strategy = PPO(space, controller=SMALL, batch_size=6, epochs=2, seed=0)
    drive(strategy, 12, space=space)
    assert strategy.num_updates == 2


def test_reinforce_keeps_its_stats_keys():
    strategy = Reinforce(toy_space(), controller=SMALL, seed=0)
    p = strategy.ask()
    stats = strategy.tell(p, 0.5)
    assert set(stats) == {"loss", "entropy", "baseline", "advantage", "log_prob"}


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_policy_gradient_refuses_non_finite_rewards(name):
    strategy = STRATEGIES[name](toy_space())
    p = strategy.ask()
    with pytest.raises(ValueError, match="finite"):
        strategy.tell(p, float("nan"))


def test_nasnet_presets_run_on_the_full_nasnet_space():
    space = NASNetSpace()
    strategy = PPO(space, lr=3.5e-4, entropy_weight=1e-5, baseline_decay=0.95, batch_size=3)
    proposals = strategy.ask(3)
    stats = strategy.tell(proposals, [0.5, 0.6, 0.7])
    assert len(proposals[0].actions) == 50 and stats["updates"] == 1
    evolution = RegularizedEvolution(space, population_size=2, sample_size=1)
    drive(evolution, 4)


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda s: PPO(s, controller=SMALL, batch_size=0), "batch_size"),
        (lambda s: PPO(s, controller=SMALL, epochs=0), "epochs"),
        (lambda s: PPO(s, controller=SMALL, clip=1.5), "clip"),
        (lambda s: RegularizedEvolution(s, population_size=0), "population_size"),
        (lambda s: RegularizedEvolution(s, population_size=5, sample_size=6), "sample_size"),
        (lambda s: RandomSearch("not a space"), "space"),
    ],
)
def test_bad_arguments_raise_config_errors(make, key):
    with pytest.raises(ConfigError) as err:
        make(toy_space())
    assert err.value.key == key


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_an_invalid_architecture_is_told_none_and_never_learned_from(name):
    """One rule for every strategy: tell(p, None); NaN is refused."""
    strategy = STRATEGIES[name](toy_space())
    drive(strategy, 5)
    state = roundtrip(strategy.state_dict())
    p = strategy.ask()
    with pytest.raises(ValueError, match="finite"):
        strategy.tell(p, float("nan"))
    strategy.tell(p, None)
    assert strategy.num_told == 6
    if name in ("reinforce", "ppo"):  # no gradient step, baseline untouched
        assert strategy.baseline == state["baseline"]
        assert all(
            torch.equal(v, state["controller"][k])
            for k, v in strategy.controller.state_dict().items()
        )
        if name == "ppo":
            assert len(strategy.buffer) == len(state["buffer"])
    elif name == "evolution":
        assert p.id not in {m["id"] for m in strategy.population}
    elif name in ("tpe", "nsga2"):
        assert strategy.study.trials[p.info["trial"]].state.name == "FAIL"
    drive(strategy, 3)  # and the search goes on


def test_policy_gradient_can_learn_a_fixed_penalty_for_invalid_architectures():
    strategy = Reinforce(toy_space(), controller=SMALL, lr=0.01, invalid_reward=0.0, seed=0)
    drive(strategy, 3)
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    strategy.tell(strategy.ask(), None)
    assert not unchanged(before, strategy)
    with pytest.raises(ConfigError, match="invalid_reward"):
        Reinforce(toy_space(), controller=SMALL, invalid_reward=float("nan"))


def test_normalised_advantages_do_not_depend_on_the_reward_scale():
    """Rewards x100 + 7 give the same proposals when advantages are normalised."""
    runs = []
    for scale, shift in ((1.0, 0.0), (100.0, 7.0)):
        strategy = Reinforce(toy_space(), controller=SMALL, lr=0.01, normalize_advantage=True)
        seen = []
        for _ in range(20):
            p = strategy.ask()
            seen.append(p.actions)
            strategy.tell(p, scale * reward_of(p.actions) + shift)
        runs.append(seen)
    assert runs[0] == runs[1]
    assert strategy.reward_std > 0
