"""Search strategies behind one ask/tell interface."""

from nas_lightning.strategies.base import Proposal, Strategy
from nas_lightning.strategies.reinforce import PolicyGradientStrategy, Reinforce

__all__ = ["PolicyGradientStrategy", "Proposal", "Reinforce", "Strategy"]
