"""Per-layer latency lookup tables.

A network's latency is predicted as the sum of its layers' latencies, each
looked up by a key that names the layer and its input, e.g.
``ir_r1_k5_s2_e3_c40_se0.25@24x56x56`` (a block string in timm notation,
``@``, then ``C x H x W`` of the layer's input). The same key always means
the same computation, so a table measured once per device and resolution
serves every child of a search, and a table measured elsewhere (on a phone)
can be loaded from a file.

On disk a table is JSON::

    {"format": "nas-lightning-latency-table/1",
     "meta": {"device": "Pixel 1", "resolution": 224, "backend": "tflite",
              "threads": 1, "batch": 1, "dtype": "float32"},
     "entries": {"ir_r1_k3_s1_e6_c24@24x56x56": 1.23,
                 "ir_r1_k5_s2_e3_c40_se0.25@24x56x56": {"median_ms": 2.1, "iqr_ms": 0.1}}}

``meta.device`` and ``meta.resolution`` are required; an entry is a positive
number of milliseconds or an object with ``median_ms``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.latency.measure import LatencyRecord, measure_latency

FORMAT = "nas-lightning-latency-table/1"
KEY_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)@(?P<c>\d+)x(?P<h>\d+)x(?P<w>\d+)$")
# Settings that must agree for two tables (or a table and a probe) to be interchangeable.
MATCH_KEYS = ("device", "backend", "threads", "batch", "resolution", "dtype", "channels_last")


class Layer(Protocol):
    """What a table needs from one layer (``mobile_layers`` yields these)."""

    key: str
    module: nn.Module
    input_shape: tuple[int, ...]


def split_key(key: str) -> tuple[str, tuple[int, int, int]]:
    """``"ir_r1_k3_s1_e6_c24@24x56x56"`` -> ``("ir_r1_k3_s1_e6_c24", (24, 56, 56))``.

    Raises:
        ValueError: the key is not ``<name>@<C>x<H>x<W>``.
    """
    match = KEY_RE.match(key)
    if match is None:
        raise ValueError(f"key {key!r} is not <block>@<C>x<H>x<W>")
    return match["name"], (int(match["c"]), int(match["h"]), int(match["w"]))


class LatencyTable:
    """Layer key -> latency in ms, with the conditions they were measured under.

    Args:
        meta: measurement conditions (``device``, ``resolution`` required;
            ``backend``, ``threads``, ``batch``, ``dtype``, ``warmup``,
            ``repeats``, ``channels_last`` as available).
        entries: key -> median latency in ms.
        spread: key -> interquartile range in ms, where known.
        readonly: a table from elsewhere: a missing key is an error rather
            than something to measure here.
    """

    def __init__(
        self,
        meta: dict[str, Any],
        entries: dict[str, float] | None = None,
        spread: dict[str, float] | None = None,
        readonly: bool = False,
    ) -> None:
        self.meta = dict(meta)
        self.entries = dict(entries or {})
        self.spread = dict(spread or {})
        self.readonly = readonly

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def missing(self, layers: Iterable[Layer]) -> list[str]:
        """Keys of ``layers`` that the table lacks, in order, without repeats."""
        return list(dict.fromkeys(la.key for la in layers if la.key not in self.entries))

    def lookup(self, layers: Sequence[Layer]) -> float:
        """Predicted latency: the sum of the layers' entries.

        Raises:
            ConfigError: some layer is not in the table (lists the first few).
        """
        absent = self.missing(layers)
        if absent:
            more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
            raise ConfigError(
                "table_file",
                f"table for {self.meta.get('device')!r} has no entry for "
                f"{', '.join(absent[:3])}{more}",
            )
        return float(sum(self.entries[la.key] for la in layers))

    def add(self, key: str, record: LatencyRecord) -> None:
        self.entries[key] = record.median_ms
        self.spread[key] = record.iqr_ms

    def fill(self, layers: Sequence[Layer], **measure_kwargs: Any) -> int:
        """Measure every layer the table lacks; return how many were measured.

        ``measure_kwargs`` go to :func:`measure_latency` (backend, threads,
        warmup, repeats, dtype, batch, channels_last, device).
        """
        if self.readonly:
            return 0
        done = 0
        for layer in layers:
            if layer.key in self.entries:
                continue
            self.add(layer.key, measure_latency(layer.module, layer.input_shape, **measure_kwargs))
            done += 1
        return done

    def matches(self, settings: dict[str, Any]) -> bool:
        """Whether the table was measured under ``settings`` (where both say)."""
        return all(
            self.meta.get(k) == settings[k] for k in MATCH_KEYS if k in settings and k in self.meta
        )

    # -- JSON ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        for key in sorted(self.entries):
            if key in self.spread:
                entries[key] = {
                    "median_ms": round(self.entries[key], 5),
                    "iqr_ms": round(self.spread[key], 5),
                }
            else:
                entries[key] = round(self.entries[key], 5)
        return {"format": FORMAT, "meta": self.meta, "entries": entries}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)  # a crash mid-write never leaves half a table
        return path

    @classmethod
    def from_dict(
        cls,
        data: Any,
        readonly: bool = False,
        check_name: Callable[[str], None] | None = None,
    ) -> LatencyTable:
        """Validate and rebuild a table; raises ``ValueError`` with one line."""
        if not isinstance(data, dict):
            raise ValueError(f"must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"unknown format {fmt!r} (expected {FORMAT!r})")
        unknown = sorted(set(data) - {"format", "meta", "entries"})
        if unknown:
            raise ValueError(f"unknown top-level keys {unknown}")
        meta, entries = data.get("meta"), data.get("entries")
        if not isinstance(meta, dict):
            raise ValueError("'meta' must be an object with at least device and resolution")
        if not isinstance(meta.get("device"), str) or not meta["device"]:
            raise ValueError("meta.device must be a non-empty string")
        res = meta.get("resolution")
        if not isinstance(res, int) or isinstance(res, bool) or res < 1:
            raise ValueError(f"meta.resolution must be a positive integer, got {res!r}")
        if not isinstance(entries, dict) or not entries:
            raise ValueError("'entries' must be a non-empty object of key -> milliseconds")
        values, spread = {}, {}
        for key, value in entries.items():
            try:
                name, _ = split_key(key)
                if check_name is not None:
                    check_name(name)
            except ValueError as err:
                raise ValueError(f"entry {key!r}: {err}") from None
            if isinstance(value, dict):
                if "iqr_ms" in value:
                    spread[key] = _positive(key, value["iqr_ms"], "iqr_ms", allow_zero=True)
                value = value.get("median_ms")
            values[key] = _positive(key, value, "latency")
        return cls(meta, values, spread, readonly=readonly)

    @classmethod
    def load(
        cls,
        path: str | Path,
        readonly: bool = True,
        check_name: Callable[[str], None] | None = None,
        key: str = "table_file",
    ) -> LatencyTable:
        """Read a table file; any problem is a one-line :class:`ConfigError`.

        Args:
            path: JSON file in the format of the module doc.
            readonly: True for tables from elsewhere (missing keys are errors).
            check_name: validates the block part of each key (e.g. the mobile
                codec's parser); raises ``ValueError`` for a bad one.
            key: config key named in the error.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(key, f"cannot read latency table {path}: {err}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(key, f"{path}: not valid JSON: {err}") from None
        try:
            return cls.from_dict(data, readonly=readonly, check_name=check_name)
        except ValueError as err:
            raise ConfigError(key, f"{path}: {err}") from None


def _positive(key: str, value: Any, what: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"entry {key!r}: {what} must be a positive number of ms, got {value!r}")
    return float(value)


def cache_name(settings: dict[str, Any], family: str | None = None) -> str:
    """File name of the cached table for one set of conditions (and genotype family)."""
    device = re.sub(r"[^A-Za-z0-9]+", "-", str(settings.get("device", "device"))).strip("-")
    layout = "_nhwc" if settings.get("channels_last") else ""
    tag = f"_{hashlib.sha1(family.encode()).hexdigest()[:8]}" if family else ""
    return (
        f"latency_table_{settings['backend']}_{settings['threads']}t_b{settings['batch']}_"
        f"{settings['resolution']}px_{settings['dtype']}{layout}_{device[:40]}{tag}.json"
    )
