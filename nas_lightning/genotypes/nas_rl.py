"""NAS-RL macro genotypes (Zoph & Le 2016): a chain of conv layers with skips.

A genotype lists every layer with its filter size, width, stride and the
*complete* set of earlier layers it reads. Whether the search space forces
the previous layer in is a property of the space, not of the architecture,
so the genotype alone is enough to build the network: a layer with no input
reads the image, and the layers nobody reads feed the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes.base import register_genotype


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GenotypeError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class NASRLLayer:
    """One convolution: ``filter_height x filter_width``, ``filters`` outputs.

    Attributes:
        filter_height: kernel height.
        filter_width: kernel width.
        filters: output channels.
        stride: the same stride along both axes.
        inputs: earlier layers (0-based, ascending) whose outputs are
            concatenated as this layer's input; empty means the image.
    """

    filter_height: int
    filter_width: int
    filters: int
    stride: int = 1
    inputs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("filter_height", "filter_width", "filters", "stride"):
            _positive_int(name, getattr(self, name))
        if any(isinstance(j, bool) or not isinstance(j, int) for j in self.inputs):
            raise GenotypeError(f"inputs must be layer indices, got {list(self.inputs)}")
        if list(self.inputs) != sorted(set(self.inputs)):
            raise GenotypeError(f"inputs must be ascending and distinct, got {list(self.inputs)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "filter_height": self.filter_height,
            "filter_width": self.filter_width,
            "filters": self.filters,
            "stride": self.stride,
            "inputs": list(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NASRLLayer:
        if not isinstance(data, dict):
            raise GenotypeError(f"a layer must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"filter_height", "filter_width", "filters", "stride", "inputs"}
        if unknown:
            raise GenotypeError(f"unknown layer keys {sorted(unknown)}")
        if not isinstance(data.get("inputs", []), list):
            raise GenotypeError(f"inputs must be a list of layer indices, got {data['inputs']!r}")
        return cls(
            filter_height=data["filter_height"],
            filter_width=data["filter_width"],
            filters=data["filters"],
            stride=data.get("stride", 1),
            inputs=tuple(data.get("inputs", ())),
        )

    def __str__(self) -> str:
        src = ",".join(map(str, self.inputs)) if self.inputs else "img"
        return f"{self.filter_height}x{self.filter_width}/{self.filters} s{self.stride} <- {src}"


@register_genotype
@dataclass(frozen=True)
class NASRLGenotype:
    """A NAS-RL child: conv layers in order, each reading earlier layers."""

    layers: tuple[NASRLLayer, ...]

    kind: ClassVar[str] = "nas_rl"

    def __post_init__(self) -> None:
        if not self.layers:
            raise GenotypeError("a nas_rl genotype needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, NASRLLayer):
                raise GenotypeError(f"layer {i}: expected NASRLLayer, got {type(layer).__name__}")
            bad = [j for j in layer.inputs if not 0 <= j < i]
            if bad:
                raise GenotypeError(f"layer {i}: inputs {bad} are not earlier layers (0..{i - 1})")

    @property
    def outputs(self) -> tuple[int, ...]:
        """Layers that no later layer reads: NAS-RL concatenates them at the end."""
        read = {j for layer in self.layers for j in layer.inputs}
        return tuple(i for i in range(len(self.layers)) if i not in read)

    def canonical(self) -> tuple[Any, ...]:
        """The layers, in order: every field of every layer changes the network.

        Layers are positional and each lists its complete set of inputs, so
        no two genotypes build the same network. Keyed by the genotype rather
        than the actions, the padding actions of a growing space's layers not
        yet live are ignored, and the same actions decoded at two depths are
        two networks.
        """
        return tuple(
            (layer.filter_height, layer.filter_width, layer.filters, layer.stride, layer.inputs)
            for layer in self.layers
        )

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NASRLGenotype:
        unknown = sorted(set(data) - {"layers"})
        if unknown:
            raise GenotypeError(
                f"unknown key {unknown[0]!r} in a nas_rl genotype; known: ['layers']"
            )
        layers = data["layers"]
        if not isinstance(layers, list):
            raise GenotypeError(f"layers must be a list, got {type(layers).__name__}")
        return cls(tuple(NASRLLayer.from_dict(layer) for layer in layers))

    def __str__(self) -> str:
        body = "; ".join(f"{i}: {layer}" for i, layer in enumerate(self.layers))
        return f"{body} -> concat{list(self.outputs)}"
