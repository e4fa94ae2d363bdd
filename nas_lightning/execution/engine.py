"""The one-way search engine: ask, submit, and for each result record, then tell.

Data flows one way. The strategy proposes on the driver; an executor trains
the trial wherever it likes and returns a plain :class:`Result`; the driver
computes the reward, writes the record (fsynced) and only then fires the
callbacks, the first of which (:class:`~nas_lightning.execution.callbacks.ControllerCallback`)
tells the strategy. Two ways to learn from parallel children:

* ``async``: tell each result as it arrives and ask a new child at once
  (PPO weights stale proposals by the log-probability stored at ask time);
* ``batch``: ask ``batch_size`` children, wait for all, tell them together
  (NAS-RL's m children per controller replica, NASNet's PPO batches).

Repeats (``search.repeats=reuse``, ``execution/repeats.py``): a proposal of
an architecture already recorded ``ok`` is told that child's reward through
the callbacks' ``on_repeat``; nothing trains and no child is counted. After
``reuse_limit`` such proposals in a row (the strategy has converged), or at
the first repeat once a small space has no architecture left to train, the
engine stops asking: :attr:`Engine.stopped` says why.

Resume: the strategy's state is saved after every ask and every tell, with
the trials asked but not yet told. A resumed search tells those already
recorded, trains the others again (they were in flight) and never trains a
recorded child twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nas_lightning.core.child_record import final_reward
from nas_lightning.core.records import RunRecorder, fault_point
from nas_lightning.errors import ConfigError
from nas_lightning.execution.base import Executor, Result, Shipped, Trial
from nas_lightning.execution.callbacks import ControllerCallback, FinishedChild, SearchCallback
from nas_lightning.execution.repeats import Repeats, proposal_key, space_architectures
from nas_lightning.genotypes.base import Genotype, genotype_from_dict, genotype_to_dict
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy

log = logging.getLogger("nas_lightning.search")
# the clock of ``search.max_minutes`` (tests replace it with one they step)
clock: Callable[[], float] = time.monotonic


class Engine:
    """Drive one search: the loop's state between asks and tells.

    Args:
        cfg: the search config (seed, run folder, resume).
        strategy, space: what proposes and what it proposes from.
        executor: where children train.
        recorder: the run folder's writer.
        reward_fn: ``Result -> reward`` on the driver (None for a failed child).
        record_fn: ``(trial, result, reward) -> record`` (one ``children.jsonl`` line).
        num_children: the budget, counted in children asked.
        mode: ``async`` or ``batch``; ``batch_size`` children per batch.
        replay: the callback that tells replayed children and reused proposals
            when the strategy is brought level with the records (the controller
            callback without a logger); default: a plain ``ControllerCallback``.
        repeats: ``train`` or ``reuse`` (see the module's docstring).
        reuse_limit: reused proposals in a row after which the search stops.
        max_seconds: no child is asked after this many seconds (None: no limit);
            children in flight finish. A resumed search counts from its restart.
        callbacks: told of each live (not replayed) group of finished
            children, in this order: the first one tells the strategy.
    """

    def __init__(
        self,
        cfg: DictConfig,
        strategy: Strategy,
        space: SearchSpace,
        executor: Executor,
        recorder: RunRecorder,
        reward_fn: Callable[[Result], float | None],
        record_fn: Callable[[Trial, Result, float | None], dict[str, Any]],
        num_children: int,
        mode: str = "async",
        batch_size: int = 1,
        replay: SearchCallback | None = None,
        repeats: str = "train",
        reuse_limit: int = 50,
        callbacks: Sequence[SearchCallback] = (),
        max_seconds: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.strategy, self.space, self.executor = strategy, space, executor
        self.recorder, self.reward_fn, self.record_fn = recorder, reward_fn, record_fn
        self.num_children, self.mode, self.batch_size = num_children, mode, batch_size
        self.replay = replay
        self.seed = int(cfg.seed)
        self.run_dir = Path(recorder.run_dir)
        self.records: list[dict[str, Any]] = []
        self.callbacks: list[SearchCallback] = list(callbacks)  # live children only
        self.pending: dict[int, Trial] = {}  # asked, not yet told
        self.done: dict[int, FinishedChild] = {}  # recorded, waiting to be told
        self.resubmit: list[Trial] = []
        self.next_index = 0
        self.repeats: Repeats[FinishedChild] = Repeats(repeats, reuse_limit)
        self.stopped: str | None = None  # why the search stopped asking before its budget
        self._architectures: dict[int, frozenset | None] = {}  # the space's, by live decisions
        # search.max_minutes: no child is asked after this (this process's clock)
        self.deadline = None if max_seconds is None else clock() + max_seconds

    # -- resume -----------------------------------------------------------------
    def restore(self, records: list[dict[str, Any]], state: dict[str, Any] | None) -> None:
        """Continue from a run folder's records and its saved strategy state.

        The state says how many children it has asked (``next_index``) and
        which of them were in flight. Records of children it had not asked
        (a state older than the records, or none at all) are replayed from
        it: :meth:`_replay_records`.

        Args:
            records: the recorded children (this list becomes the engine's own).
            state: ``strategy.pt`` as saved by :meth:`save_state` (None: none, or
                one that does not match the records; the strategy replays them).
        """
        self.records = records
        self.next_index = len(records)
        if not records:
            if self.cfg.get("resume"):
                log.info("resuming %s: no children recorded yet, starting afresh", self.run_dir)
            return
        state = dict(state) if state is not None else None
        engine = state.pop("engine", None) if state is not None else None
        trials: dict[int, Trial] = {}
        if state is not None:
            self.strategy.load_state_dict(state)
        if engine is not None:
            self.next_index = int(engine["next_index"])
            self.repeats.load_state_dict(engine)
            trials = {t["index"]: trial_from_state(t) for t in engine["pending"]}
            self.pending.update(sorted(trials.items()))
        else:  # no state (replay from the seed), or one saved without its trials in flight
            self.next_index = self.strategy.num_proposed if state is not None else 0
        seen = [r for r in records if r["index"] < self.next_index]
        ahead = [r for r in records if r["index"] >= self.next_index]
        for r in seen:
            self._remember(r)
            trial = trials.pop(r["index"], None)  # recorded but not told before the crash
            if trial is not None:
                result = Result(index=r["index"], status=r["status"], attempt=trial.attempt)
                self.done[trial.index] = FinishedChild(trial, result, r["reward"], r)
        if ahead:
            self._replay_records(ahead)
        self.resubmit = list(trials.values())  # lost in flight: train them again
        log.info("resuming %s after %d recorded children (%d to train again%s)", self.run_dir,
                 len(records), len(self.resubmit),
                 f", {len(ahead)} replayed" if ahead else "")

    def _replay_records(self, records: list[dict[str, Any]]) -> None:
        """Bring the strategy level with children it has not asked yet, training nothing.

        As the search did: ask (proposals of a known architecture are told its
        recorded reward, as ``search.repeats=reuse`` did live), check that each
        trained proposal is the recorded child, and tell the recorded rewards:
        one child at a time in async mode (a search that trains one child at
        a time), ``batch_size`` children together in batch mode.
        """
        teller = self.replay or ControllerCallback(self.strategy)
        done = list(self.done.values())  # recorded, not told: told before the next ask
        for c in done:
            del self.done[c.trial.index], self.pending[c.trial.index]
        for group in ([done] if self.mode == "batch" else [[c] for c in done]):
            if group:
                teller.on_children_end(group)
        order = {r["index"]: i for i, r in enumerate(records)}  # recorded (and told) in this order
        ahead = sorted(records, key=lambda r: r["index"])
        size = self.batch_size if self.mode == "batch" else 1
        for start in range(0, len(ahead), size):
            group = []
            for record in ahead[start:start + size]:
                if record["index"] != self.next_index:
                    raise ConfigError(
                        "resume", f"cannot replay child {record['index']}: the records skip "
                        f"child {self.next_index}; restore the run's strategy.pt"
                    )
                proposal = self._replay_ask(record, teller)
                trial = Trial(self.next_index, proposal, seed=self.seed + self.next_index)
                self.pending[trial.index] = trial
                self.next_index += 1
                group.append(FinishedChild(trial, _result_of(record), record["reward"], record))
            group.sort(key=lambda c: order[c.trial.index])
            for c in group:
                self._remember(c.record)
                del self.pending[c.trial.index]
            teller.on_children_end(group)
        self.save_state()  # the folder's state is level with its records again

    def _replay_ask(self, record: dict[str, Any], teller: SearchCallback) -> Proposal:
        """The next proposal to train (reused ones told on the way): ``record``'s."""
        while self.strategy.can_ask(len(self.pending)) and not self.strategy.finished:
            self.space.set_progress(self.next_index)
            proposal = self.strategy.ask()
            known = self.repeats.reuse(proposal_key(proposal.genotype, proposal.actions))
            if known is not None:
                teller.on_repeat(proposal, known, self.repeats.reused)
                continue
            if list(proposal.actions) != list(record["actions"]):
                raise ConfigError(
                    "resume",
                    f"child {record['index']} replays as {list(proposal.actions)}, recorded "
                    f"{record['actions']}: the config or seed differs from the original run",
                )
            return proposal
        raise ConfigError(
            "resume", f"child {record['index']} does not replay: the strategy stops before it "
            "(the config or seed differs from the original run)"
        )

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        for callback in self.callbacks:
            callback.on_search_start(self.run_dir, self.records)
        self._tell_ready()
        for trial in self.resubmit:
            self._submit(trial)
        self.resubmit = []
        while True:
            self._ask()
            if not self.executor.in_flight:
                break
            for result in self.executor.wait():
                self._finish(result)
            self._tell_ready()
        if self.pending:  # a batch cut short by its strategy: tell what finished
            self._tell_ready(force=True)

    def _ask(self) -> None:
        if self.stopped is not None:
            return
        if self.mode == "batch":
            if self.pending:
                return  # the batch is not told yet
            n = self.batch_size
        else:
            n = self.executor.free_slots()
        n = min(n, self.num_children - self.next_index)
        asked: list[Trial] = []
        reused = self.repeats.reused
        while len(asked) < n:
            if not self.strategy.can_ask(len(self.pending)):
                break
            if self.strategy.finished:
                log.info("strategy %s finished after %d children",
                         type(self.strategy).__name__, self.next_index)
                break
            if self._stop_repeating() or self._out_of_time():
                break
            self.space.set_progress(self.next_index)
            proposal = self.strategy.ask()
            known = self.repeats.reuse(proposal_key(proposal.genotype, proposal.actions))
            if known is not None:  # told its recorded reward: no child, ask again
                fault_point("engine.reuse")  # tests: killed inside a stretch of reuses
                for callback in self.callbacks:
                    callback.on_repeat(proposal, known, self.repeats.reused)
                continue
            trial = Trial(self.next_index, proposal, seed=self.seed + self.next_index)
            self.pending[trial.index] = trial
            self.next_index += 1
            asked.append(trial)
        if asked or self.repeats.reused != reused:
            self.save_state()  # before training: a crash now loses no proposal
            for trial in asked:
                self._submit(trial)

    def _submit(self, trial: Trial) -> None:
        self.executor.submit(trial)
        for callback in self.callbacks:
            callback.on_child_start(trial)

    def _out_of_time(self) -> bool:
        """Stop asking (and say so, once) once the search's time is up."""
        if self.deadline is None or clock() < self.deadline:
            return False
        self.stopped = "time"
        log.info("the search's time is up: no more children after %d (those in flight "
                 "finish)", self.next_index)
        return True

    def _stop_repeating(self) -> bool:
        """Stop asking (and say why, once) when proposing more would only repeat."""
        if self.repeats.in_row == 0:
            return False
        if self.repeats.converged:
            self.stopped = "converged"
            log.info("every proposal in the last %d was already trained: the strategy has "
                     "converged; stopping after %d children", self.repeats.limit,
                     self.next_index)
            return True
        live = self.space.num_active
        if live not in self._architectures:
            self._architectures[live] = space_architectures(self.space)
        every = self._architectures[live]
        if every is not None and every <= self.repeats.known.keys():
            self.stopped = "exhausted"
            log.info("the search space is exhausted: all %d of its architectures were "
                     "trained; stopping after %d children", len(every), self.next_index)
            return True
        return False

    def _remember(self, record: dict[str, Any], result: Result | None = None) -> None:
        """Keep an ok child for later repeats (its record, and its result when at hand)."""
        if self.repeats.mode != "reuse" or record["status"] != "ok":
            return
        actions = tuple(record["actions"])
        key = proposal_key(record.get("genotype"), actions)
        if result is None:  # from the run folder: the metrics the reward saw
            result = _result_of(record)
        trial = Trial(record["index"], Shipped(actions, record.get("genotype")), seed=0)
        self.repeats.add(key, FinishedChild(trial, result, record["reward"], record))

    def _finish(self, result: Result) -> None:
        trial = self.pending[result.index]
        trial.attempt = result.attempt
        reward = self.reward_fn(result)
        record = self.record_fn(trial, result, reward)
        self.recorder.append_child(record)  # on disk before anything learns from it
        self.records.append(record)
        best = self.recorder.best  # as it stands with this child: what its line shows
        self.done[trial.index] = FinishedChild(trial, result, reward, record,
                                               best_reward=final_reward(best) if best else None)
        self._remember(record, result)

    def _tell_ready(self, force: bool = False) -> None:
        if not self.done:
            return
        if self.mode == "batch" and not force and len(self.done) < len(self.pending):
            return
        groups = [list(self.done.values())] if self.mode == "batch" else [
            [c] for c in self.done.values()
        ]
        for group in groups:
            for c in group:
                del self.done[c.trial.index]
                del self.pending[c.trial.index]
            for callback in self.callbacks:
                callback.on_children_end(group)
        self.save_state()

    def save_state(self) -> None:
        """The strategy's state with the trials asked but not told (resume reads both)."""
        state = self.strategy.state_dict()
        state["engine"] = {
            "next_index": self.next_index,
            **self.repeats.state_dict(),
            "pending": [trial_to_state(t) for t in self.pending.values()],
        }
        self.recorder.save_strategy(state)


def _result_of(record: dict[str, Any]) -> Result:
    """A recorded child's result as the reward saw it (its metrics, without timings)."""
    extra = {k: v for k, v in (record.get("extra") or {}).items() if k != "timing"}
    ok = record["status"] == "ok"
    return Result(index=record["index"], status=record["status"],
                  val_acc=record["val_acc"] if ok else None,
                  val_curve=list(record.get("val_curve") or []),
                  params=record.get("params"), extra=extra, error=record.get("error"))


def trial_to_state(trial: Trial) -> dict[str, Any]:
    """A trial as plain data (``torch.load(weights_only=True)`` reads it back)."""
    p = trial.proposed
    structured = isinstance(p.genotype, Genotype)
    return {
        "index": trial.index,
        "seed": trial.seed,
        "attempt": trial.attempt,
        "id": p.id,
        "actions": list(p.actions),
        "genotype": genotype_to_dict(p.genotype) if structured else p.genotype,
        "structured": structured,
        "log_prob": p.log_prob,
        "info": p.info,
    }


def trial_from_state(state: dict[str, Any]) -> Trial:
    genotype = state["genotype"]
    if state["structured"]:
        genotype = genotype_from_dict(genotype)
    proposal = Proposal(
        id=state["id"], actions=tuple(state["actions"]), genotype=genotype,
        log_prob=state["log_prob"], info=dict(state["info"]),
    )
    return Trial(state["index"], proposal, seed=state["seed"], attempt=state["attempt"])
