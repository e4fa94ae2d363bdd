"""Where torch's own parts replaced hand-written ones, they give the same numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas_lightning.genotypes import named_genotypes
from nas_lightning.models.mobile_blocks import HardSigmoid, HSwish
from nas_lightning.models.profile import count_macs
from nas_lightning.models.registry import build_model


def hook_count(model: nn.Module, shape: tuple[int, ...]) -> int:
    """The per-layer MAC count (conv and linear forward hooks) the counter must match."""
    total = 0

    def conv(m, _i, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _i, out):
        nonlocal total
        total += out[0].numel() * m.in_features

    handles = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear) for m in model.modules()
                if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name,shape,classes,kwargs", [
    ("nasnet_a", (3, 32, 32), 10, {"filters": 8, "cells_per_stage": 1}),
    ("mnasnet_a1", (3, 224, 224), 1000, {}),
    ("mobilenetv3_small", (3, 224, 224), 1000, {}),
])
def test_flop_counter_macs_equal_the_per_layer_count(name, shape, classes, kwargs):
    net = build_model(named_genotypes()[name], 3, classes, kwargs)
    assert count_macs(net, shape) == hook_count(net, shape)


def test_torch_hard_activations_equal_the_formulas_bit_for_bit():
    x = torch.cat([torch.randn(100_000) * 6, torch.tensor([-3.0, 3.0, 0.0, -1e-8, 6.0])])
    assert torch.equal(HSwish()(x), x * F.relu6(x + 3.0) / 6.0)
    assert torch.equal(HardSigmoid()(x), F.relu6(x + 3.0) / 6.0)


def test_conv_bn_act_equals_torchvisions_block_with_unchanged_checkpoint_keys():
    from torchvision.ops import Conv2dNormActivation

    from nas_lightning.genotypes.mobile import decode_block
    from nas_lightning.models.mobile_blocks import ConvBNAct, make_block

    ours = ConvBNAct(16, 24, 5, 2, groups=8, activation="hswish")
    theirs = Conv2dNormActivation(16, 24, 5, 2, groups=8, activation_layer=nn.Hardswish,
                                  inplace=None)
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert (ours[0].padding, ours[0].bias) == (theirs[0].padding, theirs[0].bias)
    theirs.load_state_dict(ours.state_dict())  # strict: same keys and shapes
    x = torch.randn(2, 16, 15, 15)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))

    block = make_block(16, decode_block("ir_r1_k5_s1_e6_c16_se0.25"), "hswish", "hard_sigmoid")
    assert [k for k in block.state_dict() if not k.startswith("se.")] == [
        f"{part}.{key}"
        for part in ("expand", "dw", "project")
        for key in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                    "1.num_batches_tracked")
    ]
    assert len(block.project) == 2  # linear projection: no activation


def test_idx_reader_equals_torchvisions_mnist_readers_and_also_reads_gzip(tmp_path):
    import numpy as np
    from torchvision.datasets.mnist import read_image_file, read_label_file

    from nas_lightning.data.idx import read_idx, write_idx

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    for name, array in (("images", images), ("labels", labels)):
        write_idx(array, tmp_path / name)
        write_idx(array, tmp_path / f"{name}.gz")
    assert np.array_equal(read_idx(tmp_path / "images"), read_image_file(str(tmp_path / "images")))
    assert np.array_equal(read_idx(tmp_path / "labels"), read_label_file(str(tmp_path / "labels")))
    assert np.array_equal(read_idx(tmp_path / "images.gz"), images)
    with pytest.raises(AssertionError):  # torchvision's readers take no gzip
        read_image_file(str(tmp_path / "images.gz"))
