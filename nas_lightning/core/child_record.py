"""The child record: one line of a run folder's ``children.jsonl``.

Every driver (the standalone search, ENAS's controller steps and its final
candidates) builds its records here, and every reader (resume, ``runs``,
pictures, loggers) can check one with :meth:`ChildRecord.from_dict`. A
record is a frozen value: written once, then only read.

Fields, in the order a line holds them:

- ``index``: the child's number, from 0 (consoles and pictures add 1).
- ``status``: ``ok``, ``failed`` or ``diverged`` (what the executor
  reported).
- ``reward``: what the strategy was told; ``None`` when the child did not
  finish.
- ``val_acc`` / ``val_curve``: final and per-epoch validation accuracy.
- ``params``: trainable parameters of the child network.
- ``seconds``: wall time of the child.
- ``genotype``: the architecture as a dict (``genotype_from_dict`` reads it).
- ``actions``: the controller's decisions that produced it.
- ``steps``: decisions of a partial proposal (``None``: all of them).
- ``extra``: what the child runner measured beyond the above (latency,
  MACs, timings, ENAS step numbers).
- optional, written only when set: ``error`` (one line), ``attempt``
  (retries after a lost worker), ``worker``, ``weight_sharing`` (scored with
  shared weights) and ``phase`` (``final``: an ENAS final candidate).
- with a multi-fidelity scheduler (``search.scheduler``): ``rung``, the
  highest rung the child reached (0: the first), and ``final_reward``, its
  reward where its training stopped; ``reward`` is then the reward at the
  first rung, the one the strategy was told.

No torch here: a run folder can be read where torch is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

STATUSES = ("ok", "failed", "diverged")
_OPTIONAL = ("error", "attempt", "worker", "weight_sharing", "phase")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ChildRecord:
    index: int
    status: str
    reward: float | None = None
    val_acc: float | None = None
    genotype: Mapping[str, Any] | None = None
    actions: tuple[int, ...] = ()
    seconds: float = 0.0
    val_curve: tuple[float, ...] = ()
    params: int | None = None
    steps: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempt: int = 0
    worker: str | None = None
    weight_sharing: bool = False
    phase: str | None = None
    rung: int | None = None
    final_reward: float | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"child record {self.index!r}: {problem}")

    def _problem(self) -> str | None:
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 0:
            return "index must be an integer >= 0"
        if self.status not in STATUSES:
            return f"status must be one of {', '.join(STATUSES)}, got {self.status!r}"
        if self.rung is not None and (not isinstance(self.rung, int)
                                      or isinstance(self.rung, bool) or self.rung < 0):
            return f"rung must be an integer >= 0 or null, got {self.rung!r}"
        for name in ("reward", "val_acc", "final_reward"):
            value = getattr(self, name)
            if value is not None and not _number(value):
                return f"{name} must be a number or null, got {value!r}"
        if self.status == "ok" and self.reward is not None and not math.isfinite(self.reward):
            return f"an ok child's reward must be finite, got {self.reward!r}"
        if self.genotype is not None and not isinstance(self.genotype, Mapping):
            return "genotype must be an object or null"
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in self.actions):
            return "actions must be integers"
        if not _number(self.seconds) or self.seconds < 0:
            return f"seconds must be a number >= 0, got {self.seconds!r}"
        if not all(_number(v) for v in self.val_curve):
            return "val_curve must hold numbers"
        if not isinstance(self.extra, Mapping):
            return "extra must be an object"
        if not isinstance(self.attempt, int) or self.attempt < 0:
            return "attempt must be an integer >= 0"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object; optional fields appear only when set."""
        out: dict[str, Any] = {
            "index": self.index,
            "status": self.status,
            "reward": self.reward,
            "val_acc": self.val_acc,
            "val_curve": list(self.val_curve),
            "params": self.params,
            "seconds": self.seconds,
            "genotype": dict(self.genotype) if self.genotype is not None else None,
            "actions": list(self.actions),
            "steps": self.steps,
            "extra": dict(self.extra),
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.rung is not None:  # rung 0 included
            out["rung"] = self.rung
        if self.final_reward is not None:
            out["final_reward"] = self.final_reward
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChildRecord:
        """A record read back; a missing or ill-typed field is a one-line ``ValueError``.

        Keys this version does not know (written by a newer one, or added by a
        user's tool) are ignored.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a child record is a JSON object, got {type(data).__name__}")
        missing = [k for k in ("index", "status") if k not in data]
        if missing:
            raise ValueError(f"child record {data.get('index')!r} lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("actions", "val_curve"):
            if name in values:
                if not isinstance(values[name], list | tuple):
                    raise ValueError(f"child record {data.get('index')!r}: {name} must be a list")
                values[name] = tuple(values[name])
        for name in ("extra", "seconds", "attempt", "actions", "val_curve"):
            if values.get(name) is None:
                values.pop(name, None)
        return cls(**values)


def final_reward(record: Mapping[str, Any]) -> float | None:
    """A record's reward where its training stopped (its ``reward`` without a scheduler)."""
    final = record.get("final_reward")
    return final if final is not None else record.get("reward")


def best_key(record: Mapping[str, Any]) -> tuple[int, float]:
    """How ok records rank for ``best.json``: the highest rung reached (0 without a
    scheduler), then the reward where the child stopped."""
    rung, final = record.get("rung"), final_reward(record)
    if final is None:
        raise ValueError(f"child record {record.get('index')!r} has no reward to rank")
    return (int(rung) if rung is not None else 0, float(final))
