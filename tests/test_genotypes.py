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
