"""Controllers: policies over a space's decisions."""

from nas_lightning.controllers.lstm import ControllerOutput, LSTMController

__all__ = ["ControllerOutput", "LSTMController"]
