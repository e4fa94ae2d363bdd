"""Build hook: ship the top-level ``conf/`` inside the wheel as ``nas_lightning/conf``.

The configs stay where a clone's ``search.py``/``train.py`` and Hydra expect
them (``conf/`` next to the scripts); an installed ``nas-search`` finds the
copy inside the package (``nas_lightning.cli.config_dir``). Everything else
is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``conf/**/*.yaml`` to ``<build>/nas_lightning/conf``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the clone's conf/ directly
        source = ROOT / "conf"
        target = Path(self.build_lib) / "nas_lightning" / "conf"
        if target.exists():
            shutil.rmtree(target)
        for path in sorted(source.rglob("*.yaml")):
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


setup(cmdclass={"build_py": BuildPyWithConfigs})
