"""ONNX export of a trained network, checked in ONNX Runtime.

An export is only trusted after ONNX Runtime has run it on real inputs and
its logits match PyTorch's; :func:`export_onnx` does both and returns the
measured difference, which ``train.py`` records in the model card.

The TorchScript-based exporter (``dynamo=False``) is tried first: it needs
nothing beyond torch and onnx, so it works offline. The dynamo exporter
(which needs ``onnxscript``) is the fallback when the first one is missing
from a future torch.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def _export(net: nn.Module, example: torch.Tensor, path: Path, opset: int) -> str:
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": ["logits"],
        "opset_version": opset,
    }
    dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}}
    errors = []
    for exporter in ("torchscript", "dynamo"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if exporter == "torchscript":
                    torch.onnx.export(
                        net, (example,), str(path), dynamo=False, dynamic_axes=dynamic, **kwargs
                    )
                else:
                    batch = torch.export.Dim("batch")
                    torch.onnx.export(
                        net,
                        (example,),
                        str(path),
                        dynamo=True,
                        dynamic_shapes={"x": {0: batch}},
                        **kwargs,
                    )
            return exporter
        except Exception as err:  # the next exporter may still work
            errors.append(f"{exporter}: {type(err).__name__}: {str(err).splitlines()[0]}")
    raise RuntimeError("ONNX export failed; " + "; ".join(errors))


def compare_onnx(path: str | Path, net: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """Run ``inputs`` through ONNX Runtime and ``net``.

    Returns:
        The largest absolute difference of the outputs, and the fraction of
        samples whose argmax (predicted class) agrees.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: inputs.numpy().astype(np.float32)})[0]
    with torch.no_grad():
        want = net(inputs).numpy()
    return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())


def export_onnx(
    net: nn.Module,
    inputs: torch.Tensor,
    path: str | Path,
    opset: int = 17,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Export ``net`` (eval mode, fp32, CPU) to ``path`` and check it in ONNX Runtime.

    The batch dimension is dynamic. ``inputs`` (a batch of real, normalised
    images) is run through both PyTorch and ONNX Runtime.

    Args:
        net: the trained network; it is copied, not changed.
        inputs: a float batch ``(N, C, H, W)``.
        path: the ``.onnx`` file to write.
        opset: ONNX opset (17 or later).
        atol: the largest absolute logit difference counted as a match.

    Returns:
        ``{"path", "opset", "exporter", "check_batch", "max_abs_diff", "atol",
        "argmax_agree", "ok"}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(net).float().cpu().eval().to(memory_format=torch.contiguous_format)
    inputs = inputs.detach().float().cpu().contiguous()
    exporter = _export(model, inputs[:1], path, opset)
    diff, agree = compare_onnx(path, model, inputs)
    result = {
        "path": str(path),
        "opset": opset,
        "exporter": exporter,
        "check_batch": len(inputs),
        "max_abs_diff": diff,
        "atol": atol,
        "argmax_agree": agree,
        "ok": bool(diff <= atol),
    }
    if not result["ok"]:
        log.warning("ONNX output differs from PyTorch by %.3g (> atol %.3g)", diff, atol)
    return result
