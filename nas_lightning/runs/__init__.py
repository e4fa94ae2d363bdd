"""Search run folders as tables: what ran, how it went, how runs differ.

Everything here reads the files a search leaves in its run folder
(``config.yaml``, ``children.jsonl``, ``summary.json``, ``best.json``) and
nothing else: no W&B, no torch, so listing a hundred runs takes a moment.
``python -m nas_lightning.runs list|show|compare`` is the command line.
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas_lightning.core.child_record import ChildRecord, best_key, final_reward

CHILDREN = "children.jsonl"


@dataclass
class Run:
    """One search run folder, as read from its files."""

    path: Path
    config: dict[str, Any]
    children: list[dict[str, Any]]
    summary: dict[str, Any] | None
    best: dict[str, Any] | None
    torn_lines: int = 0  # lines of children.jsonl that did not parse (a write cut short)
    extra_keys: list[str] = field(default_factory=list)
    bad_records: int = 0  # records that parse but are not shaped like a child's record

    @property
    def name(self) -> str:
        return str(self.path)

    def get(self, dotted: str, default: Any = None) -> Any:
        """A config value by dotted key (``search.num_children``)."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def _target(node: Any) -> str:
    if isinstance(node, dict) and node.get("_target_"):
        return str(node["_target_"]).rsplit(".", 1)[-1]
    return "-"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None


def read_children(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``children.jsonl`` and how many lines did not parse.

    A line that is not UTF-8 or not a JSON object counts as unreadable; the
    other lines are read all the same.
    """
    records, torn = [], 0
    try:
        lines = (path / CHILDREN).read_bytes().splitlines()
    except OSError:
        return [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            torn += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            torn += 1
    return records, torn


def _well_formed(record: dict[str, Any]) -> bool:
    """Whether the record has the fields and types a search writes (:class:`ChildRecord`)."""
    try:
        ChildRecord.from_dict(record)
    except (TypeError, ValueError):
        return False
    return True


def load_run(path: str | Path) -> Run:
    """Read one run folder (missing files give empty parts, never an error)."""
    path = Path(path)
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        config = {}
    children, torn = read_children(path)
    good = [r for r in children if _well_formed(r)]
    extra: list[str] = []
    for record in good:
        for key, value in (record.get("extra") or {}).items():
            if _is_number(value) and key not in extra:
                extra.append(key)
    return Run(path, config if isinstance(config, dict) else {}, good,
               _read_json(path / "summary.json"), _read_json(path / "best.json"), torn, extra,
               len(children) - len(good))


def find_runs(patterns: list[str]) -> list[Path]:
    """Run folders named by ``patterns``: folders or globs, searched recursively.

    A folder holding ``children.jsonl`` or ``config.yaml`` with a ``search``
    section is a run; any other folder is searched below for runs (so
    ``runs/search`` lists every search, multirun jobs included).
    """
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
        for match in matches:
            root = Path(match)
            if not root.is_dir():
                continue
            if _is_run(root):
                found.append(root)
                continue
            for marker in sorted(root.rglob("config.yaml")):
                if _is_run(marker.parent):
                    found.append(marker.parent)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def _is_run(path: Path) -> bool:
    """A search's own folder (not Hydra's ``.hydra`` copy, not a W&B run's files)."""
    if path.name == ".hydra" or "wandb" in path.parts:
        return False
    if (path / CHILDREN).is_file():
        return True
    config = path / "config.yaml"
    if not config.is_file():
        return False
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return (isinstance(data, dict) and "_wandb" not in data
            and isinstance(data.get("search"), dict) and "strategy" in data)


def _is_number(value: Any) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)


def status(run: Run) -> str:
    """``done`` (summary written), ``stopped`` (summary, budget not spent) or ``incomplete``.

    A search writes ``summary.json`` when it ends, also after an error; a run
    without one is still running or was killed (``resume=<run>`` continues it).
    """
    budget = run.get("search.num_children")
    if run.summary is None:
        return "incomplete"
    if run.summary.get("stopped") == "time":  # search.max_minutes spent: as asked
        return "done"
    if isinstance(budget, int) and len(run.children) < budget:
        return "stopped"
    return "done"


def run_row(run: Run) -> dict[str, Any]:
    """One line of ``list``: what the run searched and how it went."""
    ok = [r for r in run.children if r.get("status") == "ok" and _is_number(r.get("reward"))]
    best = max(ok, key=best_key, default=None)
    summary = run.summary or {}
    wall = summary.get("wall_seconds")
    if not _is_number(wall):
        wall = sum(r["seconds"] for r in run.children if _is_number(r.get("seconds"))) or None
    return {
        "run": run.name,
        "space": _target(run.config.get("search_space")),
        "strategy": _target(run.config.get("strategy")),
        "reward": _target(run.config.get("reward")),
        "children": len(run.children),
        "budget": run.get("search.num_children"),
        "failed": len(run.children) - len(ok),
        "best_reward": final_reward(best) if best else None,
        "best_child": best["index"] if best else None,
        "wall_seconds": wall,
        "status": status(run),
        "seed": run.get("seed"),
    }


def child_rows(run: Run) -> list[dict[str, Any]]:
    """One line per child of ``show``: its numbers, its extra figures, its error."""
    rows = []
    for r in run.children:
        row = {
            "index": r.get("index"),
            "status": r.get("status"),
            "reward": r.get("reward"),
            "val_acc": r.get("val_acc"),
            "params": r.get("params"),
            "seconds": r.get("seconds"),
        }
        if r.get("rung") is not None:  # search.scheduler: where the child stopped
            row["rung"] = r["rung"]
            row["epochs"] = len(r.get("val_curve") or [])
            row["final_reward"] = r.get("final_reward")
        for key in run.extra_keys:
            row[key] = (r.get("extra") or {}).get(key)
        row["genotype"] = genotype_text(r.get("genotype"))
        if r.get("error"):
            row["error"] = str(r["error"])
        rows.append(row)
    return rows


MALFORMED = "<malformed genotype>"


def genotype_text(genotype: Any) -> str:
    """A one-line genotype: block strings, a cell's ops, or compact JSON.

    A genotype of a known kind whose parts have the wrong shape (``"ops": "x"``)
    reads as :data:`MALFORMED`.
    """
    try:
        return _genotype_text(genotype)
    except (TypeError, KeyError, IndexError, AttributeError, ValueError, RecursionError):
        return MALFORMED


def _genotype_text(genotype: Any) -> str:
    if not isinstance(genotype, dict):
        return "-" if genotype is None else str(genotype)
    kind = genotype.get("kind")
    if kind == "mobile" and isinstance(genotype.get("stages"), list):
        return " ".join(map(str, genotype["stages"]))
    if kind == "nasnet":
        parts = []
        for name in ("normal", "reduction"):
            blocks = (genotype.get(name) or {}).get("blocks") or []
            if not all(isinstance(b, dict) and isinstance(b.get("ops"), list)
                       and isinstance(b.get("inputs"), list) for b in blocks):
                raise ValueError("a block without lists of ops and inputs")
            ops = ",".join(
                f"{b['ops'][0]}({b['inputs'][0]})+{b['ops'][1]}({b['inputs'][1]})"
                for b in blocks)
            parts.append(f"{name[0].upper()}: {ops}")
        return " | ".join(parts)
    if kind == "nas_rl":
        layers = genotype.get("layers") or []
        return " ".join(
            f"{x.get('filter_height')}x{x.get('filter_width')}/{x.get('filters')}"
            + (f"<{','.join(map(str, x.get('inputs') or []))}" if x.get("inputs") else "")
            for x in layers if isinstance(x, dict))
    return json.dumps({k: v for k, v in genotype.items() if k != "kind"}, separators=(",", ":"))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept whole)."""
    if not isinstance(config, dict):
        return {prefix: config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


# Keys that differ between any two runs and say nothing about the search.
_NOISE = ("run_dir", "resume")


def config_differences(runs: list[Run]) -> dict[str, list[Any]]:
    """Config keys whose values differ across ``runs``, with each run's value."""
    flats = [flatten(run.config) for run in runs]
    keys = sorted(set().union(*flats)) if flats else []
    diff: dict[str, list[Any]] = {}
    for key in keys:
        if key in _NOISE or key.startswith("hydra."):
            continue
        values = [f.get(key, "-") for f in flats]
        if any(v != values[0] for v in values[1:]):
            diff[key] = values
    return diff
