"""The NASNet operations, one registry entry each.

Every entry has the same factory signature ``(C, stride) -> nn.Module``: it
maps ``C`` channels to ``C`` channels and divides the spatial size by
``stride``. A new op is one entry in :data:`OPS`; the op tests iterate over
the registry, so they cover it automatically.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU, one convolution, batch norm: NASNet's basic conv unit.

    Pre-activation order, which torchvision's ``Conv2dNormActivation``
    (conv, norm, activation) does not offer.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )


class FactorizedConv(nn.Sequential):
    """A 1xk convolution then a kx1 one (NASNet's "1x3 then 3x1")."""

    def __init__(self, c: int, k: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, k), (1, stride), (0, k // 2), bias=False),
            nn.Conv2d(c, c, (k, 1), (stride, 1), (k // 2, 0), bias=False),
            nn.BatchNorm2d(c),
        )


class SepConv(nn.Sequential):
    """Depthwise-separable conv applied twice, as in NASNet.

    ReLU, depthwise kxk (stride), pointwise, BN, ReLU, depthwise kxk,
    pointwise, BN.
    """

    def __init__(self, c: int, k: int, stride: int) -> None:
        pad = k // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, 1, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two offset 1x1 convs.

    Used for identity with stride 2 and to bring ``h_{i-1}`` to the size of
    ``h_i`` after a reduction cell. Odd sizes are padded so that both paths
    agree in shape.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The shifted path pads one pixel right/bottom so odd sizes line up.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def _identity(c: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c)


def _max_pool(k: int) -> Callable[[int, int], nn.Module]:
    return lambda c, stride: nn.MaxPool2d(k, stride, k // 2)


OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda c, stride: FactorizedConv(c, 3, stride),
    "conv_1x7_7x1": lambda c, stride: FactorizedConv(c, 7, stride),
    "dil_conv_3x3": lambda c, stride: ReLUConvBN(c, c, 3, stride, 2, dilation=2),
    "avg_pool_3x3": lambda c, stride: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    "max_pool_3x3": _max_pool(3),
    "max_pool_5x5": _max_pool(5),
    "max_pool_7x7": _max_pool(7),
    "conv_1x1": lambda c, stride: ReLUConvBN(c, c, 1, stride, 0),
    "conv_3x3": lambda c, stride: ReLUConvBN(c, c, 3, stride, 1),
    "sep_conv_3x3": lambda c, stride: SepConv(c, 3, stride),
    "sep_conv_5x5": lambda c, stride: SepConv(c, 5, stride),
    "sep_conv_7x7": lambda c, stride: SepConv(c, 7, stride),
}
"""The 13 operations of the NASNet search space, by name."""

NASNET_OPS: tuple[str, ...] = tuple(OPS)
