"""The accuracy-latency Pareto front and its plot."""

from __future__ import annotations

import json

from nas_lightning.viz.pareto import pareto_front, points_from_records, write_pareto


def test_front_of_known_points():
    pts = [(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (25, 0.9), (5, 0.3), (20, 0.7)]
    # (15, .4) is beaten by (10, .5); (30, .7) and the duplicate (20, .7) by (20, .7).
    assert pareto_front(pts) == [5, 0, 1, 4]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.1)]) == [0]


def test_front_brute_force():
    import random

    rng = random.Random(0)
    pts = [(rng.randint(1, 20), rng.randint(0, 20) / 20) for _ in range(60)]
    front = set(pareto_front(pts))
    for i, (lat, acc) in enumerate(pts):
        dominated = any((l2 <= lat and a2 >= acc and (l2 < lat or a2 > acc)) for l2, a2 in pts)
        duplicate_before = any(pts[j] == pts[i] for j in range(i))
        assert (i in front) == (not dominated and not duplicate_before)


def records():
    return [
        {"index": 0, "status": "ok", "val_acc": 0.6, "reward": 0.6, "extra": {"latency_ms": 30.0}},
        {"index": 1, "status": "failed", "val_acc": None, "reward": None, "extra": {}},
        {"index": 2, "status": "ok", "val_acc": 0.7, "reward": 0.69, "extra": {"latency_ms": 50.0}},
        {"index": 3, "status": "ok", "val_acc": 0.5, "reward": 0.5, "extra": {"latency_ms": 60.0}},
        {"index": 4, "status": "ok", "val_acc": 0.8, "reward": 0.7, "latency_ms": 90.0},
    ]


def test_points_from_records_skip_failed_and_read_extra():
    pts = points_from_records(records())
    assert [p["index"] for p in pts] == [0, 2, 3, 4]
    assert [p["latency_ms"] for p in pts] == [30.0, 50.0, 60.0, 90.0]


def test_write_pareto(tmp_path):
    (tmp_path / "best.json").write_text(json.dumps(records()[4]))
    png = write_pareto(tmp_path, records(), target_ms=75.0, title="test")
    assert png == tmp_path / "pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    front = json.loads((tmp_path / "pareto.json").read_text())
    assert [p["index"] for p in front["front"]] == [0, 2, 4]
    assert front["target_ms"] == 75.0 and front["children"] == 4
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["index"] == 4 and [p["index"] for p in best["pareto_front"]] == [0, 2, 4]


def test_write_pareto_without_latency_writes_nothing(tmp_path):
    assert write_pareto(tmp_path, [{"index": 0, "status": "ok", "val_acc": 0.5}]) is None
    assert not (tmp_path / "pareto.png").exists()
