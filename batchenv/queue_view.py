"""The scheduler-facing members of a simulated FIFO queue, shared by every simulation of it.

:class:`batchenv.sim.Simulator` and the shadow simulations of the robust scheduler
(:class:`agents.robust.shadow.ShadowSim`) keep their queue the same way: the arrival times of
the admitted requests in a list, the waiting ones from a head index on, with a running sum of
the waiting requests' arrival times and each worker's free time. :class:`QueueView` reads the
state a scheduler sees (:class:`batchenv.state.SchedulerState`) from those fields, once for
both, so that a scheduler sees the same thing in either. Every member is O(1) or O(workers).

Times are in seconds (``*_s``) from the start of the episode.
"""

from __future__ import annotations

__all__ = ["QueueView"]


class QueueView:
    """Read-only members over the fields a simulation of the queue keeps (set by the subclass):

    - ``_queue`` (list of float, s): admitted arrival times; the waiting ones from ``_head`` on;
    - ``_head`` (int): index in ``_queue`` of the oldest waiting request;
    - ``_sum_waiting_arrivals_s`` (float, s): sum of the waiting requests' arrival times;
    - ``now_s`` (float, s): the simulation's clock;
    - ``free_at_s`` (list of float, s): per worker, when it becomes (or became) free;
    - ``busy_s`` (list of float, s): per worker, the service time of every batch it started;
    - ``max_wait_s`` (float, s): the timeout shield's bound (``max_wait_ms`` / 1000);
    - ``_service_s`` (table of float, s): service time by model index and batch size;
    - ``n_admitted``, ``n_dropped`` (int): requests admitted to and dropped from the queue.
    """

    __slots__ = ()

    _queue: list[float]
    _head: int
    _sum_waiting_arrivals_s: float
    now_s: float
    free_at_s: list[float]
    busy_s: list[float]
    max_wait_s: float
    _service_s: list[list[float]]
    n_admitted: int
    n_dropped: int

    @property
    def queue_len(self) -> int:
        """Number of waiting requests."""
        return len(self._queue) - self._head

    @property
    def oldest_arrival_s(self) -> float:
        """Arrival time (s) of the oldest waiting request (``inf`` if the queue is empty)."""
        return self._queue[self._head] if len(self._queue) > self._head else float("inf")

    @property
    def oldest_wait_s(self) -> float:
        """How long (s) the oldest waiting request has waited (0 if the queue is empty)."""
        return self.now_s - self._queue[self._head] if len(self._queue) > self._head else 0.0

    @property
    def mean_wait_s(self) -> float:
        """Mean time (s) waited so far by the waiting requests (0 if the queue is empty)."""
        q = len(self._queue) - self._head
        return self.now_s - self._sum_waiting_arrivals_s / q if q else 0.0

    @property
    def n_arrived(self) -> int:
        """Requests arrived so far (admitted or dropped)."""
        return self.n_admitted + self.n_dropped

    @property
    def n_idle_workers(self) -> int:
        """Workers idle at ``now_s``."""
        now = self.now_s
        return sum(1 for f in self.free_at_s if f <= now)

    @property
    def shielded(self) -> bool:
        """True at an epoch where the oldest request has waited ``max_wait_ms``: a wait is then
        turned into a forced dispatch."""
        head = self._head
        return (
            len(self._queue) > head
            and self.now_s >= self._queue[head] + self.max_wait_s
            and min(self.free_at_s) <= self.now_s
        )

    def busy_time_s(self) -> float:
        """Total busy time (s) of all workers from 0 to ``now_s``."""
        now = self.now_s
        return sum(self.busy_s) - sum(f - now for f in self.free_at_s if f > now)

    def service_s(self, model: int, batch_size: int) -> float:
        """Service time (s) of a batch of ``batch_size`` on model index ``model``."""
        return self._service_s[model][batch_size]

    def observe(self) -> tuple[float, int, float, float, int, float]:
        """The state a server can observe, in one call (the env's observation is built from it):
        ``(now_s, queue_len, oldest_wait_s, mean_wait_s, n_arrived, busy_time_s)``."""
        now = self.now_s
        head = self._head
        q = len(self._queue) - head
        if q:
            oldest = now - self._queue[head]
            mean = now - self._sum_waiting_arrivals_s / q
        else:
            oldest = mean = 0.0
        return now, q, oldest, mean, self.n_admitted + self.n_dropped, self.busy_time_s()
