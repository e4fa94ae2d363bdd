"""ImageNet data module on a tiny generated ImageFolder tree of PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from nas_lightning.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNet
from nas_lightning.errors import ConfigError

IMAGENET_YAML = CONF / "dataset" / "imagenet.yaml"
CLASSES = ("n01", "n02", "n03")


def make_tree(root: Path, per_class: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = 30 + 7 * i, 40 + 3 * c  # mixed sizes and aspect ratios
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                pixels[..., c] = 40 * c  # a class-dependent channel
                mode = "RGB" if i % 2 else "L"  # greyscale files are converted to RGB
                img = Image.fromarray(pixels if mode == "RGB" else pixels[..., 0], mode)
                img.save(folder / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("imagenet"), {"train": 8, "val": 2})


def dm(tree: Path, **kw) -> ImageNet:
    args = dict(
        data_dir=str(tree), resolution=32, batch_size=4, val_size=6, num_workers=0, pin_memory=False
    )
    args.update(kw)
    return ImageNet(**args)


def test_splits_and_batches(tree):
    d = dm(tree)
    assert d.num_classes == 3 and d.in_channels == 3 and d.image_size == 32
    d.setup("fit")
    assert len(d.data["train"]) == 18 and len(d.data["val"]) == 6 and len(d.data["test"]) == 6
    train_ids = set(d.data["train"].indices)
    assert not train_ids & set(d.data["val"].indices)  # validation held out from train/
    x, y = next(iter(d.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 3
    xf, _ = d.on_after_batch_transfer((x, y), 0)
    assert xf.dtype == torch.float32
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(xf, (x.float() / 255 - mean) / std)
    assert len(d.train_dataloader()) == 4  # 18 images, batches of 4, last dropped
    assert sum(len(b[1]) for b in d.val_dataloader()) == 6  # nothing dropped in validation
    assert sum(len(b[1]) for b in d.test_dataloader()) == 6


def test_eval_is_deterministic_and_train_is_augmented(tree):
    d = dm(tree)
    a, _ = next(iter(d.val_dataloader()))
    b, _ = next(iter(d.val_dataloader()))
    assert torch.equal(a, b)
    torch.manual_seed(0)
    t1 = d.data["train"][0][0]
    t2 = d.data["train"][0][0]
    assert t1.shape == (3, 32, 32) and not torch.equal(t1, t2)


def test_labels_follow_folders(tree):
    d = dm(tree)
    d.setup()
    test = d.data["test"]
    checked = 0
    for idx, (path, label) in enumerate(test.samples):
        assert CLASSES[label] == Path(path).parent.name
        if path.endswith("img1.png"):  # RGB file: its class channel is constant 40 * class
            x, y = test[idx]
            assert y == label and bool((x[label] == 40 * label).all())
            checked += 1
    assert checked == 3


def test_subset_and_fraction(tree):
    d = dm(tree, val_size=0.25, train_subset=5)
    d.setup()
    assert len(d.data["val"]) == 6 and len(d.data["train"]) == 5


def test_a_training_split_smaller_than_one_batch_is_a_one_line_error(tree):
    d = dm(tree, val_size=0.25, train_subset=3)  # batches of 4, a short one dropped
    with pytest.raises(ConfigError, match="3 training images make no full batch of 4"):
        d.train_dataloader()
    assert len(d.val_dataloader()) == 2  # 6 images, the short batch kept


def test_errors(tmp_path, tree):
    with pytest.raises(ConfigError, match="does not exist"):
        _ = dm(tmp_path / "nowhere").num_classes
    with pytest.raises(ConfigError, match="leaves no training"):
        dm(tree, val_size=24).setup()
    with pytest.raises(ConfigError) as err:
        dm(tree, resolution=4)
    assert err.value.key == "resolution"
    bad = make_tree(tmp_path / "bad", {"train": 2, "val": 1})
    (bad / "val" / "n04").mkdir()
    with pytest.raises(ConfigError, match="no valid file for the classes n04"):
        dm(bad, val_size=2).setup()
    Image.new("RGB", (8, 8)).save(bad / "val" / "n04" / "x.png")
    with pytest.raises(ConfigError, match="differ"):
        dm(bad, val_size=2).setup()


def test_hydra_config(tree):
    node = OmegaConf.load(IMAGENET_YAML)
    node.data_dir, node.num_workers, node.pin_memory = str(tree), 0, False
    node.resolution, node.val_size = 48, 3
    cfg = OmegaConf.create({"child": {"batch_size": 2, "train_subset": None}, "dataset": node})
    d = instantiate(cfg.dataset)
    assert isinstance(d, ImageNet) and d.batch_size == 2 and d.resolution == 48
    x, _ = next(iter(d.train_dataloader()))
    assert x.shape == (2, 3, 48, 48)
