"""Mobile blocks, MobileNetwork, reproductions of the published networks, layer listing."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torchvision
from torch import nn

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import load_genotype
from nas_lightning.genotypes.mobile import BlockArgs, decode_block, encode_block
from nas_lightning.models import LayerSpec, MobileNetwork, NASNetwork, mobile_layers
from nas_lightning.models.mobile_blocks import (
    HardSigmoid,
    HSwish,
    InvertedResidual,
    SqueezeExcite,
    make_block,
    make_divisible,
)
from nas_lightning.models.profile import count_macs, count_params


def test_hswish_and_hard_sigmoid_match_their_formulas():
    x = torch.linspace(-8, 8, 1001)
    relu6 = torch.clamp(x + 3, 0, 6)
    torch.testing.assert_close(HSwish()(x), x * relu6 / 6)
    torch.testing.assert_close(HardSigmoid()(x), relu6 / 6)
    # Known points: h-swish(-3) = 0, h-swish(3) = 3, hard-sigmoid(0) = 0.5.
    pts = torch.tensor([-3.0, 0.0, 3.0])
    assert HSwish()(pts).tolist() == [0.0, 0.0, 3.0]
    assert HardSigmoid()(pts).tolist() == [0.0, 0.5, 1.0]


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    for v in range(1, 2000):
        assert make_divisible(v / 4) == _make_divisible(v / 4, 8), v


CASES = list(
    itertools.product(
        ("ds", "ir", "cn"),
        (1, 2),
        (0.0, 0.25),
        ("relu", "hswish"),
        (True, False),
    )
)


@pytest.mark.parametrize(("block_type", "stride", "se", "act", "skip"), CASES)
def test_every_block_option_builds_and_runs(block_type, stride, se, act, skip):
    for c_in, c_out in ((16, 16), (16, 24)):
        args = BlockArgs(
            block_type,
            1,
            3,
            stride,
            3 if block_type == "ir" else 1,
            c_out,
            se_ratio=se,
            skip=skip,
            activation=act,
        )
        block = make_block(
            c_in,
            args,
            act,
            "hard_sigmoid" if act == "hswish" else "sigmoid",
            "expansion" if act == "hswish" else "input",
        )
        x = torch.randn(2, c_in, 8, 8)
        y = block(x)
        size = 8 // stride
        assert y.shape == (2, c_out, size, size)
        assert block.has_skip == (skip and stride == 1 and c_in == c_out)
        assert any(isinstance(m, SqueezeExcite) for m in block.modules()) == (se > 0)
        assert any(isinstance(m, HSwish) for m in block.modules()) == (act == "hswish")
        y.sum().backward()


def test_residual_is_really_added():
    args = decode_block("ir_r1_k3_s1_e3_c16")
    block = make_block(16, args, "relu").eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.zeros_(m.weight)  # the branch outputs zeros; the block is then identity
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block(x), x)
    noskip = make_block(16, args.replace(skip=False), "relu").eval()
    for m in noskip.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.zeros_(m.weight)
    assert noskip(x).abs().max() == 0


def test_se_width_is_a_quarter_of_the_expansion_for_mobilenetv3():
    from torchvision.models._utils import _make_divisible

    for c_in, e in ((16, 4.5), (24, 3), (40, 6), (80, 2.3), (112, 6), (48, 6), (96, 6)):
        args = BlockArgs("ir", 1, 5, 1, e, c_in, se_ratio=0.25)
        block = InvertedResidual(c_in, args, "hswish", "hard_sigmoid", "expansion")
        mid = block.mid_channels
        assert block.se.reduce.out_channels == _make_divisible(mid // 4, 8)
        assert isinstance(block.se.gate, HardSigmoid)
    # MnasNet: a quarter of the block's input channels, sigmoid gate.
    args = BlockArgs("ir", 1, 5, 2, 3, 40, se_ratio=0.25)
    block = InvertedResidual(24, args, "relu", "sigmoid", "input")
    assert (block.mid_channels, block.se.reduce.out_channels) == (72, 6)
    assert isinstance(block.se.gate, nn.Sigmoid)


def test_expansion_width_matches_mobilenetv3():
    widths = [
        m.mid_channels
        for m in MobileNetwork("mobilenetv3_large").blocks
        if isinstance(m, InvertedResidual)
    ]
    assert widths == [64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960]


def test_count_macs_of_a_known_network():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )
    assert count_macs(net, (3, 4, 4)) == 16 * 8 * 27 + 16 * 8 * 9 + 128 * 10
    assert count_params(net) == (8 * 27 + 8) + (8 * 9 + 8) + (128 * 10 + 10)


@pytest.fixture(scope="module")
def published():
    """The published networks at 224x224x3, 1000 classes, built once."""
    names = ("mnasnet_a1", "mnasnet_b1", "mobilenetv3_large", "mobilenetv3_small")
    return {name: MobileNetwork(name) for name in names}


def test_mnasnet_a1_reproduction(published):
    net = published["mnasnet_a1"]
    params, macs = count_params(net), count_macs(net, (3, 224, 224))
    assert abs(params - 3.89e6) / 3.89e6 < 0.02, params
    assert abs(macs - 312e6) / 312e6 < 0.05, macs


@pytest.mark.parametrize(
    ("name", "reference", "ref_params", "paper_macs", "bn_eps"),
    [
        ("mobilenetv3_large", "mobilenet_v3_large", 5_483_032, 219e6, 1e-3),
        ("mobilenetv3_small", "mobilenet_v3_small", 2_542_856, 56e6, 1e-3),
        ("mnasnet_b1", "mnasnet1_0", 4_383_312, None, 1e-5),
    ],
)
def test_reproduction_against_torchvision(
    published, name, reference, ref_params, paper_macs, bn_eps
):
    net = published[name]
    ref = getattr(torchvision.models, reference)(weights=None)
    params = count_params(net)
    assert count_params(ref) == ref_params
    assert abs(params - ref_params) / ref_params < 0.005, (params, ref_params)
    macs = count_macs(net, (3, 224, 224))
    if paper_macs is not None:
        assert abs(macs - paper_macs) / paper_macs < 0.05, macs
    assert abs(macs - count_macs(ref, (3, 224, 224))) / macs < 0.01
    _assert_same_function(net, ref, bn_eps)


def _assert_same_function(net: nn.Module, ref: nn.Module, bn_eps: float) -> None:
    """Given torchvision's weights (tensor by tensor, same order), ours computes the same.

    torchvision's MobileNetV3 uses BatchNorm eps 1e-3 (TensorFlow's); ours
    keeps PyTorch's default, so a copy of ours with the reference's eps is compared.
    """
    net = copy.deepcopy(net).eval()
    ref.eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = bn_eps
    ours, theirs = net.state_dict(), ref.state_dict()
    assert len(ours) == len(theirs)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # state_dict tensors share storage: copy in place
        for (ka, va), (kb, vb) in zip(ours.items(), theirs.items(), strict=True):
            assert va.numel() == vb.numel(), (ka, kb)
            if vb.is_floating_point() and "running_var" not in kb:  # BN must not be identity
                vb.add_(0.1 * torch.randn(vb.shape, generator=gen))
            va.copy_(vb.reshape(va.shape))
    x = torch.randn(2, 3, 224, 224, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-4, rtol=1e-4)


def test_layer_listing_runs_like_the_network(published):
    net = published["mobilenetv3_small"].eval()
    specs = net.layer_specs(224)
    assert all(isinstance(s, LayerSpec) for s in specs)
    assert specs[0].key == "stem_c16_s2@3x224x224"
    assert specs[-1].key == "head_c1024_cls1000@576x7x7"
    x = torch.randn(2, 3, 224, 224)
    y = x
    for spec in specs:
        assert tuple(y.shape[1:]) == spec.input_shape, spec.key
        y = spec.module(y)
    with torch.no_grad():
        torch.testing.assert_close(y, net(x))


def test_layer_keys_are_built_with_the_codec():
    genotype = load_genotype("mnasnet_a1")
    specs = mobile_layers(genotype, in_channels=3, resolution=224, num_classes=1000)
    assert specs[0].key == "stem_c32_s2@3x224x224"
    assert specs[-1].key == "head_c1280_cls1000@320x7x7"
    body = specs[1:-1]
    assert len(body) == sum(s.repeats for s in genotype.stages)
    i = 0
    for stage in genotype.stages:
        for r in range(stage.repeats):
            name, shape = body[i].key.split("@")
            layer = decode_block(name)
            assert name == encode_block(layer)
            assert layer == stage.replace(repeats=1, stride=stage.stride if r == 0 else 1)
            assert shape == "x".join(map(str, body[i].input_shape))
            i += 1
    assert body[3].key == "ir_r1_k5_s2_e3_c40_se0.25@24x56x56"


def test_small_inputs_and_width_mult():
    net = MobileNetwork("mnasnet_a1", in_channels=1, num_classes=10, width_mult=0.35)
    x = torch.randn(2, 1, 28, 28)
    out = net(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    specs = mobile_layers(
        "mobilenetv3_large",
        in_channels=1,
        resolution=28,
        num_classes=10,
        width_mult=0.5,
        stem_stride=1,
    )
    assert specs[0].key == "stem_c8_s1@1x28x28"
    y = torch.randn(2, 1, 28, 28)
    for spec in specs:
        spec.module.eval()
        assert tuple(y.shape[1:]) == spec.input_shape, spec.key
        y = spec.module(y)
    assert y.shape == (2, 10)


def test_drop_path_trains_and_eval_is_deterministic():
    net = MobileNetwork("mobilenetv3_small", 1, 10, width_mult=0.25, drop_path_rate=0.2)
    x = torch.randn(2, 1, 28, 28)
    net(x).sum().backward()
    net.eval()
    torch.testing.assert_close(net(x), net(x))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="width_mult"):
        MobileNetwork("mnasnet_a1", width_mult=0)
    with pytest.raises(ConfigError, match="dropout"):
        MobileNetwork("mnasnet_a1", dropout=1.5)
    with pytest.raises(GenotypeError, match="mobile genotype"):
        MobileNetwork("nasnet_a")
    with pytest.raises(ValueError, match="one layer"):
        make_block(16, decode_block("ir_r2_k3_s1_e6_c16"), "relu")


def test_nasnet_export_still_there():
    assert NASNetwork.__name__ == "NASNetwork"


def test_channels_last_computes_the_same():
    net = MobileNetwork("mobilenetv3_small", 1, 10, width_mult=0.25).eval()
    fast = MobileNetwork("mobilenetv3_small", 1, 10, width_mult=0.25, channels_last=True).eval()
    fast.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
