"""CIFAR-10 and CIFAR-100 from their python-format archives.

The batches are pickles, and unpickling a file can run any code it names.
So a batch is read only if its MD5 is the published one (torchvision's
list), and even then through an unpickler that admits nothing but the
containers and NumPy arrays a batch is made of. ``verify_checksums=False``
reads other files in the same format (small test sets) through that
unpickler alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nas_lightning.data.base import ImageDataModule
from nas_lightning.errors import ConfigError

# What a CIFAR batch pickle may name: NumPy's array and scalar reconstruction.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Refuses every global but NumPy's array reconstruction: no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_failed(name: str, url: str, folder: Path, err: BaseException) -> ConfigError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ConfigError(
        "dataset.data_dir",
        f"could not download {name} from {url} ({reason}); put the files in {folder} "
        "(or point dataset.data_dir at them), or use dataset=embedded, which needs no download",
    )


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
    dataset_name = "CIFAR-10"
    checksums = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    }

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        verify_checksums: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.download = download
        self.verify_checksums = verify_checksums

    def _root(self) -> Path:
        return self.data_dir / self.folder

    def _present(self) -> bool:
        return all((self._root() / f).is_file() for f in self.train_files + self.test_files)

    def prepare_data(self) -> None:
        if not self._present() and self.download:
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(self.url, str(self.data_dir), md5=self.md5)
            except Exception as err:  # offline, refused, truncated: say where files go
                raise _download_failed(self.dataset_name, self.url, self._root(), err) from None

    def _read_batch(self, path: Path) -> dict:
        """One batch, checked against its published MD5 before it is unpickled."""
        if self.verify_checksums:
            expected = self.checksums[path.name]
            if md5sum(path) != expected:
                raise ConfigError(
                    "dataset.data_dir",
                    f"{path} is not the published {self.dataset_name} file (MD5 differs from "
                    f"{expected}); refusing to unpickle it: delete it and download again",
                )
        try:
            batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise ConfigError("dataset.data_dir", f"{path} is not a CIFAR batch: {err}") from None
        if not isinstance(batch, dict) or b"data" not in batch or self.label_key not in batch:
            raise ConfigError("dataset.data_dir", f"{path} is not a {self.dataset_name} batch")
        return batch

    def _read(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            batch = self._read_batch(self._root() / name)
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
    dataset_name = "CIFAR-100"
    checksums = {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    }
