"""Command-line conveniences of ``train.py`` that Hydra cannot express."""

from __future__ import annotations

from pathlib import Path

from nas_lightning.errors import GenotypeError
from nas_lightning.genotypes import load_genotype
from nas_lightning.utils import config_dir


def model_group_for(argv: list[str], conf_dir: Path | None = None) -> str | None:
    """``model=<kind>`` for the genotype named on the command line, or None.

    ``python train.py genotype=mobilenetv3_small`` should build a mobile
    network without the user also typing ``model=mobile``: the model group is
    the genotype's kind. Nothing is added when the command line already picks
    a model group, sweeps genotypes (``-m genotype=a,b``), names no genotype,
    names one that does not load (``run_train`` then reports why), or when no
    ``conf/model/<kind>.yaml`` exists.
    """
    genotype = None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            continue
        if key.lstrip("+~") == "model":
            return None  # the user's choice
        if key == "genotype":
            genotype = value
    if not genotype or "," in genotype or genotype.startswith(("${", "glob(", "range(")):
        return None
    try:
        kind = load_genotype(genotype).kind
    except (GenotypeError, OSError, ValueError):
        return None
    conf_dir = conf_dir or config_dir()
    if kind == "nasnet" or not (conf_dir / "model" / f"{kind}.yaml").is_file():
        return None  # nasnet: the config's default
    return f"model={kind}"
