"""The proxy check: random architectures trained with the proxy (several seeds) and longer.

Every training is appended to ``<out>/trainings.jsonl`` as it ends, so an
interrupted check continues where it stopped when run again with the same
``--out`` (and refuses to mix two different checks in one folder).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas_lightning.core.builders import build
from nas_lightning.core.ranks import bootstrap_interval, kendall_tau_b, spearman
from nas_lightning.core.records import jsonable
from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Result, Runner, Trial
from nas_lightning.execution.runner import make_runner
from nas_lightning.genotypes.base import architecture_key, genotype_to_dict
from nas_lightning.strategies.base import Proposal
from nas_lightning.strategies.random_search import RandomSearch
from nas_lightning.utils import quiet_lightning

log = logging.getLogger("nas_lightning.fidelity")

TRAININGS = "trainings.jsonl"
FAITHFUL = 0.7  # proxy-vs-longer tau-b from which the proxy is trusted as it is
NOISY = 0.5  # seed-vs-seed tau-b under which the ranking is mostly seed noise


@dataclass
class FidelityReport:
    """What the check found; ``to_dict()`` is ``fidelity.json``."""

    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    stats: dict[str, Any]
    recommendation: str
    failed: int = 0
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "stats": self.stats,
                "recommendation": self.recommendation, "failed": self.failed,
                "rows": self.rows}


def sample_architectures(space: Any, n: int, seed: int) -> list[Proposal]:
    """``n`` distinct architectures, as the ``random`` preset draws them (fewer if the
    space holds fewer)."""
    seen: set = set()
    out = []
    for p in RandomSearch(space, dedup_tries=100, seed=seed).ask(n):
        key = architecture_key(p.genotype, p.actions)
        if key not in seen:  # a repeat comes back only once the space is exhausted
            seen.add(key)
            out.append(p)
    return out


def recommendation(noise: float, fidelity: float, averaged: float, seeds: int,
                   cost_ratio: float) -> str:
    """One paragraph: what to do with the proxy, from the measured correlations.

    Args:
        noise: seed-vs-seed tau-b of the proxy (nan with one seed).
        fidelity: proxy-vs-longer tau-b (one proxy seed).
        averaged: tau-b of the proxy averaged over the seeds vs the longer recipe.
        seeds: proxy seeds per architecture.
        cost_ratio: seconds of a longer child per second of a proxy child.
    """
    if math.isnan(fidelity):
        return "too few architectures trained to judge the proxy: train at least 8 (--archs)"
    cost = f"the longer recipe costs {cost_ratio:.1f}x per child"
    if fidelity >= FAITHFUL:
        return (f"keep the proxy: it ranks architectures as the longer recipe does "
                f"(tau-b {fidelity:.2f}), and {cost}")
    if not math.isnan(noise) and noise < NOISY:
        text = (f"the proxy's ranking is mostly seed noise (seed vs seed tau-b {noise:.2f}, "
                f"proxy vs longer {fidelity:.2f}): give each child more training "
                f"(child.epochs, child.train_subset) before trusting small reward differences; "
                f"{cost}")
        if not math.isnan(averaged) and averaged - fidelity >= 0.1:
            text += (f"; averaging {seeds} seeds ranks better (tau-b {averaged:.2f}), "
                     f"at {seeds}x the cost")
        return text
    return (f"the proxy is repeatable but ranks only loosely as longer training does "
            f"(tau-b {fidelity:.2f}): it favours architectures that learn fast; lengthen it "
            f"(child.epochs, child.train_subset) if the search should find what trains best, "
            f"{cost}")


def _pair_stats(x: list[float], y: list[float]) -> dict[str, Any]:
    tau = kendall_tau_b(x, y)
    lo, hi = bootstrap_interval(x, y, kendall_tau_b)
    return {"kendall_tau_b": tau, "kendall_95": [lo, hi], "spearman": spearman(x, y),
            "n": len(x)}


def _read_file(path: Path) -> tuple[dict[str, Any], dict[tuple, dict[str, Any]]]:
    """A check's settings and its trainings by (actions, recipe, seed)."""
    lines = path.read_text().splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except ValueError:
        header = {}
    done = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: trained again
        done[(tuple(row["actions"]), row["recipe"], row["seed"])] = row
    return header.get("settings", {}), done


def _read_trainings(path: Path, settings: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    if not path.is_file():
        return {}
    theirs, done = _read_file(path)
    if theirs != settings:
        raise ConfigError("out", f"{path.parent} holds a different check; choose another --out")
    return done


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


# what must agree for an earlier check's longer trainings to stand for this check's
_REFERENCE_KEYS = ("archs", "seed", "space", "longer")


def _reference_view(settings: dict[str, Any]) -> dict[str, Any]:
    view = {key: settings.get(key) for key in _REFERENCE_KEYS}
    view["model"] = (settings.get("model") or {}).get("longer")
    view["dataset"] = (settings.get("dataset") or {}).get("longer")
    return view


def _take_reference(folder: Path, settings: dict[str, Any], path: Path,
                    done: dict[tuple, dict[str, Any]], base_seed: int) -> None:
    """Copy the longer trainings of the check in ``folder`` into this check's file."""
    source = folder / TRAININGS
    if not source.is_file():
        raise ConfigError("reference", f"{folder} holds no {TRAININGS}")
    theirs, rows = _read_file(source)
    mine = _reference_view(settings)
    other = _reference_view(theirs)
    differ = sorted(k for k in mine if mine[k] != other[k])
    if differ:
        raise ConfigError("reference", f"{folder} is a check of other architectures or another "
                          f"longer recipe (differs in {', '.join(differ)})")
    taken = []
    for key, row in rows.items():
        if row["recipe"] == "longer" and row["seed"] == base_seed and key not in done:
            done[key] = row
            taken.append(json.dumps(row))
    if taken:
        with open(path, "a") as f:
            f.write("\n".join(taken) + "\n")
        log.info("took %d longer trainings from %s", len(taken), folder)


def check_proxy(
    proxy_cfg: DictConfig,
    longer_cfg: DictConfig,
    out: str | Path,
    archs: int = 16,
    seeds: int = 2,
    seed: int = 0,
    runner_factory: Callable[[DictConfig], Runner] = make_runner,
    reference: str | Path | None = None,
) -> FidelityReport:
    """Train ``archs`` random architectures as the proxy (``seeds`` seeds) and longer (once).

    Args:
        proxy_cfg: the composed search config whose child recipe is checked.
        longer_cfg: the same config with the longer recipe.
        out: the check's folder (``trainings.jsonl``, ``fidelity.json/.md/.png``).
        archs: random architectures to train.
        seeds: proxy seeds per architecture (2 or more measure the noise floor).
        seed: the seed that draws the architectures.
        runner_factory: builds the child runner of a config (the search's own).
        reference: the folder of an earlier check of the same architectures with the
            same longer recipe: its longer trainings are taken, not trained again
            (candidate proxies compared against one reference).
    """
    quiet_lightning()
    if archs < 3:
        raise ConfigError("archs", f"must be >= 3 to rank anything, got {archs}")
    if seeds < 1:
        raise ConfigError("seeds", f"must be >= 1, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    space = build(proxy_cfg.search_space, "search_space")
    chosen = sample_architectures(space, archs, seed)
    if len(chosen) < 3:
        raise ConfigError("search_space", f"holds {len(chosen)} architecture(s): nothing to rank")
    settings = {"archs": len(chosen), "seeds": seeds, "seed": seed,
                "proxy": _container(proxy_cfg.child), "longer": _container(longer_cfg.child),
                "space": _container(proxy_cfg.search_space),
                "model": {"proxy": _container(proxy_cfg.get("model")),
                          "longer": _container(longer_cfg.get("model"))},
                "dataset": {"proxy": _container(proxy_cfg.get("dataset")),
                            "longer": _container(longer_cfg.get("dataset"))}}
    path = out / TRAININGS
    done = _read_trainings(path, settings)
    if not path.is_file():
        path.write_text(json.dumps({"settings": settings}) + "\n")
    base_seed = int(proxy_cfg.seed)
    if reference is not None:
        _take_reference(Path(reference), settings, path, done, base_seed)
    runners: dict[str, Runner] = {}
    trainings = [("proxy", base_seed + k) for k in range(seeds)] + [("longer", base_seed)]
    # architecture by architecture: a partial check has whole rows
    plan = [(i, p, recipe, s) for i, p in enumerate(chosen) for recipe, s in trainings]
    for step, (i, proposal, recipe, child_seed) in enumerate(plan, start=1):
        actions = tuple(proposal.actions)
        if (actions, recipe, child_seed) in done:
            continue
        if recipe not in runners:
            runners[recipe] = runner_factory(proxy_cfg if recipe == "proxy" else longer_cfg)
        result: Result = runners[recipe].run(Trial(i, proposal, seed=child_seed))
        row = {"arch": i, "actions": list(actions), "recipe": recipe, "seed": child_seed,
               "status": result.status, "val_acc": result.val_acc,
               "seconds": round(result.seconds, 3), "error": result.error}
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        done[(actions, recipe, child_seed)] = row
        acc = f"val_acc={result.val_acc:.4f}" if result.val_acc is not None else result.status
        log.info("%d/%d: architecture %d, %s seed %d: %s (%.1fs)", step, len(plan), i, recipe,
                 child_seed, acc, result.seconds)
    return _report(chosen, done, settings, seeds, base_seed)


def _report(chosen: list[Proposal], done: dict[tuple, dict[str, Any]],
            settings: dict[str, Any], seeds: int, base_seed: int) -> FidelityReport:
    rows, failed = [], 0
    for i, p in enumerate(chosen):
        actions = tuple(p.actions)
        proxy = [done[(actions, "proxy", base_seed + k)] for k in range(seeds)]
        longer = done[(actions, "longer", base_seed)]
        ok = all(r["status"] == "ok" for r in [*proxy, longer])
        failed += not ok
        rows.append({
            "arch": i, "actions": list(actions),
            "genotype": genotype_to_dict(p.genotype),
            "proxy": [r["val_acc"] for r in proxy], "longer": longer["val_acc"], "ok": ok,
            "proxy_seconds": [r["seconds"] for r in proxy], "longer_seconds": longer["seconds"],
        })
    good = [r for r in rows if r["ok"]]
    first = [r["proxy"][0] for r in good]
    longer = [r["longer"] for r in good]
    stats: dict[str, Any] = {"proxy_vs_longer": _pair_stats(first, longer)}
    if seeds >= 2:
        stats["seed_vs_seed"] = _pair_stats(first, [r["proxy"][1] for r in good])
        mean = [statistics.fmean(r["proxy"]) for r in good]
        stats["seed_mean_vs_longer"] = _pair_stats(mean, longer)
    proxy_s = [s for r in good for s in r["proxy_seconds"]]
    longer_s = [r["longer_seconds"] for r in good]
    cost = {"proxy_seconds": statistics.median(proxy_s) if proxy_s else math.nan,
            "longer_seconds": statistics.median(longer_s) if longer_s else math.nan}
    cost["ratio"] = (cost["longer_seconds"] / cost["proxy_seconds"]
                     if proxy_s and cost["proxy_seconds"] > 0 else math.nan)
    stats["cost"] = cost
    stats["accuracy"] = {
        "proxy_mean": statistics.fmean(first) if first else math.nan,
        "longer_mean": statistics.fmean(longer) if longer else math.nan,
    }
    noise = stats.get("seed_vs_seed", {}).get("kendall_tau_b", math.nan)
    averaged = stats.get("seed_mean_vs_longer", {}).get("kendall_tau_b", math.nan)
    text = recommendation(noise, stats["proxy_vs_longer"]["kendall_tau_b"], averaged, seeds,
                          cost["ratio"])
    return FidelityReport(settings, rows, stats, text, failed)


def summary_lines(report: FidelityReport) -> list[str]:
    """The report in a few lines for the terminal."""
    s = report.stats
    lines = [f"proxy check: {len(report.rows)} architectures"
             + (f" ({report.failed} left out: a training failed)" if report.failed else "")]
    for key, name in (("seed_vs_seed", "seed vs seed (noise floor)"),
                      ("proxy_vs_longer", "proxy vs longer recipe"),
                      ("seed_mean_vs_longer", "seed mean vs longer")):
        if key in s:
            p = s[key]
            lo, hi = p["kendall_95"]
            lines.append(f"  {name:28s} Kendall tau-b {p['kendall_tau_b']:+.2f} "
                         f"[{lo:+.2f}, {hi:+.2f}]  Spearman {p['spearman']:+.2f}")
    c = s["cost"]
    lines.append(f"  cost per child: proxy {c['proxy_seconds']:.1f}s, longer "
                 f"{c['longer_seconds']:.1f}s ({c['ratio']:.1f}x)")
    lines.append(f"recommendation: {report.recommendation}")
    return lines


def markdown(report: FidelityReport) -> str:
    """``fidelity.md``: the correlations, the cost and every architecture's accuracies."""
    out = ["# Proxy check", "", *[f"    {line}" for line in summary_lines(report)], "",
           "| architecture | proxy val_acc (per seed) | longer val_acc |", "|---|---|---|"]
    for r in report.rows:
        proxy = ", ".join("-" if v is None else f"{v:.4f}" for v in r["proxy"])
        longer = "-" if r["longer"] is None else f"{r['longer']:.4f}"
        out.append(f"| {r['arch']} | {proxy} | {longer} |")
    return "\n".join(out) + "\n"


def draw(report: FidelityReport, path: str | Path) -> None:
    """``fidelity.png``: seed vs seed, and proxy vs longer, one point per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    good = [r for r in report.rows if r["ok"]]
    pairs = [("proxy_vs_longer", "proxy (seed 1) val_acc", "longer recipe val_acc",
              [r["proxy"][0] for r in good], [r["longer"] for r in good])]
    if "seed_vs_seed" in report.stats:
        pairs.insert(0, ("seed_vs_seed", "proxy seed 1 val_acc", "proxy seed 2 val_acc",
                         [r["proxy"][0] for r in good], [r["proxy"][1] for r in good]))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.4), squeeze=False)
    for ax, (key, xlabel, ylabel, x, y) in zip(axes[0], pairs, strict=True):
        ax.scatter(x, y, s=28, color="#1f77b4")
        for r, xi, yi in zip(good, x, y, strict=True):
            ax.annotate(str(r["arch"]), (xi, yi), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        tau = report.stats[key]["kendall_tau_b"]
        ax.set_title(f"{key.replace('_', ' ')}: Kendall tau-b {tau:+.2f}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Proxy check: {len(good)} random architectures", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: FidelityReport, out: str | Path) -> dict[str, str]:
    """``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` in ``out``."""
    out = Path(out)
    files = {"json": out / "fidelity.json", "md": out / "fidelity.md",
             "png": out / "fidelity.png"}
    files["json"].write_text(json.dumps(jsonable(report.to_dict()), indent=1) + "\n")
    files["md"].write_text(markdown(report))
    draw(report, files["png"])
    report.files = {k: str(v) for k, v in files.items()}
    return report.files
