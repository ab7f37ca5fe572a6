"""The interface every scheduler implements.

A scheduler decides at decision epochs of the simulator (:mod:`batchenv.sim`): ``decide(sim)``
reads the raw simulator state (queue length, waits, workers, clock) and returns ``None`` (wait)
or ``(model, batch_size)``. It reads only the members of :class:`batchenv.state.SchedulerState`,
so a real server's state (:mod:`serving.engine`) can stand in for the simulator. A scheduler is
therefore a :data:`batchenv.sim.Policy` and runs a whole episode at full speed with
``sim.run(scheduler)``.

For tools written against Stable-Baselines3, :meth:`Scheduler.predict` has SB3's signature and
returns an action of a :class:`~batchenv.env.DynamicBatchingEnv` the scheduler was bound to with
:meth:`Scheduler.bind`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["Scheduler"]


class Scheduler:
    """Base class of schedulers. Subclasses implement :meth:`decide` and may override
    :meth:`reset` (called once per episode, after ``sim.reset``, before the first decision).

    :param config: the system the scheduler serves (gives models, batch limits, timeouts).
    """

    name = "scheduler"
    params_source = ""
    """Where the parameters came from (set by :func:`agents.registry.make_agent`)."""

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self._env: Any = None

    def reset(self, sim: Simulator) -> None:
        """Start of an episode (the simulator is at its first decision epoch)."""

    def decide(self, sim: Simulator) -> Decision:
        """Decision at an epoch: ``None`` (wait) or ``(model index, batch size)``."""
        raise NotImplementedError

    def __call__(self, sim: Simulator) -> Decision:
        """The decision at an epoch (:meth:`decide`): a scheduler is a :data:`batchenv.sim.Policy`."""
        return self.decide(sim)

    def params(self) -> dict[str, Any]:
        """The scheduler's parameters (for reports); subclasses add theirs."""
        return {}

    def describe(self) -> str:
        """Name and parameters, e.g. ``timeout(preferred_batch_size=8, ...)``."""
        params = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}({params})" if params else self.name

    # ------------------------------------------------------------------ SB3-like interface
    def bind(self, env: Any) -> Scheduler:
        """Bind to a (possibly wrapped) DynamicBatchingEnv so that :meth:`predict` can be used.
        Call after ``env.reset`` or let :meth:`predict`'s ``episode_start`` trigger :meth:`reset`."""
        self._env = env.unwrapped
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """SB3-style prediction for the bound env's current epoch (the observation itself is not
        needed: the scheduler reads the same state exactly from the env's simulator)."""
        if self._env is None:
            raise RuntimeError(f"{self.name}: call bind(env) before predict()")
        sim = self._env.sim
        if episode_start is not None and np.any(episode_start):
            self.reset(sim)
        action = self._env.action_of(self.decide(sim)) if not sim.done else 0
        return np.asarray(action), state
