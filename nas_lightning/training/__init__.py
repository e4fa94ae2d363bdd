"""Full training of one architecture (``train.py``): recipe, export, model card."""

from nas_lightning.training.callbacks import DropPathSchedule
from nas_lightning.training.module import TrainModule, read_checkpoint_architecture
from nas_lightning.training.run import run_train

__all__ = [
    "DropPathSchedule",
    "TrainModule",
    "read_checkpoint_architecture",
    "run_train",
]
