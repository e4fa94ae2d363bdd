"""Mobile networks (MnasNet, MobileNetV2/V3) built from a :class:`MobileGenotype`.

The network is a flat sequence: a stem, one module per layer (a stage of r
repeats gives r modules) and a head. :meth:`MobileNetwork.layer_specs` and
:func:`mobile_layers` list that sequence with each layer's key and input
shape, so a latency table can be built layer by layer and summed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.base import load_genotype
from nas_lightning.genotypes.mobile import BlockArgs, MobileGenotype, encode_block
from nas_lightning.models.mobile_blocks import (
    ConvBNAct,
    make_activation,
    make_block,
    make_divisible,
)


class LayerSpec(NamedTuple):
    """One layer of a mobile network, for per-layer latency tables.

    Attributes:
        key: the layer's block string plus its input, e.g.
            ``ir_r1_k5_s2_e3_c40_se0.25@24x56x56``, ``stem_c16_s2@3x224x224``,
            ``head_c1280_cls1000@960x7x7``. Equal keys mean equal modules
            within one :attr:`MobileGenotype.family`.
        module: the layer itself (the network's own module, not a copy).
        input_shape: ``(C, H, W)`` of the layer's input (no batch dimension).
    """

    key: str
    module: nn.Module
    input_shape: tuple[int, ...]


class MobileStem(ConvBNAct):
    """A 3x3 conv-BN-act that starts the network."""


class MobileHead(nn.Module):
    """Final features, global pooling, dropout and the classifier.

    ``efficient=True`` is MobileNetV3's efficient last stage: pool first,
    then a 1x1 conv (with bias, without BN) to ``head_channels`` and the
    activation; otherwise MnasNet's 1x1 conv-BN-act before pooling.
    """

    def __init__(
        self,
        in_channels: int,
        head_channels: int,
        num_classes: int,
        activation: str,
        efficient: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.efficient = efficient
        if efficient:
            self.features: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, head_channels, 1), make_activation(activation)
            )
        else:
            self.features = ConvBNAct(in_channels, head_channels, 1, activation=activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.efficient:
            x = self.features(self.pool(x))
        else:
            x = self.pool(self.features(x))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def _out_size(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a conv with "same" padding ``kernel // 2``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class MobileNetwork(nn.Module):
    """A classifier built from a mobile genotype, timm style.

    Args:
        genotype: the architecture (or the name of a registered one, e.g.
            ``mnasnet_a1``).
        in_channels: image channels (1 for Fashion-MNIST).
        num_classes: classifier outputs.
        width_mult: multiplies every width (stem, blocks, head), rounded to
            multiples of 8 like torchvision's MobileNetV3; small values make
            cheap proxy children.
        dropout: dropout before the classifier.
        drop_path_rate: stochastic depth of residual layers, growing linearly
            from 0 at the first layer to this at the last.
        stem_stride: overrides the genotype's stem stride (e.g. 1 for
            28x28 or 32x32 inputs); ``None`` keeps it.
        channels_last: keep weights and activations in channels-last memory
            format, where CPU depthwise convolutions run faster
            (BENCHMARKS.md); outputs are the same.
    """

    def __init__(
        self,
        genotype: MobileGenotype | str,
        in_channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        drop_path_rate: float = 0.0,
        stem_stride: int | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        genotype = load_genotype(genotype)
        if not isinstance(genotype, MobileGenotype):
            raise GenotypeError(f"MobileNetwork needs a mobile genotype, got {genotype.kind!r}")
        if not width_mult > 0:
            raise ConfigError("width_mult", f"must be > 0, got {width_mult!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError("dropout", f"must be in [0, 1), got {dropout!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError("drop_path_rate", f"must be in [0, 1), got {drop_path_rate!r}")
        if stem_stride is not None and (not isinstance(stem_stride, int) or stem_stride < 1):
            raise ConfigError("stem_stride", f"must be an integer >= 1, got {stem_stride!r}")
        self.genotype = genotype
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stem_stride = genotype.stem_stride if stem_stride is None else stem_stride

        def width(c: int) -> int:
            return c if width_mult == 1.0 else make_divisible(c * width_mult)

        stem_c = width(genotype.stem_channels)
        self.stem = MobileStem(
            in_channels,
            stem_c,
            3,
            self.stem_stride,
            activation=genotype.resolve(genotype.stem_activation),
        )
        layers = genotype.layers()
        self.layer_args: tuple[BlockArgs, ...] = tuple(
            layer.replace(out_channels=width(layer.out_channels)) for layer in layers
        )
        blocks = []
        c = stem_c
        for i, layer in enumerate(self.layer_args):
            blocks.append(
                make_block(
                    c,
                    layer,
                    genotype.resolve(layer.activation),
                    genotype.se_gate,
                    genotype.se_base,
                    drop_path_rate * i / max(1, len(layers) - 1),
                )
            )
            c = layer.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head_channels = width(genotype.head_channels)
        self.head = MobileHead(
            c,
            self.head_channels,
            num_classes,
            genotype.resolve(genotype.head_activation),
            genotype.efficient_head,
            dropout,
        )
        self._init_weights()
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def layer_specs(self, resolution: int | tuple[int, int] = 224) -> list[LayerSpec]:
        """The stem, every layer and the head in order, with keys and input shapes.

        Running the modules in order on an input of ``(in_channels,
        *resolution)`` gives the network's output.
        """
        h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
        shape = (self.in_channels, h, w)
        stem_c = self.stem[0].out_channels
        specs = [
            LayerSpec(f"stem_c{stem_c}_s{self.stem_stride}@{_shape_key(shape)}", self.stem, shape)
        ]
        h, w = _out_size(h, 3, self.stem_stride), _out_size(w, 3, self.stem_stride)
        shape = (stem_c, h, w)
        for layer, block in zip(self.layer_args, self.blocks, strict=True):
            specs.append(LayerSpec(f"{encode_block(layer)}@{_shape_key(shape)}", block, shape))
            k, st = layer.kernel, layer.stride
            h, w = _out_size(h, k, st), _out_size(w, k, st)
            shape = (layer.out_channels, h, w)
        key = f"head_c{self.head_channels}_cls{self.num_classes}@{_shape_key(shape)}"
        specs.append(LayerSpec(key, self.head, shape))
        return specs


def _shape_key(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def mobile_layers(
    genotype: MobileGenotype | str,
    in_channels: int = 3,
    resolution: int = 224,
    num_classes: int = 1000,
    width_mult: float = 1.0,
    stem_stride: int | None = None,
    channels_last: bool = False,
) -> list[LayerSpec]:
    """Build the network of ``genotype`` and list its layers (see :class:`LayerSpec`).

    The modules are in training mode as built; call ``.eval()`` on each
    before timing them.
    """
    net = MobileNetwork(
        genotype,
        in_channels,
        num_classes,
        width_mult=width_mult,
        stem_stride=stem_stride,
        channels_last=channels_last,
    )
    return net.layer_specs(resolution)
