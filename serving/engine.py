"""The batching core of the real server: a FIFO queue in front of ``n_workers`` model workers,
driven by any batchenv scheduler at decision epochs, on an asyncio event loop.

It follows the simulator's rules (:mod:`batchenv.sim`) with wall-clock time:

- A *decision epoch* is a moment when a worker is idle and a request waits: on an arrival, when a
  batch completes, or when a wait's timer expires. Requests that arrive in the same turn of the
  event loop share one epoch, taken right after them (the simulator's rule for simultaneous
  arrivals: all are admitted, then the scheduler decides once). The scheduler reads a
  :class:`ServerState` (the :class:`batchenv.state.SchedulerState` interface) and returns
  ``None`` (wait), a float ``d`` (wait, waking when the oldest request has waited ``d`` s; a
  Python ``float``, tested as the simulator tests it, so a ``numpy.float64`` is no wait here
  either) or ``(model, batch_size)`` (dispatch the ``min(batch_size, queue, max_batch_size)``
  oldest requests on the lowest-numbered idle worker).
- A scheduler that raises, or returns anything else, would stop the simulator; the server logs
  it, counts it (``n_scheduler_errors`` in :meth:`BatchingEngine.stats`) and dispatches a full
  batch on the last model, so one bad decision does not stall the requests that wait.
- A wait lasts until the next arrival, a batch completion, or the oldest request reaching
  ``max_wait_ms`` (or the shorter timer). At an epoch where the oldest request has waited
  ``max_wait_ms``, a wait becomes a *forced dispatch* of a full batch on the last model used
  (counted), so no request waits longer than ``max_wait_ms`` while a worker is idle.
- An arrival when ``queue_capacity`` requests wait is dropped (the server answers 429) and counted.

Batches run in one single-thread executor per worker, so the event loop is never blocked by a
forward pass. A batch's completion time is the moment the event loop learns of it (the worker is
free for the next epoch then); its service time is completion - dispatch, as measured.

Every admitted request is answered exactly once: with its result when its batch completes, with
an error if the batch fails, or refused (:class:`NotAcceptingError`) at shutdown if it was never
dispatched. Times are in seconds (``*_s``) from the start of the episode
(:meth:`BatchingEngine.begin_episode`), on :func:`time.monotonic`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batchenv.config import SystemConfig
from batchenv.timing import ServiceTable
from serving.models import BatchResult

__all__ = [
    "MAX_START_IN_S",
    "BatchRunner",
    "BatchingEngine",
    "EngineBusyError",
    "NotAcceptingError",
    "QueueFullError",
    "ServerState",
]

log = logging.getLogger("serving.engine")

BatchRunner = Callable[[int, list[str]], BatchResult]
"""Runs one batch: ``(model index, texts) -> BatchResult`` (called in a worker thread)."""

MAX_START_IN_S = 10.0
"""Latest start of a new episode after the request (s)."""

OVERDUE_S = 1e-6
"""A busy worker whose predicted completion has passed is reported as free this long after now
(it is still busy: ``free_at_s > now_s``)."""


class QueueFullError(Exception):
    """The request was dropped: ``queue_capacity`` requests were waiting. ``arrival_s`` is its
    arrival time (s)."""

    def __init__(self, arrival_s: float, capacity: int) -> None:
        super().__init__(f"queue full ({capacity} requests waiting)")
        self.arrival_s = arrival_s


class NotAcceptingError(Exception):
    """The server is shutting down: the request was refused (never dispatched)."""


class EngineBusyError(Exception):
    """A new episode needs an empty queue and idle workers."""


@dataclass(eq=False)
class _Request:
    seq: int
    text: str
    arrival_s: float
    future: asyncio.Future


@dataclass(eq=False)
class _Batch:
    batch_id: int
    worker: int
    model: int
    dispatch_s: float
    predicted_end_s: float
    forced: bool
    requests: list[_Request] = field(default_factory=list)


def _worker_thread(worker: int) -> Executor:
    """A worker's executor: one thread, so the event loop runs while a batch does."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-worker-{worker}")


class ServerState:
    """The server's queue and workers, as the scheduler sees them (:class:`SchedulerState`).

    ``now_s`` is set by the engine at each decision epoch and does not move while the
    scheduler decides. ``service_s`` and a busy worker's ``free_at_s`` come from the config's
    timing table (the scheduler's model of the server); ``busy_time_s`` is measured.

    :param config: the system served.
    """

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self._service_s = ServiceTable(config).service_s
        self.max_wait_s = config.max_wait_ms / 1000.0
        self.slo_s = config.slo_ms / 1000.0  # a served episode keeps the system's SLO objective
        self.w_slo = config.reward.w_slo
        rate = config.arrivals
        self.episode_rate_per_s = rate.mean_rate_per_s if rate.rate_range_per_s is None else math.nan
        self.reset()

    def reset(self) -> None:
        """Empty state at the start of an episode (the queue must be empty, workers idle)."""
        n = self.config.n_workers
        self.now_s = 0.0
        self._queue: deque[_Request] = deque()
        self._sum_arrivals_s = 0.0
        self.running: list[_Batch | None] = [None] * n
        self._idle_since_s = [0.0] * n
        self._busy_done_s = 0.0
        self.last_model = 0
        self.last_dispatch_s = 0.0
        self.n_admitted = 0
        self.n_dropped = 0
        self.n_served = 0  # dispatched requests
        self.n_batches = 0
        self.n_forced = 0
        self.n_epochs = 0
        self.served_per_model = [0] * self.config.n_models

    # ------------------------------------------------------------------ SchedulerState
    @property
    def queue_len(self) -> int:
        return len(self._queue)

    @property
    def oldest_arrival_s(self) -> float:
        return self._queue[0].arrival_s if self._queue else math.inf

    @property
    def oldest_wait_s(self) -> float:
        return self.now_s - self._queue[0].arrival_s if self._queue else 0.0

    @property
    def mean_wait_s(self) -> float:
        q = len(self._queue)
        return self.now_s - self._sum_arrivals_s / q if q else 0.0

    @property
    def n_arrived(self) -> int:
        return self.n_admitted + self.n_dropped

    @property
    def free_at_s(self) -> list[float]:
        now = self.now_s
        return [
            self._idle_since_s[w] if batch is None else max(batch.predicted_end_s, now + OVERDUE_S)
            for w, batch in enumerate(self.running)
        ]

    @property
    def shielded(self) -> bool:
        return (
            bool(self._queue)
            and self.now_s >= self._queue[0].arrival_s + self.max_wait_s
            and self.idle_worker() is not None
        )

    def busy_time_s(self) -> float:
        now = self.now_s
        return self._busy_done_s + sum(now - b.dispatch_s for b in self.running if b is not None)

    def service_s(self, model: int, batch_size: int) -> float:
        return self._service_s[model][batch_size]

    def observe(self) -> tuple[float, int, float, float, int, float]:
        return (
            self.now_s,
            self.queue_len,
            self.oldest_wait_s,
            self.mean_wait_s,
            self.n_arrived,
            self.busy_time_s(),
        )

    # ------------------------------------------------------------------ changes (engine only)
    def idle_worker(self) -> int | None:
        """The lowest-numbered idle worker, or None."""
        for w, batch in enumerate(self.running):
            if batch is None:
                return w
        return None

    @property
    def n_running(self) -> int:
        return sum(1 for b in self.running if b is not None)

    def admit(self, request: _Request) -> None:
        self._queue.append(request)
        self._sum_arrivals_s += request.arrival_s
        self.n_admitted += 1

    def take(self, count: int) -> list[_Request]:
        """Remove and return the ``count`` oldest waiting requests."""
        taken = [self._queue.popleft() for _ in range(count)]
        if self._queue:
            self._sum_arrivals_s -= sum(r.arrival_s for r in taken)
        else:
            self._sum_arrivals_s = 0.0
        return taken

    def start(self, batch: _Batch) -> None:
        self.running[batch.worker] = batch
        self.last_model = batch.model
        self.last_dispatch_s = batch.dispatch_s
        self.n_served += len(batch.requests)
        self.n_batches += 1
        self.served_per_model[batch.model] += len(batch.requests)

    def finish(self, batch: _Batch, completion_s: float) -> None:
        self.running[batch.worker] = None
        self._idle_since_s[batch.worker] = completion_s
        self._busy_done_s += completion_s - batch.dispatch_s


class BatchingEngine:
    """The queue, the scheduler and the workers of a real server, on the running event loop.

    :param config: the system served (queue capacity, max wait, max batch, workers, table).
    :param scheduler: any batchenv scheduler (a callable of the state returning a decision,
        with an optional ``reset(state)``).
    :param runner: runs one batch (in a worker thread); :meth:`serving.models.ModelWorker.run_batch`.
    :param clock: monotonic clock (s); :func:`time.monotonic`.
    :param executor_factory: makes worker ``w``'s executor (default: a single-thread
        :class:`~concurrent.futures.ThreadPoolExecutor`); a test on virtual time passes one that
        completes each batch after its table time on the event loop's clock.
    """

    def __init__(
        self,
        config: SystemConfig,
        scheduler: Callable[[Any], Any],
        runner: BatchRunner,
        *,
        clock: Callable[[], float] = time.monotonic,
        executor_factory: Callable[[int], Executor] | None = None,
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.runner = runner
        self.clock = clock
        self._executor_factory = executor_factory or _worker_thread
        self.state = ServerState(config)
        self.origin_s = clock()
        self.episode = 0
        self.accepting = False
        self.n_answered = 0
        self.n_failed = 0
        self.n_refused = 0
        self.n_scheduler_errors = 0
        self._executors: list[Executor] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending_epoch: asyncio.Handle | None = None  # the epoch after this turn's arrivals
        self._idle = asyncio.Event()
        self._dispatching = True
        self._next_seq = 0
        self._next_batch = 0
        self._reset_due = True

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Create the worker threads and start the first episode (call on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._executors = [self._executor_factory(w) for w in range(self.config.n_workers)]
        self.begin_episode()
        self.accepting = True

    def begin_episode(self, start_in_s: float = 0.0) -> float:
        """Start a new episode: empty counters and the clock's origin ``start_in_s`` s from now.
        The scheduler's ``reset`` is called at the episode's first decision epoch, where
        :func:`batchenv.sim.simulate` calls it (the simulator sits at its first epoch then), so a
        scheduler that starts an estimate from the state (proposed's rate) starts it from the
        same time and count on both. Needs an empty queue and idle workers
        (:class:`EngineBusyError`).

        :returns: the episode's origin on :func:`time.monotonic` (s).
        """
        state = self.state
        if state.queue_len or state.n_running:
            raise EngineBusyError(
                f"a new episode needs an idle server ({state.queue_len} waiting, "
                f"{state.n_running} batches running)"
            )
        if not 0.0 <= start_in_s <= MAX_START_IN_S:
            raise ValueError(f"start_in_s must be in [0, {MAX_START_IN_S:g}] s, got {start_in_s!r}")
        self._cancel_timer()
        self._cancel_pending_epoch()
        state.reset()
        self.origin_s = self.clock() + start_in_s
        self.episode += 1
        self._next_seq = 0
        self.n_answered = self.n_failed = self.n_refused = self.n_scheduler_errors = 0
        self._reset_due = True  # the scheduler's reset, at the episode's first decision epoch
        self._idle.set()
        return self.origin_s

    def now_s(self) -> float:
        """The episode's clock (s)."""
        return self.clock() - self.origin_s

    async def shutdown(self, drain_timeout_s: float = 10.0, batch_timeout_s: float = 30.0) -> None:
        """Stop admitting, serve what waits (the scheduler still decides; ``max_wait_ms`` bounds
        its waits) for up to ``drain_timeout_s``, refuse what is left, wait up to
        ``batch_timeout_s`` for running batches, then stop the worker threads. Every admitted
        request has been answered or refused when this returns."""
        self.accepting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=max(drain_timeout_s, 0.0))
        self._dispatching = False
        self._cancel_timer()
        self._cancel_pending_epoch()
        refused = self.state.take(self.state.queue_len)
        for request in refused:
            self._answer(request, exception=NotAcceptingError("the server shut down before serving it"))
        self.n_refused += len(refused)
        if self.state.n_running:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=max(batch_timeout_s, 0.0))
            except TimeoutError:
                for batch in self.state.running:
                    for request in batch.requests if batch is not None else ():
                        self._answer(request, exception=NotAcceptingError("its batch did not finish in time"))
                        self.n_refused += 1
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ requests
    async def infer(self, text: str) -> dict[str, Any]:
        """Queue one request and wait for its answer (a dict: result, model, batch, timings).

        :raises QueueFullError: dropped (``queue_capacity`` requests wait).
        :raises NotAcceptingError: the server is shutting down.
        """
        if not self.accepting:
            raise NotAcceptingError("the server is shutting down")
        state = self.state
        now = self.now_s()
        if state.queue_len >= self.config.queue_capacity:
            state.n_dropped += 1
            raise QueueFullError(now, self.config.queue_capacity)
        future = self._loop.create_future()
        state.admit(_Request(self._next_seq, text, now, future))
        self._next_seq += 1
        self._idle.clear()
        if state.idle_worker() is not None and self._pending_epoch is None:
            # one epoch for every request of this turn of the loop (simultaneous arrivals)
            self._pending_epoch = self._loop.call_soon(self._on_pending_epoch)
        # shield: a client that hangs up cancels its handler, not the request's answer
        return await asyncio.shield(future)

    def _answer(
        self, request: _Request, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        """Resolve a request's future once; later attempts are ignored."""
        future = request.future
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
            future.exception()  # retrieved here: a client that hung up leaves no warning
        else:
            future.set_result(result)
            self.n_answered += 1

    # ------------------------------------------------------------------ decision epochs
    def _epoch(self, wake_s: float | None = None) -> None:
        """Ask the scheduler while a worker is idle and a request waits (see the module docstring).

        :param wake_s: the time a timer was set for; the epoch's clock is not earlier than it
            (the event loop may fire a timer a clock tick early).
        """
        self._cancel_timer()
        self._cancel_pending_epoch()  # this epoch sees every request admitted so far
        state = self.state
        max_batch = self.config.max_batch_size
        while self._dispatching and state.queue_len and state.idle_worker() is not None:
            now = self.now_s()
            state.now_s = now if wake_s is None or now >= wake_s else wake_s
            wake_s = None
            state.n_epochs += 1
            if self._reset_due:
                self._reset_scheduler()
            try:
                decision = self.scheduler(state)
            except Exception:
                log.exception("the scheduler failed; dispatching a full batch on the last model")
                self.n_scheduler_errors += 1
                decision = (state.last_model, max_batch)
            # the simulator's test (Simulator.step): only a Python float is a timed wait
            if decision is None or decision.__class__ is float:
                if not state.shielded:
                    self._wait(decision)
                    return
                state.n_forced += 1
                self._dispatch(state.last_model, max_batch, forced=True)
                continue
            try:
                if isinstance(decision, float):  # a float subclass, e.g. numpy.float64
                    raise TypeError(
                        f"a timed wait must be a Python float, got {type(decision).__name__} "
                        "(the simulator rejects it too); convert it with float()"
                    )
                model, size = decision
                self._dispatch(int(model), int(size), forced=False)
            except (TypeError, ValueError, OverflowError) as exc:  # int(math.inf): OverflowError
                log.error(
                    "invalid decision %r (%s); dispatching a full batch on the last model", decision, exc
                )
                self.n_scheduler_errors += 1
                self._dispatch(state.last_model, max_batch, forced=False)

    def _reset_scheduler(self) -> None:
        """The scheduler's ``reset(state)``, once per episode (a failure is logged and counted)."""
        self._reset_due = False
        reset = getattr(self.scheduler, "reset", None)
        if not callable(reset):
            return
        try:
            reset(self.state)
        except Exception:
            log.exception("the scheduler's reset failed")
            self.n_scheduler_errors += 1

    def _wait(self, timer_s: float | None) -> None:
        """Arm the wake-up of a wait: when the oldest request has waited ``max_wait_ms`` or the
        shorter ``timer_s`` (ignored if already expired), as in :meth:`Simulator.wait`."""
        state = self.state
        oldest = state.oldest_arrival_s
        wake = state.max_wait_s
        if timer_s is not None and timer_s < wake and state.now_s < oldest + timer_s:
            wake = timer_s
        wake_s = oldest + wake
        self._timer = self._loop.call_later(max(wake_s - self.now_s(), 0.0), self._on_timer, wake_s)

    def _on_timer(self, wake_s: float) -> None:
        self._timer = None
        self._epoch(wake_s)

    def _on_pending_epoch(self) -> None:
        self._pending_epoch = None
        self._epoch()

    def _cancel_pending_epoch(self) -> None:
        if self._pending_epoch is not None:
            self._pending_epoch.cancel()
            self._pending_epoch = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _dispatch(self, model: int, batch_size: int, *, forced: bool) -> None:
        state = self.state
        if not 0 <= model < self.config.n_models:
            raise ValueError(f"model must be in [0, {self.config.n_models - 1}], got {model}")
        size = min(batch_size, state.queue_len, self.config.max_batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        worker = state.idle_worker()
        assert worker is not None
        now = state.now_s
        batch = _Batch(
            self._next_batch, worker, model, now, now + state.service_s(model, size), forced, state.take(size)
        )
        self._next_batch += 1
        state.start(batch)
        texts = [r.text for r in batch.requests]
        future = self._loop.run_in_executor(self._executors[worker], self.runner, model, texts)
        future.add_done_callback(functools.partial(self._on_batch_done, batch))

    def _on_batch_done(self, batch: _Batch, future: asyncio.Future) -> None:
        completion = self.now_s()
        try:
            result: BatchResult = future.result()
        except BaseException as exc:  # every request of the batch gets the error
            log.error("batch %d failed: %r", batch.batch_id, exc)
            for request in batch.requests:
                self._answer(request, exception=RuntimeError(f"batch failed: {exc!r}"))
            self.n_failed += len(batch.requests)
        else:
            for request, answer in zip(batch.requests, result.answers, strict=True):
                self._answer(request, result=self._answer_body(request, answer, batch, result, completion))
        self.state.finish(batch, completion)
        try:
            if self.state.queue_len and self._dispatching:
                self._epoch()
        finally:  # shutdown waits on this even if the epoch raised
            if not self.state.queue_len and not self.state.n_running:
                self._idle.set()

    def _answer_body(
        self,
        request: _Request,
        answer: dict[str, Any],
        batch: _Batch,
        result: BatchResult,
        completion_s: float,
    ) -> dict[str, Any]:
        service = completion_s - batch.dispatch_s
        return {
            "seq": request.seq,
            "episode": self.episode,
            "result": answer,
            "model": self.config.model_names[batch.model],
            "batch": {
                "id": batch.batch_id,
                "size": len(batch.requests),
                "model_index": batch.model,
                "worker": batch.worker,
                "forced": batch.forced,
                "dispatch_s": batch.dispatch_s,
                "completion_s": completion_s,
            },
            "arrival_s": request.arrival_s,
            "timings_ms": {
                "queue": 1000.0 * (batch.dispatch_s - request.arrival_s),
                "pre": 1000.0 * result.pre_s,
                "comm": 1000.0 * result.comm_s,
                "inference": 1000.0 * result.inference_s,
                "post": 1000.0 * result.post_s,
                "service": 1000.0 * service,
                "latency": 1000.0 * (completion_s - request.arrival_s),
            },
        }

    # ------------------------------------------------------------------ reports
    def stats(self) -> dict[str, Any]:
        """Counters of the current episode (JSON-ready)."""
        state = self.state
        state_now = self.now_s()
        return {
            "episode": self.episode,
            "now_s": state_now,
            "accepting": self.accepting,
            "queue_len": state.queue_len,
            "batches_running": state.n_running,
            "n_arrived": state.n_arrived,
            "n_admitted": state.n_admitted,
            "n_dropped": state.n_dropped,
            "n_dispatched": state.n_served,
            "n_answered": self.n_answered,
            "n_failed": self.n_failed,
            "n_refused": self.n_refused,
            "n_batches": state.n_batches,
            "n_forced": state.n_forced,
            "n_epochs": state.n_epochs,
            "n_scheduler_errors": self.n_scheduler_errors,
            "dispatched_per_model": dict(zip(self.config.model_names, state.served_per_model, strict=True)),
        }
