import gzip
import pickle

import numpy as np
import pytest
import torch

from nas_lightning.data import (
    CIFAR10,
    CIFAR100,
    BatchIndexSampler,
    EmbeddedFashionMNIST,
    FashionMNIST,
)
from nas_lightning.data.augment import cutout, random_crop
from nas_lightning.data.idx import read_idx, write_idx
from nas_lightning.errors import ConfigError


def test_embedded_subset_is_balanced_and_split_without_test_leak():
    dm = EmbeddedFashionMNIST(batch_size=100, val_size=1000)
    dm.setup()
    assert len(dm.data["train"]) == 8000 and len(dm.data["val"]) == 1000
    assert len(dm.data["test"]) == 2000
    assert dm.data["train"].images.dtype == torch.uint8
    assert dm.data["train"].images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(dm.data["test"].labels, minlength=10)
    assert (counts == 200).all()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 1, 28, 28) and y.shape == (100,)
    z = dm.normalize(dm.data["train"].images[:2000])
    assert abs(z.mean().item()) < 0.1 and abs(z.std().item() - 1) < 0.1


def test_split_is_fixed_by_split_seed_not_by_search_seed():
    a, b = EmbeddedFashionMNIST(val_size=500), EmbeddedFashionMNIST(val_size=500)
    a.setup()
    b.seed = 99
    b.setup()
    assert torch.equal(a.data["val"].labels, b.data["val"].labels)


def test_batch_sampler_shards_disjointly_across_ranks():
    ranks = [BatchIndexSampler(100, 10, True, True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat(list(s)) for s in ranks]
    assert len(set(seen[0].tolist()) & set(seen[1].tolist())) == 0
    assert len(seen[0]) + len(seen[1]) == 100
    s = ranks[0]
    first = torch.cat(list(s))
    s.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(s)))


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("size", [1, 5, 383, 384, 385, 2000, 2001])
@pytest.mark.parametrize("batch_size", [1, 128, 500])
def test_every_rank_gets_the_same_number_of_batches(world, size, batch_size):
    """DDP collectives pair up only if every rank steps (trains, validates) equally often."""
    for train in (True, False):
        ranks = [BatchIndexSampler(size, batch_size, train, train, seed=1, rank=r,
                                   world_size=world) for r in range(world)]
        batches = [list(s) for s in ranks]
        assert len({len(b) for b in batches}) == 1, (train, [len(b) for b in batches])
        assert all(len(b) > 0 for rank in batches for b in rank)
        if not train and size >= world:  # evaluation scores every image once
            seen = torch.cat([b for rank in batches for b in rank]).sort().values
            assert seen.tolist() == list(range(size))


def test_idx_round_trip_and_corrupt_file(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(arr, tmp_path / "a.gz")
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x05")
    with pytest.raises(ValueError):
        read_idx(tmp_path / "bad")


def _write_fmnist(folder, n_train=60, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
            folder / f"{prefix}-images-idx3-ubyte.gz",
        )
        write_idx(np.arange(n, dtype=np.uint8) % 10, folder / f"{prefix}-labels-idx1-ubyte.gz")


def test_full_fashion_mnist_reads_idx_files(tmp_path):
    _write_fmnist(tmp_path / "FashionMNIST" / "raw")
    dm = FashionMNIST(data_dir=str(tmp_path), download=False, val_size=10, batch_size=8)
    dm.setup()
    assert len(dm.data["train"]) == 50 and len(dm.data["test"]) == 20


def test_missing_fashion_mnist_without_download_names_the_key(tmp_path):
    dm = FashionMNIST(data_dir=str(tmp_path), download=False)
    with pytest.raises(ConfigError, match="data_dir"):
        dm.setup()


def _write_cifar(root, folder, train_files, test_files, label_key, classes):
    d = root / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in train_files + test_files:
        batch = {
            b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8),
            label_key: list(rng.integers(0, classes, 20)),
        }
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize("cls", [CIFAR10, CIFAR100])
def test_cifar_reads_the_python_format(tmp_path, cls):
    _write_cifar(
        tmp_path, cls.folder, cls.train_files, cls.test_files, cls.label_key, cls.num_classes
    )
    dm = cls(
        data_dir=str(tmp_path), download=False, verify_checksums=False, val_size=10, batch_size=4
    )
    dm.setup()
    n_train = 20 * len(cls.train_files)
    assert len(dm.data["train"]) == n_train - 10
    assert dm.data["train"].images.shape[1:] == (3, 32, 32)
    x, _ = next(iter(dm.train_dataloader()))
    assert dm.augment_batch(dm.normalize(x)).shape == (4, 3, 32, 32)


def test_batched_augmentations():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    torch.manual_seed(0)
    y = random_crop(x, 1)
    assert y.shape == x.shape
    # every output pixel is an input pixel or padding zero
    assert set(y.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    z = cutout(torch.ones(3, 1, 8, 8), 4)
    assert (z == 0).any() and (z.sum(dim=(1, 2, 3)) >= 64 - 16).all()


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"train_subset": 0}, "train_subset"),
    ],
)
def test_invalid_datamodule_arguments(kwargs, key):
    with pytest.raises(ConfigError) as err:
        EmbeddedFashionMNIST(**kwargs)
    assert err.value.key == key


def test_gzip_helper_is_gzip(tmp_path):
    write_idx(np.zeros((1, 2), dtype=np.uint8), tmp_path / "z.gz")
    assert gzip.open(tmp_path / "z.gz").read()[:4] == b"\x00\x00\x08\x02"


def test_a_training_split_smaller_than_one_batch_is_a_one_line_error():
    # Training drops a short last batch: 64 images in batches of 128 would train 0 steps.
    dm = EmbeddedFashionMNIST(batch_size=128, train_subset=64, val_size=64)
    with pytest.raises(ConfigError, match="64 training images make no full batch of 128") as err:
        dm.train_dataloader()
    assert err.value.key == "dataset.batch_size" and "\n" not in str(err.value)
    assert len(dm.val_dataloader()) == 1  # evaluation keeps a short batch
    assert len(EmbeddedFashionMNIST(batch_size=64, train_subset=64, val_size=64)
               .train_dataloader()) == 1
