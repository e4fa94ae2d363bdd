"""Latency: honest measurement, per-layer lookup tables and the search's probe."""

from nas_lightning.latency.measure import LatencyRecord, mape, measure_latency
from nas_lightning.latency.probe import LatencyProbe
from nas_lightning.latency.table import LatencyTable, split_key

__all__ = ["LatencyProbe", "LatencyRecord", "LatencyTable", "mape", "measure_latency", "split_key"]
