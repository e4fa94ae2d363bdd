"""NAS-RL space, genotype and builder: round trips and every sample builds."""

from __future__ import annotations

import random
from functools import partial

import pytest
import torch

from nas_lightning.controllers import LSTMController
from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import (
    genotype_from_dict,
    genotype_from_json,
    genotype_to_json,
    load_genotype,
    save_genotype,
)
from nas_lightning.genotypes.nas_rl import NASRLGenotype, NASRLLayer
from nas_lightning.models import NASRLNetwork
from nas_lightning.models.nas_rl import concat_padded
from nas_lightning.spaces import AnchorDecision, NASRLSpace
from nas_lightning.strategies import Reinforce

SPACES = {
    "chain": dict(num_layers=6),
    "chain_strides": dict(num_layers=6, strides=(1, 2, 3)),
    "paper_literal": dict(num_layers=6, connect_previous=False),
    "paper_literal_strides": dict(num_layers=6, strides=(1, 2, 3), connect_previous=False),
}


def _layer(kh=3, kw=3, f=24, s=1, inputs=()):
    return NASRLLayer(kh, kw, f, s, tuple(inputs))


# --- space ---------------------------------------------------------------------------------


def test_decisions_follow_the_papers_order_per_layer():
    space = NASRLSpace(num_layers=3, strides=(1, 2, 3))
    assert space.names[:5] == (
        "layer0/filter_height",
        "layer0/filter_width",
        "layer0/filters",
        "layer0/stride",
        "layer0/skip",
    )
    assert len(space) == 15
    assert space.decisions[0].choices == (1, 3, 5, 7)
    assert space.decisions[2].choices == (24, 36, 48, 64)
    assert space.decisions[3].choices == (1, 2, 3)
    assert len(NASRLSpace(num_layers=3)) == 12  # no stride decision by default


@pytest.mark.parametrize(
    "connect_previous, expected", [(True, [0, 0, 1, 2]), (False, [0, 1, 2, 3])]
)
def test_anchor_scores_earlier_layers(connect_previous, expected):
    space = NASRLSpace(num_layers=4, connect_previous=connect_previous)
    anchors = [d for d in space.decisions if isinstance(d, AnchorDecision)]
    assert [a.anchor for a in anchors] == [0, 1, 2, 3]
    assert [a.num_prev for a in anchors] == expected


def test_choice_lists_are_config_values():
    space = NASRLSpace(
        num_layers=2, filter_heights=[3], filter_widths=[1, 5], num_filters=[8, 16], strides=[1, 2]
    )
    g = space.decode(space.sample(random.Random(0)))
    for layer in g.layers:
        assert layer.filter_height == 3
        assert layer.filter_width in (1, 5)
        assert layer.filters in (8, 16)
        assert layer.stride in (1, 2)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(num_layers=0), "num_layers"),
        (dict(filter_heights=[]), "filter_heights"),
        (dict(filter_widths=[3, 3]), "filter_widths"),
        (dict(num_filters=[0, 24]), "num_filters"),
        (dict(strides=[1.5]), "strides"),
        (dict(num_layers=4, start_layers=5), "start_layers"),
        (dict(grow_every=10), "grow_every"),
        (dict(start_layers=2, grow_by=0), "grow_by"),
    ],
)
def test_bad_config_values_name_their_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        NASRLSpace(**kwargs)
    assert err.value.key == key


@pytest.mark.parametrize("name", SPACES)
def test_decode_encode_round_trip(name):
    space = NASRLSpace(**SPACES[name])
    rng = random.Random(1)
    for _ in range(50):
        actions = space.sample(rng)
        genotype = space.decode(actions)
        assert space.encode(genotype) == actions
        assert space.decode(space.encode(genotype)) == genotype


def test_previous_layer_is_always_an_input_when_chained():
    space = NASRLSpace(**SPACES["chain"])
    rng = random.Random(2)
    for _ in range(20):
        g = space.decode(space.sample(rng))
        assert g.layers[0].inputs == ()
        assert all(i - 1 in layer.inputs for i, layer in enumerate(g.layers) if i)


def test_literal_paper_reading_lets_layers_read_the_image():
    space = NASRLSpace(num_layers=4, connect_previous=False)
    g = space.decode([0] * len(space))  # no connections at all
    assert all(layer.inputs == () for layer in g.layers)
    assert g.outputs == (0, 1, 2, 3)
    net = NASRLNetwork(g, in_channels=3, num_classes=5)
    assert all(layer[0].in_channels == 3 for layer in net.layers)
    assert net.head[-1].in_features == 4 * 24


def test_encode_rejects_what_the_space_cannot_produce():
    chain = NASRLSpace(num_layers=3)
    with pytest.raises(GenotypeError, match="always connects"):
        chain.encode(NASRLGenotype((_layer(), _layer(inputs=()))))
    with pytest.raises(GenotypeError, match="stride"):
        chain.encode(NASRLGenotype((_layer(s=2),)))
    with pytest.raises(GenotypeError, match="not one of"):
        chain.encode(NASRLGenotype((_layer(f=25),)))
    with pytest.raises(GenotypeError, match="at most 3"):
        chain.encode(NASRLGenotype(tuple(_layer(inputs=[i - 1] if i else []) for i in range(4))))


# --- genotype --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPACES)
def test_json_round_trip(name, tmp_path):
    space = NASRLSpace(**SPACES[name])
    rng = random.Random(3)
    for k in range(10):
        g = space.decode(space.sample(rng))
        assert genotype_from_json(genotype_to_json(g)) == g
        path = tmp_path / f"g{k}.json"
        save_genotype(g, path)
        assert load_genotype(path) == g


def test_json_holds_layers_and_skip_connections():
    g = NASRLGenotype((_layer(7, 1, 36), _layer(3, 5, 48, 2, [0]), _layer(1, 1, 64, 1, [0, 1])))
    data = genotype_from_dict({"kind": "nas_rl", **g.to_dict()}).to_dict()
    assert data["layers"][2] == {
        "filter_height": 1,
        "filter_width": 1,
        "filters": 64,
        "stride": 1,
        "inputs": [0, 1],
    }
    assert str(g) == "0: 7x1/36 s1 <- img; 1: 3x5/48 s2 <- 0; 2: 1x1/64 s1 <- 0,1 -> concat[2]"


@pytest.mark.parametrize(
    "layers, match",
    [
        ([], "at least one layer"),
        ([{"filter_height": 3, "filter_width": 3, "filters": 8, "inputs": [0]}], "earlier"),
        ([{"filter_height": 0, "filter_width": 3, "filters": 8}], "filter_height"),
        ([{"filter_height": 3, "filter_width": 3, "filters": 8, "kernel": 3}], "unknown"),
        ([{"filter_height": 3, "filter_width": 3}], "malformed"),
    ],
)
def test_malformed_genotypes_raise_genotype_error(layers, match):
    with pytest.raises(GenotypeError, match=match):
        genotype_from_dict({"kind": "nas_rl", "layers": layers})


def test_inputs_must_be_ascending_and_distinct():
    with pytest.raises(GenotypeError, match="ascending"):
        _layer(inputs=[1, 0])
    with pytest.raises(GenotypeError, match="ascending"):
        _layer(inputs=[0, 0])


# --- builder ---------------------------------------------------------------------------------


def _controller_genotypes(space: NASRLSpace, n: int) -> list[NASRLGenotype]:
    strategy = Reinforce(
        space, controller=partial(LSTMController, hidden=35, layers=2, init_range=0.08), seed=0
    )
    return [p.genotype for p in strategy.ask(n)]


@pytest.mark.parametrize("shape", [(1, 28), (3, 32)], ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", SPACES)
def test_every_sampled_genotype_builds_and_runs(name, shape):
    channels, size = shape
    space = NASRLSpace(**SPACES[name])
    rng = random.Random(4)
    genotypes = [space.decode(space.sample(rng)) for _ in range(6)]
    genotypes += _controller_genotypes(space, 6)
    x = torch.randn(2, channels, size, size)
    for g in genotypes:
        net = NASRLNetwork(g, in_channels=channels, num_classes=10)
        out = net(x)
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()
    out.sum().backward()  # the last one also trains
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("shape", [(1, 28), (3, 32)], ids=["28x28x1", "32x32x3"])
def test_extreme_genotypes_build(shape):
    channels, size = shape
    x = torch.randn(2, channels, size, size)
    n = 8
    shrinking = NASRLGenotype(tuple(_layer(7, 7, 24, 3, [i - 1] if i else []) for i in range(n)))
    dense = NASRLGenotype(tuple(_layer(1, 7, 64, 2, range(i)) for i in range(n)))
    for g in (shrinking, dense):
        assert NASRLNetwork(g, channels, 10)(x).shape == (2, 10)
    feats = NASRLNetwork(shrinking, channels, 10).features(x)
    assert feats[-1].shape[-2:] == (1, 1)  # stride 3 eight times: down to one pixel, never zero


def test_smaller_inputs_are_zero_padded_and_stride_follows_concat():
    g = NASRLGenotype(
        (
            _layer(3, 3, 24, 1),  # 0: 28x28
            _layer(3, 3, 36, 2, [0]),  # 1: 14x14
            _layer(1, 1, 48, 1, [0, 1]),  # 2: reads 28 and 14 -> padded to 28
            _layer(3, 3, 8, 2, [1, 2]),  # 3: reads 14 and 28 -> 28, stride 2 -> 14
        )
    )
    net = NASRLNetwork(g, in_channels=1, num_classes=10)
    assert [layer[0].in_channels for layer in net.layers] == [1, 24, 60, 84]
    feats = net.features(torch.randn(2, 1, 28, 28))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (24, 28, 28),
        (36, 14, 14),
        (48, 28, 28),
        (8, 14, 14),
    ]
    assert g.outputs == (3,)
    assert net.head[-1].in_features == 8


def test_concat_padded_pads_bottom_right_with_zeros():
    big, small = torch.ones(1, 2, 4, 5), torch.full((1, 3, 2, 3), 7.0)
    out = concat_padded([big, small])
    assert out.shape == (1, 5, 4, 5)
    assert torch.equal(out[:, 2:, :2, :3], small[0].expand(1, 3, 2, 3))
    assert out[:, 2:, 2:, :].abs().sum() == 0 and out[:, 2:, :, 3:].abs().sum() == 0


def test_unread_layers_feed_the_classifier():
    g = NASRLGenotype(
        (
            _layer(f=24),
            _layer(f=36, inputs=[0]),
            _layer(f=48, inputs=[0]),
            _layer(f=64, s=2, inputs=[1]),
        )
    )
    assert g.outputs == (2, 3)
    net = NASRLNetwork(g, in_channels=3, num_classes=7)
    assert net.head[-1].in_features == 48 + 64
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 7)


def test_layers_are_conv_bn_relu_and_even_kernels_keep_size():
    g = NASRLGenotype((_layer(2, 4, 8), _layer(5, 1, 8, inputs=[0])))
    net = NASRLNetwork(g, in_channels=1, num_classes=3)
    kinds = [type(m).__name__ for m in net.layers[1]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert net.layers[1][0].kernel_size == (5, 1) and net.layers[1][0].bias is None
    feats = net.features(torch.randn(2, 1, 9, 10))
    assert [tuple(f.shape[-2:]) for f in feats] == [(9, 10), (9, 10)]


def test_downsample_pools_the_image_first():
    g = NASRLGenotype((_layer(), _layer(s=2, inputs=[0])))
    net = NASRLNetwork(g, in_channels=3, num_classes=10, downsample=2)
    feats = net.features(torch.randn(2, 3, 28, 28))
    assert [tuple(f.shape[-2:]) for f in feats] == [(14, 14), (7, 7)]
    assert net(torch.randn(2, 3, 27, 27)).shape == (2, 10)  # odd sizes round up
    with pytest.raises(ConfigError, match="downsample"):
        NASRLNetwork(g, downsample=0)


def test_builder_rejects_bad_arguments():
    g = NASRLGenotype((_layer(),))
    with pytest.raises(ConfigError, match="in_channels"):
        NASRLNetwork(g, in_channels=0)
    with pytest.raises(ConfigError, match="dropout"):
        NASRLNetwork(g, dropout=1.0)
    with pytest.raises(GenotypeError):
        NASRLNetwork({"layers": []})
