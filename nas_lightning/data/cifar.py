"""CIFAR-10 and CIFAR-100 from their python-format archives.

The batches are read directly (not through torchvision's dataset class,
whose checksum test rejects anything but the exact published files), so the
same code reads the real data and small files in the same format.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from nas_lightning.data.base import ImageDataModule
from nas_lightning.errors import ConfigError


class CIFAR10(ImageDataModule):
    """CIFAR-10 (50k/10k, 32x32x3), downloaded by torchvision if missing.

    Args:
        data_dir: folder that holds (or will hold) ``cifar-10-batches-py``.
        download: fetch and extract the archive when it is missing.
    """

    in_channels = 3
    num_classes = 10
    image_size = 32
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    md5 = "c58f30108f718f92721af3b95e74349a"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    label_key = b"labels"

    def __init__(self, data_dir: str = "data", download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.download = download

    def _root(self) -> Path:
        return self.data_dir / self.folder

    def _present(self) -> bool:
        return all((self._root() / f).is_file() for f in self.train_files + self.test_files)

    def prepare_data(self) -> None:
        if not self._present() and self.download:
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(self.url, str(self.data_dir), md5=self.md5)

    def _read(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            with open(self._root() / name, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[self.label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    def load(self) -> tuple[np.ndarray, ...]:
        if not self._present():
            self.prepare_data()
        if not self._present():
            raise ConfigError(
                "dataset.data_dir", f"no {self.folder} in {self.data_dir} (set download=true)"
            )
        return (*self._read(self.train_files), *self._read(self.test_files))


class CIFAR100(CIFAR10):
    """CIFAR-100 with its 100 fine labels."""

    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_files = ("train",)
    test_files = ("test",)
    label_key = b"fine_labels"
