"""A schedule for a whole arrival sequence: its batches, its cost, and whether the simulator can
play it.

A :class:`Schedule` lists FIFO batches (dispatch time, model, size, first request), the requests
it drops and, implicitly, the requests still waiting at the horizon (those in no batch and not
dropped). :func:`schedule_cost` prices it with the simulator's accounting, independently of the
dynamic programme that found it; :func:`schedule_violations` lists every rule of
:mod:`batchenv.sim` it breaks (an empty list: :mod:`agents.hindsight.replay` plays it exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from agents.hindsight.problem import HindsightProblem

__all__ = ["PlannedBatch", "Schedule", "request_costs", "schedule_cost", "schedule_violations"]


class PlannedBatch(NamedTuple):
    """One batch of a schedule: requests ``first_request .. first_request + size - 1`` (0-based
    indices into the arrival sequence) dispatched at ``dispatch_s`` (s) on model index ``model``."""

    dispatch_s: float
    model: int
    size: int
    first_request: int


@dataclass(frozen=True)
class Schedule:
    """Batches in dispatch order, the dropped requests, and the number of requests.

    Requests in no batch and not dropped are still waiting at the horizon. A schedule found by
    the relaxed programme may drop any request (a relaxation of the queue capacity); a
    realisable one drops none.
    """

    batches: tuple[PlannedBatch, ...]
    dropped: tuple[int, ...]
    n_requests: int

    @property
    def n_served(self) -> int:
        """Requests dispatched by the schedule."""
        return sum(batch.size for batch in self.batches)

    def assignment(self) -> np.ndarray:
        """Per request: the index of its batch, -1 if dropped, -2 if waiting at the horizon.
        Shape (n_requests,), int64."""
        owner = np.full(self.n_requests, -2, dtype=np.int64)
        for k, batch in enumerate(self.batches):
            owner[batch.first_request : batch.first_request + batch.size] = k
        owner[list(self.dropped)] = -1
        return owner

    def to_dict(self) -> dict:
        """Plain data (JSON-ready): dispatch times (s), model indices, sizes, first requests."""
        return {
            "n_requests": self.n_requests,
            "batches": [list(batch) for batch in self.batches],
            "dropped": list(self.dropped),
        }


def request_costs(problem: HindsightProblem, schedule: Schedule) -> np.ndarray:
    """Cost of every request under ``schedule`` in the simulator's accounting: best quality minus
    the request's score, i.e. ``best - quality(m) + w_lat * latency + w_slo * [missed SLO]`` if
    served (latency up to completion; a batch still running at the horizon counts in full),
    ``best + w_drop`` if dropped, ``best + w_lat * (horizon - arrival)`` if still waiting at the
    horizon. Shape (N,).

    :raises ValueError: if the schedule does not fit the problem (sizes, overlaps, indices).
    """
    n = problem.n_requests
    if schedule.n_requests != n:
        raise ValueError(f"schedule is for {schedule.n_requests} requests, the problem has {n}")
    arrivals = problem.arrivals_s
    best = problem.best_quality
    costs = problem.leftover_costs().copy()
    covered = np.zeros(n, dtype=np.int64)
    for batch in schedule.batches:
        lo, hi = batch.first_request, batch.first_request + batch.size
        if not (lo >= 0 and hi <= n and 1 <= batch.size <= problem.max_batch_size):
            raise ValueError(
                f"batch {batch} does not fit {n} requests and batch sizes 1..{problem.max_batch_size}"
            )
        if not 0 <= batch.model < problem.n_models:
            raise ValueError(f"batch {batch}: model index must be in [0, {problem.n_models - 1}]")
        completion = batch.dispatch_s + problem.service_s[batch.model, batch.size]
        members = arrivals[lo:hi]
        missed = members < completion - problem.slo_s
        costs[lo:hi] = (
            best
            - problem.quality[batch.model]
            + problem.w_latency_per_s * (completion - members)
            + problem.w_slo * missed
        )
        covered[lo:hi] += 1
    dropped = np.asarray(schedule.dropped, dtype=np.int64)
    if len(dropped):
        if dropped.min() < 0 or dropped.max() >= n:
            raise ValueError(f"dropped request indices must be in [0, {n - 1}]")
        covered[dropped] += 1
        costs[dropped] = problem.drop_cost
    if np.any(covered > 1):
        raise ValueError(f"request {int(np.argmax(covered > 1))} is in two batches (or dropped and served)")
    return costs


def schedule_cost(problem: HindsightProblem, schedule: Schedule) -> float:
    """Total cost of ``schedule`` (sum of :func:`request_costs`): arrived requests x best quality
    minus the episode's total reward in the simulator."""
    return float(np.sum(request_costs(problem, schedule)))


def schedule_violations(problem: HindsightProblem, schedule: Schedule) -> list[str]:
    """Every rule of the simulator that ``schedule`` breaks; empty if the simulator can play it
    exactly (then :func:`schedule_cost` is what the simulator charges).

    The rules: batches take the oldest waiting requests in order, from request 0 on, with no
    request dropped; a batch is dispatched when all its requests have arrived and a worker is
    free (it runs on the one free earliest, as any idle worker is alike), before the horizon, at
    a time no earlier than the previous batch; the timeout shield (no dispatch later than the
    moment the oldest waiting request has waited ``max_wait_ms`` while a worker is idle, also
    before the horizon for the requests left waiting); the queue
    capacity (request r dispatched before request r + capacity arrives, and requests left
    waiting at the horizon never fill the queue).
    Times are compared with the simulator's own float sums.
    """
    problems: list[str] = []
    arrivals = problem.arrivals_s
    n = problem.n_requests
    if schedule.n_requests != n:
        return [f"schedule is for {schedule.n_requests} requests, the problem has {n}"]
    if schedule.dropped:
        problems.append(f"drops {len(schedule.dropped)} requests (only the queue capacity drops)")
    shield = problem.shield_deadline_s()
    capacity = problem.capacity_deadline_s()
    free_at = [0.0] * problem.n_workers  # the workers' free times (s)
    next_request = 0
    previous = -np.inf
    for k, batch in enumerate(schedule.batches):
        where = f"batch {k} (requests {batch.first_request}..{batch.first_request + batch.size - 1})"
        if batch.first_request != next_request:
            problems.append(f"{where}: does not start at the oldest waiting request {next_request}")
            return problems
        last = batch.first_request + batch.size - 1
        if batch.size < 1 or last >= n or batch.size > problem.max_batch_size:
            problems.append(f"{where}: size must be in [1, {problem.max_batch_size}] within {n} requests")
            return problems
        d = batch.dispatch_s
        if d < arrivals[last]:
            problems.append(f"{where}: dispatched at {d!r} s before its last request arrives")
        worker = int(np.argmin(free_at))
        free = free_at[worker]
        if d < free:
            problems.append(f"{where}: dispatched at {d!r} s while every worker is busy")
        if d < previous:
            problems.append(f"{where}: dispatched before the previous batch")
        if d >= problem.horizon_s:
            problems.append(f"{where}: dispatched at or after the horizon")
        if d > max(free, shield[batch.first_request]):
            problems.append(f"{where}: a worker idles past the timeout shield (max_wait_ms)")
        if not d < capacity[batch.first_request]:
            problems.append(f"{where}: the queue reaches its capacity before the dispatch")
        free_at[worker] = d + problem.service_s[batch.model, batch.size]
        previous = d
        next_request = last + 1
    if next_request < n:
        if next_request + problem.queue_capacity < n:
            problems.append("the requests left waiting at the horizon fill the queue")
        if max(min(free_at), shield[next_request]) < problem.horizon_s:
            problems.append("the timeout shield dispatches a request left waiting before the horizon")
    return problems
