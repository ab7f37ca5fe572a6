"""Discounting by simulated time for on-policy algorithms (PPO, A2C, MaskablePPO).

The environment is a semi-Markov decision process: a step lasts from a few microseconds (a second
dispatch at the same instant) to ``max_wait_ms``, and steps come about once per arrival, so a fixed
per-step ``gamma`` looks ahead 0.5 s at 400 requests/s but 10 s at 20 requests/s. With
``discount_horizon_s`` set, each transition is discounted by ``exp(-dt / discount_horizon_s)``,
``dt`` being the simulated seconds the step took (``info["dt_s"]``): the same horizon in seconds
at every rate. This matters most when the rate changes between episodes (domain randomisation).

Two pieces: :class:`SemiMarkovRolloutBuffer` (GAE with a discount per transition) and
:class:`DiscountFromInfoCallback` (feeds each step's discount from ``info["dt_s"]`` to the buffer
before SB3 stores the step). SB3's bootstrap of truncated episodes still uses the algorithm's
``gamma`` (once per episode, a negligible difference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback

__all__ = [
    "SEMI_MARKOV_BUFFERS",
    "DiscountFromInfoCallback",
    "SemiMarkovMaskableRolloutBuffer",
    "SemiMarkovRolloutBuffer",
]


class _SemiMarkovGAE:
    """GAE(lambda) with ``self.discounts[step]`` in place of a constant gamma (a mixin over an
    SB3 rollout buffer). ``pending_discounts`` (shape (n_envs,)) is stored with the next step."""

    buffer_size: int
    n_envs: int
    pos: int
    gae_lambda: float

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


SEMI_MARKOV_BUFFERS: dict[str, type] = {
    "ppo": SemiMarkovRolloutBuffer,
    "a2c": SemiMarkovRolloutBuffer,
    "maskable_ppo": SemiMarkovMaskableRolloutBuffer,
}
"""The rollout buffer with per-transition discounts for each on-policy ``--algo``."""


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
        self.model.rollout_buffer.pending_discounts = np.exp(-dt / self.horizon_s).astype(np.float32)
        return True
