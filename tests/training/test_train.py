"""train.py: tiny end-to-end trainings, resume, eval-only, errors, NASNet-A's size and cost."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from pytorch_lightning.callbacks import Callback
from torch.utils.flop_counter import FlopCounterMode

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import NASNET_A, genotype_to_dict, named_genotypes
from nas_lightning.models.nasnet import NASNetwork
from nas_lightning.models.profile import count_macs, count_params
from nas_lightning.spaces.nasnet import NASNetSpace
from nas_lightning.training import read_checkpoint_architecture, run_train
from nas_lightning.training.run import build_network

TINY_NASNET = ["model.filters=4", "model.cells_per_stage=1", "model.stem_stride=2"]
TINY = [
    "dataset=embedded",
    "train_logger=csv",
    "recipe.epochs=1",
    "recipe.batch_size=16",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "export.check_batch=4",
]


def make_cfg(run_dir: Path, *overrides: str, tiny_nasnet: bool = True):
    tiny = [*TINY, *TINY_NASNET] if tiny_nasnet else TINY
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*tiny, f"run_dir={run_dir}", *overrides])


class StepLosses(Callback):
    """Records every training step's loss and the drop-path probability in use."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.drop_probs: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.drop_probs.append(pl_module.net.cells[0].drop_prob)


class StopAfterFirstEpoch(Callback):
    """Simulates an interruption at the end of the first epoch."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, dict]:
    """A searched genotype as a search's best.json, trained for a few batches."""
    root = tmp_path_factory.mktemp("searched")
    space = NASNetSpace(num_blocks=3)
    genotype = space.decode(space.sample(random.Random(3)))
    best = {"index": 4, "reward": 0.5, "genotype": genotype_to_dict(genotype)}
    (root / "best.json").write_text(json.dumps(best))
    summary = run_train(make_cfg(root / "run", f"genotype={root / 'best.json'}"))
    return root / "run", summary


def test_searched_genotype_trains_end_to_end(searched) -> None:
    run, summary = searched
    for name in (
        "summary.json",
        "genotype.json",
        "config.yaml",
        "model.onnx",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
        "architecture.png",
    ):
        assert (run / name).is_file(), name
    card = json.loads((run / "summary.json").read_text())
    assert card["kind"] == "nasnet" and card["task"] == "train"
    assert card["genotype"] == json.loads((run / "genotype.json").read_text())
    assert 0.0 <= card["test_acc"] <= 1.0 and card["global_step"] == 2
    assert card["macs"] > 0 and card["params"] == card["params_train"] > 0
    assert card["onnx"]["ok"] and card["onnx"]["max_abs_diff"] <= 1e-4
    assert card["checkpoints"]["last"].endswith("last.ckpt")
    # Checkpoints are plain data: loadable with weights_only=True, architecture inside.
    arch = read_checkpoint_architecture(run / "checkpoints" / "last.ckpt")
    assert arch["genotype"] == card["genotype"] and arch["model"]["filters"] == 4


def test_eval_only_reproduces_the_test_accuracy(searched, tmp_path) -> None:
    run, summary = searched
    ckpt = run / "checkpoints" / "best.ckpt"
    # The genotype and model options of this command are ignored: the checkpoint's count.
    cfg = make_cfg(
        tmp_path, "eval_only=true", f"ckpt_path={ckpt}", "model.filters=8", "export.onnx=false"
    )
    card = run_train(cfg)
    assert card["task"] == "eval" and card["genotype"] == summary["genotype"]
    assert card["test_acc"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert card["params"] == summary["params"] and card["macs"] == summary["macs"]


def test_nasnet_a_with_the_full_recipe(tmp_path) -> None:
    steps = StepLosses()
    cfg = make_cfg(
        tmp_path,
        "genotype=nasnet_a",
        "recipe.aux_weight=0.4",
        "recipe.drop_path=0.3",
        "recipe.cutout=8",
        "recipe.label_smoothing=0.1",
        "trainer.limit_train_batches=3",
        "export.onnx=false",
    )
    card = run_train(cfg, callbacks=[steps])
    assert card["model"]["auxiliary"] is True
    assert card["params"] < card["params_train"]  # the auxiliary head is training-only
    assert card["onnx"] is None and not (tmp_path / "model.onnx").exists()
    # Drop-path grows linearly with the step: 0, 0.1, 0.2 over 3 steps to 0.3.
    assert steps.drop_probs == pytest.approx([0.0, 0.1, 0.2])
    assert all(math.isfinite(x) for x in steps.losses)


def test_resume_gives_the_same_next_step_loss(tmp_path) -> None:
    opts = [
        "recipe.epochs=2",
        "recipe.aux_weight=0.4",
        "recipe.drop_path=0.2",
        "recipe.cutout=8",
        "dataset.augment=true",
        "export.onnx=false",
        "trainer.limit_test_batches=1",
    ]
    whole = StepLosses()
    run_train(make_cfg(tmp_path / "whole", *opts), callbacks=[whole])
    first = StepLosses()
    run_train(make_cfg(tmp_path / "first", *opts), callbacks=[first, StopAfterFirstEpoch()])
    assert first.losses == whole.losses[:2]
    rest = StepLosses()
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    card = run_train(make_cfg(tmp_path / "rest", *opts, f"ckpt_path={last}"), callbacks=[rest])
    assert card["resumed_from"] == str(last) and card["global_step"] == 4
    assert len(rest.losses) == 2
    assert rest.losses == pytest.approx(whole.losses[2:], rel=1e-6, abs=1e-7)


def test_resume_refuses_another_architecture(searched, tmp_path) -> None:
    run, _ = searched
    cfg = make_cfg(tmp_path, "genotype=nasnet_a", f"ckpt_path={run / 'checkpoints/last.ckpt'}")
    with pytest.raises(ConfigError, match="ckpt_path: the checkpoint was trained on another"):
        run_train(cfg)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"kind": "resnet"}', "unknown genotype kind 'resnet'"),
        ('{"kind": "nasnet", "normal": {"blocks": []}}', "a cell needs at least one block"),
        (
            json.dumps(
                {
                    "kind": "nasnet",
                    "normal": {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]}]},
                }
            ),
            "malformed nasnet genotype: 'reduction'",
        ),
        (
            json.dumps(
                {
                    "kind": "nasnet",
                    "normal": {"blocks": [{"inputs": [0, 5], "ops": ["identity", "identity"]}]},
                    "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]}]},
                }
            ),
            "input_b=5 must be in 0..1",
        ),
    ],
)
def test_bad_genotype_files_give_a_one_line_error(tmp_path, text, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GenotypeError, match=message) as err:
        run_train(make_cfg(tmp_path, f"genotype={path}"))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_unknown_op_and_wrong_model_kind_are_config_errors(tmp_path) -> None:
    bad_op = genotype_to_dict(NASNET_A)
    bad_op["normal"]["blocks"][0]["ops"][0] = "sep_conv_9x9"
    path = tmp_path / "op.json"
    path.write_text(json.dumps(bad_op))
    with pytest.raises(GenotypeError, match="normal cell: unknown op 'sep_conv_9x9'"):
        run_train(make_cfg(tmp_path, f"genotype={path}"))
    with pytest.raises(ConfigError, match="add model=mobile"):
        run_train(make_cfg(tmp_path, "genotype=mnasnet_a1"))
    with pytest.raises(ConfigError, match="eval_only=true needs ckpt_path"):
        run_train(make_cfg(tmp_path, "eval_only=true"))


class Payload:
    """Any pickled object that is not plain data."""


def test_checkpoints_load_with_weights_only(tmp_path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"architecture": Payload()}}, path)
    with pytest.raises(ConfigError, match="not a weights-only checkpoint"):
        read_checkpoint_architecture(path)


@pytest.mark.slow
def test_cli_reports_a_bad_genotype_in_one_line(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"kind": "nasnet"')
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"genotype={path}",
            f"hydra.run.dir={tmp_path}",
            "train_logger=csv",
            "dataset=embedded",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {path}: not valid JSON")


# -- NASNet-A's size and cost -----------------------------------------------------------------


def hand_count_macs(
    genotype,
    c_in: int,
    size: int,
    filters: int,
    n: int,
    stem_mult: int = 3,
    num_classes: int = 10,
    stages: int = 3,
) -> int:
    """Multiply-adds of a NASNet by hand, from the paper's cell definition.

    Stem: 3x3 conv. Each cell: a 1x1 conv on each input (after a reduction
    cell, h_{i-1} gets a factorized reduction instead: two half-width 1x1
    stride-2 convs, the same count); a separable kxk op is (depthwise kxk + pointwise) twice;
    identity with stride 2 is a factorized reduction; pools and adds cost
    nothing. Classifier: one linear layer.
    """
    total = size * size * c_in * 9 * stem_mult * filters
    c_pp = c_p = stem_mult * filters
    c, h = filters, size
    cells = []
    for stage in range(stages):
        if stage:
            cells.append("reduction")
        cells += ["normal"] * n
    for kind in cells:
        reduction = kind == "reduction"
        if reduction:
            c *= 2
        cell = genotype.reduction if reduction else genotype.normal
        total += h * h * c_pp * c + h * h * c_p * c  # pre0 (plain or factorized), pre1
        h_out = h // 2 if reduction else h
        for block in cell.blocks:
            for op, src in ((block.op_a, block.input_a), (block.op_b, block.input_b)):
                stride = 2 if reduction and src < 2 else 1
                if op.startswith("sep_conv"):
                    k = int(op[-1])
                    total += 2 * (h_out * h_out * c * k * k + h_out * h_out * c * c)
                elif op == "identity" and stride == 2:
                    total += h_out * h_out * c * c
                else:
                    assert op in ("identity", "avg_pool_3x3", "max_pool_3x3"), op
        c_pp, c_p = c_p, len(cell.concat) * c
        h = h_out
    return total + c_p * num_classes


def flop_counter_macs(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def test_nasnet_a_macs_match_the_hand_count() -> None:
    net = NASNetwork(NASNET_A, in_channels=3, num_classes=10, filters=8, cells_per_stage=1)
    hand = hand_count_macs(NASNET_A, 3, 32, filters=8, n=1)
    assert count_macs(net, (3, 32, 32)) == hand
    assert flop_counter_macs(net, (3, 32, 32)) == hand


def test_nasnet_a_6_at_768_for_cifar10(tmp_path) -> None:
    cfg = make_cfg(
        tmp_path,
        "genotype=nasnet_a",
        "dataset=cifar10",
        "model.filters=32",
        "model.cells_per_stage=6",
        "model.stem_stride=1",
    )
    genotype, net, arch, _ = build_network(cfg)
    params, macs = count_params(net), count_macs(net, (3, 32, 32))
    print(f"NASNet-A 6@768 CIFAR-10: {params} params, {macs} multiply-adds")
    assert net.out_channels == 768
    assert abs(params - 3.3e6) / 3.3e6 < 0.05
    assert macs == hand_count_macs(NASNET_A, 3, 32, filters=32, n=6)


@pytest.mark.parametrize("name", sorted(named_genotypes()))
def test_every_named_genotype_builds_through_its_kinds_model_config(tmp_path, name) -> None:
    kind = named_genotypes()[name].kind
    assert (CONF / "model" / f"{kind}.yaml").is_file(), f"no conf/model/{kind}.yaml"
    cfg = make_cfg(tmp_path, f"genotype={name}", f"model={kind}", tiny_nasnet=False)
    genotype, net, arch, _ = build_network(cfg)
    assert genotype == named_genotypes()[name]
    assert arch["model"] == {k: v for k, v in cfg.model.items() if k != "kind"}
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_flip_test_time_augmentation_averages_the_mirror_images_softmax(tmp_path) -> None:
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from nas_lightning.child import ChildModule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.randn(64, 3, 4, 4), torch.randint(0, 5, (64,))
    module = ChildModule(net, 5, channels_last=False, test_flip=True)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         default_root_dir=tmp_path, accelerator="cpu")
    [result] = trainer.test(module, DataLoader(TensorDataset(x, y), batch_size=16), verbose=False)
    with torch.no_grad():
        plain = net(x)
        mean = (plain.softmax(-1) + net(torch.flip(x, dims=[-1])).softmax(-1)) / 2
    assert result["test/acc"] == pytest.approx(float((plain.argmax(-1) == y).float().mean()))
    assert result["test/acc_flip"] == pytest.approx(float((mean.argmax(-1) == y).float().mean()))
    assert result["test/acc_flip"] != result["test/acc"]  # the mirror images count


def test_eval_only_reports_the_flip_accuracy_beside_the_plain_one(searched, tmp_path) -> None:
    run, summary = searched
    assert summary["test_acc_flip"] is None  # off by default
    cfg = make_cfg(tmp_path, "eval_only=true", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
                   "export.onnx=false", "recipe.test_flip=true")
    card = run_train(cfg)
    assert card["test_acc"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert 0.0 <= card["test_acc_flip"] <= 1.0
