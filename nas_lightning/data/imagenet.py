"""ImageNet (or any ImageFolder tree) as a LightningDataModule.

Layout: ``data_dir/train/<class>/*.JPEG`` and ``data_dir/val/<class>/*``
(torchvision's ImageFolder layout; the official validation images sorted
into class folders). As in MnasNet, the validation set that rewards read is
held out from the *training* images with a fixed seed; the official ``val/``
folder is the test split, used only by ``train.py``'s final evaluation.

Images are decoded and cropped in loader workers and handed over as uint8
tensors (4x less inter-process traffic than float); conversion and
normalisation run batched in :meth:`on_after_batch_transfer`, on the GPU
when there is one. Each rank takes its own shard through a
``DistributedSampler`` (the search's Trainers run with
``use_distributed_sampler=False``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision import datasets, transforms

from nas_lightning.data.base import normalize_uint8, require_batches
from nas_lightning.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(resolution: int, min_scale: float = 0.08, jitter: float = 0.0):
    """Inception-style augmentation: random-resized crop, flip, optional colour jitter."""
    steps = [
        transforms.RandomResizedCrop(resolution, scale=(min_scale, 1.0), antialias=True),
        transforms.RandomHorizontalFlip(),
    ]
    if jitter > 0:
        steps.append(transforms.ColorJitter(jitter, jitter, jitter))
    steps.append(transforms.PILToTensor())
    return transforms.Compose(steps)


def eval_transform(resolution: int, crop_pct: float = 0.875):
    """Resize the short side to ``resolution / crop_pct``, then centre-crop."""
    return transforms.Compose(
        [
            transforms.Resize(round(resolution / crop_pct), antialias=True),
            transforms.CenterCrop(resolution),
            transforms.PILToTensor(),
        ]
    )


def _rgb(path: str):
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def _folder_dataset(root: Path, transform) -> datasets.ImageFolder:
    """``ImageFolder`` whose complaints (an empty class folder) are one-line config errors."""
    try:
        return datasets.ImageFolder(str(root), transform=transform, loader=_rgb)
    except (FileNotFoundError, OSError) as err:
        raise ConfigError("dataset.data_dir", f"{root}: {str(err).splitlines()[0]}") from None


class ImageNet(pl.LightningDataModule):
    """ImageNet-style folders with standard augmentation at a chosen resolution.

    Args:
        data_dir: folder holding ``train/`` and (for testing) ``val/``.
        resolution: side of the training/evaluation crops (224 for ImageNet;
            smaller for a cheap proxy task).
        batch_size: per-device batch size.
        val_size: training images held out for validation (MnasNet: 50,000),
            an int or a fraction below 1.
        train_subset: use only this many of the remaining training images
            (None: all).
        min_scale: lower bound of the random-resized-crop area.
        color_jitter: brightness/contrast/saturation jitter (0: off).
        crop_pct: evaluation centre-crop fraction (0.875: resize 256, crop 224).
        split_seed: seed of the held-out split and of the subset.
        num_workers: decoding processes per device.
        pin_memory: pin host memory (faster copies to a GPU).
    """

    in_channels = 3
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        data_dir: str = "data/imagenet",
        resolution: int = 224,
        batch_size: int = 256,
        val_size: int | float = 50_000,
        train_subset: int | None = None,
        min_scale: float = 0.08,
        color_jitter: float = 0.0,
        crop_pct: float = 0.875,
        split_seed: int = 0,
        num_workers: int = 8,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(resolution, int) or resolution < 8:
            raise ConfigError("resolution", f"must be an integer >= 8, got {resolution!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        if isinstance(val_size, float) and not 0 < val_size < 1:
            raise ConfigError("val_size", f"a fraction must be in (0, 1), got {val_size}")
        if isinstance(val_size, int) and val_size < 1:
            raise ConfigError("val_size", f"must be >= 1, got {val_size}")
        if train_subset is not None and train_subset < 1:
            raise ConfigError("train_subset", f"must be >= 1 or null, got {train_subset}")
        if not 0 < min_scale <= 1:
            raise ConfigError("min_scale", f"must be in (0, 1], got {min_scale}")
        if not 0 < crop_pct <= 1:
            raise ConfigError("crop_pct", f"must be in (0, 1], got {crop_pct}")
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.resolution = resolution
        self.batch_size, self.val_size, self.train_subset = batch_size, val_size, train_subset
        self.min_scale, self.color_jitter, self.crop_pct = min_scale, color_jitter, crop_pct
        self.split_seed, self.num_workers, self.pin_memory = split_seed, num_workers, pin_memory
        self.seed = 0  # the search sets it per child (shuffling order)
        self.data: dict[str, torch.utils.data.Dataset] = {}
        self._classes: list[str] | None = None

    @property
    def image_size(self) -> int:
        return self.resolution

    def _folder(self, split: str) -> Path:
        path = self.data_dir / split
        if not path.is_dir():
            raise ConfigError(
                "dataset.data_dir", f"{path} does not exist (expected {split}/<class>/<images>)"
            )
        return path

    @property
    def classes(self) -> list[str]:
        """Class folder names of ``train/``, sorted (ImageFolder's label order)."""
        if self._classes is None:
            root = self._folder("train")
            classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
            if not classes:
                raise ConfigError("dataset.data_dir", f"{root} has no class folders")
            self._classes = classes
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        root = self._folder("train")
        train_tf = train_transform(self.resolution, self.min_scale, self.color_jitter)
        eval_tf = eval_transform(self.resolution, self.crop_pct)
        # Two views of the same files: augmented for training, plain for validation.
        train_view = _folder_dataset(root, train_tf)
        val_view = _folder_dataset(root, eval_tf)
        if train_view.classes != self.classes:
            raise ConfigError("dataset.data_dir", f"{root}: class folders changed while reading")
        n = len(train_view)
        n_val = self.val_size if isinstance(self.val_size, int) else round(n * self.val_size)
        if not 0 < n_val < n:
            raise ConfigError("val_size", f"{self.val_size} leaves no training images out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if self.train_subset is not None:
            train_idx = train_idx[: self.train_subset]
        self.data = {
            "train": Subset(train_view, train_idx.tolist()),
            "val": Subset(val_view, val_idx.tolist()),
        }
        test_root = self.data_dir / "val"
        if test_root.is_dir():
            test = _folder_dataset(test_root, eval_tf)
            if test.classes != self.classes:
                raise ConfigError(
                    "dataset.data_dir",
                    f"{test_root} has {len(test.classes)} class folders that differ from "
                    f"train/'s {len(self.classes)}",
                )
            self.data["test"] = test

    def _loader(self, split: str, train: bool) -> DataLoader:
        if not self.data:
            self.setup()
        if split not in self.data:
            raise ConfigError("dataset.data_dir", f"no {self.data_dir / 'val'} for the test split")
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        sampler = DistributedSampler(
            self.data[split],
            num_replicas=world,
            rank=trainer.global_rank if trainer is not None else 0,
            shuffle=train,
            seed=self.seed,
            drop_last=train,
        )
        loader = DataLoader(
            self.data[split],
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )
        if not train:
            return loader
        return require_batches(loader, len(self.data[split]), self.batch_size, world)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        x, y = batch
        return self.normalize(x), y

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float, standardised per channel."""
        return normalize_uint8(x, self.mean, self.std)

    @property
    def num_train(self) -> int:
        if not self.data:
            self.setup()
        return len(self.data["train"])
