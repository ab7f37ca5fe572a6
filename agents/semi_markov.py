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
calls callbacks before it stores a transition, on- and off-policy). SB3's bootstrap of truncated
episodes in on-policy rollouts still uses the algorithm's ``gamma`` (once per episode, a
negligible difference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
    SB3 rollout buffer). ``pending_discounts`` (shape (n_envs,)) is stored with the next step."""

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

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.discounts[self.pos] = self.pending_discounts
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
    """Sets each step's discount ``exp(-info["dt_s"] / horizon_s)`` in the rollout buffer.

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
        buffer.pending_discounts = np.exp(-dt / self.horizon_s).astype(np.float32)
        return True
