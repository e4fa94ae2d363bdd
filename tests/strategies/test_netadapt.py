"""NetAdapt and the two-phase MobileNetV3 strategy, against a made-up latency table.

The fake table prices each layer key by a MAC-like formula, so every test is
deterministic and needs no timing; the strategy only sees a ``TableLatency``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import random
import re
from types import SimpleNamespace

import pytest
import torch

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.base import load_genotype
from nas_lightning.genotypes.mobile import MOBILENETV3_LARGE, MOBILENETV3_SMALL, decode_block
from nas_lightning.latency.table import LatencyTable, split_key
from nas_lightning.models.mobile import MobileNetwork, mobile_layers
from nas_lightning.models.mobile_blocks import make_divisible
from nas_lightning.spaces import MobileSpace
from nas_lightning.strategies import NetAdapt, RandomSearch, StrategySequence
from nas_lightning.strategies.netadapt_parts import (
    TableLatency,
    layer_keys,
    layer_module,
    reductions,
    residual_groups,
    stage_inputs,
)


def fake_ms(key: str) -> float:
    """Made-up milliseconds of one layer key: a constant plus its multiply-adds / 1e7."""
    name, (c, h, w) = split_key(key)
    if name.startswith(("stem", "head")):
        return 0.1 + c * h * w / 1e5
    a = decode_block(name)
    mid = make_divisible(c * a.expansion) if a.type == "ir" else c
    return 0.01 + h * w / a.stride**2 * (c * mid + mid * a.kernel**2 + mid * a.out_channels) / 1e7


class FakeLatency(TableLatency):
    """A TableLatency whose 'measurements' are :func:`fake_ms`."""

    def measure_layer(self, key, genotype):
        ms = fake_ms(key)
        return SimpleNamespace(median_ms=ms, min_ms=ms, iqr_ms=0.0)

    def measure_network(self, genotype, warmup, repeats):
        ms = 1.5 * sum(fake_ms(k) for k in self.keys(genotype))  # "measured" = 1.5 x table
        return SimpleNamespace(
            median_ms=ms, min_ms=ms, iqr_ms=0.0, to_dict=lambda: {"median_ms": ms}
        )


def space(base: str = "mobilenetv3_small") -> MobileSpace:
    return MobileSpace(base=base, activations=["relu", "hswish"])


def make(genotype="mobilenetv3_small", **kwargs) -> NetAdapt:
    kwargs.setdefault("target_ratio", 0.8)
    kwargs.setdefault("step_ratio", 0.03)
    return NetAdapt(space(), genotype, latency=FakeLatency(), **kwargs)


def reward_of(proposal) -> float:
    """A made-up accuracy: filters cost most, layers least, per ms cut."""
    info = proposal.info["netadapt"]
    weight = {"start": 0.0, "expansion": 2e-3, "filters": 5e-3, "layers": 1e-3}[info["kind"]]
    return 0.8 - weight * info["cut_ms"] - 1e-4 * (info["stage"] or 0)


def run(strategy, reward=reward_of, limit: int = 500) -> list:
    proposals = []
    while not strategy.finished and len(proposals) < limit:
        p = strategy.ask()
        proposals.append(p)
        strategy.tell(p, reward(p))
    return proposals


# -- keys, modules, reductions ----------------------------------------------------
REDUCED = MOBILENETV3_SMALL.from_strings(
    ["ds_r1_k3_s2_e1_c16_se0.25_nre", "ir_r2_k3_s2_e4.2_c24_nre", "cn_r1_k1_s1_c96"],
    stem_channels=16,
    head_channels=1024,
    efficient_head=True,
    activation="hswish",
    se_gate="hard_sigmoid",
    se_base="expansion",
)


@pytest.mark.parametrize(
    "genotype", ["mobilenetv3_small", "mobilenetv3_large", "mnasnet_a1", REDUCED]
)
@pytest.mark.parametrize("kw", [{}, {"width_mult": 0.25, "stem_stride": 1, "resolution": 32}])
def test_layer_keys_equal_the_builders_keys(genotype, kw):
    genotype = load_genotype(genotype)
    settings = {"in_channels": 3, "resolution": 64, "num_classes": 10, **kw}
    want = [spec.key for spec in mobile_layers(genotype, **settings)]
    assert layer_keys(genotype, **settings) == want


@pytest.mark.parametrize("genotype", [MOBILENETV3_SMALL, REDUCED])
def test_layer_module_builds_the_networks_own_layer(genotype):
    for spec in mobile_layers(genotype, in_channels=3, resolution=32, num_classes=10):
        module = layer_module(spec.key, genotype)
        same = [re.sub(r"Dropout\(p=[\d.]+", "Dropout(", repr(m)) for m in (module, spec.module)]
        assert same[0] == same[1], spec.key  # dropout does nothing in timing (eval)
        x = torch.randn(2, *spec.input_shape)
        assert module.eval()(x).shape == spec.module.eval()(x).shape


def test_residual_groups_tie_stages_that_share_a_residual():
    assert residual_groups(MOBILENETV3_SMALL) == [[0], [1, 2], [3, 4], [5], [6], [7]]
    assert residual_groups(MOBILENETV3_LARGE) == [[-1, 0], [1, 2], [3], [4, 5, 6], [7], [8], [9]]


def skips(genotype) -> int:
    net = MobileNetwork(genotype, 3, 10)
    return sum(bool(getattr(b, "has_skip", False)) for b in net.blocks)


@pytest.mark.parametrize("genotype", [MOBILENETV3_SMALL, MOBILENETV3_LARGE])
def test_reductions_shrink_one_thing_and_keep_every_residual(genotype):
    for unit in residual_groups(genotype):
        smaller, change = next(reductions(genotype, unit, "filters"))
        if len(unit) > 1 or unit == [5]:  # (building networks is slow: the tricky ones)
            assert skips(smaller) == skips(genotype), (unit, change)
        i = [s for s in unit if s >= 0][0]
        c, new = genotype.stages[i].out_channels, smaller.stages[i].out_channels
        # 8 fewer, or 16 where 8 fewer would equal the stage's input (a new residual)
        assert new == c - 8 or (new == c - 16 and stage_inputs(genotype)[i] == c - 8)
        assert all(smaller.stages[j].out_channels == new for j in unit if j >= 0)
    for i, stage in enumerate(genotype.stages):
        chain = [genotype] + [g for g, _ in reductions(genotype, [i], "expansion")]
        assert (len(chain) > 1) == (stage.type == "ir")
        # The hidden width of the stage's last layer (as InvertedResidual computes it).
        c_in = stage.out_channels if stage.repeats > 1 else stage_inputs(genotype)[i]
        mids = [make_divisible(c_in * g.stages[i].expansion) for g in chain]
        assert all(a - b == 8 for a, b in zip(mids, mids[1:], strict=False))
        layers = [g.stages[i].repeats for g, _ in reductions(genotype, [i], "layers")]
        assert layers == list(range(stage.repeats - 1, 0, -1))


# -- the strategy -----------------------------------------------------------------
def test_first_ask_is_the_unreduced_start_network_outside_the_action_grid():
    s = make()
    p = s.ask()
    assert p.genotype == MOBILENETV3_SMALL and p.actions == ()
    assert p.info["netadapt"]["kind"] == "start" and p.id == 0


def test_every_proposal_is_the_smallest_reduction_that_cuts_the_table_by_delta():
    s = make(step_ratio=0.04, step_decay=0.9)
    start = s.ask()
    s.tell(start, 0.8)
    for _ in range(3):  # three iterations
        step, current = s.step, s.current
        assert not s.finished and s.pending
        kinds_seen = set()
        asked = [s.ask() for _ in range(len(s.pending))]  # all asked, then all told
        for p in asked:
            info = p.info["netadapt"]
            latency = s.latency_of(p.genotype)
            assert latency == pytest.approx(info["latency_ms"])
            assert current["latency_ms"] - latency >= step  # cuts the table by at least δ
            # ... and the next smaller reduction of the same kind does not.
            unit = info["stages"]
            chain = [g for g, _ in reductions(current["genotype"], unit, info["kind"])]
            k = chain.index(p.genotype)
            assert all(current["latency_ms"] - s.latency_of(g) < step for g in chain[:k])
            kinds_seen.add(info["kind"])
            s.tell(p, reward_of(p))
        assert kinds_seen == {"expansion", "filters", "layers"}
        assert s.step == pytest.approx(step * 0.9)


def test_keeps_the_best_accuracy_change_per_latency_change():
    s = make(step_ratio=0.05)
    s.tell(s.ask(), 0.8)
    assert not s.finished  # (prepares the iteration's proposals, as the loop's check does)
    told = []
    for i in range(len(s.pending)):
        p = s.ask()
        r = 0.8 - 0.001 * (i + 1)
        told.append((p, r))
        s.tell(p, r)
    ratios = [
        (r - 0.8) / (s.history[0]["latency_ms"] - p.info["netadapt"]["latency_ms"]) for p, r in told
    ]
    best = max(range(len(told)), key=ratios.__getitem__)
    assert s.current["genotype"] == told[best][0].genotype
    assert s.current["reward"] == told[best][1]
    decision = s.history[-1]
    assert decision["chosen"] == best and len(decision["proposals"]) == len(told)
    assert decision["proposals"][best]["ratio"] == pytest.approx(ratios[best])


def test_runs_to_the_target_and_records_every_step(tmp_path):
    s = make(target_ratio=0.7, step_ratio=0.05)
    proposals = run(s)
    assert s.finished and s.reason.startswith("target reached")
    path = s.path()
    latencies = [step["latency_ms"] for step in path]
    assert latencies[-1] <= s.target == pytest.approx(0.7 * latencies[0])
    assert all(a - b >= s.step - 1e-9 for a, b in zip(latencies, latencies[1:], strict=False))
    assert len(s.history) == len(path) and path[0]["kind"] == "start"
    assert sum(len(h["proposals"]) for h in s.history) == len(proposals)
    for name, data in s.outputs().items():  # what the search writes into the run folder
        (tmp_path / name).write_text(json.dumps(data))
    report = json.loads((tmp_path / "netadapt.json").read_text())
    assert [p["latency_ms"] for p in report["path"]] == pytest.approx(latencies)
    assert report["finished"] and len(report["history"]) == len(s.history)
    assert load_genotype(tmp_path / "netadapt_final.json") == s.current["genotype"]
    table = LatencyTable.load(tmp_path / "netadapt_latency_table.json")
    assert len(table) > len(layer_keys(MOBILENETV3_SMALL))


def test_stops_when_no_stage_can_be_cut_by_delta():
    s = make(step_ms=1e6, target_ms=1e-3)
    s.tell(s.ask(), 0.8)
    assert s.finished and s.reason.startswith("no stage can be cut")
    with pytest.raises(RuntimeError, match="nothing to propose"):
        s.ask()


def test_a_start_network_already_under_the_target_is_the_result():
    s = make(target_ms=1e6)
    s.tell(s.ask(), 0.8)
    assert s.finished and len(s.path()) == 1


def test_untold_children_count_as_failed():
    s = make(step_ratio=0.05)
    s.tell(s.ask(), 0.8)
    assert not s.finished
    n = len(s.pending)
    asked = [s.ask() for _ in range(n)]
    for p in asked[1:]:  # the first one "crashed": the loop never tells it
        s.tell(p, reward_of(p))
    assert not s.finished and s.iteration == 1  # reading `finished` decides nothing
    s.ask()  # the next ask decides the iteration without it
    assert s.iteration == 2
    failed = [p for p in s.history[-1]["proposals"] if p["reward"] is None]
    assert [p["slot"] for p in failed] == [asked[0].info["netadapt"]["slot"]]
    s.tell(asked[0], 0.9)  # a late reward is ignored, not an error
    assert s.iteration == 2


def test_max_proposals_draws_a_seeded_subset():
    def first_iteration(seed):
        s = make(max_proposals=3, seed=seed)
        s.tell(s.ask(), 0.8)
        assert not s.finished
        return [
            (p.info["netadapt"]["kind"], p.info["netadapt"]["stage"])
            for p in [s.ask() for _ in range(len(s.pending))]
        ]

    assert len(first_iteration(0)) == 3
    assert first_iteration(0) == first_iteration(0)
    assert any(first_iteration(k) != first_iteration(0) for k in range(1, 6))


def test_calibration_scales_targets_and_steps_to_measured_milliseconds():
    s = make(calibrate=True, step_ratio=0.05)
    p = s.ask()
    table = sum(fake_ms(k) for k in layer_keys(MOBILENETV3_SMALL))
    assert s.scale == pytest.approx(1.5)
    assert p.info["netadapt"]["latency_ms"] == pytest.approx(1.5 * table)
    assert s.target == pytest.approx(0.8 * 1.5 * table)


class OverheadLatency(FakeLatency):
    """Whole networks 'measure' 2 ms more than their table: cuts are smaller than predicted."""

    def measure_network(self, genotype, warmup, repeats):
        ms = sum(fake_ms(k) for k in self.keys(genotype)) + 2.0
        return SimpleNamespace(median_ms=ms, min_ms=ms, iqr_ms=0.0)


def test_verification_times_whole_networks_and_iterates_until_they_meet_the_target():
    s = NetAdapt(
        space(),
        "mobilenetv3_small",
        latency=OverheadLatency(),
        target_ratio=0.8,
        step_ratio=0.03,
        verify_rounds=2,
    )
    run(s)
    checks = [h for h in s.history if "verified_ms" in h]
    assert s.finished and "measured" in s.reason and checks
    assert all(h["latency_ms"] <= s.target for h in checks)  # verified only when the table agreed
    assert all(h["verified_ms"] > s.target for h in checks[:-1])  # ... then iterated on
    assert checks[-1]["verified_ms"] <= s.target and len(checks) == 3  # deterministic here
    start = s.history[0]["latency_ms"]
    for h in checks:  # the start's latency times the measured ratio current / start
        strings = h["proposals"][h["chosen"]]["genotype"]
        g = dataclasses.replace(MOBILENETV3_SMALL, stages=tuple(map(decode_block, strings)))
        table = sum(fake_ms(k) for k in layer_keys(g))
        assert h["verified_ms"] == pytest.approx(start * (table + 2.0) / (start + 2.0))


@pytest.mark.parametrize("k", [1, 5, 12])
def test_state_dict_resumes_exactly_through_safe_torch_load(k):
    full = make(step_ratio=0.05, max_proposals=4, seed=3)
    reference = [(p.genotype, p.info["netadapt"]["slot"]) for p in run(full)]
    first = make(step_ratio=0.05, max_proposals=4, seed=3)
    done = []
    for _ in range(k):
        first.finished  # noqa: B018 (what the loop does before each ask)
        p = first.ask()
        first.tell(p, reward_of(p))
        done.append((p.genotype, p.info["netadapt"]["slot"]))
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = make(step_ratio=0.05, max_proposals=4, seed=0)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    rest = [(p.genotype, p.info["netadapt"]["slot"]) for p in run(resumed)]
    assert done + rest == reference
    assert resumed.path() == full.path()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"target_ms": None, "target_ratio": None}, "target_ms"),
        ({"target_ratio": 1.5}, "target_ratio"),
        ({"step_ms": -1.0}, "step_ms"),
        ({"step_ratio": 0.0}, "step_ratio"),
        ({"step_decay": 1.2}, "step_decay"),
        ({"kinds": ["width"]}, "kinds"),
        ({"max_proposals": 0}, "max_proposals"),
        ({"genotype": "nasnet_a"}, "genotype"),
        ({"genotype": "no_such_net"}, "genotype"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, key):
    with pytest.raises(ConfigError) as err:
        make(**{"genotype": "mobilenetv3_small", **kwargs})
    assert err.value.key == key


def test_start_defaults_to_the_space_base():
    assert (
        NetAdapt(space("mobilenetv3_large"), latency=FakeLatency(), target_ratio=0.9).start
        == MOBILENETV3_LARGE
    )


# -- platform-aware NAS, then NetAdapt ----------------------------------------------
def make_sequence(first_children=4, seed=0):
    then = functools.partial(
        NetAdapt, latency=FakeLatency(), target_ratio=0.85, step_ratio=0.05, max_proposals=3
    )  # as Hydra's _partial_
    return StrategySequence(
        space(), first=RandomSearch, then=then, first_children=first_children, seed=seed
    )


def seq_reward(p) -> float:
    if p.info["phase"] == 0:
        return random.Random(str(p.genotype)).random()
    return reward_of(p)


def test_sequence_runs_netadapt_from_the_first_phases_best():
    s = make_sequence()
    proposals = run(s, seq_reward)
    first = [p for p in proposals if p.info["phase"] == 0]
    assert len(first) == 4 and all(p.actions for p in first)
    best = max(first, key=seq_reward)
    second = [p for p in proposals if p.info["phase"] == 1]
    assert second[0].genotype == best.genotype and second[0].actions == ()
    assert s.finished and s.then.reason.startswith("target reached")
    assert [p.id for p in proposals] == list(range(len(proposals)))


@pytest.mark.parametrize("k", [2, 4, 7])
def test_sequence_state_dict_resumes_exactly(k):
    reference = [p.genotype for p in run(make_sequence(), seq_reward)]
    s = make_sequence()
    done = []
    for _ in range(k):
        s.finished  # noqa: B018
        p = s.ask()
        s.tell(p, seq_reward(p))
        done.append(p.genotype)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    resumed = make_sequence()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert done + [p.genotype for p in run(resumed, seq_reward)] == reference


def test_sequence_stats_keep_one_set_of_columns():
    s = make_sequence(first_children=1)
    p = s.ask()
    stats = s.tell(p, 0.5)
    assert set(NetAdapt.STAT_KEYS) <= set(stats) and stats["phase"] == 0.0
    assert math.isnan(stats["netadapt/latency_ms"])
