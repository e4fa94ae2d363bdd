"""The LightningModule of ``train.py`` and what its checkpoints carry.

A checkpoint stores, next to the weights, the architecture as plain JSON
data (genotype, builder arguments, input shape) in its hyperparameters, so
``eval_only=true ckpt_path=...`` rebuilds the network without the original
command, and every load uses ``torch.load(..., weights_only=True)``: no
pickled code runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_lightning.child import ChildModule
from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.base import genotype_from_dict


class TrainModule(ChildModule):
    """:class:`ChildModule` that records its architecture in the checkpoint.

    Args:
        net: the network; None builds it from ``architecture`` (what
            ``TrainModule.load_from_checkpoint(path)`` does).
        num_classes: classes of the task (None: ``architecture["num_classes"]``).
        architecture: plain JSON data: ``genotype`` (``genotype_to_dict``),
            ``model`` (builder keyword arguments), ``in_channels``,
            ``num_classes``, ``image_size``, ``dataset``.
        recipe: the training recipe, as plain data (for the loggers).
        seed: reseed torch before every training batch from ``(seed, batch
            number, rank)``; None leaves torch's generator alone.
        options: :class:`ChildModule` options saved in a checkpoint (the plain
            values among ``kwargs``); ``kwargs`` override them.
        **kwargs: :class:`ChildModule` options (optimizer, scheduler, ...).

    Augmentation and drop-path draw from torch's global generator, whose
    state a checkpoint does not hold, and Lightning's data iterators draw
    from it at times that differ between a resumed and an uninterrupted fit.
    Seeding each batch from its number makes a resumed training draw exactly
    what the uninterrupted one would have, and gives each DDP rank its own
    stream.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        num_classes: int | None = None,
        architecture: dict[str, Any] | None = None,
        recipe: dict[str, Any] | None = None,
        seed: int | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(architecture, dict):
            raise ConfigError("architecture", "a TrainModule needs its architecture record")
        if net is None:
            net = network_from_architecture(architecture)
        if num_classes is None:
            num_classes = int(architecture["num_classes"])
        kwargs = {**(options or {}), **kwargs}
        super().__init__(net, num_classes, **kwargs)
        self.seed = seed
        plain = {k: v for k, v in kwargs.items() if isinstance(v, bool | int | float | str)}
        self.save_hyperparameters(
            {"architecture": architecture, "recipe": recipe or {}, "seed": seed,
             "options": plain}
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self.trainer  # only a Trainer calls this hook
        if self.seed is not None and trainer.training:
            index = trainer.fit_loop.epoch_loop.batch_progress.total.ready
            torch.manual_seed((self.seed * 1_000_003 + index * 7_919 + trainer.global_rank) % 2**62)
        return batch


def network_from_architecture(architecture: dict[str, Any]) -> nn.Module:
    """The (untrained) network a checkpoint's architecture record describes."""
    from nas_lightning.models.registry import build_model

    for key in ("genotype", "model", "in_channels", "num_classes"):
        if key not in architecture:
            raise GenotypeError(f"the architecture record lacks {key!r}")
    genotype = genotype_from_dict(architecture["genotype"])
    return build_model(genotype, int(architecture["in_channels"]),
                       int(architecture["num_classes"]), dict(architecture["model"]))


def _load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``; errors name ``ckpt_path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("ckpt_path", f"no checkpoint file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            "ckpt_path", f"{path} is not a weights-only checkpoint: {first}"
        ) from None


def read_checkpoint_epoch(path: str | Path) -> int:
    """The epoch a resumed training continues with (the epochs the checkpoint finished)."""
    ckpt = _load(path)
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(ckpt.get("epoch", 0)) if isinstance(ckpt, dict) else 0


def resume_sampler_epoch(datamodule: Any, ckpt_path: str) -> None:
    """Give the first resumed epoch its own data order.

    Lightning 2.6 creates the first training iterator of a resumed fit before
    it sets the sampler's epoch (and before it restores its epoch counter), so
    that epoch would replay epoch 0's order (Lightning-AI/pytorch-lightning#21938).
    The first loader requested gets the checkpoint's epoch here instead.
    """
    epoch = read_checkpoint_epoch(ckpt_path)
    make_loader = datamodule.train_dataloader
    first = [True]

    def train_dataloader():
        loader = make_loader()
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if first[0] and callable(set_epoch):
            set_epoch(epoch)
        first[0] = False
        return loader

    datamodule.train_dataloader = train_dataloader


def read_checkpoint_architecture(path: str | Path) -> dict[str, Any]:
    """The architecture stored in a ``train.py`` checkpoint, read with ``weights_only=True``.

    Raises:
        ConfigError: (key ``ckpt_path``) the file is missing, is not loadable
            as plain data, or is not a ``train.py`` checkpoint.
        GenotypeError: its genotype is malformed.
    """
    ckpt = _load(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    arch = hparams.get("architecture") if isinstance(hparams, dict) else None
    if not isinstance(arch, dict) or "genotype" not in arch:
        raise ConfigError("ckpt_path", f"{path} is not a train.py checkpoint (no architecture)")
    genotype_from_dict(arch["genotype"])  # validates it
    for key in ("model", "in_channels", "num_classes"):
        if key not in arch:
            raise GenotypeError(f"{path}: the checkpoint's architecture lacks {key!r}")
    return arch
