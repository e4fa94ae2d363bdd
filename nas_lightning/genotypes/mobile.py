"""Mobile (MnasNet / MobileNetV3) genotypes and their block-string codec.

An architecture is a short list of block strings in the notation of timm's
EfficientNet builder, one string per stage::

    ir_r3_k5_s2_e3_c40_se0.25_nre
    |  |  |  |  |  |   |      `-- activation: nre = ReLU, nr6 = ReLU6, nhs = h-swish
    |  |  |  |  |  |   `--------- squeeze-excite ratio (absent = no SE)
    |  |  |  |  |  `------------- output channels
    |  |  |  |  `---------------- expansion ratio (float, e.g. e2.3)
    |  |  |  `------------------- stride of the first layer of the stage
    |  |  `---------------------- depthwise kernel
    |  `------------------------- repeats (layers in the stage)
    `---------------------------- block type: ds, ir or cn

``noskip`` forbids the residual of ds/ir blocks; ``skip`` allows one on a
``cn`` block (which, as in timm, has none by default). A string without an
activation token uses the genotype's default activation. :func:`decode_block`
accepts the options in any order; :func:`encode_block` writes the canonical
order above (the order of the published strings), so both round trips hold.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes.base import register_genotype, register_named

BLOCK_TYPES = ("ds", "ir", "cn")
ACTIVATIONS = ("relu", "relu6", "hswish")
SE_GATES = ("sigmoid", "hard_sigmoid")
SE_BASES = ("input", "expansion")

_ACT_TOKENS = {"nre": "relu", "nr6": "relu6", "nhs": "hswish"}
_TOKEN_OF_ACT = {v: k for k, v in _ACT_TOKENS.items()}
_NUMERIC = {
    "r": "repeats",
    "k": "kernel",
    "s": "stride",
    "e": "expansion",
    "c": "out_channels",
    "se": "se_ratio",
}
_TOKEN_RE = re.compile(r"^([a-z]+)(.*)$")
_NUMBER_RE = re.compile(r"^\d+(\.\d+)?([eE][-+]?\d+)?$")


def format_float(x: float) -> str:
    """Shortest text that reads back as exactly ``x``: ``6``, ``2.3``, ``0.25``."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


@dataclass(frozen=True)
class BlockArgs:
    """One stage: ``repeats`` identical layers of one block type.

    Attributes:
        type: ``ds`` (depthwise-separable), ``ir`` (MBConv / inverted
            residual) or ``cn`` (plain conv-BN-act).
        repeats: layers in the stage; only the first has ``stride``.
        kernel: (depthwise) kernel size, odd.
        stride: stride of the first layer.
        expansion: width of the hidden layer of ``ir`` relative to its input;
            1 for ``ds`` and ``cn``.
        out_channels: channels of every layer's output (before width_mult).
        se_ratio: squeeze-excite ratio, 0 = no SE.
        skip: whether a residual is allowed where the shapes permit it.
            ``None`` means the type's default (ds/ir: yes, cn: no, like timm).
        activation: ``relu``, ``relu6``, ``hswish``, or ``None`` for the
            genotype's default.
    """

    type: str
    repeats: int
    kernel: int
    stride: int
    expansion: float
    out_channels: int
    se_ratio: float = 0.0
    skip: bool | None = None
    activation: str | None = None

    def __post_init__(self) -> None:
        if self.type not in BLOCK_TYPES:
            raise GenotypeError(f"block type {self.type!r} not in {BLOCK_TYPES}")
        for name in ("repeats", "kernel", "stride", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GenotypeError(f"{name} must be an integer >= 1, got {value!r}")
        if self.kernel % 2 == 0:
            raise GenotypeError(f"kernel must be odd, got {self.kernel}")
        object.__setattr__(self, "expansion", float(self.expansion))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))
        if not self.expansion > 0:
            raise GenotypeError(f"expansion must be > 0, got {self.expansion}")
        if self.type != "ir" and self.expansion != 1.0:
            raise GenotypeError(
                f"a {self.type} block has no expansion (e1), got e{format_float(self.expansion)}"
            )
        if not 0.0 <= self.se_ratio <= 1.0:
            raise GenotypeError(f"se_ratio must be in [0, 1], got {self.se_ratio}")
        if self.skip is None:
            object.__setattr__(self, "skip", self.type != "cn")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise GenotypeError(f"activation {self.activation!r} not in {ACTIVATIONS}")

    def __str__(self) -> str:
        return encode_block(self)

    def replace(self, **changes: Any) -> BlockArgs:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def layers(self) -> tuple[BlockArgs, ...]:
        """The stage as single layers: ``repeats=1`` each, the stride on the first only."""
        first = self.replace(repeats=1)
        return (first,) + (first.replace(stride=1),) * (self.repeats - 1)


def encode_block(args: BlockArgs) -> str:
    """The canonical block string of ``args`` (timm notation)."""
    parts = [args.type, f"r{args.repeats}", f"k{args.kernel}", f"s{args.stride}"]
    if args.type != "cn":
        parts.append(f"e{format_float(args.expansion)}")
    parts.append(f"c{args.out_channels}")
    if args.se_ratio > 0:
        parts.append(f"se{format_float(args.se_ratio)}")
    if args.type == "cn" and args.skip:
        parts.append("skip")
    elif args.type != "cn" and not args.skip:
        parts.append("noskip")
    if args.activation is not None:
        parts.append(_TOKEN_OF_ACT[args.activation])
    return "_".join(parts)


def decode_block(text: str) -> BlockArgs:
    """Parse one block string such as ``ir_r3_k5_s2_e3_c40_se0.25``.

    Raises:
        GenotypeError: one line naming the bad token.
    """
    if not isinstance(text, str) or not text:
        raise GenotypeError(f"a block string must be a non-empty string, got {text!r}")
    tokens = text.split("_")
    block_type, options = tokens[0], tokens[1:]
    if block_type not in BLOCK_TYPES:
        raise GenotypeError(
            f"block {text!r}: unknown block type {block_type!r}; known: {BLOCK_TYPES}"
        )
    values: dict[str, Any] = {}
    seen: set[str] = set()

    def once(key: str, token: str) -> None:
        if key in seen:
            raise GenotypeError(f"block {text!r}: token {token!r} repeats option {key!r}")
        seen.add(key)

    for token in options:
        match = _TOKEN_RE.match(token)
        if token in ("skip", "noskip"):
            once("skip", token)
            values["skip"] = token == "skip"
        elif token in _ACT_TOKENS:
            once("activation", token)
            values["activation"] = _ACT_TOKENS[token]
        elif match and match.group(1) in _NUMERIC and _NUMBER_RE.match(match.group(2)):
            key, raw = match.group(1), match.group(2)
            once(key, token)
            field = _NUMERIC[key]
            if field in ("expansion", "se_ratio"):
                values[field] = float(raw)
            elif raw.isdigit():
                values[field] = int(raw)
            else:
                raise GenotypeError(f"block {text!r}: token {token!r} needs an integer")
        else:
            raise GenotypeError(f"block {text!r}: bad token {token!r}")
    required = ["repeats", "kernel", "stride", "out_channels"] + (
        ["expansion"] if block_type == "ir" else []
    )
    missing = [f for f in required if f not in values]
    if missing:
        letters = [k for k, f in _NUMERIC.items() if f in missing]
        raise GenotypeError(f"block {text!r}: missing option(s) {letters}")
    values.setdefault("expansion", 1.0)
    try:
        return BlockArgs(type=block_type, **values)
    except GenotypeError as err:
        raise GenotypeError(f"block {text!r}: {err}") from None


@register_genotype
@dataclass(frozen=True)
class MobileGenotype:
    """A mobile network: stem, stages of blocks (one block string each), head.

    Attributes:
        stages: one :class:`BlockArgs` per block string.
        stem_channels: output channels of the 3x3 stem conv.
        stem_stride: stride of the stem conv.
        head_channels: width of the final feature layer before the classifier.
        efficient_head: MobileNetV3's "efficient last stage": pool first, then
            a 1x1 conv (with bias, no BN) to ``head_channels``. Otherwise
            (MnasNet, MobileNetV2) a 1x1 conv-BN-act then pool.
        activation: default activation of every layer without its own.
        stem_activation: activation of the stem (``None``: the default).
        head_activation: activation of the head (``None``: the default).
        se_gate: ``sigmoid`` (MnasNet) or ``hard_sigmoid`` (MobileNetV3).
        se_base: what the SE ratio is taken of: ``input`` channels of the
            block (MnasNet, rounded to an integer) or its ``expansion`` width
            (MobileNetV3: rounded to a multiple of 8 like torchvision).
    """

    stages: tuple[BlockArgs, ...]
    stem_channels: int = 32
    stem_stride: int = 2
    head_channels: int = 1280
    efficient_head: bool = False
    activation: str = "relu"
    stem_activation: str | None = None
    head_activation: str | None = None
    se_gate: str = "sigmoid"
    se_base: str = "input"

    kind: ClassVar[str] = "mobile"

    def __post_init__(self) -> None:
        stages = tuple(decode_block(s) if isinstance(s, str) else s for s in self.stages)
        if not stages or not all(isinstance(s, BlockArgs) for s in stages):
            raise GenotypeError("a mobile genotype needs a non-empty list of stages")
        object.__setattr__(self, "stages", stages)
        for name in ("stem_channels", "stem_stride", "head_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GenotypeError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.efficient_head, bool):
            raise GenotypeError(
                f"efficient_head must be true or false, got {self.efficient_head!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise GenotypeError(f"activation {self.activation!r} not in {ACTIVATIONS}")
        for name in ("stem_activation", "head_activation"):
            value = getattr(self, name)
            if value is not None and value not in ACTIVATIONS:
                raise GenotypeError(f"{name} {value!r} not in {ACTIVATIONS}")
        if self.se_gate not in SE_GATES:
            raise GenotypeError(f"se_gate {self.se_gate!r} not in {SE_GATES}")
        if self.se_base not in SE_BASES:
            raise GenotypeError(f"se_base {self.se_base!r} not in {SE_BASES}")

    @classmethod
    def from_strings(cls, strings: Sequence[str], **options: Any) -> MobileGenotype:
        """A genotype from block strings plus genotype-level options."""
        return cls(stages=tuple(decode_block(s) for s in strings), **options)

    def block_strings(self) -> tuple[str, ...]:
        """The stages as timm block strings, e.g. to print a found model."""
        return tuple(encode_block(s) for s in self.stages)

    def layers(self) -> tuple[BlockArgs, ...]:
        """Every single layer in order (a stage of r repeats gives r entries)."""
        return tuple(layer for stage in self.stages for layer in stage.layers())

    def resolve(self, activation: str | None) -> str:
        """The activation a layer really uses."""
        return self.activation if activation is None else activation

    @property
    def family(self) -> str:
        """Genotype-level settings that a layer's key does not spell out.

        Two layers with the same key (see ``mobile_layers``) are the same
        module only within one family; latency tables should be kept per
        family.
        """
        head = "efficient" if self.efficient_head else "conv"
        return (
            f"act={self.activation},stem={self.resolve(self.stem_activation)},"
            f"head={head}/{self.resolve(self.head_activation)},se={self.se_gate}/{self.se_base}"
        )

    def canonical(self) -> tuple[Any, ...]:
        """The same key for the encodings of one network, another for any other.

        The network is a flat sequence of layers, so a key lists the layers,
        not the stages (``ir_r2_..._s2`` is ``ir_r1_..._s2`` then
        ``ir_r1_..._s1``), with what the builder really uses: each layer's
        resolved activation; its residual only where its stride is 1 (a
        strided layer never has one); the SE gate and base only when some
        layer has an SE. A residual between different widths is kept: a
        ``width_mult`` can round both widths to the same value, and then the
        residual exists.
        """
        layers = tuple(
            (
                layer.type,
                layer.kernel,
                layer.stride,
                layer.expansion,
                layer.out_channels,
                layer.se_ratio,
                bool(layer.skip) and layer.stride == 1,
                self.resolve(layer.activation),
            )
            for layer in self.layers()
        )
        has_se = any(layer.se_ratio > 0 for layer in self.stages)
        return (
            layers,
            self.stem_channels,
            self.stem_stride,
            self.resolve(self.stem_activation),
            self.head_channels,
            self.efficient_head,
            self.resolve(self.head_activation),
            (self.se_gate, self.se_base) if has_se else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["stages"] = list(self.block_strings())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MobileGenotype:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GenotypeError(
                f"unknown mobile genotype field(s) {unknown}; known: {sorted(known)}"
            )
        if "stages" not in data or isinstance(data["stages"], str):
            raise GenotypeError("a mobile genotype needs 'stages', a list of block strings")
        return cls(**{**data, "stages": tuple(decode_block(s) for s in data["stages"])})

    def __str__(self) -> str:
        return " ".join(self.block_strings())


MNASNET_A1 = MobileGenotype.from_strings(
    [
        "ds_r1_k3_s1_e1_c16_noskip",
        "ir_r2_k3_s2_e6_c24",
        "ir_r3_k5_s2_e3_c40_se0.25",
        "ir_r4_k3_s2_e6_c80",
        "ir_r2_k3_s1_e6_c112_se0.25",
        "ir_r3_k5_s2_e6_c160_se0.25",
        "ir_r1_k3_s1_e6_c320",
    ],
    stem_channels=32,
    head_channels=1280,
    activation="relu",
    se_gate="sigmoid",
    se_base="input",
)

# MnasNet-B1 (no SE), the network of torchvision's mnasnet1_0.
MNASNET_B1 = MobileGenotype.from_strings(
    [
        "ds_r1_k3_s1_e1_c16_noskip",
        "ir_r3_k3_s2_e3_c24",
        "ir_r3_k5_s2_e3_c40",
        "ir_r3_k5_s2_e6_c80",
        "ir_r2_k3_s1_e6_c96",
        "ir_r4_k5_s2_e6_c192",
        "ir_r1_k3_s1_e6_c320_noskip",
    ],
)

# MnasNet's search skeleton (the paper searches around MobileNetV2): the
# stage filters, layers and strides of MobileNetV2 1.0 with MnasNet's
# conventions (ReLU, sigmoid SE on the block input).
MNASNET_SKELETON = MobileGenotype.from_strings(
    [
        "ds_r1_k3_s1_e1_c16",
        "ir_r2_k3_s2_e6_c24",
        "ir_r3_k3_s2_e6_c32",
        "ir_r4_k3_s2_e6_c64",
        "ir_r3_k3_s1_e6_c96",
        "ir_r3_k3_s2_e6_c160",
        "ir_r1_k3_s1_e6_c320",
    ],
)

# MobileNetV2 1.0 itself (ReLU6), comparable with torchvision's mobilenet_v2.
MOBILENETV2 = dataclasses.replace(MNASNET_SKELETON, activation="relu6")

MOBILENETV3_LARGE = MobileGenotype.from_strings(
    [
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
    ],
    stem_channels=16,
    head_channels=1280,
    efficient_head=True,
    activation="hswish",
    se_gate="hard_sigmoid",
    se_base="expansion",
)

MOBILENETV3_SMALL = MobileGenotype.from_strings(
    [
        "ds_r1_k3_s2_e1_c16_se0.25_nre",
        "ir_r1_k3_s2_e4.5_c24_nre",
        "ir_r1_k3_s1_e3.67_c24_nre",
        "ir_r1_k5_s2_e4_c40_se0.25",
        "ir_r2_k5_s1_e6_c40_se0.25",
        "ir_r2_k5_s1_e3_c48_se0.25",
        "ir_r3_k5_s2_e6_c96_se0.25",
        "cn_r1_k1_s1_c576",
    ],
    stem_channels=16,
    head_channels=1024,
    efficient_head=True,
    activation="hswish",
    se_gate="hard_sigmoid",
    se_base="expansion",
)

register_named("mnasnet_a1", MNASNET_A1)
register_named("mnasnet_b1", MNASNET_B1)
register_named("mnasnet_skeleton", MNASNET_SKELETON)
register_named("mobilenetv2", MOBILENETV2)
register_named("mobilenetv3_large", MOBILENETV3_LARGE)
register_named("mobilenetv3_small", MOBILENETV3_SMALL)
