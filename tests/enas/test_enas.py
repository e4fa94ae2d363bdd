"""ENAS: the supernet's sub-graphs, the alternation, the end-to-end search."""

from __future__ import annotations

import random

import pytest
import torch

from nas_lightning.enas.supernet import Supernet, copy_weights, weight_pairs
from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes.nasnet import NASNET_A
from nas_lightning.models.nasnet import NASNetwork
from nas_lightning.spaces.nasnet import NASNetSpace

ENAS_OPS = ["identity", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]
LAYOUT = dict(
    in_channels=1,
    num_classes=10,
    filters=4,
    cells_per_stage=1,
    num_reductions=2,
    stem_multiplier=2,
    stem_stride=1,
)


def _randomize(net: torch.nn.Module, seed: int) -> None:
    """Distinct values in every parameter and BatchNorm statistic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict(keep_vars=True).items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)


def _space_genotypes(space: NASNetSpace, n: int, seed: int):
    rng = random.Random(seed)
    return [space.decode([rng.randrange(d.size) for d in space.decisions]) for _ in range(n)]


@pytest.mark.parametrize(
    "combines, share_inputs", [(("add",), False), (("add", "concat"), False), (("add",), True)]
)
def test_sub_graph_equals_the_standalone_network(combines, share_inputs):
    space = NASNetSpace(num_blocks=3, ops=ENAS_OPS, combines=combines)
    supernet = Supernet(3, ENAS_OPS, combines, **LAYOUT, share_inputs=share_inputs).eval()
    x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    for i, genotype in enumerate(_space_genotypes(space, 4, seed=len(combines))):
        net = NASNetwork(genotype, **LAYOUT).eval()
        _randomize(net, seed=i)
        copy_weights(supernet, net, genotype, into="supernet")
        with torch.no_grad():
            expected, got = net(x), supernet(x, genotype)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()
        # and back: the standalone network the supernet exports is the same function
        with torch.no_grad():
            exported = supernet.standalone(genotype).eval()(x)
        assert torch.allclose(exported, expected, rtol=1e-5, atol=1e-6)


def test_shared_inputs_hold_one_module_per_stride():
    supernet = Supernet(3, ENAS_OPS, **LAYOUT, share_inputs=True)
    reduction = next(c for c in supernet.cells if c.reduction)
    slot = reduction.ops[2][0]  # block 2, slot A: inputs 0..3
    assert slot[0] is slot[1] and slot[2] is slot[3] and slot[0] is not slot[2]
    own = Supernet(3, ENAS_OPS, **LAYOUT)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(supernet) < count(own)


def test_every_standalone_tensor_is_mapped_once():
    genotype = _space_genotypes(NASNetSpace(3, ENAS_OPS, ("add",)), 1, seed=5)[0]
    supernet, net = Supernet(3, ENAS_OPS, **LAYOUT), NASNetwork(genotype, **LAYOUT)
    mapped = {id(std) for std, _, _ in weight_pairs(supernet, net, genotype)}
    assert mapped == {id(t) for t in net.state_dict(keep_vars=True).values()}


def test_nasnet_a_with_all_ops_and_cell_inputs_in_the_output():
    ops = sorted({op for cell in (NASNET_A.normal, NASNET_A.reduction) for op in cell.ops})
    layout = dict(LAYOUT, filters=4, stem_stride=2)
    supernet = Supernet(5, ops, ("add",), **layout).eval()
    net = NASNetwork(NASNET_A, **layout).eval()
    _randomize(net, seed=1)
    copy_weights(supernet, net, NASNET_A, into="supernet")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(supernet(x, NASNET_A), net(x), rtol=1e-5, atol=1e-6)


def test_strided_sliced_conv_on_few_channels_last_channels():
    """A strided 1x1 over a few channels-last channels: a strided convolution's values, no crash."""
    from nas_lightning.enas.supernet import SlicedConv1x1

    torch.manual_seed(0)
    conv = SlicedConv1x1(c_unit=2, max_units=3, c_out=2, stride=2)
    for _ in range(20):
        x = torch.randn(32, 4, 14, 14).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        out = conv(x, (0, 2))
        out.sum().backward()
    expected = torch.nn.functional.conv2d(x.detach().contiguous(), conv.sliced((0, 2)), stride=2)
    assert torch.allclose(out, expected, atol=1e-6) and x.grad.shape == x.shape


def test_a_genotype_outside_the_supernet_is_refused():
    supernet = Supernet(5, ["identity", "max_pool_3x3"], **LAYOUT)
    with pytest.raises(GenotypeError, match="sep_conv_5x5"):
        supernet.check(NASNET_A)


def test_training_step_gradients_equal_the_standalone_networks():
    """Train mode (batch statistics): same loss, same gradients, none outside the sub-graph."""
    space = NASNetSpace(3, ENAS_OPS, ("add", "concat"))
    genotype = _space_genotypes(space, 1, seed=2)[0]
    supernet = Supernet(3, ENAS_OPS, ("add", "concat"), **LAYOUT)
    net = NASNetwork(genotype, **LAYOUT)
    _randomize(net, seed=3)
    copy_weights(supernet, net, genotype, into="supernet")
    x, y = torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 3])
    loss_fn = torch.nn.functional.cross_entropy
    loss_fn(supernet(x, genotype), y).backward()
    loss_fn(net(x), y).backward()
    paired = set()
    for std, sup, cols in weight_pairs(supernet, net, genotype):
        paired.add(id(sup))
        if not sup.requires_grad:
            continue
        if std.grad is None:
            assert sup.grad is None or not sup.grad.any()
            continue
        got = sup.grad if cols is None else sup.grad.index_select(1, cols)
        assert torch.allclose(got, std.grad, rtol=1e-4, atol=1e-6)
    for name, p in supernet.named_parameters():
        if id(p) not in paired:
            assert p.grad is None, name


# -- the alternation -----------------------------------------------------------------------

TINY_ENAS = [
    "experiment=enas",
    "logger=csv",
    "enas.epochs=2",
    "enas.limit_train_batches=2",
    "enas.controller_steps=2",
    "enas.final_candidates=2",
    "enas.batch_size=32",
    "enas.controller_batch_size=32",
    "enas.eval_batch_size=128",
    "enas.train_subset=128",
    "enas.supernet.filters=4",
    "search_space.num_blocks=2",
    "dataset.val_size=128",
]


def _tiny_module(tmp_path, steps: int = 2):
    """A tiny supernet and REINFORCE, attached to a Trainer by one fit of one step."""
    import pytorch_lightning as pl

    from nas_lightning.data import EmbeddedFashionMNIST
    from nas_lightning.enas.module import EnasModule
    from nas_lightning.strategies import Reinforce

    space = NASNetSpace(2, ENAS_OPS, ("add",))
    strategy = Reinforce(space, lr=0.05, seed=0)
    supernet = Supernet(2, ENAS_OPS, ("add",), **dict(LAYOUT, stem_stride=2))
    module = EnasModule(supernet, strategy, controller_steps=0, controller_batch_size=16,
                        entropy_reward_weight=1e-4, seed=0)
    data = EmbeddedFashionMNIST(batch_size=16, train_subset=64, val_size=64, augment=False)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu",
                         default_root_dir=str(tmp_path))
    return module, strategy, trainer, data


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict, module: torch.nn.Module) -> list[str]:
    return [k for k, v in module.state_dict().items() if not torch.equal(v, before[k])]


def test_a_supernet_step_changes_only_the_supernet(tmp_path):
    module, strategy, trainer, data = _tiny_module(tmp_path)
    supernet, controller = _snapshot(module.supernet), _snapshot(strategy.controller)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2
    assert _changed(supernet, module.supernet)  # the shared weights trained
    assert _changed(controller, strategy.controller) == []
    assert strategy.num_told == 0 and strategy.num_proposed == 2  # one sample per step


def test_a_controller_step_changes_only_the_controller(tmp_path):
    module, strategy, trainer, data = _tiny_module(tmp_path, steps=1)
    trainer.fit(module, datamodule=data)
    module.train()  # as during fit: scoring must not touch BatchNorm statistics either
    supernet, controller = _snapshot(module.supernet), _snapshot(strategy.controller)
    records = module.train_controller(2)
    assert _changed(supernet, module.supernet) == []
    assert _changed(controller, strategy.controller)
    assert strategy.num_told == 2
    for r in records:
        assert r["weight_sharing"] and 0 <= r["val_acc"] <= 1
        assert r["reward"] == pytest.approx(r["val_acc"] + 1e-4 * r["extra"]["sample_entropy"])


def test_batch_statistics_scoring_leaves_the_network_as_it_was():
    from nas_lightning.enas.module import batch_statistics

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2)).eval()
    before = _snapshot(net)
    with batch_statistics(net):
        out = net(torch.randn(8, 1, 4, 4) * 3 + 1)
    assert _changed(before, net) == [] and not net[1].training and net[1].track_running_stats
    # normalised by the batch's own statistics
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-5


def test_tiny_enas_search_end_to_end(tiny_search_cfg, tmp_path):
    import json

    from nas_lightning.core.records import read_children
    from nas_lightning.enas.search import run_enas
    from nas_lightning.genotypes.base import load_genotype

    result = run_enas(tiny_search_cfg(*TINY_ENAS))
    run = tmp_path / "run"
    records = read_children(run)
    assert [r["index"] for r in records] == [0, 1, 2, 3]  # 2 epochs x 2 controller steps
    assert all(r["weight_sharing"] and r["status"] == "ok" for r in records)
    assert [r["extra"]["epoch"] for r in records] == [0, 0, 1, 1]
    best = json.loads((run / "best.json").read_text())
    candidates = json.loads((run / "candidates.json").read_text())
    assert len(candidates) == 2 and best["val_acc"] == max(c["val_acc"] for c in candidates)
    assert best["extra"]["val_images"] == 128 and best["phase"] == "final"
    genotype = load_genotype(run / "best.json")  # what train.py genotype=... reads
    assert genotype == result.space.decode(best["actions"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "metrics.csv").is_file() and (run / "metrics_supernet.csv").is_file()
    state = torch.load(run / "strategy.pt", weights_only=True)
    assert state["num_told"] == 4
    assert result.summary["supernet_steps"] == 4

    # the run folder alone gives back the trained supernet: it scores the best cell again
    from nas_lightning.enas.module import EnasModule
    from nas_lightning.enas.search import load_supernet

    supernet, data = load_supernet(run)
    module = EnasModule(supernet, result.strategy, channels_last=True)
    assert module.score(genotype, data, batch_size=128) == pytest.approx(best["val_acc"])


class _Killed(Exception):
    pass


def test_a_killed_search_resumes_from_its_last_checkpoint(tiny_search_cfg, tmp_path, monkeypatch):
    """Killed in epoch 2's controller steps: the resumed run ends as an uninterrupted one."""
    from nas_lightning.core.records import read_children
    from nas_lightning.enas.search import RunHooks, run_enas

    full = run_enas(tiny_search_cfg(*TINY_ENAS, run_dir=tmp_path / "full"))

    original = RunHooks.controller_told

    def told(self, record, stats):
        if record["index"] == 2:  # recorded on disk, epoch 2 not checkpointed
            raise _Killed
        return original(self, record, stats)

    monkeypatch.setattr(RunHooks, "controller_told", told)
    run = tmp_path / "killed"
    with pytest.raises(_Killed):
        run_enas(tiny_search_cfg(*TINY_ENAS, run_dir=run))
    assert len(read_children(run)) == 3
    monkeypatch.setattr(RunHooks, "controller_told", original)
    resumed = run_enas(tiny_search_cfg(*TINY_ENAS, f"resume={run}", run_dir=run))
    records = read_children(run)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    expected = read_children(tmp_path / "full")
    assert [r["actions"] for r in records] == [r["actions"] for r in expected]
    assert [r["reward"] for r in records] == pytest.approx([r["reward"] for r in expected])
    assert resumed.summary["supernet_steps"] == full.summary["supernet_steps"]
    assert resumed.best["actions"] == full.best["actions"]


@pytest.mark.slow
def test_enas_from_the_command_line_learns_and_its_cell_trains(tmp_path):
    """`python search.py experiment=enas`, resumed with more epochs refused, then train.py."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    run = tmp_path / "search"
    search = [
        sys.executable, "search.py", "experiment=enas", "logger=csv", f"hydra.run.dir={run}",
        "search.num_threads=1", "enas.epochs=3", "enas.limit_train_batches=15",
        "enas.controller_steps=5", "enas.final_candidates=4", "enas.batch_size=64",
        "enas.train_subset=2000", "dataset.val_size=500", "search_space.num_blocks=2",
        "search_space.ops=[sep_conv_3x3,avg_pool_3x3]", "enas.supernet.share_inputs=true",
    ]
    out = subprocess.run(search, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len((run / "metrics_supernet.csv").read_text().splitlines()) == 1 + 5  # 45 steps
    best = json.loads((run / "best.json").read_text())
    assert best["val_acc"] > 0.15  # the shared weights learned (chance: 0.1 +- 0.013 here)
    # resuming a finished run changes nothing and trains nothing
    again = subprocess.run(
        [sys.executable, "search.py", f"resume={run}"], cwd=ROOT, capture_output=True,
        text=True, timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["controller_steps"] == 15
    train = [
        sys.executable, "train.py", f"genotype={run / 'best.json'}", "dataset=embedded",
        "train_logger=csv", f"run_dir={tmp_path / 'train'}", "recipe.epochs=1",
        "recipe.batch_size=16", "dataset.val_size=64", "dataset.train_subset=32",
        "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "export.onnx=false", "model.filters=4",
        "model.cells_per_stage=1", "num_threads=1",
    ]
    out = subprocess.run(train, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["genotype"]["normal"] == best["genotype"]["normal"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("enas.epochs=0", "enas.epochs"),
        ("enas.controller_steps=-1", "enas.controller_steps"),
        ("search_space.ops=[identity,no_such_op]", "search_space.ops"),
    ],
)
def test_bad_values_stop_the_run_naming_the_key(tiny_search_cfg, override, key):
    from nas_lightning.enas.search import run_enas
    from nas_lightning.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run_enas(tiny_search_cfg(*TINY_ENAS, override))
    assert err.value.key == key


def test_random_sampling_with_shared_weights(tiny_search_cfg):
    """strategy=random: the same supernet, no controller, no entropy bonus."""
    from nas_lightning.enas.search import run_enas

    result = run_enas(tiny_search_cfg(*TINY_ENAS, "strategy=random"))
    assert len(result.records) == 4
    for r in result.records:
        assert r["extra"]["sample_entropy"] is None and r["reward"] == r["val_acc"]


def test_controller_steps_outside_a_trainer(tmp_path):
    """Benchmarks score architectures on a supernet that no Trainer holds."""
    from nas_lightning.data import EmbeddedFashionMNIST
    from nas_lightning.enas.module import EnasModule
    from nas_lightning.strategies import Reinforce

    space = NASNetSpace(2, ENAS_OPS, ("add",))
    supernet = Supernet(2, ENAS_OPS, ("add",), **dict(LAYOUT, stem_stride=2))
    strategy = Reinforce(space, lr=0.05, seed=0)
    module = EnasModule(supernet, strategy, controller_batch_size=16, seed=0)
    data = EmbeddedFashionMNIST(batch_size=16, train_subset=64, val_size=64, augment=False)
    data.setup("fit")
    module.use_data(data)
    records = module.train_controller(3)
    assert [r["index"] for r in records] == [0, 1, 2] and strategy.num_told == 3
    assert all(r["extra"]["val_images"] == 16 for r in records)


def test_standalone_config_trains_children_as_the_standalone_search(tiny_search_cfg, tmp_path):
    """ENAS points the data at the supernet's batches; a standalone child gets the child's."""
    from nas_lightning.enas.search import standalone_search_config
    from nas_lightning.execution.evaluator import LightningEvaluator
    from nas_lightning.execution.runner import make_runner

    cfg = tiny_search_cfg("experiment=enas", "enas.batch_size=32", "enas.train_subset=100")
    out = standalone_search_config(cfg, run_dir=str(tmp_path / "x"), limit_train_batches=2,
                                   epochs=None)
    assert out.dataset.train_subset == cfg.child.train_subset == 256
    assert out.dataset.batch_size == cfg.child.batch_size == 64
    assert out.child.limit_train_batches == 2 and out.child.epochs == cfg.child.epochs
    assert cfg.dataset.train_subset == 100  # the ENAS config is left as it was
    assert isinstance(make_runner(out), LightningEvaluator)
