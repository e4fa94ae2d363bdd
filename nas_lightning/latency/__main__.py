"""Command line: time a named or saved genotype, or check a table file.

    python -m nas_lightning.latency measure mnasnet_a1 --resolution 224 --runs 5
    python -m nas_lightning.latency check-table pixel1.json

``measure`` repeats the whole measurement (warm-up + timed runs) ``--runs``
times and prints every run's record and the spread of the medians across
runs, as JSON: the honest answer to "how stable is one figure?".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from nas_lightning.errors import ConfigError, GenotypeError


def _measure(args: argparse.Namespace) -> dict:
    from nas_lightning.genotypes.base import load_genotype
    from nas_lightning.latency.measure import measure_latency
    from nas_lightning.models.mobile import MobileNetwork

    genotype = load_genotype(args.genotype)
    net = MobileNetwork(genotype, args.in_channels, args.num_classes, width_mult=args.width_mult)
    shape = (args.in_channels, args.resolution, args.resolution)
    runs = []
    for _ in range(args.runs):
        rec = measure_latency(
            net,
            shape,
            backend=args.backend,
            threads=args.threads,
            warmup=args.warmup,
            repeats=args.repeats,
            dtype=args.dtype,
            batch=args.batch,
            channels_last=args.channels_last,
        )
        runs.append(rec)
    medians = [r.median_ms for r in runs]
    mean = statistics.fmean(medians)
    return {
        "genotype": str(genotype),
        "settings": runs[0].settings(),
        "runs": [
            {
                k: round(v, 3)
                for k, v in r.to_dict().items()
                if k.endswith("_ms") and k != "times_ms"
            }
            for r in runs
        ],
        "median_of_medians_ms": round(statistics.median(medians), 3),
        "min_median_ms": round(min(medians), 3),
        "max_median_ms": round(max(medians), 3),
        "cv_of_medians_pct": round(100 * statistics.pstdev(medians) / mean, 2),
        "median_relative_iqr_pct": round(
            100 * statistics.median(r.iqr_ms / r.median_ms for r in runs), 2
        ),
    }


def _check_table(args: argparse.Namespace) -> dict:
    from nas_lightning.latency.probe import mobile_key_check
    from nas_lightning.latency.table import LatencyTable

    table = LatencyTable.load(args.path, check_name=mobile_key_check)
    return {"ok": True, "entries": len(table), "meta": table.meta}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas_lightning.latency")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="time a mobile genotype's network several times")
    m.add_argument("genotype", help="a named genotype (mnasnet_a1) or a JSON file")
    m.add_argument("--resolution", type=int, default=224)
    m.add_argument("--backend", default="eager", choices=["eager", "onnxruntime", "cuda"])
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--batch", type=int, default=1)
    m.add_argument("--warmup", type=int, default=5)
    m.add_argument("--repeats", type=int, default=20)
    m.add_argument("--runs", type=int, default=5)
    m.add_argument("--dtype", default="float32")
    m.add_argument("--channels-last", action="store_true")
    m.add_argument("--width-mult", type=float, default=1.0)
    m.add_argument("--in-channels", type=int, default=3)
    m.add_argument("--num-classes", type=int, default=1000)
    c = sub.add_parser("check-table", help="validate a latency table file")
    c.add_argument("path")
    args = parser.parse_args(argv)
    try:
        result = _measure(args) if args.command == "measure" else _check_table(args)
    except (ConfigError, GenotypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
