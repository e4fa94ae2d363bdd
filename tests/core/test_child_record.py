"""The one definition of a child record: what the drivers write is what the readers accept."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from nas_lightning.core.child_record import ChildRecord
from nas_lightning.execution.base import Result, Trial
from nas_lightning.search.loop import _record
from nas_lightning.strategies.base import Proposal


def _trial(index=3, attempt=0):
    genotype = {"kind": "mobile", "stages": ["ir_r1_k3_s1_e1_c16"]}
    proposal = Proposal(id=index, actions=[1, 2, 0], genotype=genotype, info={"steps": None})
    return Trial(index, proposal, seed=0, attempt=attempt)


def test_a_search_record_round_trips_through_json():
    result = Result(index=3, status="ok", val_acc=0.8, val_curve=[0.5, 0.8], params=1234,
                    seconds=1.23456, extra={"latency_ms": 2.5})
    record = _record(_trial(), result, reward=0.8)
    line = json.loads(json.dumps(record))
    back = ChildRecord.from_dict(line)
    assert back.to_dict() == record
    assert back.actions == (1, 2, 0) and back.val_curve == (0.5, 0.8)
    assert record["seconds"] == 1.235
    assert "error" not in record and "attempt" not in record  # optional fields only when set


def test_optional_fields_are_written_when_set():
    result = Result.failure(_trial(attempt=2), RuntimeError("boom\nsecond line"))
    record = _record(_trial(attempt=2), result, reward=None)
    assert record["status"] == "failed" and record["reward"] is None
    assert record["attempt"] == 2 and record["error"] == "RuntimeError: boom"
    assert ChildRecord.from_dict(record).to_dict() == record


def test_a_record_is_frozen():
    record = ChildRecord(index=0, status="ok", reward=0.5, val_acc=0.5)
    with pytest.raises(AttributeError):
        record.reward = 0.9  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, words",
    [
        ({"status": "ok"}, "lacks index"),
        ({"index": 1}, "lacks status"),
        ({"index": -1, "status": "ok"}, "index must be an integer"),
        ({"index": True, "status": "ok"}, "index must be an integer"),
        ({"index": 1, "status": "great"}, "status must be one of ok, failed, diverged"),
        ({"index": 1, "status": "ok", "reward": "high"}, "reward must be a number"),
        ({"index": 1, "status": "ok", "reward": math.nan}, "must be finite"),
        ({"index": 1, "status": "ok", "actions": "012"}, "actions must be a list"),
        ({"index": 1, "status": "ok", "actions": [1, "a"]}, "actions must be integers"),
        ({"index": 1, "status": "ok", "genotype": [1]}, "genotype must be an object"),
        ({"index": 1, "status": "ok", "extra": [1]}, "extra must be an object"),
        ({"index": 1, "status": "ok", "seconds": -2}, "seconds must be a number >= 0"),
        ([1, 2], "is a JSON object"),
    ],
)
def test_an_ill_formed_record_is_a_one_line_error(data, words):
    with pytest.raises(ValueError, match=words) as info:
        ChildRecord.from_dict(data)
    assert "\n" not in str(info.value)


def test_unknown_keys_are_ignored_and_nulls_take_defaults():
    record = ChildRecord.from_dict({"index": 0, "status": "failed", "extra": None,
                                    "seconds": None, "from_a_newer_version": 1})
    assert record.extra == {} and record.seconds == 0.0


def test_the_record_module_does_not_import_torch():
    code = ("import sys; import nas_lightning.core.child_record, nas_lightning.core.records; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
