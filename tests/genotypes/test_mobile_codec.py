"""Block-string codec and mobile genotypes (timm notation)."""

from __future__ import annotations

import random

import pytest

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes import (
    genotype_from_dict,
    genotype_from_json,
    genotype_to_json,
    load_genotype,
    named_genotypes,
)
from nas_lightning.genotypes.mobile import (
    ACTIVATIONS,
    BLOCK_TYPES,
    BlockArgs,
    MobileGenotype,
    decode_block,
    encode_block,
)

# The published strings, copied from DESIGN.md (MnasNet-A1, MobileNetV3 Large and Small).
MNASNET_A1 = [
    "ds_r1_k3_s1_e1_c16_noskip",
    "ir_r2_k3_s2_e6_c24",
    "ir_r3_k5_s2_e3_c40_se0.25",
    "ir_r4_k3_s2_e6_c80",
    "ir_r2_k3_s1_e6_c112_se0.25",
    "ir_r3_k5_s2_e6_c160_se0.25",
    "ir_r1_k3_s1_e6_c320",
]
MOBILENETV3_LARGE = [
    "ds_r1_k3_s1_e1_c16_nre",
    "ir_r1_k3_s2_e4_c24_nre",
    "ir_r1_k3_s1_e3_c24_nre",
    "ir_r3_k5_s2_e3_c40_se0.25_nre",
    "ir_r1_k3_s2_e6_c80",
    "ir_r1_k3_s1_e2.5_c80",
    "ir_r2_k3_s1_e2.3_c80",
    "ir_r2_k3_s1_e6_c112_se0.25",
    "ir_r3_k5_s2_e6_c160_se0.25",
    "cn_r1_k1_s1_c960",
]
MOBILENETV3_SMALL = [
    "ds_r1_k3_s2_e1_c16_se0.25_nre",
    "ir_r1_k3_s2_e4.5_c24_nre",
    "ir_r1_k3_s1_e3.67_c24_nre",
    "ir_r1_k5_s2_e4_c40_se0.25",
    "ir_r2_k5_s1_e6_c40_se0.25",
    "ir_r2_k5_s1_e3_c48_se0.25",
    "ir_r3_k5_s2_e6_c96_se0.25",
    "cn_r1_k1_s1_c576",
]
PUBLISHED = MNASNET_A1 + MOBILENETV3_LARGE + MOBILENETV3_SMALL


@pytest.mark.parametrize("text", PUBLISHED)
def test_published_strings_round_trip(text):
    args = decode_block(text)
    assert encode_block(args) == text
    assert decode_block(encode_block(args)) == args


def test_decode_fields():
    assert decode_block("ir_r3_k5_s2_e3_c40_se0.25") == BlockArgs(
        type="ir",
        repeats=3,
        kernel=5,
        stride=2,
        expansion=3.0,
        out_channels=40,
        se_ratio=0.25,
        skip=True,
        activation=None,
    )
    ds = decode_block("ds_r1_k3_s1_e1_c16_noskip")
    assert (ds.type, ds.skip, ds.expansion) == ("ds", False, 1.0)
    assert decode_block("ir_r2_k3_s1_e2.3_c80").expansion == 2.3
    assert decode_block("ir_r1_k3_s1_e3.67_c24_nre").activation == "relu"
    assert decode_block("ir_r1_k3_s1_e6_c24_nhs").activation == "hswish"
    assert decode_block("ir_r1_k3_s1_e6_c24_nr6").activation == "relu6"
    cn = decode_block("cn_r1_k1_s1_c960")
    assert (cn.type, cn.skip, cn.expansion, cn.se_ratio) == ("cn", False, 1.0, 0.0)
    assert decode_block("cn_r1_k3_s1_c32_skip").skip is True


def test_skip_default_depends_on_type():
    """timm: ds/ir have a residual unless noskip; cn only with skip."""
    assert BlockArgs("ir", 1, 3, 1, 6, 24).skip is True
    assert BlockArgs("cn", 1, 3, 1, 1, 24).skip is False
    assert BlockArgs("cn", 1, 3, 1, 1, 24) == BlockArgs("cn", 1, 3, 1, 1, 24, skip=False)


def test_options_in_any_order_decode_to_the_canonical_string():
    assert encode_block(decode_block("ir_c40_se0.25_e3_s2_k5_r3")) == "ir_r3_k5_s2_e3_c40_se0.25"
    # ds may leave out e1, as timm's own ds strings often do.
    assert encode_block(decode_block("ds_r1_k3_s1_c16")) == "ds_r1_k3_s1_e1_c16"


def _random_args(rng: random.Random) -> BlockArgs:
    block_type = rng.choice(BLOCK_TYPES)
    return BlockArgs(
        type=block_type,
        repeats=rng.randint(1, 6),
        kernel=rng.choice([1, 3, 5, 7]),
        stride=rng.choice([1, 2]),
        expansion=rng.choice([1, 2.3, 3.67, 4.5, 6, rng.uniform(1, 8)])
        if block_type == "ir"
        else 1,
        out_channels=rng.randint(1, 1280),
        se_ratio=rng.choice([0.0, 0.25, 0.5, rng.random()]),
        skip=rng.choice([True, False]),
        activation=rng.choice((None,) + ACTIVATIONS),
    )


def test_random_block_args_round_trip():
    rng = random.Random(0)
    for _ in range(500):
        args = _random_args(rng)
        text = encode_block(args)
        assert decode_block(text) == args, text
        assert encode_block(decode_block(text)) == text


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("ir_r1_k3_s1_e6_c16_x5", "x5"),
        ("ir_r1_k3_s1_e6_c16_nzz", "nzz"),
        ("ir_r1_k3_s1_e6_c16_se", "se"),
        ("ir_r1_k3_s1_e6_c", "c"),
        ("ir_r1_k3_s1_e6_c16_", ""),
        ("ir_r1.5_k3_s1_e6_c16", "r1.5"),
        ("ir_r1_r2_k3_s1_e6_c16", "r2"),
        ("ir_r1_k3_s1_e6_c16_noskip_skip", "skip"),
        ("zz_r1_k3_s1_e6_c16", "zz"),
        ("ir_r1_k3_s1_eabc_c16", "eabc"),
        ("ir_r1_k3_s1_e-1_c16", "e-1"),
    ],
)
def test_malformed_strings_name_the_bad_token(text, token):
    with pytest.raises(GenotypeError) as info:
        decode_block(text)
    message = str(info.value)
    assert "\n" not in message
    assert repr(token) in message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("ir_r1_k3_s1_c16", "'e'"),  # ir needs an expansion
        ("ir_k3_s1_e6_c16", "'r'"),
        ("ir_r1_k4_s1_e6_c16", "odd"),
        ("ds_r1_k3_s1_e2_c16", "expansion"),
        ("ir_r0_k3_s1_e6_c16", "repeats"),
        ("ir_r1_k3_s1_e6_c16_se1.5", "se_ratio"),
        ("", "non-empty"),
    ],
)
def test_invalid_values_raise_one_line(text, what):
    with pytest.raises(GenotypeError, match=what) as info:
        decode_block(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "strings"),
    [
        ("mnasnet_a1", MNASNET_A1),
        ("mobilenetv3_large", MOBILENETV3_LARGE),
        ("mobilenetv3_small", MOBILENETV3_SMALL),
    ],
)
def test_named_genotypes_are_the_published_strings(name, strings):
    genotype = load_genotype(name)
    assert isinstance(genotype, MobileGenotype)
    assert list(genotype.block_strings()) == strings
    assert genotype_from_json(genotype_to_json(genotype)) == genotype
    assert genotype_from_dict({"kind": "mobile", **genotype.to_dict()}) == genotype


def test_named_genotype_settings():
    a1 = load_genotype("mnasnet_a1")
    large = load_genotype("mobilenetv3_large")
    small = load_genotype("mobilenetv3_small")
    assert (a1.stem_channels, a1.head_channels, a1.activation, a1.se_gate, a1.se_base) == (
        32,
        1280,
        "relu",
        "sigmoid",
        "input",
    )
    assert not a1.efficient_head
    assert (large.stem_channels, large.head_channels, large.activation) == (16, 1280, "hswish")
    assert (large.se_gate, large.se_base, large.efficient_head) == (
        "hard_sigmoid",
        "expansion",
        True,
    )
    assert small.head_channels == 1024
    assert "mobilenetv2" in named_genotypes()


def test_layers_expand_repeats_with_stride_on_the_first_only():
    stage = decode_block("ir_r3_k5_s2_e3_c40_se0.25")
    layers = stage.layers()
    assert [encode_block(x) for x in layers] == [
        "ir_r1_k5_s2_e3_c40_se0.25",
        "ir_r1_k5_s1_e3_c40_se0.25",
        "ir_r1_k5_s1_e3_c40_se0.25",
    ]
    assert len(load_genotype("mnasnet_a1").layers()) == 1 + 2 + 3 + 4 + 2 + 3 + 1


def test_genotype_json_is_block_strings_and_rejects_unknown_fields():
    data = load_genotype("mobilenetv3_small").to_dict()
    assert data["stages"] == MOBILENETV3_SMALL
    with pytest.raises(GenotypeError, match="unknown mobile genotype field"):
        MobileGenotype.from_dict({**data, "colour": "red"})
    with pytest.raises(GenotypeError, match="bad token"):
        genotype_from_dict({"kind": "mobile", **data, "stages": ["ir_r1_k3_s1_e6_c16_oops"]})
    with pytest.raises(GenotypeError, match="se_gate"):
        MobileGenotype.from_strings(MNASNET_A1, se_gate="tanh")


def test_str_prints_block_strings():
    assert str(load_genotype("mnasnet_a1")) == " ".join(MNASNET_A1)
    assert str(decode_block(MNASNET_A1[2])) == MNASNET_A1[2]
