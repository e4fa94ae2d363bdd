"""Every command the documentation gives works as written.

Commands are read from README.md, docs/*.md and the comments of conf/**/*.yaml.
The fast tests compose each one (Hydra config, or the command-line parser of a
``python -m nas_lightning...`` tool). The slow tests run each one that this
host can run, with a tiny budget appended (one small child, the embedded
Fashion-MNIST subset in place of a dataset that would be downloaded, a
temporary run folder), and expect exit status 0. Commands that need what a
CPU-only test host lacks (a GPU, ImageNet on disk, a Ray cluster, a latency
table measured on a phone) are listed in ``NOT_RUN`` with the reason; they
are still composed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, compose_config

from nas_lightning.core.builders import build, build_partial
from nas_lightning.genotypes import load_genotype, save_genotype

COMMAND = re.compile(r"\bpython (?:search\.py|train\.py|-m nas_lightning\.\w+)\b")
INLINE = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    text: str

    @property
    def tool(self) -> str:
        words = self.text.split()
        return words[2] if words[1] == "-m" else words[1]

    @property
    def args(self) -> list[str]:
        words = shlex.split(self.text)
        args = words[3:] if words[1] == "-m" else words[2:]
        return [a for a in args if a != "..."]  # "..." elides the rest of a command


def _command(line: str) -> str | None:
    match = COMMAND.search(line)
    if match is None:
        return None
    text = re.split(r"\s#\s|\s#$", line[match.start():])[0]  # a trailing comment
    return " ".join(text.replace("\\", " ").split())


def _joined(lines: list[str]) -> list[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined, numbered from 1."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(lines, 1):
        if pending is not None:
            line = f"{pending[1]} {line}"
            number = pending[0]
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        out.append((number, line))
    return out


def _markdown(path: Path) -> list[DocCommand]:
    text = path.read_text()
    lines = text.splitlines()
    found, fenced, prose = [], False, []
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        (prose if not fenced else found).append((number, line))
    commands = []
    for number, line in _joined([line for _, line in found]):
        if (cmd := _command(line)) is not None:
            commands.append(DocCommand(f"{path.name}:{found[number - 1][0]}", cmd))
    outside = dict(prose)
    text = "\n".join(outside.get(n, "") for n in range(1, len(lines) + 1))
    flat = text.replace("\n", " ")  # inline spans may wrap over lines
    for match in INLINE.finditer(flat):
        start = text.count("\n", 0, match.start()) + 1
        if (cmd := _command(match.group(1))) is not None:
            commands.append(DocCommand(f"{path.name}:{start}", cmd))
    return commands


def _yaml_comments(path: Path) -> list[DocCommand]:
    lines = [re.sub(r"^\s*#", "", line) if line.lstrip().startswith("#") else ""
             for line in path.read_text().splitlines()]
    commands = []
    for number, line in _joined(lines):
        for span in [m.group(1) for m in INLINE.finditer(line)] or [line]:
            if (cmd := _command(span)) is not None:
                commands.append(DocCommand(f"{path.relative_to(ROOT)}:{number}", cmd))
    return commands


def doc_commands() -> list[DocCommand]:
    """Every documented command once (its first place)."""
    found: list[DocCommand] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found += _markdown(path)
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        found += _yaml_comments(path)
    seen, unique = set(), []
    for cmd in found:
        if cmd.text not in seen:
            seen.add(cmd.text)
            unique.append(cmd)
    return unique


COMMANDS = doc_commands()
IDS = [f"{c.where} {c.text[7:60]}" for c in COMMANDS]

# What a command needs that a CPU-only test host without network lacks: the
# first rule whose word is in the command gives the reason. These commands are
# composed, not run.
NOT_RUN = [
    ("trainer=gpu", "needs a GPU"),
    ("trainer.accelerator=gpu", "needs a GPU"),
    ("latency=cuda", "needs a GPU"),
    ("gpus_per_child", "needs GPUs in a Ray cluster"),
    ("executor.address=auto", "needs a running Ray cluster"),
    ("dataset=imagenet", "needs ImageNet on disk"),
    ("hydra/launcher=ray", "needs the hydra-ray-launcher plugin and a Ray cluster"),
    ("table_file=pixel1.json", "needs a latency table measured on a phone"),
    ("check-table FILE", "needs a latency table measured on a device"),
    ("executor=ray trainer=ddp trainer.devices=2 ", "2 GPUs per child (accelerator=auto)"),
]


def not_run_reason(cmd: DocCommand) -> str | None:
    text = f"{cmd.text} "
    return next((why for word, why in NOT_RUN if word in text), None)


# -- placeholders and composition -------------------------------------------------


def _fill(arg: str, paths: dict[str, str]) -> str:
    """Replace the documentation's placeholders with real paths."""
    for pattern, key in [
        (r"runs/search/multirun/<sweep>", "sweep"),
        (r"runs/search/<run>/best\.json", "best"),
        (r"runs/search/<run>/netadapt_final\.json", "mobile"),
        (r"runs/search/<date>_<time>_<token>/best\.json", "best"),
        (r"runs/train/<run>/checkpoints/\w+\.ckpt", "ckpt"),
        (r"runs/search/<run>", "run"),
        (r"<run>", "run"),
    ]:
        arg = re.sub(pattern, paths[key], arg)
    return arg


def _first_of_sweep(arg: str) -> str:
    """``key=a,b`` (a -m sweep) -> ``key=a``; lists in brackets stay whole."""
    key, sep, value = arg.partition("=")
    if not sep or value.startswith("["):
        return arg
    return f"{key}={value.split(',')[0]}"


def _paths_for(cmd: DocCommand, paths: dict[str, str]) -> dict[str, str]:
    if "strategy=netadapt" in cmd.text:  # NetAdapt adapts a mobile network: a mobile run's
        return {**paths, "best": paths["mobile"]}
    return paths


def compose_args(cmd: DocCommand, paths: dict[str, str]) -> list[str]:
    paths = _paths_for(cmd, paths)
    args = [_fill(a, paths) for a in cmd.args if a != "-m"]
    return [_first_of_sweep(a) for a in args if not a.startswith(("hydra.", "hydra/"))]


def genotype_files(base: Path) -> dict[str, str]:
    """A NASNet and a mobile genotype file, as a search would leave them."""
    save_genotype(load_genotype("nasnet_a"), base / "best.json")
    save_genotype(load_genotype("mobilenetv3_small"), base / "mobile.json")
    return {"best": str(base / "best.json"), "mobile": str(base / "mobile.json")}


def test_the_documentation_gives_commands_of_every_tool():
    tools = {c.tool for c in COMMANDS}
    assert {"search.py", "train.py", "nas_lightning.runs", "nas_lightning.latency"} <= tools
    assert len(COMMANDS) > 40
    assert any("strategy=nsga2" in c.text for c in COMMANDS)  # continued comment lines join


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_every_documented_command_composes(cmd, tmp_path):
    if cmd.tool in ("search.py", "train.py"):
        name = cmd.tool.removesuffix(".py")
        paths = {**genotype_files(tmp_path), "run": str(tmp_path), "sweep": str(tmp_path),
                 "ckpt": str(tmp_path / "last.ckpt")}
        cfg = compose_config(name, [*compose_args(cmd, paths), f"run_dir={tmp_path}"])
        if name == "search" and not_run_reason(cmd) is None:  # its strategy takes its keys
            space = build(cfg.search_space, "search_space")
            build_partial(cfg.strategy, "strategy", space=space, seed=0)
        return
    module = __import__(f"{cmd.tool}.__main__", fromlist=["main"])
    subcommand = [a for a in cmd.args if not a.startswith("-")][:1]
    with pytest.raises(SystemExit) as done:  # the tool knows the subcommand
        module.main([*subcommand, "--help"])
    assert done.value.code == 0


# -- running them -------------------------------------------------------------------

SEARCH_TINY = [
    "logger=csv", "search.num_children=1", "search.num_threads=1", "search.progress=plain",
    "child.epochs=1", "child.train_subset=64", "child.batch_size=32",
    "child.limit_val_batches=1", "dataset.val_size=64",
]
ENAS_TINY = ["enas.epochs=1", "enas.train_subset=64", "enas.batch_size=32",
             "enas.controller_steps=2", "enas.controller_batch_size=32",
             "enas.final_candidates=2", "enas.eval_batch_size=64"]
NETADAPT_TINY = ["strategy.calibration_repeats=2", "strategy.max_proposals=1"]
TRAIN_TINY = [
    "train_logger=csv", "num_threads=1", "recipe.epochs=1", "recipe.batch_size=16",
    "dataset.train_subset=64", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false", "export.check_batch=4",
]
DOWNLOADED = ("dataset=fashion_mnist", "dataset=cifar10", "dataset=cifar100")


def made_train_args(paths: dict[str, str]) -> list[str]:
    """The arguments ``made_runs`` trained its network with (``ckpt``)."""
    return [f"genotype={paths['best']}", "model.filters=4"]


def _from_root(arg: str) -> str:
    """``key=<a path of the repository>`` made absolute (the commands run from its root)."""
    key, sep, value = arg.partition("=")
    if sep and value and not value.startswith("/") and (ROOT / value).is_file():
        return f"{key}={ROOT / value}"
    return arg


def run_args(cmd: DocCommand, paths: dict[str, str], out: Path) -> list[str]:
    """The command's own arguments, then a tiny budget, data without downloads and ``out``."""
    args = [_from_root(_fill(a, _paths_for(cmd, paths))) for a in cmd.args]
    if "..." in shlex.split(cmd.text) and cmd.tool == "train.py":
        args = [*made_train_args(paths), *args]  # "...": the arguments of the run it resumes
    # The embedded Fashion-MNIST subset in place of data this host cannot download.
    args = ["dataset=embedded" if a in DOWNLOADED else a for a in args]
    if cmd.tool == "search.py":
        text = " ".join(args)
        args += SEARCH_TINY
        if "experiment=enas" in text:
            args += ENAS_TINY
        if "strategy=netadapt" in text:
            args += NETADAPT_TINY
        if "search.scheduler=" in text:  # a second epoch: one rung before the top
            args.append("child.epochs=2")
        if "experiment=" not in text and "strategy=netadapt" not in text:
            args.append("model.filters=4")
        return [*args, f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/sweep"]
    if cmd.tool == "train.py":
        if not any(a.startswith("dataset=") for a in args):
            args.append("dataset=embedded")
        return [*args, *TRAIN_TINY, f"hydra.run.dir={out}/train"]
    if cmd.tool == "nas_lightning.fidelity":
        tiny = [a for a in SEARCH_TINY if not a.startswith(("logger", "search."))]
        if "experiment=" not in " ".join(args):
            tiny.append("model.filters=4")
        return [*args, "--archs", "3", "--seeds", "2", "--out", str(out / "fidelity"), *tiny]
    if cmd.text.startswith("python -m nas_lightning.latency measure"):
        return [*args, "--runs", "1", "--repeats", "2", "--warmup", "1", "--resolution", "64"]
    return args


def run(tool: str, args: list[str], cwd: Path, timeout: int = 900):
    head = [str(ROOT / tool)] if tool.endswith(".py") else ["-m", tool]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, *head, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory) -> dict[str, str]:
    """A finished search, a sweep and a trained network for the placeholders."""
    base = tmp_path_factory.mktemp("made")
    proc = run("search.py", ["-m", "seed=0,1", *SEARCH_TINY, "model.filters=4",
                             f"hydra.sweep.dir={base}/sweep"], base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sweep of 2 searches" in proc.stdout  # the sweep's summary, at its end
    run_dir = base / "sweep" / "0_seed-0"  # a job folder: its number and swept override
    paths = {"best": str(run_dir / "best.json")}
    proc = run("train.py", [*made_train_args(paths), "dataset=embedded", *TRAIN_TINY,
                            f"hydra.run.dir={base}/train"], base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"run": str(run_dir), "best": str(run_dir / "best.json"),
            "mobile": genotype_files(base)["mobile"],
            "sweep": str(base / "sweep"), "ckpt": str(base / "train/checkpoints/last.ckpt")}


RUNNABLE = [c for c in COMMANDS if not_run_reason(c) is None]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUNNABLE, ids=[IDS[COMMANDS.index(c)] for c in RUNNABLE])
def test_every_documented_command_runs(cmd, made_runs, tmp_path):
    if cmd.tool == "nas_lightning.runs":  # `runs list` reads runs/search of the current folder
        shutil.copytree(made_runs["run"], tmp_path / "runs" / "search" / "run")
    proc = run(cmd.tool, run_args(cmd, made_runs, tmp_path), tmp_path)
    assert proc.returncode == 0, f"{cmd.where}: {cmd.text}\n{proc.stderr[-3000:]}"


def test_commands_not_run_here_say_why():
    skipped = {c.text: not_run_reason(c) for c in COMMANDS if not_run_reason(c)}
    assert skipped, "the GPU and cluster commands are listed"
    assert all(skipped.values())
