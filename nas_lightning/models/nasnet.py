"""Networks stacked from NASNet cells.

The network for a genotype: a stem, then ``num_reductions + 1`` stages of
``cells_per_stage`` normal cells, with a reduction cell (filters doubled,
resolution halved) between stages. With the CIFAR defaults
(``filters=32, cells_per_stage=6``) and NASNet-A this is the paper's
"NASNet-A (6 @ 768)": the 768 is the width of the last cell's output.
"""

from __future__ import annotations

import torch
from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.nasnet import Cell, NASNetGenotype
from nas_lightning.models.ops import OPS, FactorizedReduce, ReLUConvBN


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a path with probability ``drop_prob``."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class NASNetCell(nn.Module):
    """One normal or reduction cell built from a :class:`Cell` genotype.

    Args:
        cell: the genotype of this cell.
        c_prev_prev: channels of ``h_{i-1}``.
        c_prev: channels of ``h_i``.
        c: channels of every state inside the cell.
        reduction: whether ops on the two inputs use stride 2.
        prev_reduced: whether ``h_i`` is half the size of ``h_{i-1}``, so
            ``h_{i-1}`` must be reduced to match.
    """

    def __init__(
        self,
        cell: Cell,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        prev_reduced: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0 = (
            FactorizedReduce(c_prev_prev, c)
            if prev_reduced
            else ReLUConvBN(c_prev_prev, c, 1)
        )
        self.pre1 = ReLUConvBN(c_prev, c, 1)
        self.inputs = [(b.input_a, b.input_b) for b in cell.blocks]
        self.combines = [b.combine for b in cell.blocks]
        self.concat = list(cell.concat)
        self.ops = nn.ModuleList()
        self.merges = nn.ModuleList()
        for block in cell.blocks:
            for op, src in ((block.op_a, block.input_a), (block.op_b, block.input_b)):
                stride = 2 if reduction and src < 2 else 1
                self.ops.append(OPS[op](c, stride))
            self.merges.append(
                ReLUConvBN(2 * c, c, 1) if block.combine == "concat" else nn.Identity()
            )
        # A state kept at full resolution in a reduction cell (an unused input)
        # must be reduced before it joins the concatenated output.
        self.reduce_out = nn.ModuleDict(
            {str(i): FactorizedReduce(c, c) for i in self.concat if reduction and i < 2}
        )
        self.out_channels = len(self.concat) * c
        self.drop_prob = 0.0

    def forward(self, h_prev_prev: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(h_prev_prev), self.pre1(h_prev)]
        for b, (ia, ib) in enumerate(self.inputs):
            op_a, op_b = self.ops[2 * b], self.ops[2 * b + 1]
            a, bb = op_a(states[ia]), op_b(states[ib])
            if self.training and self.drop_prob > 0:
                a = a if isinstance(op_a, nn.Identity) else drop_path(a, self.drop_prob)
                bb = bb if isinstance(op_b, nn.Identity) else drop_path(bb, self.drop_prob)
            if self.combines[b] == "add":
                states.append(a + bb)
            else:
                states.append(self.merges[b](torch.cat([a, bb], dim=1)))
        outs = [
            self.reduce_out[str(i)](states[i]) if str(i) in self.reduce_out else states[i]
            for i in self.concat
        ]
        return torch.cat(outs, dim=1)


class AuxiliaryHead(nn.Sequential):
    """NASNet's auxiliary classifier, used in training only.

    As in the reference (TF-slim ``nasnet._build_aux_head``): ReLU, average
    pooling, a 1x1 conv to 128 channels, BN, ReLU, a conv to 768 channels
    over the whole remaining map, BN, ReLU and a linear classifier. The
    reference pools 5x5 with stride 3 (a 2x2 or 4x4 map on CIFAR); pooling
    adaptively to 2x2 gives the same head for any input size.
    """

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(768, num_classes),
        )


class NASNetwork(nn.Module):
    """A classifier stacked from a genotype's normal and reduction cells.

    Args:
        genotype: the two cells.
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: classifier outputs.
        filters: F, channels of a state in the first stage.
        cells_per_stage: N, normal cells per stage.
        num_reductions: reduction cells, i.e. stages minus one.
        stem_multiplier: the stem conv has ``stem_multiplier * F`` channels.
        stem_stride: stride of the stem conv; 2 quarters the cost of every
            cell (the search's proxy children on small CPUs use it).
        dropout: dropout before the classifier.
        auxiliary: add NASNet's auxiliary head on the output of the last
            stage before the final reduction (2/3 of the depth, as in the
            paper's code); in training mode ``forward`` then returns
            ``(logits, aux_logits)``, in eval mode the logits alone.
    """

    def __init__(
        self,
        genotype: NASNetGenotype,
        in_channels: int = 3,
        num_classes: int = 10,
        filters: int = 32,
        cells_per_stage: int = 6,
        num_reductions: int = 2,
        stem_multiplier: int = 3,
        stem_stride: int = 1,
        dropout: float = 0.0,
        auxiliary: bool = False,
    ) -> None:
        super().__init__()
        for key, value, minimum in (
            ("filters", filters, 1),
            ("cells_per_stage", cells_per_stage, 0),
            ("num_reductions", num_reductions, 0),
            ("stem_multiplier", stem_multiplier, 1),
            ("stem_stride", stem_stride, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError("dropout", f"must be in [0, 1), got {dropout!r}")
        if cells_per_stage == 0 and num_reductions == 0:
            raise ConfigError("cells_per_stage", "0 with num_reductions=0 leaves no cell")
        if auxiliary and num_reductions < 1:
            raise ConfigError("auxiliary", "the auxiliary head needs num_reductions >= 1")
        self.genotype = genotype
        c_stem = stem_multiplier * filters
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(c_stem),
        )
        c_pp, c_p, c = c_stem, c_stem, filters
        self.cells = nn.ModuleList()
        prev_reduced = False
        self.aux_index: int | None = None
        self.aux_head: AuxiliaryHead | None = None
        for stage in range(num_reductions + 1):
            if stage > 0:
                c *= 2
                cell = NASNetCell(genotype.reduction, c_pp, c_p, c, True, prev_reduced)
                self.cells.append(cell)
                c_pp, c_p, prev_reduced = c_p, cell.out_channels, True
            for _ in range(cells_per_stage):
                cell = NASNetCell(genotype.normal, c_pp, c_p, c, False, prev_reduced)
                self.cells.append(cell)
                c_pp, c_p, prev_reduced = c_p, cell.out_channels, False
            if auxiliary and stage == num_reductions - 1:
                self.aux_index = len(self.cells) - 1
                self.aux_head = AuxiliaryHead(c_p, num_classes)
        self.out_channels = c_p
        self.head = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_p, num_classes),
        )

    def set_drop_path(self, prob: float) -> None:
        """Set the drop-path probability of every cell (0 disables it)."""
        for cell in self.cells:
            cell.drop_prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.training:
                aux = self.aux_head(s1)
        logits = self.head(s1)
        return logits if aux is None else (logits, aux)
