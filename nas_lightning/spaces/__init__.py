"""Search spaces: named categorical decisions with a genotype codec."""

from nas_lightning.spaces.base import (
    Actions,
    AnchorDecision,
    AnyDecision,
    Decision,
    ListSpace,
    SearchSpace,
)
from nas_lightning.spaces.mobile import MobileSpace
from nas_lightning.spaces.nas_rl import NASRLSpace
from nas_lightning.spaces.nasnet import NASNetSpace

__all__ = [
    "Actions",
    "AnchorDecision",
    "AnyDecision",
    "Decision",
    "ListSpace",
    "MobileSpace",
    "NASRLSpace",
    "NASNetSpace",
    "SearchSpace",
]
