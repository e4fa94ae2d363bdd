"""The Ray executor on a local Ray of 2 CPUs (started once for this module)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose_config

ray = pytest.importorskip("ray")

from nas_lightning.core.records import read_children  # noqa: E402
from nas_lightning.search.loop import run_search  # noqa: E402
from nas_lightning.search.resume import resume_config  # noqa: E402

TABLE = [
    "runner=table",
    "search_space.num_blocks=1",
    "search_space.ops=[identity,max_pool_3x3,sep_conv_3x3]",
    "search_space.combines=[add]",
]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module; yields its address for drivers in subprocesses."""
    from nas_lightning.execution.ray_executor import init_local_ray

    if ray.is_initialized():
        ray.shutdown()
    init_local_ray(num_cpus=2, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def warm(seconds: float) -> tuple[int, int]:
        import nas_lightning.execution.ray_executor  # noqa: F401  (what children import)

        time.sleep(seconds)
        return os.getpid(), os.getppid()

    # Two worker processes up before the tests: a busy machine starts them slowly.
    started = ray.get([warm.remote(2.0), warm.remote(2.0)])
    assert len({pid for pid, _ in started}) == 2
    # Workers are children of this cluster's raylet: tests kill only those, never the
    # workers of another Ray running on the same machine.
    RAYLET.clear()
    RAYLET.update(ppid for _, ppid in started)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def cfg(run_dir, *overrides):
    return compose_config("search", [f"run_dir={run_dir}", *TINY, *overrides])


def actions(result):
    return [r["actions"] for r in result.records]


RAYLET: set[int] = set()  # the module cluster's raylet (parent of its workers)


def _ppid(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def worker_pids(name: str = "ray::_worker_run") -> list[int]:
    """Workers of the module's cluster running a child task now (Ray renames them)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                parent = _ppid(entry)
            except (OSError, ValueError, IndexError):
                continue
            if cmd.startswith(name.encode()) and parent in RAYLET:
                pids.append(int(entry))
    return pids


def test_one_slot_gives_the_local_sequence(cluster, tmp_path):
    over = [*TABLE, "strategy=ppo", "strategy.batch_size=2", "strategy.lr=0.05",
            "search.num_children=8"]
    local = run_search(cfg(tmp_path / "local", *over))
    remote = run_search(cfg(tmp_path / "ray", *over, "executor=ray", "executor.max_concurrent=1"))
    assert actions(remote) == actions(local)
    assert [r["reward"] for r in remote.records] == [r["reward"] for r in local.records]
    assert remote.records[0]["worker"] != local.records[0]["worker"]  # it ran elsewhere


def test_two_slots_complete_on_two_workers(cluster, tmp_path):
    result = run_search(cfg(tmp_path, *TABLE, "strategy=ppo", "strategy.batch_size=2",
                            "runner.seconds=2", "search.num_children=6", "executor=ray",
                            "executor.max_concurrent=2"))
    records = read_children(tmp_path)
    assert sorted(r["index"] for r in records) == list(range(6))
    assert all(r["status"] == "ok" for r in records)
    assert len({r["worker"] for r in records}) == 2
    assert result.strategy.num_told == 6


def test_batch_mode_on_ray(cluster, tmp_path):
    result = run_search(cfg(tmp_path, *TABLE, "strategy=reinforce", "search.mode=batch",
                            "search.batch_size=2", "search.num_children=6", "executor=ray",
                            "executor.max_concurrent=2"))
    assert sorted(r["index"] for r in result.records) == list(range(6))
    assert result.strategy.num_told == 6


def test_a_killed_worker_is_retried_and_the_search_completes(cluster, tmp_path):
    killed = []

    def kill_first_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for pid in worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_first_worker, daemon=True).start()
    result = run_search(cfg(tmp_path, *TABLE, "runner.seconds=2", "search.num_children=2",
                            "executor=ray", "executor.max_concurrent=1",
                            "executor.max_retries=1"))
    assert killed, "no worker was found running a child"
    assert [r["status"] for r in result.records] == ["ok", "ok"]
    assert result.records[0].get("attempt") == 1  # trained again after its worker died
    assert str(killed[0]) != result.records[0]["worker"].split("@")[0]


def test_a_worker_lost_more_often_than_retries_is_recorded_failed(cluster, tmp_path):
    stop = threading.Event()

    def kill_all():
        while not stop.is_set():
            for pid in worker_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    threading.Thread(target=kill_all, daemon=True).start()
    try:
        result = run_search(cfg(tmp_path, *TABLE, "runner.seconds=5", "search.num_children=1",
                                "executor=ray", "executor.max_concurrent=1",
                                "executor.max_retries=1"))
    finally:
        stop.set()
    [record] = result.records
    assert record["status"] == "failed" and "worker lost 2 times" in record["error"]


@pytest.mark.slow
def test_ray_lightning_children_match_the_golden_local_run(cluster, tmp_path):
    """The tiny REINFORCE search of test_engine_exact, trained in a Ray worker."""
    from test_engine_exact import CASES, COMMON, _compare, golden_for_this_cpu

    golden = golden_for_this_cpu()["reinforce"]
    result = run_search(compose_config("search", [
        f"run_dir={tmp_path}", *COMMON, *CASES["reinforce"], "executor=ray",
        "executor.max_concurrent=1",
    ]))
    keys = ("index", "actions", "genotype", "status", "reward", "val_acc")
    _compare([{k: r.get(k) for k in keys} for r in result.records], golden)


def _shape(value):
    """A record's structure: its keys and value types, not its numbers."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.slow
def test_ddp_children_train_on_two_ranks_in_a_ray_worker(cluster, tmp_path):
    """trainer=ddp under executor=ray: 2 gloo ranks started by the worker, local-shaped records."""
    over = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "seed=3"]
    local = run_search(cfg(tmp_path / "local", "seed=3"))
    remote = run_search(cfg(tmp_path / "ray", *over, "executor=ray"))
    assert [r["status"] for r in remote.records] == ["ok", "ok"], remote.records
    assert remote.records[0]["actions"] == local.records[0]["actions"]  # the same first proposal
    for a, b in zip(remote.records, local.records, strict=True):
        a, b = dict(a), dict(b)
        assert a.pop("worker") != b.pop("worker")  # it trained elsewhere
        assert _shape(a) == _shape(b)
    # Each rank trained half of the batches (the sampler shards by rank): the ranks really
    # ran DDP, not two copies of one process's training.
    steps = [r["extra"]["timing"]["train_steps"] for r in remote.records]
    local_steps = [r["extra"]["timing"]["train_steps"] for r in local.records]
    assert [2 * s for s in steps] == local_steps, (steps, local_steps)


def rank_pids() -> set[int]:
    """Processes spawned by a Ray worker (DDP ranks of a child)."""
    pids = set()
    workers = set(worker_pids("ray::"))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                ppid = _ppid(entry)
            except (OSError, ValueError, IndexError):
                continue
            if b"spawn_main" in cmd and ppid in workers:
                pids.add(int(entry))
    return pids


@pytest.mark.slow
def test_a_killed_ddp_rank_is_retried_like_a_lost_worker(cluster, tmp_path):
    before = rank_pids()  # ranks of earlier searches close when this one reaches their worker
    killed = []

    def kill_a_new_rank():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid in sorted(rank_pids() - before):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_a_new_rank, daemon=True).start()
    result = run_search(cfg(tmp_path, "trainer=ddp", "trainer.accelerator=cpu",
                            "trainer.devices=2", "search.num_children=1", "executor=ray",
                            "executor.max_retries=1"))
    assert killed, "no rank process was found"
    [record] = result.records
    assert record["status"] == "ok" and record.get("attempt") == 1, record


def _driver(args, run_dir, address, resume=False):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    first = [f"resume={run_dir}"] if resume else [*TINY, *TABLE, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "search.py"), *first, *args,
         "executor=ray", f"executor.address={address}", "executor.max_concurrent=2"],
        cwd=run_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_driver_killed_at_random_points_resumes_without_duplicates(cluster, tmp_path):
    """kill -9 of the driver anywhere after its start: resume loses only what was in flight."""
    import random

    rng = random.Random(0)
    args = ["strategy=ppo", "strategy.batch_size=2", "runner.seconds=0.5",
            "search.num_children=10"]
    killed_with = []
    for trial in range(10):
        run = tmp_path / f"run{trial}"
        proc = _driver(args, run, cluster)
        assert _wait_for(lambda run=run: (run / "children.jsonl").exists(), 180)
        time.sleep(rng.uniform(0.0, 2.0))  # 1 to ~8 children recorded
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = [r["index"] for r in read_children(run)]
        killed_with.append(len(before))
        assert len(before) == len(set(before))
        # resume in this process (it joins the module's Ray): as `search.py resume=<run>`
        cfg = compose_config("search", [f"run_dir={run}", f"resume={run}", "executor=ray"])
        run_search(resume_config(cfg, overrides=["executor=ray"]))
        after = [r["index"] for r in read_children(run)]
        assert after[: len(before)] == before  # nothing recorded was lost or rewritten
        assert sorted(after) == list(range(10)), (trial, before, after)  # none twice
    assert len(set(killed_with)) >= 3, killed_with  # the kills did land at different points


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_the_run_resumes(cluster, tmp_path):
    run = tmp_path / "run"
    proc = _driver(["runner.seconds=10", "search.num_children=3"], run, cluster)
    assert _wait_for(lambda: len(worker_pids()) == 2, 120)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()[-2000:]
    assert _wait_for(lambda: worker_pids() == [], 30)  # the children stopped with the driver
    assert read_children(run) == []
    assert (run / "strategy.pt").exists()  # the proposals in flight were saved
    resume = _driver(["child.batch_size=8"], run, cluster, resume=True)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 2 and "cannot change 'child.batch_size'" in err
    resume = _driver(["search.num_children=3"], run, cluster, resume=True)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err[-2000:]
    assert sorted(r["index"] for r in read_children(run)) == [0, 1, 2]


# -- starting and joining Ray: a private Ray, bounded waits, the search's own signals ---------


class _Refused(Exception):
    pass


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_address_null_starts_a_private_ray_not_the_recorded_cluster(monkeypatch):
    """``ray.init()`` without an address joins the cluster ``ray start`` recorded."""
    from nas_lightning.execution.ray_executor import RayExecutor

    calls = []

    def init(*args, **kwargs):
        calls.append(kwargs)
        raise _Refused("stop here")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(Exception):  # noqa: B017 - only the call to ray.init matters here
        RayExecutor(None, None, num_cpus=1)
    assert [c.get("address") for c in calls] == ["local"]


def test_the_search_signal_handlers_survive_ray_init(monkeypatch):
    from nas_lightning.execution.ray_executor import connect

    def ours(signum, frame):
        pass

    def init(*args, **kwargs):  # what Ray does when it starts
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(s))
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    monkeypatch.setattr(ray, "init", init)
    previous = {s: signal.signal(s, ours) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        connect(None, 5, num_cpus=1)
        assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGINT) is ours
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_an_address_where_nothing_answers_is_one_transient_error(monkeypatch):
    from nas_lightning.errors import TransientError
    from nas_lightning.execution.ray_executor import RayExecutor

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    port = _closed_port()
    start = time.time()
    with pytest.raises(TransientError) as err:
        RayExecutor(None, None, address=f"127.0.0.1:{port}", connect_timeout_s=3)
    assert time.time() - start < 15
    assert f"nothing answers at 127.0.0.1:{port}" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_ray_that_does_not_come_up_in_time_is_one_transient_error(monkeypatch):
    from nas_lightning.errors import TransientError
    from nas_lightning.execution.ray_executor import connect

    stopped = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: time.sleep(60))
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))
    start = time.time()
    with pytest.raises(TransientError) as err:
        connect(None, 1.0, num_cpus=1)
    assert time.time() - start < 10
    assert "within 1 s" in str(err.value) and stopped
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None, signal.default_int_handler)


def test_a_failing_ray_start_is_one_transient_error_with_the_requeue_status(monkeypatch, capsys):
    from nas_lightning.entry import EXIT_TRANSIENT, one_line_errors
    from nas_lightning.execution.ray_executor import connect

    def init(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen "
                        "because some of the Ray processes failed to startup.\nmore")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        one_line_errors(lambda: connect(None, 5, num_cpus=1))()
    assert exit_.value.code == EXIT_TRANSIENT == 75
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: executor: could not start a local Ray: ")


def test_state_dump_lines_are_left_out_of_what_ray_prints(monkeypatch):
    import functools

    from ray._private import worker as ray_worker
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    from nas_lightning.execution.ray_executor import drop_state_dumps

    printed = []

    def show(data, ignore_prefix):
        printed.append(data["lines"])

    monkeypatch.setattr(ray_worker, "print_to_stdstream", show)
    # Ray's own handler is a functools.partial of print_to_stdstream
    dispatcher.add_handler("ray_print_logs", functools.partial(show, ignore_prefix=False))
    try:
        drop_state_dumps()
        drop_state_dumps()  # twice (a second search in the process): still one filter
        dispatcher.emit({"lines": ["[state-dump] NodeManager:", "child says hi",
                                   "[2026] [state-dump] - num workers: 2"], "pid": 1})
        dispatcher.emit({"lines": ["[state-dump] only"], "pid": 1})
        # a node's death: one error message holding the raylet's last log lines
        ray_worker.print_to_stdstream(
            {"lines": ["Raylet is terminated. Last 20 lines:\n  [state-dump] a\n  [state-dump] b"],
             "pid": "raylet"}, ignore_prefix=False)
    finally:
        dispatcher.remove_handler("ray_print_logs")
    assert printed == [["child says hi"], ["Raylet is terminated. Last 20 lines:"]]


def test_ray_client_without_grpc_is_a_one_line_config_error(monkeypatch):
    from nas_lightning.errors import ConfigError
    from nas_lightning.execution.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc fails
    with pytest.raises(ConfigError, match=r'needs pip install "ray\[client\]"'):
        RayExecutor(None, None, address="ray://127.0.0.1:10001")


def test_the_ray_extra_installs_ray_client_and_admits_the_installed_ray():
    import tomllib
    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    [req] = [Requirement(r) for r in extras["ray"]]
    assert req.name == "ray" and {"client", "default"} <= req.extras
    assert req.specifier.contains(ray.__version__)


# -- faults with real processes: Rays of their own (RAY_TMPDIR), stopped by their PIDs -------


def _pids_of(tmpdir: str) -> list[int]:
    """This test's Ray processes and drivers: those whose environment names its folder."""
    mark = f"RAY_TMPDIR={tmpdir}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if mark in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.fixture
def ray_tmpdir():
    """A Ray temp folder of this test's own: what `ray start` records there is seen only by
    processes given the same RAY_TMPDIR; every process started with it is killed at the end
    (never `ray stop`, which stops every Ray on the machine)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths live here
    yield path
    for pid in _pids_of(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def _ray_env(tmpdir: str) -> dict[str, str]:
    return {**os.environ, "RAY_TMPDIR": tmpdir, "RAY_AUTH_MODE": "token",
            "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}


def _ray_start(tmpdir: str, *args: str) -> None:
    ray_cli = str(Path(sys.executable).parent / "ray")
    head = ["--include-dashboard=false"] if "--head" in args else []
    subprocess.run([ray_cli, "start", *head, "--disable-usage-stats", *args],
                   env=_ray_env(tmpdir), check=True, capture_output=True, timeout=180)


def _search(run: Path, tmpdir: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "search.py"), *TINY, *TABLE, f"hydra.run.dir={run}",
         "executor=ray", *args],
        cwd=run.parent, env=_ray_env(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


def _sessions(tmpdir: str) -> set[str]:
    return {p.name for p in (Path(tmpdir) / "ray").glob("session_2*")}


def _indices(run: Path) -> list[int]:
    return [r["index"] for r in read_children(run)]


@pytest.mark.slow
def test_address_null_starts_its_own_ray_beside_a_ray_start_cluster(ray_tmpdir, tmp_path):
    """With a `ray start` cluster recorded on the machine, address null still starts its own."""
    _ray_start(ray_tmpdir, "--head", f"--port={_closed_port()}", "--num-cpus=1")
    cluster_sessions = _sessions(ray_tmpdir)
    assert len(cluster_sessions) == 1
    run = tmp_path / "run"
    proc = _search(run, ray_tmpdir, "executor.num_cpus=1", "search.num_children=2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert sorted(_indices(run)) == [0, 1]
    assert len(_sessions(ray_tmpdir) - cluster_sessions) == 1  # a session of its own


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_ray_search_like_a_local_one(ray_tmpdir, tmp_path, signum):
    """SIGTERM/Ctrl-C under a private Ray: the interrupted line and status, a resumable run."""
    run = tmp_path / "run"
    proc = _search(run, ray_tmpdir, "executor.num_cpus=1", "executor.max_concurrent=1",
                   "runner.seconds=1", "search.num_children=6", "search.progress=plain")
    assert _wait_for(lambda: bool(read_children(run)), 240), "no child recorded"
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, out[-3000:]
    assert out.strip().splitlines()[-1].startswith(f"interrupted ({name}): resume with")
    assert "SIGTERM received" not in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    before = _indices(run)
    cfg = compose_config("search", [f"run_dir={run}", f"resume={run}"])
    run_search(resume_config(cfg, overrides=["executor=local"]))
    after = _indices(run)
    assert after[: len(before)] == before  # nothing recorded was lost or rewritten
    assert sorted(after) == list(range(6))  # none lost, none twice


@pytest.mark.slow
def test_a_dead_address_ends_the_search_in_one_line_with_the_requeue_status(ray_tmpdir, tmp_path):
    run = tmp_path / "run"
    start = time.time()
    proc = _search(run, ray_tmpdir, f"executor.address=127.0.0.1:{_closed_port()}",
                   "executor.connect_timeout_s=5")
    out, _ = proc.communicate(timeout=280)  # Ray alone retried for more than 300 s
    assert proc.returncode == 75, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nothing answers at 127.0.0.1" in errors[0]
    assert "Traceback" not in out and "Failed to connect to GCS" not in out
    assert time.time() - start < 280


def _raylets(tmpdir: str) -> set[int]:
    return {pid for pid in _pids_of(tmpdir)
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/raylet")}


@pytest.mark.slow
def test_a_lost_node_of_a_two_node_cluster_loses_no_child(ray_tmpdir, tmp_path):
    """Two raylets on this machine; the second one is killed while it trains a child."""
    port = _closed_port()
    _ray_start(ray_tmpdir, "--head", f"--port={port}", "--num-cpus=1")
    head = _raylets(ray_tmpdir)
    _ray_start(ray_tmpdir, f"--address=127.0.0.1:{port}", "--num-cpus=1")
    [second] = _raylets(ray_tmpdir) - head
    run = tmp_path / "run"
    proc = _search(run, ray_tmpdir, f"executor.address=127.0.0.1:{port}",
                   "executor.max_concurrent=2", "runner.seconds=3", "search.num_children=6",
                   "search.progress=plain")

    def both_busy() -> bool:  # a child on each node: the second raylet has a worker at work
        workers = [pid for pid in _pids_of(ray_tmpdir) if _ppid(str(pid)) == second and
                   Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_worker_run")]
        return bool(workers)

    assert _wait_for(both_busy, 240), "no child started on the second node"
    os.kill(second, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    records = read_children(run)
    assert sorted(r["index"] for r in records) == list(range(6))  # none lost, none twice
    assert all(r["status"] == "ok" for r in records)
    retried = [r["index"] for r in records if r.get("attempt")]
    assert retried, "no child was trained again"
    for index in retried:
        assert f"child {index}: its worker or node was lost" in out
    assert "[state-dump]" not in out


@pytest.mark.slow
def test_an_address_that_accepts_but_never_answers_ends_within_the_deadline():
    """A port that accepts connections and says nothing: Ray alone retried for minutes."""
    import socket

    from nas_lightning.errors import TransientError
    from nas_lightning.execution.ray_executor import connect

    if ray.is_initialized():  # a Ray left by an earlier in-process test: start from none
        ray.shutdown()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.time()
        with pytest.raises(TransientError, match="within 3 s"):
            connect(f"127.0.0.1:{silent.getsockname()[1]}", 3)
    # the deadline interrupts Ray between its own connect attempts (each up to about a minute)
    assert time.time() - start < 3 + 90
    assert not ray.is_initialized()


@pytest.mark.slow
def test_asha_on_ray_decides_as_the_local_search(cluster, tmp_path):
    """search.scheduler=asha: workers report to one rung table (a Ray actor); one slot
    gives the local search's records, two slots stop children at the same rungs."""
    from test_schedulers import TINY_ASHA, _same

    local = run_search(compose_config("search", [f"run_dir={tmp_path / 'l'}", *TINY_ASHA]))
    one = run_search(compose_config("search", [
        f"run_dir={tmp_path / 'r1'}", *TINY_ASHA, "executor=ray", "executor.max_concurrent=1"]))
    assert [_same(r) for r in one.records] == [_same(r) for r in local.records]
    two = run_search(compose_config("search", [
        f"run_dir={tmp_path / 'r2'}", *TINY_ASHA, "executor=ray", "executor.max_concurrent=2"]))
    assert len(two.records) == 6
    assert {len(r["val_curve"]) for r in two.records} <= {1, 3}
    assert any(r["rung"] == 0 for r in two.records) and two.best["rung"] == 1
