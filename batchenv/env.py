"""Gymnasium environment of the dynamic batching decision: wait, or dispatch on which model."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from batchenv.actions import ActionCodec
from batchenv.config import SystemConfig
from batchenv.metrics import compute_metrics
from batchenv.observation import OBSERVATION_NAMES, OBSERVATION_TABLE, ObservationBuilder
from batchenv.render import ansi_line, rgb_frame
from batchenv.scenarios import load_scenario
from batchenv.sim import Decision, Simulator

__all__ = ["OBSERVATION_NAMES", "DynamicBatchingEnv"]

_INVALID = object()
"""Stands for an action that is not an index of the decisions (None is the wait)."""


class DynamicBatchingEnv(gym.Env):
    """
    ## Description

    An LLM inference server receives requests into a FIFO queue in front of ``n_workers`` GPUs.
    Whenever a worker is idle and requests wait (a *decision epoch*), the agent decides whether to
    wait for a bigger batch or to dispatch the oldest requests now, and on which model (LLM-1 is
    precise; LLM-2 and LLM-3 are distilled, faster and less precise). A batch of ``b`` requests on
    model ``m`` occupies a worker for ``T_pre + T_comm(b) + T_inf(m, b) + T_post`` (the project
    brief's timing table). Between epochs an exact event-driven simulator (:mod:`batchenv.sim`)
    advances time on its own, so there are no empty steps and no time discretisation.

    ## Action Space

    ``Discrete(1 + M)`` with ``M`` models: ``0`` = wait, ``k`` = dispatch ``min(queue,
    max_batch_size)`` oldest requests on model ``k - 1``. With ``env.batch_choice: true`` the
    space is ``Discrete(1 + M * S)`` over the batch sizes ``sizes = table sizes below
    max_batch_size, then max_batch_size`` (``S`` of them): action ``1 + m * S + s`` dispatches
    ``min(sizes[s], queue)`` requests on model ``m`` (:mod:`batchenv.actions`).
    :meth:`action_masks` gives the valid actions (for sb3-contrib's MaskablePPO): wait is invalid
    when the timeout shield applies; sizes beyond the first one that holds the whole queue are
    invalid.

    Wait advances to the next event: an arrival, a busy worker becoming free, or the moment the
    oldest request has waited ``max_wait_ms``. At that moment wait is masked out; a wait chosen
    anyway becomes a dispatch of a full batch on the last model used (``info["forced_dispatches"]``).
    So no request waits longer than ``max_wait_ms`` while a worker is idle.

    ## Observation Space

    ``Box(shape=(7 + n_workers + len(env.extra_rate_taus_s) (+ 2 with env.observe_slo),), dtype=float32)``
    (:mod:`batchenv.observation`); everything a real server knows, nothing of the future:

    {observation_table}

    "max throughput" is the largest sustainable rate, ``n_workers * max(b / service(b, m))``
    (requests/s); W = n_workers. ``env.rate_scale: log`` reports every rate on a log scale,
    ``env.extra_rate_taus_s`` adds rate estimates with other time constants,
    ``env.rate_ewma_unbiased`` starts the estimates without their bias to 0 (otherwise they start
    at 0 each episode), and ``env.observe_slo`` shows the episode's SLO objective (for training
    across objectives: ``reward.slo_probability`` draws one per episode).

    ## Rewards

    Dense and time-integrated, in units of the per-request score. Over each step:
    ``-w_latency_per_s * (integral of the number of waiting requests dt)`` (dt in s); at a dispatch,
    ``+ sum over the batch of (quality(m) - w_latency_per_s * service_s)`` minus ``w_slo`` per
    request that will miss ``slo_ms``; minus ``w_drop`` per dropped arrival. An episode's return
    therefore equals the sum over its requests of ``quality - w_latency_per_s * latency_s`` (minus
    penalties), the per-request score that ``evaluate.py`` reports; requests still waiting at the
    end are charged the time they waited.

    ## Starting State

    Empty queue, idle workers, time 0; :meth:`reset` advances to the first arrival. The episode's
    mean arrival rate is drawn from ``arrivals.rate_range_per_s`` when set (domain
    randomisation; uniformly, or log-uniformly with ``rate_range_scale: log``; a ``mixture``
    first draws the component the episode replays), then arrivals come from the configured
    process, all from ``self.np_random``.

    ## Episode End

    The task is continuing: ``terminated`` is always False. ``truncated`` is True when the
    simulated time reaches ``horizon_s``. Call :meth:`reset` then (Gymnasium leaves a step after
    the end undefined); a step after it changes nothing and returns the same observation, reward
    0, ``truncated`` True and zero counts in ``info`` (a test pins this).

    ## Arguments

    ```python
    gymnasium.make("batchenv/DynamicBatching-v0")                       # the default scenario
    gymnasium.make("batchenv/DynamicBatching-v0", config="bursty")      # a scenario by name
    gymnasium.make("batchenv/DynamicBatching-v0", config="my.yaml")     # or YAML path
    gymnasium.make("batchenv/DynamicBatching-v0", overrides={"n_workers": 2})
    ```

    :param config: a :class:`SystemConfig`, a scenario name or a YAML path (default: ``default``).
    :param overrides: fields to change on top of ``config`` (nested sections as dicts).
    :param record: keep per-request records for :meth:`metrics` (memory grows with an episode).
    :param render_mode: ``None``, ``"ansi"`` (one line of text) or ``"rgb_array"`` (a picture of
        the queue and the workers, :mod:`batchenv.render`).

    ``info`` of each step holds per-step counts only: ``arrived``, ``dispatched``, ``dropped``,
    ``forced_dispatches``, the simulated time ``sim_time_s`` and the step's duration ``dt_s``
    (a semi-Markov agent discounts by it). The full metrics of the episode
    come from ``env.unwrapped.metrics()``.

    ## Version History

    * v0: initial version.
    """

    __doc__ = __doc__.replace("{observation_table}", textwrap.indent(OBSERVATION_TABLE, "    ").strip())

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        config: SystemConfig | str | Path | None = None,
        *,
        overrides: dict[str, Any] | None = None,
        record: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if config is None:
            config = load_scenario("default")
        elif not isinstance(config, SystemConfig):
            config = load_scenario(config)
        if overrides:
            config = config.replace(**overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.config = config
        self.render_mode = render_mode
        self.sim = Simulator(config, record=record)
        self._started = False  # reset() has been called

        self.codec = ActionCodec(config)
        self.batch_sizes = self.codec.batch_sizes
        self.action_space = self.codec.space
        self.observe = ObservationBuilder(config, self.sim.service_table)
        self.observation_space = self.observe.space
        self.observation_names = self.observe.names

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode (arrivals from ``seed``); returns the first observation and an info dict."""
        super().reset(seed=seed)
        self.observe.reset()
        sim = self.sim
        sim.reset(self.np_random)
        self._started = True
        self._counts = (sim.n_arrived, sim.n_served, sim.n_dropped)
        info = {"sim_time_s": sim.now_s, "rate_per_s": sim.episode_rate_per_s}
        return self.observe(sim), info

    def step(self, action):
        """Apply ``action`` and run to the next decision epoch (Gymnasium's ``step``)."""
        sim = self.sim
        decisions = self.codec.decisions
        try:  # a negative index would pick the last model; a float, a bool or an array is no index
            decision = (
                decisions[action]
                if 0 <= action < len(decisions) and action.__class__ is not bool
                else _INVALID
            )
        except (TypeError, ValueError):
            decision = _INVALID
        if decision is _INVALID:
            raise ValueError(
                f"action must be an integer in [0, {len(decisions) - 1}] (not a bool), got {action!r}"
            )
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        start_s = sim.now_s
        forced = sim.step(decision) if not sim.done else False
        counts = (sim.n_arrived, sim.n_served, sim.n_dropped)
        last = self._counts
        self._counts = counts
        info = {
            "arrived": counts[0] - last[0],
            "dispatched": counts[1] - last[1],
            "dropped": counts[2] - last[2],
            "forced_dispatches": int(forced),
            "sim_time_s": sim.now_s,
            "dt_s": sim.now_s - start_s,
        }
        return self.observe(sim), sim.take_reward(), False, sim.done, info

    def action_masks(self) -> np.ndarray:
        """Valid actions at the current epoch, shape (n_actions,), dtype bool."""
        self._check_started("action_masks")
        return self.codec.masks(self.sim)

    def render(self) -> str | np.ndarray | None:
        """The state now: one line of text (``render_mode='ansi'``), a uint8 RGB picture of shape
        (rows * 16, 256, 3) (``'rgb_array'``; :mod:`batchenv.render`), else None."""
        if self.render_mode is None:
            return None
        self._check_started("render")
        if self.render_mode == "ansi":
            return ansi_line(self.sim)
        return rgb_frame(self.sim)

    def _check_started(self, method: str) -> None:
        if not self._started:
            raise ResetNeeded(f"call reset() before {method}()")

    # ------------------------------------------------------------------ extras
    def metrics(self):
        """Full metrics of the episode so far (:class:`batchenv.metrics.EpisodeMetrics`)."""
        return compute_metrics(self.sim)

    def decision(self, action: int) -> Decision:
        """The simulator decision ``None`` or ``(model, batch_size)`` an action stands for."""
        return self.codec.decision(action)

    def action_of(self, decision: Decision) -> int:
        """The action that stands for ``decision`` (batch sizes rounded up to an action's size)."""
        return self.codec.action_of(decision)
