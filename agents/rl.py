"""Stable-Baselines3 glue: the algorithm registry, the training reward, and the vectorised env.

The environment's reward is the per-request score paid as it accrues (``quality - w_lat *
latency``, ``-w_drop`` for a dropped request). For learning, :class:`RegretReward` subtracts the
best model's quality for every dispatched and every dropped request, so each step's reward is
``-(cost accrued)`` in the units of the evaluated cost per request (docs/design.md, "Metrics":
cost = best quality - score): non-positive, small, and, over a whole episode, the evaluated
cost of its requests up to the best quality of those still queued at the horizon
(:class:`RegretReward`). Evaluation always reports the true score from the simulator, whatever
the training reward.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from batchenv.config import SystemConfig
from batchenv.env import DynamicBatchingEnv

__all__ = ["ALGORITHMS", "RegretReward", "make_training_env"]

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable_ppo": MaskablePPO,
}
"""``--algo`` name -> SB3 / sb3-contrib class."""


class RegretReward(gym.Wrapper):
    """Reward = env reward - best quality x (dispatched + dropped requests) (+ centring), times
    ``scale``.

    A request is charged the best quality when it leaves the queue: at its dispatch (it then
    earns its model's quality less its latency charge) or at its drop (it earns ``-w_drop``), so
    each request is charged ``best quality - score``, its cost as ``evaluate.py`` counts it. Over
    an episode of ``n`` arrivals, with ``q`` requests still queued at the horizon, the plain
    return (no centring, no per-request scaling, ``scale`` 1) is exactly::

        return = -(cost_per_request x n) + best_quality x q

    ``cost_per_request`` being the episode's evaluated cost (:func:`batchenv.metrics.compute_metrics`,
    which charges a queued request the best quality plus its wait so far). The ``q`` queued
    requests are charged their wait so far but not yet the best quality: the horizon truncates
    the episode (the task is continuing), and the value bootstrapped at the truncation stands for
    their future, which charges them when they leave the queue; charging them at the horizon
    too would count them twice. So the training return and the evaluated cost rank policies
    alike up to that one term, at most ``best_quality x queue_capacity`` per episode. A perfect
    server earns 0.

    With ``center``, each step also earns ``c * arrivals`` where ``c`` is the running mean cost per
    request of all steps so far: the semi-Markov (average-reward) centring ``r - g * tau`` with the
    gain ``g = -c * lambda`` estimated per request, so it follows the arrival rate. Without it, a
    discounted agent gains by postponing costs (a dispatch is charged at once, a wait slowly).

    With ``per_request``, each episode's rewards are divided by its mean arrival rate (requests/s,
    ``info["rate_per_s"]`` at reset): a discounted return with horizon ``h`` seconds is then about
    the cost per request times ``h`` at every rate, instead of growing with the rate (a 1 s
    return is 0.015 at 1/s and 53 at 400/s without it). When the rate changes between episodes,
    this makes every episode count for its cost per request (what evaluation reports), where the
    plain regret lets the busiest episodes drown the others (docs/rl.md, "Generalising").

    :param scale: multiplies the reward.
    :param center: subtract the running average cost rate (see above).
    :param per_request: divide by the episode's mean arrival rate (see above).
    """

    def __init__(
        self, env: gym.Env, scale: float = 1.0, center: bool = False, per_request: bool = False
    ) -> None:
        super().__init__(env)
        self.best_quality = max(cast(DynamicBatchingEnv, env.unwrapped).config.qualities)
        self.scale = scale
        self.center = center
        self.per_request = per_request
        self.total_cost = 0.0
        self.total_arrivals = 0
        self._episode_scale = scale

    def reset(self, **kwargs):
        """Reset the env; with ``per_request``, set this episode's scale from its rate."""
        obs, info = self.env.reset(**kwargs)
        if self.per_request:
            rate = info.get("rate_per_s")
            if not (isinstance(rate, float) and rate > 0):  # explicit arrivals: no known rate
                raise ValueError(f"reward per request needs the episode's rate, got {rate!r}")
            self._episode_scale = self.scale / rate
        return obs, info

    def step(self, action):
        """Step the env; the reward becomes the (centred, scaled) regret of the step."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        regret_reward = reward - self.best_quality * (info["dispatched"] + info["dropped"])
        if self.center:
            self.total_cost -= regret_reward
            self.total_arrivals += info["arrived"]
            if self.total_arrivals:
                regret_reward += info["arrived"] * self.total_cost / self.total_arrivals
        return obs, regret_reward * self._episode_scale, terminated, truncated, info


def make_training_env(
    config: SystemConfig,
    n_envs: int,
    seed: int,
    *,
    reward_scale: float = 1.0,
    reward_center: bool = False,
    reward_per_request: bool = False,
    normalize_obs: bool = False,
    normalize_reward: bool = True,
    gamma: float = 0.99,
    vec_env_cls: Any = None,
) -> VecEnv:
    """``n_envs`` copies of the env (seeds ``seed .. seed + n_envs - 1``), each with
    :class:`RegretReward` and SB3's Monitor, then VecNormalize (its statistics are saved in the
    checkpoint so that evaluation sees observations exactly as training did)."""

    def wrap(env: gym.Env) -> gym.Env:
        return RegretReward(env, reward_scale, reward_center, reward_per_request)

    venv = make_vec_env(
        DynamicBatchingEnv,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={"config": config, "record": False},
        wrapper_class=wrap,
        vec_env_cls=vec_env_cls,
    )
    return VecNormalize(venv, norm_obs=normalize_obs, norm_reward=normalize_reward, gamma=gamma)
