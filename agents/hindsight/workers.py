"""A schedule for several workers, found by a beam search over FIFO batches: the upper side of the
several-worker hindsight bound (the lower side is the relaxed programme of
:mod:`agents.hindsight.frontier`).

State ``i`` means the first ``i`` requests are dispatched. Its data: the sorted free times of the
W workers, each clamped to at least the last dispatch (an idle worker is as good as one that
frees then, since no later dispatch is earlier), and the cost so far. From a state the next batch
holds requests ``i .. k - 1`` (``1 <= k - i <= B``) on model m, dispatched as early as the
simulator allows, at ``d = max(earliest free worker, arrival of request k - 1)``, on that worker.
So the dispatch times never decrease, every dispatch is a simulator event (a worker becoming free
or an arrival), and :class:`agents.hindsight.replay.ScheduleReplay` plays the schedule exactly.

The simulator's rules are kept: the timeout shield (an idle worker dispatches by ``max(earliest
free, arrival of the batch's first request + max_wait)``), the queue capacity (request r before
request r + capacity arrives), no drops, dispatches before the horizon, and the requests left
waiting at the horizon neither trigger the shield nor fill the queue.

Pruning keeps, per request index, at most ``beam`` states: those on the Pareto front of (sum of
the free times, cost), thinned evenly along it. A state dominated on the whole free-time vector
and the cost is dominated on that pair too, but not conversely: the projection on the pair may
drop a state the exact front (over the whole vector) would keep, and the cap drops more. Both make
this a heuristic. Its cost is therefore an upper bound on the least cost (any schedule the
simulator plays is one), not a proven optimum. With ``projection="all"`` it keeps the union of
W + 1 such fronts, on the sum and on each sorted free time (the earliest, the second, ...), each
thinned to ``beam``: up to W + 1 times the states and the time, for a measure of how much the
projection costs (docs/hindsight.md).

Work per request index: ``B x beam x M`` candidates (the sources of the previous ``B`` indices
times the models), one sort of their free-time rows (W each) and one of the pairs. Memory: every
kept state for the way back, ``beam x (W + 4)`` numbers per request.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from agents.hindsight.frontier import BatchTables, FrontierResult, FrontierStats, suffix_sums
from agents.hindsight.problem import HindsightProblem
from agents.hindsight.schedule import PlannedBatch, Schedule

__all__ = ["DEFAULT_BEAM", "PROJECTIONS", "check_beam", "check_projection", "solve_workers"]

PROJECTIONS = ("sum", "all")
"""The fronts the search keeps per index: on (sum of the free times, cost), or the union of that
one and those on (each sorted free time, cost)."""

DEFAULT_BEAM = 256
"""States kept per request index (docs/results/hindsight_workers.md records the mean front it
leaves at 400 and 800 requests/s; tests/test_hindsight.py checks that a wider beam costs no more)."""


def _thin(c_by_g: np.ndarray, beam: int) -> np.ndarray:
    """Positions (into states sorted by (g, c)) of the Pareto front of (g, c), at most ``beam``
    of them, spread evenly along the front and always with its cheapest state."""
    keep = np.empty(len(c_by_g), dtype=bool)
    keep[0] = True
    keep[1:] = c_by_g[1:] < np.minimum.accumulate(c_by_g)[:-1]
    front = np.flatnonzero(keep)
    if len(front) <= beam:
        return front
    picks = np.unique(np.linspace(0, len(front) - 1, beam).round().astype(np.int64))
    return front[picks]  # the last of the front is its cheapest state


def _select(free: np.ndarray, cost: np.ndarray, beam: int, projection: str) -> np.ndarray:
    """Positions of the states to keep among candidates of free times ``free`` (K, W) and costs
    ``cost`` (K,): the thinned front of (sum of the free times, cost), and with ``"all"`` also
    those of (each free time, cost)."""
    keys = [free.sum(axis=1)]
    if projection == "all":
        keys += list(free.T)
    kept = []
    for key in keys:
        order = np.lexsort((cost, key))
        kept.append(order[_thin(cost[order], beam)])
    return kept[0] if len(kept) == 1 else np.unique(np.concatenate(kept))


class _Front(NamedTuple):
    """The kept states of one request index (K of them).

    :ivar free: sorted free times of the workers (s), shape (K, W).
    :ivar cost: cost of the dispatched requests, shape (K,).
    :ivar parent: the state the last batch left from, ``(index << 32) | position``, shape (K,).
    :ivar model: the last batch's model, shape (K,), int8.
    :ivar dispatch: the last batch's dispatch time (s), shape (K,).
    """

    free: np.ndarray
    cost: np.ndarray
    parent: np.ndarray
    model: np.ndarray
    dispatch: np.ndarray

    @classmethod
    def of(cls, n_workers: int, n_states: int) -> _Front:
        """``n_states`` start states (all workers free at 0, no cost): 1 for the start of the
        episode, 0 where the simulator's rules let no batch end at this index."""
        none = np.full(n_states, -1, np.int64)
        return cls(
            np.zeros((n_states, n_workers)),
            np.zeros(n_states),
            none,
            none.astype(np.int8),
            np.zeros(n_states),
        )


class _Beam:
    """One run of the beam search (module docstring); :meth:`run` returns the result."""

    def __init__(self, problem: HindsightProblem, beam: int, projection: str) -> None:
        self.p = p = problem
        self.beam = beam
        self.projection = projection
        self.n = n = p.n_requests
        self.w = p.n_workers
        self.max_b = p.max_batch_size
        self.tables = BatchTables.of(p)
        self.tail = suffix_sums(p.leftover_costs())  # tail[k]: requests k.. wait at the horizon
        self.shield = np.append(p.shield_deadline_s(), np.inf)
        self.capacity = p.capacity_deadline_s()
        self.room = np.arange(n + 1) + p.queue_capacity >= n  # may requests k.. wait at H?
        self.fronts: list[_Front] = []  # per request index, its kept states
        self.best = (np.inf, 0, -1)  # (total cost, index, position) of the best ending
        self.n_candidates = 0

    def _end_at(self, k: int) -> None:
        """Consider ending the episode at the states of index k: requests k.. wait at H."""
        front = self.fronts[k]
        if not self.room[k] or not len(front.cost):
            return
        # else the shield dispatches request k before H once a worker is idle (shield[n] = inf)
        ok = np.maximum(front.free[:, 0], self.shield[k]) >= self.p.horizon_s
        total = np.where(ok, front.cost + self.tail[k], np.inf)
        j = int(np.argmin(total))
        if total[j] < self.best[0]:
            self.best = (float(total[j]), k, j)

    def _step(self, k: int) -> None:
        """Build the states of index k from those of the ``B`` indices before it."""
        p, t = self.p, self.tables
        ak = t.arr[k]
        lo = max(0, k - self.max_b)
        rows = [i for i in range(lo, k) if len(self.fronts[i].cost)]
        if not rows:  # no way to dispatch request k - 1 (the rules exclude every batch)
            self._store(k, _Front.of(self.w, 0))
            return
        free = np.concatenate([self.fronts[i].free for i in rows])  # (S, W)
        cost = np.concatenate([self.fronts[i].cost for i in rows])
        first = np.repeat(rows, [len(self.fronts[i].cost) for i in rows])
        ids = np.concatenate([(i << 32) + np.arange(len(self.fronts[i].cost)) for i in rows])
        d = np.maximum(free[:, 0], ak)
        shield_ok = d <= np.maximum(free[:, 0], self.shield[first])
        ok = (d < p.horizon_s) & shield_ok & (d < self.capacity[first])
        free, cost, first, ids, d = free[ok], cost[ok], first[ok], ids[ok], d[ok]
        b = k - first
        service = t.service_by_size[b]  # (S, M)
        total = t.costs(p, cost, first, k, d)
        src, model = np.nonzero(t.allowed[b])
        self.n_candidates += len(src)
        if not len(src):
            self._store(k, _Front.of(self.w, 0))
            return
        new = np.empty((len(src), self.w))
        new[:, 0] = d[src] + service[src, model]
        new[:, 1:] = np.maximum(free[src, 1:], d[src, None])
        new.sort(axis=1)
        c = total[src, model]
        keep = _select(new, c, self.beam, self.projection)
        front = _Front(new[keep], c[keep], ids[src[keep]], model[keep].astype(np.int8), d[src[keep]])
        self._store(k, front)

    def _store(self, k: int, front: _Front) -> None:
        """Keep the front of index k (the k-th) and see whether the episode may end there."""
        self.fronts.append(front)
        self._end_at(k)

    def run(self) -> FrontierResult:
        start = time.perf_counter()
        self._store(0, _Front.of(self.w, 1))
        for k in range(1, self.n + 1):
            self._step(k)
        sizes = [len(front.cost) for front in self.fronts]
        stats = FrontierStats.of_fronts(sizes, self.n_candidates, start)
        total, k, j = self.best
        if not np.isfinite(total):
            return FrontierResult(np.inf, None, stats)
        batches: list[PlannedBatch] = []
        while k > 0:
            front = self.fronts[k]
            parent = int(front.parent[j])
            i, pj = parent >> 32, parent & 0xFFFFFFFF
            batches.append(PlannedBatch(float(front.dispatch[j]), int(front.model[j]), k - i, i))
            k, j = i, pj
        return FrontierResult(total, Schedule(tuple(reversed(batches)), (), self.n), stats)


def solve_workers(
    problem: HindsightProblem, beam: int = DEFAULT_BEAM, projection: str = "sum"
) -> FrontierResult:
    """A schedule of ``problem`` (any number of workers) that the simulator plays, and its cost,
    by the beam search of the module docstring.

    :param beam: states kept per request index (>= 1), per front.
    :param projection: ``"sum"`` (the front on the sum of the free times) or ``"all"`` (with
        those on each free time too; :data:`PROJECTIONS`).
    :raises ValueError: a bad ``beam`` or ``projection``.
    """
    check_beam(beam)
    check_projection(projection)
    return _Beam(problem, beam, projection).run()


def check_projection(projection: str) -> None:
    """:raises ValueError: ``projection`` is not one of :data:`PROJECTIONS`."""
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")


def check_beam(beam: int) -> None:
    """:raises ValueError: ``beam`` is not an integer >= 1 (states per request index)."""
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be an integer >= 1, got {beam!r}")
