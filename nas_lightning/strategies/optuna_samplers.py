"""Optuna's samplers behind the ask/tell interface: TPE and NSGA-II.

Each proposal is one Optuna trial: ``study.ask()``, then one
``suggest_categorical`` per active decision of the space (its action index),
and ``tell`` is ``study.tell``. Optuna does the sampling; this module only
maps decisions to parameters and keeps the study resumable:

* the sampler is rebuilt before every ask with a seed derived from the
  strategy's seed and the trial number, so what a trial proposes depends only
  on the seed and the told history, not on how many asks this process made;
* ``state_dict`` holds every trial as plain data (params, values, state,
  Optuna's system attributes such as NSGA-II's generation) and the study's
  system attributes (NSGA-II's parent populations), and
  ``load_state_dict`` rebuilds the study with ``add_trial``; a resumed
  strategy proposes exactly what the uninterrupted one would.

Repeats (``dedup_tries`` > 0, the ``tpe`` and ``nsga2`` presets): when a
trial's parameters equal an architecture this strategy already proposed, the
trial is pruned without training (Optuna's own way to stop a trial early) and
Optuna is asked again, up to ``dedup_tries`` times; then the architecture not
proposed yet that is nearest the last draw (fewest decisions changed) is
proposed as an enqueued trial (Optuna's ``enqueue_trial``), and the repeat only
once the space has no other. TPE counts a pruned trial with no intermediate value among the worse
ones, so it moves away from what it already has; NSGA-II's generations count
only complete trials, so a pruned one takes no place in a population. A failed
trial (FAIL) would not do: TPE ignores it and, its model unchanged, tends to
propose the same architecture again. Pruned trials are kept in ``state_dict``
like any other, so resuming stays exact.

Several objectives (NSGA-II): ``objectives`` names what to optimise, each
with a direction. The search loop tells ``objective_values(reward, metrics)``,
which picks ``reward``, ``val_acc``, ``params`` or any measured extra such as
the latency probe's ``latency_ms`` from the trained child's metrics; a user's
own loop tells a tuple (in ``objectives`` order) or a dict.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any, Literal, cast

from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy
from nas_lightning.strategies.evolution import budget_population

try:
    import optuna
except ImportError:  # pragma: no cover - optuna is a dependency
    optuna = None  # type: ignore[assignment]  # optional import; __init__ reports it

# Directions of the objectives a search knows; others need ``directions``.
KNOWN_DIRECTIONS = {
    "reward": "maximize",
    "val_acc": "maximize",
    "latency_ms": "minimize",
    "params": "minimize",
    "macs": "minimize",
}
_SEED_STRIDE = 1_000_003  # sampler seed = seed * stride + trial number
Direction = Literal["maximize", "minimize"]


class OptunaStrategy(Strategy):
    """One Optuna trial per proposal; subclasses choose the sampler.

    Args:
        space: the search space.
        objectives: names of the values told per proposal (see module doc).
        directions: ``maximize`` / ``minimize`` per objective; None: from
            :data:`KNOWN_DIRECTIONS`.
        dedup_tries: new trials asked when one repeats an architecture
            already proposed (see module doc); 0: repeats allowed.
        seed: seeds the sampler (per trial, see module doc).
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[str] = ("reward",),
        directions: Sequence[str] | None = None,
        dedup_tries: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        self._avoid_repeats(dedup_tries)
        if optuna is None:
            raise ConfigError("strategy", "needs optuna: pip install optuna")
        objectives = tuple(str(o) for o in objectives)
        if not objectives or len(set(objectives)) != len(objectives):
            raise ConfigError("objectives", f"must be distinct names, got {list(objectives)}")
        if directions is None:
            unknown = [o for o in objectives if o not in KNOWN_DIRECTIONS]
            if unknown:
                raise ConfigError(
                    "directions", f"give a direction for {unknown} (maximize or minimize)"
                )
            directions = [KNOWN_DIRECTIONS[o] for o in objectives]
        directions = tuple(str(d) for d in directions)
        if len(directions) != len(objectives) or not set(directions) <= {"maximize", "minimize"}:
            raise ConfigError(
                "directions",
                f"need one of maximize/minimize per objective {list(objectives)}, "
                f"got {list(directions)}",
            )
        self.objectives = objectives
        self.directions = cast("tuple[Direction, ...]", directions)  # checked just above
        self.trials: list[dict[str, Any]] = []  # every asked trial, as plain data
        self.study = self._new_study()

    def _make_sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def _new_study(self) -> Any:
        # The samplers' incremental search-space cache, shared by the sampler
        # rebuilt for each trial (one per study): the same result, without
        # recomputing it over every trial at every ask.
        self._space_cache = None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            sampler=self._make_sampler(self.seed), directions=list(self.directions)
        )

    def _propose(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            trial, actions = self._ask_trial()
            tries = 0
            while self.dedup_tries > 0 and self._is_repeat(actions):
                fixed = None
                if tries == self.dedup_tries:  # every draw repeated: the nearest new one
                    fixed = self._nearest_unproposed(actions)
                    if fixed is None:  # the space is exhausted: the repeat is proposed
                        break
                self._close_repeat(trial)  # closed untrained, and Optuna is asked again
                trial, actions = self._ask_trial(fixed)
                tries += 1
            proposal = self._make(actions)
            proposal.info["trial"] = trial.number
            proposals.append(self._remember(proposal))
        return proposals

    def _close_repeat(self, trial: Any) -> None:
        self.study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        self.trials[-1].update(state="repeat", system_attrs=dict(frozen.system_attrs))

    def _ask_trial(self, fixed: Sequence[int] | None = None) -> tuple[Any, tuple[int, ...]]:
        """One Optuna trial (sampler seeded by the trial number) and its padded actions;
        ``fixed``: a trial of these actions (enqueued: the sampler draws none)."""
        k = self.space.num_active
        number = len(self.study.get_trials(deepcopy=False))
        sampler = self._make_sampler(self.seed * _SEED_STRIDE + number)
        if hasattr(sampler, "_search_space"):
            if self._space_cache is None:
                self._space_cache = sampler._search_space
            sampler._search_space = self._space_cache
        self.study.sampler = sampler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if fixed is not None:
                self.study.enqueue_trial(
                    {d.name: int(fixed[i]) for i, d in enumerate(self.space.decisions[:k])})
            trial = self.study.ask()
            actions = [
                trial.suggest_categorical(d.name, list(range(d.size)))
                for d in self.space.decisions[:k]
            ]
        self.trials.append({"number": trial.number, "params": dict(trial.params)})
        return trial, tuple(actions + [0] * (len(self.space.decisions) - k))

    def _values(self, value: Any) -> list[float]:
        if isinstance(value, dict):
            missing = [o for o in self.objectives if o not in value]
            if missing:
                raise ValueError(f"objectives {missing} missing from {sorted(value)}")
            value = [value[o] for o in self.objectives]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        if len(value) != len(self.objectives):
            raise ValueError(
                f"expected {len(self.objectives)} values {list(self.objectives)}, got {value!r}"
            )
        values = [float(v) for v in value]
        if not all(v == v and abs(v) != float("inf") for v in values):
            raise ValueError(f"values must be finite, got {values}; tell None when invalid")
        return values

    def _check_value(self, value: Any) -> Any:
        return None if value is None else self._values(value)

    def objective_values(self, reward: float, metrics: Any = None) -> dict[str, float]:
        """Pick this strategy's objectives from a trained child's metrics."""
        found: dict[str, Any] = {"reward": reward}
        if metrics is not None:
            found.update(getattr(metrics, "extra", {}) or {})
            found.update(val_acc=metrics.val_acc, params=metrics.params)
        missing = [o for o in self.objectives if found.get(o) is None]
        if missing:
            raise ValueError(
                f"objectives {missing} were not measured; available: {sorted(found)} "
                "(latency_ms needs a latency probe: latency=eager_cpu)"
            )
        return {o: float(found[o]) for o in self.objectives}

    def _learn(self, proposals: list[Proposal], rewards: list[Any]) -> dict[str, float]:
        by_number = {t["number"]: t for t in self.trials}
        for p, values in zip(proposals, rewards, strict=True):
            number = p.info.get("trial")
            record = by_number.get(number)
            if record is None or "state" in record:
                raise ValueError(f"proposal {p.id} is not an open trial of this strategy")
            if values is None:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
                record["state"] = "fail"
            else:
                self.study.tell(number, values)
                record.update(state="complete", values=list(values))
            frozen = self.study.get_trials(deepcopy=False)[number]
            record["system_attrs"] = dict(frozen.system_attrs)
        done = [t for t in self.trials if t.get("state") == "complete"]
        stats = {"trials_complete": float(len(done))}
        if len(self.objectives) == 1 and done:
            pick = max if self.directions[0] == "maximize" else min
            stats["best"] = pick(t["values"][0] for t in done)
        return stats

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["trials"] = copy.deepcopy(self.trials)
        # Samplers keep state in the study too (NSGA-II: each generation's parents).
        storage, study_id = self.study._storage, self.study._study_id
        state["study_system_attrs"] = copy.deepcopy(storage.get_study_system_attrs(study_id))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trials = copy.deepcopy(list(state["trials"]))
        self.study = self._new_study()
        states = {
            "complete": optuna.trial.TrialState.COMPLETE,
            "fail": optuna.trial.TrialState.FAIL,
            "repeat": optuna.trial.TrialState.PRUNED,
            None: optuna.trial.TrialState.RUNNING,  # asked, not told when saved
        }
        for t in self.trials:
            distributions: dict[str, optuna.distributions.BaseDistribution] = {
                d.name: optuna.distributions.CategoricalDistribution(list(range(d.size)))
                for d in self.space.decisions
                if d.name in t["params"]
            }
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=states[t.get("state")],
                    values=t.get("values"),
                    params=t["params"],
                    distributions=distributions,
                    system_attrs=t.get("system_attrs", {}),
                )
            )
        # Trial ids in them match: a fresh in-memory study numbers trials as added.
        storage, study_id = self.study._storage, self.study._study_id
        for key, value in state.get("study_system_attrs", {}).items():
            storage.set_study_system_attr(study_id, key, copy.deepcopy(value))


class TPE(OptunaStrategy):
    """Tree-structured Parzen estimator (Optuna's ``TPESampler``).

    Args:
        space: the search space.
        n_startup_trials: random trials before TPE models the history.
        multivariate: model decisions jointly (Optuna's multivariate TPE),
            which suits architectures, whose decisions interact.
        objectives, directions, dedup_tries, seed: see :class:`OptunaStrategy`.
    """

    def __init__(
        self,
        space: SearchSpace,
        n_startup_trials: int = 10,
        multivariate: bool = True,
        objectives: Sequence[str] = ("reward",),
        directions: Sequence[str] | None = None,
        dedup_tries: int = 0,
        seed: int = 0,
    ) -> None:
        if not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ConfigError(
                "n_startup_trials", f"must be an integer >= 0, got {n_startup_trials!r}"
            )
        self.n_startup_trials, self.multivariate = n_startup_trials, bool(multivariate)
        super().__init__(
            space, objectives=objectives, directions=directions, dedup_tries=dedup_tries, seed=seed
        )

    def _make_sampler(self, seed: int) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate,
                seed=seed,
            )


def nsga2_population(budget: int | None, divisor: int = 100, low: int = 3, high: int = 50) -> int:
    """NSGA-II's population for a budget: ``budget // divisor``, within ``[low, high]``.

    Optuna's NSGA-II breeds a whole generation from the same parents and keeps
    the best ``population_size`` of parents and children (on one objective, a
    truncation), so a small population means more generations, each building
    on the last. By default a population of 3 up to 399 children, then
    ``budget // 100`` (10 at 1,000); evolution's :func:`budget_population`
    (a fifth of the budget) is left to evolution.
    """
    return budget_population(budget, low=low, high=high, divisor=divisor)


class NSGA2(OptunaStrategy):
    """NSGA-II (Optuna's ``NSGAIISampler``): a Pareto search over several objectives.

    For MnasNet's trade-off: ``objectives=("val_acc", "latency_ms")`` with a
    latency probe, instead of folding latency into a scalar reward.

    Args:
        space: the search space.
        population_size: children per generation; None: from ``budget``,
            ``budget // population_divisor`` within ``min_population``..50
            (:func:`nsga2_population`: 3 up to 399 children).
        mutation_prob: per-decision mutation probability (None: Optuna's
            ``1 / number of decisions``).
        crossover_prob: probability of a crossover (else a copy of a parent).
        swapping_prob: Optuna's uniform crossover: the share of decisions
            taken from the first parent (0.5: each parent alike).
        population_divisor, min_population: size the population from
            ``budget`` when ``population_size`` is None.
        objectives, directions, dedup_tries, seed: see :class:`OptunaStrategy`.
        budget: the children the search will train; only read when
            ``population_size`` is None.
    """

    def __init__(
        self,
        space: SearchSpace,
        population_size: int | None = 50,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        population_divisor: int = 100,
        min_population: int = 3,
        objectives: Sequence[str] = ("reward",),
        directions: Sequence[str] | None = None,
        budget: int | None = None,
        dedup_tries: int = 0,
        seed: int = 0,
    ) -> None:
        for name, value, low in (
            ("population_divisor", population_divisor, 1),
            ("min_population", min_population, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(name, f"must be an integer >= {low}, got {value!r}")
        if population_size is None:
            population_size = nsga2_population(
                budget, divisor=population_divisor, low=min_population, high=50
            )
        if not isinstance(population_size, int) or population_size < 2:
            raise ConfigError(
                "population_size", f"must be an integer >= 2, got {population_size!r}"
            )
        if mutation_prob is not None and not 0 <= mutation_prob <= 1:
            raise ConfigError("mutation_prob", f"must be in [0, 1] or null, got {mutation_prob}")
        if not 0 <= crossover_prob <= 1:
            raise ConfigError("crossover_prob", f"must be in [0, 1], got {crossover_prob}")
        if not 0 <= swapping_prob <= 1:
            raise ConfigError("swapping_prob", f"must be in [0, 1], got {swapping_prob}")
        self.population_size = population_size
        self.mutation_prob, self.crossover_prob = mutation_prob, crossover_prob
        self.swapping_prob = swapping_prob
        super().__init__(
            space, objectives=objectives, directions=directions, dedup_tries=dedup_tries, seed=seed
        )

    def _make_sampler(self, seed: int) -> Any:
        return optuna.samplers.NSGAIISampler(
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            swapping_prob=self.swapping_prob,
            seed=seed,
        )

    def pareto_front(self) -> list[dict[str, Any]]:
        """The told trials no other dominates: ``[{"number", "params", "values"}]``."""
        return [
            {"number": t.number, "params": dict(t.params), "values": list(t.values)}
            for t in self.study.best_trials
        ]
