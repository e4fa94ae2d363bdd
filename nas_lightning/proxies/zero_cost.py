"""Zero-cost proxies: scores of an untrained network on one batch, no training.

Each proxy is one entry of :data:`PROXIES` with one signature,
``(model, (x, y)) -> float``; :func:`score` looks a proxy up by name. Larger
is better for every proxy. The proxies never change the model they score:
those that run it do so on a deep copy, so neither its weights, its
BatchNorm statistics nor its gradients move. They compute on the device of
the batch (the model must already be there) and draw no random numbers, so
a network built with a fixed seed always gets the same score.

* ``synflow`` (Tanaka et al. 2020, "Pruning neural networks without any data
  by iteratively conserving synaptic flow"): every weight replaced by its
  absolute value, an all-ones input of one image, ``R`` the sum of the
  outputs, and the score ``sum |theta * dR/dtheta|``. BatchNorm runs in eval
  mode (its running statistics at initialisation make it the identity), as
  the reference implementations drop BatchNorm for this proxy; in train mode
  a constant input would have zero variance. Computed in double precision:
  the product of absolute weights grows with depth.
* ``naswot`` (Mellor et al. 2021, "Neural architecture search without
  training"): the log-determinant of ``K[i, j] = N_A - hamming(c_i, c_j)``,
  where ``c_i`` is image ``i``'s binary pattern of which activation units are
  positive over the whole network and ``N_A`` their count. Images the network
  cannot tell apart make ``K`` singular (``-inf``).
* ``grad_norm``: the L2 norm of the gradient of the cross-entropy loss over
  all parameters (Abdelfattah et al. 2021, "Zero-cost proxies for lightweight
  NAS").
* ``params``: trainable parameter count, the baseline every proxy must beat.

``naswot`` and ``grad_norm`` run the model in its own mode (a fresh network is
in train mode: BatchNorm normalises with the batch's statistics).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

Batch = tuple[torch.Tensor, torch.Tensor]
Proxy = Callable[[nn.Module, Batch], float]

# Activation modules whose output sign pattern is a unit's binary code (naswot).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Mish,
)
# Hooked instead when a network applies its activations as functions: the sign
# of their outputs is the pattern an activation applied after them would see.
PRE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
)


def _logits(out: torch.Tensor | tuple | list) -> torch.Tensor:
    """The main output of a network that may also return auxiliary logits."""
    return out[0] if isinstance(out, (tuple, list)) else out


def synflow(model: nn.Module, batch: Batch) -> float:
    """Synaptic flow of the absolute-valued network on an all-ones image (see module)."""
    x, _ = batch
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return 0.0
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    flow = _logits(net(ones)).sum()
    grads = torch.autograd.grad(flow, params, allow_unused=True)
    with torch.no_grad():
        total = sum(
            float((p * g).abs().sum())
            for p, g in zip(params, grads, strict=True)
            if g is not None
        )
    return total


def naswot(model: nn.Module, batch: Batch) -> float:
    """Log-determinant of the activation-pattern kernel over the batch (see module)."""
    x, _ = batch
    net = copy.deepcopy(model)
    targets = [m for m in net.modules() if isinstance(m, ACTIVATIONS)]
    if not targets:
        targets = [m for m in net.modules() if isinstance(m, PRE_ACTIVATIONS)]
    if not targets:
        raise ValueError(
            "naswot: the model has no activation, convolution or linear module to hook"
        )
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # The output's sign is the input's for every hooked activation; an
        # in-place ReLU has already overwritten its input.
        code = (output.detach().reshape(n, -1) > 0).double()
        kernel.add_(code @ code.T + (1.0 - code) @ (1.0 - code).T)

    handles = [m.register_forward_hook(record) for m in targets]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def grad_norm(model: nn.Module, batch: Batch) -> float:
    """L2 norm of the cross-entropy gradient over every trainable parameter."""
    x, y = batch
    net = copy.deepcopy(model)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return 0.0
    loss = F.cross_entropy(_logits(net(x)), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    squares = [g.double().pow(2).sum() for g in grads if g is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def params(model: nn.Module, batch: Batch) -> float:
    """Trainable parameter count (the batch is not used)."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


#: name -> proxy; every entry has the signature ``(model, (x, y)) -> float``.
PROXIES: dict[str, Proxy] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "params": params,
}


def score(name: str, model: nn.Module, batch: Batch) -> float:
    """The zero-cost proxy ``name`` of ``model`` at its current weights on ``batch``.

    Raises:
        ValueError: ``name`` is not in :data:`PROXIES` (the message lists them).
    """
    try:
        proxy = PROXIES[name]
    except KeyError:
        raise ValueError(
            f"unknown zero-cost proxy {name!r}; known: {', '.join(sorted(PROXIES))}"
        ) from None
    return proxy(model, batch)
