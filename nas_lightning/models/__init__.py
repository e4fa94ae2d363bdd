"""Builders: genotype -> nn.Module."""

from nas_lightning.models.mobile import LayerSpec, MobileNetwork, mobile_layers
from nas_lightning.models.nas_rl import NASRLNetwork
from nas_lightning.models.nasnet import NASNetwork

__all__ = ["LayerSpec", "MobileNetwork", "NASNetwork", "NASRLNetwork", "mobile_layers"]
