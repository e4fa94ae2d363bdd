"""MnasNet's reward ACC × (LAT/T)^w: soft and hard presets."""

from __future__ import annotations

import pytest
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas_lightning.errors import ConfigError
from nas_lightning.rewards import ChildMetrics, MnasReward

REWARD_CONF = CONF / "reward"


def m(acc: float, lat: float | None) -> ChildMetrics:
    return ChildMetrics(val_acc=acc, extra={} if lat is None else {"latency_ms": lat})


def test_soft_constraint():
    r = MnasReward(target_ms=75.0, alpha=-0.07, beta=-0.07)
    assert r(m(0.75, 75.0)) == pytest.approx(0.75)
    assert r(m(0.75, 150.0)) == pytest.approx(0.75 * 2**-0.07)  # ~4.7% less
    assert r(m(0.75, 37.5)) == pytest.approx(0.75 * 2**0.07)  # ~5% more
    # Soft: the same exponent on both sides, so speed still pays under T.
    assert r(m(0.75, 30.0)) > r(m(0.75, 60.0)) > r(m(0.75, 90.0))
    # A slower, more accurate model can win (the trade-off the soft preset explores).
    assert r(m(0.76, 85.0)) > r(m(0.75, 75.0))


def test_hard_constraint():
    r = MnasReward(target_ms=75.0, alpha=0.0, beta=-1.0)
    for lat in (10.0, 50.0, 75.0):
        assert r(m(0.7, lat)) == pytest.approx(0.7)  # latency does not matter under T
    assert r(m(0.7, 150.0)) == pytest.approx(0.35)  # accuracy halved at twice T
    assert r(m(0.8, 100.0)) < r(m(0.7, 75.0))
    assert r.exponent(75.0) == 0.0 and r.exponent(75.1) == -1.0


def test_missing_latency_names_what_exists():
    r = MnasReward()
    with pytest.raises(ConfigError, match=r"latency_ms.*extra has \['macs'\]") as err:
        r(ChildMetrics(val_acc=0.5, extra={"macs": 3}))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="positive"):
        r(m(0.5, 0.0))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"target_ms": 0}, "target_ms"),
        ({"target_ms": float("nan")}, "target_ms"),
        ({"alpha": float("inf")}, "alpha"),
        ({"beta": "x"}, "beta"),
    ],
)
def test_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError) as err:
        MnasReward(**kwargs)
    assert err.value.key == key


@pytest.mark.parametrize(
    "name, alpha, beta", [("mnasnet_soft", -0.07, -0.07), ("mnasnet_hard", 0.0, -1.0)]
)
def test_presets(name, alpha, beta):
    node = OmegaConf.load(REWARD_CONF / f"{name}.yaml")
    cfg = OmegaConf.create({"latency": {"target_ms": 40.0}, "reward": node})
    r = instantiate(cfg.reward)
    assert isinstance(r, MnasReward)
    assert (r.alpha, r.beta, r.target_ms) == (alpha, beta, 40.0)  # T from latency.target_ms
    no_probe = instantiate(OmegaConf.create({"latency": None, "reward": node}).reward)
    assert no_probe.target_ms == 75.0  # the paper's T when no probe is configured
