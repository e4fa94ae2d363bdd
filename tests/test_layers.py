"""The import layers of pyproject's ``[tool.importlinter]`` hold and cover every module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("importlinter.cli")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


# In a process of its own: import-linter reconfigures logging (and would silence the
# package's loggers for the tests after it).
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def lint(cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(path)} if path else None
    return subprocess.run([sys.executable, "-c", LINT], cwd=cwd, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


def test_no_import_runs_up_a_layer():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


def test_every_module_of_the_package_sits_in_a_layer():
    package = ROOT / "nas_lightning"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert sorted(modules - set(_layers())) == []
    assert sorted(set(_layers()) - modules) == []


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The same tool on a two-layer package whose bottom imports its top."""
    pkg = tmp_path / "layered_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "top.py").write_text("from layered_pkg import bottom\n")
    (pkg / "bottom.py").write_text("def f():\n    from layered_pkg import top\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = layered_pkg\n\n"
        "[importlinter:contract:layers]\nname = layers\ntype = layers\n"
        "containers = layered_pkg\nlayers =\n    top\n    bottom\n"
    )
    done = lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "layered_pkg.bottom -> layered_pkg.top" in done.stdout
