"""The engine keeps seeded searches exact: ``executor=local`` reproduces the
children recorded in ``tests/fixtures/engine_golden.json`` (taken from the search
loop as it was before the executors existed).

Floating-point results of a child's training depend on the CPU's kernels
(instruction sets, oneDNN/MKL dispatch), so an exact record holds for one
kind of CPU. ``tests/fixtures/engine_golden_cpus.json`` holds the same searches
recorded on other kinds of CPU, keyed by :func:`cpu_fingerprint`, each
written by an engine that reproduced ``engine_golden.json`` on the CPU of
that file (or, with ``same_as``, naming another CPU's record that it reproduces
exactly); a CPU found there is compared with its own record, any other
with the original.

Regenerate (only when a change of results is intended and explained):
``python tests/execution/test_engine_exact.py --write``; record the current CPU's
children: ``python tests/execution/test_engine_exact.py --write-cpu``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # conftest, when run as a script
from conftest import ROOT, TINY, compose_config  # noqa: E402

from nas_lightning.search.loop import run_search  # noqa: E402

GOLDEN = ROOT / "tests" / "fixtures" / "engine_golden.json"
GOLDEN_CPUS = GOLDEN.with_name("engine_golden_cpus.json")


def cpu_fingerprint() -> str:
    """The CPU's vendor, family, model, stepping and SIMD flags, with torch's dispatch level."""
    import hashlib
    import platform

    import torch

    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "stepping", "flags") and key not in info:
                info[key] = value.strip()
    except OSError:
        pass
    simd = sorted(f for f in info.get("flags", "").split()
                  if f.startswith(("avx", "amx", "fma", "sse", "f16c")))
    text = " ".join([platform.machine(), info.get("vendor_id", ""), info.get("cpu family", ""),
                     info.get("model", ""), info.get("stepping", ""), *simd,
                     torch.backends.cpu.get_cpu_capability()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def golden_for_this_cpu() -> dict:
    if GOLDEN_CPUS.is_file():
        hosts = json.loads(GOLDEN_CPUS.read_text())
        if cpu_fingerprint() in hosts:
            host = hosts[cpu_fingerprint()]
            # a CPU whose children equal another CPU's names that record instead of a copy
            return hosts[host["same_as"]]["cases"] if "same_as" in host else host["cases"]
    return json.loads(GOLDEN.read_text())
KEYS = ("index", "actions", "genotype", "status", "reward", "val_acc")

# Three small seeded searches, 4 children each, one thread.
CASES: dict[str, list[str]] = {
    # The strategy settings of the original loop's presets, pinned (the default
    # presets have changed since): NASNet's LSTM, Adam 3.5e-4, raw advantages.
    "reinforce": [
        "strategy=reinforce_nas_rl", "strategy.lr=3.5e-4", "strategy.entropy_weight=1e-4",
        "seed=11",
    ],
    "ppo_batch2": [
        "strategy=ppo_nasnet", "strategy.batch_size=2", "strategy.epochs=2", "seed=12",
    ],
    "evolution_p2_s2": [
        "strategy=evolution_amoebanet", "strategy.population_size=2", "strategy.sample_size=2",
        "seed=13",
    ],
}
# The original loop trained every proposal, repeats too.
COMMON = [*TINY, "controller=lstm", "search.num_children=4", "search.num_threads=1",
          "search.repeats=train"]


def _run(name: str, run_dir: Path, extra: list[str] = ()) -> list[dict]:
    cfg = compose_config("search", [f"run_dir={run_dir}", *COMMON, *CASES[name], *extra])
    result = run_search(cfg)
    return [{k: r.get(k) for k in KEYS} for r in result.records]


def _compare(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        i = w["index"]
        assert g["index"] == i
        assert g["status"] == w["status"], f"child {i}"
        assert g["actions"] == w["actions"], f"child {i}: actions differ"
        assert g["genotype"] == w["genotype"], f"child {i}: genotype differs"
        for key in ("reward", "val_acc"):
            if w[key] is None:
                assert g[key] is None, f"child {i}: {key}"
            else:
                assert g[key] == pytest.approx(w[key], abs=1e-6), f"child {i}: {key}"


@pytest.mark.parametrize("name", list(CASES))
def test_local_executor_reproduces_the_golden_children(name, tmp_path):
    _compare(_run(name, tmp_path / name), golden_for_this_cpu()[name])


def _write() -> None:
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            out[name] = _run(name, Path(tmp) / name)
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


def _write_cpu(note: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cases = {name: _run(name, Path(tmp) / name) for name in CASES}
    hosts = json.loads(GOLDEN_CPUS.read_text()) if GOLDEN_CPUS.is_file() else {}
    hosts[cpu_fingerprint()] = {"note": note, "cases": cases}
    GOLDEN_CPUS.write_text(json.dumps(hosts, indent=1) + "\n")
    print(f"wrote {GOLDEN_CPUS} [{cpu_fingerprint()}]")


if __name__ == "__main__":
    import os

    os.environ.setdefault("WANDB_MODE", "offline")
    if sys.argv[1:] == ["--write"]:
        _write()
    elif sys.argv[1:2] == ["--write-cpu"] and len(sys.argv) == 3:
        _write_cpu(sys.argv[2])
    else:
        sys.exit("usage: python tests/execution/test_engine_exact.py"
                 ' --write | --write-cpu "<note>"')
