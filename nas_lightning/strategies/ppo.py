"""Proximal Policy Optimization of the controller (NASNet, MnasNet).

The search loop tells children one at a time (or in batches of any size);
PPO buffers them and, every ``batch_size`` children, takes ``epochs``
gradient steps on the clipped surrogate

    L = -mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)) - beta * H

where ``rho = exp(log pi(a) - log pi_old(a))`` is the ratio of the
controller's *joint* log-probability of a child's decisions now and when the
child was proposed, ``A = reward - baseline`` with NASNet's EMA baseline and
``H`` the policy's entropy. The old log-probability is the one stored on the
proposal at ``ask`` time, so children proposed before an update and told
after it (concurrent workers) are still weighted correctly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import SearchSpace
from nas_lightning.strategies.base import Proposal
from nas_lightning.strategies.reinforce import ControllerFactory, PolicyGradientStrategy


class PPO(PolicyGradientStrategy):
    """PPO with a clipped ratio over the controller's joint log-probability.

    Args:
        space: the search space.
        controller: a factory ``decisions -> controller`` or a built one.
        lr: controller learning rate (NASNet: 3.5e-4).
        optimizer: ``adam`` or ``sgd``.
        baseline_decay: EMA decay of the reward baseline (NASNet: 0.95).
        entropy_weight: weight of the entropy bonus (NASNet: 1e-5).
        grad_clip: clip the controller's gradient norm (None: off).
        normalize_advantage, invalid_reward: see :class:`PolicyGradientStrategy`.
        batch_size: children per update; a sequential search updates every
            ``batch_size`` children.
        epochs: gradient steps over each batch.
        clip: the ratio is clipped to ``[1 - clip, 1 + clip]``.
        replay, replay_size, top_fraction, queue_size, queue_weight,
            entropy_schedule, budget: see :class:`PolicyGradientStrategy`;
            with ``replay`` each of the ``epochs`` steps of an update runs on
            the whole replay: the ratio is to the policy before the update
            (clipped, PPO's trust region), times the truncated importance
            weight of that policy to the one that proposed the child.
        seed: seeds the controller's initial weights and its sampling.
    """

    def __init__(
        self,
        space: SearchSpace,
        controller: ControllerFactory | nn.Module | None = None,
        lr: float = 3.5e-4,
        optimizer: str = "adam",
        baseline_decay: float = 0.95,
        entropy_weight: float = 1e-5,
        grad_clip: float | None = None,
        normalize_advantage: bool = False,
        invalid_reward: float | None = None,
        batch_size: int = 10,
        epochs: int = 4,
        clip: float = 0.2,
        seed: int = 0,
        **replay: Any,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        if not isinstance(epochs, int) or epochs < 1:
            raise ConfigError("epochs", f"must be an integer >= 1, got {epochs!r}")
        if not 0 < clip < 1:
            raise ConfigError("clip", f"must be in (0, 1), got {clip}")
        super().__init__(
            space,
            controller=controller,
            lr=lr,
            optimizer=optimizer,
            baseline_decay=baseline_decay,
            entropy_weight=entropy_weight,
            grad_clip=grad_clip,
            normalize_advantage=normalize_advantage,
            invalid_reward=invalid_reward,
            seed=seed,
            **replay,
        )
        self.batch_size, self.epochs, self.clip = batch_size, epochs, clip
        # Told children not yet learned from: plain data, saved in state_dict.
        self.buffer: list[dict[str, Any]] = []
        self.num_updates = 0
        self.pending = 0  # told children since the last update (replay on)

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        valid, values = self._valid(proposals, rewards)
        if self.replay:
            return self._learn_replay(valid, values)
        for p, r in zip(valid, values, strict=True):
            if not p.actions:  # outside the action grid: nothing to score
                continue
            steps = int(p.info.get("steps", len(p.actions)))
            self.buffer.append(
                {"actions": list(p.actions[:steps]), "log_prob": p.log_prob, "reward": r}
            )
        stats: dict[str, float] = {}
        while len(self.buffer) >= self.batch_size:
            batch, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size :]
            stats = self._update(batch)
        stats["buffered"] = float(len(self.buffer))
        return stats

    def _learn_replay(self, proposals: list[Proposal], rewards: list[float]) -> dict[str, float]:
        """Every ``batch_size`` told children, ``epochs`` clipped steps on the replay."""
        if not proposals:
            return {}
        adv, baseline = self._advantages(rewards)
        self._add_to_replay(proposals, rewards)
        self.pending += len(proposals)
        stats: dict[str, float] = {"baseline": baseline, "advantage": float(adv.mean())}
        if self.pending >= self.batch_size:
            self.pending = 0
            with torch.no_grad():
                anchor, _ = self._rescore(self.memory)
            for _ in range(self.epochs):
                loss, step_stats = self._replay_loss(ratio_clip=self.clip, anchor=anchor)
                self._step(loss)
            self.num_updates += 1
            stats.update(step_stats, loss=float(loss.detach()), updates=float(self.num_updates))
        return stats

    def _update(self, batch: list[dict[str, Any]]) -> dict[str, float]:
        adv, baseline = self._advantages([item["reward"] for item in batch])
        device = next(self.controller.parameters()).device
        adv = adv.to(device)
        if any(item["log_prob"] is None for item in batch):
            # Proposals from elsewhere (a record, a user): treat as on-policy.
            with torch.no_grad():
                current, _ = self._rescore(batch)
            for item, lp in zip(batch, current.tolist(), strict=True):
                if item["log_prob"] is None:
                    item["log_prob"] = lp
        old = torch.tensor([item["log_prob"] for item in batch], device=device)
        for _ in range(self.epochs):
            log_prob, entropy = self._rescore(batch)
            ratio = torch.exp(log_prob - old)
            clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
            surrogate = torch.minimum(ratio * adv, clipped * adv)
            loss = -surrogate.mean() - self.current_entropy_weight * entropy.mean()
            self._step(loss)
        self.num_updates += 1
        with torch.no_grad():
            log_prob, entropy = self._rescore(batch)
            ratio = torch.exp(log_prob - old)
        return {
            "loss": float(loss.detach()),
            "entropy": float(entropy.mean()),
            "baseline": baseline,
            "advantage": float(adv.mean()),
            "log_prob": float(log_prob.mean()),
            "approx_kl": float((old - log_prob).mean()),
            "clip_frac": float(((ratio - 1).abs() > self.clip).float().mean()),
            "updates": float(self.num_updates),
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["buffer"] = [dict(item, actions=list(item["actions"])) for item in self.buffer]
        state["num_updates"] = self.num_updates
        if self.replay:
            state["pending"] = self.pending
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer = [dict(item, actions=list(item["actions"])) for item in state["buffer"]]
        self.num_updates = int(state["num_updates"])
        self.pending = int(state.get("pending", 0))
