"""End-to-end searches on tiny budgets, through the same code as search.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY

from nas_lightning.core.records import read_children
from nas_lightning.errors import ConfigError
from nas_lightning.genotypes import genotype_from_dict
from nas_lightning.search.loop import run_search


def test_tiny_search_writes_the_run_folder(tiny_search_cfg, tmp_path):
    result = run_search(tiny_search_cfg())
    run = tmp_path / "run"
    records = read_children(run)
    assert [r["index"] for r in records] == [0, 1]
    for r in records:
        assert r["status"] == "ok"
        assert 0.0 <= r["val_acc"] <= 1.0 and r["reward"] == r["val_acc"]
        assert r["params"] > 0 and r["seconds"] > 0 and len(r["val_curve"]) == 1
        genotype_from_dict(r["genotype"])  # a loadable genotype
        assert len(r["actions"]) == 50
    best = json.loads((run / "best.json").read_text())
    assert best["reward"] == max(r["reward"] for r in records)
    assert result.best["index"] == best["index"]
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    state = torch.load(run / "strategy.pt", weights_only=True)
    assert state["num_told"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["children"] == 2 and summary["ok"] == 2


def test_same_seed_same_genotype_sequence(tiny_search_cfg, tmp_path):
    a = run_search(tiny_search_cfg("seed=3", run_dir=tmp_path / "a"))
    b = run_search(tiny_search_cfg("seed=3", run_dir=tmp_path / "b"))
    c = run_search(tiny_search_cfg("seed=4", run_dir=tmp_path / "c"))
    seq = lambda r: [rec["actions"] for rec in r.records]  # noqa: E731
    assert seq(a) == seq(b)
    assert seq(a) != seq(c)


def test_callback_tells_the_strategy_exactly_once_per_child(tiny_search_cfg, monkeypatch):
    from nas_lightning.strategies.reinforce import Reinforce

    calls = []
    original = Reinforce.tell

    def counting_tell(self, proposals, rewards):
        calls.append(proposals.id)
        return original(self, proposals, rewards)

    monkeypatch.setattr(Reinforce, "tell", counting_tell)
    run_search(tiny_search_cfg("search.num_children=3"))
    assert calls == [0, 1, 2]


def test_record_is_written_before_the_strategy_learns(tiny_search_cfg, tmp_path, monkeypatch):
    from nas_lightning.strategies.reinforce import Reinforce

    seen = []
    original = Reinforce.tell

    def tell(self, proposals, rewards):
        seen.append(len(read_children(tmp_path / "run")))
        return original(self, proposals, rewards)

    monkeypatch.setattr(Reinforce, "tell", tell)
    run_search(tiny_search_cfg())
    assert seen == [1, 2]


def test_a_crashing_child_is_recorded_and_skipped(tiny_search_cfg, tmp_path, monkeypatch):
    from nas_lightning.models import nasnet

    original = nasnet.NASNetwork.__init__
    count = {"n": 0}

    def flaky_init(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == 2:  # 1: the network the config check builds; 2: the first child
            raise RuntimeError("out of memory (simulated)")
        original(self, *args, **kwargs)

    monkeypatch.setattr(nasnet.NASNetwork, "__init__", flaky_init)
    result = run_search(tiny_search_cfg("search.num_children=2"))
    statuses = [r["status"] for r in result.records]
    assert statuses == ["failed", "ok"]
    assert "out of memory" in result.records[0]["error"]
    assert result.strategy.num_told == 2  # the failed child is told None (invalid)
    assert result.best["index"] == 1


@pytest.mark.parametrize(
    "override, key",
    [
        ("controller.hidden=0", "controller.hidden"),
        ("search_space.num_blocks=0", "search_space.num_blocks"),
        ("search_space.ops=[sep_conv_3x3,conv_9x9]", "search_space.ops"),
        ("search.num_children=0", "search.num_children"),
        ("dataset.batch_size=0", "dataset.batch_size"),
        ("child.epochs=0", "child.epochs"),
        ("strategy.lr=-1", "strategy.lr"),
    ],
)
def test_invalid_values_stop_before_training_and_name_the_key(
    tiny_search_cfg, tmp_path, override, key
):
    with pytest.raises(ConfigError) as err:
        run_search(tiny_search_cfg(override))
    assert err.value.key == key, str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "children.jsonl").exists()


def _run_cli(args, cwd, timeout=300, env_extra=None):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "search.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_reports_a_bad_value_in_one_line(tmp_path):
    proc = _run_cli(["controller.hidden=0", "logger=csv"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: controller.hidden: must be an integer > 0, got 0"
    )


def test_cli_multirun_makes_one_run_folder_per_job(tmp_path):
    proc = _run_cli(["-m", "controller.hidden=8,16", *TINY, "search.num_children=1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweeps = list((tmp_path / "runs" / "search" / "multirun").glob("*"))
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["0_controller.hidden-8", "1_controller.hidden-16"]  # the swept overrides
    hidden = [json.loads(json.dumps(_yaml_hidden(sweeps[0] / j / "config.yaml"))) for j in jobs]
    assert hidden == [8, 16]
    for j in jobs:
        assert len(read_children(sweeps[0] / j)) == 1


def _yaml_hidden(path):
    from omegaconf import OmegaConf

    return OmegaConf.load(path).controller.hidden


def test_cli_default_logger_writes_an_offline_wandb_run(tmp_path):
    overrides = [a for a in TINY if not a.startswith("logger")] + ["search.num_children=1"]
    proc = _run_cli(overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "runs" / "search").glob("*"))
    assert len(runs) == 1
    offline = list((runs[0] / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb"))
    assert "run folder:" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_ddp_ranks_sample_the_same_architectures_and_agree(tmp_path):
    run = tmp_path / "ddp"
    proc = _run_cli(
        [
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            *TINY,
            "search.rank_digest=true",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        timeout=600,
        env_extra={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    d0 = json.loads((run / "rank_digest" / "rank0.json").read_text())
    d1 = json.loads((run / "rank_digest" / "rank1.json").read_text())
    assert len(d0) == len(d1) == 2
    for a, b in zip(d0, d1, strict=True):
        assert a["actions"] == b["actions"]
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-6)
        assert a["controller_sum"] == pytest.approx(b["controller_sum"], rel=1e-6)
    # only rank 0 wrote records
    assert len(read_children(run)) == 2


DDP_CPU = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "logger=csv",
           "search.num_threads=1"]


@pytest.mark.slow
def test_ddp_trains_the_default_recipe_with_uneven_batches_per_rank(tmp_path):
    """The default child recipe (batch 128, evaluation batch 500) on 2 ranks.

    384 training images make 3 batches and 1,100 validation images 3 evaluation
    batches: dealt out one by one, rank 0 would step once more than rank 1 and
    wait in a collective rank 1 never joins.
    """
    run = tmp_path / "run"
    proc = _run_cli([*DDP_CPU, "search.num_children=1", "child.train_subset=384",
                     "dataset.val_size=1100", f"hydra.run.dir={run}"],
                    cwd=tmp_path, timeout=900, env_extra={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (child,) = read_children(run)
    assert child["status"] == "ok", child.get("error")
    assert 0.0 <= child["val_acc"] <= 1.0


RANK_ONE_CRASH = """
import os

from nas_lightning.models import NASNetwork


class RankOneCrash(NASNetwork):
    def forward(self, x):
        if self.training and os.environ.get("LOCAL_RANK") == "1":
            raise RuntimeError("rank one cannot train this child")
        return super().forward(x)
"""


@pytest.mark.slow
def test_a_crash_on_rank_1_surfaces_rank_1s_error(tmp_path):
    """Rank 0 only sees its collective fail; the child's error line quotes rank 1's reason."""
    (tmp_path / "rank_one_crash.py").write_text(RANK_ONE_CRASH)
    run = tmp_path / "run"
    proc = _run_cli([*DDP_CPU, *TINY, "model._target_=rank_one_crash.RankOneCrash",
                     f"hydra.run.dir={run}"], cwd=tmp_path, timeout=600,
                    env_extra={"OMP_NUM_THREADS": "1",
                               "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    (child,) = read_children(run)  # the search stops: the ranks cannot train another child
    assert child["status"] == "failed"
    assert child["error"].startswith("rank 1: child 0: RuntimeError: rank one cannot train"), (
        child["error"])
    assert "rank 0: " in child["error"]
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: DDP ranks cannot go on after child 0 failed inside fit")
    assert "rank one cannot train this child" in last



def test_multirun_job_folders_are_named_by_their_swept_overrides():
    from nas_lightning.core.sweep import job_dirname, job_overrides, swept_keys

    argv = ["-m", "controller.hidden=50,100", "seed=range(3)", "model.filters=[8,16]",
            "+extra='a,b'", "search.num_children=4"]
    assert swept_keys(argv) == {"controller.hidden", "seed"}
    task = ["controller.hidden=50", "model.filters=[8,16]", "search.num_children=4", "seed=1"]
    assert job_overrides(task, argv) == ["controller.hidden=50", "seed=1"]
    assert job_overrides(task, ["search.py"]) == task  # the sweep unknown: all of them
    assert job_dirname(0, ["controller.hidden=50", "seed=1"]) == "0_controller.hidden-50_seed-1"
    assert job_dirname(3, []) == "3"
    assert job_dirname(1, ["genotype=runs/a b/best.json"]) == "1_genotype-runs_a_b_best.json"
    assert job_dirname(2, ["model.filters=[8,16]"]) == "2_model.filters-_8_16_"
    assert job_dirname(12, ["x=" + "9" * 200]) == "12_" + ("x-" + "9" * 200)[:80]


def test_a_job_folder_is_a_valid_override_value():
    """train.py genotype=<job>/best.json and search.py resume=<job> must parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nas_lightning.core.sweep import job_dirname

    name = job_dirname(0, ["controller.hidden=50", "model.filters=[8,16]", "+x='a b'"])
    (override,) = OverridesParser.create().parse_overrides([f"genotype=runs/{name}/best.json"])
    assert override.value() == f"runs/{name}/best.json"
