"""Performance options are wired, off by default, and timing leaves a record.

No timed assertions here: speed is measured by ``benchmarks/perf.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_config

from nas_lightning.data import EmbeddedFashionMNIST
from nas_lightning.errors import ConfigError
from nas_lightning.execution.evaluator import compile_mode
from nas_lightning.search.loop import run_search

PHASES = ("build", "probe", "init", "setup", "train", "val", "other")


def test_compile_and_channels_last_defaults():
    cfg = compose_config("search", ["run_dir=/tmp/unused"])
    assert cfg.child.compile is False  # off: compiling costs minutes per child on a CPU
    assert cfg.child.channels_last is True
    assert cfg.trainer.precision == "32-true"


@pytest.mark.parametrize(
    ("value", "mode"),
    [(False, None), (None, None), (True, "default"), ("reduce-overhead", "reduce-overhead")],
)
def test_compile_mode_accepts(value, mode):
    assert compile_mode(value) == mode


@pytest.mark.parametrize("value", ["fast", 1, "yes"])
def test_compile_mode_rejects(value):
    with pytest.raises(ConfigError, match="child.compile"):
        compile_mode(value)


def test_bad_compile_value_stops_the_search_before_training(tiny_search_cfg, tmp_path):
    with pytest.raises(ConfigError, match="child.compile"):
        run_search(tiny_search_cfg("child.compile=fast", "search.num_children=1"))
    assert not (tmp_path / "run" / "children.jsonl").exists()


def test_compile_option_compiles_each_child_net(tiny_search_cfg, monkeypatch):
    seen: list[tuple[str, str]] = []

    def fake_compile(self, *args, **kwargs):  # a real compile takes minutes on a CPU
        seen.append((type(self).__name__, kwargs.get("mode")))

    monkeypatch.setattr(torch.nn.Module, "compile", fake_compile)
    run_search(tiny_search_cfg("child.compile=max-autotune", "search.num_children=1"))
    assert seen == [("NASNetwork", "max-autotune")]


def test_gpu_precision_presets_compose():
    gpu = compose_config("search", ["run_dir=/tmp/unused", "trainer=gpu"])
    bf16 = compose_config("search", ["run_dir=/tmp/unused", "trainer=gpu_bf16"])
    assert gpu.trainer.precision == "16-mixed"
    assert bf16.trainer.precision == "bf16-mixed" and bf16.trainer.accelerator == "gpu"


def test_records_carry_their_time_split(tiny_search_cfg, monkeypatch):
    from nas_lightning.execution.evaluator import LightningEvaluator

    fits: list[int] = []
    compiled: list[object] = []

    class Counter(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            fits.append(trainer.global_step)

    original = LightningEvaluator.__init__

    def with_counter(self, *args, **kwargs):
        original(self, *args, callbacks=[Counter()], **kwargs)

    monkeypatch.setattr(LightningEvaluator, "__init__", with_counter)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **k: compiled.append(self))
    result = run_search(tiny_search_cfg())
    assert fits == [0, 0]  # extra callbacks reach every child's Trainer
    assert compiled == []  # compile is off by default
    for record in result.records:
        timing = record["extra"]["timing"]
        assert set(timing) == {*PHASES, "train_steps"}
        assert all(timing[k] >= 0 for k in PHASES)
        assert timing["train"] > 0 and timing["val"] > 0
        # 256 images, batch 64, last batch dropped: 4 steps
        assert timing["train_steps"] == 4
        # the split covers the child up to its record, which is written last
        assert sum(timing[k] for k in PHASES) <= record["seconds"] + 1e-3
    # the reward never saw the timing: it is the validation accuracy
    assert all(r["reward"] == r["val_acc"] for r in result.records)


def test_timing_does_not_change_the_search(tiny_search_cfg, tmp_path, monkeypatch):
    from nas_lightning.execution import evaluator

    a = run_search(tiny_search_cfg("seed=5", run_dir=tmp_path / "a"))

    class NoTimer(pl.Callback):  # the same search without the timer's hooks
        def __init__(self):
            self.train = self.val = 0.0
            self.steps, self.first_batch = 0, None

    monkeypatch.setattr(evaluator, "ChildTimer", NoTimer)
    b = run_search(tiny_search_cfg("seed=5", run_dir=tmp_path / "b"))
    assert [r["actions"] for r in a.records] == [r["actions"] for r in b.records]
    assert [r["val_acc"] for r in a.records] == [r["val_acc"] for r in b.records]


def test_eval_batch_size_batches_validation_only():
    dm = EmbeddedFashionMNIST(batch_size=128, val_size=2000, eval_batch_size=500)
    assert [len(i) for i in dm.val_dataloader().sampler] == [500] * 4
    assert {len(i) for i in dm.train_dataloader().sampler} == {128}
    assert [len(i) for i in dm.test_dataloader().sampler] == [500] * 4
    dm.trainer = SimpleNamespace(global_rank=3, world_size=8)  # every rank keeps a batch
    assert [len(i) for i in dm.val_dataloader().sampler] == [250]
    same = EmbeddedFashionMNIST(batch_size=128, val_size=2000)
    assert [len(i) for i in same.val_dataloader().sampler] == [128] * 15 + [80]  # as training


@pytest.mark.parametrize("value", [0, 2.5, "big"])
def test_bad_eval_batch_size(value):
    with pytest.raises(ConfigError, match="eval_batch_size"):
        EmbeddedFashionMNIST(eval_batch_size=value)


def test_child_recipe_sets_the_eval_batch_size(tiny_search_cfg, tmp_path):
    from nas_lightning.execution.evaluator import LightningEvaluator

    cfg = compose_config("search", ["run_dir=/tmp/unused"])
    assert cfg.child.eval_batch_size == 500

    def evaluator_dm(*overrides):
        child = compose_config("search", ["run_dir=/tmp/unused", *overrides]).child
        dm = EmbeddedFashionMNIST(batch_size=128)
        LightningEvaluator(dm, None, None, child, tmp_path)
        return dm

    assert evaluator_dm().eval_batch_size == 500
    # a limit counted in batches keeps training-size batches (debug=fast keeps its cost)
    assert evaluator_dm("child.limit_val_batches=2").eval_batch_size is None
    assert evaluator_dm("child.limit_val_batches=0.5").eval_batch_size == 500
    assert evaluator_dm("child.eval_batch_size=null").eval_batch_size is None
    with pytest.raises(ConfigError, match="child.eval_batch_size"):
        run_search(tiny_search_cfg("child.eval_batch_size=0"))
