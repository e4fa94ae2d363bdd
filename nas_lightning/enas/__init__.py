"""ENAS (Pham et al. 2018): one shared set of weights for every child of the NASNet cell space."""

from nas_lightning.enas.supernet import Supernet, copy_weights, weight_pairs

__all__ = ["Supernet", "copy_weights", "weight_pairs"]
