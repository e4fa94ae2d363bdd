"""A shared-weights network (ENAS supernet) over the NASNet cell space.

The layout is :class:`~nas_lightning.models.nasnet.NASNetwork`'s (stem, stages
of normal cells with a reduction cell between them), but every cell position
holds *every* choice of the space: for each block, each of its two slots,
each state the slot may read and each op, one module with its own weights.
A sampled genotype runs its sub-graph only, so its cost is a standalone
child's.

A cell's output is the concatenation of a genotype-dependent set of states,
so the 1x1 convolutions that read it (the next cells' preprocessing, the
classifier) hold weights for all ``B + 2`` states and use the columns of the
states present. With those columns, the sub-graph is exactly the standalone
network of the genotype: :func:`weight_pairs` maps every tensor of one onto
the other (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.nasnet import COMBINES, Cell, NASNetGenotype
from nas_lightning.models.nasnet import NASNetwork
from nas_lightning.models.ops import OPS, FactorizedReduce, ReLUConvBN

Units = tuple[int, ...]
"""Which states of the previous cell (indices, in concatenation order) an input holds."""


def unit_columns(units: Units, c_unit: int, device: torch.device | None = None) -> torch.Tensor:
    """Input-channel indices of ``units`` when each unit is ``c_unit`` channels wide."""
    return torch.cat([torch.arange(u * c_unit, (u + 1) * c_unit, device=device) for u in units])


class SlicedConv1x1(nn.Module):
    """A 1x1 convolution over any subset of ``max_units`` input groups.

    Args:
        c_unit: channels of one input group (one state of the previous cell).
        max_units: groups the weight has columns for.
        c_out: output channels.
        stride: the convolution's stride.
    """

    def __init__(self, c_unit: int, max_units: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.c_unit, self.max_units, self.stride = c_unit, max_units, stride
        self.weight = nn.Parameter(torch.empty(c_out, c_unit * max_units, 1, 1))
        # nn.Conv2d's default, with the fan-in of a typical input (a few units)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def sliced(self, units: Units) -> torch.Tensor:
        if len(units) == self.max_units and list(units) == list(range(self.max_units)):
            return self.weight
        return self.weight.index_select(1, unit_columns(units, self.c_unit, self.weight.device))

    def forward(self, x: torch.Tensor, units: Units) -> torch.Tensor:
        # A 1x1 kernel at stride s reads every s-th pixel: subsample, then convolve at
        # stride 1. The same function; torch's oneDNN backward of a strided 1x1
        # convolution on channels-last inputs of few channels corrupts memory (torch 2.14).
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.conv2d(x, self.sliced(units))


class SlicedReLUConvBN(nn.Module):
    """:class:`ReLUConvBN` with a 1x1 kernel over a variable set of input states."""

    def __init__(self, c_unit: int, max_units: int, c_out: int) -> None:
        super().__init__()
        self.conv = SlicedConv1x1(c_unit, max_units, c_out)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, units: Units) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x), units))


class SlicedFactorizedReduce(nn.Module):
    """:class:`FactorizedReduce` over a variable set of input states."""

    def __init__(self, c_unit: int, max_units: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ConfigError("filters", f"a factorized reduction needs even channels, got {c_out}")
        self.conv_a = SlicedConv1x1(c_unit, max_units, c_out // 2, stride=2)
        self.conv_b = SlicedConv1x1(c_unit, max_units, c_out // 2, stride=2)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, units: Units) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_a(x, units), self.conv_b(shifted, units)], dim=1))


class SuperCell(nn.Module):
    """Every choice of one cell position, with its own weights.

    ``ops[b][slot][src][op]`` is the module of block ``b``'s slot (0: A,
    1: B) reading state ``src`` with op ``op``; in a reduction cell it has
    stride 2 when ``src`` is a cell input, as in the standalone cell. With
    ``share_inputs`` one module serves every ``src`` of the same stride.
    """

    def __init__(
        self,
        num_blocks: int,
        ops: Sequence[str],
        combines: Sequence[str],
        c_unit_pp: int,
        units_pp: int,
        c_unit_p: int,
        units_p: int,
        c: int,
        reduction: bool,
        prev_reduced: bool,
        share_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.c = c
        self.num_blocks = num_blocks
        self.pre0 = (
            SlicedFactorizedReduce(c_unit_pp, units_pp, c)
            if prev_reduced
            else SlicedReLUConvBN(c_unit_pp, units_pp, c)
        )
        self.pre1 = SlicedReLUConvBN(c_unit_p, units_p, c)
        self.ops = nn.ModuleList()
        for b in range(num_blocks):
            slots = nn.ModuleList()
            for _slot in range(2):
                by_stride: dict[int, nn.ModuleDict] = {}
                per_src = []
                for src in range(b + 2):
                    stride = 2 if reduction and src < 2 else 1
                    if share_inputs and stride in by_stride:
                        per_src.append(by_stride[stride])  # the same modules, shared
                        continue
                    by_stride[stride] = nn.ModuleDict({op: OPS[op](c, stride) for op in ops})
                    per_src.append(by_stride[stride])
                slots.append(nn.ModuleList(per_src))
            self.ops.append(slots)
        self.merges = nn.ModuleList(
            ReLUConvBN(2 * c, c, 1) if "concat" in combines else nn.Identity()
            for _ in range(num_blocks)
        )
        self.reduce_out = nn.ModuleDict()
        if reduction:  # for genotypes that concatenate a cell input (NASNet-A)
            self.reduce_out = nn.ModuleDict({str(i): FactorizedReduce(c, c) for i in (0, 1)})

    @property
    def max_units(self) -> int:
        """States a cell output can concatenate: the two inputs and every block."""
        return self.num_blocks + 2

    def forward(
        self, s0: torch.Tensor, u0: Units, s1: torch.Tensor, u1: Units, cell: Cell
    ) -> tuple[torch.Tensor, Units]:
        states = [self.pre0(s0, u0), self.pre1(s1, u1)]
        for b, block in enumerate(cell.blocks):
            a = self.ops[b][0][block.input_a][block.op_a](states[block.input_a])
            bb = self.ops[b][1][block.input_b][block.op_b](states[block.input_b])
            if block.combine == "add":
                states.append(a + bb)
            else:
                states.append(self.merges[b](torch.cat([a, bb], dim=1)))
        outs = [
            self.reduce_out[str(i)](states[i]) if self.reduction and i < 2 else states[i]
            for i in cell.concat
        ]
        return torch.cat(outs, dim=1), tuple(cell.concat)


class Supernet(nn.Module):
    """All children of a NASNet cell space in one network with shared weights.

    Args:
        num_blocks: B, blocks per cell.
        ops: the op names of the space.
        combines: the combine choices of the space (``add``, ``concat``).
        in_channels: image channels.
        num_classes: classifier outputs.
        filters, cells_per_stage, num_reductions, stem_multiplier,
        stem_stride, dropout: the layout, as for
            :class:`~nas_lightning.models.nasnet.NASNetwork`.
        share_inputs: False (ENAS): every (block, slot, input state, op) owns
            its weights. True: an op of a block's slot has one set of weights
            for every input state (of the same stride), about ``B`` times
            fewer, each trained about ``B`` times as often; a cheaper proxy
            for short searches.
    """

    def __init__(
        self,
        num_blocks: int,
        ops: Sequence[str],
        combines: Sequence[str] = ("add",),
        in_channels: int = 3,
        num_classes: int = 10,
        filters: int = 16,
        cells_per_stage: int = 1,
        num_reductions: int = 2,
        stem_multiplier: int = 3,
        stem_stride: int = 1,
        dropout: float = 0.0,
        share_inputs: bool = False,
    ) -> None:
        super().__init__()
        unknown = [op for op in ops if op not in OPS]
        if unknown or not ops:
            raise ConfigError("ops", f"unknown op(s) {unknown or '(none)'}; known: {sorted(OPS)}")
        bad = [c for c in combines if c not in COMBINES]
        if bad or not combines:
            raise ConfigError("combines", f"must be a non-empty subset of {COMBINES}")
        if not isinstance(filters, int) or filters < 2 or filters % 2:
            raise ConfigError("filters", f"must be an even integer >= 2, got {filters!r}")
        self.num_blocks = num_blocks
        self.ops_names = tuple(ops)
        self.combines = tuple(combines)
        self.layout = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "filters": filters,
            "cells_per_stage": cells_per_stage,
            "num_reductions": num_reductions,
            "stem_multiplier": stem_multiplier,
            "stem_stride": stem_stride,
            "dropout": dropout,
        }
        c_stem = stem_multiplier * filters
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(c_stem),
        )
        # (channels per unit, units) of h_{i-1} and h_i; the stem is one unit.
        pp, p, c = (c_stem, 1), (c_stem, 1), filters
        self.cells = nn.ModuleList()
        prev_reduced = False
        for stage in range(num_reductions + 1):
            kinds = ([True] if stage > 0 else []) + [False] * cells_per_stage
            for reduction in kinds:
                if reduction:
                    c *= 2
                cell = SuperCell(
                    num_blocks,
                    self.ops_names,
                    self.combines,
                    *pp,
                    *p,
                    c,
                    reduction,
                    prev_reduced,
                    share_inputs,
                )
                self.cells.append(cell)
                pp, p, prev_reduced = p, (c, cell.max_units), reduction
        self.head = nn.Sequential(
            nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout)
        )
        self.classifier = nn.Linear(p[0] * p[1], num_classes)
        self.c_last = p[0]

    def check(self, genotype: NASNetGenotype) -> None:
        """Refuse a genotype outside this supernet's space, with the reason."""
        if not isinstance(genotype, NASNetGenotype):
            raise GenotypeError(
                f"the supernet runs NASNet genotypes, got {type(genotype).__name__}"
            )
        for name, cell in (("normal", genotype.normal), ("reduction", genotype.reduction)):
            if len(cell.blocks) != self.num_blocks:
                raise GenotypeError(
                    f"{name} cell has {len(cell.blocks)} blocks, the supernet {self.num_blocks}"
                )
            for b, block in enumerate(cell.blocks):
                for op in (block.op_a, block.op_b):
                    if op not in self.ops_names:
                        raise GenotypeError(
                            f"{name} block {b}: op {op!r} is not in the supernet's "
                            f"{list(self.ops_names)}"
                        )
                if block.combine not in self.combines:
                    raise GenotypeError(f"{name} block {b}: combine {block.combine!r} not searched")

    def forward(self, x: torch.Tensor, genotype: NASNetGenotype) -> torch.Tensor:
        """Logits of ``genotype``'s sub-graph."""
        s = self.stem(x)
        s0, u0, s1, u1 = s, (0,), s, (0,)
        for cell in self.cells:
            cell_genotype = genotype.reduction if cell.reduction else genotype.normal
            out, units = cell(s0, u0, s1, u1, cell_genotype)
            s0, u0, s1, u1 = s1, u1, out, units
        cols = unit_columns(u1, self.c_last, self.classifier.weight.device)
        features = self.head(s1)
        return F.linear(
            features, self.classifier.weight.index_select(1, cols), self.classifier.bias
        )

    def standalone(self, genotype: NASNetGenotype) -> NASNetwork:
        """The standalone network of ``genotype`` with this supernet's layout and weights."""
        self.check(genotype)
        net = NASNetwork(genotype, **self.layout).to(self.classifier.weight.device)
        copy_weights(self, net, genotype, into="standalone")
        return net


def weight_pairs(
    supernet: Supernet, net: NASNetwork, genotype: NASNetGenotype
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Every tensor of ``net`` with its supernet counterpart.

    Returns ``(standalone tensor, supernet tensor, columns)`` triples; when
    ``columns`` is set, the standalone tensor is those input columns of the
    supernet's (the sliced 1x1 convolutions and the classifier). Parameters
    and buffers (BatchNorm statistics) alike; raises if the two networks do
    not have the same layout.
    """
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def same(a: nn.Module, b: nn.Module) -> None:
        sa, sb = a.state_dict(keep_vars=True), b.state_dict(keep_vars=True)
        if list(sa) != list(sb):
            raise ValueError(f"modules differ: {list(sa)} vs {list(sb)}")
        pairs.extend((sa[k], sb[k], None) for k in sa)

    def sliced(std: nn.Module, sup: nn.Module, units: Units, c_unit: int) -> None:
        if isinstance(sup, SlicedReLUConvBN):
            cols = unit_columns(units, c_unit)
            pairs.append((std[1].weight, sup.conv.weight, cols))
            same(std[2], sup.bn)
        else:  # SlicedFactorizedReduce
            cols = unit_columns(units, c_unit)
            pairs.append((std.conv_a.weight, sup.conv_a.weight, cols))
            pairs.append((std.conv_b.weight, sup.conv_b.weight, cols))
            same(std.bn, sup.bn)

    if len(net.cells) != len(supernet.cells):
        raise ValueError(
            f"{len(net.cells)} cells in the network, {len(supernet.cells)} in the supernet"
        )
    same(net.stem, supernet.stem)
    c_stem = supernet.stem[0].out_channels
    pp = p = ((0,), c_stem)
    for cn, cs in zip(net.cells, supernet.cells, strict=True):
        cell = genotype.reduction if cs.reduction else genotype.normal
        sliced(cn.pre0, cs.pre0, *pp)
        sliced(cn.pre1, cs.pre1, *p)
        for b, block in enumerate(cell.blocks):
            for slot, (op, src) in enumerate(
                ((block.op_a, block.input_a), (block.op_b, block.input_b))
            ):
                same(cn.ops[2 * b + slot], cs.ops[b][slot][src][op])
            if block.combine == "concat":
                same(cn.merges[b], cs.merges[b])
        for key, module in cn.reduce_out.items():
            same(module, cs.reduce_out[key])
        pp, p = p, (tuple(cell.concat), cs.c)
    pairs.append((net.head[4].weight, supernet.classifier.weight, unit_columns(*p)))
    pairs.append((net.head[4].bias, supernet.classifier.bias, None))
    return pairs


@torch.no_grad()
def copy_weights(supernet: Supernet, net: NASNetwork, genotype: NASNetGenotype, into: str) -> None:
    """Copy ``genotype``'s weights between the supernet and its standalone network.

    Args:
        into: ``"standalone"`` (inherit the shared weights, e.g. to fine-tune
            a found cell) or ``"supernet"``.
    """
    if into not in ("standalone", "supernet"):
        raise ValueError(f"into must be 'standalone' or 'supernet', got {into!r}")
    for std, sup, cols in weight_pairs(supernet, net, genotype):
        cols = None if cols is None else cols.to(sup.device)
        if into == "standalone":
            std.copy_(sup if cols is None else sup.index_select(1, cols))
        elif cols is None:
            sup.copy_(std)
        else:
            sup.index_copy_(1, cols, std.to(sup.dtype))
