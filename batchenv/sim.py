"""Event-driven simulator of the batching system: a FIFO queue in front of ``n_workers`` GPUs.

The simulator jumps from event to event (an arrival, a worker becoming free, the oldest request
reaching ``max_wait_ms``, the horizon); there is no time step, so its times are exact to floating
point. It knows nothing of Gymnasium: :class:`batchenv.env.DynamicBatchingEnv` is a thin layer on
top, and :meth:`Simulator.run` drives a whole episode with a plain Python policy at full speed.

Decision epochs
    A decision epoch is a moment when at least one worker is idle and the queue is not empty. The
    simulator stops at each one and the policy decides: ``None`` (wait) or ``(model, batch_size)``
    (dispatch the ``min(batch_size, queue, max_batch_size)`` oldest requests on that model, on the
    lowest-numbered idle worker). Between epochs the simulator advances on its own.

Wait and the timeout shield
    A wait advances to the next event: an arrival, a busy worker becoming free, or the moment the
    oldest request has waited ``max_wait_ms``, whichever comes first. A *timed* wait (a float
    decision ``d``, in s) also ends when the oldest request has waited ``d``: the timer a batch
    timeout needs; the wake-up time is ``oldest_arrival_s + d``, exactly the sum a policy compares
    ``now_s`` with. At an epoch where the oldest
    request has waited ``max_wait_ms``, a wait is turned into a dispatch of a full batch on the last
    model used (a *forced dispatch*, counted). So no request waits longer than ``max_wait_ms``
    while a worker is idle.

Score (reward) of a request
    ``quality(m) - w_latency_per_s * latency_s``, minus ``w_slo`` if ``latency > slo``; a dropped
    request scores ``-w_drop``. It is paid as it accrues: ``-w_latency_per_s * (waiting time)``
    continuously, and ``quality - w_latency_per_s * service_s`` (and the SLO penalty, known at
    dispatch) when the request's batch is dispatched. A request still waiting at the horizon has
    been charged its waiting time so far. :meth:`Simulator.take_reward` returns what accrued since
    its last call, so that an episode's rewards sum to the sum of the per-request scores.

Requests arriving when ``queue_capacity`` requests wait are dropped and counted.
Times are in seconds (``*_s``) inside the simulator.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from batchenv.arrivals import ArrivalProcess, make_arrival_process, start_episode
from batchenv.config import SystemConfig
from batchenv.queue_view import QueueView
from batchenv.timing import ServiceTable

__all__ = ["OBJECTIVE_DRAWS", "Batch", "Decision", "Policy", "Simulator", "episode_arrivals_s", "simulate"]

OBJECTIVE_DRAWS = 3
"""Numbers an episode draws for its SLO objective before its arrivals, when
``reward.slo_probability`` > 0 (:meth:`Simulator.reset`)."""

Decision = tuple[int, int] | float | None
"""``None`` = wait for the next event; a float ``d`` = wait, but wake up at the latest when the
oldest request has waited ``d`` seconds (a batch timer, as Triton's ``max_queue_delay``);
``(model index, batch size)`` = dispatch."""

Policy = Callable[["Simulator"], Decision]
"""A policy maps the simulator's state at a decision epoch to a decision."""

_COMPACT_AT = 4096  # without recording, drop dispatched arrivals from the queue list past this


class Batch(NamedTuple):
    """One dispatched batch (a record of the simulator). Times in seconds."""

    dispatch_s: float
    service_s: float
    model: int
    size: int
    worker: int
    first_request: int  # index of its first request in Simulator.admitted_arrivals_s


class Simulator(QueueView):
    """Exact event-driven simulation of the queue and workers of a :class:`SystemConfig`.

    :param config: the system.
    :param record: keep per-request and per-batch records for :mod:`batchenv.metrics`
        (memory grows with the number of requests in an episode). Without it, memory is bounded
        by ``queue_capacity`` and the running totals (``n_*``, ``sum_*``) are still kept.
    :param arrival_process: reuse an already built process (e.g. a loaded trace).
    """

    def __init__(
        self,
        config: SystemConfig,
        *,
        record: bool = True,
        arrival_process: ArrivalProcess | None = None,
    ) -> None:
        self.config = config
        self.record = record
        self.service_table = ServiceTable(config)
        self.arrival_process = arrival_process or make_arrival_process(config)
        self.n_workers = config.n_workers
        self.n_models = config.n_models
        self.max_batch_size = config.max_batch_size
        self.queue_capacity = config.queue_capacity
        self.max_wait_s = config.max_wait_ms / 1000.0
        self.slo_s = config.slo_ms / 1000.0
        """The SLO bound of the current episode (s): ``slo_ms``, or the episode's own draw
        (``reward.slo_probability``)."""
        self._service_s = self.service_table.service_s
        self._quality = list(config.qualities)
        self._w_lat = config.reward.w_latency_per_s
        self.w_slo = config.reward.w_slo
        """The SLO penalty of the current episode (score units per late request)."""
        self._w_drop = config.reward.w_drop
        self.done = True

    # ------------------------------------------------------------------ episode start
    def _draw_objective(self, rng: np.random.Generator) -> None:
        """Draw the episode's SLO objective (``reward.slo_probability``): with that probability
        a bound and a penalty uniform in their ranges, else the system's own. Three draws from
        ``rng`` whatever the outcome, so that the arrivals after them do not depend on it."""
        reward = self.config.reward
        draw = rng.random(OBJECTIVE_DRAWS)
        if draw[0] < reward.slo_probability:
            assert reward.slo_ms_range is not None and reward.w_slo_range is not None  # validated
            (slo_lo, slo_hi), (w_lo, w_hi) = reward.slo_ms_range, reward.w_slo_range
            self.slo_s = (slo_lo + (slo_hi - slo_lo) * draw[1]) / 1000.0
            self.w_slo = w_lo + (w_hi - w_lo) * draw[2]

    def reset(
        self,
        rng: np.random.Generator | int | None = None,
        *,
        arrivals: Iterator[np.ndarray] | None = None,
        horizon_s: float | None = None,
    ) -> None:
        """Start an episode and advance to its first decision epoch.

        :param rng: generator (or seed) for the episode: first its SLO objective is drawn (only
            if ``reward.slo_probability`` > 0), then its mean rate (if
            ``arrivals.rate_range_per_s`` is set; a mixture first draws its component), then the
            arrival stream (:func:`batchenv.arrivals.start_episode`).
        :param arrivals: an explicit iterator of sorted arrival-time chunks (s) instead (the
            episode keeps the system's SLO objective).
        :param horizon_s: episode length (s); default ``config.horizon_s``.
        """
        reward = self.config.reward
        self.slo_s, self.w_slo = self.config.slo_ms / 1000.0, reward.w_slo
        if arrivals is None:
            if not isinstance(rng, np.random.Generator):
                rng = np.random.default_rng(rng)
            if reward.slo_probability > 0.0:
                self._draw_objective(rng)
            self.episode_rate_per_s, arrivals = start_episode(self.arrival_process, self.config, rng)
        else:
            self.episode_rate_per_s = float("nan")
        self.horizon_s = self.config.horizon_s if horizon_s is None else float(horizon_s)
        self._stream = arrivals
        self._chunk = self._next_chunk()
        self._chunk_pos = 0
        self._next_arrival_s = self._chunk[0]

        self.now_s = 0.0
        self.done = False
        self._queue: list[float] = []  # admitted arrival times; waiting ones from _head on
        self._head = 0
        self._offset = 0  # admitted requests removed from _queue by compaction
        self._sum_waiting_arrivals_s = 0.0
        self.free_at_s = [0.0] * self.n_workers
        self._in_service = [0] * self.n_workers
        self.last_model = 0
        self.last_dispatch_s = 0.0
        self._reward = 0.0

        # Running totals (always kept).
        self.n_admitted = 0
        self.n_dropped = 0
        self.n_served = 0  # dispatched requests
        self.n_batches = 0
        self.n_forced = 0
        self.n_epochs = 0
        self.n_slo_misses = 0
        self.sum_latency_s = 0.0
        self.sum_quality = 0.0
        self.total_reward = 0.0  # the same increments as _reward, summed in one running total
        self.served_per_model = [0] * self.n_models
        self.busy_s = [0.0] * self.n_workers

        # Records (only with record=True).
        self.batches: list[Batch] = []
        self.drop_times_s: list[float] = []

        self._advance(must_move=False)

    def _next_chunk(self) -> list[float]:
        """The next non-empty chunk of arrival times (s) from the stream."""
        chunk: list[float] = []
        while not chunk:
            chunk = next(self._stream).tolist()
        return chunk

    # ------------------------------------------------------------------ state (read-only)
    def waiting_arrivals_s(self) -> list[float]:
        """Arrival times (s) of the waiting requests, oldest first (a copy)."""
        return self._queue[self._head :]

    def newest_arrivals_s(self, count: int) -> list[float]:
        """Arrival times (s) of the ``count`` most recently admitted requests, oldest first; O(count).

        They must all still wait (``count <= queue_len``): a scheduler reads at each decision
        epoch the requests admitted since its previous one, which cannot have been dispatched in
        between.
        """
        if not 0 <= count <= len(self._queue) - self._head:
            raise ValueError(f"count must be in [0, queue_len={self.queue_len}], got {count}")
        return self._queue[len(self._queue) - count :]

    @property
    def n_in_service(self) -> int:
        """Requests in batches that are still running at ``now_s``."""
        now = self.now_s
        return sum(b for f, b in zip(self.free_at_s, self._in_service, strict=True) if f > now)

    @property
    def n_completed(self) -> int:
        """Requests whose batch has finished by ``now_s``."""
        return self.n_served - self.n_in_service

    @property
    def admitted_arrivals_s(self) -> list[float]:
        """Arrival times (s) of every admitted request of the episode, in order (record=True)."""
        if not self.record:
            raise RuntimeError("per-request records need Simulator(record=True)")
        return self._queue

    # ------------------------------------------------------------------ actions
    def take_reward(self) -> float:
        """Reward accrued since the last call (see the module docstring)."""
        reward = self._reward
        self._reward = 0.0
        return reward

    def step(self, decision: Decision) -> bool:
        """Apply a decision at a decision epoch and advance to the next one (or the horizon).

        :returns: True if a wait was turned into a forced dispatch by the timeout shield.
        """
        if decision is None:
            return self.wait()
        if decision.__class__ is float:
            return self.wait(decision)
        # a (model, batch size) pair (mypy does not narrow on the class test, faster than isinstance)
        self.dispatch(decision[0], decision[1])  # type: ignore[index]
        return False

    def wait(self, timer_s: float | None = None) -> bool:
        """Wait until the next event; a forced dispatch if the timeout shield applies.

        :param timer_s: also wake up when the oldest request has waited this long (s); ignored
            if it is not shorter than ``max_wait_ms`` or has already expired.
        :returns: True if the wait was turned into a forced dispatch.
        """
        if self.done:
            return False
        if self.shielded:
            self.n_forced += 1
            self.dispatch(self.last_model, self.max_batch_size)
            return True
        wake = self.max_wait_s
        if timer_s is not None and timer_s < wake and self.now_s < self._queue[self._head] + timer_s:
            wake = timer_s
        self._advance(must_move=True, wake_delay_s=wake)
        return False

    def dispatch(self, model: int, batch_size: int) -> int:
        """Dispatch the ``min(batch_size, queue, max_batch_size)`` oldest requests on ``model``
        on the lowest-numbered idle worker, then advance to the next decision epoch.

        :returns: the number of requests dispatched.
        """
        if self.done:
            return 0
        queue = self._queue
        head = self._head
        now = self.now_s
        q = len(queue) - head
        free_at = self.free_at_s
        if q == 0 or min(free_at) > now:
            raise RuntimeError("dispatch outside a decision epoch (needs an idle worker and a request)")
        if not 0 <= model < self.n_models:
            raise ValueError(f"model must be in [0, {self.n_models - 1}], got {model}")
        b = min(batch_size, q, self.max_batch_size)
        if b < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        worker = 0
        while free_at[worker] > now:
            worker += 1
        service = self._service_s[model][b]
        completion = now + service
        free_at[worker] = completion
        self._in_service[worker] = b
        end = head + b
        arrivals_sum = sum(queue[head:end])
        misses = bisect.bisect_left(queue, completion - self.slo_s, head, end) - head
        quality = self._quality[model]
        gain = b * (quality - self._w_lat * service) - self.w_slo * misses
        self._reward += gain
        self.total_reward += gain
        self.sum_latency_s += b * completion - arrivals_sum
        self.sum_quality += b * quality
        self.n_slo_misses += misses
        self.n_served += b
        self.n_batches += 1
        self.served_per_model[model] += b
        self.busy_s[worker] += service
        self.last_model = model
        self.last_dispatch_s = now
        if self.record:
            self.batches.append(Batch(now, service, model, b, worker, head))
        if end == len(queue):
            self._sum_waiting_arrivals_s = 0.0
        else:
            self._sum_waiting_arrivals_s -= arrivals_sum
        if not self.record and end >= _COMPACT_AT:
            del queue[:end]
            self._offset += end
            end = 0
        self._head = end
        self._advance(must_move=False)
        return b

    def run(self, policy: Policy) -> None:
        """Run the rest of the episode with ``policy`` (called at every decision epoch)."""
        step = self.step
        while not self.done:
            step(policy(self))

    # ------------------------------------------------------------------ event loop
    def _advance(self, must_move: bool, wake_delay_s: float = 0.0) -> None:
        """Advance through events to the next decision epoch, or to the horizon.

        :param must_move: the policy waited at the current epoch: move to at least the next event.
        :param wake_delay_s: with ``must_move``: the wait also ends when the oldest request has
            waited this long (s); ``max_wait_s`` or a shorter timer.
        """
        queue = self._queue
        head = self._head
        free_at = self.free_at_s
        t = self.now_s
        nxt = self._next_arrival_s
        horizon = self.horizon_s
        capacity = self.queue_capacity
        single = self.n_workers == 1
        area = 0.0  # integral of the number of waiting requests over time (request * s)
        q = len(queue) - head
        chunk = self._chunk
        pos = self._chunk_pos
        admitted = 0
        arrivals_sum = 0.0
        while True:
            free = free_at[0] if single else min(free_at)
            if free <= t:  # a worker is idle
                if q:
                    if not must_move:
                        self.n_epochs += 1
                        break
                    must_move = False
                    t_next = queue[head] + wake_delay_s
                    if nxt < t_next:
                        t_next = nxt
                    if not single:
                        for f in free_at:
                            if t < f < t_next:
                                t_next = f
                else:
                    t_next = nxt
            elif q:
                t_next = nxt if nxt < free else free
            else:
                t_next = nxt
            if t_next >= horizon:
                area += q * (horizon - t)
                t = horizon
                self.done = True
                break
            area += q * (t_next - t)
            t = t_next
            while nxt <= t:  # admit every arrival up to now (ties included)
                if q < capacity:
                    queue.append(nxt)
                    q += 1
                    admitted += 1
                    arrivals_sum += nxt
                else:
                    self.n_dropped += 1
                    self._reward -= self._w_drop
                    self.total_reward -= self._w_drop
                    if self.record:
                        self.drop_times_s.append(nxt)
                pos += 1
                if pos == len(chunk):
                    chunk = self._next_chunk()
                    pos = 0
                nxt = chunk[pos]
        self.now_s = t
        self._chunk = chunk
        self._chunk_pos = pos
        self._next_arrival_s = nxt
        self.n_admitted += admitted
        self._sum_waiting_arrivals_s += arrivals_sum
        self._reward -= self._w_lat * area
        self.total_reward -= self._w_lat * area


def simulate(
    config: SystemConfig,
    policy: Policy,
    seed: int | np.random.Generator | None,
    *,
    record: bool = True,
    horizon_s: float | None = None,
    sim: Simulator | None = None,
) -> Simulator:
    """Run one episode of ``policy`` and return the finished simulator (read its totals or pass it
    to :func:`batchenv.metrics.compute_metrics`). A policy with a ``reset(sim)`` method has it
    called after the simulator's reset. The same ``seed`` gives the same arrivals to every policy,
    and the same arrivals as ``DynamicBatchingEnv.reset(seed=seed)``.

    :param sim: reuse this simulator (must be built for ``config``) instead of building one.
    """
    sim = sim or Simulator(config, record=record)
    sim.reset(seed, horizon_s=horizon_s)
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset(sim)
    sim.run(policy)
    return sim


def episode_arrivals_s(
    config: SystemConfig,
    seed: int,
    horizon_s: float | None = None,
    *,
    max_count: int | None = None,
    arrival_process: ArrivalProcess | None = None,
) -> np.ndarray:
    """Arrival times (s) in [0, horizon) of the episode ``simulate(config, policy, seed)`` sees,
    drawn as :meth:`Simulator.reset` draws them: the SLO objective (when
    ``reward.slo_probability`` > 0), the rate, then the stream. Shape (N,), sorted.

    :param horizon_s: episode length (s); default ``config.horizon_s``.
    :param max_count: stop drawing as soon as there are more arrivals than this (memory).
    :param arrival_process: reuse an already built process (e.g. a loaded trace).
    :raises ValueError: more than ``max_count`` arrivals before the horizon.
    """
    horizon = config.horizon_s if horizon_s is None else horizon_s
    rng = np.random.default_rng(seed)
    if config.reward.slo_probability > 0.0:
        rng.random(OBJECTIVE_DRAWS)
    _, stream = start_episode(arrival_process or make_arrival_process(config), config, rng)
    chunks, count = [], 0
    for chunk in stream:
        chunks.append(chunk[chunk < horizon])
        count += len(chunks[-1])
        if max_count is not None and count > max_count:
            raise ValueError(f"episode {seed} has more than {max_count} arrivals in {horizon:g} s")
        if len(chunk) and chunk[-1] >= horizon:
            break
    return np.concatenate(chunks)
