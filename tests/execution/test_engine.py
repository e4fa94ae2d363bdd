"""The one-way engine with simulated children (no training): modes, resume, checks."""

from __future__ import annotations

import pytest
from conftest import TINY, compose_config, interrupt_at, table_cfg

from nas_lightning.core.records import read_children
from nas_lightning.errors import ConfigError
from nas_lightning.execution.callbacks import SearchCallback
from nas_lightning.execution.simulated import TableRunner
from nas_lightning.search.loop import run_search
from nas_lightning.search.resume import resume_config


def actions(result):
    return [r["actions"] for r in result.records]


class GroupSizes(SearchCallback):
    """A spy: the size of each group of children the strategy was told."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.started = self.ended = 0

        self.events: list[tuple[str, int]] = []

    def on_search_start(self, run_dir, records) -> None:
        self.started += 1

    def on_child_start(self, trial) -> None:
        self.events.append(("start", trial.index))

    def on_children_end(self, children) -> None:
        self.sizes.append(len(children))
        self.events += [("end", c.trial.index) for c in children]

    def on_search_end(self, records) -> None:
        self.ended += 1


@pytest.mark.parametrize("strategy", ["reinforce", "ppo", "evolution"])
def test_batch_mode_tells_whole_batches(tmp_path, strategy):
    spy = GroupSizes()
    extra = {"ppo": ["strategy.batch_size=3"], "evolution": ["strategy.population_size=4",
                                                               "strategy.sample_size=2"]}
    result = run_search(table_cfg(tmp_path, f"strategy={strategy}", *extra.get(strategy, []),
                                  "search.mode=batch", "search.batch_size=3",
                                  "search.num_children=8"), callbacks=[spy])
    assert spy.sizes == [3, 3, 2]  # the last batch is cut by the budget
    # every child is started once, before it ends, and a batch starts as a whole
    assert [e for e in spy.events if e[0] == "start"] == [("start", i) for i in range(8)]
    for i in range(8):
        assert spy.events.index(("start", i)) < spy.events.index(("end", i))
    assert spy.events[:4] == [("start", 0), ("start", 1), ("start", 2), ("end", 0)]
    assert (spy.started, spy.ended) == (1, 1)
    assert [r["index"] for r in result.records] == list(range(8))
    assert result.strategy.num_told == 8


def test_async_mode_tells_one_child_at_a_time(tmp_path, monkeypatch):
    from nas_lightning.strategies.base import Strategy

    sizes = []
    original = Strategy.tell

    def tell(self, proposals, rewards):
        sizes.append(len(proposals) if isinstance(proposals, list) else 1)
        return original(self, proposals, rewards)

    monkeypatch.setattr(Strategy, "tell", tell)
    spy = GroupSizes()
    run_search(table_cfg(tmp_path, "strategy=ppo", "strategy.batch_size=2",
                         "search.num_children=5"), callbacks=[spy])
    assert sizes == spy.sizes == [1] * 5


def test_a_strategy_given_by_the_caller_is_the_one_searched_with(tmp_path):
    from nas_lightning.core.builders import build, build_partial

    cfg = table_cfg(tmp_path, "strategy=evolution", "strategy.population_size=4",
                    "strategy.sample_size=2", "search.num_children=6")
    space = build(cfg.search_space, "search_space")
    mine = build_partial(cfg.strategy, "strategy", space=space, seed=123)
    result = run_search(cfg, strategy=mine)
    assert result.strategy is mine and mine.num_told == 6
    assert [r["index"] for r in read_children(tmp_path)] == list(range(6))


def test_batch_mode_differs_from_async_for_reinforce(tmp_path):
    """One update per batch: later children come from a different controller."""
    a = run_search(table_cfg(tmp_path / "a", "search.num_children=6", "strategy.lr=0.05"))
    b = run_search(table_cfg(tmp_path / "b", "search.num_children=6", "strategy.lr=0.05",
                             "search.mode=batch", "search.batch_size=3"))
    assert actions(a)[:1] == actions(b)[:1]  # the first child: same controller, same seed
    assert actions(a) != actions(b)


@pytest.mark.parametrize("mode", ["async", "batch"])
def test_crash_mid_child_resumes_without_duplicates(tmp_path, monkeypatch, mode):
    """Ctrl-C while child 4 trains: its proposal was saved; resume trains it, nothing twice."""
    over = ["strategy=ppo", "strategy.batch_size=2", "strategy.lr=0.05", "search.num_children=8",
            f"search.mode={mode}", "search.batch_size=3"]
    full = run_search(table_cfg(tmp_path / "full", *over))
    original = interrupt_at(monkeypatch, TableRunner, 4)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_search(table_cfg(part, *over))
    monkeypatch.undo()
    assert [r["index"] for r in read_children(part)] == [0, 1, 2, 3]
    trained = []
    monkeypatch.setattr(TableRunner, "run",
                        lambda self, trial: trained.append(trial.index) or original(self, trial))
    cfg = table_cfg(part, *over, f"resume={part}")
    result = run_search(resume_config(cfg, overrides=["search.num_children=8"]))
    assert trained == [4, 5, 6, 7]
    assert [r["index"] for r in read_children(part)] == list(range(8))
    assert actions(result) == actions(full)


def test_record_without_tell_is_told_on_resume(tmp_path, monkeypatch):
    """Killed after a child's record, before its tell: resume tells it, trains nothing again."""
    from nas_lightning.execution.callbacks import ControllerCallback

    over = ["strategy=reinforce", "strategy.lr=0.05", "search.num_children=6"]
    full = run_search(table_cfg(tmp_path / "full", *over))
    original = ControllerCallback.on_children_end

    def die_at_3(self, children):
        if children[0].trial.index == 3:
            raise KeyboardInterrupt
        return original(self, children)

    monkeypatch.setattr(ControllerCallback, "on_children_end", die_at_3)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_search(table_cfg(part, *over))
    monkeypatch.undo()
    assert len(read_children(part)) == 4
    result = run_search(resume_config(table_cfg(part, *over, f"resume={part}"), overrides=[]))
    assert actions(result) == actions(full)
    assert result.strategy.num_told == 6
    assert [r["index"] for r in read_children(part)] == list(range(6))


@pytest.mark.parametrize(
    "override, key",
    [
        ("search.mode=sometimes", "search.mode"),
        ("search.batch_size=0", "search.batch_size"),
        ("executor.max_concurrent=2", "executor.max_concurrent"),
    ],
)
def test_engine_settings_are_checked(tmp_path, override, key):
    with pytest.raises(ConfigError) as err:
        run_search(table_cfg(tmp_path, "search.mode=batch", override))
    assert err.value.key == key


def test_a_reward_that_fails_marks_the_child_failed(tmp_path):
    result = run_search(table_cfg(tmp_path, "reward=mnasnet_soft", "search.num_children=2"))
    assert [r["status"] for r in result.records] == ["failed", "failed"]
    assert "latency" in result.records[0]["error"]
    assert result.strategy.num_told == 2  # each told None (an invalid architecture)


def test_paper_presets_learn_in_batches():
    nas_rl = compose_config("search", ["run_dir=/tmp/unused", "experiment=nas_rl"])
    assert (nas_rl.search.mode, nas_rl.search.batch_size) == ("batch", 4)
    assert nas_rl.search.batch_size <= nas_rl.search_space.grow_every
    nasnet = compose_config("search", ["run_dir=/tmp/unused", "experiment=nasnet"])
    assert nasnet.search.mode == "batch"
    assert nasnet.search.batch_size == nasnet.strategy.batch_size == 10
    default = compose_config("search", ["run_dir=/tmp/unused"])
    assert default.search.mode == "async" and default.executor.max_concurrent == 1


def test_a_batch_spanning_two_depths_is_told_per_depth(tmp_path, monkeypatch):
    """NAS-RL's space grows mid-batch: REINFORCE scores one depth at a time."""
    result = run_search(compose_config("search", [
        f"run_dir={tmp_path}", "experiment=nas_rl", "logger=csv", "dataset.val_size=256",
        "search.num_children=3", "search_space.num_layers=3", "search_space.start_layers=2",
        "search_space.grow_every=2", "search_space.grow_by=1", "child.epochs=1",
        "child.train_subset=128", "child.limit_train_batches=1", "child.limit_val_batches=1",
    ]))
    assert [r["steps"] for r in result.records][0] < result.records[2]["steps"]
    assert result.strategy.num_told == 3


def test_a_ddp_child_under_ray_takes_its_devices_as_ranks():
    from omegaconf import OmegaConf

    from nas_lightning.execution.ddp import external_strategy
    from nas_lightning.execution.ray_executor import child_processes, ddp_on_gpus

    def trainer(**kw):
        return OmegaConf.create({"accelerator": "cpu", "devices": 1, **kw})

    assert child_processes(trainer()) == 1
    assert child_processes(trainer(strategy="ddp", devices=2)) == 2
    assert child_processes(trainer(devices=[0, 1, 2])) == 3  # Lightning picks DDP for these
    assert child_processes(trainer(devices="auto", accelerator="gpu"), gpus_per_child=2) == 2
    for bad, key in [(trainer(strategy="ddp", devices="auto"), "trainer.devices"),
                     (trainer(strategy="ddp", devices=2, num_nodes=2), "trainer.num_nodes"),
                     (trainer(devices=0), "trainer.devices")]:
        with pytest.raises(ConfigError) as err:
            child_processes(bad)
        assert err.value.key == key
    assert ddp_on_gpus(trainer(accelerator="gpu"), 0, 0)
    assert ddp_on_gpus(trainer(accelerator="auto"), 0, cluster_gpus=4)
    assert not ddp_on_gpus(trainer(accelerator="auto"), 0, cluster_gpus=0)
    assert not ddp_on_gpus(trainer(), 2, cluster_gpus=4)  # accelerator=cpu wins
    assert external_strategy("ddp_spawn_find_unused_parameters_true") == (
        "ddp_find_unused_parameters_true")
    assert external_strategy("ddp_find_unused_parameters_true") == (
        "ddp_find_unused_parameters_true")
    assert external_strategy("auto") == "auto"


def test_ray_refuses_a_fractional_gpu_for_ddp_ranks_in_one_line(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(ConfigError) as err:
        run_search(compose_config("search", [
            f"run_dir={tmp_path}", *TINY, "executor=ray", "executor.num_cpus=2",
            "trainer=ddp", "trainer.accelerator=auto", "executor.gpus_per_child=0.5",
        ]))
    assert err.value.key == "executor.gpus_per_child" and "2 whole GPUs" in str(err.value)


def test_a_shipped_trial_unpickles_without_torch(tmp_path):
    """What a worker of simulated children receives imports neither torch nor Lightning."""
    import os
    import pickle
    import subprocess
    import sys

    from conftest import ROOT

    result = run_search(table_cfg(tmp_path, "search.num_children=1"))
    from nas_lightning.execution.base import Trial
    from nas_lightning.strategies.base import Proposal

    record = result.records[0]
    proposal = Proposal(0, tuple(record["actions"]), result.space.decode(record["actions"]))
    blob = tmp_path / "trial.pkl"
    blob.write_bytes(pickle.dumps(Trial(0, proposal, seed=0).shipped()))
    code = (
        "import pickle, sys\n"
        "from nas_lightning.execution.runner import make_runner\n"
        "from nas_lightning.execution.simulated import TableRunner\n"
        f"t = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        "r = TableRunner().run(t)\n"
        "assert r.status == 'ok', r\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_gpu_smoke_script_stops_at_once_without_a_gpu():
    import os
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_smoke.py")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert "error: no CUDA GPU visible" in proc.stderr and "CUDA_VISIBLE_DEVICES=''" in proc.stderr


def test_throughput_steady_state_starts_after_every_workers_first_child():
    from conftest import load_benchmark

    steady_rate = load_benchmark("engine_throughput").steady_rate

    # two workers: a's first child at 10 s, b's at 14 s; then one child every 2 s
    stamped = [(10.0, {"worker": "a"}), (14.0, {"worker": "b"}), (16.0, {"worker": "a"}),
               (18.0, {"worker": "b"}), (20.0, {"worker": "a"})]
    assert steady_rate(stamped) == (3600 * 3 / 6, 3)
    assert steady_rate(stamped[:2]) == (None, 0)  # nothing after the warm-up
