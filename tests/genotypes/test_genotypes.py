import json

import pytest

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes import (
    NASNET_A,
    genotype_from_json,
    genotype_to_json,
    load_genotype,
    named_genotypes,
    save_genotype,
)


def test_json_round_trip_of_nasnet_a():
    assert genotype_from_json(genotype_to_json(NASNET_A)) == NASNET_A
    data = json.loads(genotype_to_json(NASNET_A))
    assert data["kind"] == "nasnet"
    assert data["normal"]["concat"] == [0, 2, 3, 4, 5, 6]
    assert data["reduction"]["concat"] == [3, 4, 5, 6]


def test_load_by_name_file_and_best_json(tmp_path):
    assert "nasnet_a" in named_genotypes()
    assert load_genotype("nasnet_a") is NASNET_A
    path = tmp_path / "g.json"
    save_genotype(NASNET_A, path)
    assert load_genotype(path) == NASNET_A
    best = tmp_path / "run"
    best.mkdir()
    (best / "best.json").write_text(
        json.dumps({"reward": 0.9, "genotype": json.loads(path.read_text())})
    )
    assert load_genotype(best / "best.json") == NASNET_A
    assert load_genotype(best) == NASNET_A  # a run folder


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"kind": "alien"}', "unknown genotype kind"),
        ('{"kind": "nasnet", "normal": {}}', "malformed nasnet genotype"),
        (
            '{"kind": "nasnet",'
            ' "normal": {"blocks": [{"inputs": [0, 7], "ops": ["identity", "identity"]}]},'
            ' "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]}]}}',
            "input_b=7",
        ),
    ],
)
def test_corrupt_genotype_files_give_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GenotypeError) as err:
        load_genotype(path)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_name_lists_known_names():
    with pytest.raises(GenotypeError, match="nasnet_a"):
        load_genotype("no_such_genotype")


# -- canonical forms: two encodings of one network are one architecture ---------------

import random  # noqa: E402

import torch  # noqa: E402

from nas_lightning.genotypes import Block, Cell, MobileGenotype, NASNetGenotype  # noqa: E402
from nas_lightning.genotypes.base import architecture_key  # noqa: E402
from nas_lightning.genotypes.nas_rl import NASRLGenotype, NASRLLayer  # noqa: E402
from nas_lightning.models import NASNetwork  # noqa: E402
from nas_lightning.models.mobile import MobileNetwork  # noqa: E402
from nas_lightning.models.nas_rl import NASRLNetwork  # noqa: E402
from nas_lightning.spaces import ListSpace  # noqa: E402
from nas_lightning.spaces.nas_rl import NASRLSpace  # noqa: E402
from nas_lightning.spaces.nasnet import NASNetSpace  # noqa: E402


def reorder(cell: Cell, order: tuple[int, ...], swap: frozenset = frozenset()) -> Cell:
    """``cell`` with its blocks in ``order`` (new position -> old block), states renumbered,
    and the operands of the blocks at the new positions ``swap`` exchanged."""
    state = {0: 0, 1: 1} | {old + 2: new + 2 for new, old in enumerate(order)}
    blocks = []
    for new, old in enumerate(order):
        b = cell.blocks[old]
        ia, ib, oa, ob = state[b.input_a], state[b.input_b], b.op_a, b.op_b
        if new in swap:
            ia, ib, oa, ob = ib, ia, ob, oa
        blocks.append(Block(ia, ib, oa, ob, b.combine))
    return Cell(tuple(blocks), tuple(state[i] for i in cell.concat))


def renamed(key: str, moves: dict[bool, tuple[tuple[int, ...], frozenset]], reduction: bool) -> str:
    """The parameter of the reordered network (see ``reorder``) that holds ``key``'s weights."""
    order, swap = moves[reduction]
    parts = key.split(".")
    if len(parts) > 3 and parts[0] == "cells" and parts[2] in ("ops", "merges"):
        if parts[2] == "ops":
            old, side = divmod(int(parts[3]), 2)
            new = order.index(old)
            parts[3] = str(2 * new + (side ^ (new in swap)))
        else:
            parts[3] = str(order.index(int(parts[3])))
    return ".".join(parts)


def same_function(a: NASNetGenotype, b: NASNetGenotype, moves) -> bool:
    """Build both, give ``b`` the weights of ``a`` under the renaming, compare outputs."""
    torch.manual_seed(0)
    kw = dict(in_channels=3, num_classes=5, filters=4, cells_per_stage=1, num_reductions=1,
              stem_multiplier=1)
    net_a, net_b = NASNetwork(a, **kw).eval(), NASNetwork(b, **kw).eval()
    state_a = net_a.state_dict()
    reductions = {f"cells.{i}.": cell.reduction for i, cell in enumerate(net_a.cells)}
    mapped = {}
    for key, value in state_a.items():
        prefix = ".".join(key.split(".")[:2]) + "."
        mapped[renamed(key, moves, reductions.get(prefix, False))] = value
    assert set(mapped) == set(net_b.state_dict())
    net_b.load_state_dict(mapped)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        return torch.equal(net_a(x), net_b(x))


IDENTITY5 = (tuple(range(5)), frozenset())


@pytest.mark.parametrize("normal_move, reduction_move", [
    ((tuple(range(5)), frozenset({0, 2, 4})), IDENTITY5),  # add operands swapped
    (IDENTITY5, ((1, 0, 2, 3, 4), frozenset())),  # blocks 0 and 1 read only the inputs
    (((2, 0, 1, 4, 3), frozenset({1, 3})), ((2, 1, 0, 4, 3), frozenset({0, 4}))),
])
def test_reordered_nasnet_cells_are_one_architecture_and_one_function(normal_move,
                                                                      reduction_move):
    g = NASNET_A
    other = NASNetGenotype(reorder(g.normal, *normal_move), reorder(g.reduction, *reduction_move))
    assert other != g
    assert other.canonical() == g.canonical()
    assert same_function(g, other, {False: normal_move, True: reduction_move})


def test_random_reorderings_of_random_cells_keep_the_key():
    space, rng = NASNetSpace(num_blocks=4), random.Random(0)
    for _ in range(40):
        g = space.decode(space.sample(rng))
        cell = g.normal
        needs = [{i - 2 for i in (b.input_a, b.input_b) if i >= 2} for b in cell.blocks]
        order: list[int] = []
        while len(order) < len(cell.blocks):  # a random topological order
            ready = [b for b in range(4) if b not in order and needs[b] <= set(order)]
            order.append(rng.choice(ready))
        swap = frozenset(i for i in range(4) if rng.random() < 0.5
                         and cell.blocks[order[i]].combine == "add")
        assert reorder(cell, tuple(order), swap).canonical() == cell.canonical()


def _cell(*blocks: tuple, concat: tuple[int, ...] | None = None) -> Cell:
    bs = tuple(Block(*b) for b in blocks)
    return Cell(bs, Cell.unused_states(bs) if concat is None else concat)


A = ("sep_conv_3x3", "max_pool_3x3")


@pytest.mark.parametrize("left, right", [
    # concat combines read their operands in order: a 1x1 conv sees other channels
    (_cell((0, 1, *A, "concat")), _cell((1, 0, *A[::-1], "concat"))),
    # the cell output's channel order is what the next cell's weights read
    (_cell((0, 1, *A), (1, 1, *A), concat=(2, 3)), _cell((0, 1, *A), (1, 1, *A), concat=(3, 2))),
    # two independent blocks exchanged under the space's sorted concat: channels swap
    (_cell((0, 1, *A), (1, 1, *A)), _cell((1, 1, *A), (0, 1, *A))),
    # an op's input (and with it its stride in a reduction cell) is not symmetric
    (_cell((0, 1, *A)), _cell((1, 0, *A))),
    # an unused block still costs time and parameters
    (_cell((0, 1, *A), (0, 0, *A), concat=(2,)), _cell((0, 1, *A), (1, 1, *A), concat=(2,))),
    (_cell((0, 1, *A)), _cell((0, 1, *A), concat=(0, 2))),
])
def test_different_nasnet_cells_keep_different_keys(left, right):
    assert left.canonical() != right.canonical()


def test_normal_and_reduction_cells_are_not_interchangeable():
    swapped = NASNetGenotype(NASNET_A.reduction, NASNET_A.normal)
    assert swapped.canonical() != NASNET_A.canonical()


def test_the_table_space_has_441_architectures_in_1296_action_tuples():
    """One add block per cell over 2 inputs x 3 ops: 6 * 7 / 2 unordered operand pairs."""
    space = NASNetSpace(num_blocks=1, ops=["identity", "max_pool_3x3", "sep_conv_3x3"],
                        combines=["add"])
    keys = set()
    for a in range(space.cardinality()):
        actions = []
        for size in reversed(space.sizes):
            a, r = divmod(a, size)
            actions.append(r)
        actions = tuple(reversed(actions))
        keys.add(architecture_key(space.decode(actions), actions))
    assert space.cardinality() == 1296 and len(keys) == 21 * 21


def _mobile(*strings: str, **options) -> MobileGenotype:
    return MobileGenotype.from_strings(list(strings), **options)


MOBILE_SAME = [
    # stages are layers: r2 is r1 (stride s) then r1 (stride 1)
    (_mobile("ds_r1_k3_s1_c16", "ir_r2_k3_s2_e6_c24"),
     _mobile("ds_r1_k3_s1_c16", "ir_r1_k3_s2_e6_c24", "ir_r1_k3_s1_e6_c24")),
    # a strided layer never has a residual
    (_mobile("ds_r1_k3_s1_c16", "ir_r1_k5_s2_e3_c24"),
     _mobile("ds_r1_k3_s1_c16", "ir_r1_k5_s2_e3_c24_noskip")),
    (_mobile("cn_r1_k3_s2_c16_skip"), _mobile("cn_r1_k3_s2_c16")),
    # the default activation, written or not
    (_mobile("ds_r1_k3_s1_c16_nre"), _mobile("ds_r1_k3_s1_c16")),
    (_mobile("ds_r1_k3_s1_c16", stem_activation="relu", head_activation="relu"),
     _mobile("ds_r1_k3_s1_c16")),
    # SE settings without an SE
    (_mobile("ds_r1_k3_s1_c16", se_gate="hard_sigmoid", se_base="expansion"),
     _mobile("ds_r1_k3_s1_c16")),
]

MOBILE_DIFFERENT = [
    (_mobile("ds_r1_k3_s1_c16"), _mobile("ds_r1_k3_s1_c16_noskip")),  # a width_mult may match them
    (_mobile("ir_r2_k3_s2_e6_c24"), _mobile("ir_r2_k3_s2_e6_c24_noskip")),  # the 2nd layer's
    (_mobile("ds_r1_k3_s1_c16_se0.25"),
     _mobile("ds_r1_k3_s1_c16_se0.25", se_gate="hard_sigmoid")),
    (_mobile("ds_r1_k3_s1_c16_nhs"), _mobile("ds_r1_k3_s1_c16")),
    (_mobile("ir_r2_k3_s2_e6_c24"), _mobile("ir_r3_k3_s2_e6_c24")),
    (_mobile("ds_r1_k3_s1_c16"), _mobile("ds_r1_k5_s1_c16")),
    (_mobile("ds_r1_k3_s1_c16", activation="relu6"), _mobile("ds_r1_k3_s1_c16")),
]


@pytest.mark.parametrize("left, right", MOBILE_SAME)
def test_mobile_encodings_of_one_network_share_a_key_and_a_function(left, right):
    assert left != right and left.canonical() == right.canonical()
    torch.manual_seed(0)
    a = MobileNetwork(left, in_channels=3, num_classes=4, width_mult=0.5).eval()
    b = MobileNetwork(right, in_channels=3, num_classes=4, width_mult=0.5).eval()
    b.load_state_dict(a.state_dict())  # the same parameters under the same names
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("left, right", MOBILE_DIFFERENT)
def test_different_mobile_networks_keep_different_keys(left, right):
    assert left.canonical() != right.canonical()


def test_a_residual_between_different_widths_exists_after_a_width_mult():
    """Why a skip between 32 and 24 channels keeps its key: at 0.25 both round to 8."""
    skip, noskip = _mobile("ds_r1_k3_s1_c24"), _mobile("ds_r1_k3_s1_c24_noskip")
    for genotype, has in ((skip, True), (noskip, False)):
        net = MobileNetwork(genotype, width_mult=0.25)
        assert net.blocks[0].has_skip is has
        assert not MobileNetwork(genotype).blocks[0].has_skip  # 32 -> 24 at width 1


def test_nas_rl_layers_are_positional():
    one = NASRLLayer(3, 3, 24)
    a = NASRLGenotype((one, NASRLLayer(5, 5, 36, inputs=(0,))))
    assert a.canonical() == NASRLGenotype.from_dict(a.to_dict()).canonical()
    for other in (
        NASRLGenotype((NASRLLayer(5, 5, 36), NASRLLayer(3, 3, 24, inputs=(0,)))),
        NASRLGenotype((one, NASRLLayer(5, 5, 36))),  # reads the image, not layer 0
        NASRLGenotype((one, NASRLLayer(5, 5, 36, stride=2, inputs=(0,)))),
        NASRLGenotype((one, NASRLLayer(3, 5, 36, inputs=(0,)))),
    ):
        assert other.canonical() != a.canonical()
        NASRLNetwork(other)  # each one builds


def test_growing_nas_rl_space_keys_follow_the_live_layers():
    space = NASRLSpace(num_layers=3, start_layers=1, grow_every=1, grow_by=1)
    padded = list(space.encode(space.decode((0,) * len(space.decisions))))
    other_padding = padded[:4] + [min(1, d.size - 1) for d in space.decisions[4:]]
    assert other_padding != padded
    g1, g2 = space.decode(padded), space.decode(other_padding)
    assert architecture_key(g1, padded) == architecture_key(g2, other_padding)
    space.set_progress(1)  # two layers live: the same actions, a deeper network
    assert architecture_key(space.decode(padded), padded) != architecture_key(g1, padded)


def test_architecture_key_reads_records_and_falls_back_to_actions():
    g = NASNetGenotype(reorder(NASNET_A.normal, (1, 0, 2, 3, 4)), NASNET_A.reduction)
    key = architecture_key(NASNET_A, (1, 2))
    assert architecture_key(json.loads(genotype_to_json(g)), (3, 4)) == key
    space = ListSpace([("kind", ["nasnet", "x"]), ("d", [0, 1])])
    assert architecture_key(space.decode((0, 1)), (0, 1)) == (0, 1)  # no canonical form
    assert architecture_key({"kind": "nasnet", "normal": 1}, (0, 1)) == (0, 1)
