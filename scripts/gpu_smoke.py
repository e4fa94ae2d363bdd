"""GPU smoke test and engine figures on a machine with one CUDA GPU (a few minutes).

1. Fails at once, with the reason, if torch sees no CUDA GPU (or Ray is missing).
2. The default search (``dataset=embedded``: no download; ``logger=csv``), two
   ways, alternating: ``executor=local trainer=gpu`` (one child at a time) and
   ``executor=ray trainer=gpu executor.gpus_per_child=0.5`` (two children
   sharing the GPU). Prints children per GPU-hour of each, whole run and
   steady state (after every worker's first child), and the ratio ray/local.
3. A tiny ``train.py`` run on the GPU (NASNet-A, a few batches, test and summary).

    python scripts/gpu_smoke.py                          # 2 rounds of 20 children
    python scripts/gpu_smoke.py --rounds 1 --children 8  # quicker
    python scripts/gpu_smoke.py --out /tmp/gpu_smoke     # also /tmp/gpu_smoke.{json,md}

Exit status: 0 when all ran, 1 when a step failed, 2 when there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def need_gpu() -> str:
    """The GPU's name, or exit 2 with the reason there is none."""
    try:
        import torch
    except ImportError as err:
        sys.exit(f"error: torch is not installed ({err}); install the project first")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        print(f"error: no CUDA GPU visible to torch {torch.__version__} "
              f"(CUDA build: {torch.version.cuda or 'none'}){why}; this script needs one",
              file=sys.stderr)
        sys.exit(2)
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit('error: executor=ray needs Ray: pip install -e ".[ray]"')
    return torch.cuda.get_device_name(0)


def tiny_train(out: Path) -> dict:
    """``train.py`` for a few batches on the GPU; returns its summary.json."""
    run = out / "train"
    cmd = [sys.executable, str(ROOT / "train.py"), "genotype=nasnet_a", "dataset=embedded",
           "trainer=gpu", "recipe.epochs=1", "trainer.limit_train_batches=20",
           "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "export.onnx=false",
           "train_logger=csv", "model.filters=16", "model.cells_per_stage=1",
           "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"})
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads((run / "summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--children", type=int, default=20, help="children per search")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    gpu = need_gpu()
    print(f"GPU: {gpu}", flush=True)
    import engine_throughput

    bench = argparse.Namespace(rounds=args.rounds, children=args.children, tiny=False,
                               pair="gpu")
    failed = False
    try:
        summary, table = engine_throughput.compare(bench)
    except RuntimeError as err:
        print(f"error: a search failed: {err}", file=sys.stderr)
        summary, table, failed = {}, "", True
    if summary:
        print(table)
        local, ray = engine_throughput.PAIRS["gpu"]
        rate, steady = summary["children_per_hour"], summary["steady_children_per_hour"]
        print(f"\nchildren per GPU-hour (1 GPU: {gpu}):")
        print(f"  executor=local trainer=gpu:                  {rate[local]:.0f} "
              f"(steady {steady[local]})")
        print(f"  executor=ray executor.gpus_per_child=0.5 x2: {rate[ray]:.0f} "
              f"(steady {steady[ray]})")
        print(f"  ratio ray/local: {summary['ratio']:.2f}x (steady {summary['steady_ratio']})")
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        try:
            train = tiny_train(Path(tmp))
            print(f"\ntrain.py on the GPU: ok ({json.dumps(train)[:300]})")
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"error: {err}", file=sys.stderr)
            train, failed = None, True
    total = time.perf_counter() - start
    print(f"\ngpu smoke {'FAILED' if failed else 'ok'} in {total:.0f} s")
    if args.out:
        result = {"gpu": gpu, "search": summary, "train": train, "seconds": round(total, 1)}
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(f"GPU: {gpu}\n\n{table}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
