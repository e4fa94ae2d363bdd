"""Benchmark: train the best cell of a default search on the full Fashion-MNIST.

Target: at least 93% test accuracy within 60 minutes on a 2-core CPU. The
genotype is the ``best.json`` of a default search (``python search.py``),
committed as ``benchmarks/results/default_search_best.json``; the network
stacks it wider and deeper than during the search and trains it with the
recipe below through ``run_train``, exactly what ``python train.py`` runs.

    nice -n 5 python benchmarks/train_fashion_mnist.py            # the benchmark
    python benchmarks/train_fashion_mnist.py --probe 20           # img/s of 20 steps only

Writes ``benchmarks/results/train_fashion_mnist.json`` (test accuracy, wall
time, epochs, parameters, multiply-adds, the command and the load average
seen) and appends one line to ``benchmarks/results/train_fashion_mnist.md``.
The wall time counts everything: data loading, training, validation,
testing and the ONNX export.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_GENOTYPE = RESULTS / "default_search_best.json"


def overrides(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The ``train.py`` command-line overrides of this benchmark."""
    return [
        f"genotype={args.genotype}",
        "dataset=fashion_mnist",
        f"dataset.data_dir={args.data_dir}",
        "dataset.download=false",
        "train_logger=csv",
        f"model.filters={args.filters}",
        f"model.cells_per_stage={args.cells}",
        f"model.stem_multiplier={args.stem_multiplier}",
        f"model.stem_stride={args.stem_stride}",
        f"recipe.epochs={args.epochs}",
        f"recipe.batch_size={args.batch_size}",
        f"recipe.optimizer.lr={args.lr}",
        f"recipe.optimizer.weight_decay={args.weight_decay}",
        f"recipe.label_smoothing={args.label_smoothing}",
        f"recipe.warmup_steps={args.warmup_steps}",
        f"recipe.channels_last={args.channels_last}",
        f"trainer.precision={args.precision}",
        f"dataset.val_size={args.val_size}",
        "trainer.enable_progress_bar=false",
        f"trainer.max_time={_max_time(args.max_minutes - 3)}",
        f"seed={args.seed}",
        f"num_threads={args.threads}",
        f"run_dir={run_dir}",
        *args.override,
    ]


def _max_time(minutes: float) -> str:
    """Lightning's ``DD:HH:MM:SS`` for a training-time cap (test and export come after)."""
    total = max(60, int(minutes * 60))
    return f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _model_text(model: dict) -> str:
    return (
        f"F={model['filters']} N={model['cells_per_stage']} "
        f"stem x{model['stem_multiplier']} stride {model['stem_stride']}"
    )


def compose(args: argparse.Namespace, run_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides(args, run_dir))


def probe(args: argparse.Namespace, steps: int) -> None:
    """Time ``steps`` SGD steps on random data: images per second, wall and CPU."""
    import torch

    from nas_lightning.models.profile import count_macs, count_params
    from nas_lightning.training.run import build_network

    cfg = compose(args, Path("/tmp/unused"))
    torch.set_num_threads(args.threads)
    _, net, arch, _ = build_network(cfg)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch_size,))
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            wall, cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", torch.bfloat16, enabled=args.precision.startswith("bf16")):
            out = net(x)
            loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = steps * args.batch_size
    print(
        json.dumps(
            {
                "model": arch["model"],
                "channels_last": args.channels_last,
                "precision": args.precision,
                "params": count_params(net),
                "macs": count_macs(net, (1, 28, 28)),
                "threads": torch.get_num_threads(),
                "img_per_s_wall": round(images / wall, 1),
                "cpu_s_per_1k_img": round(1000 * cpu / images, 2),
                "loadavg": os.getloadavg(),
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotype", default=str(DEFAULT_GENOTYPE))
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--cells", type=int, default=1, help="normal cells per stage (N)")
    parser.add_argument("--stem-multiplier", type=int, default=3)
    parser.add_argument("--stem-stride", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="any further train.py override, e.g. recipe.drop_path=0.1",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=60.0,
        help="the time limit: training stops 3 minutes before it (test, export)",
    )
    parser.add_argument("--probe", type=int, default=0, help="only time this many steps")
    parser.add_argument("--out", default=str(RESULTS / "train_fashion_mnist.json"))
    args = parser.parse_args(argv)
    if args.probe:
        probe(args, args.probe)
        return

    from nas_lightning.training import run_train

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = ROOT / "runs" / "train" / f"bench_fashion_mnist_{stamp}"
    load_before = os.getloadavg()
    start = time.perf_counter()
    summary = run_train(compose(args, run_dir))
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    result = {
        "benchmark": "train the best cell of a default search on the full Fashion-MNIST",
        "target": "test_acc >= 0.93 within 3600 s on this machine",
        "test_acc": summary["test_acc"],
        "best_val_acc": summary["best_val_acc"],
        "wall_seconds": round(wall, 1),
        "fit_seconds": summary["fit_seconds"],
        "met_target": bool(summary["test_acc"] >= 0.93 and wall <= 3600),
        "epochs": summary["epochs"],
        "epochs_planned": args.epochs,
        "stopped_by_time_limit": summary["epochs"] < args.epochs,
        "threads": args.threads,
        "params": summary["params"],
        "macs": summary["macs"],
        "model": summary["model"],
        "genotype_file": os.path.relpath(args.genotype, ROOT),
        "genotype": summary["genotype"],
        "val_curve": summary["val_curve"],
        "onnx_max_abs_diff": (summary.get("onnx") or {}).get("max_abs_diff"),
        "dataset": summary["dataset"],
        "command": "python benchmarks/train_fashion_mnist.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "train_overrides": overrides(args, run_dir),
        "run_dir": os.path.relpath(run_dir, ROOT),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": stamp,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    line = (
        f"| {stamp} | {result['test_acc']:.4f} | {wall / 60:.1f} min | {result['epochs']} | "
        f"{result['params']} | {result['macs'] / 1e6:.1f}M | {_model_text(result['model'])} | "
        f"load {result['loadavg_before'][0]:.1f}->{result['loadavg_after'][0]:.1f} |\n"
    )
    md = Path(args.out).with_suffix(".md")
    if not md.exists():
        md.write_text(
            "| date | test acc | wall | epochs | params | MACs | model | load avg |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
    with open(md, "a") as f:
        f.write(line)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("test_acc", "wall_seconds", "epochs", "params", "macs", "met_target")
            }
        )
    )


if __name__ == "__main__":
    main()
