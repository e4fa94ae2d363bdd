"""Fashion-MNIST: the embedded subset and the full dataset from IDX files."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from nas_lightning.data.base import ImageDataModule
from nas_lightning.data.idx import read_idx
from nas_lightning.errors import ConfigError

_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


class _FashionMNISTBase(ImageDataModule):
    in_channels = 1
    num_classes = 10
    image_size = 28
    mean = (0.2860,)
    std = (0.3530,)
    crop_padding = 2
    hflip = True


class EmbeddedFashionMNIST(_FashionMNISTBase):
    """The class-balanced Fashion-MNIST subset shipped in the package.

    9,000 training and 2,000 test images (made by
    ``scripts/make_embedded_dataset.py``): the default proxy task, needing
    no download.
    """

    def load(self) -> tuple[np.ndarray, ...]:
        ref = resources.files("nas_lightning.data") / "assets/fashion_mnist_subset.npz"
        with resources.as_file(ref) as path, np.load(path) as data:
            return tuple(data[k] for k in ("train_x", "train_y", "test_x", "test_y"))


class FashionMNIST(_FashionMNISTBase):
    """The full Fashion-MNIST (60k/10k) from local IDX files.

    Looks in ``data_dir`` (and its ``FashionMNIST/raw`` subfolder, the layout
    torchvision downloads to) for the four files, gzipped or not. If they are
    missing and ``download`` is set, torchvision downloads them there.

    Args:
        data_dir: folder with the IDX files; Debian's
            ``dataset-fashion-mnist`` installs them in
            ``/usr/share/datasets/fashion-mnist``.
        download: fetch through torchvision when the files are missing.
    """

    def __init__(self, data_dir: str = DEBIAN_DIR, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.download = download

    def _find(self) -> dict[str, Path] | None:
        for folder in (self.data_dir, self.data_dir / "FashionMNIST" / "raw"):
            found = {}
            for key, stem in _FILES.items():
                for name in (f"{stem}.gz", stem):
                    if (folder / name).is_file():
                        found[key] = folder / name
                        break
            if len(found) == len(_FILES):
                return found
        return None

    def prepare_data(self) -> None:
        if self._find() is None and self.download:
            from torchvision.datasets import FashionMNIST as TVFashionMNIST

            raw = self.data_dir / "FashionMNIST" / "raw"
            existed = raw.exists()
            try:
                TVFashionMNIST(str(self.data_dir), train=True, download=True)
                TVFashionMNIST(str(self.data_dir), train=False, download=True)
            except Exception as err:  # offline or refused: say where the files go
                if not existed and raw.is_dir() and not any(raw.iterdir()):
                    raw.rmdir()  # the failed download's empty folders
                    if not any(raw.parent.iterdir()):
                        raw.parent.rmdir()
                reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ConfigError(
                    "dataset.data_dir",
                    f"could not download Fashion-MNIST ({type(err).__name__}: {reason}); put "
                    f"the four IDX files ({', '.join(_FILES.values())}, gzipped or not) in "
                    f"{self.data_dir} (or install Debian's dataset-fashion-mnist), or use "
                    "dataset=embedded, which needs no download",
                ) from None

    def load(self) -> tuple[np.ndarray, ...]:
        files = self._find()
        if files is None:
            self.prepare_data()
            files = self._find()
        if files is None:
            raise ConfigError(
                "dataset.data_dir",
                f"no Fashion-MNIST IDX files in {self.data_dir} (set download=true "
                "or install Debian's dataset-fashion-mnist)",
            )
        return tuple(read_idx(files[k]) for k in ("train_x", "train_y", "test_x", "test_y"))
