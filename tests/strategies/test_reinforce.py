import math

import pytest
import torch

from nas_lightning.errors import ConfigError
from nas_lightning.spaces import AnchorDecision, Decision, ListSpace, NASNetSpace
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies import PPO, Reinforce


def test_reinforce_moves_probability_toward_a_rewarded_choice():
    space = ListSpace([("op", ["a", "b", "c", "d"]), ("k", [3, 5])])
    strategy = Reinforce(space, lr=0.01, entropy_weight=0.0, baseline_decay=0.8, seed=0)
    target = torch.tensor([[2, 1]])

    def p_target():
        with torch.no_grad():
            return strategy.controller(actions=target).log_prob.exp().item()

    before = p_target()
    for _ in range(60):
        p = strategy.ask()
        strategy.tell(p, 1.0 if p.genotype == {"op": "c", "k": 5} else 0.0)
    assert p_target() > before + 0.3, (before, p_target())


class _SkipSpace(SearchSpace):
    def __init__(self):
        self.decisions = (
            Decision("f0", (1, 2)),
            AnchorDecision("skip0", 0, 0),
            Decision("f1", (1, 2)),
            AnchorDecision("skip1", 1, 1),
            Decision("f2", (1, 2)),
            AnchorDecision("skip2", 2, 2),
        )

    def decode(self, actions):
        return self.describe(actions)

    def encode(self, genotype):
        return tuple(d.index(genotype[d.name]) for d in self.decisions)


def test_anchor_probabilities_follow_a_rewarded_connection_pattern():
    strategy = Reinforce(_SkipSpace(), lr=0.01, entropy_weight=0.0, seed=1)

    def p_connect_0_to_2():
        with torch.no_grad():
            outs = strategy.controller(n=400, generator=torch.Generator().manual_seed(0))
        return ((outs.actions[:, 5] & 1) == 1).float().mean().item()

    before = p_connect_0_to_2()
    for _ in range(80):
        p = strategy.ask()
        strategy.tell(p, 1.0 if 0 in p.genotype["skip2"] else 0.0)
    after = p_connect_0_to_2()
    assert after > before + 0.2, (before, after)


def test_same_seed_same_genotypes_and_state_round_trip():
    space = NASNetSpace(num_blocks=2)
    a, b = Reinforce(space, seed=7), Reinforce(space, seed=7)
    seq_a, seq_b = [], []
    for i in range(5):
        pa, pb = a.ask(), b.ask()
        seq_a.append(pa.actions)
        seq_b.append(pb.actions)
        a.tell(pa, i / 5)
        b.tell(pb, i / 5)
    assert seq_a == seq_b
    c = Reinforce(space, seed=123)
    c.load_state_dict(a.state_dict())
    assert c.ask().actions == a.ask().actions


def test_tell_stats_and_baseline():
    space = ListSpace([("x", [0, 1])])
    s = Reinforce(space, baseline_decay=0.5, seed=0)
    stats = s.tell(s.ask(), 1.0)
    assert stats["baseline"] == 1.0 and stats["advantage"] == 0.0  # first child sets it
    stats = s.tell(s.ask(), 0.0)
    assert stats["baseline"] == 1.0 and stats["advantage"] == -1.0
    assert s.baseline == 0.5
    assert set(stats) >= {"loss", "entropy", "baseline", "advantage", "log_prob"}


def _replay_kwargs(**extra):
    kwargs = dict(replay=True, replay_size=32, steps=2, top_fraction=0.25, dedup_tries=10,
                  queue_size=3, queue_weight=0.1)
    return {**kwargs, **extra}


def test_replay_learns_skips_invalid_children_and_avoids_repeats():
    space = ListSpace([("op", ["a", "b", "c", "d"]), ("k", [3, 5])])
    s = Reinforce(space, lr=1e-3, seed=0, **_replay_kwargs(dedup_tries=50))
    seen = []
    for i in range(8):  # 8 architectures: every one proposed once
        p = s.ask()
        seen.append(p.actions)
        stats = s.tell(p, None if i == 3 else float(p.actions == (2, 1)))
        assert i == 3 or {"entropy", "threshold", "replayed"} <= set(stats)
    assert len(set(seen)) == 8
    assert len(s.memory) == 7 and s.queue[0]["actions"] == [2, 1]
    assert 0 < s.diagnostics()["entropy"] <= math.log(4) + math.log(2) + 1e-6


def test_replay_state_round_trip_continues_identically():
    space = NASNetSpace(num_blocks=2)
    a = Reinforce(space, seed=3, **_replay_kwargs())
    for i in range(6):
        p = a.ask()
        a.tell(p, i / 6)
    b = Reinforce(space, seed=99, **_replay_kwargs())
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        pa, pb = a.ask(), b.ask()
        assert pa.actions == pb.actions
        a.tell(pa, 0.5)
        b.tell(pb, 0.5)
    assert a.memory == b.memory


def test_replay_off_keeps_one_step_per_child_and_no_memory():
    space = ListSpace([("x", [0, 1, 2])])
    s = Reinforce(space, seed=0)
    s.tell(s.ask(), 1.0)
    assert s.memory == [] and "memory" not in s.state_dict()


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"steps": 2}, "steps"),
        ({"top_fraction": 0.2}, "replay"),
        ({"replay": True, "top_fraction": 0.0}, "top_fraction"),
        ({"replay": True, "queue_size": -1}, "queue_size"),
        ({"replay": True, "replay_size": 0}, "replay_size"),
        ({"replay": True, "importance_clip": 0}, "importance_clip"),
        ({"replay": True, "entropy_schedule": "linear"}, "budget"),
        ({"replay": True, "entropy_schedule": "cosine"}, "entropy_schedule"),
        ({"dedup_tries": 5}, "dedup_tries"),
    ],
)
def test_replay_settings_are_checked(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        Reinforce(ListSpace([("x", [0, 1])]), **kwargs)


def test_ppo_replay_updates_every_batch_and_skips_invalid():
    space = ListSpace([("op", ["a", "b", "c", "d"]), ("k", [3, 5])])
    s = PPO(space, seed=0, batch_size=2, epochs=2, **{
        k: v for k, v in _replay_kwargs().items() if k != "steps"})
    updates = []
    for i in range(6):
        p = s.ask()
        updates.append(s.tell(p, None if i == 0 else float(p.actions[0] == 2)).get("updates"))
    assert updates == [None, None, 1.0, None, 2.0, None]
    state = s.state_dict()
    t = PPO(space, seed=5, batch_size=2, epochs=2, **{
        k: v for k, v in _replay_kwargs().items() if k != "steps"})
    t.load_state_dict(state)
    assert t.ask().actions == s.ask().actions and t.pending == s.pending == 1


def test_entropy_schedule_falls_to_zero_at_the_budget():
    s = Reinforce(ListSpace([("x", [0, 1])]), entropy_weight=0.1, replay=True,
                  entropy_schedule="linear", budget=4)
    weights = []
    for _ in range(4):
        weights.append(s.current_entropy_weight)
        s.tell(s.ask(), 1.0)
    assert weights == pytest.approx([0.1, 0.075, 0.05, 0.025])
    assert s.current_entropy_weight == 0.0


@pytest.mark.parametrize("name", ["Reinforce", "PPO"])
def test_the_linear_entropy_schedule_holds_without_replay(name):
    """Told its whole budget, the entropy bonus is 0: a zero-advantage tell moves nothing."""
    from nas_lightning.spaces import ListSpace
    from nas_lightning.strategies.ppo import PPO
    from nas_lightning.strategies.reinforce import Reinforce

    cls, extra = {"Reinforce": (Reinforce, {}),
                  "PPO": (PPO, {"batch_size": 1, "epochs": 1})}[name]
    space = ListSpace([(f"d{i}", ["a", "b", "c"]) for i in range(3)])
    moved = {}
    for schedule in ("constant", "linear"):
        s = cls(space, entropy_weight=1.0, entropy_schedule=schedule, budget=1, lr=0.1,
                seed=0, **extra)
        before = [p.detach().clone() for p in s.controller.parameters()]
        stats = s.tell(s.ask(), 0.5)  # the first reward is its own baseline: advantage 0
        assert stats["advantage"] == 0.0
        moved[schedule] = sum(float((a - b.detach()).abs().sum())
                              for a, b in zip(before, s.controller.parameters(), strict=True))
    assert moved["constant"] > 0 and moved["linear"] == 0.0
