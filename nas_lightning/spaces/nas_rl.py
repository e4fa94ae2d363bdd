"""The NAS-RL macro search space (Zoph & Le 2016).

Per layer the controller makes, in the paper's order: filter height, filter
width, number of filters, (stride), then the layer's anchor point, which
chooses the skip connections into this layer by one Bernoulli per earlier
layer, ``P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))``.

Two readings of the paper's connectivity, chosen by ``connect_previous``:

* ``True`` (default: the connected outputs plus the previous layer): the
  previous layer always feeds the next, so the anchor of layer ``i`` scores
  only the layers ``j < i - 1``
  (a Bernoulli for ``i - 1`` would be a coin with no effect on the network
  and only add noise to REINFORCE). Every network is then a chain with
  extra skips and only layer 0 reads the image.
* ``False`` (the paper's text read literally): the anchor of layer ``i``
  scores every ``j < i``; a layer connected to nothing reads the image, and
  the paper's "compilation failure" rules do real work.

The depth may grow over the search (the paper: from 6 layers, +2 every
1,600 children): with ``start_layers`` set, only the first
``active_layers`` layers are live and :meth:`set_progress` adds
``grow_by`` layers every ``grow_every`` children.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.nas_rl import NASRLGenotype, NASRLLayer
from nas_lightning.spaces.base import Actions, AnchorDecision, Decision, SearchSpace

PAPER_FILTER_SIZES = (1, 3, 5, 7)
PAPER_NUM_FILTERS = (24, 36, 48, 64)
PAPER_STRIDES = (1, 2, 3)


def _choices(key: str, values: Sequence[int] | None) -> tuple[int, ...]:
    if values is None or isinstance(values, str | int):
        raise ConfigError(key, f"must be a list of integers, got {values!r}")
    out = tuple(values)
    if not out:
        raise ConfigError(key, "needs at least one choice")
    bad = [v for v in out if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise ConfigError(key, f"choices must be integers >= 1, got {list(out)}")
    if len(set(out)) != len(out):
        raise ConfigError(key, f"choices must be distinct, got {list(out)}")
    return out


def _optional_int(key: str, value: int | None, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(key, f"must be an integer >= {low} or null, got {value!r}")
    return value


class NASRLSpace(SearchSpace):
    """Layer-by-layer conv nets with anchor-point skip connections.

    Args:
        num_layers: the most layers a child can have.
        filter_heights: kernel heights to choose from (the paper: 1, 3, 5, 7).
        filter_widths: kernel widths to choose from (the paper: 1, 3, 5, 7).
        num_filters: output channels to choose from (the paper: 24, 36, 48, 64).
        strides: strides to choose from (the paper's stride variant: 1, 2, 3),
            or None for no stride decision (every stride 1).
        connect_previous: the previous layer always feeds the next (see the
            module docstring).
        start_layers: live layers at the start of the search (None: all
            ``num_layers`` from the start, no growth).
        grow_every: add ``grow_by`` layers after every this many children
            (None: never grow); only with ``start_layers``.
        grow_by: layers added per growth step.
    """

    def __init__(
        self,
        num_layers: int = 6,
        filter_heights: Sequence[int] = PAPER_FILTER_SIZES,
        filter_widths: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        strides: Sequence[int] | None = None,
        connect_previous: bool = True,
        start_layers: int | None = None,
        grow_every: int | None = None,
        grow_by: int = 2,
    ) -> None:
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ConfigError("num_layers", f"must be an integer >= 1, got {num_layers!r}")
        self.num_layers = num_layers
        self.filter_heights = _choices("filter_heights", filter_heights)
        self.filter_widths = _choices("filter_widths", filter_widths)
        self.num_filters = _choices("num_filters", num_filters)
        self.strides = None if strides is None else _choices("strides", strides)
        self.connect_previous = bool(connect_previous)
        self.start_layers = _optional_int("start_layers", start_layers, 1)
        if self.start_layers is not None and self.start_layers > num_layers:
            raise ConfigError(
                "start_layers", f"must be <= num_layers ({num_layers}), got {start_layers}"
            )
        self.grow_every = _optional_int("grow_every", grow_every, 1)
        if self.grow_every is not None and self.start_layers is None:
            raise ConfigError("grow_every", "needs start_layers (the depth to grow from)")
        if isinstance(grow_by, bool) or not isinstance(grow_by, int) or grow_by < 1:
            raise ConfigError("grow_by", f"must be an integer >= 1, got {grow_by!r}")
        self.grow_by = grow_by
        self.active_layers = num_layers if self.start_layers is None else self.start_layers

        decisions: list[Decision | AnchorDecision] = []
        for i in range(num_layers):
            p = f"layer{i}"
            decisions += [
                Decision(f"{p}/filter_height", self.filter_heights),
                Decision(f"{p}/filter_width", self.filter_widths),
                Decision(f"{p}/filters", self.num_filters),
            ]
            if self.strides is not None:
                decisions.append(Decision(f"{p}/stride", self.strides))
            decisions.append(AnchorDecision(f"{p}/skip", num_prev=self._num_prev(i), anchor=i))
        self.decisions = tuple(decisions)

    @property
    def per_layer(self) -> int:
        """Decisions per layer (4, or 5 with strides)."""
        return 4 if self.strides is None else 5

    @property
    def num_active(self) -> int:
        return self.active_layers * self.per_layer

    def depth_at(self, num_children: int) -> int:
        """Live layers after ``num_children`` children (the growth schedule)."""
        if self.start_layers is None:
            return self.num_layers
        if self.grow_every is None:
            return self.start_layers
        grown = self.start_layers + self.grow_by * (max(num_children, 0) // self.grow_every)
        return min(self.num_layers, grown)

    def set_progress(self, num_children: int) -> None:
        self.active_layers = self.depth_at(num_children)

    def _num_prev(self, i: int) -> int:
        """Earlier layers the anchor of layer ``i`` scores."""
        return max(i - 1, 0) if self.connect_previous else i

    def decode(self, actions: Sequence[int], num_layers: int | None = None) -> NASRLGenotype:
        """The first ``num_layers`` layers (default: the live ones) as a genotype.

        Decisions of layers beyond that are ignored: in a growing space they
        are padding.
        """
        actions = self.check(actions)
        depth = self.active_layers if num_layers is None else num_layers
        if not 1 <= depth <= self.num_layers:
            raise GenotypeError(f"num_layers must be in 1..{self.num_layers}, got {depth}")
        k = self.per_layer
        layers = []
        for i in range(depth):
            ds, acts = self.decisions[i * k : (i + 1) * k], actions[i * k : (i + 1) * k]
            values = [d.value(a) for d, a in zip(ds, acts, strict=True)]
            skips = values[-1]
            inputs = (*skips, i - 1) if self.connect_previous and i > 0 else skips
            layers.append(
                NASRLLayer(
                    filter_height=values[0],
                    filter_width=values[1],
                    filters=values[2],
                    stride=values[3] if self.strides is not None else 1,
                    inputs=tuple(sorted(inputs)),
                )
            )
        return NASRLGenotype(tuple(layers))

    def encode(self, genotype: NASRLGenotype) -> Actions:
        """Actions that decode to ``genotype``; layers it lacks get action 0."""
        if not isinstance(genotype, NASRLGenotype):
            raise GenotypeError(f"expected a NASRLGenotype, got {type(genotype).__name__}")
        if len(genotype.layers) > self.num_layers:
            raise GenotypeError(
                f"genotype has {len(genotype.layers)} layers, the space at most {self.num_layers}"
            )
        k = self.per_layer
        actions: list[int] = []
        for i, layer in enumerate(genotype.layers):
            ds = self.decisions[i * k : (i + 1) * k]
            actions += [
                ds[0].index(layer.filter_height),
                ds[1].index(layer.filter_width),
                ds[2].index(layer.filters),
            ]
            if self.strides is not None:
                actions.append(ds[3].index(layer.stride))
            elif layer.stride != 1:
                raise GenotypeError(f"layer {i}: stride {layer.stride}, but the space has none")
            skips = set(layer.inputs)
            if self.connect_previous and i > 0:
                if i - 1 not in skips:
                    raise GenotypeError(
                        f"layer {i}: the space always connects layer {i - 1}, the genotype does not"
                    )
                skips.discard(i - 1)
            actions.append(ds[-1].index(sorted(skips)))
        actions += [0] * (len(self.decisions) - len(actions))
        return tuple(actions)
