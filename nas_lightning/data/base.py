"""In-memory image datasets as LightningDataModules.

Small datasets (Fashion-MNIST, CIFAR) fit in memory as uint8 tensors. The
loaders here hand out whole batches by indexing those tensors (no per-item
Python work, no collate); conversion to float, normalisation and
augmentation run batched in :meth:`on_after_batch_transfer`, i.e. on the
accelerator when there is one.

Splits: the validation set is held out from the *training* data with a fixed
``split_seed`` (rewards never see the test split); the test split is only
used by ``train.py``'s final evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nas_lightning.data.augment import cutout, random_crop, random_hflip
from nas_lightning.errors import ConfigError


class TensorBatches(Dataset):
    """A dataset indexed by a whole batch of indices at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class BatchIndexSampler(Sampler[torch.Tensor]):
    """Yields index tensors of one batch each; shards across ranks itself.

    Every rank shuffles with the same seed and epoch, then takes every
    ``world_size``-th batch, so ranks see disjoint data with no distributed
    sampler from Lightning.

    Every rank yields the same number of batches: under DDP each training
    step all-reduces gradients and each evaluation step broadcasts buffers,
    so one rank with an extra batch waits in a collective that the others
    never join (gloo: "collective mismatch"; NCCL: a hang). Training drops
    the batches left over after a multiple of ``world_size`` (as it drops a
    short last batch); evaluation keeps every image and splits each rank's
    share into the same number of batches, whose sizes differ by at most one.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[torch.Tensor]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=gen)
        else:
            order = torch.arange(self.size)
        if self.world_size > 1 and not self.drop_last:
            return self._even_shard(order)
        batches = list(order.split(self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.world_size > 1:
            batches = batches[: len(batches) - len(batches) % self.world_size]
        return batches[self.rank :: self.world_size]

    def _even_shard(self, order: torch.Tensor) -> list[torch.Tensor]:
        """This rank's share of ``order``, in as many batches as every other rank's."""
        shard = order.tensor_split(self.world_size)[self.rank]
        largest = math.ceil(self.size / self.world_size)
        smallest = self.size // self.world_size  # no rank gets an empty batch
        count = min(math.ceil(largest / self.batch_size), smallest)
        return list(shard.tensor_split(count)) if count else []

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def require_batches(loader: DataLoader, images: int, batch_size: int,
                    world_size: int) -> DataLoader:
    """``loader`` if it yields at least one training batch, else a one-line error.

    Training drops a short last batch, so a split smaller than one batch (per
    rank) would train for zero steps and report an untrained network as done.
    """
    if len(loader) == 0:
        raise ConfigError.no_full_batch(images, batch_size, world_size)
    return loader


class ImageDataModule(pl.LightningDataModule):
    """Base for datasets held in memory as uint8 NCHW tensors.

    Subclasses set ``in_channels``, ``num_classes``, ``image_size``, ``mean``
    and ``std`` and implement :meth:`load`.

    Args:
        batch_size: per-device batch size.
        val_size: held-out validation images taken from the training data
            (an int) or a fraction of it (a float below 1).
        train_subset: use only this many of the remaining training images
            (None: all); the proxy task of a search.
        augment: random crop (``crop_padding``) and, if ``hflip``, flips.
        cutout: side of the cutout square (0: off).
        split_seed: seed of the train/validation split; fixed by default so
            that every child and every search shares one validation set.
        num_workers: loader workers; batches are slices of memory, so 0 is
            usually fastest.
        eval_batch_size: batch size of validation and test (None: as
            training). Inference needs no gradients, so larger batches are
            cheaper per image (BENCHMARKS.md) and give the same accuracy.
    """

    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    crop_padding: int = 4
    hflip: bool = True

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int | float = 0.1,
        train_subset: int | None = None,
        augment: bool = True,
        cutout: int = 0,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        if isinstance(val_size, float) and not 0 < val_size < 1:
            raise ConfigError("val_size", f"a fraction must be in (0, 1), got {val_size}")
        if isinstance(val_size, int) and val_size < 1:
            raise ConfigError("val_size", f"must be >= 1, got {val_size}")
        if train_subset is not None and train_subset < 1:
            raise ConfigError("train_subset", f"must be >= 1 or null, got {train_subset}")
        if cutout < 0:
            raise ConfigError("cutout", f"must be >= 0, got {cutout}")
        if eval_batch_size is not None and (
            not isinstance(eval_batch_size, int) or eval_batch_size < 1
        ):
            raise ConfigError(
                "eval_batch_size", f"must be an integer >= 1 or null, got {eval_batch_size!r}"
            )
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_subset = train_subset
        self.augment = augment
        self.cutout = cutout
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.eval_batch_size = eval_batch_size
        self.data: dict[str, TensorBatches] = {}
        self.seed = 0

    # -- subclass hook -----------------------------------------------------
    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return ``train_x, train_y, test_x, test_y`` (uint8 NCHW or NHW)."""
        raise NotImplementedError

    # -- Lightning hooks ---------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return  # loaded once, reused by every child of a search
        train_x, train_y, test_x, test_y = (torch.as_tensor(a) for a in self.load())
        train_x, test_x = _nchw(train_x), _nchw(test_x)
        n = len(train_y)
        n_val = self.val_size if isinstance(self.val_size, int) else round(n * self.val_size)
        if not 0 < n_val < n:
            raise ConfigError("val_size", f"{self.val_size} leaves no training data out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if self.train_subset is not None:
            train_idx = train_idx[: self.train_subset]
        self.data = {
            "train": TensorBatches(train_x[train_idx].contiguous(), train_y[train_idx].long()),
            "val": TensorBatches(train_x[val_idx].contiguous(), train_y[val_idx].long()),
            "test": TensorBatches(test_x.contiguous(), test_y.long()),
        }

    def _loader(self, split: str, train: bool) -> DataLoader:
        if not self.data:
            self.setup()
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        batch_size = self.batch_size
        if not train and self.eval_batch_size:
            # never so large that a rank is left without a batch (DDP metrics sync per rank)
            per_rank = math.ceil(len(self.data[split]) / world)
            batch_size = max(self.batch_size, min(self.eval_batch_size, per_rank))
        sampler = BatchIndexSampler(
            len(self.data[split]),
            batch_size,
            shuffle=train,
            drop_last=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )
        loader = DataLoader(
            self.data[split],
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )
        if not train:
            return loader
        return require_batches(loader, len(self.data[split]), batch_size, world)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        x, y = batch
        x = self.normalize(x)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            x = self.augment_batch(x)
        return x, y

    def fixed_batch(self, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``size`` training images, normalised and not augmented: the
        same batch every call (what zero-cost proxies score a network on)."""
        if not self.data:
            self.setup()
        x, y = self.data["train"][torch.arange(min(size, len(self.data["train"])))]
        return self.normalize(x), y

    # -- batch transforms --------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float, standardised per channel."""
        return normalize_uint8(x, self.mean, self.std)

    def augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.augment:
            x = random_crop(x, self.crop_padding)
            if self.hflip:
                x = random_hflip(x)
        if self.cutout:
            x = cutout(x, self.cutout)
        return x

    @property
    def num_train(self) -> int:
        if not self.data:
            self.setup()
        return len(self.data["train"])


def normalize_uint8(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [0, 255] NCHW -> float, standardised per channel by ``mean`` and ``std``."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """NHW -> N1HW; NHWC -> NCHW (CIFAR's on-disk layout)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return x.permute(0, 3, 1, 2)
    return x
