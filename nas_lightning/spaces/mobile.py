"""MnasNet's factorized hierarchical search space (Tan et al. 2019), and MobileNetV3's.

The network is cut into the stages of a base genotype; per stage the
controller picks, in the paper's order, the conv op, the kernel, the SE
ratio, the skip op, the filters and the number of layers (and, for the
MobileNetV3 variant, the activation). All layers of a stage share these
choices; stage strides come from the base, and filters and layers are
relative to the base's.

The default base is MnasNet's skeleton, MobileNetV2 1.0 (the paper builds
its space around it): stages of 16, 24, 32, 64, 96, 160, 320 filters with
1, 2, 3, 4, 3, 3, 1 layers and strides 1, 2, 2, 2, 1, 2, 1, after a stride-2
stem of 32 and before a 1280-wide head.

Filter and layer decisions list absolute values (filters rounded to
multiples of 8, layers at least 1), deduplicated, so every action sequence
gives a distinct genotype and ``encode(decode(a)) == a``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.base import load_genotype
from nas_lightning.genotypes.mobile import (
    ACTIVATIONS,
    MNASNET_SKELETON,
    BlockArgs,
    MobileGenotype,
    decode_block,
)
from nas_lightning.models.mobile_blocks import make_divisible
from nas_lightning.spaces.base import Actions, Decision, SearchSpace

MNASNET_OPS = ("conv", "ds", "ir3", "ir6")
_IR_RE = re.compile(r"^ir(\d+(\.\d+)?)$")


def op_args(op: str) -> tuple[str, float]:
    """Block type and expansion of an op name: ``conv``, ``ds`` or ``ir<e>`` (MBConv e)."""
    if op == "conv":
        return "cn", 1.0
    if op == "ds":
        return "ds", 1.0
    match = _IR_RE.match(op)
    if match and float(match.group(1)) > 0:
        return "ir", float(match.group(1))
    raise ConfigError("ops", f"unknown op {op!r}; use conv, ds or ir<expansion> such as ir6")


def _base_genotype(base: str | Sequence[str] | MobileGenotype) -> MobileGenotype:
    if isinstance(base, MobileGenotype):
        return base
    if isinstance(base, str):
        try:
            genotype = load_genotype(base)
        except GenotypeError as err:
            raise ConfigError("base", str(err)) from None
        if not isinstance(genotype, MobileGenotype):
            raise ConfigError("base", f"{base!r} is a {genotype.kind} genotype, not a mobile one")
        return genotype
    try:
        return MobileGenotype(stages=tuple(decode_block(s) for s in base))
    except GenotypeError as err:
        raise ConfigError("base", str(err)) from None


def _check_choices(key: str, values: Sequence, allowed: tuple | None = None) -> tuple:
    values = tuple(values)
    if not values:
        raise ConfigError(key, "needs at least one choice")
    if len(set(values)) != len(values):
        raise ConfigError(key, f"choices must be distinct, got {list(values)}")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(key, f"unknown choice(s) {bad}; known: {list(allowed)}")
    return values


class MobileSpace(SearchSpace):
    """Per-stage op, kernel, SE, skip, filters, layers (and activation) around a base.

    Args:
        base: a registered mobile genotype name (``mnasnet_skeleton``,
            ``mobilenetv3_large``), a list of block strings (MnasNet
            defaults: ReLU, sigmoid SE, stem 32, head 1280) or a genotype.
            Its genotype-level settings (stem, head, SE gate) are kept.
        ops: conv ops: ``conv`` (regular conv), ``ds`` (depthwise-separable),
            ``ir<e>`` (MBConv with expansion e, e.g. ``ir3``, ``ir6``).
        kernels: kernel sizes (odd).
        se_ratios: squeeze-excite ratios, 0 = none.
        skips: True = identity residual where the shapes allow it.
        filter_mults: output filters relative to the base stage's.
        layer_deltas: layers relative to the base stage's (at least 1 stays).
        activations: ``None`` keeps each base stage's activation; a list
            (e.g. ``[relu, hswish]`` for MobileNetV3) adds a ``/act`` decision.
        searched_stages: indices of the base stages to search; the others are
            copied. ``None``: all but a final 1x1 ``cn`` stage (MobileNetV3's
            last-stage expansion conv, which belongs to its head).
    """

    def __init__(
        self,
        base: str | Sequence[str] | MobileGenotype = MNASNET_SKELETON,
        ops: Sequence[str] = MNASNET_OPS,
        kernels: Sequence[int] = (3, 5),
        se_ratios: Sequence[float] = (0.0, 0.25),
        skips: Sequence[bool] = (True, False),
        filter_mults: Sequence[float] = (0.75, 1.0, 1.25),
        layer_deltas: Sequence[int] = (-1, 0, 1),
        activations: Sequence[str] | None = None,
        searched_stages: Sequence[int] | None = None,
    ) -> None:
        self.base = _base_genotype(base)
        self.ops = _check_choices("ops", ops)
        for op in self.ops:
            op_args(op)
        self.kernels = _check_choices("kernels", [int(k) for k in kernels])
        if any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ConfigError("kernels", f"must be odd and >= 1, got {list(self.kernels)}")
        self.se_ratios = _check_choices("se_ratios", [float(s) for s in se_ratios])
        if any(not 0.0 <= s <= 1.0 for s in self.se_ratios):
            raise ConfigError("se_ratios", f"must be in [0, 1], got {list(self.se_ratios)}")
        self.skips = _check_choices("skips", [bool(s) for s in skips])
        self.filter_mults = _check_choices("filter_mults", [float(m) for m in filter_mults])
        if any(m <= 0 for m in self.filter_mults):
            raise ConfigError("filter_mults", f"must be > 0, got {list(self.filter_mults)}")
        self.layer_deltas = _check_choices("layer_deltas", [int(d) for d in layer_deltas])
        self.activations = (
            None if activations is None else _check_choices("activations", activations, ACTIVATIONS)
        )
        n = len(self.base.stages)
        if searched_stages is None:
            last = self.base.stages[-1]
            searched = [
                i
                for i in range(n)
                if not (i == n - 1 and last.type == "cn" and last.kernel == 1 and n > 1)
            ]
        else:
            searched = sorted({int(i) for i in searched_stages})
            if not searched or searched[0] < 0 or searched[-1] >= n:
                raise ConfigError("searched_stages", f"must be a non-empty subset of 0..{n - 1}")
        self.searched_stages = tuple(searched)

        decisions = []
        for i in self.searched_stages:
            stage = self.base.stages[i]
            filters = tuple(
                sorted({make_divisible(stage.out_channels * m) for m in self.filter_mults})
            )
            layers = tuple(sorted({max(1, stage.repeats + d) for d in self.layer_deltas}))
            p = f"s{i}"
            decisions += [
                Decision(f"{p}/op", self.ops),
                Decision(f"{p}/kernel", self.kernels),
                Decision(f"{p}/se", self.se_ratios),
                Decision(f"{p}/skip", self.skips),
                Decision(f"{p}/filters", filters),
                Decision(f"{p}/layers", layers),
            ]
            if self.activations is not None:
                decisions.append(Decision(f"{p}/act", self.activations))
        self.decisions = tuple(decisions)
        self._per_stage = 7 if self.activations is not None else 6

    def decode(self, actions: Sequence[int]) -> MobileGenotype:
        values = list(self.describe(actions).values())
        stages = list(self.base.stages)
        for j, i in enumerate(self.searched_stages):
            chunk = values[j * self._per_stage : (j + 1) * self._per_stage]
            op, kernel, se, skip, filters, layers = chunk[:6]
            block_type, expansion = op_args(op)
            stages[i] = BlockArgs(
                type=block_type,
                repeats=layers,
                kernel=kernel,
                stride=stages[i].stride,
                expansion=expansion,
                out_channels=filters,
                se_ratio=se,
                skip=skip,
                activation=self._activation(chunk[6])
                if self.activations is not None
                else stages[i].activation,
            )
        return dataclasses.replace(self.base, stages=tuple(stages))

    def _activation(self, name: str) -> str | None:
        """The genotype's default activation is written as None, like the published strings."""
        return None if name == self.base.activation else name

    def encode(self, genotype: MobileGenotype) -> Actions:
        if not isinstance(genotype, MobileGenotype):
            raise GenotypeError(f"expected a mobile genotype, got {type(genotype).__name__}")
        if len(genotype.stages) != len(self.base.stages):
            raise GenotypeError(
                f"genotype has {len(genotype.stages)} stages, the space's base "
                f"{len(self.base.stages)}"
            )
        searched = set(self.searched_stages)
        for i, (g, b) in enumerate(zip(genotype.stages, self.base.stages, strict=True)):
            if i not in searched and g != b:
                raise GenotypeError(f"stage {i} ({g}) is fixed to {b} in this space")
            if i in searched and g.stride != b.stride:
                raise GenotypeError(f"stage {i} ({g}) must have stride {b.stride}")
        if dataclasses.replace(genotype, stages=self.base.stages) != self.base:
            raise GenotypeError("genotype-level settings (stem, head, SE) differ from the base")
        actions: list[int] = []
        for i in self.searched_stages:
            stage = genotype.stages[i]
            kinds = [op_args(op) for op in self.ops]
            if (stage.type, stage.expansion) not in kinds:
                raise GenotypeError(f"stage {i} ({stage}): its op is not one of {list(self.ops)}")
            op = self.ops[kinds.index((stage.type, stage.expansion))]
            values = [
                op,
                stage.kernel,
                stage.se_ratio,
                stage.skip,
                stage.out_channels,
                stage.repeats,
            ]
            if self.activations is not None:
                values.append(genotype.resolve(stage.activation))
            elif stage.activation != self.base.stages[i].activation:
                raise GenotypeError(f"stage {i} ({stage}) must keep the base's activation")
            for value in values:
                actions.append(self.decisions[len(actions)].index(value))
        return tuple(actions)
