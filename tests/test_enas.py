"""ENAS: the supernet's sub-graphs, the alternation, the end-to-end search."""

from __future__ import annotations

import random

import pytest
import torch

from nas_lightning.enas.supernet import Supernet, copy_weights, weight_pairs
from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes.nasnet import NASNET_A
from nas_lightning.models.nasnet import NASNetwork
from nas_lightning.spaces.nasnet import NASNetSpace

ENAS_OPS = ["identity", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]
LAYOUT = dict(
    in_channels=1,
    num_classes=10,
    filters=4,
    cells_per_stage=1,
    num_reductions=2,
    stem_multiplier=2,
    stem_stride=1,
)


def _randomize(net: torch.nn.Module, seed: int) -> None:
    """Distinct values in every parameter and BatchNorm statistic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict(keep_vars=True).items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)


def _space_genotypes(space: NASNetSpace, n: int, seed: int):
    rng = random.Random(seed)
    return [space.decode([rng.randrange(d.size) for d in space.decisions]) for _ in range(n)]


@pytest.mark.parametrize("combines", [("add",), ("add", "concat")])
def test_sub_graph_equals_the_standalone_network(combines):
    space = NASNetSpace(num_blocks=3, ops=ENAS_OPS, combines=combines)
    supernet = Supernet(3, ENAS_OPS, combines, **LAYOUT).eval()
    x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    for i, genotype in enumerate(_space_genotypes(space, 4, seed=len(combines))):
        net = NASNetwork(genotype, **LAYOUT).eval()
        _randomize(net, seed=i)
        copy_weights(supernet, net, genotype, into="supernet")
        with torch.no_grad():
            expected, got = net(x), supernet(x, genotype)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()
        # and back: the standalone network the supernet exports is the same function
        with torch.no_grad():
            exported = supernet.standalone(genotype).eval()(x)
        assert torch.allclose(exported, expected, rtol=1e-5, atol=1e-6)


def test_every_standalone_tensor_is_mapped_once():
    genotype = _space_genotypes(NASNetSpace(3, ENAS_OPS, ("add",)), 1, seed=5)[0]
    supernet, net = Supernet(3, ENAS_OPS, **LAYOUT), NASNetwork(genotype, **LAYOUT)
    mapped = {id(std) for std, _, _ in weight_pairs(supernet, net, genotype)}
    assert mapped == {id(t) for t in net.state_dict(keep_vars=True).values()}


def test_nasnet_a_with_all_ops_and_cell_inputs_in_the_output():
    ops = sorted({op for cell in (NASNET_A.normal, NASNET_A.reduction) for op in cell.ops})
    layout = dict(LAYOUT, filters=4, stem_stride=2)
    supernet = Supernet(5, ops, ("add",), **layout).eval()
    net = NASNetwork(NASNET_A, **layout).eval()
    _randomize(net, seed=1)
    copy_weights(supernet, net, NASNET_A, into="supernet")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(supernet(x, NASNET_A), net(x), rtol=1e-5, atol=1e-6)


def test_a_genotype_outside_the_supernet_is_refused():
    supernet = Supernet(5, ["identity", "max_pool_3x3"], **LAYOUT)
    with pytest.raises(GenotypeError, match="sep_conv_5x5"):
        supernet.check(NASNET_A)


def test_training_step_gradients_equal_the_standalone_networks():
    """Train mode (batch statistics): same loss, same gradients, none outside the sub-graph."""
    space = NASNetSpace(3, ENAS_OPS, ("add", "concat"))
    genotype = _space_genotypes(space, 1, seed=2)[0]
    supernet = Supernet(3, ENAS_OPS, ("add", "concat"), **LAYOUT)
    net = NASNetwork(genotype, **LAYOUT)
    _randomize(net, seed=3)
    copy_weights(supernet, net, genotype, into="supernet")
    x, y = torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 3])
    loss_fn = torch.nn.functional.cross_entropy
    loss_fn(supernet(x, genotype), y).backward()
    loss_fn(net(x), y).backward()
    paired = set()
    for std, sup, cols in weight_pairs(supernet, net, genotype):
        paired.add(id(sup))
        if not sup.requires_grad:
            continue
        if std.grad is None:
            assert sup.grad is None or not sup.grad.any()
            continue
        got = sup.grad if cols is None else sup.grad.index_select(1, cols)
        assert torch.allclose(got, std.grad, rtol=1e-4, atol=1e-6)
    for name, p in supernet.named_parameters():
        if id(p) not in paired:
            assert p.grad is None, name
