"""Can the search's proxy be trusted? Check it on the configured space and child recipe.

A search ranks children by what the proxy recipe (``child.*``: a few epochs on
a subset) makes of them. This check trains ``archs`` random architectures of
the configured space:

- with the proxy recipe and ``seeds`` seeds: how much of the ranking is seed
  noise (the seed-vs-seed rank correlation: the noise floor);
- with a longer recipe (default: 4x the epochs), once: whether the proxy ranks
  architectures as longer training would (proxy-vs-longer);

and reports both with bootstrap intervals, the cost of a child under each
recipe, a recommendation and a picture. ``python -m nas_lightning.fidelity``.
"""

from nas_lightning.fidelity.check import FidelityReport, check_proxy, recommendation

__all__ = ["FidelityReport", "check_proxy", "recommendation"]
