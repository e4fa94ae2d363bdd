"""Honest latency measurement of one module on one input shape.

Every figure comes as a :class:`LatencyRecord` that carries how it was taken
(backend, device, threads, batch, input shape, dtype, memory format, warm-up
and repeats) next to the median and the spread, so that no latency number in
a run folder is ever separated from its conditions.

Three backends:
    ``eager``: PyTorch eager mode under ``torch.inference_mode`` on the CPU
        (or ``device``), timed with ``time.perf_counter_ns`` per run.
    ``onnxruntime``: the module exported to ONNX in memory and run by ONNX
        Runtime's CPU provider with ``threads`` intra-op threads; closer to
        what a deployment runtime does than eager PyTorch.
    ``cuda``: eager mode on a CUDA device, timed with CUDA events and a
        synchronisation after each run (wall-clock timers would only time the
        kernel launches).
"""

from __future__ import annotations

import copy
import io
import math
import platform
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import torch
from torch import nn

from nas_lightning.errors import ConfigError

BACKENDS = ("eager", "onnxruntime", "cuda")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LatencyRecord:
    """One latency figure and everything needed to reproduce it.

    Attributes:
        median_ms: median of the timed runs; the figure to use.
        mean_ms: mean of the timed runs (pulled up by stragglers).
        p25_ms: 25th percentile.
        p75_ms: 75th percentile.
        iqr_ms: ``p75_ms - p25_ms``, the spread that outliers do not move.
        min_ms: fastest run.
        max_ms: slowest run.
        backend: ``eager``, ``onnxruntime`` or ``cuda``.
        device: the processor's name (CPU model or GPU name).
        threads: intra-op threads used.
        batch: images per forward pass.
        input_shape: ``(C, H, W)`` of one image.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        channels_last: whether the module and input were in NHWC layout.
        warmup: untimed runs before timing (allocator, caches, lazy init).
        repeats: timed runs.
        times_ms: every timed run in order (for later analysis).
    """

    median_ms: float
    mean_ms: float
    p25_ms: float
    p75_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    backend: str
    device: str
    threads: int
    batch: int
    input_shape: tuple[int, ...]
    dtype: str
    channels_last: bool
    warmup: int
    repeats: int
    times_ms: tuple[float, ...] = field(default=(), repr=False)

    @property
    def resolution(self) -> int:
        """Input height (images are square in every space here)."""
        return int(self.input_shape[-2])

    def settings(self) -> dict[str, Any]:
        """The conditions of the measurement, without the figures."""
        return {
            "backend": self.backend,
            "device": self.device,
            "threads": self.threads,
            "batch": self.batch,
            "input_shape": list(self.input_shape),
            "resolution": self.resolution,
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "warmup": self.warmup,
            "repeats": self.repeats,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["times_ms"] = [round(t, 4) for t in self.times_ms]
        data["resolution"] = self.resolution
        return data


@cache
def cpu_name() -> str:
    """The CPU model as the OS reports it (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(backend: str, device: str | torch.device | None = None) -> str:
    """Human-readable name of the processor a backend runs on."""
    if backend == "cuda":
        dev = torch.device(device or "cuda")
        return torch.cuda.get_device_name(dev)
    return cpu_name()


def summarize(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, IQR, min, max and mean of timed runs."""
    if not times_ms:
        raise ValueError("no timings to summarize")
    ts = sorted(times_ms)
    if len(ts) >= 2:
        p25, _, p75 = statistics.quantiles(ts, n=4, method="inclusive")
    else:
        p25 = p75 = ts[0]
    return {
        "median_ms": statistics.median(ts),
        "mean_ms": statistics.fmean(ts),
        "p25_ms": p25,
        "p75_ms": p75,
        "iqr_ms": p75 - p25,
        "min_ms": ts[0],
        "max_ms": ts[-1],
    }


def check_settings(
    backend: str, threads: int, warmup: int, repeats: int, dtype: str, batch: int
) -> None:
    """Raise a one-line :class:`ConfigError` for an impossible setting."""
    if backend not in BACKENDS:
        raise ConfigError("backend", f"must be one of {list(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ConfigError("dtype", f"must be one of {list(DTYPES)}, got {dtype!r}")
    if backend == "onnxruntime" and dtype != "float32":
        raise ConfigError("dtype", "the onnxruntime backend measures float32 models only")
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError("threads", f"must be an integer >= 1, got {threads!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError("warmup", f"must be an integer >= 0, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError("repeats", f"must be an integer >= 1, got {repeats!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError("batch", f"must be an integer >= 1, got {batch!r}")
    if backend == "cuda" and not torch.cuda.is_available():
        raise ConfigError("backend", "cuda was asked for but torch sees no CUDA device")


def measure_latency(
    module: nn.Module,
    input_shape: Sequence[int],
    backend: str = "eager",
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    dtype: str = "float32",
    batch: int = 1,
    channels_last: bool = False,
    device: str | None = None,
) -> LatencyRecord:
    """Time ``module`` on a random input and return median and spread.

    The module is deep-copied and put in eval mode first, so the caller's
    module (e.g. a child about to be trained) is left untouched. The number of
    intra-op threads is set for the measurement and restored afterwards.

    Args:
        module: the network or layer to time.
        input_shape: ``(C, H, W)`` of one image (a leading batch dimension,
            if given, overrides ``batch``).
        backend: ``eager``, ``onnxruntime`` or ``cuda`` (see the module doc).
        threads: intra-op threads; 1 is the usual on-device setting for a
            phone's big core and the least noisy when other processes share
            the CPU.
        warmup: untimed runs first.
        repeats: timed runs; the median is reported with IQR and min/max.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        batch: images per forward pass.
        channels_last: NHWC memory layout (faster convolutions on many CPUs).
        device: torch device for ``eager``/``cuda`` (default ``cpu``/``cuda``).

    Raises:
        ConfigError: an impossible setting, in one line.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        batch, shape = shape[0], shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError("input_shape", f"must be (C, H, W), got {tuple(input_shape)}")
    check_settings(backend, threads, warmup, repeats, dtype, batch)
    torch_dtype = DTYPES[dtype]
    dev = torch.device(device or ("cuda" if backend == "cuda" else "cpu"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    net = copy.deepcopy(module).eval().to(device=dev, dtype=torch_dtype, memory_format=fmt)
    x = torch.randn((batch, *shape), device=dev).to(dtype=torch_dtype, memory_format=fmt)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if backend == "onnxruntime":
            times = _time_onnxruntime(net, x, threads, warmup, repeats)
        elif backend == "cuda":
            times = _time_cuda(net, x, warmup, repeats)
        else:
            times = _time_eager(net, x, warmup, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    return LatencyRecord(
        **summarize(times),
        backend=backend,
        device=device_name(backend, dev if backend == "cuda" else None),
        threads=threads,
        batch=batch,
        input_shape=shape,
        dtype=dtype,
        channels_last=channels_last,
        warmup=warmup,
        repeats=repeats,
        times_ms=tuple(times),
    )


def _time_eager(net: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    # Not torch.utils.benchmark.Timer: its medians agree with this loop, but it
    # has no fixed warm-up/repeats with one time per run (``timeit(n)`` gives
    # one mean, ``timeit(1)`` adds two untimed runs to every timed one, and
    # ``blocked_autorange`` averages blocks over a minimum run time), the
    # spread, the fastest run and the per-run times are part of every record,
    # and on CUDA its timer reads the host clock after a device-wide sync where
    # the events below time the kernels themselves.
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        for _ in range(repeats):
            start = time.perf_counter_ns()
            net(x)
            times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def _time_cuda(net: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        torch.cuda.synchronize(x.device)
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            net(x)
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
    return times


def export_onnx(net: nn.Module, x: torch.Tensor) -> bytes:
    """Export ``net`` for input ``x`` to ONNX bytes, in memory.

    The TorchScript exporter is tried first: it needs no extra package
    (the newer exporter needs ``onnxscript``) and exports a small
    network in about a second.
    """
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=17)
        except (TypeError, RuntimeError, ImportError):
            buf = io.BytesIO()
            torch.onnx.export(net, (x,), buf)
    return buf.getvalue()


def _time_onnxruntime(
    net: nn.Module, x: torch.Tensor, threads: int, warmup: int, repeats: int
) -> list[float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(export_onnx(net, x), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.contiguous().numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        session.run(None, feed)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error of ``predicted`` against ``measured`` (in %)."""
    pairs = [(p, m) for p, m in zip(predicted, measured, strict=True) if m > 0]
    if not pairs:
        return math.nan
    return 100.0 * statistics.fmean(abs(p - m) / m for p, m in pairs)
