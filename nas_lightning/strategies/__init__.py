"""Search strategies behind one ask/tell interface."""

from nas_lightning.strategies.base import Proposal, Strategy
from nas_lightning.strategies.evolution import RegularizedEvolution
from nas_lightning.strategies.netadapt import NetAdapt
from nas_lightning.strategies.optuna_samplers import NSGA2, TPE, OptunaStrategy
from nas_lightning.strategies.ppo import PPO
from nas_lightning.strategies.random_search import RandomSearch
from nas_lightning.strategies.reinforce import PolicyGradientStrategy, Reinforce
from nas_lightning.strategies.sequence import StrategySequence

__all__ = [
    "NSGA2",
    "TPE",
    "OptunaStrategy",
    "PPO",
    "NetAdapt",
    "PolicyGradientStrategy",
    "Proposal",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Strategy",
    "StrategySequence",
]
