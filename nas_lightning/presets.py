"""Strategy presets by name, from Python: the YAML files ``python search.py`` composes.

``make_strategy("ppo", space, budget=100, seed=0)`` reads
``conf/strategy/ppo.yaml`` (and the controller file it needs), sets the budget
where the CLI's ``search.num_children`` would be, and instantiates it, so a
preset means the same thing in code and on the command line
(``python search.py strategy=ppo search.num_children=100``).

Two kinds of preset. The plain names are the defaults, made for the budgets
most users have (tens to a few hundred children); the suffixed names are the
papers' exact settings, which the ``experiment=`` presets use and which need
the papers' budgets (10,000+ children):

============================  ==================================================================
preset                        meaning
============================  ==================================================================
``random``                    uniform sampling without repeats; the baseline
``evolution``                 aging evolution, population budget/5 (8..100), tournament P/2,
                              no repeats
``evolution_amoebanet``       AmoebaNet: population 100, tournament 25
``reinforce``                 REINFORCE, LSTM 32x1, Adam 3e-3; 2 steps per child on a replay of
                              64 (truncated importance weights), best fifth only, redraws
``reinforce_nas_rl``          NAS-RL: LSTM 35x2 (init 0.08), Adam 6e-4, EMA 0.95, no entropy
``ppo``                       PPO, LSTM 32x1, Adam 3e-3; per child 2 clipped epochs on a replay
                              of 64, best fifth only, redraws
``ppo_nasnet``                NASNet (and MnasNet): LSTM 100x1, Adam 3.5e-4, entropy 1e-5, batch 10
``tpe``                       Optuna's multivariate TPE, 10 random startup trials, no repeats
``nsga2``                     Optuna's NSGA-II, population budget/100 (3..50), no repeats;
                              several objectives
============================  ==================================================================

"No repeats" (``dedup_tries: 20``): an architecture the strategy already
proposed is drawn again, up to 20 times, before it would be trained twice
(see ``Strategy._avoid_repeats``); the RL controllers sample on-policy and
keep their repeats, and the papers' presets keep the papers' behaviour.

Measured against random search on the project's tabular benchmarks:
BENCHMARKS_STRATEGIES.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Strategy
from nas_lightning.utils import config_dir


@dataclass(frozen=True)
class Preset:
    """A strategy file of ``conf/strategy`` and the controller file it runs with."""

    strategy: str
    controller: str | None
    meaning: str


PRESETS: dict[str, Preset] = {
    "random": Preset("random", None, "uniform sampling without repeats; the baseline"),
    "evolution": Preset("evolution", None, "aging evolution sized to the budget"),
    "evolution_amoebanet": Preset("evolution_amoebanet", None, "AmoebaNet's P=100, S=25"),
    "reinforce": Preset("reinforce", "lstm_small", "REINFORCE for small budgets"),
    "reinforce_nas_rl": Preset("reinforce_nas_rl", "lstm_nas_rl", "NAS-RL's REINFORCE"),
    "ppo": Preset("ppo", "lstm_small", "PPO for small budgets"),
    "ppo_nasnet": Preset("ppo_nasnet", "lstm", "NASNet's (and MnasNet's) PPO"),
    "tpe": Preset("tpe", None, "Optuna's multivariate TPE"),
    "nsga2": Preset("nsga2", None, "Optuna's NSGA-II"),
}


def strategy_config(
    name: str,
    budget: int = 100,
    overrides: Sequence[str] = (),
    conf_dir: str | Path | None = None,
) -> DictConfig:
    """The resolved ``strategy`` node of a preset, as ``search.py`` would compose it.

    Args:
        name: a key of :data:`PRESETS`.
        budget: the number of children (``search.num_children``).
        overrides: dot-list overrides such as ``strategy.lr=1e-3`` or
            ``controller.hidden=32``.
        conf_dir: the config folder (default: the package's, installed or in a clone).
    """
    if name not in PRESETS:
        raise ConfigError("strategy", f"unknown preset {name!r}; one of {sorted(PRESETS)}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError("budget", f"must be an integer >= 1, got {budget!r}")
    preset = PRESETS[name]
    conf_dir = Path(conf_dir) if conf_dir is not None else config_dir()
    if not (conf_dir / "strategy").is_dir():
        raise ConfigError("conf_dir", f"{conf_dir} has no strategy/ folder (the repo's conf)")
    root = OmegaConf.create({"search": {"num_children": budget}})
    root.strategy = OmegaConf.load(conf_dir / "strategy" / f"{preset.strategy}.yaml")
    if preset.controller is not None:
        root.controller = OmegaConf.load(conf_dir / "controller" / f"{preset.controller}.yaml")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError("overrides", f"expected key=value, got {bad}")
    given = OmegaConf.from_dotlist(list(overrides))
    for override in overrides:
        _check_override(root, override.split("=", 1)[0].strip(), given, name)
    root = OmegaConf.merge(root, given)
    OmegaConf.resolve(root)
    return root.strategy


def _check_override(root: DictConfig, key: str, given: DictConfig, name: str) -> None:
    """Refuse an override of a key the preset lacks, or text where it holds a number."""
    missing = object()
    current = OmegaConf.select(root, key, default=missing, throw_on_missing=False)
    if current is missing:
        hint = next(
            (f"; did you mean {group}.{key}?" for group in ("strategy", "controller")
             if group in root and key in root[group]),
            f"; preset {name!r} has strategy."
            f"{{{', '.join(k for k in map(str, root.strategy) if not k.startswith('_'))}}}",
        )
        raise ConfigError(key, f"no such key{hint}")
    value = OmegaConf.select(given, key)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if isinstance(current, int | float) and not isinstance(current, bool) and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise ConfigError(key, f"expected a number, got {value!r}")


def make_strategy(
    name: str,
    space: SearchSpace,
    budget: int = 100,
    seed: int = 0,
    overrides: Sequence[str] = (),
    conf_dir: str | Path | None = None,
) -> Strategy:
    """A strategy built from a named preset (see the module's table).

    ``seed`` must be an integer (a Python or numpy integer), as ``seed=`` on
    the command line: text, floats and booleans are refused with a
    :class:`ConfigError` rather than converted, so that ``seed=1.5`` cannot
    silently run as seed 1. ``overrides`` may only set keys the preset has
    (``strategy.*``, ``controller.*``, ``search.num_children``); a key it
    lacks, or text where the preset holds a number, is a :class:`ConfigError`
    naming the key.

    Example::

        strategy = make_strategy("ppo", space, budget=100, seed=0)
        for _ in range(100):
            p = strategy.ask()
            strategy.tell(p, evaluate(p.genotype))  # None: an invalid architecture
    """
    from nas_lightning.core.builders import build_partial

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError("seed", f"must be an integer, got {seed!r}")
    node = strategy_config(name, budget, overrides, conf_dir)
    return build_partial(node, "strategy", space=space, seed=int(seed))
