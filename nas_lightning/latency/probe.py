"""The latency probe the search loop calls on every child before training.

For each child it times the whole network at the *deployment* input
(``resolution``, ``in_channels``, ``num_classes``), which need not be the
proxy task's (MnasNet searches on a small proxy and measures at 224x224),
and optionally sums a per-layer lookup table for the same child. Both
figures, the spread of the measurement and the conditions are returned for
the child's record; ``latency_ms`` is the one rewards read.

Per-child cost is kept small by default, so that timing does not dominate a
CPU search: 2 warm-up and 5 timed runs of one image. The table measures each new layer key once (the
first children pay for most of it) and then only sums.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.latency.measure import check_settings, device_name, mape, measure_latency
from nas_lightning.latency.table import LatencyTable, cache_name

log = logging.getLogger(__name__)

SOURCES = ("measured", "table")


def default_layers(genotype: Any, **kwargs: Any) -> list[Any]:
    """The mobile space's per-layer listing (imported late: optional module)."""
    from nas_lightning.models.mobile import mobile_layers

    return mobile_layers(genotype, **kwargs)


class LatencyProbe:
    """Measures (and/or looks up) each child's latency at the deployment input.

    Args:
        resolution: deployment image side, independent of the proxy task.
        target_ms: the latency target T; only marked on the Pareto plot (the
            reward has its own copy, ``reward.target_ms``, interpolated from it).
        source: which figure becomes ``latency_ms``: ``measured`` (the whole
            network timed here) or ``table`` (the sum of the lookup table).
        measure: time the whole network (needed for ``source=measured`` and
            for the table's error report).
        table: also predict latency from a per-layer table.
        table_file: a table measured elsewhere (e.g. on a phone); read-only,
            validated, its ``meta.resolution`` must equal ``resolution``.
        cache_dir: folder for the table built here; one file per device,
            backend, threads, batch, resolution and dtype; a matching file
            there is reused. None: kept in memory and written to the run
            folder by :meth:`finish`.
        backend: ``eager``, ``onnxruntime`` or ``cuda``.
        threads: intra-op threads (1: least noisy, like a phone's big core).
        batch: images per forward pass.
        warmup: untimed runs before timing the whole network.
        repeats: timed runs of the whole network.
        table_warmup: untimed runs per table layer (None: ``warmup``).
        table_repeats: timed runs per table layer (None: ``repeats``).
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        channels_last: NHWC layout while timing.
        device: torch device for eager/cuda timing (default cpu/cuda).
        builder: ``(genotype, in_channels=, num_classes=) -> nn.Module``, to
            build a fresh network for the deployment input; None: time a copy
            of the network the loop passes (fine for resolution-agnostic
            nets; the proxy task's channels and classes are kept).
        layers: ``(genotype, in_channels=, resolution=, num_classes=) ->
            [layer with key, module, input_shape]``; None: the mobile
            space's ``mobile_layers``.
        in_channels: deployment input channels (None: the proxy task's).
        num_classes: deployment classes (None: the proxy task's).
        check_name: validates the layer part of table keys when loading a
            file (None: :func:`mobile_key_check`).
    """

    def __init__(
        self,
        resolution: int = 224,
        target_ms: float | None = None,
        source: str = "measured",
        measure: bool = True,
        table: bool = False,
        table_file: str | None = None,
        cache_dir: str | None = None,
        backend: str = "eager",
        threads: int = 1,
        batch: int = 1,
        warmup: int = 2,
        repeats: int = 5,
        table_warmup: int | None = None,
        table_repeats: int | None = None,
        dtype: str = "float32",
        channels_last: bool = False,
        device: str | None = None,
        builder: Callable[..., nn.Module] | None = None,
        layers: Callable[..., Sequence[Any]] | None = None,
        in_channels: int | None = None,
        num_classes: int | None = None,
        check_name: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(resolution, int) or resolution < 8:
            raise ConfigError("resolution", f"must be an integer >= 8, got {resolution!r}")
        if target_ms is not None and not target_ms > 0:
            raise ConfigError("target_ms", f"must be > 0 or null, got {target_ms!r}")
        if source not in SOURCES:
            raise ConfigError("source", f"must be one of {list(SOURCES)}, got {source!r}")
        check_settings(backend, threads, warmup, repeats, dtype, batch)
        self.table_warmup = warmup if table_warmup is None else table_warmup
        self.table_repeats = repeats if table_repeats is None else table_repeats
        check_settings(backend, threads, self.table_warmup, self.table_repeats, dtype, batch)
        use_table = bool(table or table_file)
        if source == "measured" and not measure:
            raise ConfigError("measure", "source=measured needs measure=true")
        if source == "table" and not use_table:
            raise ConfigError("source", "source=table needs table=true or a table_file")
        if not measure and not use_table:
            raise ConfigError("measure", "nothing to do: set measure=true or table=true")

        self.resolution, self.target_ms, self.source = resolution, target_ms, source
        self.measure, self.use_table = measure, use_table
        self.builder, self.layers = builder, layers or default_layers
        self.in_channels, self.num_classes = in_channels, num_classes
        self.timing = {
            "backend": backend,
            "threads": threads,
            "batch": batch,
            "dtype": dtype,
            "channels_last": channels_last,
            "device": device,
        }
        self.settings: dict[str, Any] = {
            "device": device_name(backend, device),
            "backend": backend,
            "threads": threads,
            "batch": batch,
            "resolution": resolution,
            "dtype": dtype,
            "channels_last": channels_last,
            "warmup": warmup,
            "repeats": repeats,
        }
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.cache_path: Path | None = None
        self.table: LatencyTable | None = None
        if table_file:
            checker = check_name if check_name is not None else mobile_key_check
            self.table = LatencyTable.load(table_file, readonly=True, check_name=checker)
            if self.table.meta["resolution"] != resolution:
                raise ConfigError(
                    "table_file",
                    f"{table_file} was measured at resolution {self.table.meta['resolution']}, "
                    f"the probe measures at {resolution}",
                )
        self.pairs: list[tuple[float, float]] = []  # (table, measured median) per child
        self.min_pairs: list[tuple[float, float]] = []  # (table, fastest measured run)
        self.spreads: list[float] = []  # IQR / median of each whole-network measurement
        self.seconds = 0.0
        self.children = 0

    # -- per child -----------------------------------------------------------
    def __call__(
        self, net: nn.Module, genotype: Any, in_channels: int, num_classes: int
    ) -> dict[str, Any]:
        """Latency of one child; the dict goes into its record and ``ChildMetrics.extra``."""
        start = time.perf_counter()
        channels = self.in_channels or in_channels
        classes = self.num_classes or num_classes
        if self.builder is None:
            channels, classes = in_channels, num_classes  # the given net fixes them
        shape = (channels, self.resolution, self.resolution)
        out: dict[str, Any] = {}
        detail: dict[str, Any] = {"settings": {**self.settings, "input_shape": list(shape)}}
        measured = predicted = fastest = None
        if self.measure:
            model = (
                net
                if self.builder is None
                else self.builder(genotype, in_channels=channels, num_classes=classes)
            )
            rec = measure_latency(
                model,
                shape,
                warmup=self.settings["warmup"],
                repeats=self.settings["repeats"],
                **self.timing,
            )
            measured, fastest = rec.median_ms, rec.min_ms
            self.spreads.append(rec.iqr_ms / rec.median_ms if rec.median_ms > 0 else 0.0)
            out["latency_measured_ms"] = rec.median_ms
            out["latency_iqr_ms"] = rec.iqr_ms
            detail["measured"] = {
                k: rec.to_dict()[k]
                for k in ("median_ms", "p25_ms", "p75_ms", "iqr_ms", "min_ms", "max_ms", "times_ms")
            }
        if self.use_table:
            table = self._table_for(getattr(genotype, "family", None))
            layers = self.layers(
                genotype, in_channels=channels, resolution=self.resolution, num_classes=classes
            )
            new = table.fill(
                layers, warmup=self.table_warmup, repeats=self.table_repeats, **self.timing
            )
            if new and self.cache_path is not None:
                table.save(self.cache_path)
            predicted = table.lookup(layers)
            out["latency_table_ms"] = predicted
            detail["table"] = {
                "ms": predicted,
                "layers": len(layers),
                "new_entries": new,
                "device": table.meta.get("device"),
            }
            if measured is not None:
                self.pairs.append((predicted, measured))
                self.min_pairs.append((predicted, fastest))
        out["latency_ms"] = measured if self.source == "measured" else predicted
        out["latency_source"] = self.source
        out["latency"] = detail
        self.seconds += time.perf_counter() - start
        self.children += 1
        return out

    def _table_for(self, family: str | None) -> LatencyTable:
        """The table for this child's family, created or read from the cache on first use.

        Equal layer keys mean equal modules only within one genotype family
        (activation, SE gate, head style), so a table serves one family.
        """
        table = self.table
        if table is not None:
            known = table.meta.get("family")
            if family is not None and known is not None and known != family:
                raise ConfigError(
                    "table_file",
                    f"the latency table was measured for family {known!r}, "
                    f"this child is {family!r}",
                )
            return table
        meta = {**self.settings, "warmup": self.table_warmup, "repeats": self.table_repeats}
        if family is not None:
            meta["family"] = family
        table = LatencyTable(meta)
        if self.cache_dir is not None:
            self.cache_path = self.cache_dir / cache_name(self.settings, family)
            if self.cache_path.is_file():
                cached = LatencyTable.load(self.cache_path, readonly=False, key="cache_dir")
                if cached.matches(meta) and cached.meta.get("family") == family:
                    table = cached
                    log.info("latency table: %d entries from %s", len(table), self.cache_path)
        self.table = table
        return table

    # -- end of search -------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Totals for ``summary.json``: settings, table error, spread, cost."""
        result: dict[str, Any] = {
            "settings": self.settings,
            "source": self.source,
            "target_ms": self.target_ms,
            "children": self.children,
            "probe_seconds": round(self.seconds, 3),
        }
        if self.spreads:
            result["median_relative_iqr_pct"] = round(100 * statistics.median(self.spreads), 3)
        if self.table is not None:
            result["table_entries"] = len(self.table)
            result["table_device"] = self.table.meta.get("device")
            result["table_file"] = str(self.cache_path) if self.cache_path else None
        if self.pairs:
            table, measured = zip(*self.pairs, strict=True)
            result["table_mape_pct"] = round(mape(table, measured), 3)
            result["table_bias_pct"] = round(
                100 * statistics.fmean((t - m) / m for t, m in self.pairs), 3
            )
            result["table_pairs"] = len(self.pairs)
            # Against each child's fastest run: on a loaded machine long runs are
            # preempted more often than short layer runs, which inflates the median.
            table, fastest = zip(*self.min_pairs, strict=True)
            result["table_mape_vs_min_pct"] = round(mape(table, fastest), 3)
            log.info(
                "latency table vs measured: MAPE %.2f%% (bias %+.2f%%) over %d children",
                result["table_mape_pct"],
                result["table_bias_pct"],
                len(self.pairs),
            )
        return result

    def finish(self, run_dir: str | Path, records: list[dict[str, Any]]) -> dict[str, Path]:
        """Save the table and the Pareto front and plot into the run folder.

        Returns ``{name: png path}`` for the loop's logger (W&B image).
        """
        from nas_lightning.viz.pareto import write_pareto

        run_dir = Path(run_dir)
        if self.table is not None and not self.table.readonly and len(self.table):
            self.table.save(run_dir / cache_name(self.settings, self.table.meta.get("family")))
        title = (
            f"{self.settings['device']} · {self.settings['backend']} · "
            f"{self.settings['threads']} thread(s) · {self.resolution}px · "
            f"{self.settings['dtype']} · latency from {self.source}"
        )
        png = write_pareto(run_dir, records, target_ms=self.target_ms, title=title)
        return {"search/pareto": png} if png is not None else {}


def mobile_key_check(name: str) -> None:
    """Check the layer part of a table key against the mobile codec.

    Accepts ``stem_c<C>_s<S>``, ``head_c<C>_cls<N>`` and block strings in
    canonical form (a non-canonical spelling would never match a lookup).

    Raises:
        ValueError: (a ``GenotypeError``) one line saying what is wrong.
    """
    if re.fullmatch(r"stem_c\d+_s\d+|head_c\d+_cls\d+", name):
        return
    from nas_lightning.genotypes.mobile import decode_block, encode_block

    canonical = encode_block(decode_block(name))
    if canonical != name:
        raise ValueError(f"block {name!r} is not in canonical form {canonical!r}")
