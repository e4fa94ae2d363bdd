"""Build the Fashion-MNIST subset embedded in the package.

Reads the IDX files of Debian's ``dataset-fashion-mnist`` package (or any
folder with the four files) and writes a class-balanced subset to
``nas_lightning/data/assets/fashion_mnist_subset.npz``:

    python scripts/make_embedded_dataset.py --train-per-class 900 --test-per-class 200

The subset is drawn with a fixed seed, so the file is reproducible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nas_lightning.data.idx import read_idx

OUT = Path(__file__).resolve().parents[1] / "nas_lightning/data/assets/fashion_mnist_subset.npz"


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-per-class", type=int, default=900)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    src = Path(args.source)
    rng = np.random.default_rng(args.seed)
    arrays = {}
    for split, prefix, per_class in (
        ("train", "train", args.train_per_class),
        ("test", "t10k", args.test_per_class),
    ):
        x = read_idx(src / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(src / f"{prefix}-labels-idx1-ubyte.gz")
        idx = balanced(y, per_class, rng)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x[idx], y[idx]
    np.savez_compressed(args.out, **arrays)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {size / 1e6:.2f} MB, "
          + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
