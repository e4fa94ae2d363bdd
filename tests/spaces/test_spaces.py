import random

import pytest

from nas_lightning.errors import ConfigError, GenotypeError
from nas_lightning.genotypes import NASNET_A, Cell
from nas_lightning.models.ops import NASNET_OPS
from nas_lightning.spaces import AnchorDecision, Decision, ListSpace, NASNetSpace


def test_nasnet_space_has_2x5b_decisions_in_paper_order():
    space = NASNetSpace(num_blocks=5)
    assert len(space) == 2 * 5 * 5
    assert space.names[:5] == (
        "normal/b0/input_a",
        "normal/b0/input_b",
        "normal/b0/op_a",
        "normal/b0/op_b",
        "normal/b0/combine",
    )
    assert space.names[25].startswith("reduction/b0")
    # block b chooses among the two cell inputs and the b earlier blocks
    assert [space.decisions[5 * b].size for b in range(5)] == [2, 3, 4, 5, 6]
    assert space.decisions[2].choices == NASNET_OPS and len(NASNET_OPS) == 13


@pytest.mark.parametrize("num_blocks", [1, 2, 5])
def test_decode_encode_round_trip_over_many_samples(num_blocks):
    space = NASNetSpace(num_blocks=num_blocks)
    rng = random.Random(0)
    for _ in range(300):
        actions = space.sample(rng)
        genotype = space.decode(actions)
        assert space.encode(genotype) == actions
        assert space.decode(space.encode(genotype)) == genotype


def test_decoded_cells_concatenate_exactly_the_unused_states():
    space = NASNetSpace()
    rng = random.Random(1)
    for _ in range(50):
        g = space.decode(space.sample(rng))
        for cell in (g.normal, g.reduction):
            used = {i for b in cell.blocks for i in (b.input_a, b.input_b)}
            assert set(cell.concat) == set(range(2, 7)) - used
            assert 6 in cell.concat  # the last block is never an input


def test_nasnet_a_encodes_in_the_space():
    space = NASNetSpace(combines=["add"])
    actions = space.encode(NASNET_A)
    decoded = space.decode(actions)
    # The published cells concatenate a few used states too (h_{i-1} in the
    # normal cell, block 3 in the reduction cell); the blocks are identical.
    assert decoded.normal.blocks == NASNET_A.normal.blocks
    assert decoded.reduction.blocks == NASNET_A.reduction.blocks
    assert decoded.normal.concat == (2, 3, 4, 5, 6)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_blocks": 0}, "num_blocks"),
        ({"ops": ["sep_conv_3x3", "conv_9x9"]}, "ops"),
        ({"ops": []}, "ops"),
        ({"combines": ["mul"]}, "combines"),
    ],
)
def test_invalid_space_arguments_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        NASNetSpace(**kwargs)
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_bad_actions_and_genotypes_are_rejected():
    space = NASNetSpace(num_blocks=2)
    with pytest.raises(GenotypeError):
        space.decode([0] * 3)
    with pytest.raises(GenotypeError):
        space.decode([5] + [0] * (len(space) - 1))
    with pytest.raises(GenotypeError):
        space.encode(NASNET_A)  # 5 blocks in a 2-block space


def test_list_space_round_trip_and_errors():
    space = ListSpace([("lr", [0.1, 0.01]), ("depth", [1, 2, 3])])
    assert space.cardinality() == 6
    g = space.decode((1, 2))
    assert g == {"lr": 0.01, "depth": 3}
    assert space.encode(g) == (1, 2)
    with pytest.raises(GenotypeError):
        space.encode({"lr": 0.5, "depth": 1})
    with pytest.raises(ConfigError):
        ListSpace([("a", [1]), ("a", [2])])
    with pytest.raises(ConfigError):
        Decision("empty", ())


def test_anchor_decision_is_a_bitmask():
    d = AnchorDecision("skip3", num_prev=3, anchor=3)
    assert d.size == 8
    assert d.value(0b101) == (0, 2)
    assert d.index((0, 2)) == 0b101
    with pytest.raises(GenotypeError):
        d.index((3,))


def test_cell_validation():
    space = NASNetSpace(num_blocks=2)
    g = space.decode([0] * len(space))
    with pytest.raises(GenotypeError):
        Cell(g.normal.blocks, concat=(9,))
