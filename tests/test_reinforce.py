import torch

from nas_lightning.spaces import AnchorDecision, Decision, ListSpace, NASNetSpace
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies import Reinforce


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
