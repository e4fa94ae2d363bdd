"""Shared test helpers: compose the project's Hydra configs for tiny runs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

# One thread per test process: tests run beside other work on small CI
# machines, where oversubscribed OpenMP threads spin and crawl.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A search that trains each child on a few batches: seconds, not minutes.
TINY = [
    "logger=csv",
    "search.num_children=2",
    "child.batch_size=64",
    "child.train_subset=256",
    "child.limit_val_batches=2",
    "dataset.val_size=256",
    "model.filters=4",
]


def compose_config(name: str, overrides: list[str]):
    """Compose ``conf/<name>.yaml`` with overrides, as Hydra would."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


# The tabular benchmark's space: children are looked up, not trained.
TABLE = [
    "runner=table",
    "search_space.num_blocks=1",
    "search_space.ops=[identity,max_pool_3x3,sep_conv_3x3]",
    "search_space.combines=[add]",
]


def table_cfg(run_dir, *overrides):
    """A tiny search whose children come from the table (``TABLE``)."""
    return compose_config("search", [f"run_dir={run_dir}", *TINY, *TABLE, *overrides])


def interrupt_at(monkeypatch, cls: type, index: int):
    """Make ``cls.run(trial)`` raise KeyboardInterrupt (a Ctrl-C) at trial ``index``.

    Returns the original ``run``.
    """
    original = cls.run

    def run(self, trial):
        if trial.index == index:
            raise KeyboardInterrupt
        return original(self, trial)

    monkeypatch.setattr(cls, "run", run)
    return original


@pytest.fixture
def tiny_search_cfg(tmp_path):
    """A factory of tiny search configs writing into ``tmp_path``."""

    def make(*overrides: str, run_dir: Path | None = None):
        return compose_config(
            "search", [f"run_dir={run_dir or tmp_path / 'run'}", *TINY, *overrides]
        )

    return make
