"""ONNX export of a trained network, checked in ONNX Runtime.

An export is only trusted after ONNX Runtime has run it on real inputs and
its logits match PyTorch's; :func:`export_onnx` does both and returns the
measured difference, which ``train.py`` records in the model card.

The file carries what a user of the model needs besides the weights, in the
ONNX model's ``metadata_props``: the input normalisation (``mean``, ``std``),
the ``class_names``, the input shape, and the architecture (its genotype and,
for mobile networks, the timm block strings).

The TorchScript-based exporter (``dynamo=False``) is tried first: it needs
nothing beyond torch and onnx, so it works offline. The dynamo exporter
(which needs ``onnxscript``) is the fallback when the first one is missing
from a future torch.
"""

from __future__ import annotations

import copy
import json
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


# Class names of the datasets whose names are fixed by their publishers.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_KNOWN_CLASSES = {"FashionMNIST": FASHION_MNIST_CLASSES,
                  "EmbeddedFashionMNIST": FASHION_MNIST_CLASSES,
                  "CIFAR10": CIFAR10_CLASSES}


def class_names(datamodule: Any) -> list[str]:
    """The datamodule's class names: its own ``classes``, a known dataset's, or indices."""
    try:
        own = getattr(datamodule, "classes", None)
    except (OSError, ValueError, RuntimeError):  # e.g. ImageNet without its folder
        own = None
    num = int(getattr(datamodule, "num_classes", 0))
    if isinstance(own, list | tuple) and len(own) == num:
        return [str(c) for c in own]
    known = _KNOWN_CLASSES.get(type(datamodule).__name__)
    if known is not None and len(known) == num:
        return list(known)
    return [str(i) for i in range(num)]


def model_metadata(datamodule: Any, genotype: Any, input_shape: tuple[int, ...]) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (all values are strings; lists as JSON)."""
    from nas_lightning.genotypes.base import genotype_to_dict

    meta = {
        "producer": "nas-lightning",
        "input_shape": json.dumps([-1, *input_shape]),
        "input_format": "float32 NCHW: pixel values / 255, then (x - mean) / std per channel",
        "mean": json.dumps([float(m) for m in getattr(datamodule, "mean", ())]),
        "std": json.dumps([float(v) for v in getattr(datamodule, "std", ())]),
        "class_names": json.dumps(class_names(datamodule)),
        "genotype": json.dumps(genotype_to_dict(genotype)),
    }
    if hasattr(genotype, "block_strings"):  # mobile: timm's notation
        meta["block_strings"] = json.dumps(list(genotype.block_strings()))
    return meta


def add_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into an ONNX file's ``metadata_props`` (replacing equal keys)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    for prop in kept:
        model.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict, as ONNX Runtime reports them."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


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
    metadata: dict[str, str] | None = None,
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
        metadata: strings for the model's ``metadata_props`` (see
            :func:`model_metadata`).

    Returns:
        ``{"path", "opset", "exporter", "check_batch", "max_abs_diff", "atol",
        "argmax_agree", "ok"}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(net).float().cpu().eval().to(memory_format=torch.contiguous_format)
    inputs = inputs.detach().float().cpu().contiguous()
    exporter = _export(model, inputs[:1], path, opset)
    if metadata:
        add_metadata(path, metadata)
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
