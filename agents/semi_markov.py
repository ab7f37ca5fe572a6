"""Discounting by simulated time (semi-Markov discount) for PPO, A2C, MaskablePPO and DQN.

The environment is a semi-Markov decision process: a step lasts from a few microseconds (a second
dispatch at the same instant) to ``max_wait_ms``, and steps come about once per arrival, so a fixed
per-step ``gamma`` looks ahead 0.5 s at 400 requests/s but 10 s at 20 requests/s. With
``discount_horizon_s`` set, each transition is discounted by ``exp(-dt / discount_horizon_s)``,
``dt`` being the simulated seconds the step took (``info["dt_s"]``): the same horizon in seconds
at every rate. This matters most when the rate changes between episodes (domain randomisation).

Three pieces: :class:`SemiMarkovRolloutBuffer` (GAE with a discount per transition, on-policy),
:class:`SemiMarkovReplayBuffer` (DQN: each sampled transition carries its own discount, which
SB3's DQN uses in place of ``gamma`` in the TD target) and :class:`DiscountFromInfoCallback`
(feeds each step's discount from ``info["dt_s"]`` to the buffer before SB3 stores the step; SB3
calls callbacks before it stores a transition, on- and off-policy).

A truncated episode (the horizon) is bootstrapped with the value of its last observation. SB3's
on-policy rollouts add ``gamma * V(last observation)`` to the last reward; the callback adds
``(exp(-dt / horizon) - gamma) * V(last observation)`` to it as the buffer stores it, so that the
bootstrap is discounted by the step's own time discount like every other transition (the last
step before a truncation is not short: with a 1 s horizon its ``exp(-dt)`` averages about 0.5
at 1 request/s and 0.92 at 10/s, against the 0.995 of ``gamma``). DQN's replay buffer already
bootstraps a truncated transition with its own discount (SB3 treats a timeout as not done).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples

__all__ = [
    "SEMI_MARKOV_BUFFERS",
    "DiscountFromInfoCallback",
    "SemiMarkovMaskableRolloutBuffer",
    "SemiMarkovReplayBuffer",
    "SemiMarkovRolloutBuffer",
]


class _SemiMarkovGAE:
    """GAE(lambda) with ``self.discounts[step]`` in place of a constant gamma (a mixin over an
    SB3 rollout buffer). ``pending_discounts`` (shape (n_envs,)) is stored with the next step,
    and ``pending_bootstrap`` (shape (n_envs,)) added to its rewards (then reset to 0): the
    correction of SB3's ``gamma`` bootstrap of a truncated episode to the step's own discount
    (:class:`DiscountFromInfoCallback`)."""

    buffer_size: int
    n_envs: int
    pos: int
    gae_lambda: float
    episode_starts: np.ndarray
    rewards: np.ndarray
    values: np.ndarray
    advantages: np.ndarray

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.discounts = np.ones((self.buffer_size, self.n_envs), dtype=np.float32)
        self.pending_discounts = np.ones(self.n_envs, dtype=np.float32)
        self.pending_bootstrap = np.zeros(self.n_envs, dtype=np.float32)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.discounts[self.pos] = self.pending_discounts
        if self.pending_bootstrap.any():  # args: obs, action, reward, ... (SB3 passes them in order)
            args = (*args[:2], args[2] + self.pending_bootstrap, *args[3:])
            self.pending_bootstrap = np.zeros(self.n_envs, dtype=np.float32)
        super().add(*args, **kwargs)  # type: ignore[misc]

    def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
        last_values = last_values.clone().cpu().numpy().flatten()
        last_gae_lam = 0.0
        for step in reversed(range(self.buffer_size)):
            if step == self.buffer_size - 1:
                next_non_terminal = 1.0 - dones.astype(np.float32)
                next_values = last_values
            else:
                next_non_terminal = 1.0 - self.episode_starts[step + 1]
                next_values = self.values[step + 1]
            gamma = self.discounts[step]
            delta = self.rewards[step] + gamma * next_values * next_non_terminal - self.values[step]
            last_gae_lam = delta + gamma * self.gae_lambda * next_non_terminal * last_gae_lam
            self.advantages[step] = last_gae_lam
        self.returns = self.advantages + self.values


class SemiMarkovRolloutBuffer(_SemiMarkovGAE, RolloutBuffer):
    """SB3's RolloutBuffer with a discount per transition (PPO, A2C)."""


class SemiMarkovMaskableRolloutBuffer(_SemiMarkovGAE, MaskableRolloutBuffer):
    """sb3-contrib's MaskableRolloutBuffer with a discount per transition (MaskablePPO)."""


class SemiMarkovReplayBuffer(ReplayBuffer):
    """SB3's ReplayBuffer storing a discount per transition (DQN).

    Samples carry ``discounts`` (shape (batch, 1)), which SB3's DQN uses in place of ``gamma``:
    target = r + (1 - done) * discount * max_a Q'(s', a). ``pending_discounts`` (shape
    (n_envs,)) is stored with the next transition added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.discounts = np.ones((self.buffer_size, self.n_envs), dtype=np.float32)
        self.pending_discounts = np.ones(self.n_envs, dtype=np.float32)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Store a transition with the pending discount (arguments as SB3's ``ReplayBuffer.add``)."""
        self.discounts[self.pos] = self.pending_discounts
        super().add(*args, **kwargs)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        if self.optimize_memory_usage:
            raise ValueError("SemiMarkovReplayBuffer does not support optimize_memory_usage")
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        not_timeout = 1 - self.timeouts[batch_inds, env_inds]
        data = (
            self._normalize_obs(self.observations[batch_inds, env_inds, :], env),
            self.actions[batch_inds, env_inds, :],
            self._normalize_obs(self.next_observations[batch_inds, env_inds, :], env),
            (self.dones[batch_inds, env_inds] * not_timeout).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_inds].reshape(-1, 1), env),
            self.discounts[batch_inds, env_inds].reshape(-1, 1),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


SEMI_MARKOV_BUFFERS: dict[str, tuple[str, type]] = {
    "ppo": ("rollout_buffer_class", SemiMarkovRolloutBuffer),
    "a2c": ("rollout_buffer_class", SemiMarkovRolloutBuffer),
    "maskable_ppo": ("rollout_buffer_class", SemiMarkovMaskableRolloutBuffer),
    "dqn": ("replay_buffer_class", SemiMarkovReplayBuffer),
}
"""For each ``--algo``: the constructor argument and the buffer class with per-transition discounts."""


class DiscountFromInfoCallback(BaseCallback):
    """Sets each step's discount ``exp(-info["dt_s"] / horizon_s)`` in the rollout buffer; in an
    on-policy rollout, also the correction that turns SB3's ``gamma * V`` bootstrap of a
    truncated episode into ``exp(-dt / horizon_s) * V`` (see the module docstring).

    :param horizon_s: discount horizon in simulated seconds.
    """

    def __init__(self, horizon_s: float) -> None:
        super().__init__()
        if not horizon_s > 0:
            raise ValueError(f"discount_horizon_s must be > 0 (s), got {horizon_s!r}")
        self.horizon_s = horizon_s

    def _on_step(self) -> bool:
        dt = np.array([info.get("dt_s", 0.0) for info in self.locals["infos"]], dtype=np.float64)
        on_policy = hasattr(self.model, "rollout_buffer")
        buffer = getattr(self.model, "rollout_buffer" if on_policy else "replay_buffer")
        discounts = np.exp(-dt / self.horizon_s).astype(np.float32)
        buffer.pending_discounts = discounts
        if on_policy:
            buffer.pending_bootstrap = self._bootstrap_corrections(discounts)
        return True

    def _bootstrap_corrections(self, discounts: np.ndarray) -> np.ndarray:
        """``(discount - gamma) * V(terminal observation)`` for each env whose episode was
        truncated at this step (SB3 then adds ``gamma * V``), else 0."""
        corrections = np.zeros(len(discounts), dtype=np.float32)
        dones = self.locals.get("dones")
        if dones is None:
            return corrections
        model: Any = self.model  # an on-policy SB3 model: its policy has a value head, it has a gamma
        policy = model.policy
        for idx, info in enumerate(self.locals["infos"]):
            terminal = info.get("terminal_observation")
            if not (dones[idx] and terminal is not None and info.get("TimeLimit.truncated", False)):
                continue
            with torch.no_grad():
                value = policy.predict_values(policy.obs_to_tensor(terminal)[0])[0]
            corrections[idx] = (discounts[idx] - model.gamma) * float(value.item())
        return corrections
