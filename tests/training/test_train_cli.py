"""train.py picks the model group from the genotype's kind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from nas_lightning.genotypes import genotype_to_dict, load_genotype
from nas_lightning.training.cli import model_group_for


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["genotype=mobilenetv3_small"], "model=mobile"),
        (["genotype=mnasnet_a1", "dataset=cifar10"], "model=mobile"),
        (["genotype=nasnet_a"], None),  # the default model group already
        (["genotype=mobilenetv3_small", "model=mobile", "model.width_mult=0.5"], None),
        (["genotype=mobilenetv3_small", "+model=mobile"], None),
        (["-m", "genotype=mobilenetv3_small,mnasnet_a1"], None),  # a sweep: left to the user
        (["genotype=does_not_exist"], None),  # run_train reports it
        ([], None),
    ],
)
def test_model_group_for(argv, expected):
    assert model_group_for(argv) == expected


def test_model_group_for_a_genotype_file(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"genotype": genotype_to_dict(load_genotype("mnasnet_a1"))}))
    assert model_group_for([f"genotype={path}"]) == "model=mobile"
    assert model_group_for([f"genotype={tmp_path}"]) == "model=mobile"  # a run folder


def test_train_py_builds_a_mobile_genotype_without_model_override(tmp_path):
    """The whole command line, as a user types it (no training: eval of 1 batch fails fast)."""
    cmd = [
        sys.executable, "train.py", "genotype=mobilenetv3_small", "dataset=embedded",
        "train_logger=csv", f"run_dir={tmp_path}", "recipe.epochs=1", "recipe.batch_size=8",
        "dataset.val_size=64", "dataset.train_subset=16", "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "export.onnx=false",
        "model.width_mult=0.25", "num_threads=1",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["genotype"]["kind"] == "mobile"
