"""Zero-cost proxies (nas_lightning.proxies) and their benchmark on the tabular tables."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas_lightning.proxies import PROXIES, score
from tests.conftest import load_benchmark


def tiny_mlp() -> nn.Sequential:
    """2 -> 2 -> 1, no biases, weights with mixed signs."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    return net


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def image_batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_synflow_of_a_tiny_mlp_is_the_hand_computed_value():
    # |W1| = [[1, 2], [3, 4]], |W2| = [[1, 2]], input (1, 1): hidden (3, 7), R = 3 + 14 = 17.
    # Layer 2: |w * dR/dw| = 1*3 + 2*7 = 17; layer 1: dR/dW1[i, j] = |W2|_i, so
    # 1*1 + 2*1 + 3*2 + 4*2 = 17. Total 34.
    x = torch.tensor([[5.0, -7.0]])  # only its shape is used
    assert score("synflow", tiny_mlp(), (x, torch.tensor([0]))) == pytest.approx(34.0)


def test_proxies_leave_the_model_unchanged():
    net = small_cnn(0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for name in PROXIES:
        score(name, net, image_batch())
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert all(p.grad is None for p in net.parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_naswot_of_known_activation_patterns():
    # Codes (1, 1) and (1, 0): K = [[2, 1], [1, 2]], det 3.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    assert score("naswot", nn.Sequential(nn.ReLU()), (x, torch.zeros(2))) == pytest.approx(
        math.log(3.0)
    )
    # Identical codes: K is singular.
    same = torch.tensor([[1.0, -1.0], [2.0, -3.0]])
    assert score("naswot", nn.Sequential(nn.ReLU()), (same, torch.zeros(2))) == -math.inf


def test_naswot_drops_when_inputs_repeat():
    net = small_cnn(0)
    x, y = image_batch()
    repeated = x.clone()
    repeated[4:] = x[:4]
    assert score("naswot", net, (repeated, y)) < score("naswot", net, (x, y))


def test_naswot_hooks_layers_when_activations_are_functions():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2, bias=False)
            with torch.no_grad():
                self.fc.weight.copy_(torch.eye(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.fc(x))

    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    assert score("naswot", Functional(), (x, torch.zeros(2))) == pytest.approx(math.log(3.0))


def test_grad_norm_of_a_zero_linear_layer():
    # Logits 0, softmax (0.5, 0.5), label 0: dL/dlogits = (-0.5, 0.5); dL/dW = that x (1, 0).
    net = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(net.weight)
    got = score("grad_norm", net, (torch.tensor([[1.0, 0.0]]), torch.tensor([0])))
    assert got == pytest.approx(math.sqrt(0.5))


def test_params_is_the_trainable_parameter_count():
    net = small_cnn(0)
    assert score("params", net, image_batch()) == sum(p.numel() for p in net.parameters())


def test_unknown_proxy_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'snip'") as err:
        score("snip", small_cnn(0), image_batch())
    assert all(name in str(err.value) for name in PROXIES)
    assert "\n" not in str(err.value)


def test_same_seed_same_scores_and_another_seed_differs():
    batch = image_batch()
    first = {n: score(n, small_cnn(1), batch) for n in PROXIES}
    again = {n: score(n, small_cnn(1), batch) for n in PROXIES}
    other = {n: score(n, small_cnn(2), batch) for n in PROXIES}
    assert first == again
    assert first["synflow"] != other["synflow"]


bench = load_benchmark("zero_cost")


def test_rank_correlations_with_ties():
    from nas_lightning.core.ranks import average_ranks, kendall_tau_b, spearman

    assert bench.kendall_tau_b is kendall_tau_b and bench.spearman is spearman  # one copy
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # one tie on each side: 4 concordant, 0 discordant, sqrt(5 * 5) untied pairs
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert average_ranks([3.0, -math.inf, 3.0, 1.0]) == [3.5, 1.0, 3.5, 2.0]  # -inf: naswot
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_scores_of_a_few_nas_rl_table_rows():
    batch = tuple(t[:8] for t in bench.fixed_batch(8))
    table = bench.score_table("nas_rl_l3", ["params", "synflow"], seeds=2, batch=batch, limit=4)
    rows = table["architectures"]
    assert [r["arch"] for r in rows] == [0, 1, 2, 3]
    # the networks are the table's: the parameter count matches each row's
    assert [s[0] for s in table["scores"]["params"]] == [r["params"] for r in rows]
    corr = bench.correlations(table)
    assert corr["params"]["seed_kendall"] == pytest.approx(1.0)
    assert -1.0 <= corr["synflow"]["kendall_val"] <= 1.0


def test_filter_with_a_perfect_proxy_finds_better_children():
    rows, _ = bench.architectures("nas_rl_l3")
    oracle = {"oracle": [r["val_acc"] for r in rows]}
    result = bench.filter_table("nas_rl_l3", oracle, ks=[8], budgets=[5], seeds=3,
                                strategies=["random"])
    found = result["found"]["random"]
    plain, filtered = found["plain"]["5"]["val"], found["oracle k=8"]["5"]["val"]
    assert len(plain) == len(filtered) == 3
    assert sum(filtered) > sum(plain)
    assert max(filtered) <= result["optimum"]
