"""A search run folder as an Optuna study, for Optuna's dashboard and plots.

Whatever strategy ran the search, its children become the trials of an
Optuna study stored in SQLite in the run folder (``study.db``): one
categorical parameter per decision of the search space (the choice the
child took), the child's reward as the trial's value (maximised), a failed
child as a FAIL trial, and the child's number, metrics and genotype as user
attributes. ``optuna-dashboard sqlite:///<run>/study.db`` then shows the
history, parameter importances and parallel coordinates; in Python::

    import optuna
    study = optuna.load_study(study_name="search", storage="sqlite:///<run>/study.db")

The file is rewritten from ``children.jsonl`` each time (written beside it
and renamed over the old one), so it always matches the records.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nas_lightning.runs import load_run

STUDY_FILE = "study.db"
STUDY_NAME = "search"
_PLAIN = (bool, int, float, str)


def _space(config: dict[str, Any]) -> Any:
    """The run's search space, built from its recorded config."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = config.get("search_space")
    if not isinstance(node, dict):
        raise ValueError("the run's config has no search_space")
    return instantiate(OmegaConf.create(node))


def _choices(decision: Any) -> list[Any]:
    values = getattr(decision, "choices", None)
    if values is None:  # an anchor decision (a bitmask): the action itself
        return list(range(decision.size))
    return [v if v is None or isinstance(v, _PLAIN) else str(v) for v in values]


def write_study(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/study.db`` from the run's records; return its path."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    run = load_run(run_dir)
    space = _space(run.config)
    decisions = [(d.name, _choices(d)) for d in space.decisions]
    distributions = {name: CategoricalDistribution(choices) for name, choices in decisions}
    trials = []
    for record in run.children:
        actions = record.get("actions")
        if not isinstance(actions, list) or len(actions) != len(decisions):
            continue  # a child without the space's actions (e.g. a NetAdapt edit)
        try:
            params = {name: choices[a]
                      for (name, choices), a in zip(decisions, actions, strict=True)}
        except (IndexError, TypeError):
            continue
        reward = record.get("reward")
        ok = record.get("status") == "ok" and isinstance(reward, (int, float)) \
            and math.isfinite(reward)
        attrs = {"child": record.get("index")}
        for key in ("val_acc", "params", "seconds", "status", "error"):
            if record.get(key) is not None:
                attrs[key] = record[key]
        attrs["genotype"] = json.dumps(record.get("genotype"), sort_keys=True)
        trials.append(create_trial(
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            value=float(reward) if ok else None,
            params=params, distributions=distributions, user_attrs=attrs,
        ))
    path = Path(run_dir) / STUDY_FILE
    partial = path.with_name(f".{STUDY_FILE}.partial")
    partial.unlink(missing_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{partial}")
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    study.add_trials(trials)
    storage.engine.dispose()  # close the file before it is renamed
    os.replace(partial, path)
    return path
