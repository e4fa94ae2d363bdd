import pytest
import torch

from nas_lightning.genotypes import NASNET_A
from nas_lightning.models import NASNetwork
from nas_lightning.models.ops import OPS, FactorizedReduce


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_every_op_keeps_channels_and_divides_size(name, stride, size):
    op = OPS[name](6, stride)
    x = torch.randn(2, 6, size, size, requires_grad=True)
    y = op(x)
    expected = (size + stride - 1) // stride
    assert y.shape == (2, 6, expected, expected)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError):
        FactorizedReduce(4, 5)


def test_nasnet_a_6_at_768_has_3_3m_parameters():
    net = NASNetwork(NASNET_A, in_channels=3, num_classes=10, filters=32, cells_per_stage=6)
    params = sum(p.numel() for p in net.parameters())
    assert abs(params - 3.3e6) / 3.3e6 < 0.05, params
    assert net.out_channels == 768  # the "768" of "6 @ 768"
    assert len(net.cells) == 6 * 3 + 2


@pytest.mark.parametrize("in_channels, size", [(1, 28), (3, 32), (3, 15)])
def test_searched_cells_build_for_any_input(in_channels, size):
    import random

    from nas_lightning.spaces import NASNetSpace

    space = NASNetSpace()
    rng = random.Random(size)
    for _ in range(3):
        g = space.decode(space.sample(rng))
        net = NASNetwork(g, in_channels, 7, filters=4, cells_per_stage=1, stem_multiplier=2)
        out = net(torch.randn(2, in_channels, size, size))
        assert out.shape == (2, 7)


def test_drop_path_only_in_training():
    net = NASNetwork(NASNET_A, 1, 10, filters=4, cells_per_stage=1)
    net.set_drop_path(0.5)
    x = torch.randn(4, 1, 16, 16)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
