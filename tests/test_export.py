"""ONNX export: the exported network computes what the PyTorch one does."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch

from nas_lightning.export import compare_onnx, export_onnx
from nas_lightning.genotypes import NASNET_A, load_genotype
from nas_lightning.models.registry import build_model

INPUT = (1, 28, 28)


def _trained_like(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial batch-norm statistics, as after training."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, *INPUT))
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """NASNet-A with its (training-only) auxiliary head, in channels-last, exported."""
    torch.manual_seed(0)
    net = build_model(
        NASNET_A, 1, 10, {"filters": 4, "cells_per_stage": 1, "stem_stride": 2, "auxiliary": True}
    )
    net = _trained_like(net.to(memory_format=torch.channels_last))
    inputs = torch.randn(6, *INPUT)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return net, inputs, path, export_onnx(net, inputs, path, opset=17, atol=1e-4)


def test_nasnet_export_matches_pytorch(exported) -> None:
    net, inputs, path, result = exported
    assert result["ok"] and result["max_abs_diff"] <= 1e-4 and result["argmax_agree"] == 1.0
    assert result["opset"] == 17 and result["check_batch"] == 6
    assert not net.training  # the network is copied, not changed
    # The batch dimension is dynamic and the output is the logits alone (no auxiliary head).
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.zeros((3, *INPUT), np.float32)})
    assert len(out) == 1 and out[0].shape == (3, 10)


def test_the_check_detects_a_different_network(exported) -> None:
    net, inputs, path, _ = exported
    changed = copy.deepcopy(net)
    with torch.no_grad():
        changed.head[-1].bias.add_(0.5)  # the PyTorch network differs from the export
    diff, _ = compare_onnx(path, changed, inputs)
    assert diff == pytest.approx(0.5, abs=1e-4)


@pytest.mark.slow
def test_other_kinds_export(tmp_path) -> None:
    torch.manual_seed(0)
    net = _trained_like(
        build_model(load_genotype("mnasnet_a1"), 1, 10, {"width_mult": 0.25, "stem_stride": 1})
    )
    result = export_onnx(net, torch.randn(2, *INPUT), tmp_path / "mobile.onnx")
    assert result["ok"], result
