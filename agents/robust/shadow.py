"""A shadow simulation: one scheduler run on the arrivals a real server has observed so far.

:class:`ShadowSim` replays the dynamics of :class:`batchenv.sim.Simulator` exactly (the same
decision epochs, timed waits, timeout shield, FIFO batches, lowest-numbered idle worker, reward
accrual) but it is *fed* the arrival times as a real server observes them instead of drawing
them, and it is advanced to a given time, never beyond: it only ever knows the past. It exposes
the attributes a scheduler reads (``now_s``, ``queue_len``, ``oldest_arrival_s``,
``oldest_wait_s``, ``mean_wait_s``, ``n_arrived``, ``shielded``, ``busy_time_s()``, ...) through
the simulator's own :class:`batchenv.queue_view.QueueView`, so any :class:`agents.base.Scheduler`
runs on it unchanged.

Given the same arrivals, a scheduler's shadow makes the same decisions at the same times as the
scheduler in the real simulator (a test checks this batch by batch); its accrued cost and
latencies are what the scheduler would have had. The shadow keeps a latency histogram (for tail
percentiles) instead of per-request records, so its memory is bounded by the queue.

The event loop and the dispatch mirror ``Simulator._advance`` and ``Simulator.dispatch`` line by
line, with two differences the simulator's loop cannot express: the shadow stops at a given time
without an event (the wait goes on when it is resumed), and its arrivals are fed as they are
observed instead of drawn. A test runs schedulers in both and compares every batch.

Work: amortised O(1) per arrival and per decision (each arrival is admitted once, each request
is dispatched once and its latency binned once).

Times are in seconds (``*_s``).
"""

from __future__ import annotations

import math
from typing import Any

from batchenv.config import SystemConfig
from batchenv.queue_view import QueueView
from batchenv.sim import Decision
from batchenv.timing import ServiceTable

__all__ = ["LatencyHistogram", "ShadowSim"]

_COMPACT_AT = 4096  # drop dispatched arrivals from the queue list past this many


class LatencyHistogram:
    """Counts of latencies in log-spaced bins, for percentiles in O(bins) without records.

    :param low_s: lower edge of the first bin (s); smaller latencies go to the first bin.
    :param high_s: upper edge of the last bin (s); larger latencies go to the last bin.
    :param step: relative width of a bin (0.02: bins 2% apart, so a percentile is read to 2%).
    """

    def __init__(self, low_s: float = 1e-3, high_s: float = 100.0, step: float = 0.02) -> None:
        self._log_low = math.log(low_s)
        self._inv_step = 1.0 / math.log1p(step)
        self._last = int((math.log(high_s) - self._log_low) * self._inv_step)
        self.counts = [0] * (self._last + 1)
        self.total = 0
        self._low_s = low_s
        self._ratio = 1.0 + step

    def add(self, latency_s: float) -> None:
        """Count one latency (s)."""
        i = int((math.log(latency_s) - self._log_low) * self._inv_step) if latency_s > self._low_s else 0
        self.counts[i if i < self._last else self._last] += 1
        self.total += 1

    def quantile_s(self, q: float) -> float:
        """Upper edge (s) of the bin that holds the q-quantile (q in (0, 1)); NaN when empty."""
        if not self.total:
            return math.nan
        above = (1.0 - q) * self.total  # requests allowed above the quantile
        seen = 0
        for i in range(self._last, -1, -1):
            seen += self.counts[i]
            if seen > above:
                return self._low_s * self._ratio ** (i + 1)
        return self._low_s * self._ratio


class ShadowSim(QueueView):
    """A scheduler simulated on observed arrivals (module docstring).

    :param config: the system (as the real simulator's).
    :param policy: the scheduler the shadow runs (called at each of the shadow's decision epochs;
        its ``reset(shadow)`` is called by :meth:`start`).
    :param histogram: keep a latency histogram (:class:`LatencyHistogram`).
    :ivar total_reward: reward accrued so far (the simulator's ``total_reward``).
    :ivar pending: the shadow is at a decision epoch at ``now_s`` that it has not decided yet.
    """

    def __init__(self, config: SystemConfig, policy: Any, histogram: bool = True) -> None:
        self.config = config
        self.policy = policy
        self.service_table = ServiceTable(config)
        self._service_s = self.service_table.service_s
        self._quality = list(config.qualities)
        self._w_lat = config.reward.w_latency_per_s
        self._w_slo = config.reward.w_slo
        self._w_drop = config.reward.w_drop
        self.n_workers = config.n_workers
        self.n_models = config.n_models
        self.max_batch_size = config.max_batch_size
        self.queue_capacity = config.queue_capacity
        self.max_wait_s = config.max_wait_ms / 1000.0
        self.slo_s = config.slo_ms / 1000.0
        self._histogram = histogram
        self.start([], 0.0)

    # ------------------------------------------------------------------ episode start
    def start(self, arrivals_s: list[float], epoch_s: float) -> None:
        """Start an episode: the clock at 0, the arrivals observed so far (all <= ``epoch_s``)
        fed, the shadow run to ``epoch_s`` (the real simulator's first decision epoch, s) and the
        policy reset there, as :func:`batchenv.sim.simulate` resets a scheduler."""
        self.now_s = 0.0
        self._queue: list[float] = []
        self._head = 0
        self._offset = 0
        self._incoming: list[float] = []
        self._in_pos = 0
        self._sum_waiting_arrivals_s = 0.0
        self.free_at_s = [0.0] * self.n_workers
        self.busy_s = [0.0] * self.n_workers
        self.last_model = 0
        self.total_reward = 0.0
        self.n_admitted = 0
        self.n_dropped = 0
        self.n_served = 0
        self.n_batches = 0
        self.n_forced = 0
        self.sum_latency_s = 0.0
        self.sum_quality = 0.0
        self.served_per_model = [0] * self.n_models
        self.latencies = LatencyHistogram() if self._histogram else None
        self.pending = False
        self._must_move = False
        self._wake_s = 0.0
        self.feed(arrivals_s)
        self.advance_to(epoch_s)
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset(self)

    def feed(self, arrivals_s: list[float]) -> None:
        """Observed arrival times (s), sorted, later than every earlier one fed."""
        if self._in_pos and self._in_pos == len(self._incoming):
            self._incoming = []
            self._in_pos = 0
        self._incoming.extend(arrivals_s)

    # ------------------------------------------------------------------ state read by policies
    @property
    def head_index(self) -> int:
        """Index (0-based, over the episode's admitted requests) of the oldest waiting request."""
        return self._offset + self._head

    @property
    def cost(self) -> float:
        """Cost accrued so far: arrived requests x best quality - reward (lower is better)."""
        return self.n_arrived * max(self._quality) - self.total_reward

    # ------------------------------------------------------------------ running
    def advance_to(self, t_s: float) -> None:
        """Run to time ``t_s`` (s): every arrival fed up to ``t_s`` is admitted, every decision
        epoch before ``t_s`` is decided by the policy; an epoch at ``t_s`` is left
        :attr:`pending` (:meth:`decide_pending` or the next call decides it)."""
        while True:
            if self.pending:
                if self.now_s >= t_s:
                    return
                self.decide_pending()
            elif not self._run_events(t_s):
                return

    def decide_pending(self) -> Decision:
        """Decide the pending epoch with the policy and apply it; returns the decision as the
        real simulator would carry it out: a wait the timeout shield forbids is returned as the
        dispatch the shield makes (so that a real simulator copying it never forces one)."""
        self.pending = False
        decision = self.policy(self)
        if decision is None or decision.__class__ is float:
            if self.shielded:
                self.n_forced += 1
                decision = (self.last_model, self.max_batch_size)
                self._dispatch(*decision)
                return decision
            wake = self.max_wait_s
            if decision is not None and decision < wake and self.now_s < self._queue[self._head] + decision:
                wake = decision
            self._must_move = True
            self._wake_s = wake
            return decision
        self._dispatch(decision[0], decision[1])
        return decision

    def _dispatch(self, model: int, batch_size: int) -> None:
        """As :meth:`batchenv.sim.Simulator.dispatch` (without records), plus the histogram."""
        queue = self._queue
        head = self._head
        now = self.now_s
        q = len(queue) - head
        free_at = self.free_at_s
        b = min(batch_size, q, self.max_batch_size)
        if b < 1 or min(free_at) > now:
            raise RuntimeError("shadow dispatch outside a decision epoch")
        worker = 0
        while free_at[worker] > now:
            worker += 1
        service = self._service_s[model][b]
        completion = now + service
        free_at[worker] = completion
        end = head + b
        arrivals_sum = 0.0
        misses = 0
        deadline = completion - self.slo_s
        histogram = self.latencies
        for i in range(head, end):
            arrival = queue[i]
            arrivals_sum += arrival
            if arrival < deadline:
                misses += 1
            if histogram is not None:
                histogram.add(completion - arrival)
        quality = self._quality[model]
        self.total_reward += b * (quality - self._w_lat * service) - self._w_slo * misses
        self.sum_latency_s += b * completion - arrivals_sum
        self.sum_quality += b * quality
        self.n_served += b
        self.n_batches += 1
        self.served_per_model[model] += b
        self.busy_s[worker] += service
        self.last_model = model
        if end == len(queue):
            self._sum_waiting_arrivals_s = 0.0
        else:
            self._sum_waiting_arrivals_s -= arrivals_sum
        if end >= _COMPACT_AT:
            del queue[:end]
            self._offset += end
            end = 0
        self._head = end
        self._must_move = False

    def _run_events(self, t_end: float) -> bool:
        """The simulator's event loop (``Simulator._advance``) from ``now_s``, bounded by
        ``t_end``: returns True at a decision epoch (:attr:`pending`), False when the next event
        lies after ``t_end`` (the clock then stands at ``t_end``, the wait still running)."""
        queue = self._queue
        head = self._head
        free_at = self.free_at_s
        t = self.now_s
        incoming = self._incoming
        pos = self._in_pos
        n_in = len(incoming)
        nxt = incoming[pos] if pos < n_in else math.inf
        capacity = self.queue_capacity
        single = self.n_workers == 1
        must_move = self._must_move
        wake = self._wake_s
        area = 0.0
        q = len(queue) - head
        admitted = 0
        arrivals_sum = 0.0
        epoch = False
        while True:
            free = free_at[0] if single else min(free_at)
            if free <= t:
                if q:
                    if not must_move:
                        epoch = True
                        break
                    t_next = queue[head] + wake
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
            if t_next > t_end:
                area += q * (t_end - t)
                t = t_end
                break
            must_move = False
            area += q * (t_next - t)
            t = t_next
            while nxt <= t:
                if q < capacity:
                    queue.append(nxt)
                    q += 1
                    admitted += 1
                    arrivals_sum += nxt
                else:
                    self.n_dropped += 1
                    self.total_reward -= self._w_drop
                pos += 1
                nxt = incoming[pos] if pos < n_in else math.inf
        self.now_s = t
        self._in_pos = pos
        self._must_move = must_move
        self.n_admitted += admitted
        self._sum_waiting_arrivals_s += arrivals_sum
        self.total_reward -= self._w_lat * area
        self.pending = epoch
        return epoch
