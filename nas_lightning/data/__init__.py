"""Datasets as LightningDataModules."""

from nas_lightning.data.base import BatchIndexSampler, ImageDataModule, TensorBatches
from nas_lightning.data.cifar import CIFAR10, CIFAR100
from nas_lightning.data.fashion_mnist import EmbeddedFashionMNIST, FashionMNIST

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "BatchIndexSampler",
    "EmbeddedFashionMNIST",
    "FashionMNIST",
    "ImageDataModule",
    "TensorBatches",
]
