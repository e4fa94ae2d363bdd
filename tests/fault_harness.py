"""Fault injection for the run folder: kill searches at named and random points, resume them.

Every trial kills (SIGKILL) or stops (SIGTERM) a tiny search one or more
times, resumes it until it finishes, and compares the run folder with an
uninterrupted search of the same seed: no recorded child lost or recorded
twice, the same genotypes and rewards, the exit status each step should give.

Named points are those of ``NAS_LIGHTNING_FAULT`` (``nas_lightning/search/
records.py``): inside each write of the run folder. Random kills land at a
random moment after a random number of children (between children, inside a
child, during start-up).

A search process costs seconds of imports; so that dozens of them fit in a
few minutes, a "zygote" process imports torch, Lightning and the search once
and forks one process per search (each is a fresh ``python search.py``
as far as the run folder can tell: own pid, own signal handlers, killed for
real). Searches started together are run as separate interpreters instead, so
that each draws its own folder name.

Trials with reuses run a table search (``search.repeats=reuse``, children
looked up, not trained) whose controller soon proposes architectures it has
already trained: killed inside stretches of reused proposals
(``engine.reuse:<n>``), with a torn last line, with ``strategy.pt`` ahead of
the records, deleted, or replaced by an older copy of the same run; and
killed at random moments.

W&B trials log with the real ``wandb`` library and no server: online without
an API key, with a fake key (no server answers), with a ``WANDB_BASE_URL``
that refuses connections, and with ``run.log`` failing after the second
child (``NAS_LIGHTNING_FAULT=wandb.log:2``). Each must finish (exit 0) with
the same children as a search logging to CSV, and say what failed.

    python tests/fault_harness.py [--random 14] [--reuse-random 4] [--seed 0]   # the table
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ROOT / "search.py"
NUM_CHILDREN = 4
CONFIG = [
    "logger=csv",
    f"search.num_children={NUM_CHILDREN}",
    "child.batch_size=64",
    "child.train_subset=128",
    "child.limit_val_batches=1",
    "dataset.val_size=128",
    "model.filters=4",
    "search.num_threads=1",
]
# Searches with reused proposals (search.repeats=reuse): a 9-architecture table space and a
# controller without redraws, so reuses fall between children; children are looked up in
# the table, after a short sleep so that a random kill can land inside one.
REUSE_CHILDREN = 8
REUSE_CONFIG = [
    "logger=csv",
    f"search.num_children={REUSE_CHILDREN}",
    "runner=table",
    "runner.seconds=0.3",
    "search_space.num_blocks=1",
    "search_space.ops=[identity]",
    "search_space.combines=[add]",
    "strategy.dedup_tries=0",  # no redraws: many reuses
    "search.reuse_limit=5",
    "search.num_threads=1",
]


@dataclass(frozen=True)
class Setup:
    """The search every trial of a kind runs: its config and budget."""

    name: str
    config: tuple[str, ...]
    num_children: int


PLAIN = Setup("plain", tuple(CONFIG), NUM_CHILDREN)
REUSED = Setup("reuse", tuple(REUSE_CONFIG), REUSE_CHILDREN)
# Each trial with reuses: steps in order, each a fault point that kills a run of the search
# (`engine.reuse:n`: the n-th reused proposal of that run) or a change made to the folder
# between two runs: `rm-state` (strategy.pt lost), `drop-last` (the last record lost:
# strategy.pt is ahead of the records), `keep-state` / `put-back-state` (an older strategy.pt
# of the same run put back). The search is then resumed to the end.
REUSE_TRIALS = {
    "killed in reuse stretches": ["engine.reuse:2", "engine.reuse:3", "engine.reuse:2"],
    "torn last line after reuses": ["engine.reuse:2", "children.torn:2"],
    "strategy.pt ahead of the records": ["strategy.after:12", "drop-last"],
    "strategy.pt missing": ["engine.reuse:3", "rm-state"],
    "older strategy.pt put back": ["children.after:2", "keep-state", "engine.reuse:4",
                                   "put-back-state"],
}
# The fast test runs the first of these; the rest are slow.
REUSE_FAST = ["strategy.pt missing"]
# Random kill -9 trials of searches with reuses (2 kills each).
REUSE_RANDOM_KILLS = 4
# Each named trial: the fault points that kill successive runs of one search, in order.
NAMED = [
    ["children.before:2", "children.torn:1"],
    ["children.after:2", "strategy.before_replace:1"],
    ["strategy.after:1", "best.before_replace:1"],
    ["config.before_replace:1", "run.before_replace:1", "config.before_replace:1"],
    ["children.torn:2", "summary.before_replace:1"],
    ["children.torn:1", "children.torn:1", "children.torn:1"],
]
# Seconds a child takes here (with its share of start-up), measured by the reference search.
PACE = {"child": 2.5}
# Random kill -9 trials (2 kills each): with the named ones, 20 trials of kills.
RANDOM_KILLS = 14
# Each W&B trial: its environment, NAS_LIGHTNING_FAULT, and the warning that shows it failed.
WANDB_INIT_TIMEOUT = 3
WANDB = {
    "online, no API key": ({"WANDB_MODE": "online"}, None, "online but no API key"),
    "fake API key, no server": ({"WANDB_MODE": "online", "WANDB_API_KEY": "0" * 40}, None,
                           "online run did not start"),
    "bad WANDB_BASE_URL": ({"WANDB_MODE": "online", "WANDB_API_KEY": "0" * 40,
                            "WANDB_BASE_URL": "http://127.0.0.1:9"}, None,
                           "online run did not start"),
    "dies after child 2": ({"WANDB_MODE": "offline"}, "wandb.log:2", "W&B logging is off"),
}
ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT)}


# -- the zygote: imports once, forks one search per request ----------------------------------


def _serve() -> None:
    """Read requests on stdin, one JSON per line; answer on stdout."""
    os.environ.update(ENV)
    import pytorch_lightning  # noqa: F401
    import torch  # noqa: F401

    import nas_lightning.search.loop  # noqa: F401

    try:  # the figures every search draws at its end
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:  # pragma: no cover - drawing is optional
        pass

    out = sys.stdout
    ended: dict[int, int] = {}  # exit status of each reaped search
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "run":
            pid = os.fork()
            if pid == 0:
                _child(req)
            ended.pop(pid, None)  # a reused pid
            out.write(f"{pid}\n")
        elif req["op"] in ("poll", "wait"):
            rc = ended.get(req["pid"])  # asked again after it was reaped
            if rc is None:
                flags = os.WNOHANG if req["op"] == "poll" else 0
                done, status = os.waitpid(req["pid"], flags)
                if done != 0:
                    rc = ended[done] = os.waitstatus_to_exitcode(status)
            out.write(json.dumps(rc) + "\n")
        out.flush()


def _child(req: dict) -> None:
    code = 1
    try:
        os.chdir(req["cwd"])
        os.environ.pop("NAS_LIGHTNING_FAULT", None)
        for name in req.get("unset", []):
            os.environ.pop(name, None)
        os.environ.update(req["env"])
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.setpgid(0, 0)
        sys.stdin = open(os.devnull)
        sys.argv = [str(SEARCH), *req["args"]]
        import runpy

        try:
            runpy.run_path(str(SEARCH), run_name="__main__")
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The test side of the zygote."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, **ENV},
        )
        assert self._read() == "ready"

    def _read(self) -> str:
        return self.proc.stdout.readline().strip()

    def _ask(self, req: dict) -> str:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, args: list[str], cwd: Path, log: Path, fault: str | None = None,
              env: dict[str, str] | None = None, unset: list[str] | None = None) -> int:
        env = {**(env or {}), **({"NAS_LIGHTNING_FAULT": fault} if fault else {})}
        return int(self._ask({"op": "run", "args": args, "cwd": str(cwd), "log": str(log),
                              "env": env, "unset": unset or []}))

    def poll(self, pid: int) -> int | None:
        return json.loads(self._ask({"op": "poll", "pid": pid}))

    def wait(self, pid: int, timeout: float = 600) -> int:
        deadline = time.time() + timeout
        while (rc := self.poll(pid)) is None:
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                return json.loads(self._ask({"op": "wait", "pid": pid}))
            time.sleep(0.05)
        return rc

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- trials ----------------------------------------------------------------------------------


@dataclass
class Trial:
    kind: str
    name: str
    kills: int = 0  # processes that died at the fault (SIGKILL or SIGTERM)
    lost: int = 0
    duplicated: int = 0
    identical: bool = False
    bad_status: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.identical and not (self.lost or self.duplicated or self.bad_status)


def _indices(run: Path) -> list[int]:
    path = run / "children.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line)["index"])
        except (ValueError, KeyError, TypeError):
            pass
    return out


def _sequence(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "children.jsonl").read_bytes().splitlines()
            if line.strip()]
    return [(r["index"], r["actions"], r["reward"], r["status"]) for r in rows]


def _args(run: Path, setup: Setup = PLAIN) -> list[str]:
    """Resume when the folder holds a config, else start afresh (killed before it wrote one)."""
    if (run / "config.yaml").is_file():
        return [f"resume={run}", f"search.num_children={setup.num_children}"]
    return [*setup.config, f"hydra.run.dir={run}"]


def _finish(z: Zygote, t: Trial, run: Path, reference: list, log: Path,
            setup: Setup = PLAIN) -> Trial:
    """Resume until done (exit 0), then compare with the uninterrupted search."""
    rc = z.wait(z.start(_args(run, setup), run.parent, log))
    t.steps.append(rc)
    if rc != 0:
        t.bad_status.append(f"final resume exited {rc}")
    return _compare(t, run, reference, rc)


def _compare(t: Trial, run: Path, reference: list, rc: int) -> Trial:
    """Count lost and twice-recorded children; compare with the uninterrupted search."""
    got = _indices(run)
    expected = {row[0] for row in reference}  # a converged search stops before its budget
    t.lost = len(expected - set(got))
    t.duplicated = len(got) - len(set(got))
    t.identical = rc == 0 and _sequence(run) == reference
    summary = run / "summary.json"
    if rc == 0 and json.loads(summary.read_text()).get("status") != "finished":
        t.bad_status.append("summary status is not finished")
    return t


def reference_run(z: Zygote, work: Path, setup: Setup = PLAIN) -> list:
    """The uninterrupted search; its pace sets how late random signals may come."""
    run = work / f"reference-{setup.name}"
    log = work / f"{run.name}.log"
    start = time.time()
    rc = z.wait(z.start([*setup.config, f"hydra.run.dir={run}"], work, log))
    assert rc == 0, log.read_text()[-3000:]
    PACE[setup.name] = (time.time() - start) / (setup.num_children + 1)  # start-up counts
    if setup is PLAIN:
        PACE["child"] = PACE[setup.name]
    if setup is REUSED:
        reused = json.loads((run / "summary.json").read_text())["reused"]
        assert reused >= 10, f"the reference search reused {reused} proposals"
    return _sequence(run)


def named_trial(z: Zygote, work: Path, points: list[str], reference: list) -> Trial:
    t = Trial("named point", "+".join(points))
    run = work / ("named-" + "-".join(p.replace(":", "") for p in points))
    log = work / f"{run.name}.log"
    for point in points:
        rc = z.wait(z.start(_args(run), work, log, fault=point))
        t.steps.append(rc)
        if rc == -signal.SIGKILL:
            t.kills += 1
        else:
            t.bad_status.append(f"{point}: exited {rc}, expected to be killed")
    return _finish(z, t, run, reference, log)


def wandb_trial(z: Zygote, work: Path, name: str, reference: list) -> Trial:
    """A search logging to W&B (the real library, no server) that W&B fails: it must finish.

    The W&B settings and credentials of the environment are removed first, so
    that only the trial's own reach the search.
    """
    env, fault, expected = WANDB[name]
    t = Trial("W&B failing", f"W&B: {name}")
    run = work / ("wandb-" + "".join(c if c.isalnum() else "-" for c in name))
    log = work / f"{run.name}.log"
    home = work / "wandb-home"
    home.mkdir(exist_ok=True)
    env = {"WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache"),
           "WANDB_DATA_DIR": str(home / "data"), "NETRC": str(home / "netrc"), **env}
    args = [*(c for c in CONFIG if c != "logger=csv"), "logger=wandb",
            f"logger.init_timeout={WANDB_INIT_TIMEOUT}", f"hydra.run.dir={run}"]
    rc = z.wait(z.start(args, work, log, fault=fault, env=env,
                        unset=[k for k in os.environ if k.startswith("WANDB_")]))
    t.steps.append(rc)
    if rc != 0:
        t.bad_status.append(f"exited {rc}")
    if expected in log.read_text(errors="replace"):
        t.kills += 1  # the failure happened and the search said so
    else:
        t.bad_status.append(f"no {expected!r} warning")
    if not list((run / "wandb").glob("offline-run-*")):
        t.bad_status.append("no offline W&B run")  # each trial falls back to, or is, offline
    return _compare(t, run, reference, rc)


def _stop_after(z: Zygote, pid: int, run: Path, after: int, delay: float, signum: int) -> bool:
    """Signal ``pid`` ``delay`` s after ``after`` children are recorded; False if it ended first."""
    deadline = time.time() + 600
    while len(_indices(run)) < after and time.time() < deadline:
        if z.poll(pid) is not None:
            return False
        time.sleep(0.02)
    end = time.time() + delay
    while time.time() < end:
        if z.poll(pid) is not None:
            return False
        time.sleep(0.01)
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def random_trial(z: Zygote, work: Path, rng: random.Random, number: int, reference: list,
                 signum: int = signal.SIGKILL, stops: int = 2, setup: Setup = PLAIN) -> Trial:
    kind = "random kill -9" if signum == signal.SIGKILL else "random SIGTERM"
    if setup is not PLAIN:
        kind += f" ({setup.name})"
    t = Trial(kind, f"{kind} #{number}")
    run = work / f"{'kill' if signum == signal.SIGKILL else 'term'}-{setup.name}-{number}"
    log = work / f"{run.name}.log"
    expected = -signal.SIGKILL if signum == signal.SIGKILL else 128 + signum
    for _ in range(stops + 3):  # a search that ends before its signal gets another try
        done = len(_indices(run))
        if t.kills >= stops or done >= setup.num_children:
            break
        after = rng.randint(done, setup.num_children - 1)
        delay = rng.uniform(0.0, 0.9 * PACE[setup.name])  # lands before the next record
        pid = z.start(_args(run, setup), work, log)
        sent = _stop_after(z, pid, run, after, delay, signum)
        rc = z.wait(pid)
        t.steps.append(rc)
        if not sent:
            if rc != 0:
                t.bad_status.append(f"ended by itself with {rc}")
            continue
        if rc == expected or (signum != signal.SIGKILL and rc == -signum):
            t.kills += 1  # -SIGTERM: before the search installed its handler (start-up)
        elif rc != 0:  # 0: it finished as the signal came
            t.bad_status.append(f"exited {rc} after {signal.Signals(signum).name}")
    return _finish(z, t, run, reference, log, setup)


def reuse_trial(z: Zygote, work: Path, name: str, reference: list) -> Trial:
    """A search with reused proposals, killed and damaged by the steps of ``REUSE_TRIALS[name]``."""
    t = Trial("with reuses", f"reuses: {name}")
    run = work / ("reuse-" + "".join(c if c.isalnum() else "-" for c in name))
    log = work / f"{run.name}.log"
    kept = run.parent / f"{run.name}.strategy.pt"
    for step in REUSE_TRIALS[name]:
        if ":" in step:  # a fault point: the run must die there
            rc = z.wait(z.start(_args(run, REUSED), work, log, fault=step))
            t.steps.append(rc)
            if rc == -signal.SIGKILL:
                t.kills += 1
            else:
                t.bad_status.append(f"{step}: exited {rc}, expected to be killed")
            continue
        t.kills += 1  # a change to the folder that the resume must survive
        if step == "rm-state":
            (run / "strategy.pt").unlink()
        elif step == "drop-last":
            lines = (run / "children.jsonl").read_bytes().splitlines(keepends=True)
            (run / "children.jsonl").write_bytes(b"".join(lines[:-1]))
        elif step == "keep-state":
            t.kills -= 1  # a copy, no fault yet
            shutil.copy(run / "strategy.pt", kept)
        elif step == "put-back-state":
            shutil.copy(kept, run / "strategy.pt")
        else:
            raise ValueError(f"unknown step {step!r}")
    return _finish(z, t, run, reference, log, REUSED)


def concurrent_resumes(z: Zygote, work: Path, reference: list) -> Trial:
    """Two resumes of one folder at once: one runs, the other is refused (exit 2)."""
    t = Trial("concurrent", "two resumes of one folder")
    run = work / "concurrent-resume"
    log = work / f"{run.name}.log"
    rc = z.wait(z.start([*CONFIG, "search.num_children=1", f"hydra.run.dir={run}"], work, log))
    t.steps.append(rc)
    pids = [z.start(_args(run), work, work / f"concurrent-{i}.log") for i in range(2)]
    rcs = sorted(z.wait(pid) for pid in pids)
    t.steps += rcs
    if rcs not in ([0, 0], [0, 2]):
        t.bad_status.append(f"exit statuses {rcs}")
    if rcs == [0, 2]:
        t.kills += 1  # the refused one
        texts = [(work / f"concurrent-{i}.log").read_text() for i in range(2)]
        if not any("is in use by a running search" in text for text in texts):
            t.bad_status.append("no 'in use' message")
    return _finish(z, t, run, reference, log)


def concurrent_starts(work: Path, reference: list) -> Trial:
    """Two fresh searches started in the same second, in the same folder, as real processes."""
    t = Trial("concurrent", "two searches started together")
    cwd = work / "together"
    cwd.mkdir()
    procs = [subprocess.Popen([sys.executable, str(SEARCH), *CONFIG], cwd=cwd,
                              env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    rcs = [p.wait(timeout=600) for p in procs]
    t.steps += rcs
    if rcs != [0, 0]:
        t.bad_status.append(f"exit statuses {rcs}")
    runs = sorted((cwd / "runs" / "search").glob("*"))
    if len(runs) != 2:
        t.bad_status.append(f"{len(runs)} run folders")
    t.identical = bool(runs) and all(_sequence(r) == reference for r in runs)
    t.duplicated = sum(len(_indices(r)) - len(set(_indices(r))) for r in runs)
    t.lost = sum(len(set(range(NUM_CHILDREN)) - set(_indices(r))) for r in runs)
    return t


def run_all(work: Path, random_trials: int = RANDOM_KILLS, sigterm_trials: int = 2, seed: int = 0,
            named: list[list[str]] | None = None, concurrent: bool = True,
            wandb: bool = True, reuse_random: int = REUSE_RANDOM_KILLS) -> list[Trial]:
    rng = random.Random(seed)
    z = Zygote()
    try:
        reused = reference_run(z, work, REUSED)
        trials = [reuse_trial(z, work, name, reused) for name in REUSE_TRIALS]
        trials += [random_trial(z, work, rng, i, reused, setup=REUSED)
                   for i in range(reuse_random)]
        reference = reference_run(z, work)
        trials += [named_trial(z, work, points, reference) for points in (named or NAMED)]
        trials += [random_trial(z, work, rng, i, reference) for i in range(random_trials)]
        trials += [random_trial(z, work, rng, i, reference, signal.SIGTERM, stops=1)
                   for i in range(sigterm_trials)]
        if concurrent:
            trials.append(concurrent_resumes(z, work, reference))
        if wandb:
            trials += [wandb_trial(z, work, name, reference) for name in WANDB]
    finally:
        z.close()
    if concurrent:
        trials.append(concurrent_starts(work, reference))
    return trials


def table(trials: list[Trial]) -> str:
    rows = ["| trials | kind | faults (kills, stops, W&B errors) | survived (finished identical) "
            "| children lost | recorded twice | wrong exit status |",
            "|---|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(t.kind for t in trials):
        group = [t for t in trials if t.kind == kind]
        rows.append(
            f"| {len(group)} | {kind} | {sum(t.kills for t in group)} | "
            f"{sum(t.kills for t in group if t.ok)} | {sum(t.lost for t in group)} | "
            f"{sum(t.duplicated for t in group)} | {sum(bool(t.bad_status) for t in group)} |"
        )
    rows.append(
        f"| {len(trials)} | all | {sum(t.kills for t in trials)} | "
        f"{sum(t.kills for t in trials if t.ok)} | {sum(t.lost for t in trials)} | "
        f"{sum(t.duplicated for t in trials)} | {sum(bool(t.bad_status) for t in trials)} |"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--random", type=int, default=RANDOM_KILLS,
                        help="random kill -9 trials (2 kills each)")
    parser.add_argument("--sigterm", type=int, default=2, help="random SIGTERM trials")
    parser.add_argument("--reuse-random", type=int, default=REUSE_RANDOM_KILLS,
                        help="random kill -9 trials of searches with reused proposals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    work = Path(tempfile.mkdtemp(prefix="nas-faults-"))
    start = time.time()
    try:
        trials = run_all(work, args.random, args.sigterm, args.seed,
                         reuse_random=args.reuse_random)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for t in trials:
        if not t.ok:
            print(f"FAILED {t.name}: steps {t.steps}, lost {t.lost}, twice {t.duplicated}, "
                  f"identical {t.identical}, {t.bad_status}")
    print(table(trials))
    print(f"({time.time() - start:.0f} s; run folders in {work if args.keep else 'a temp dir'})")
    sys.exit(0 if all(t.ok for t in trials) else 1)


if __name__ == "__main__":
    main()
