"""Typed blocks of mobile networks (MnasNet, MobileNetV2/V3).

Each block takes its input width and a single-layer :class:`BlockArgs`
(``repeats == 1``) and decides its own residual from its shapes: a residual
exists when the stride is 1, the input and output widths match and the
block string allows it (no ``noskip``).
"""

from __future__ import annotations

import torch
from torch import nn

from nas_lightning.genotypes.mobile import BlockArgs
from nas_lightning.models.nasnet import drop_path


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of it.

    The rounding of MobileNet/timm/torchvision, so that widths match theirs.
    """
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < round_limit * value:
        out += divisor
    return out


# h-swish(x) = x * ReLU6(x + 3) / 6 and hard-sigmoid(x) = ReLU6(x + 3) / 6
# (MobileNetV3) are torch's own fused modules: their outputs equal the formulas
# bit for bit (tested); their gradients differ only at exactly x = -3 and 3.
HSwish = nn.Hardswish
HardSigmoid = nn.Hardsigmoid


def make_activation(name: str) -> nn.Module:
    """The activation module of a block string's activation name."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return HSwish()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "hard_sigmoid":
        return HardSigmoid()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (same padding, no bias), batch norm, optional activation.

    The layers and state-dict keys of torchvision's ``Conv2dNormActivation``
    (tested), kept here because importing ``torchvision.ops`` loads all of
    torchvision, which added seconds to processes that build networks without
    Lightning (the latency command line).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "relu",
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(make_activation(activation))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate on their means.

    Kept rather than ``torchvision.ops.SqueezeExcitation``, which computes the
    same function under other layer names (``fc1``/``fc2``): switching would
    rename the weights in every saved checkpoint.

    Args:
        channels: width the SE acts on.
        reduced: width of the bottleneck (see :func:`se_width`).
        gate: ``sigmoid`` or ``hard_sigmoid``. The bottleneck uses ReLU in
            both MnasNet and MobileNetV3.
    """

    def __init__(self, channels: int, reduced: int, gate: str = "sigmoid") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = make_activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


def se_width(ratio: float, in_channels: int, mid_channels: int, base: str) -> int:
    """Bottleneck width of an SE: MnasNet's of the input, MobileNetV3's of the expansion.

    ``base="input"``: ``round(ratio * in_channels)`` (timm's MnasNet);
    ``base="expansion"``: ``ratio * mid_channels`` rounded to a multiple of 8
    (torchvision's MobileNetV3: ``_make_divisible(expanded // 4, 8)``).
    """
    if base == "expansion":
        return make_divisible(ratio * mid_channels, 8)
    return max(1, round(ratio * in_channels))


class _Residual(nn.Module):
    """Adds the input back when the block's shapes allow it."""

    has_skip: bool
    drop_path_rate: float

    def _finish(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if not self.has_skip:
            return out
        if self.training and self.drop_path_rate > 0:
            out = drop_path(out, self.drop_path_rate)
        return out + x


class DepthwiseSeparable(_Residual):
    """ds: depthwise kxk conv-BN-act, optional SE, pointwise 1x1 conv-BN (linear)."""

    def __init__(
        self,
        in_channels: int,
        args: BlockArgs,
        activation: str,
        se_gate: str = "sigmoid",
        se_base: str = "input",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out = args.out_channels
        self.has_skip = args.skip and args.stride == 1 and in_channels == out
        self.drop_path_rate = drop_path_rate
        self.dw = ConvBNAct(
            in_channels,
            in_channels,
            args.kernel,
            args.stride,
            groups=in_channels,
            activation=activation,
        )
        self.se = (
            SqueezeExcite(
                in_channels, se_width(args.se_ratio, in_channels, in_channels, se_base), se_gate
            )
            if args.se_ratio > 0
            else nn.Identity()
        )
        self.pw = ConvBNAct(in_channels, out, 1, activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(x, self.pw(self.se(self.dw(x))))


class InvertedResidual(_Residual):
    """ir (MBConv): 1x1 expansion conv-BN-act, depthwise kxk conv-BN-act, SE, 1x1 linear projection.

    The hidden width is ``make_divisible(in_channels * expansion)``, which
    reproduces MobileNetV3's 72/88/184/200/... widths from ratios like e3.67.
    With a hidden width equal to the input width the expansion conv is left
    out (torchvision's MobileNetV3 does the same).
    """

    def __init__(
        self,
        in_channels: int,
        args: BlockArgs,
        activation: str,
        se_gate: str = "sigmoid",
        se_base: str = "input",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out = args.out_channels
        mid = make_divisible(in_channels * args.expansion)
        self.mid_channels = mid
        self.has_skip = args.skip and args.stride == 1 and in_channels == out
        self.drop_path_rate = drop_path_rate
        self.expand = (
            ConvBNAct(in_channels, mid, 1, activation=activation)
            if mid != in_channels
            else nn.Identity()
        )
        self.dw = ConvBNAct(mid, mid, args.kernel, args.stride, groups=mid, activation=activation)
        self.se = (
            SqueezeExcite(mid, se_width(args.se_ratio, in_channels, mid, se_base), se_gate)
            if args.se_ratio > 0
            else nn.Identity()
        )
        self.project = ConvBNAct(mid, out, 1, activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(x, self.project(self.se(self.dw(self.expand(x)))))


class ConvBlock(_Residual):
    """cn: a plain kxk conv-BN-act (MnasNet's "regular conv"), optional SE.

    Like timm, a residual needs an explicit ``skip`` in the block string.
    """

    def __init__(
        self,
        in_channels: int,
        args: BlockArgs,
        activation: str,
        se_gate: str = "sigmoid",
        se_base: str = "input",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out = args.out_channels
        self.has_skip = args.skip and args.stride == 1 and in_channels == out
        self.drop_path_rate = drop_path_rate
        self.conv = ConvBNAct(in_channels, out, args.kernel, args.stride, activation=activation)
        self.se = (
            SqueezeExcite(out, se_width(args.se_ratio, in_channels, out, se_base), se_gate)
            if args.se_ratio > 0
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(x, self.se(self.conv(x)))


BLOCKS: dict[str, type[_Residual]] = {
    "ds": DepthwiseSeparable,
    "ir": InvertedResidual,
    "cn": ConvBlock,
}


def make_block(
    in_channels: int,
    args: BlockArgs,
    activation: str,
    se_gate: str = "sigmoid",
    se_base: str = "input",
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """The module of one layer (``args.repeats`` must be 1; ``activation`` resolved)."""
    if args.repeats != 1:
        raise ValueError(f"make_block builds one layer; got repeats={args.repeats}")
    return BLOCKS[args.type](in_channels, args, activation, se_gate, se_base, drop_path_rate)
