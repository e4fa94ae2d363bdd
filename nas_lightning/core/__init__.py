"""The package's bottom layer: helpers every other layer may import.

Run-folder records and atomic writes (``records``), signal handling around
writes (``signals``), building objects from config (``builders``), torch
thread counts (``threads``), W&B environment (``wandb_env``, ``sweep``).
Nothing here imports a module of the package above ``errors`` and ``utils``.
"""
