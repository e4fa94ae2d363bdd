"""Building blocks of NetAdapt: per-layer table latency of mobile genotypes, the
reductions NetAdapt proposes, and the network its brief proxy trainings use.

Kept apart from the strategy (``netadapt.py``) so each stays readable; nothing
here knows about ask/tell.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.genotypes.mobile import MobileGenotype, decode_block, encode_block
from nas_lightning.latency.measure import LatencyRecord, device_name, measure_latency
from nas_lightning.latency.table import LatencyTable, split_key
from nas_lightning.models.mobile import MobileHead, MobileNetwork, MobileStem
from nas_lightning.models.mobile_blocks import make_block, make_divisible

KINDS = ("expansion", "filters", "layers")
STATISTICS = ("median", "min")
DIVISOR = 8  # channel granularity of every reduction (widths stay multiples of 8)
STEM = -1  # the stem's index in a residual group of stages


# -- layer keys and modules without building the whole network ------------------------
def _out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def layer_keys(
    genotype: MobileGenotype,
    in_channels: int = 3,
    resolution: int = 224,
    num_classes: int = 1000,
    width_mult: float = 1.0,
    stem_stride: int | None = None,
) -> list[str]:
    """The keys of ``mobile_layers(genotype, ...)``, computed without building modules.

    Building a full-size network takes a noticeable fraction of a second;
    NetAdapt looks up hundreds of candidates per iteration, so it derives the keys directly
    (tests check they equal ``mobile_layers``').
    """

    def width(c: int) -> int:
        return c if width_mult == 1.0 else make_divisible(c * width_mult)

    stride = genotype.stem_stride if stem_stride is None else stem_stride
    c, h, w = in_channels, resolution, resolution
    keys = [f"stem_c{width(genotype.stem_channels)}_s{stride}@{c}x{h}x{w}"]
    c, h, w = width(genotype.stem_channels), _out(h, 3, stride), _out(w, 3, stride)
    for layer in genotype.layers():
        layer = layer.replace(out_channels=width(layer.out_channels))
        keys.append(f"{encode_block(layer)}@{c}x{h}x{w}")
        c, h, w = (
            layer.out_channels,
            _out(h, layer.kernel, layer.stride),
            _out(w, layer.kernel, layer.stride),
        )
    keys.append(f"head_c{width(genotype.head_channels)}_cls{num_classes}@{c}x{h}x{w}")
    return keys


def layer_module(key: str, genotype: MobileGenotype) -> nn.Module:
    """The module a table key names, within ``genotype``'s family (for timing)."""
    name, (c, _, _) = split_key(key)
    stem = re.fullmatch(r"stem_c(\d+)_s(\d+)", name)
    if stem:
        act = genotype.resolve(genotype.stem_activation)
        return MobileStem(c, int(stem[1]), 3, int(stem[2]), activation=act)
    head = re.fullmatch(r"head_c(\d+)_cls(\d+)", name)
    if head:
        act = genotype.resolve(genotype.head_activation)
        return MobileHead(c, int(head[1]), int(head[2]), act, genotype.efficient_head, 0.0)
    args = decode_block(name)
    act = genotype.resolve(args.activation)
    return make_block(c, args, act, genotype.se_gate, genotype.se_base)


class TableLatency:
    """Latency of mobile genotypes: the sum of a per-layer table, filled as needed.

    Args:
        table: a table to start from (e.g. a phone's, read-only); None: a new
            one measured here, for one genotype family.
        resolution, in_channels, num_classes: the deployment input and classes.
        width_mult, stem_stride: as ``MobileNetwork``'s (the deployed network).
        warmup, repeats: runs per new layer (untimed, timed; the median is kept).
        timing: ``measure_latency`` settings (backend, threads, batch, dtype,
            channels_last, device).
        builder: ``(genotype, in_channels=, num_classes=) -> nn.Module`` for
            whole-network measurements (None: ``MobileNetwork``).
        statistic: the figure a layer's timed runs give the table: ``median``
            (the latency probe's) or ``min`` (steadier on a loaded machine,
            where the median of a few runs moves with other processes).
    """

    def __init__(
        self,
        table: LatencyTable | None = None,
        resolution: int = 224,
        in_channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        stem_stride: int | None = None,
        warmup: int = 2,
        repeats: int = 5,
        timing: dict[str, Any] | None = None,
        builder: Any = None,
        statistic: str = "median",
    ) -> None:
        if statistic not in STATISTICS:
            raise ConfigError("statistic", f"must be one of {list(STATISTICS)}, got {statistic!r}")
        self.statistic = statistic
        self.table = table
        self.resolution, self.in_channels, self.num_classes = resolution, in_channels, num_classes
        self.width_mult, self.stem_stride = width_mult, stem_stride
        self.warmup, self.repeats = warmup, repeats
        self.timing = {
            "backend": "eager",
            "threads": 1,
            "batch": 1,
            "dtype": "float32",
            "channels_last": False,
            "device": None,
            **(timing or {}),
        }
        self.builder = builder
        self.measured = 0  # layers measured by this estimator

    @classmethod
    def from_probe(cls, probe: Any, statistic: str = "median") -> TableLatency:
        """The same conditions as a search's ``LatencyProbe`` (its table file, if any)."""
        kwargs = getattr(probe.builder, "keywords", None) or {}
        return cls(
            table=probe.table,
            resolution=probe.resolution,
            in_channels=probe.in_channels or 3,
            num_classes=probe.num_classes or 1000,
            width_mult=kwargs.get("width_mult", 1.0),
            stem_stride=kwargs.get("stem_stride"),
            warmup=probe.table_warmup,
            repeats=probe.table_repeats,
            timing=probe.timing,
            builder=probe.builder,
            statistic=statistic,
        )

    def settings(self) -> dict[str, Any]:
        """How the table's entries are (or were) measured."""
        if self.table is not None:
            return dict(self.table.meta)
        t = self.timing
        return {
            "device": device_name(t["backend"], t["device"]),
            "backend": t["backend"],
            "threads": t["threads"],
            "batch": t["batch"],
            "resolution": self.resolution,
            "dtype": t["dtype"],
            "channels_last": t["channels_last"],
            "warmup": self.warmup,
            "repeats": self.repeats,
            "statistic": self.statistic,
        }

    def keys(self, genotype: MobileGenotype) -> list[str]:
        return layer_keys(
            genotype,
            self.in_channels,
            self.resolution,
            self.num_classes,
            self.width_mult,
            self.stem_stride,
        )

    def _table(self, genotype: MobileGenotype) -> LatencyTable:
        if self.table is None:
            self.table = LatencyTable({**self.settings(), "family": genotype.family})
        known = self.table.meta.get("family")
        if known is not None and known != genotype.family:
            raise ConfigError(
                "latency", f"the table is for family {known!r}, not {genotype.family!r}"
            )
        return self.table

    def __call__(self, genotype: MobileGenotype) -> float:
        """Predicted latency in ms; layers missing from the table are measured first."""
        keys = self.keys(genotype)
        table = self._table(genotype)
        if not table.readonly:
            for key in table.missing([SimpleNamespace(key=k) for k in keys]):
                record = self.measure_layer(key, genotype)
                table.add(key, record)
                table.entries[key] = self.figure(record)
                self.measured += 1
        return table.lookup([SimpleNamespace(key=k) for k in keys])

    def figure(self, record: LatencyRecord) -> float:
        """The median or the fastest run of a measurement (see ``statistic``)."""
        return record.min_ms if self.statistic == "min" else record.median_ms

    def measure_layer(self, key: str, genotype: MobileGenotype) -> LatencyRecord:
        """Time the layer a key names (its module built alone, in ``genotype``'s family)."""
        _, shape = split_key(key)
        return measure_latency(
            layer_module(key, genotype),
            shape,
            warmup=self.warmup,
            repeats=self.repeats,
            **self.timing,
        )

    def measure_network(self, genotype: MobileGenotype, warmup: int, repeats: int) -> LatencyRecord:
        """Time the whole deployed network (to calibrate the table's sum)."""
        if self.builder is not None:
            net = self.builder(genotype, in_channels=self.in_channels, num_classes=self.num_classes)
        else:
            net = MobileNetwork(
                genotype,
                self.in_channels,
                self.num_classes,
                width_mult=self.width_mult,
                stem_stride=self.stem_stride,
            )
        shape = (self.in_channels, self.resolution, self.resolution)
        return measure_latency(net, shape, warmup=warmup, repeats=repeats, **self.timing)

    def state_dict(self) -> dict[str, Any]:
        if self.table is None or self.table.readonly:
            return {}
        return {
            "meta": dict(self.table.meta),
            "entries": dict(self.table.entries),
            "spread": dict(self.table.spread),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.table = LatencyTable(state["meta"], state["entries"], state["spread"])


def proxy_network(
    genotype: MobileGenotype | str,
    in_channels: int = 3,
    num_classes: int = 1000,
    bn_momentum: float = 0.5,
    **kwargs: Any,
) -> MobileNetwork:
    """A ``MobileNetwork`` for brief proxy trainings: BN statistics that keep up.

    After a few dozen SGD steps, running statistics with the default momentum
    (0.1) lag far behind the weights and eval-mode accuracy sits at chance
    (docs/mobilenetv3.md has the figures); with momentum 0.5 eval mode matches
    batch statistics. The momentum
    changes nothing in training mode. ``kwargs`` go to ``MobileNetwork``.
    """
    if not 0.0 < bn_momentum <= 1.0:
        raise ConfigError("bn_momentum", f"must be in (0, 1], got {bn_momentum!r}")
    net = MobileNetwork(genotype, in_channels, num_classes, **kwargs)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = bn_momentum
    return net


# -- reductions --------------------------------------------------------------------
def stage_inputs(genotype: MobileGenotype) -> list[int]:
    """Input channels of each stage's first layer (genotype units)."""
    inputs, c = [], genotype.stem_channels
    for stage in genotype.stages:
        inputs.append(c)
        c = stage.out_channels
    return inputs


def residual_groups(genotype: MobileGenotype) -> list[list[int]]:
    """Stages (and the stem, :data:`STEM`) whose widths are tied by residuals.

    A stage joins the group before it when its first layer has a residual
    (stride 1, same width, skip allowed): cutting one without the other would
    remove that residual. Groups made of the stem alone are left out.
    """
    groups: list[list[int]] = [[STEM]]
    for i, (stage, c_in) in enumerate(zip(genotype.stages, stage_inputs(genotype), strict=True)):
        if stage.stride == 1 and stage.skip and stage.out_channels == c_in:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [g for g in groups if g != [STEM]]


def _set_filters(genotype: MobileGenotype, group: Sequence[int], c: int) -> MobileGenotype:
    stages = list(genotype.stages)
    for i in group:
        if i != STEM:
            stages[i] = stages[i].replace(out_channels=c)
    stem = c if STEM in group else genotype.stem_channels
    return dataclasses.replace(genotype, stages=tuple(stages), stem_channels=stem)


def reductions(
    genotype: MobileGenotype, unit: Sequence[int], kind: str
) -> Iterator[tuple[MobileGenotype, str]]:
    """Ever larger reductions of one kind of one stage (``[i]``) or residual group.

    Yields ``(reduced genotype, change)`` with ``change`` in words, smallest first.
    Filter counts that would add or remove a residual (a stage whose input width
    becomes its output width) are skipped: NetAdapt shrinks, it does not rewire.
    """
    stages = [i for i in unit if i != STEM]
    if kind == "filters":
        c = genotype.stages[stages[0]].out_channels
        groups = residual_groups(genotype)
        for new in range(c - DIVISOR, DIVISOR - 1, -DIVISOR):
            smaller = _set_filters(genotype, unit, new)
            if residual_groups(smaller) == groups:  # no residual appears (in == out) or goes
                yield smaller, f"c{c}->c{new}"
        return
    (i,) = stages
    stage = genotype.stages[i]
    if kind == "layers":
        for new in range(stage.repeats - 1, 0, -1):
            yield _replace_stage(genotype, i, repeats=new), f"r{stage.repeats}->r{new}"
    elif kind == "expansion" and stage.type == "ir":
        # The width the stage's repeated layers expand (the first layer's for one layer).
        ref = stage.out_channels if stage.repeats > 1 else stage_inputs(genotype)[i]
        mid = make_divisible(ref * stage.expansion)
        for new in range(mid - DIVISOR, DIVISOR - 1, -DIVISOR):
            e = round(new / ref, 4)
            if make_divisible(ref * e) == new:
                yield (
                    _replace_stage(genotype, i, expansion=e),
                    f"e{stage.expansion:g}->e{e:g} ({mid}->{new} ch)",
                )


def _replace_stage(genotype: MobileGenotype, i: int, **changes: Any) -> MobileGenotype:
    stages = list(genotype.stages)
    stages[i] = stages[i].replace(**changes)
    return dataclasses.replace(genotype, stages=tuple(stages))
