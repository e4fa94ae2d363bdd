"""Bad input of every kind stops a run before training, in one line naming the key."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import CONF, compose_config

from nas_lightning.checks import check_search_config, check_train_config
from nas_lightning.data import CIFAR10, CIFAR100
from nas_lightning.data.fashion_mnist import FashionMNIST
from nas_lightning.entry import check_overrides, one_line_errors
from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import genotype_from_dict, genotype_to_dict, load_genotype

# -- values checked before any training ---------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("search.num_children=abc", "search.num_children"),
        ("seed=x", "seed"),
        ("child.epochs=x", "child.epochs"),
        ("search.num_threads=-1", "search.num_threads"),
        ("child.optimizer.lr=-1", "child.optimizer.lr"),
        ("child.optimizer.lr=0", "child.optimizer.lr"),
        ("child.scheduler=step", "child.scheduler"),
        ("model.filters=0", "model.filters"),
        ("model.filters=-4", "model.filters"),
        ("trainer.devices=abc", "trainer.devices"),
        ("trainer.accelerator=tpux", "trainer.accelerator"),
        ("child.label_smoothing=1.5", "child.label_smoothing"),
        ("trainer.precision=17", "trainer"),
    ],
)
def test_bad_search_values_name_their_key(override, key, tmp_path):
    cfg = compose_config("search", [f"run_dir={tmp_path}", "logger=csv", override])
    with pytest.raises(ConfigError) as info:
        check_search_config(cfg)
    assert info.value.key == key
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.num_children=true", "search.num_children: must be an integer >= 1, got True"),
        ("search.num_children=2.0", "search.num_children: must be an integer >= 1, got 2.0"),
        ("child.optimizer.lr=inf", "child.optimizer.lr: must be a number > 0, got inf"),
        ("search.failed_reward=nan", "search.failed_reward: must be a number or null, got nan"),
        ("child.batch_size=null", "child.batch_size: must be an integer >= 1, got None"),
        ("child.limit_val_batches=true", "child.limit_val_batches: must be null, a batch count "
                                         ">= 1 or a fraction in (0, 1], got True"),
        ("child.limit_val_batches=1.5", "child.limit_val_batches: must be null, a batch count "
                                        ">= 1 or a fraction in (0, 1], got 1.5"),
        ("+trainer.max_epochs=0", "trainer.max_epochs: must be an integer >= 1, got 0"),
    ],
)
def test_types_are_strict_and_the_message_says_what_the_key_may_be(override, message, tmp_path):
    cfg = compose_config("search", [f"run_dir={tmp_path}", "logger=csv", override])
    with pytest.raises(ConfigError) as info:
        check_search_config(cfg)
    assert str(info.value) == message


@pytest.mark.parametrize("override", [
    "child.eval_batch_size=null", "child.train_subset=null", "child.limit_val_batches=0.5",
    "child.limit_val_batches=3", "child.limit_val_batches=null", "search.num_threads=none",
    "search.num_threads=2", "child.gradient_clip_val=null", "child.optimizer.lr=1",
])
def test_values_in_range_pass(override, tmp_path):
    check_search_config(compose_config("search", [f"run_dir={tmp_path}", "logger=csv", override]))


def test_gpu_trainer_on_a_machine_without_cuda_is_refused(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for group in ("trainer=gpu", "trainer=gpu_bf16"):
        cfg = compose_config("search", [f"run_dir={tmp_path}", "logger=csv", group])
        with pytest.raises(ConfigError, match="trainer.accelerator: gpu needs a CUDA GPU"):
            check_search_config(cfg)
    cfg = compose_config("search", [f"run_dir={tmp_path}", "trainer.accelerator=cuda"])
    with pytest.raises(ConfigError, match="use trainer=cpu"):
        check_search_config(cfg)


def test_default_configs_pass_the_checks(tmp_path):
    check_search_config(compose_config("search", [f"run_dir={tmp_path}"]))
    check_search_config(compose_config("search", [f"run_dir={tmp_path}", "trainer=ddp",
                                                  "trainer.devices=2", "trainer.accelerator=cpu"]))
    for experiment in ("nas_rl", "nasnet", "mnasnet", "mobilenetv3_small"):
        check_search_config(compose_config("search", [f"run_dir={tmp_path}",
                                                      f"experiment={experiment}"]))
    check_train_config(compose_config("train", [f"run_dir={tmp_path}"]))


def test_a_subset_without_one_full_batch_per_rank_is_refused_before_any_child(tmp_path):
    cfg = compose_config("search", [f"run_dir={tmp_path}", "logger=csv",
                                    "child.train_subset=64", "child.batch_size=128"])
    with pytest.raises(ConfigError) as info:
        check_search_config(cfg)
    assert str(info.value) == (
        "dataset.batch_size: 64 training images make no full batch of 128: lower the batch "
        "size (recipe.batch_size, child.batch_size) or train on more images")
    # Under DDP every rank needs a full batch: 200 images are one batch of 128, not two.
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
           "child.batch_size=128"]
    with pytest.raises(ConfigError, match="200 training images make no full batch of 128 "
                                          "on each of 2 ranks"):
        check_search_config(compose_config("search", [f"run_dir={tmp_path}", *ddp,
                                                      "child.train_subset=200"]))
    check_search_config(compose_config("search", [f"run_dir={tmp_path}", *ddp,
                                                  "child.train_subset=256"]))
    check_search_config(compose_config("search", [f"run_dir={tmp_path}",
                                                  "child.train_subset=128",
                                                  "child.batch_size=128"]))
    train = [f"run_dir={tmp_path}", "dataset.train_subset=64", "recipe.batch_size=128"]
    with pytest.raises(ConfigError, match="64 training images make no full batch of 128"):
        check_train_config(compose_config("train", train))
    check_train_config(compose_config("train", [*train, "eval_only=true"]))  # trains nothing


def test_run_search_refuses_before_building_anything(tiny_search_cfg, tmp_path):
    from nas_lightning.search.loop import run_search

    with pytest.raises(ConfigError, match="child.optimizer.lr"):
        run_search(tiny_search_cfg("child.optimizer.lr=-1"))
    assert not (tmp_path / "run" / "children.jsonl").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("recipe.epochs=0", "recipe.epochs"),
        ("seed=x", "seed"),
        ("num_threads=0", "num_threads"),
        ("recipe.optimizer.lr=-0.1", "recipe.optimizer.lr"),
        ("recipe.drop_path=1", "recipe.drop_path"),
    ],
)
def test_bad_train_values_name_their_key(override, key, tmp_path):
    from nas_lightning.training import run_train

    cfg = compose_config("train", [f"run_dir={tmp_path}", "train_logger=csv", override])
    with pytest.raises(ConfigError) as info:
        run_train(cfg)
    assert info.value.key == key
    assert not (tmp_path / "checkpoints").exists()


# -- unknown keys and groups on the command line ------------------------------


@pytest.mark.parametrize(
    "name, argv, expected",
    [
        ("search", ["controler.hidden=100"], "did you mean 'controller.hidden'?"),
        ("train", ["logger=csv"], "unknown config group 'logger' for train.py; "
                                  "did you mean 'train_logger'?"),
        ("train", ["recipe.epoch=3"], "did you mean 'recipe.epochs'?"),
        ("search", ["dataset=cifar"], "dataset=cifar: no such option in conf/dataset/; "
                                      "choose one of: cifar10, cifar100"),
        ("search", ["search.num_children=[1"], "cannot parse the overrides"),
    ],
)
def test_unknown_overrides_get_one_line_with_the_close_key(name, argv, expected, capsys):
    with pytest.raises(SystemExit) as info:
        check_overrides(name, argv, CONF)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert expected in err


def test_a_key_the_chosen_space_does_not_use_is_never_suggested_as_itself(capsys):
    with pytest.raises(SystemExit) as info:
        check_overrides("search", ["experiment=mnasnet", "model.filters=4"], CONF)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'model.filters'" not in err and "\n" not in err
    assert "'model.filters' is not used by search.py with experiment=mnasnet" in err


def test_good_overrides_and_hydra_flags_pass(capsys):
    check_overrides("search", ["controller.hidden=50", "logger=csv", "+extra.key=1"], CONF)
    check_overrides("search", ["-m", "controller.hidden=50,100"], CONF)  # left to Hydra
    check_overrides("train", ["train_logger=csv", "genotype=nasnet_a"], CONF)
    assert capsys.readouterr().err == ""


# -- one line for errors from the file system and the input files -------------


def _exits_with(func, capsys, status: int = 2) -> str:
    with pytest.raises(SystemExit) as info:
        one_line_errors(func)()
    assert info.value.code == status
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_read_only_or_full_disk_is_one_line_with_the_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")

    def write_under_a_file():
        (blocker / "config.yaml").write_text("x")

    assert str(blocker / "config.yaml") in _exits_with(write_under_a_file, capsys)

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "children.jsonl"))

    err = _exits_with(full_disk, capsys, status=75)  # not the command's fault: requeue
    assert "no space left on device" in err and "children.jsonl" in err


def test_broken_yaml_and_corrupt_pickles_are_one_line(tmp_path, capsys):
    from omegaconf import OmegaConf

    bad = tmp_path / "config.yaml"
    bad.write_text("search: [unclosed\n  seed: {")
    assert f"{bad}:2: YAML does not parse" in _exits_with(lambda: OmegaConf.load(bad), capsys)
    assert "empty or corrupt" in _exits_with(lambda: pickle.loads(b""), capsys)


def test_bugs_keep_their_traceback():
    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        one_line_errors(bug)()


# -- genotype files: real integers, known keys, sane nesting ------------------


def _nasnet_a() -> dict:
    return genotype_to_dict(load_genotype("nasnet_a"))


@pytest.mark.parametrize("bad", ["0", 1.9, True, None])
def test_genotype_indices_must_be_real_integers(bad):
    data = _nasnet_a()
    data["normal"]["blocks"][0]["inputs"][0] = bad
    with pytest.raises(GenotypeError, match="must be an integer"):
        genotype_from_dict(data)
    data = _nasnet_a()
    data["reduction"]["concat"][0] = bad
    with pytest.raises(GenotypeError, match="must be an integer"):
        genotype_from_dict(data)


@pytest.mark.parametrize(
    "where, key",
    [((), "normall"), (("normal",), "blockz"), (("normal", "blocks", 0), "opz")],
)
def test_unknown_genotype_keys_are_named(where, key):
    data = _nasnet_a()
    node = data
    for step in where:
        node = node[step]
    node[key] = 1
    with pytest.raises(GenotypeError, match=repr(key)):
        genotype_from_dict(data)


def test_other_genotype_kinds_are_strict_too():
    nas_rl = {"kind": "nas_rl", "layers": [{"filter_height": 3, "filter_width": 3,
                                            "filters": 24, "stride": 1, "inputs": []}]}
    genotype_from_dict(nas_rl)
    with pytest.raises(GenotypeError, match="'extra'"):
        genotype_from_dict({**nas_rl, "extra": 1})
    bad = json.loads(json.dumps(nas_rl))
    bad["layers"][0]["filters"] = 24.0
    with pytest.raises(GenotypeError, match="integer"):
        genotype_from_dict(bad)
    mobile = genotype_to_dict(load_genotype("mobilenetv3_small"))
    with pytest.raises(GenotypeError, match="efficient_head"):
        genotype_from_dict({**mobile, "efficient_head": "yes"})
    with pytest.raises(GenotypeError, match="unknown"):
        genotype_from_dict({**mobile, "stagez": []})


def test_deeply_nested_genotype_file_is_a_genotype_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(GenotypeError, match="nested too deeply"):
        load_genotype(str(path))


# -- datasets: checksums before unpickling, downloads that fail ----------------


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.target),))

    target = ""


def _cifar_files(root: Path, cls, payload=None) -> Path:
    folder = root / cls.folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cls.train_files + cls.test_files:
        batch = {b"data": rng.integers(0, 255, (8, 3072), dtype=np.uint8),
                 cls.label_key: [int(i) for i in rng.integers(0, 10, 8)]}
        if payload is not None:
            batch[b"payload"] = payload
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


@pytest.mark.parametrize("cls", [CIFAR10, CIFAR100])
def test_planted_cifar_file_is_refused_before_unpickling(tmp_path, cls):
    marker = tmp_path / "code_ran"
    _Boom.target = str(marker)
    _cifar_files(tmp_path, cls, payload=_Boom())
    dm = cls(data_dir=str(tmp_path), download=False, val_size=4)
    with pytest.raises(ConfigError, match="MD5 differs") as info:
        dm.setup()
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # Without the checksum test, the restricted unpickler still runs no code.
    dm = cls(data_dir=str(tmp_path), download=False, verify_checksums=False, val_size=4)
    with pytest.raises(ConfigError, match="not allowed in a CIFAR batch"):
        dm.setup()
    assert not marker.exists()


def test_cifar_download_failing_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    dm = CIFAR10(data_dir=str(tmp_path), download=True)
    with pytest.raises(ConfigError) as info:
        dm.setup()
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "dataset=embedded" in message


def test_fashion_mnist_download_failing_offline_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tv_datasets

    def offline(root, train=True, download=False):
        (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tv_datasets, "FashionMNIST", offline)
    dm = FashionMNIST(data_dir=str(tmp_path / "fm"), download=True)
    with pytest.raises(ConfigError, match="dataset=embedded") as info:
        dm.setup()
    assert "\n" not in str(info.value) and str(tmp_path / "fm") in str(info.value)
    assert not (tmp_path / "fm" / "FashionMNIST").exists()  # no empty folders left behind


# -- through the entry script ---------------------------------------------------


@pytest.mark.slow
def test_search_py_reports_a_corrupt_strategy_file_in_one_line(tiny_search_cfg, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    from nas_lightning.search.loop import run_search

    run = tmp_path / "run"
    run_search(tiny_search_cfg("search.num_children=1"))
    (run / "strategy.pt").write_bytes(b"garbage")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "search.py"), f"resume={run}", "search.num_children=2"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: resume: ")
    assert str(run / "strategy.pt") in lines[0]


# -- W&B never stops a run -------------------------------------------------------


class _FakeRun:
    """A W&B run whose ``log`` raises from call ``fail_at`` on (the service died)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.id, self.fail_at, self.logged, self.summary = "fake", fail_at, [], {}

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def log(self, row) -> None:
        if self.fail_at is not None and len(self.logged) + 1 >= self.fail_at:
            raise ConnectionResetError("wandb service process died")
        self.logged.append(row)

    def finish(self, *args, **kwargs) -> None:
        pass


def _no_credentials(monkeypatch, tmp_path) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))


def test_wandb_online_without_a_key_logs_offline(tmp_path, monkeypatch, caplog):
    from nas_lightning.search.loggers import WandbSearchLogger

    _no_credentials(monkeypatch, tmp_path)
    logger = WandbSearchLogger(mode="online")
    logger.start(tmp_path, {"seed": 0})  # a real (offline) W&B run
    logger.log_child({"index": 0, "reward": 0.5, "status": "ok"}, {})
    logger.finish(tmp_path, [], None)
    assert [r.message for r in caplog.records if "no API key" in r.message]
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_wandb_unreachable_server_falls_back_quickly(tmp_path, monkeypatch, caplog):
    import time

    from nas_lightning.search.loggers import WandbSearchLogger

    _no_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    logger = WandbSearchLogger(mode="online", init_timeout=2)
    start = time.perf_counter()
    logger.start(tmp_path, {})
    assert time.perf_counter() - start < 30
    assert logger.run is not None or logger.fallback is not None
    logger.log_child({"index": 0, "reward": 0.5, "status": "ok"}, {})
    logger.finish(tmp_path, [], None)
    assert [r.message for r in caplog.records if "did not start" in r.message]


def test_wandb_that_cannot_start_at_all_falls_back_to_csv(tmp_path, monkeypatch, caplog):
    import wandb

    from nas_lightning.search.loggers import WandbSearchLogger

    modes = []

    def broken_init(**kwargs):
        modes.append(kwargs["mode"])
        raise wandb.errors.CommError("network unreachable")

    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setattr(wandb, "init", broken_init)
    logger = WandbSearchLogger(mode="online")
    logger.start(tmp_path, {})
    assert modes == ["online", "offline"]
    logger.log_child({"index": 0, "reward": 0.5, "status": "ok"}, {})
    logger.finish(tmp_path, [], None)
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 2
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 2


def test_a_search_survives_wandb_dying_mid_run(tiny_search_cfg, tmp_path, monkeypatch, caplog):
    import wandb

    from nas_lightning.search.loop import run_search

    run = _FakeRun(fail_at=2)
    monkeypatch.setattr(wandb, "init", lambda **kwargs: run)
    result = run_search(tiny_search_cfg("logger=wandb", "search.num_children=3"))
    assert [r["status"] for r in result.records] == ["ok"] * 3
    assert len(run.logged) == 1  # off after the failure
    warnings = [r.message for r in caplog.records if "W&B logging is off" in r.message]
    assert len(warnings) == 1 and "\n" not in warnings[0]


def test_the_wandb_log_fault_point_raises_once_and_the_logger_goes_on(monkeypatch, caplog):
    """``NAS_LIGHTNING_FAULT=wandb.log:2`` (the fault suite's W&B outage) fails the 2nd log."""
    from nas_lightning.core import records
    from nas_lightning.search.loggers import WandbSearchLogger

    monkeypatch.setattr(records, "_fault_counts", {})
    monkeypatch.setenv("NAS_LIGHTNING_FAULT", "wandb.log:2")
    logger = WandbSearchLogger(mode="offline")
    logger.run = run = _FakeRun()
    for index in range(3):
        logger.log_child({"index": index, "reward": 0.5, "status": "ok"}, {})
    assert [row["child/index"] for row in run.logged] == [0]
    assert logger.run is None
    assert [r.message for r in caplog.records if "fault injected at wandb.log:2" in r.message]


def test_train_logger_falls_back_when_wandb_cannot_start(tmp_path, monkeypatch):
    import wandb
    from pytorch_lightning.loggers import CSVLogger

    from nas_lightning.training.loggers import wandb_logger

    def broken_init(**kwargs):
        raise wandb.errors.CommError("network unreachable")

    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setattr(wandb, "init", broken_init)
    assert isinstance(wandb_logger(tmp_path, mode="online"), CSVLogger)


# -- DDP for every NASNet child ----------------------------------------------------

# No block reads input 1 (h_i): every cell's preprocessing of it gets no gradient.
ONE_INPUT = {
    "kind": "nasnet",
    "normal": {"blocks": [
        {"inputs": [0, 0], "ops": ["conv_3x3", "identity"], "combine": "add"},
        {"inputs": [2, 0], "ops": ["sep_conv_3x3", "avg_pool_3x3"], "combine": "add"}]},
    "reduction": {"blocks": [
        {"inputs": [0, 0], "ops": ["conv_3x3", "max_pool_3x3"], "combine": "add"},
        {"inputs": [2, 0], "ops": ["identity", "conv_1x1"], "combine": "add"}]},
}


def test_a_one_input_genotype_leaves_parameters_unused_and_ddp_finds_them(tmp_path):
    import torch

    from nas_lightning.core.builders import build
    from nas_lightning.models import NASNetwork

    net = NASNetwork(genotype_from_dict(ONE_INPUT), 1, 10, filters=4, cells_per_stage=1)
    net(torch.randn(2, 1, 28, 28)).sum().backward()
    assert any(p.grad is None for p in net.parameters())
    cfg = compose_config(
        "search", [f"run_dir={tmp_path}", "trainer=ddp", "trainer.accelerator=cpu"]
    )
    trainer = build(cfg.trainer, "trainer")(logger=False, enable_checkpointing=False)
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True


@pytest.mark.slow
def test_ddp_on_cpu_trains_a_child_with_unused_parameters(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    genotype = tmp_path / "one_input.json"
    genotype.write_text(json.dumps(ONE_INPUT))
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"genotype={genotype}", "dataset=embedded",
         "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "recipe.epochs=1",
         "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "export.onnx=false", "train_logger=csv",
         "model.filters=4", "model.cells_per_stage=1", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={run}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 3 and summary["test_acc"] is not None


def test_train_logger_survives_wandb_dying_mid_training(tmp_path, monkeypatch, caplog):
    from pytorch_lightning.loggers import WandbLogger

    from nas_lightning.training.loggers import SafeWandbLogger

    def dead(self, *args, **kwargs):
        raise ConnectionResetError("wandb service process died")

    monkeypatch.setattr(WandbLogger, "log_metrics", dead)
    logger = SafeWandbLogger(save_dir=str(tmp_path), mode="disabled")
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_metrics({"train/loss": 0.5}, step=1)
    warnings = [r.message for r in caplog.records if "W&B logging is off" in r.message]
    assert len(warnings) == 1


def test_a_target_that_fails_to_import_names_the_cause(tmp_path, monkeypatch):
    """A broken install (torch and torchvision from different builds) fails at
    import: the one line says why, not only which target."""
    from nas_lightning.core.builders import build

    (tmp_path / "broken_dependency.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        build({"_target_": "broken_dependency.Trainer"}, "trainer")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("trainer: Error loading 'broken_dependency.Trainer':")
    assert "operator torchvision::nms does not exist" in message
    assert isinstance(info.value.__cause__, Exception)  # the traceback keeps the cause


def test_a_rejected_config_leaves_no_run_folder_behind(tmp_path):
    from nas_lightning.cli import search_task

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)  # what Hydra writes before the task starts
    (run / ".hydra" / "config.yaml").write_text("{}\n")
    (run / "search.log").write_text("")
    cfg = compose_config("search", ["logger=csv", "controller.hidden=0"])
    cfg.run_dir = str(run)
    with pytest.raises(SystemExit) as done:
        search_task(cfg)
    assert done.value.code == 2
    assert not run.exists()


def test_a_rejected_config_keeps_a_folder_that_held_other_files(tmp_path):
    from nas_lightning.cli import search_task

    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("the user's own file")
    cfg = compose_config("search", ["logger=csv", "controller.hidden=0"])
    cfg.run_dir = str(run)
    with pytest.raises(SystemExit):
        search_task(cfg)
    assert (run / "notes.txt").read_text() == "the user's own file"
