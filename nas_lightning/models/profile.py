"""Model cost: parameters and multiply-adds, for any ``nn.Module``.

Multiply-adds (MACs, the "MAdds" of the MobileNet papers) are those of the
convolutions and matrix products of one forward pass at batch 1, as torch's
own ``FlopCounterMode`` counts them (2 FLOPs per multiply-add); batch norm,
activations, pooling and the SE gating product are not counted, as in the
papers' figures. Its forward counts equal a per-layer count (output elements
x input channels per group x kernel area; tests pin NASNet-A, MnasNet-A1 and
MobileNetV3). Only the forward pass is counted: the backward counts of
grouped convolutions are not the figures the papers report.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on an input of ``input_shape`` (no batch dim).

    Conv2d: output elements x (in_channels / groups) x kernel area; Linear:
    output elements x in_features. The model runs in eval mode on a zero
    input of batch 1 on its own device; its training mode is restored.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
