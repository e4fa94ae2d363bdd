"""NASNet cell genotypes (Zoph et al. 2018).

States of a cell are numbered like DESIGN.md: 0 = h_{i-1} (the cell before
the previous one), 1 = h_i (the previous cell), k >= 2 = output of block k-1.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes.base import register_genotype, register_named

COMBINES = ("add", "concat")


def _unknown(data: Any, known: tuple[str, ...], what: str) -> None:
    """A JSON object with exactly ``known`` keys (some optional); names a stray key."""
    if not isinstance(data, dict):
        raise GenotypeError(f"{what} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise GenotypeError(f"unknown key {unknown[0]!r} in {what}; known: {list(known)}")


def _index(value: Any, what: str) -> int:
    """A state index: a real integer, not ``"0"``, ``1.9`` or ``true``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(f"{what} must be an integer, got {value!r}")
    return value


def _pair(data: dict[str, Any], key: str, what: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list) or len(value) != 2:
        raise GenotypeError(f"{what}: {key!r} must be a list of two, got {value!r}")
    return value


@dataclass(frozen=True)
class Block:
    """One block: ``combine(op_a(state[input_a]), op_b(state[input_b]))``."""

    input_a: int
    input_b: int
    op_a: str
    op_b: str
    combine: str = "add"

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [self.input_a, self.input_b],
            "ops": [self.op_a, self.op_b],
            "combine": self.combine,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "block") -> Block:
        _unknown(data, ("inputs", "ops", "combine"), what)
        inputs, ops = _pair(data, "inputs", what), _pair(data, "ops", what)
        combine = data.get("combine", "add")
        for value in (*ops, combine):
            if not isinstance(value, str):
                raise GenotypeError(f"{what}: ops and combine must be strings, got {value!r}")
        return cls(
            _index(inputs[0], f"{what} input"),
            _index(inputs[1], f"{what} input"),
            ops[0],
            ops[1],
            combine,
        )


@dataclass(frozen=True)
class Cell:
    """B blocks and the states concatenated as the cell's output."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.blocks:
            raise GenotypeError("a cell needs at least one block")
        for b, block in enumerate(self.blocks):
            limit = b + 2
            for name, i in (("input_a", block.input_a), ("input_b", block.input_b)):
                if not 0 <= i < limit:
                    raise GenotypeError(
                        f"block {b}: {name}={i} must be in 0..{limit - 1} "
                        "(the two cell inputs and earlier blocks)"
                    )
            if block.combine not in COMBINES:
                raise GenotypeError(f"block {b}: combine {block.combine!r} not in {COMBINES}")
        num_states = len(self.blocks) + 2
        if not self.concat:
            raise GenotypeError("a cell must concatenate at least one state")
        for i in self.concat:
            if not 0 <= i < num_states:
                raise GenotypeError(f"concat state {i} outside 0..{num_states - 1}")

    @staticmethod
    def unused_states(blocks: tuple[Block, ...]) -> tuple[int, ...]:
        """Block outputs no later block reads: NASNet concatenates these."""
        used = {i for blk in blocks for i in (blk.input_a, blk.input_b)}
        return tuple(k for k in range(2, len(blocks) + 2) if k not in used)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for b in self.blocks for op in (b.op_a, b.op_b))

    def canonical(self) -> tuple[Any, ...]:
        """The same key for the encodings of one cell, another for any other cell.

        Two encodings build the same cell (the same function, with the same
        parameters under other names) when they differ only by

        * the order of the two operands of an ``add`` block (addition
          commutes; each operand keeps its op, and its stride in a reduction
          cell, which follows its input);
        * the order of the blocks, among the orders where every block comes
          after the blocks it reads, with the states renumbered to match and
          ``concat`` naming the same states in the same order.

        A ``concat`` block's operands and the cell's ``concat`` keep their
        order: it is the order of the channels that a 1x1 conv or the next
        cell reads, so another order is another set of weights. Unused cell
        inputs and blocks are part of the network (they cost time and
        parameters) and are kept too.
        """
        return _canonical_cell(self)

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [b.to_dict() for b in self.blocks], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "cell") -> Cell:
        _unknown(data, ("blocks", "concat"), what)
        if not isinstance(data["blocks"], list):
            raise GenotypeError(f"{what}: 'blocks' must be a list")
        blocks = tuple(
            Block.from_dict(b, f"{what} block {i}") for i, b in enumerate(data["blocks"])
        )
        concat = data.get("concat")
        if concat is not None and not isinstance(concat, list):
            raise GenotypeError(f"{what}: 'concat' must be a list of state indices")
        concat = (
            cls.unused_states(blocks)
            if concat is None
            else tuple(_index(i, f"{what} concat") for i in concat)
        )
        return cls(blocks, concat)

    def __str__(self) -> str:
        parts = [
            f"{b.op_a}({b.input_a}) {'+' if b.combine == 'add' else '||'} {b.op_b}({b.input_b})"
            for b in self.blocks
        ]
        return "; ".join(parts) + f" -> concat{list(self.concat)}"


def _topological_orders(blocks: tuple[Block, ...]) -> Iterator[tuple[int, ...]]:
    """Every order of the blocks in which each block follows the blocks it reads."""
    needs = [{i - 2 for i in (b.input_a, b.input_b) if i >= 2} for b in blocks]

    def extend(order: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if len(order) == len(blocks):
            yield order
            return
        for b in range(len(blocks)):
            if b not in order and needs[b] <= set(order):
                yield from extend((*order, b))

    return extend(())


@functools.lru_cache(maxsize=4096)
def _canonical_cell(cell: Cell) -> tuple[Any, ...]:
    """The smallest encoding of ``cell`` over its block orders (see :meth:`Cell.canonical`)."""
    best: tuple[Any, ...] | None = None
    for order in _topological_orders(cell.blocks):
        state = {0: 0, 1: 1} | {old + 2: new + 2 for new, old in enumerate(order)}
        blocks = []
        for old in order:
            b = cell.blocks[old]
            operands = [(state[b.input_a], b.op_a), (state[b.input_b], b.op_b)]
            if b.combine == "add":
                operands.sort()
            blocks.append((b.combine, *operands))
        key = (tuple(blocks), tuple(state[i] for i in cell.concat))
        if best is None or key < best:
            best = key
    assert best is not None  # a valid cell has at least one order: its own
    return best


@register_genotype
@dataclass(frozen=True)
class NASNetGenotype:
    """A normal cell and a reduction cell."""

    normal: Cell
    reduction: Cell

    kind: ClassVar[str] = "nasnet"

    def to_dict(self) -> dict[str, Any]:
        return {"normal": self.normal.to_dict(), "reduction": self.reduction.to_dict()}

    def canonical(self) -> tuple[Any, ...]:
        """Both cells' canonical forms (:meth:`Cell.canonical`)."""
        return (self.normal.canonical(), self.reduction.canonical())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NASNetGenotype:
        _unknown(data, ("normal", "reduction"), "a nasnet genotype")
        return cls(
            Cell.from_dict(data["normal"], "normal cell"),
            Cell.from_dict(data["reduction"], "reduction cell"),
        )

    def __str__(self) -> str:
        return f"normal: {self.normal}\nreduction: {self.reduction}"


def _cell(blocks: list[tuple[str, int, str, int]], concat: list[int]) -> Cell:
    return Cell(tuple(Block(ia, ib, oa, ob) for oa, ia, ob, ib in blocks), tuple(concat))


NASNET_A = NASNetGenotype(
    normal=_cell(
        [
            ("sep_conv_5x5", 1, "sep_conv_3x3", 0),
            ("sep_conv_5x5", 0, "sep_conv_3x3", 0),
            ("avg_pool_3x3", 1, "identity", 0),
            ("avg_pool_3x3", 0, "avg_pool_3x3", 0),
            ("sep_conv_3x3", 1, "identity", 1),
        ],
        [0, 2, 3, 4, 5, 6],
    ),
    reduction=_cell(
        [
            ("sep_conv_5x5", 1, "sep_conv_7x7", 0),
            ("max_pool_3x3", 1, "sep_conv_7x7", 0),
            ("avg_pool_3x3", 1, "sep_conv_5x5", 0),
            ("identity", 3, "avg_pool_3x3", 2),
            ("sep_conv_3x3", 2, "max_pool_3x3", 1),
        ],
        [3, 4, 5, 6],
    ),
)

register_named("nasnet_a", NASNET_A)
