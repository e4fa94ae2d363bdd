"""Optuna's samplers (TPE, NSGA-II) behind ask/tell: values, objectives, failures, resume."""

from __future__ import annotations

import pytest
import torch

from nas_lightning.errors import ConfigError
from nas_lightning.rewards import ChildMetrics
from nas_lightning.spaces import ListSpace
from nas_lightning.strategies import NSGA2, TPE


def space() -> ListSpace:
    return ListSpace([("width", [8, 16, 32, 64]), ("depth", [1, 2, 3]), ("op", ["a", "b"])])


def accuracy_and_latency(genotype: dict) -> tuple[float, float]:
    """Bigger is more accurate and slower: a true trade-off."""
    size = genotype["width"] * genotype["depth"]
    return 1 - 1 / size, float(size) + (genotype["op"] == "b")


def test_tpe_proposes_each_decision_through_optuna():
    strategy = TPE(space(), n_startup_trials=3, seed=0)
    proposals = strategy.ask(4)
    assert [p.info["trial"] for p in proposals] == [0, 1, 2, 3]
    strategy.tell(proposals, [0.1, 0.2, 0.3, 0.4])
    trial = strategy.study.trials[2]
    assert trial.params == dict(zip(space().names, proposals[2].actions, strict=True))
    assert trial.values == [0.3]
    with pytest.raises(ValueError, match="not an open trial"):
        strategy.tell(proposals[0], 0.5)  # told twice


def test_nsga2_searches_a_pareto_front_of_two_objectives():
    strategy = NSGA2(space(), population_size=6, objectives=("val_acc", "latency_ms"), seed=0)
    assert strategy.directions == ("maximize", "minimize")
    for i in range(24):
        p = strategy.ask()
        acc, lat = accuracy_and_latency(p.genotype)
        value = (acc, lat) if i % 2 else {"latency_ms": lat, "val_acc": acc}  # tuple or dict
        strategy.tell(p, value)
    front = strategy.pareto_front()
    assert front and all(len(t["values"]) == 2 for t in front)
    lats = [t["values"][1] for t in front]
    accs = [t["values"][0] for t in front]
    order = sorted(range(len(front)), key=lambda i: lats[i])  # slower is more accurate
    assert [accs[i] for i in order] == sorted(accs)
    with pytest.raises(ValueError, match="expected 2 values"):
        strategy.tell(strategy.ask(), 0.5)


def test_the_loop_passes_metrics_and_latency_to_a_multi_objective_strategy():
    strategy = NSGA2(space(), population_size=4, objectives=("val_acc", "latency_ms"))
    metrics = ChildMetrics(val_acc=0.8, params=10, extra={"latency_ms": 12.5})
    assert strategy.objective_values(0.7, metrics) == {"val_acc": 0.8, "latency_ms": 12.5}
    with pytest.raises(ValueError, match="latency probe"):
        strategy.objective_values(0.7, ChildMetrics(val_acc=0.8))
    single = TPE(space())
    assert single.objective_values(0.7, metrics) == {"reward": 0.7}
    with pytest.raises(ValueError, match="expected 1 values"):
        single.tell(single.ask(), (0.1, 0.2))


@pytest.mark.parametrize("cls", [TPE, NSGA2])
@pytest.mark.parametrize("k", [5, 13])
def test_resume_proposes_what_the_uninterrupted_study_proposes(tmp_path, cls, k):
    """Saved with torch.save, loaded with weights_only=True, including failed and open trials."""

    def make(seed: int):
        kwargs = {"n_startup_trials": 4} if cls is TPE else {"population_size": 4}
        return cls(space(), seed=seed, **kwargs)

    def step(strategy, i):
        p = strategy.ask()
        strategy.tell(p, None if i % 7 == 3 else accuracy_and_latency(p.genotype)[0])
        return p.actions

    def save_and_load(strategy):
        torch.save(strategy.state_dict(), tmp_path / "s.pt")
        resumed = make(99)  # the state, not the seed, must decide
        resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
        return resumed

    full = make(1)
    expected = [step(full, i) for i in range(20)]
    first = make(1)
    seen = [step(first, i) for i in range(k)]
    resumed = save_and_load(first)
    seen += [step(resumed, i) for i in range(k, 20)]
    assert seen == expected

    # A trial asked but not told when saved stays open and can be told after loading.
    open_trial = first.ask()
    resumed = save_and_load(first)
    assert resumed.study.trials[-1].state.name == "RUNNING"
    resumed.tell(open_trial, 0.5)
    assert resumed.study.trials[open_trial.info["trial"]].state.name == "COMPLETE"


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: TPE(space(), n_startup_trials=-1), "n_startup_trials"),
        (lambda: NSGA2(space(), population_size=1), "population_size"),
        (lambda: NSGA2(space(), population_size=None), "budget"),
        (lambda: NSGA2(space(), crossover_prob=2.0), "crossover_prob"),
        (lambda: TPE(space(), objectives=("val_acc", "flops")), "directions"),
        (lambda: TPE(space(), objectives=("reward",), directions=("up",)), "directions"),
        (lambda: TPE(space(), objectives=("reward", "reward")), "objectives"),
    ],
)
def test_bad_arguments_raise_config_errors(make, key):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key
