"""The LSTM controller of NAS-RL, NASNet and MnasNet.

The controller walks the space's decisions in order. At each step the LSTM
reads an embedding of the previous step's action, and its output scores the
current decision:

* a categorical decision through its own linear head (softmax);
* an anchor decision (NAS-RL skip connections) by attention over the
  anchors of earlier layers: ``P(j -> i) = sigmoid(v^T tanh(W_prev h_j +
  W_curr h_i))``, one Bernoulli per earlier anchor.

One method, :meth:`LSTMController.forward`, both samples (``actions=None``)
and scores given actions (teacher forcing), so the log-probability a
strategy learns from is by construction the one the sample was drawn with.
The controller holds no optimizer; strategies own that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import AnchorDecision, AnyDecision


@dataclass
class ControllerOutput:
    """Actions ``[n, steps]`` with their log-probability and entropy ``[n]``."""

    actions: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor


class LSTMController(nn.Module):
    """An autoregressive LSTM policy over a space's decisions.

    Args:
        decisions: the space's decisions, in sampling order.
        hidden: LSTM hidden units (NASNet: 100; NAS-RL: 35).
        layers: stacked LSTM layers (NASNet: 1; NAS-RL: 2).
        init_range: parameters start uniform in ``[-init_range, init_range]``.
        temperature: logits are divided by it (None: 1).
        tanh_constant: logits become ``c * tanh(logits)`` (None: off), which
            bounds them and keeps the policy from collapsing early (ENAS).
    """

    def __init__(
        self,
        decisions: Sequence[AnyDecision],
        hidden: int = 100,
        layers: int = 1,
        init_range: float = 0.1,
        temperature: float | None = None,
        tanh_constant: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(hidden, int) or hidden <= 0:
            raise ConfigError("hidden", f"must be an integer > 0, got {hidden!r}")
        if not isinstance(layers, int) or layers <= 0:
            raise ConfigError("layers", f"must be an integer > 0, got {layers!r}")
        if init_range < 0:
            raise ConfigError("init_range", f"must be >= 0, got {init_range}")
        if temperature is not None and temperature <= 0:
            raise ConfigError("temperature", f"must be > 0 or null, got {temperature}")
        if tanh_constant is not None and tanh_constant <= 0:
            raise ConfigError("tanh_constant", f"must be > 0 or null, got {tanh_constant}")
        if not decisions:
            raise ConfigError("decisions", "the controller needs at least one decision")
        self.decisions = tuple(decisions)
        self.hidden, self.num_layers = hidden, layers
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        # One head and one action embedding per categorical decision; None
        # (an empty slot) for anchors, which use the shared attention below.
        self.heads = nn.ModuleList()
        self.embeds = nn.ModuleList()
        for d in self.decisions:
            is_cat = not isinstance(d, AnchorDecision)
            self.heads.append(nn.Linear(hidden, d.size) if is_cat else nn.Identity())
            self.embeds.append(nn.Embedding(d.size, hidden) if is_cat else nn.Identity())
        if any(isinstance(d, AnchorDecision) for d in self.decisions):
            self.w_prev = nn.Linear(hidden, hidden, bias=False)
            self.w_curr = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def forward(
        self,
        n: int = 1,
        actions: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> ControllerOutput:
        """Sample ``n`` action sequences, or score ``actions`` ``[n, steps]``.

        Args:
            n: how many sequences to sample (ignored when scoring).
            actions: given actions to score instead of sampling.
            generator: the random source for sampling.
            steps: only the first ``steps`` decisions (a growing space).
        """
        device = self.start.device
        if actions is not None:
            actions = torch.as_tensor(actions, dtype=torch.long, device=device)
            if actions.ndim == 1:
                actions = actions[None]
            n, steps = actions.shape
        steps = len(self.decisions) if steps is None else steps
        if not 0 < steps <= len(self.decisions):
            raise ValueError(f"steps must be in 1..{len(self.decisions)}, got {steps}")
        h = [torch.zeros(n, self.hidden, device=device) for _ in self.cells]
        c = [torch.zeros(n, self.hidden, device=device) for _ in self.cells]
        x = self.start.expand(n, -1)
        anchors: list[torch.Tensor] = []  # LSTM outputs at anchor steps
        anchors_proj: list[torch.Tensor] = []  # W_prev h_j, cached
        chosen, log_probs, entropies = [], [], []
        for t in range(steps):
            for layer, cell in enumerate(self.cells):
                h[layer], c[layer] = cell(x, (h[layer], c[layer]))
                x = h[layer]
            out = x
            decision = self.decisions[t]
            if isinstance(decision, AnchorDecision):
                a, lp, ent, x = self._anchor_step(
                    decision, out, anchors, anchors_proj, actions, t, generator
                )
                anchors.append(out)
                anchors_proj.append(self.w_prev(out))
            else:
                logits = self._shape(self.heads[t](out))
                logp_all = F.log_softmax(logits, dim=-1)
                if actions is None:
                    a = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
                else:
                    a = actions[:, t]
                lp = logp_all.gather(1, a[:, None]).squeeze(1)
                ent = -(logp_all.exp() * logp_all).sum(-1)
                x = self.embeds[t](a)
            chosen.append(a)
            log_probs.append(lp)
            entropies.append(ent)
        return ControllerOutput(
            actions=torch.stack(chosen, dim=1),
            log_prob=torch.stack(log_probs, dim=1).sum(1),
            entropy=torch.stack(entropies, dim=1).sum(1),
        )

    def _anchor_step(
        self,
        decision: AnchorDecision,
        out: torch.Tensor,
        anchors: list[torch.Tensor],
        anchors_proj: list[torch.Tensor],
        actions: torch.Tensor | None,
        t: int,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One anchor: Bernoulli over earlier anchors; returns the bitmask."""
        n = out.shape[0]
        k = decision.num_prev
        if k == 0:
            zero = out.new_zeros(n)
            return torch.zeros(n, dtype=torch.long, device=out.device), zero, zero, out
        if len(anchors) < k:
            raise ValueError(
                f"{decision.name} needs {k} earlier anchors, only {len(anchors)} exist"
            )
        prev_proj = torch.stack(anchors_proj[:k], dim=1)  # [n, k, hidden]
        scores = self.v(torch.tanh(prev_proj + self.w_curr(out)[:, None])).squeeze(-1)
        logits = self._shape(scores)  # [n, k]
        bits_weights = 2 ** torch.arange(k, device=out.device)
        if actions is None:
            bits = torch.bernoulli(torch.sigmoid(logits), generator=generator)
            mask = (bits.long() * bits_weights).sum(1)
        else:
            mask = actions[:, t]
            bits = ((mask[:, None] >> torch.arange(k, device=out.device)) & 1).to(logits.dtype)
        lp = -F.binary_cross_entropy_with_logits(logits, bits, reduction="none").sum(1)
        p = torch.sigmoid(logits)
        ent = F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(1)
        # Next input: mean of the connected anchors' outputs (ENAS), so the
        # LSTM knows which layers feed this one.
        prev = torch.stack(anchors[:k], dim=1)
        x = (bits[:, :, None] * prev).sum(1) / (1.0 + bits.sum(1, keepdim=True))
        return mask, lp, ent, x
