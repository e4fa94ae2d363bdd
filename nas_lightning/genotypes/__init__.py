"""Genotypes: plain frozen records of architectures, with JSON round trips."""

from nas_lightning.genotypes.base import (
    genotype_from_dict,
    genotype_from_json,
    genotype_to_dict,
    genotype_to_json,
    load_genotype,
    named_genotypes,
    register_genotype,
    register_named,
    save_genotype,
)
from nas_lightning.genotypes.mobile import BlockArgs, MobileGenotype, decode_block, encode_block
from nas_lightning.genotypes.nas_rl import NASRLGenotype, NASRLLayer  # noqa: F401
from nas_lightning.genotypes.nasnet import NASNET_A, Block, Cell, NASNetGenotype

__all__ = [
    "NASNET_A",
    "Block",
    "BlockArgs",
    "Cell",
    "MobileGenotype",
    "NASNetGenotype",
    "decode_block",
    "encode_block",
    "genotype_from_dict",
    "genotype_from_json",
    "genotype_to_dict",
    "genotype_to_json",
    "load_genotype",
    "named_genotypes",
    "register_genotype",
    "register_named",
    "save_genotype",
]
