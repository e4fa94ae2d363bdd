"""Re-time NetAdapt's path: the start network and each iteration's choice, side by side.

NetAdapt decides with a per-layer table (calibrated once to the whole start
network). This benchmark checks the decisions afterwards by timing the whole
networks of ``<run>/netadapt.json``'s path, in alternating rounds (each round
times every network once, in turn), so machine noise hits all alike. It
reports each network's median latency and the median over rounds of its
ratio to the start network timed in the same round.

    python benchmarks/netadapt_path.py runs/search/<run> --rounds 15

Conditions are those of the run's probe (``latency_settings`` in
netadapt.json: backend, threads, batch, resolution); 1,000 classes.
Writes ``<run>/netadapt_path.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a NetAdapt search's run folder")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    import torch

    from nas_lightning.core.records import read_children
    from nas_lightning.genotypes import genotype_from_dict, genotype_to_dict
    from nas_lightning.latency import measure_latency
    from nas_lightning.models.mobile import MobileNetwork
    from nas_lightning.models.profile import count_macs

    report = json.loads((args.run / "netadapt.json").read_text())
    settings = report.get("latency_settings") or {}
    resolution = int(settings.get("resolution", 224))
    threads = int(settings.get("threads", 1))
    backend = settings.get("backend", "eager")
    shape = (3, resolution, resolution)
    torch.set_num_threads(threads)

    children = {r["index"]: r for r in read_children(args.run)}
    # The path starts with the unreduced network (kind "start"); each entry names the child
    # whose record holds the full genotype (the path keeps only the block strings).
    rows = []
    for p in report["path"]:
        change = f"stage {p['stage']} {p['kind']} {p['change']}"
        if p["kind"] == "start":
            change = "start"
        rows.append({"iteration": p["iteration"], "change": change, "child": p.get("child"),
                     "genotype": children[p["child"]]["genotype"],
                     "table_ms": p["latency_ms"]})
    nets = []
    for row in rows:
        genotype = genotype_from_dict(row["genotype"])
        net = MobileNetwork(genotype, in_channels=3, num_classes=1000).eval()
        nets.append(net)
        row["macs"] = count_macs(net, shape)
        record = children.get(row["child"], {})
        row["val_acc"] = record.get("val_acc")
        row["genotype"] = genotype_to_dict(genotype)
    times: list[list[float]] = [[] for _ in nets]
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        order = range(len(nets)) if r % 2 == 0 else reversed(range(len(nets)))
        for i in order:
            rec = measure_latency(nets[i], shape, backend=backend, threads=threads,
                                  warmup=args.warmup, repeats=args.repeats)
            times[i].append(rec.median_ms)
    loads.append(os.getloadavg()[0])
    for row, t in zip(rows, times, strict=True):
        row["measured_median_ms"] = round(statistics.median(t), 2)
        row["measured_range_ms"] = [round(min(t), 2), round(max(t), 2)]
        row["ratio_to_start"] = round(
            statistics.median(a / b for a, b in zip(t, times[0], strict=True)), 4
        )
    out = {"run": str(args.run), "rounds": args.rounds, "warmup": args.warmup,
           "repeats": args.repeats, "backend": backend, "threads": threads,
           "input": list(shape), "target_ms": report.get("target_ms"),
           "scale": report.get("scale"), "load": loads, "rows": rows}
    (args.run / "netadapt_path.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"target {report.get('target_ms')} ms (table, calibrated); load {loads}")
    print("| iteration | change | table ms | measured median ms (range) | ratio to start "
          "(paired median) | MMACs | val acc |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        table = f"{row['table_ms']:.1f}"
        acc = "" if row["val_acc"] is None else f"{row['val_acc']:.3f}"
        lo, hi = row["measured_range_ms"]
        print(f"| {row['iteration']} | {row['change']} | {table} | {row['measured_median_ms']:.1f} "
              f"({lo:.1f}-{hi:.1f}) | {row['ratio_to_start']:.3f} | {row['macs'] / 1e6:.1f} | "
              f"{acc} |")
    return rows


if __name__ == "__main__":
    main()
