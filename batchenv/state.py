"""The read-only state a scheduler sees at a decision epoch: one interface for the simulator and
for a real server.

A scheduler (:class:`agents.base.Scheduler`, or any :data:`batchenv.sim.Policy`) decides from
these members alone. :class:`batchenv.sim.Simulator` provides them exactly (simulated time;
the queue-reading members through :class:`batchenv.queue_view.QueueView`, which the robust
scheduler's shadow simulations share);
:class:`serving.engine.ServerState` provides them on a real server (wall-clock time since the
start of the server's episode, service times from the config's table), so a scheduler runs
unchanged in both. ``tests/test_serving_state.py`` runs every scheduler through a view that
exposes only these members, so a scheduler that reads anything else fails there.

Times are in seconds (``*_s``) from the start of the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from batchenv.config import SystemConfig

__all__ = ["STATE_MEMBERS", "SchedulerState"]


@runtime_checkable
class SchedulerState(Protocol):
    """What a scheduler may read at a decision epoch (at least one worker idle, a request waiting).

    Every member is read-only for the scheduler; the state does not change while it decides.
    """

    @property
    def config(self) -> SystemConfig:
        """The system served."""
        ...

    @property
    def now_s(self) -> float:
        """The time of this decision epoch (s)."""
        ...

    @property
    def queue_len(self) -> int:
        """Number of waiting requests."""
        ...

    @property
    def oldest_arrival_s(self) -> float:
        """Arrival time (s) of the oldest waiting request (``inf`` if the queue is empty)."""
        ...

    @property
    def oldest_wait_s(self) -> float:
        """How long (s) the oldest waiting request has waited (0 if the queue is empty)."""
        ...

    @property
    def mean_wait_s(self) -> float:
        """Mean time (s) waited so far by the waiting requests (0 if the queue is empty)."""
        ...

    @property
    def n_arrived(self) -> int:
        """Requests arrived since the start of the episode, admitted or dropped."""
        ...

    @property
    def free_at_s(self) -> Sequence[float]:
        """Per worker: when it becomes (or became) free (s); ``> now_s`` while it is busy."""
        ...

    @property
    def last_dispatch_s(self) -> float:
        """Time (s) of the last dispatch (0 before the first)."""
        ...

    @property
    def episode_rate_per_s(self) -> float:
        """The mean arrival rate of the episode (requests/s) where it is known in advance
        (the config's rate), NaN otherwise."""
        ...

    @property
    def slo_s(self) -> float:
        """The episode's SLO bound (s): the config's ``slo_ms``, or a training episode's own draw
        (``reward.slo_probability``)."""
        ...

    @property
    def w_slo(self) -> float:
        """The episode's SLO penalty per late request (score units), as :attr:`slo_s`."""
        ...

    @property
    def shielded(self) -> bool:
        """True when the oldest request has waited ``max_wait_ms`` and a worker is idle: a wait
        is then turned into a forced dispatch."""
        ...

    def busy_time_s(self) -> float:
        """Total busy time (s) of all workers from the start of the episode to ``now_s``."""
        ...

    def service_s(self, model: int, batch_size: int) -> float:
        """Service time (s) of a batch of ``batch_size`` on model index ``model`` (the config's
        timing table)."""
        ...

    def observe(self) -> tuple[float, int, float, float, int, float]:
        """``(now_s, queue_len, oldest_wait_s, mean_wait_s, n_arrived, busy_time_s)`` in one call."""
        ...


STATE_MEMBERS: tuple[str, ...] = (
    "config",
    "now_s",
    "queue_len",
    "oldest_arrival_s",
    "oldest_wait_s",
    "mean_wait_s",
    "n_arrived",
    "free_at_s",
    "last_dispatch_s",
    "episode_rate_per_s",
    "slo_s",
    "w_slo",
    "shielded",
    "busy_time_s",
    "service_s",
    "observe",
)
"""The names of :class:`SchedulerState`'s members."""
