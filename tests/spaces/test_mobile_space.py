"""MnasNet / MobileNetV3 search space and its configs."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import genotype_from_json, genotype_to_json, load_genotype
from nas_lightning.genotypes.mobile import MobileGenotype, decode_block
from nas_lightning.models import MobileNetwork
from nas_lightning.spaces import MobileSpace

SPACE_CONF = CONF / "search_space"
SKELETON = [
    "ds_r1_k3_s1_e1_c16",
    "ir_r2_k3_s2_e6_c24",
    "ir_r3_k3_s2_e6_c32",
    "ir_r4_k3_s2_e6_c64",
    "ir_r3_k3_s1_e6_c96",
    "ir_r3_k3_s2_e6_c160",
    "ir_r1_k3_s1_e6_c320",
]
STEPS = ("op", "kernel", "se", "skip", "filters", "layers")


def test_default_space_is_mnasnet_around_mobilenetv2():
    space = MobileSpace()
    assert list(space.base.block_strings()) == SKELETON
    assert len(space) == 7 * 6
    assert space.names[:6] == tuple(f"s0/{step}" for step in STEPS)
    by_name = dict(zip(space.names, space.decisions, strict=True))
    assert by_name["s0/op"].choices == ("conv", "ds", "ir3", "ir6")
    assert by_name["s2/filters"].choices == (24, 32, 40)  # 0.75, 1, 1.25 x 32
    assert by_name["s0/filters"].choices == (16, 24)  # 12 -> 16 after rounding
    assert by_name["s3/layers"].choices == (3, 4, 5)
    assert by_name["s0/layers"].choices == (1, 2)  # never 0 layers
    assert all(c % 8 == 0 for d in space.decisions if d.name.endswith("filters") for c in d.choices)


def test_decode_keeps_strides_and_shares_choices_within_a_stage():
    space = MobileSpace()
    rng = random.Random(1)
    actions = space.sample(rng)
    genotype = space.decode(actions)
    assert isinstance(genotype, MobileGenotype)
    assert [s.stride for s in genotype.stages] == [1, 2, 2, 2, 1, 2, 1]
    for i, stage in enumerate(genotype.stages):
        chosen = [space.describe(actions)[f"s{i}/{step}"] for step in STEPS]
        op = {"cn": "conv", "ds": "ds"}.get(stage.type, f"ir{int(stage.expansion)}")
        assert [
            op,
            stage.kernel,
            stage.se_ratio,
            stage.skip,
            stage.out_channels,
            stage.repeats,
        ] == chosen
    # Every layer of a stage is the same block (stride aside).
    layers = [layer for stage in genotype.stages for layer in stage.layers()]
    assert len(layers) == sum(s.repeats for s in genotype.stages)


@pytest.mark.parametrize("activations", [None, ["relu", "hswish"]])
@pytest.mark.parametrize("base", ["mnasnet_skeleton", "mobilenetv3_large", "mobilenetv3_small"])
def test_random_round_trips(base, activations):
    space = MobileSpace(base=base, activations=activations)
    rng = random.Random(0)
    for _ in range(150):
        actions = space.sample(rng)
        genotype = space.decode(actions)
        assert space.encode(genotype) == actions
        assert genotype_from_json(genotype_to_json(genotype)) == genotype
        assert [decode_block(s) for s in genotype.block_strings()] == list(genotype.stages)


def test_mobilenetv3_space_keeps_its_head_conv_and_settings():
    space = MobileSpace(base="mobilenetv3_large", activations=["relu", "hswish"])
    assert space.searched_stages == tuple(range(9))
    assert len(space) == 9 * 7
    genotype = space.decode(space.sample(random.Random(3)))
    base = load_genotype("mobilenetv3_large")
    assert genotype.stages[-1] == base.stages[-1]
    assert (genotype.se_gate, genotype.se_base, genotype.efficient_head) == (
        "hard_sigmoid",
        "expansion",
        True,
    )
    acts = {space.describe(space.encode(genotype))[f"s{i}/act"] for i in range(9)}
    assert acts <= {"relu", "hswish"}
    # h-swish, the default, is written as no token; ReLU as _nre, like the paper's strings.
    for stage in genotype.stages[:9]:
        assert stage.activation in (None, "relu")


def test_skeleton_encodes_and_outside_genotypes_are_rejected():
    space = MobileSpace()
    assert space.decode(space.encode(space.base)) == space.base
    with pytest.raises(GenotypeError, match="s4/filters: 112"):
        space.encode(load_genotype("mnasnet_a1"))  # 112 filters is off the 96-grid
    with pytest.raises(GenotypeError, match="stages"):
        space.encode(load_genotype("mobilenetv3_small"))
    with pytest.raises(GenotypeError, match="expected a mobile genotype"):
        space.encode(load_genotype("nasnet_a"))


def test_base_from_block_strings_and_searched_stages():
    space = MobileSpace(base=SKELETON[:3], searched_stages=[1])
    assert len(space) == 6
    genotype = space.decode(space.sample(random.Random(0)))
    assert genotype.stages[0] == decode_block(SKELETON[0])
    assert genotype.stages[2] == decode_block(SKELETON[2])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"ops": ["ir6", "sep9"]}, "ops"),
        ({"ops": []}, "ops"),
        ({"kernels": [3, 4]}, "kernels"),
        ({"se_ratios": [0, 2]}, "se_ratios"),
        ({"filter_mults": [0, 1]}, "filter_mults"),
        ({"layer_deltas": [0, 0]}, "layer_deltas"),
        ({"activations": ["relu", "gelu"]}, "activations"),
        ({"base": "no_such_genotype"}, "base"),
        ({"base": "nasnet_a"}, "base"),
        ({"base": ["ir_r1_k3_s1_e6_c16_oops"]}, "base"),
        ({"searched_stages": [9]}, "searched_stages"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as info:
        MobileSpace(**kwargs)
    assert info.value.key == key


def test_children_build_and_train_on_fashion_mnist_sizes():
    space = MobileSpace()
    rng = random.Random(5)
    for _ in range(2):
        net = MobileNetwork(
            space.decode(space.sample(rng)), in_channels=1, num_classes=10, width_mult=0.25
        )
        out = net(torch.randn(2, 1, 28, 28))
        assert out.shape == (2, 10)
        out.sum().backward()


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv3"])
def test_config_files_instantiate(name):
    path = SPACE_CONF / f"{name}.yaml"
    assert path.read_text().startswith("# @package _global_")
    cfg = OmegaConf.load(path)
    space = instantiate(cfg.search_space)
    assert isinstance(space, MobileSpace)
    assert cfg.model._partial_ is True
    genotype = space.decode(space.sample(random.Random(0)))
    net = instantiate(cfg.model)(genotype, in_channels=1, num_classes=10)
    assert isinstance(net, MobileNetwork)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
