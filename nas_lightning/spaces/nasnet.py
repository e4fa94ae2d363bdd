"""The NASNet cell search space (Zoph et al. 2018).

Per block the controller makes five decisions, in the paper's order: hidden
state A, hidden state B, op for A, op for B, combine. The normal cell's B
blocks come first, then the reduction cell's: 2 x 5B decisions in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes.nasnet import COMBINES, Block, Cell, NASNetGenotype
from nas_lightning.models.ops import NASNET_OPS, OPS
from nas_lightning.spaces.base import Actions, Decision, SearchSpace

_STEPS = ("input_a", "input_b", "op_a", "op_b", "combine")


class NASNetSpace(SearchSpace):
    """Normal and reduction cells of B blocks each.

    Args:
        num_blocks: B, blocks per cell (the paper: 5).
        ops: the op names to choose from (default: all 13 of the paper).
        combines: ``add`` and/or ``concat``.
    """

    def __init__(
        self,
        num_blocks: int = 5,
        ops: Sequence[str] = NASNET_OPS,
        combines: Sequence[str] = COMBINES,
    ) -> None:
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ConfigError("num_blocks", f"must be an integer >= 1, got {num_blocks!r}")
        ops = tuple(ops)
        unknown = [op for op in ops if op not in OPS]
        if unknown or not ops:
            raise ConfigError(
                "ops", f"unknown op(s) {unknown or '(none given)'}; known: {sorted(OPS)}"
            )
        if len(set(ops)) != len(ops):
            raise ConfigError("ops", f"ops must be distinct, got {list(ops)}")
        combines = tuple(combines)
        bad = [c for c in combines if c not in COMBINES]
        if bad or not combines:
            raise ConfigError(
                "combines", f"must be a non-empty subset of {COMBINES}, got {list(combines)}"
            )
        self.num_blocks = num_blocks
        self.ops = ops
        self.combines = combines
        decisions = []
        for cell in ("normal", "reduction"):
            for b in range(num_blocks):
                states = tuple(range(b + 2))
                prefix = f"{cell}/b{b}"
                decisions += [
                    Decision(f"{prefix}/input_a", states),
                    Decision(f"{prefix}/input_b", states),
                    Decision(f"{prefix}/op_a", ops),
                    Decision(f"{prefix}/op_b", ops),
                    Decision(f"{prefix}/combine", combines),
                ]
        self.decisions = tuple(decisions)

    def decode(self, actions: Sequence[int]) -> NASNetGenotype:
        actions = self.check(actions)
        values = [d.value(a) for d, a in zip(self.decisions, actions, strict=True)]
        per_cell = 5 * self.num_blocks
        cells = []
        for c in range(2):
            chunk = values[c * per_cell : (c + 1) * per_cell]
            blocks = tuple(
                Block(
                    input_a=chunk[5 * b],
                    input_b=chunk[5 * b + 1],
                    op_a=chunk[5 * b + 2],
                    op_b=chunk[5 * b + 3],
                    combine=chunk[5 * b + 4],
                )
                for b in range(self.num_blocks)
            )
            cells.append(Cell(blocks, Cell.unused_states(blocks)))
        return NASNetGenotype(normal=cells[0], reduction=cells[1])

    def encode(self, genotype: NASNetGenotype) -> Actions:
        actions: list[int] = []
        for cell in (genotype.normal, genotype.reduction):
            if len(cell.blocks) != self.num_blocks:
                raise GenotypeError(
                    f"genotype has {len(cell.blocks)} blocks per cell, the space {self.num_blocks}"
                )
            for block in cell.blocks:
                values = (block.input_a, block.input_b, block.op_a, block.op_b, block.combine)
                offset = len(actions)
                for step, value in enumerate(values):
                    actions.append(self.decisions[offset + step].index(value))
        return tuple(actions)
