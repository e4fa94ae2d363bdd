import pytest
import torch

from nas_lightning.controllers import LSTMController
from nas_lightning.errors import ConfigError
from nas_lightning.spaces import AnchorDecision, Decision, NASNetSpace


def _mixed_decisions():
    return [
        Decision("a", (1, 2, 3)),
        AnchorDecision("skip0", num_prev=0, anchor=0),
        Decision("b", (1, 2)),
        AnchorDecision("skip1", num_prev=1, anchor=1),
        Decision("c", (1, 2, 3, 4)),
        AnchorDecision("skip2", num_prev=2, anchor=2),
    ]


@pytest.mark.parametrize("layers", [1, 2])
def test_sampled_log_prob_equals_scored_log_prob(layers):
    torch.manual_seed(0)
    controller = LSTMController(_mixed_decisions(), hidden=16, layers=layers)
    gen = torch.Generator().manual_seed(3)
    out = controller(n=8, generator=gen)
    again = controller(actions=out.actions)
    torch.testing.assert_close(out.log_prob, again.log_prob)
    torch.testing.assert_close(out.entropy, again.entropy)
    assert out.actions.shape == (8, 6)
    assert (out.actions[:, 5] < 4).all() and (out.actions[:, 1] == 0).all()


def test_log_prob_is_the_sum_of_per_step_log_probs():
    """Score every action sequence of a tiny space: probabilities sum to 1."""
    torch.manual_seed(0)
    decisions = [
        Decision("a", (0, 1, 2)),
        AnchorDecision("s0", 0, 0),
        AnchorDecision("s1", 1, 1),
        Decision("b", (0, 1)),
    ]
    controller = LSTMController(decisions, hidden=8)
    all_actions = torch.tensor([[a, 0, s, b] for a in range(3) for s in range(2) for b in range(2)])
    total = controller(actions=all_actions).log_prob.exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0))


def test_sampling_is_deterministic_for_a_generator():
    controller = LSTMController(NASNetSpace(num_blocks=2).decisions, hidden=8)
    a = controller(n=4, generator=torch.Generator().manual_seed(5)).actions
    b = controller(n=4, generator=torch.Generator().manual_seed(5)).actions
    assert torch.equal(a, b)


def test_prefix_sampling():
    controller = LSTMController(_mixed_decisions(), hidden=8)
    out = controller(n=2, steps=3)
    assert out.actions.shape == (2, 3)


def test_init_range_temperature_and_tanh():
    c = LSTMController(
        _mixed_decisions(), hidden=8, init_range=0.08, temperature=5.0, tanh_constant=2.5
    )
    assert all(p.abs().max() <= 0.08 for p in c.parameters())
    out = c(n=64)
    # tanh bounds logits to +-2.5, so no choice can be near-certain
    assert out.log_prob.exp().max() < 1.0


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"hidden": 0}, "hidden"),
        ({"hidden": -3}, "hidden"),
        ({"layers": 0}, "layers"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_invalid_controller_arguments(kwargs, key):
    with pytest.raises(ConfigError) as err:
        LSTMController(_mixed_decisions(), **kwargs)
    assert err.value.key == key
