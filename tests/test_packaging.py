"""The wheel carries the configs and the `nas-search` / `nas-train` entry points.

The wheel is built from a copy of the source tree (so the checkout's build/
folder is left alone) without build isolation, from the installed setuptools.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

setuptools = pytest.importorskip("setuptools")

_SKIP = shutil.ignore_patterns(".git", "build", "dist", "runs", "outputs", "multirun", "wandb",
                               "*.egg-info", "__pycache__", ".venv", ".ci-venv", ".pytest_cache",
                               ".ruff_cache", "*.ckpt", "*.onnx")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "nas-lightning"
    shutil.copytree(ROOT, src, ignore=_SKIP)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out)],
        check=True, capture_output=True, timeout=300,
    )
    (path,) = out.glob("nas_lightning-*.whl")
    return path


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


def test_wheel_holds_every_config_and_the_embedded_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"nas_lightning/conf/{p.relative_to(ROOT / 'conf').as_posix()}"
               for p in (ROOT / "conf").rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    assert "nas_lightning/data/assets/fashion_mnist_subset.npz" in names


def test_wheel_declares_the_console_scripts(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (entry,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(zf.read(entry).decode())
    scripts = dict(parser["console_scripts"])
    assert scripts == {"nas-search": "nas_lightning.cli:search",
                       "nas-train": "nas_lightning.cli:train"}


def test_a_clone_reads_its_top_level_conf():
    from nas_lightning.cli import config_dir

    assert not (ROOT / "nas_lightning" / "conf").exists()  # the copy exists only in wheels
    assert Path(config_dir()) == ROOT / "conf"


def _run_installed(unpacked: Path, cwd: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(unpacked), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_installed_entry_points_compose_their_configs_outside_a_clone(unpacked, tmp_path):
    search = _run_installed(unpacked, tmp_path, (
        "import sys, nas_lightning.cli as c; print('CONF', c.config_dir()); "
        "sys.argv = ['nas-search', '--cfg', 'job', 'experiment=nas_rl', 'seed=5']; c.search()"))
    assert search.returncode == 0, search.stderr
    assert f"CONF {unpacked / 'nas_lightning' / 'conf'}" in search.stdout
    assert "NASRLSpace" in search.stdout and "seed: 5" in search.stdout
    train = _run_installed(unpacked, tmp_path, (
        "import sys, nas_lightning.cli as c; "
        "sys.argv = ['nas-train', '--cfg', 'job', 'genotype=mobilenetv3_small']; c.train()"))
    assert train.returncode == 0, train.stderr
    assert "kind: mobile" in train.stdout  # model group picked from the genotype's kind


@pytest.mark.slow  # imports torch in a fresh process
def test_installed_search_reports_bad_input_in_one_line(unpacked, tmp_path):
    done = _run_installed(unpacked, tmp_path, (
        "import sys, nas_lightning.cli as c; "
        "sys.argv = ['nas-search', 'search.num_children=0', 'logger=csv']; c.search()"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: search.num_children: must be an integer >= 1, got 0")


@pytest.mark.slow
def test_installed_search_runs_outside_a_clone(unpacked, tmp_path):
    done = _run_installed(unpacked, tmp_path, (
        "import sys, nas_lightning.cli as c; sys.argv = ['nas-search', 'debug=fast', "
        "'search.num_children=1', 'child.train_subset=128', 'hydra.run.dir=out']; c.search()"))
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("children.jsonl", "best.json", "summary.json", "search.log", "reward_curve.png"):
        assert (tmp_path / "out" / name).is_file(), name


@pytest.mark.slow  # imports torch in a fresh process
def test_installed_python_api_builds_presets_outside_a_clone(unpacked, tmp_path):
    done = _run_installed(unpacked, tmp_path, (
        "from nas_lightning.presets import make_strategy\n"
        "from nas_lightning.spaces import ListSpace\n"
        "space = ListSpace([('a', [1, 2, 3]), ('b', ['x', 'y'])])\n"
        "for name in ('reinforce', 'evolution', 'tpe'):\n"
        "    s = make_strategy(name, space, budget=10, seed=0)\n"
        "    p = s.ask(); s.tell(p, 0.5)\n"
        "print('OK')\n"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "OK"


def _readme_snippets() -> list[str]:
    """The README's Python blocks that need no run folder of the reader's own."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if "<run>" not in b]


def test_the_readme_has_runnable_python_snippets():
    assert len(_readme_snippets()) >= 2


@pytest.mark.slow  # imports torch in a fresh process per snippet
@pytest.mark.parametrize("index", range(len(_readme_snippets())))
def test_readme_python_snippets_run_from_an_installed_wheel(unpacked, tmp_path, index):
    done = _run_installed(unpacked, tmp_path, _readme_snippets()[index])
    assert done.returncode == 0, done.stderr[-2000:]
