"""Latency measurement, lookup tables and the search's latency probe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import CONF
from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.latency import LatencyProbe, LatencyTable, mape, measure_latency, split_key
from nas_lightning.latency.measure import summarize
from nas_lightning.latency.table import cache_name


@dataclass
class Spec:
    """Stand-in for the mobile space's LayerSpec: key, module, input_shape."""

    key: str
    module: nn.Module
    input_shape: tuple[int, int, int]


def toy_layers(genotype, in_channels=3, resolution=32, num_classes=10):
    """A tiny two-conv 'network' described layer by layer, keyed like the codec."""
    widths = genotype  # the toy genotype is a tuple of widths
    layers, c, r = [], in_channels, resolution
    for w in widths:
        module = nn.Sequential(nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers.append(Spec(f"cn_r1_k3_s2_c{w}@{c}x{r}x{r}", module, (c, r, r)))
        c, r = w, (r + 1) // 2
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    layers.append(Spec(f"head_c{c}_cls{num_classes}@{c}x{r}x{r}", head, (c, r, r)))
    return layers


def toy_builder(genotype, in_channels=3, num_classes=10):
    return nn.Sequential(*(s.module for s in toy_layers(genotype, in_channels, 32, num_classes)))


def test_measure_eager_records_settings_and_leaves_module_alone():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()).train()
    before = [p.clone() for p in net.parameters()]
    threads = torch.get_num_threads()
    rec = measure_latency(net, (3, 16, 16), threads=1, warmup=1, repeats=5)
    assert rec.backend == "eager" and rec.threads == 1 and rec.batch == 1
    assert rec.input_shape == (3, 16, 16) and rec.resolution == 16 and rec.dtype == "float32"
    assert rec.device and rec.repeats == 5 and len(rec.times_ms) == 5
    assert rec.min_ms <= rec.p25_ms <= rec.median_ms <= rec.p75_ms <= rec.max_ms
    assert rec.iqr_ms == pytest.approx(rec.p75_ms - rec.p25_ms)
    assert net.training and all(
        torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True)
    )
    assert torch.get_num_threads() == threads
    d = rec.to_dict()
    assert {"device", "threads", "batch", "resolution", "dtype", "median_ms"} <= set(d)
    json.dumps(d)


def test_measure_batch_from_4d_shape_and_bf16_channels_last():
    net = nn.Conv2d(3, 4, 3)
    rec = measure_latency(
        net, (2, 3, 12, 12), warmup=0, repeats=1, dtype="bfloat16", channels_last=True
    )
    assert rec.batch == 2 and rec.input_shape == (3, 12, 12)
    assert rec.dtype == "bfloat16" and rec.channels_last


def test_measure_onnxruntime():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    rec = measure_latency(net, (3, 16, 16), backend="onnxruntime", warmup=1, repeats=3)
    assert rec.backend == "onnxruntime" and len(rec.times_ms) == 3 and rec.median_ms > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "tflite"},
        {"threads": 0},
        {"repeats": 0},
        {"warmup": -1},
        {"dtype": "int8"},
        {"backend": "onnxruntime", "dtype": "float16"},
        {"input_shape": (16, 16)},
    ],
)
def test_measure_bad_settings_are_one_line_config_errors(kwargs):
    shape = kwargs.pop("input_shape", (3, 8, 8))
    with pytest.raises(ConfigError) as err:
        measure_latency(nn.Identity(), shape, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_backend_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        measure_latency(nn.Identity(), (3, 8, 8), backend="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_events():
    rec = measure_latency(nn.Conv2d(3, 8, 3), (3, 64, 64), backend="cuda", repeats=5)
    assert rec.backend == "cuda" and rec.median_ms > 0 and "cpu" not in rec.device.lower()


def test_summarize_and_mape():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["max_ms"] == 5.0
    assert s["p25_ms"] == 2.0 and s["p75_ms"] == 4.0 and s["iqr_ms"] == 2.0
    assert mape([11.0, 9.0], [10.0, 10.0]) == pytest.approx(10.0)


def test_split_key():
    assert split_key("ir_r1_k5_s2_e3_c40_se0.25@24x56x56") == (
        "ir_r1_k5_s2_e3_c40_se0.25",
        (24, 56, 56),
    )
    for bad in ("ir_r1_k3@24x56", "ir r1@1x2x3", "@3x4x4"):
        with pytest.raises(ValueError):
            split_key(bad)


def test_table_fill_lookup_roundtrip(tmp_path):
    layers = toy_layers((4, 8))
    table = LatencyTable({"device": "here", "resolution": 32})
    assert table.fill(layers, warmup=0, repeats=2) == 3
    assert table.fill(layers, warmup=0, repeats=2) == 0  # measured once per key
    assert table.lookup(layers) == pytest.approx(sum(table.entries[s.key] for s in layers))
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path)
    assert again.readonly and again.entries.keys() == table.entries.keys()
    assert again.lookup(layers) == pytest.approx(table.lookup(layers), rel=1e-3)


def test_foreign_table_is_loaded_and_missing_keys_are_errors(tmp_path):
    layers = toy_layers((4,))
    entries = {s.key: 1.5 for s in layers}
    entries[layers[0].key] = {"median_ms": 2.0, "iqr_ms": 0.1}
    path = tmp_path / "pixel1.json"
    path.write_text(
        json.dumps({"meta": {"device": "Pixel 1", "resolution": 32}, "entries": entries})
    )
    table = LatencyTable.load(path)
    assert table.lookup(layers) == pytest.approx(3.5)
    assert table.fill(layers, repeats=1) == 0  # never measures into a foreign table
    with pytest.raises(ConfigError, match="no entry for"):
        table.lookup(toy_layers((8,)))


MALFORMED = {
    "not_json": "{",
    "list": "[1, 2]",
    "no_meta": json.dumps({"entries": {"a@1x2x2": 1.0}}),
    "no_device": json.dumps({"meta": {"resolution": 8}, "entries": {"a@1x2x2": 1.0}}),
    "bad_resolution": json.dumps(
        {"meta": {"device": "d", "resolution": "224"}, "entries": {"a@1x2x2": 1.0}}
    ),
    "empty": json.dumps({"meta": {"device": "d", "resolution": 8}, "entries": {}}),
    "bad_key": json.dumps({"meta": {"device": "d", "resolution": 8}, "entries": {"conv": 1.0}}),
    "negative": json.dumps(
        {"meta": {"device": "d", "resolution": 8}, "entries": {"a@1x2x2": -1.0}}
    ),
    "string_ms": json.dumps(
        {"meta": {"device": "d", "resolution": 8}, "entries": {"a@1x2x2": "3 ms"}}
    ),
    "nan": '{"meta": {"device": "d", "resolution": 8}, "entries": {"a@1x2x2": NaN}}',
    "format": json.dumps(
        {"format": "other/2", "meta": {"device": "d", "resolution": 8}, "entries": {"a@1x2x2": 1.0}}
    ),
    "extra_key": json.dumps(
        {"meta": {"device": "d", "resolution": 8}, "entries": {"a@1x2x2": 1.0}, "entires": {}}
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_table_file_is_a_one_line_config_error(tmp_path, name):
    path = tmp_path / f"{name}.json"
    path.write_text(MALFORMED[name])
    with pytest.raises(ConfigError) as err:
        LatencyTable.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert err.value.key == "table_file"


def test_missing_table_file_and_codec_check(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        LatencyTable.load(tmp_path / "absent.json")
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps({"meta": {"device": "d", "resolution": 8}, "entries": {"zz_r1@1x2x2": 1.0}})
    )

    def check(name):
        if not name.startswith("ir_"):
            raise ValueError(f"unknown block {name!r}")

    with pytest.raises(ConfigError, match="unknown block 'zz_r1'"):
        LatencyTable.load(path, check_name=check)


def probe(tmp_path=None, **kw):
    args = dict(
        resolution=32, warmup=0, repeats=2, builder=toy_builder, layers=toy_layers, table=True
    )
    args.update(kw)
    return LatencyProbe(**args)


def test_probe_measures_at_its_own_resolution_and_sums_the_table(tmp_path):
    p = probe(cache_dir=str(tmp_path), in_channels=3, num_classes=5)
    proxy_net = toy_builder((4, 8), in_channels=1, num_classes=10)  # proxy task: 1 channel
    out = p(proxy_net, (4, 8), in_channels=1, num_classes=10)
    assert out["latency_ms"] == out["latency_measured_ms"] > 0
    assert out["latency_table_ms"] > 0 and out["latency_source"] == "measured"
    settings = out["latency"]["settings"]
    assert settings["input_shape"] == [3, 32, 32] and settings["resolution"] == 32
    assert {"device", "threads", "batch", "dtype", "backend", "warmup", "repeats"} <= set(settings)
    assert out["latency"]["table"]["new_entries"] == 3
    cached = tmp_path / cache_name(p.settings)
    assert cached.is_file()
    p((4, 8), (4, 8), in_channels=1, num_classes=10)  # same child again: no new entries
    s = p.summary()
    assert s["children"] == 2 and s["table_pairs"] == 2 and s["table_mape_pct"] >= 0
    assert s["table_entries"] == 3
    # A second probe in the same folder reuses the cached table.
    p2 = probe(cache_dir=str(tmp_path), in_channels=3, num_classes=5)
    out2 = p2(proxy_net, (4, 8), in_channels=1, num_classes=10)
    assert out2["latency"]["table"]["new_entries"] == 0 and len(p2.table) == 3


def test_probe_table_source_from_foreign_file(tmp_path):
    layers = toy_layers((4,), in_channels=3, resolution=32, num_classes=10)
    path = tmp_path / "phone.json"
    path.write_text(
        json.dumps(
            {
                "meta": {"device": "Pixel 1", "resolution": 32},
                "entries": {s.key: 2.0 for s in layers},
            }
        )
    )
    p = probe(table_file=str(path), source="table", measure=False, builder=None)
    out = p(nn.Identity(), (4,), in_channels=3, num_classes=10)
    assert out["latency_ms"] == out["latency_table_ms"] == pytest.approx(4.0)
    assert "latency_measured_ms" not in out and out["latency"]["table"]["device"] == "Pixel 1"
    with pytest.raises(ConfigError, match="resolution 32"):
        probe(table_file=str(path), resolution=64)


def test_probe_without_builder_times_the_given_net_at_its_resolution():
    p = probe(builder=None, table=False)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    out = p(net, None, in_channels=1, num_classes=10)
    assert out["latency"]["settings"]["input_shape"] == [1, 32, 32]
    assert "latency_table_ms" not in out


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"source": "table", "table": False}, "source"),
        ({"measure": False}, "measure"),
        ({"source": "phone"}, "source"),
        ({"resolution": 0}, "resolution"),
        ({"target_ms": -1.0}, "target_ms"),
        ({"threads": 0}, "threads"),
    ],
)
def test_probe_rejects_bad_config(kwargs, key):
    with pytest.raises(ConfigError) as err:
        probe(**kwargs)
    assert err.value.key == key


def test_probe_finish_writes_pareto_and_table(tmp_path):
    p = probe(target_ms=1.0)
    records = []
    for i, widths in enumerate([(4,), (8, 8), (4, 16)]):
        out = p(None, widths, in_channels=3, num_classes=10)
        records.append(
            {
                "index": i,
                "status": "ok",
                "val_acc": 0.5 + 0.1 * i,
                "reward": 0.1 * i,
                "extra": out,
                "genotype": list(widths),
            }
        )
    (tmp_path / "best.json").write_text(json.dumps(records[-1]))
    images = p.finish(tmp_path, records)
    png = images["search/pareto"]
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / cache_name(p.settings)).is_file()
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["pareto_front"] and best["index"] == 2


# -- the mobile space's layers and the conf/latency presets -------------------
def test_table_keys_match_the_codec_strings(tmp_path):
    from nas_lightning.genotypes.mobile import (
        MNASNET_A1,
        MOBILENETV3_SMALL,
        decode_block,
        encode_block,
    )
    from nas_lightning.latency.probe import mobile_key_check
    from nas_lightning.models.mobile import mobile_layers

    for genotype in (MNASNET_A1, MOBILENETV3_SMALL):
        layers = mobile_layers(genotype, resolution=64, width_mult=0.25)
        names = [split_key(s.key)[0] for s in layers]
        for s, name in zip(layers, names, strict=True):
            mobile_key_check(name)
            assert split_key(s.key)[1] == tuple(s.input_shape)  # the key spells the input
        # Every layer between stem and head is a single-layer block string of the codec.
        blocks = [decode_block(n) for n in names[1:-1]]
        assert [b.replace(out_channels=1) for b in blocks] == [
            b.replace(out_channels=1) for b in genotype.layers()
        ]
        assert names[1:-1] == [encode_block(b) for b in blocks]
        assert names[0].startswith("stem_") and names[-1].startswith("head_")
    # A table built through the probe is keyed by the same strings and loads with the check.
    p = LatencyProbe(
        resolution=64,
        warmup=0,
        repeats=1,
        table=True,
        cache_dir=str(tmp_path),
        builder=None,
        layers=lambda g, **kw: mobile_layers(g, width_mult=0.25, **kw),
    )
    p(nn.Identity(), MNASNET_A1, in_channels=3, num_classes=10)
    saved = p.cache_path
    assert saved.is_file() and MNASNET_A1.family in saved.read_text()
    expected = {s.key for s in mobile_layers(MNASNET_A1, 3, 64, 10, width_mult=0.25)}
    assert set(LatencyTable.load(saved, check_name=mobile_key_check).entries) == expected


def test_non_canonical_block_string_in_a_table_file_is_rejected(tmp_path):
    path = tmp_path / "phone.json"
    path.write_text(
        json.dumps(
            {
                "meta": {"device": "Pixel 1", "resolution": 224},
                "entries": {"ir_r1_k3_s2_c24_e6@16x112x112": 1.0},
            }
        )
    )
    with pytest.raises(ConfigError, match="canonical form 'ir_r1_k3_s2_e6_c24'") as err:
        LatencyProbe(table_file=str(path), source="table", measure=False)
    assert "\n" not in str(err.value)
    path.write_text(
        json.dumps(
            {
                "meta": {"device": "Pixel 1", "resolution": 224},
                "entries": {"ir_r1_k4_s2_e6_c24@16x112x112": 1.0},
            }
        )
    )
    with pytest.raises(ConfigError, match="kernel must be odd"):
        LatencyProbe(table_file=str(path), source="table", measure=False)


def compose(preset, tmp_path, overrides=()):
    """Compose ``conf/latency/<preset>`` alone (no root config)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose(overrides=[f"+latency={preset}", f"+run_dir={tmp_path}", *overrides])


@pytest.mark.parametrize(
    "preset, backend", [("eager_cpu", "eager"), ("onnxruntime", "onnxruntime")]
)
def test_latency_presets_instantiate(tmp_path, preset, backend):
    from hydra.utils import instantiate

    cfg = compose(preset, tmp_path, ["latency.resolution=64"])
    p = instantiate(cfg.latency)
    assert isinstance(p, LatencyProbe) and p.settings["backend"] == backend
    assert p.settings["resolution"] == 64 and p.cache_dir == tmp_path
    assert p.layers.keywords["width_mult"] == p.builder.keywords["width_mult"] == 1.0


def test_table_preset_loads_a_file_and_validates_it(tmp_path):
    from hydra.utils import instantiate

    from nas_lightning.genotypes.mobile import MNASNET_A1
    from nas_lightning.models.mobile import mobile_layers

    keys = [s.key for s in mobile_layers(MNASNET_A1, 3, 64, 1000, width_mult=0.25)]
    path = tmp_path / "pixel1.json"
    path.write_text(
        json.dumps(
            {"meta": {"device": "Pixel 1", "resolution": 64}, "entries": {k: 4.0 for k in keys}}
        )
    )
    small = ["latency.resolution=64", "latency.builder.width_mult=0.25"]
    cfg = compose("table", tmp_path, [f"latency.table_file={path}", *small])
    p = instantiate(cfg.latency)
    out = p(None, MNASNET_A1, in_channels=1, num_classes=10)
    assert out["latency_ms"] == pytest.approx(4.0 * len(keys))
    assert out["latency"]["table"]["device"] == "Pixel 1"
    path.write_text('{"meta": {"device": "Pixel 1"}, "entries": {}}')
    with pytest.raises(Exception, match="meta.resolution must be a positive integer"):
        instantiate(cfg.latency)


def test_mnasnet_experiment_wires_probe_reward_and_strategy(tmp_path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = hydra_compose(
            "search",
            overrides=[
                "experiment=mnasnet",
                f"run_dir={tmp_path}",
                "latency.target_ms=42",
                "latency=onnxruntime",
            ],
        )
    assert cfg.latency.backend == "onnxruntime" and cfg.latency.resolution == 224
    assert cfg.reward.target_ms == 42 and cfg.reward.alpha == cfg.reward.beta == -0.07
    assert cfg.strategy._target_.endswith("PPO")
    assert cfg.search_space._target_.endswith("MobileSpace")
    assert cfg.latency.cache_dir == str(tmp_path)


def test_command_line(tmp_path, capsys):
    from nas_lightning.latency.__main__ import main

    args = ["measure", "mnasnet_a1", "--resolution", "32", "--width-mult", "0.25"]
    assert main([*args, "--runs", "2", "--warmup", "0", "--repeats", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["runs"]) == 2 and report["settings"]["resolution"] == 32
    assert report["min_median_ms"] <= report["median_of_medians_ms"] <= report["max_median_ms"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"meta": {"device": "d", "resolution": 8}, "entries": {"x": 1}}))
    assert main(["check-table", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table_file:") and err.count("\n") == 1


@pytest.mark.parametrize(
    "overrides, backend, source",
    [
        ([], None, None),
        (["latency=eager_cpu"], "eager", "measured"),
        (["latency=onnxruntime"], "onnxruntime", "measured"),
        (["experiment=mnasnet"], "eager", "measured"),
        (["experiment=mnasnet", "latency=onnxruntime"], "onnxruntime", "measured"),
        (["experiment=mobilenetv3_small", "latency=onnxruntime"], "onnxruntime", "measured"),
        (["search_space=mnasnet", "strategy=netadapt", "latency=table"], "eager", "table"),
    ],
)
def test_latency_group_is_chosen_from_the_command_line(overrides, backend, source):
    """`latency=...` works with or without a preset; the command line wins over presets."""
    from conftest import compose_config

    cfg = compose_config("search", overrides)
    if backend is None:
        assert cfg.latency is None
    else:
        assert (cfg.latency.backend, cfg.latency.source) == (backend, source)
