"""Networks built from NAS-RL genotypes (Zoph & Le 2016).

The paper's rules for turning any sampled connection pattern into a valid
network, all applied here:

1. A layer's input is the depth-concatenation of the layers it reads.
2. Inputs of different spatial sizes are zero-padded (bottom and right) to
   the largest before concatenation; the layer's own stride is then applied
   by its convolution to that padded concatenation, so a skip from a large
   early layer brings the resolution back up.
3. A layer that reads nothing reads the image (average-pooled by
   ``downsample`` when that is > 1, a CPU-speed option; off by default).
4. Every layer that no later layer reads feeds the final layer: they are
   padded and concatenated as in 2, then global average pooling and a
   linear classifier (the paper's softmax layer).

Each layer is convolution, batch norm, ReLU ("same" padding, no bias).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.nas_rl import NASRLGenotype, NASRLLayer


def concat_padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate NCHW maps along channels, zero-padding each to the largest H and W."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    padded = [
        t
        if t.shape[-2:] == (height, width)
        else F.pad(t, (0, width - t.shape[-1], 0, height - t.shape[-2]))
        for t in tensors
    ]
    return torch.cat(padded, dim=1)


class ConvBNReLU(nn.Sequential):
    """One NAS-RL layer: ``kh x kw`` conv with "same" padding, batch norm, ReLU.

    Even kernel sizes get the extra padding row/column at the bottom/right, so
    with stride 1 every kernel keeps the spatial size. Not torchvision's
    ``Conv2dNormActivation``: its symmetric padding cannot do that, and the
    leading pad layer would shift the state-dict keys of saved checkpoints.
    """

    def __init__(self, c_in: int, layer: NASRLLayer) -> None:
        kh, kw = layer.filter_height, layer.filter_width
        modules: list[nn.Module] = []
        if kh % 2 and kw % 2:
            padding: tuple[int, int] = (kh // 2, kw // 2)
        else:
            top, left = (kh - 1) // 2, (kw - 1) // 2
            modules.append(nn.ZeroPad2d((left, kw - 1 - left, top, kh - 1 - top)))
            padding = (0, 0)
        modules += [
            nn.Conv2d(c_in, layer.filters, (kh, kw), layer.stride, padding, bias=False),
            nn.BatchNorm2d(layer.filters),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*modules)


class NASRLNetwork(nn.Module):
    """A classifier for one NAS-RL genotype.

    Args:
        genotype: the layers and their connections.
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: classifier outputs.
        dropout: dropout before the classifier (the paper does not say; 0).
        downsample: average-pool the image by this factor before any layer
            reads it (1: off, as in the paper). Search runs on a CPU use 2:
            every layer then costs 4x less.
    """

    def __init__(
        self,
        genotype: NASRLGenotype,
        in_channels: int = 3,
        num_classes: int = 10,
        dropout: float = 0.0,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(genotype, NASRLGenotype):
            raise GenotypeError(f"expected a NASRLGenotype, got {type(genotype).__name__}")
        if in_channels < 1:
            raise ConfigError("in_channels", f"must be >= 1, got {in_channels}")
        if num_classes < 1:
            raise ConfigError("num_classes", f"must be >= 1, got {num_classes}")
        if not 0 <= dropout < 1:
            raise ConfigError("dropout", f"must be in [0, 1), got {dropout}")
        if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1:
            raise ConfigError("downsample", f"must be an integer >= 1, got {downsample!r}")
        self.genotype = genotype
        self.inputs = [layer.inputs for layer in genotype.layers]
        self.outputs = genotype.outputs
        self.stem = nn.AvgPool2d(downsample, ceil_mode=True) if downsample > 1 else nn.Identity()
        self.layers = nn.ModuleList()
        for layer in genotype.layers:
            c_in = sum(genotype.layers[j].filters for j in layer.inputs) or in_channels
            self.layers.append(ConvBNReLU(c_in, layer))
        self.out_channels = sum(genotype.layers[j].filters for j in self.outputs)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(self.out_channels, num_classes),
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output, in order."""
        x = self.stem(x)
        outs: list[torch.Tensor] = []
        for layer, inputs in zip(self.layers, self.inputs, strict=True):
            inp = concat_padded([outs[j] for j in inputs]) if inputs else x
            outs.append(layer(inp))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.features(x)
        return self.head(concat_padded([outs[j] for j in self.outputs]))
