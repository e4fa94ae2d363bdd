"""NetAdapt (Yang et al. 2018) as MobileNetV3 uses it (Howard et al. 2019, section 4.2).

Starting from a network of the mobile space, every iteration proposes, for
every stage, the *smallest* reduction of each kind that cuts the network's
latency by at least a step δ:

* ``expansion``: the hidden width of the stage's ``ir`` layers, 8 channels at a time;
* ``filters``: the stage's output filters, 8 at a time, together with every
  stage (and the stem) tied to it by residual connections, so residuals
  survive (the paper's "reduce the bottleneck in all blocks that share it");
* ``layers``: one layer fewer (more if one does not cut δ).

Latency is the sum of a per-layer lookup table (``netadapt_parts.TableLatency``, keyed
like :func:`nas_lightning.models.mobile.mobile_layers`), so scanning hundreds
of candidate reductions costs table lookups and a measurement only for layers
never seen before. Each proposal is then trained by the search loop and told
back; the one with the best ``Δreward / |Δlatency|`` against the current
network becomes current (the MobileNetV3 criterion; NetAdapt's own paper
kept the most accurate). The search stops once the current network's latency
is at or below the target, or when no stage can be cut by δ.

Differences from the papers, on purpose: proposals are trained from scratch
with the search's proxy recipe (``conf/child``), not fine-tuned from the
parent's weights; and the reward is whatever the loop tells (plain
validation accuracy with ``reward=val_acc``, the paper's criterion). The
reductions, the table and the proxy network live in ``netadapt_parts.py``.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Sequence
from typing import Any, overload

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.base import genotype_from_dict, genotype_to_dict, load_genotype
from nas_lightning.genotypes.mobile import MobileGenotype
from nas_lightning.latency.table import LatencyTable
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy
from nas_lightning.strategies.netadapt_parts import (
    KINDS,
    STEM,
    TableLatency,
    reductions,
    residual_groups,
)

log = logging.getLogger(__name__)


def _check_steps(target_ms: Any, target_ratio: Any, step_ms: Any, step_ratio: Any,
                 step_decay: Any) -> None:
    """The target and the step of NetAdapt's latency schedule (errors name the key)."""
    if target_ms is not None and not _positive(target_ms):
        raise ConfigError("target_ms", f"must be a positive number of ms, got {target_ms!r}")
    if target_ratio is not None and not (_positive(target_ratio) and target_ratio <= 1):
        raise ConfigError("target_ratio", f"must be in (0, 1], got {target_ratio!r}")
    if target_ms is None and target_ratio is None:
        raise ConfigError("target_ms", "NetAdapt needs target_ms or target_ratio")
    if step_ms is not None and not _positive(step_ms):
        raise ConfigError("step_ms", f"must be a positive number of ms, got {step_ms!r}")
    if not (_positive(step_ratio) and step_ratio < 1):
        raise ConfigError("step_ratio", f"must be in (0, 1), got {step_ratio!r}")
    if not (_positive(step_decay) and step_decay <= 1):
        raise ConfigError("step_decay", f"must be in (0, 1], got {step_decay!r}")


def _check_counts(max_proposals: Any, calibration_repeats: Any) -> None:
    """How many proposals and calibration repeats (errors name the key)."""
    if max_proposals is not None and (not isinstance(max_proposals, int) or max_proposals < 1):
        raise ConfigError(
            "max_proposals", f"must be an integer >= 1 or null, got {max_proposals!r}"
        )
    if not isinstance(calibration_repeats, int) or calibration_repeats < 1:
        raise ConfigError(
            "calibration_repeats", f"must be an integer >= 1, got {calibration_repeats!r}"
        )


def _latency_estimator(latency: Any, statistic: str, calibrate: bool, verify_rounds: int) -> Any:
    """The estimator NetAdapt decides with: a TableLatency (built from a probe if given one)."""
    if latency is None:
        latency = TableLatency(statistic=statistic)
    elif not isinstance(latency, TableLatency) and hasattr(latency, "table_repeats"):
        latency = TableLatency.from_probe(latency, statistic)  # a LatencyProbe
    if not callable(latency):
        raise ConfigError("latency", f"needs a TableLatency or a LatencyProbe, got {latency!r}")
    if not isinstance(verify_rounds, int) or verify_rounds < 0:
        raise ConfigError("verify_rounds", f"must be an integer >= 0, got {verify_rounds!r}")
    for key, on in (("calibrate", calibrate), ("verify_rounds", verify_rounds)):
        if on and not hasattr(latency, "measure_network"):
            raise ConfigError(key, "this latency estimator cannot time whole networks")
    return latency


class NetAdapt(Strategy):
    """NetAdapt over one mobile network, proposal by proposal through ask/tell.

    The first proposal is the start network itself (its reward is the
    reference); then each iteration's proposals are asked one at a time and,
    once all are told, the best ``Δreward / |Δlatency|`` becomes the current
    network. Proposals are genotypes outside the space's action grid
    (``actions=()``). The search is sequential: when an iteration's
    proposals have all been asked, asking again (or reading ``finished``)
    counts those never told as failed (the loop tells no reward for a
    crashed child).

    Args:
        space: the search space (its ``base`` is the start network when
            ``genotype`` is None).
        genotype: the start network: a mobile genotype, a registered name or
            a JSON file (a run's ``best.json`` too).
        latency: a :class:`TableLatency`, a ``LatencyProbe`` (its settings and
            table file are used) or None (eager CPU, 1 thread, 224x224).
        target_ms: stop once the current latency is at or below this.
        target_ratio: if no ``target_ms``: the target as a fraction of the
            start network's latency.
        step_ms: δ, the least latency cut of a proposal, in ms.
        step_ratio: if no ``step_ms``: δ as a fraction of the start network's
            latency (the MobileNetV3 paper: 0.01).
        step_decay: δ is multiplied by this after every iteration (NetAdapt's
            schedule; 1 keeps it constant).
        kinds: the reductions to propose (``expansion``, ``filters``, ``layers``).
        max_proposals: at most this many proposals per iteration, drawn at
            random (seeded) from all of them; None: all (the paper).
        calibrate: time the whole start network once and scale the table by
            measured/table, so that targets and δ are in measured milliseconds.
        calibration_repeats: timed runs of that measurement.
        statistic: ``median`` or ``min`` of timed runs, for new table entries
            and the calibration (when ``latency`` is not a ready estimator).
        verify_rounds: when the table says the target is reached, time the
            whole current and start networks this many times, alternating, and
            stop only if the start latency times the median ratio is at or
            below the target too (else iterate on); 0: trust the table.
        seed: randomness of ``max_proposals`` draws only.
    """

    STAT_KEYS = (
        "netadapt/iteration",
        "netadapt/latency_ms",
        "netadapt/current_latency_ms",
        "netadapt/current_reward",
        "netadapt/step_ms",
        "netadapt/decided",
        "netadapt/chosen_latency_ms",
        "netadapt/chosen_reward",
    )

    def __init__(
        self,
        space: SearchSpace,
        genotype: MobileGenotype | str | None = None,
        latency: Any = None,
        target_ms: float | None = None,
        target_ratio: float | None = None,
        step_ms: float | None = None,
        step_ratio: float = 0.01,
        step_decay: float = 1.0,
        kinds: Sequence[str] = KINDS,
        max_proposals: int | None = None,
        calibrate: bool = False,
        calibration_repeats: int = 20,
        statistic: str = "median",
        verify_rounds: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        self.start = _start_genotype(space, genotype)
        _check_steps(target_ms, target_ratio, step_ms, step_ratio, step_decay)
        self.kinds = tuple(kinds)
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ConfigError("kinds", f"must be a non-empty subset of {list(KINDS)}, got {bad}")
        _check_counts(max_proposals, calibration_repeats)
        latency = _latency_estimator(latency, statistic, calibrate, verify_rounds)
        self.latency = latency
        self.target_ms, self.target_ratio = target_ms, target_ratio
        self.step_ms, self.step_ratio, self.step_decay = step_ms, step_ratio, step_decay
        self.max_proposals = max_proposals
        self.calibrate, self.calibration_repeats = calibrate, calibration_repeats
        self.verify_rounds = verify_rounds
        # Progress (all plain data, saved by state_dict).
        self.scale = 1.0  # measured / table of the start network (1 without calibration)
        self.calibration: dict[str, Any] = {}  # that measurement, for the report
        self.target: float | None = None  # ms, resolved at the start
        self.step: float | None = None  # δ of the current iteration, ms
        self.iteration = 0  # 0: the start network
        self.current: dict[str, Any] | None = None  # genotype, latency_ms, reward, child
        self.pending: list[dict[str, Any]] = []  # proposals of this iteration not asked yet
        self.outstanding: dict[str, dict[str, Any]] = {}  # asked, not told, by slot
        self.results: list[dict[str, Any]] = []  # told in this iteration
        self.history: list[dict[str, Any]] = []  # one entry per decision (the start first)
        self.needs_proposals = True
        self.needs_verify = False
        self._finished = False
        self.reason = ""

    # -- latency ----------------------------------------------------------------
    def latency_of(self, genotype: MobileGenotype) -> float:
        """The latency NetAdapt decides on: the table's sum times the calibration scale."""
        return float(self.latency(genotype)) * self.scale

    # -- progress ---------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether NetAdapt is done. Reading it changes nothing: an iteration is
        decided, verified and the next one prepared when its last reward is told."""
        return self._finished

    def can_ask(self, in_flight: int) -> bool:
        """An iteration decides only once all its proposals are told: wait for them."""
        return in_flight == 0 or bool(self.pending)

    def _advance(self) -> None:
        if self._finished or self.pending:
            return
        if self.outstanding:  # the iteration is asked out: untold proposals failed
            for entry in self.outstanding.values():
                self.results.append({**entry, "reward": None})
            self.outstanding.clear()
            self._decide()
        if not self._finished and self.needs_verify:
            self.needs_verify = False
            if self._verify():
                current = self._current()
                self._finish(
                    f"target reached: {self.history[-1]['verified_ms']:.3f} ms measured "
                    f"(table {current['latency_ms']:.3f} ms) <= {self.target:.3f} ms"
                )
            else:
                self.iteration += 1
                self.needs_proposals = True
        if not self._finished and self.needs_proposals:
            self._generate()

    def _generate(self) -> None:
        self.needs_proposals = False
        if self.current is None:
            self._start()
            return
        proposals, seen = [], {self.current["genotype"]}
        units = [[i] for i in range(len(self.current["genotype"].stages))]
        groups = residual_groups(self.current["genotype"])
        for kind in self.kinds:
            for unit in groups if kind == "filters" else units:
                found = self._smallest(unit, kind, seen)
                if found is not None:
                    proposals.append(found)
        if self.max_proposals is not None and len(proposals) > self.max_proposals:
            keep = sorted(self.rng.sample(range(len(proposals)), self.max_proposals))
            proposals = [proposals[i] for i in keep]
        if not proposals:
            self._finish(f"no stage can be cut by δ = {self.step:.3f} ms")
            return
        for j, p in enumerate(proposals):
            p["slot"] = f"{self.iteration}:{j}"
        self.pending = proposals
        log.info(
            "netadapt iteration %d: %d proposals, δ = %.3f ms, current %.3f ms",
            self.iteration,
            len(proposals),
            self.step,
            self.current["latency_ms"],
        )

    def _start(self) -> None:
        table_ms = float(self.latency(self.start))
        if self.calibrate:
            rec = self.latency.measure_network(self.start, 3, self.calibration_repeats)
            figure = self.latency.figure(rec) if hasattr(self.latency, "figure") else rec.median_ms
            self.scale = figure / table_ms
            self.calibration = {k: v for k, v in rec.to_dict().items() if k != "times_ms"}
            log.info(
                "netadapt calibration: measured %.3f ms (median %.3f, IQR %.3f) / table "
                "%.3f ms = %.3f",
                figure,
                rec.median_ms,
                rec.iqr_ms,
                table_ms,
                self.scale,
            )
        start_ms = table_ms * self.scale
        if self.target_ms is not None:
            self.target = self.target_ms
        else:
            assert self.target_ratio is not None, "_check_steps requires one of the two"
            self.target = self.target_ratio * start_ms
        self.step = self.step_ms if self.step_ms is not None else self.step_ratio * start_ms
        self.pending = [
            {
                "slot": "0:0",
                "genotype": self.start,
                "kind": "start",
                "stage": None,
                "stages": [],
                "change": "",
                "latency_ms": start_ms,
                "cut_ms": 0.0,
            }
        ]

    def _smallest(self, unit: list[int], kind: str, seen: set) -> dict[str, Any] | None:
        """The smallest reduction of ``kind`` of ``unit`` that cuts at least δ, if any."""
        current = self._current()
        for genotype, change in reductions(current["genotype"], unit, kind):
            if genotype in seen:
                return None  # the same network as another proposal (or the current one)
            latency = self.latency_of(genotype)
            cut = current["latency_ms"] - latency
            if cut >= self.step:
                seen.add(genotype)
                stages = [i for i in unit if i != STEM]
                return {
                    "genotype": genotype,
                    "kind": kind,
                    "stage": stages[0],
                    "stages": unit,
                    "change": change,
                    "latency_ms": latency,
                    "cut_ms": cut,
                }
        return None

    def _finish(self, reason: str) -> None:
        self._finished, self.reason = True, reason
        self.pending = []
        log.info("netadapt finished: %s", reason)

    def _current(self) -> dict[str, Any]:
        """The current network, set once the start network's reward is told."""
        assert self.current is not None, "NetAdapt has no current network before the start"
        return self.current

    # -- ask / tell -------------------------------------------------------------
    def _propose(self, n: int) -> list[Proposal]:
        self._advance()
        if not self.pending:
            raise RuntimeError(f"NetAdapt has nothing to propose: {self.reason or 'waiting'}")
        taken, self.pending = self.pending[:n], self.pending[n:]
        proposals = []
        for entry in taken:
            self.outstanding[entry["slot"]] = entry
            info = {
                k: entry[k]
                for k in ("slot", "kind", "stage", "stages", "change", "latency_ms", "cut_ms")
            }
            info["iteration"] = self.iteration
            proposals.append(
                Proposal(
                    id=self.num_proposed,
                    actions=(),
                    genotype=entry["genotype"],
                    info={"netadapt": info},
                )
            )
        return proposals

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        stats: dict[str, float] = dict.fromkeys(self.STAT_KEYS, math.nan)
        for p, r in zip(proposals, rewards, strict=True):
            slot = p.info.get("netadapt", {}).get("slot")
            entry = self.outstanding.pop(slot, None)
            if entry is None:
                log.warning("netadapt: a reward for %s, which is not awaited, is ignored", slot)
                continue
            reward = r if r is not None and math.isfinite(r) else None
            self.results.append({**entry, "reward": reward, "child": p.id})
            stats["netadapt/latency_ms"] = entry["latency_ms"]
        stats["netadapt/iteration"] = float(self.iteration)
        stats["netadapt/step_ms"] = _num(self.step)
        if self.current is not None:  # the network this iteration's proposals compete against
            stats["netadapt/current_latency_ms"] = self.current["latency_ms"]
            stats["netadapt/current_reward"] = _num(self.current["reward"])
        if not self.pending and not self.outstanding:
            decisions = len(self.history)
            self._decide()
            if len(self.history) > decisions:
                stats["netadapt/decided"] = 1.0
                if self.history[-1]["chosen"] is not None:  # then the chosen one is current
                    current = self._current()
                    stats["netadapt/chosen_latency_ms"] = current["latency_ms"]
                    stats["netadapt/chosen_reward"] = _num(current["reward"])
            self._advance()  # verify, then the next iteration's proposals (or the end)
        return stats

    def _decide(self) -> None:
        """Pick the iteration's best proposal and make it the current network."""
        results, self.results = self.results, []
        entry: dict[str, Any] = {
            "iteration": self.iteration,
            "step_ms": self.step,
            "target_ms": self.target,
            "proposals": [],
            "chosen": None,
        }
        if self.current is None:  # the start network
            (start,) = results
            entry["proposals"] = [_public(start)]
            if start["reward"] is None:
                self.history.append(entry)
                self._finish("the start network failed to train")
                return
            entry["chosen"] = 0
            self.current = {k: start[k] for k in ("genotype", "latency_ms", "reward", "child")}
            entry.update(latency_ms=start["latency_ms"], reward=start["reward"], scale=self.scale)
            self.history.append(entry)
            self._next_iteration()
            return
        base = self.current
        best, best_ratio = None, -math.inf
        for j, r in enumerate(results):
            ratio = None
            if r["reward"] is not None:
                cut = max(base["latency_ms"] - r["latency_ms"], 1e-9)  # >= δ by construction
                ratio = (r["reward"] - base["reward"]) / cut
                if ratio > best_ratio:
                    best, best_ratio = j, ratio
            entry["proposals"].append({**_public(r), "ratio": ratio})
        entry.update(chosen=best, from_latency_ms=base["latency_ms"], from_reward=base["reward"])
        self.history.append(entry)
        if best is None:
            self._finish(f"every proposal of iteration {self.iteration} failed")
            return
        chosen = results[best]
        self.current = {k: chosen[k] for k in ("genotype", "latency_ms", "reward", "child")}
        entry.update(latency_ms=chosen["latency_ms"], reward=chosen["reward"])
        log.info(
            "netadapt iteration %d: %s of stage %s (%s): %.3f -> %.3f ms, reward %.4f -> %.4f",
            self.iteration,
            chosen["kind"],
            chosen["stage"],
            chosen["change"],
            base["latency_ms"],
            chosen["latency_ms"],
            base["reward"],
            chosen["reward"],
        )
        assert self.step is not None, "_start sets δ before the start network is told"
        self.step *= self.step_decay
        self._next_iteration()

    def _verify(self) -> bool:
        """Whether the whole current network, timed against the start, meets the target."""
        figure = getattr(self.latency, "figure", lambda rec: rec.median_ms)
        ratios = []
        for _ in range(self.verify_rounds):  # alternating, so both see the same load
            start = figure(self.latency.measure_network(self.start, 2, 5))
            current = figure(self.latency.measure_network(self._current()["genotype"], 2, 5))
            ratios.append(current / start)
        ratio = statistics.median(ratios)
        measured = ratio * self.history[0]["latency_ms"]
        self.history[-1].update(verified_ms=measured, verified_ratio=ratio)
        log.info(
            "netadapt verification: measured %.3f x start = %.3f ms (target %.3f ms)",
            ratio,
            measured,
            self.target,
        )
        return measured <= self.target

    def _next_iteration(self) -> None:
        current = self._current()
        if current["latency_ms"] <= self.target and self.verify_rounds:
            self.needs_verify = True  # timed outside the child's training (in _advance)
            return
        if current["latency_ms"] <= self.target:
            self._finish(
                f"target reached: {current['latency_ms']:.3f} ms <= {self.target:.3f} ms"
            )
            return
        self.iteration += 1
        self.needs_proposals = True

    # -- results ----------------------------------------------------------------
    def path(self) -> list[dict[str, Any]]:
        """The chosen network of every iteration: latency, reward, change, child."""
        out = []
        for h in self.history:
            if h["chosen"] is None:
                continue
            p = h["proposals"][h["chosen"]]
            out.append(
                {
                    "iteration": h["iteration"],
                    "latency_ms": p["latency_ms"],
                    "reward": p["reward"],
                    "kind": p["kind"],
                    "stage": p["stage"],
                    "change": p["change"],
                    "child": p.get("child"),
                    "genotype": p["genotype"],
                }
            )
        return out

    def report(self) -> dict[str, Any]:
        """Everything NetAdapt decided, as JSON-ready data."""
        settings = self.latency.settings() if hasattr(self.latency, "settings") else {}
        return {
            "start": list(self.start.block_strings()),
            "target_ms": self.target,
            "scale": self.scale,
            "calibration": self.calibration,
            "finished": self._finished,
            "reason": self.reason,
            # the table says the target is met, but the budget ended before the
            # whole networks were timed to confirm it
            "verification_pending": bool(self.needs_verify and not self._finished),
            "latency_settings": settings,
            "path": self.path(),
            "history": self.history,
            "final": genotype_to_dict(self.current["genotype"]) if self.current else None,
        }

    def outputs(self) -> dict[str, Any]:
        """``netadapt.json`` (the report), ``netadapt_final.json`` (the final genotype)
        and ``netadapt_latency_table.json`` (the table it measured, when it built one)."""
        files: dict[str, Any] = {"netadapt.json": self.report()}
        if self.current is not None:
            files["netadapt_final.json"] = genotype_to_dict(self.current["genotype"])
        table = getattr(self.latency, "table", None)
        if isinstance(table, LatencyTable) and not table.readonly and len(table):
            files["netadapt_latency_table.json"] = table.to_dict()
        return files

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            scale=self.scale,
            calibration=json.loads(json.dumps(self.calibration)),
            target=self.target,
            step=self.step,
            iteration=self.iteration,
            current=_entry_out(self.current),
            pending=[_entry_out(e) for e in self.pending],
            outstanding={k: _entry_out(e) for k, e in self.outstanding.items()},
            results=[_entry_out(e) for e in self.results],
            history=json.loads(json.dumps(self.history)),
            needs_proposals=self.needs_proposals,
            needs_verify=self.needs_verify,
            finished=self._finished,
            reason=self.reason,
            latency=self.latency.state_dict() if hasattr(self.latency, "state_dict") else {},
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.scale, self.target, self.step = state["scale"], state["target"], state["step"]
        self.calibration = dict(state["calibration"])
        self.iteration = state["iteration"]
        self.current = _entry_in(state["current"])
        self.pending = [_entry_in(e) for e in state["pending"]]
        self.outstanding = {k: _entry_in(e) for k, e in state["outstanding"].items()}
        self.results = [_entry_in(e) for e in state["results"]]
        self.history = json.loads(json.dumps(state["history"]))
        self.needs_proposals, self._finished = state["needs_proposals"], state["finished"]
        self.needs_verify = state["needs_verify"]
        self.reason = state["reason"]
        if hasattr(self.latency, "load_state_dict"):
            self.latency.load_state_dict(state["latency"])


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _start_genotype(space: SearchSpace, genotype: Any) -> MobileGenotype:
    if genotype is None:
        genotype = getattr(space, "base", None)
        if genotype is None:
            raise ConfigError("genotype", "NetAdapt needs a start genotype (a name or a file)")
    try:
        genotype = load_genotype(genotype)
    except GenotypeError as err:
        raise ConfigError("genotype", str(err)) from None
    if not isinstance(genotype, MobileGenotype):
        raise ConfigError("genotype", f"NetAdapt needs a mobile genotype, got {genotype.kind!r}")
    return genotype


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """A told proposal for the history: block strings instead of the genotype object."""
    out = {k: v for k, v in entry.items() if k != "genotype"}
    out["genotype"] = list(entry["genotype"].block_strings())
    out["stages"] = list(entry.get("stages", []))
    return out


@overload
def _entry_out(entry: dict[str, Any]) -> dict[str, Any]: ...


@overload
def _entry_out(entry: None) -> None: ...


def _entry_out(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """An entry as plain data (loadable with ``torch.load(weights_only=True)``)."""
    if entry is None:
        return None
    out = dict(entry, genotype=genotype_to_dict(entry["genotype"]))
    if "stages" in out:
        out["stages"] = list(out["stages"])
    return out


@overload
def _entry_in(entry: dict[str, Any]) -> dict[str, Any]: ...


@overload
def _entry_in(entry: None) -> None: ...


def _entry_in(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return dict(entry, genotype=genotype_from_dict(entry["genotype"]))
