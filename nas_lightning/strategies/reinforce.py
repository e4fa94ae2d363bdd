"""REINFORCE with an exponential-moving-average baseline (NAS-RL, NASNet).

The controller's joint log-probability of a child's decisions is scaled by
the advantage ``reward - baseline``; an entropy bonus keeps it exploring.
Sampling happens without gradients in ``ask``; ``tell`` re-scores the stored
actions with gradients (the same function, so the same probability), which
keeps proposals small, picklable and replayable on resume.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from nas_lightning.controllers.lstm import LSTMController
from nas_lightning.errors import ConfigError
from nas_lightning.spaces.base import AnyDecision, SearchSpace
from nas_lightning.strategies.base import Proposal, Strategy

ControllerFactory = Callable[[Sequence[AnyDecision]], nn.Module]

_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class PolicyGradientStrategy(Strategy):
    """Shared machinery of strategies that learn a controller.

    Args:
        space: the search space.
        controller: a factory ``decisions -> controller`` (a Hydra partial of
            :class:`LSTMController`), or a built controller.
        lr: controller learning rate.
        optimizer: ``adam`` or ``sgd``.
        baseline_decay: EMA decay of the reward baseline.
        entropy_weight: weight of the entropy bonus.
        grad_clip: clip the controller's gradient norm (None: off).
        normalize_advantage: divide each advantage by a running standard
            deviation of the rewards (an EMA with ``baseline_decay``). Rewards
            that lie close together (accuracies within a few points) otherwise
            give gradients so small that the controller barely leaves uniform
            within a few hundred children; normalised, the step size no longer
            depends on the reward's scale. The papers do not normalise.
        invalid_reward: the reward learned from for an invalid architecture
            (``tell(p, None)``); None: skip it, no gradient and no baseline
            update.
        seed: seeds the controller's initial weights and its sampling.
    """

    def __init__(
        self,
        space: SearchSpace,
        controller: ControllerFactory | nn.Module | None = None,
        lr: float = 3.5e-4,
        optimizer: str = "adam",
        baseline_decay: float = 0.95,
        entropy_weight: float = 1e-4,
        grad_clip: float | None = None,
        normalize_advantage: bool = False,
        invalid_reward: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        if invalid_reward is not None and not math.isfinite(invalid_reward):
            raise ConfigError(
                "invalid_reward", f"must be a finite number or null, got {invalid_reward}"
            )
        if lr <= 0:
            raise ConfigError("lr", f"must be > 0, got {lr}")
        if not 0 <= baseline_decay < 1:
            raise ConfigError("baseline_decay", f"must be in [0, 1), got {baseline_decay}")
        if entropy_weight < 0:
            raise ConfigError("entropy_weight", f"must be >= 0, got {entropy_weight}")
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(
                "optimizer", f"must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if controller is None:
                controller = LSTMController
            self.controller = (
                controller if isinstance(controller, nn.Module) else controller(space.decisions)
            )
        self.optimizer = _OPTIMIZERS[optimizer](self.controller.parameters(), lr=lr)
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.grad_clip = grad_clip
        self.normalize_advantage = bool(normalize_advantage)
        self.invalid_reward = None if invalid_reward is None else float(invalid_reward)
        self.baseline: float | None = None
        # EMA of (reward - baseline)^2 over `num_deviations` rewards after the first.
        self.reward_var = 0.0
        self.num_deviations = 0
        self.generator = torch.Generator().manual_seed(self.seed)

    def _propose(self, n: int) -> list[Proposal]:
        steps = self.space.num_active
        pad = [0] * (len(self.space.decisions) - steps)
        with torch.no_grad():
            out = self.controller(n=n, generator=self.generator, steps=steps)
        proposals = []
        for i in range(n):
            proposal = self._make(out.actions[i].tolist() + pad, float(out.log_prob[i]))
            proposal.info["steps"] = steps
            proposals.append(proposal)
        return proposals

    def _score(self, proposals: list[Proposal]):
        """Re-score proposals with gradients; all must share one active prefix."""
        steps = {p.info.get("steps", len(p.actions)) for p in proposals}
        if len(steps) != 1:
            raise ValueError(f"cannot score proposals of different depths {sorted(steps)} together")
        k = steps.pop()
        actions = torch.tensor([p.actions[:k] for p in proposals], dtype=torch.long)
        return self.controller(actions=actions)

    def _valid(
        self, proposals: list[Proposal], rewards: list[float | None]
    ) -> tuple[list[Proposal], list[float]]:
        """Drop invalid proposals (reward None), or give them ``invalid_reward``."""
        kept = [
            (p, self.invalid_reward if r is None else r)
            for p, r in zip(proposals, rewards, strict=True)
        ]
        kept = [(p, r) for p, r in kept if r is not None]
        return [p for p, _ in kept], [r for _, r in kept]

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip)
        self.optimizer.step()

    def _advantages(self, rewards: list[float]) -> tuple[torch.Tensor, float]:
        """Advantages against the baseline *before* it absorbs these rewards."""
        bad = [r for r in rewards if not math.isfinite(r)]
        if bad:  # one NaN would poison the baseline and every later gradient
            raise ValueError(f"rewards must be finite, got {bad}; tell a failed child a number")
        first = self.baseline is None
        if first:
            self.baseline = sum(rewards) / len(rewards)
        baseline = self.baseline
        adv = torch.tensor([r - baseline for r in rewards])
        d = self.baseline_decay
        for i, r in enumerate(rewards):
            if not (first and i == 0):  # the very first reward is its own baseline
                # The spread is measured before the baseline absorbs r, like the advantage.
                self.reward_var = d * self.reward_var + (1 - d) * (r - self.baseline) ** 2
                self.num_deviations += 1
            self.baseline = d * self.baseline + (1 - d) * r
        if self.normalize_advantage:
            adv = adv / self.reward_std if self.reward_std > 1e-12 else torch.zeros_like(adv)
        return adv, baseline

    @property
    def reward_std(self) -> float:
        """Bias-corrected EMA standard deviation of the rewards (as Adam corrects its moments).

        It includes the rewards just told, so the first informative children
        already get steps of order one.
        """
        if self.num_deviations == 0:
            return 0.0
        return math.sqrt(self.reward_var / (1 - self.baseline_decay**self.num_deviations))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            # Copies, not views: later training must not change a saved state.
            controller=copy.deepcopy(self.controller.state_dict()),
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            baseline=self.baseline,
            reward_var=self.reward_var,
            num_deviations=self.num_deviations,
            generator=self.generator.get_state(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.reward_var = float(state.get("reward_var", 0.0))
        self.num_deviations = int(state.get("num_deviations", 0))
        self.generator.set_state(state["generator"])


class Reinforce(PolicyGradientStrategy):
    """REINFORCE: one gradient step per ``tell`` (per child, or per batch)."""

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        proposals, rewards = self._valid(proposals, rewards)
        if not proposals:
            return {}
        adv, baseline = self._advantages(rewards)
        out = self._score(proposals)
        loss = -(adv * out.log_prob).mean() - self.entropy_weight * out.entropy.mean()
        self._step(loss)
        return {
            "loss": float(loss.detach()),
            "entropy": float(out.entropy.detach().mean()),
            "baseline": baseline,
            "advantage": float(adv.mean()),
            "log_prob": float(out.log_prob.detach().mean()),
        }
