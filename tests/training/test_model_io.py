"""train.py checkpoints load with load_from_checkpoint; the ONNX file says how to feed it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_cfg

from nas_lightning.export import FASHION_MNIST_CLASSES, class_names, model_metadata, read_metadata
from nas_lightning.genotypes import named_genotypes
from nas_lightning.training import run_train
from nas_lightning.training.module import TrainModule


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("io") / "run"
    summary = run_train(make_cfg(run, "genotype=nasnet_a"))
    return run, summary


def test_checkpoint_loads_with_load_from_checkpoint(trained):
    run, summary = trained
    module = TrainModule.load_from_checkpoint(run / "checkpoints" / "best.ckpt",
                                              map_location="cpu")
    module.eval()
    assert module.hparams["architecture"]["genotype"] == summary["genotype"]
    assert module.hparams["options"]["scheduler"] == summary["recipe"]["scheduler"]
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    import onnxruntime as ort

    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        got = module.net(x).numpy()
    # The exported network is the tested (best) checkpoint's: the same logits.
    assert np.abs(got - want).max() < 1e-4


def test_onnx_metadata_carries_normalisation_classes_and_genotype(trained):
    run, summary = trained
    meta = read_metadata(run / "model.onnx")
    assert json.loads(meta["mean"]) == pytest.approx([0.2860])
    assert json.loads(meta["std"]) == pytest.approx([0.3530])
    assert json.loads(meta["class_names"]) == list(FASHION_MNIST_CLASSES)
    assert json.loads(meta["genotype"]) == summary["genotype"]
    assert json.loads(meta["input_shape"]) == [-1, 1, 28, 28]
    assert summary["onnx"]["ok"]


def test_a_module_without_a_network_builds_it_from_its_architecture(trained):
    run, summary = trained
    arch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)[
        "hyper_parameters"]["architecture"]
    module = TrainModule(architecture=arch)  # what an older checkpoint's hparams give
    assert sum(p.numel() for p in module.net.parameters()) == summary["params_train"]


def test_mobile_metadata_has_timm_block_strings():
    genotype = named_genotypes()["mobilenetv3_small"]
    fake = type("FakeData", (), {"mean": (0.5,), "std": (0.25,), "num_classes": 3})()
    meta = model_metadata(fake, genotype, (1, 32, 32))
    assert json.loads(meta["block_strings"])[:2] == ["ds_r1_k3_s2_e1_c16_se0.25_nre",
                                                     "ir_r1_k3_s2_e4.5_c24_nre"]
    assert json.loads(meta["class_names"]) == ["0", "1", "2"]  # unknown dataset: indices


def test_class_names_prefer_the_datamodules_own():
    own = type("Own", (), {"classes": ["cat", "dog"], "num_classes": 2})()
    assert class_names(own) == ["cat", "dog"]
