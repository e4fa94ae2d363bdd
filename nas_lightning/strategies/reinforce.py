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
        replay: learn from a replay of every told child (up to
            ``replay_size``) instead of only the children just told. Each
            child keeps the log-probability it was proposed with; its term is
            weighted by the ratio of its probability now to then, truncated
            at ``importance_clip`` (REINFORCE) or clipped as PPO clips it.
            A few hundred children are too few for one step per child.
        replay_size: the most recent children kept (None: all).
        importance_clip: REINFORCE's truncation of the importance weights.
        top_fraction: risk-seeking policy gradient (Petersen et al. 2021):
            learn only from the children at or above the ``1 - top_fraction``
            quantile of the replay's rewards, with that quantile as the
            baseline; the controller then optimises its best children, not
            its average one. None: every child, against the EMA baseline.
        queue_size: priority-queue training (Abolafia et al. 2018): the
            ``queue_size`` best children ever told are kept apart and their
            log-likelihood, times ``queue_weight``, is added to every replay
            step. 0: off.
        queue_weight: weight of the priority-queue term.
        entropy_schedule: ``constant``; or ``linear``: the entropy bonus
            falls linearly from ``entropy_weight`` to 0 over ``budget`` told
            children (explore first, then exploit what was found).
        budget: the children the search will train (for the schedule).
        dedup_tries: with ``replay``, draws beyond the first (one batched
            pass) to find an architecture not yet proposed; the first new one
            is proposed (all repeats: the first draw). A converged controller
            otherwise proposes its favourite again and again; the replay's
            importance weights absorb the change of sampling. 0: off.
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
        replay: bool = False,
        replay_size: int | None = None,
        importance_clip: float = 1.0,
        top_fraction: float | None = None,
        queue_size: int = 0,
        queue_weight: float = 1.0,
        entropy_schedule: str = "constant",
        budget: int | None = None,
        dedup_tries: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(space, seed)
        self._avoid_repeats(dedup_tries)
        if dedup_tries and not replay:
            raise ConfigError("dedup_tries", "redraws need replay: true (importance weights)")
        _check_replay(replay, replay_size, importance_clip, top_fraction, queue_size,
                      queue_weight, entropy_schedule, budget)
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
        self.replay, self.replay_size = bool(replay), replay_size
        self.importance_clip, self.top_fraction = float(importance_clip), top_fraction
        self.queue_size, self.queue_weight = int(queue_size), float(queue_weight)
        self.entropy_schedule, self.budget = entropy_schedule, budget
        # Told children as plain data {"actions", "log_prob", "reward"} (replay on).
        self.memory: list[dict[str, Any]] = []
        self.queue: list[dict[str, Any]] = []  # the best children, best first
        self.baseline: float | None = None
        # EMA of (reward - baseline)^2 over `num_deviations` rewards after the first.
        self.reward_var = 0.0
        self.num_deviations = 0
        self.generator = torch.Generator().manual_seed(self.seed)

    def _propose(self, n: int) -> list[Proposal]:
        steps = self.space.num_active
        pad = [0] * (len(self.space.decisions) - steps)
        if self.dedup_tries:
            return [self._propose_unproposed(steps, pad) for _ in range(n)]
        with torch.no_grad():
            out = self.controller(n=n, generator=self.generator, steps=steps)
        proposals = []
        for i in range(n):
            proposal = self._make(out.actions[i].tolist() + pad, float(out.log_prob[i]))
            proposal.info["steps"] = steps
            proposals.append(proposal)
        return proposals

    def _propose_unproposed(self, steps: int, pad: list[int]) -> Proposal:
        """The first of ``1 + dedup_tries`` draws (one batched pass) not proposed before.

        The proposal keeps the controller's own log-probability; the replay's
        importance weights treat the redraw as a slightly different behaviour
        policy, as they treat any child proposed by an older policy. When every
        draw was proposed before (the controller has converged), it explores:
        the architecture not proposed yet that is nearest the first draw (fewest
        decisions changed, uniform among the nearest; ``info["explored"]``), with
        the controller's log-probability of it. A repeat is proposed only when
        the space has none left.
        """
        with torch.no_grad():
            out = self.controller(n=1 + self.dedup_tries, generator=self.generator, steps=steps)
        pick = None
        for i in range(out.actions.shape[0]):
            if not self._is_repeat(out.actions[i].tolist() + pad):
                pick = i
                break
        if pick is None:
            neighbour = self._nearest_unproposed(out.actions[0].tolist() + pad)
            if neighbour is not None:
                with torch.no_grad():
                    scored = self.controller(actions=torch.tensor([list(neighbour[:steps])]))
                proposal = self._make(neighbour, float(scored.log_prob[0]))
                proposal.info.update(steps=steps, explored=True)
                return self._remember(proposal)
            pick = 0
        proposal = self._make(out.actions[pick].tolist() + pad, float(out.log_prob[pick]))
        proposal.info["steps"] = steps
        return self._remember(proposal)

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
        given = [
            (p, self.invalid_reward if r is None else r)
            for p, r in zip(proposals, rewards, strict=True)
        ]
        kept = [(p, r) for p, r in given if r is not None]
        return [p for p, _ in kept], [r for _, r in kept]

    def _rescore(self, batch: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint log-probability and entropy of each child, in batch order.

        Children of a growing space may have different depths; each depth is
        scored in one teacher-forced pass.
        """
        device = next(self.controller.parameters()).device
        log_prob = torch.zeros(len(batch), device=device)
        entropy = torch.zeros(len(batch), device=device)
        by_depth: dict[int, list[int]] = {}
        for i, item in enumerate(batch):
            by_depth.setdefault(len(item["actions"]), []).append(i)
        for rows in by_depth.values():
            actions = torch.tensor([batch[i]["actions"] for i in rows], dtype=torch.long)
            out = self.controller(actions=actions)
            index = torch.tensor(rows, device=device)
            log_prob = log_prob.index_put((index,), out.log_prob)
            entropy = entropy.index_put((index,), out.entropy)
        return log_prob, entropy

    @property
    def current_entropy_weight(self) -> float:
        """The entropy bonus now (``entropy_schedule``)."""
        if self.entropy_schedule == "linear" and self.budget:
            return self.entropy_weight * max(0.0, 1.0 - self.num_told / self.budget)
        return self.entropy_weight

    def _add_to_replay(self, proposals: list[Proposal], rewards: list[float]) -> None:
        """Add told children to the replay and the priority queue.

        An architecture told again (a reused repeat) replaces its older entry,
        so a repeat does not count twice in the replay's quantile.
        """
        for p, r in zip(proposals, rewards, strict=True):
            if not p.actions:  # outside the action grid: nothing to score
                continue
            steps = int(p.info.get("steps", len(p.actions)))
            item = {"actions": list(p.actions[:steps]), "log_prob": p.log_prob, "reward": r}
            if item["log_prob"] is None:  # from elsewhere (a record, a user): on-policy
                with torch.no_grad():
                    item["log_prob"] = float(self._rescore([item])[0][0])
            self.memory = [m for m in self.memory if m["actions"] != item["actions"]]
            self.memory.append(item)
            if self.queue_size:
                self.queue = [q for q in self.queue if q["actions"] != item["actions"]]
                self.queue.append(item)
                self.queue.sort(key=lambda q: -q["reward"])
                del self.queue[self.queue_size :]
        if self.replay_size is not None:
            del self.memory[: max(0, len(self.memory) - self.replay_size)]

    def _replay_loss(
        self, ratio_clip: float | None = None, anchor: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One step's loss on the replay.

        REINFORCE (``ratio_clip`` None): ``-w * A * log pi(a)`` with ``w`` the
        truncated importance weight (no gradient through it). PPO: the clipped
        surrogate of the ratio to ``anchor`` (the replay's log-probabilities
        before this update: the trust region is per update), times the
        truncated importance weight of the anchor policy to the proposing one.
        """
        batch = self.memory
        log_prob, entropy = self._rescore(batch)
        old = torch.tensor([m["log_prob"] for m in batch], dtype=log_prob.dtype)
        rewards = torch.tensor([m["reward"] for m in batch], dtype=log_prob.dtype)
        if self.top_fraction is not None:
            threshold = float(torch.quantile(rewards, 1.0 - self.top_fraction))
            keep = rewards >= threshold
        else:
            assert self.baseline is not None, "_advantages sets it before every replay step"
            threshold = float(self.baseline)
            keep = torch.ones_like(rewards, dtype=torch.bool)
        adv = rewards - threshold
        if self.normalize_advantage:
            std = self.reward_std
            adv = adv / std if std > 1e-12 else torch.zeros_like(adv)
        ratio = torch.exp(log_prob - old)
        if ratio_clip is None:
            weight = ratio.detach().clamp(max=self.importance_clip)
            terms = weight * adv * log_prob
        else:
            assert anchor is not None, "the clipped surrogate needs the anchor policy"
            weight = torch.exp(anchor - old).clamp(max=self.importance_clip)
            ratio = torch.exp(log_prob - anchor)
            clipped = torch.clamp(ratio, 1 - ratio_clip, 1 + ratio_clip)
            terms = weight * torch.minimum(ratio * adv, clipped * adv)
        loss = -terms[keep].mean() - self.current_entropy_weight * entropy.mean()
        if self.queue:
            queue_lp, _ = self._rescore(self.queue)
            loss = loss - self.queue_weight * queue_lp.mean()
        stats = {"entropy": float(entropy.detach().mean()), "threshold": threshold,
                 "replayed": float(len(batch)), "log_prob": float(log_prob.detach().mean())}
        return loss, stats

    def diagnostics(self, samples: int = 64) -> dict[str, float]:
        """The policy's entropy (nats, a Monte Carlo estimate over ``samples``
        draws from a generator of its own, so the search's draws do not change)."""
        with torch.no_grad():
            out = self.controller(
                n=samples, generator=torch.Generator().manual_seed(0), steps=self.space.num_active
            )
        return {"entropy": float(out.entropy.mean())}

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
        baseline = sum(rewards) / len(rewards) if self.baseline is None else self.baseline
        self.baseline = baseline
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
        if self.replay:
            state.update(memory=copy.deepcopy(self.memory), queue=copy.deepcopy(self.queue))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.reward_var = float(state.get("reward_var", 0.0))
        self.num_deviations = int(state.get("num_deviations", 0))
        self.generator.set_state(state["generator"])
        self.memory = copy.deepcopy(state.get("memory", []))
        self.queue = copy.deepcopy(state.get("queue", []))


class Reinforce(PolicyGradientStrategy):
    """REINFORCE: ``steps`` gradient steps per ``tell`` (per child, or per batch).

    Args:
        steps: gradient steps per ``tell`` (with ``replay``: each on the whole
            replay; without: the papers' one step on the children just told).
        **kwargs: see :class:`PolicyGradientStrategy`.
    """

    def __init__(self, space: SearchSpace, *args: Any, steps: int = 1, **kwargs: Any) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError("steps", f"must be an integer >= 1, got {steps!r}")
        super().__init__(space, *args, **kwargs)
        if steps > 1 and not self.replay:
            raise ConfigError("steps", "several steps per tell need replay: true")
        self.steps = steps

    def _learn(self, proposals: list[Proposal], rewards: list[float | None]) -> dict[str, float]:
        valid, values = self._valid(proposals, rewards)
        if not valid:
            return {}
        adv, baseline = self._advantages(values)
        if self.replay:
            self._add_to_replay(valid, values)
            for _ in range(self.steps):
                loss, stats = self._replay_loss()
                self._step(loss)
            return {"loss": float(loss.detach()), "baseline": baseline,
                    "advantage": float(adv.mean()), **stats}
        out = self._score(valid)
        loss = -(adv * out.log_prob).mean() - self.current_entropy_weight * out.entropy.mean()
        self._step(loss)
        return {
            "loss": float(loss.detach()),
            "entropy": float(out.entropy.detach().mean()),
            "baseline": baseline,
            "advantage": float(adv.mean()),
            "log_prob": float(out.log_prob.detach().mean()),
        }


_SCHEDULES = ("constant", "linear")


def _check_replay(
    replay: bool,
    replay_size: int | None,
    importance_clip: float,
    top_fraction: float | None,
    queue_size: int,
    queue_weight: float,
    entropy_schedule: str,
    budget: int | None,
) -> None:
    """One-line errors for the replay, risk-seeking and queue settings."""
    if replay_size is not None and (not isinstance(replay_size, int) or replay_size < 1):
        raise ConfigError("replay_size", f"must be an integer >= 1 or null, got {replay_size!r}")
    if not importance_clip > 0:
        raise ConfigError("importance_clip", f"must be > 0, got {importance_clip}")
    if top_fraction is not None and not 0 < top_fraction <= 1:
        raise ConfigError("top_fraction", f"must be in (0, 1] or null, got {top_fraction}")
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
        raise ConfigError("queue_size", f"must be an integer >= 0, got {queue_size!r}")
    if queue_weight < 0:
        raise ConfigError("queue_weight", f"must be >= 0, got {queue_weight}")
    if not replay and (top_fraction is not None or queue_size):
        raise ConfigError(
            "replay", "top_fraction and queue_size act on the replay: set replay: true"
        )
    if entropy_schedule not in _SCHEDULES:
        raise ConfigError(
            "entropy_schedule", f"must be one of {list(_SCHEDULES)}, got {entropy_schedule!r}"
        )
    if entropy_schedule != "constant" and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        raise ConfigError("budget", f"an entropy schedule needs a budget >= 1, got {budget!r}")
