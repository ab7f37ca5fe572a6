"""The dynamic programme over FIFO batches on one worker: per request index, the Pareto front of
(worker-free time, cost so far).

State ``i`` means the first ``i`` requests are settled (dispatched or dropped). Its data: ``f``,
the time the worker becomes free, clamped to at least the arrival of request ``i`` (0-based, the
next one: no later dispatch can happen earlier), and ``c``, the cost of the settled requests.
From a state the next batch holds requests ``i .. k - 1`` (``1 <= k - i <= B``) on model m,
dispatched as early as possible, at ``d = max(f, arrival of request k - 1)``; the worker is then
free at ``d + service(m, k - i)``. A state whose worker is busy until the horizon can only end
the episode.

Why the earliest dispatch: fix the batches (their requests and models) and their order. Every
cost term grows with the dispatch times (each member's latency, and an SLO miss only gets more
likely as the completion moves later), while the constraints are lower limits (``d_j >= free
time``, ``d_j >= arrival of the last member``) and the horizon, a fixed upper limit. By
induction ``d*_j = max(d*_{j-1} + service_{j-1}, last arrival)`` is at most any feasible
``d_j``: the earliest schedule is feasible and costs no more. (The timeout shield is an upper
limit that moves with the previous batch; it is the one rule that breaks this argument, which is
why the relaxed programme drops it; see below.)

Two programmes share this engine (:mod:`agents.hindsight.bound` explains what each proves):

``relaxed`` (a lower bound)
    No timeout shield and no queue capacity; any request may be dropped, at ``best quality +
    w_drop``; at the end each request left over costs the cheaper of waiting until the horizon
    and being dropped. (A drop allowed only with the backlog a full queue implies would depend on
    the dispatch times, and so break the earliest-dispatch argument above: a later dispatch
    raises the backlog.) The dominance ``f1 <= f2, c1 <= c2`` is exact: from ``f1`` every
    continuation of ``f2`` can be played with the same dispatch times, at the same cost.
``realisable`` (schedules the simulator plays)
    The shield (an idle worker dispatches by ``max(f, arrival of the batch's first request +
    max_wait)``), the queue capacity (request r before request r + capacity arrives), no drops,
    and the requests left at the horizon must not trigger the shield or fill the queue. Each
    batch leaves at the earliest time or at the latest one the shield allows. The dominance is
    then a heuristic (the shield can reward a later dispatch): the optimum of this programme is
    a schedule found, not a proven optimum.

Several workers (``relaxed`` only): ``f`` is the free time of one virtual worker, less the
credit ``HindsightProblem.credit_s``, and a batch of service s advances it by s / W from
``max(f, d - credit)``, rounded down to :data:`GRID_S` (never up, :func:`floor_to_grid`;
docs/hindsight.md, "Several workers", proves that every schedule of the W workers is one of
this relaxation).

Work per request index: the source states (fronts of the previous ``B`` indices; per front only
the states still busy at the batch's last arrival and one more, the cheapest of the others, all
of which dispatch at that arrival) times the ``M`` models (less the (b, m) that another model
beats outright), then an O(K) bucket pass and one sort of what it cannot rule out. Memory: every
front state is kept for the way back, 34 bytes each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from agents.hindsight.problem import HindsightProblem, useful_models
from agents.hindsight.schedule import PlannedBatch, Schedule

__all__ = [
    "MODES",
    "BatchTables",
    "FrontierResult",
    "FrontierStats",
    "floor_to_grid",
    "segmented_front",
    "solve_frontier",
    "suffix_sums",
    "useful_models",
]

MODES = ("relaxed", "realisable")

GRID_S = 1e-4
"""Several workers: the virtual worker's free time is rounded down to this grid (s; never up,
:func:`floor_to_grid`). An earlier free time only loosens the constraints, so the programme
stays a relaxation (a lower bound), and the fronts hold at most a few hundred states."""
_PREFILTER_FROM = 256  # candidates from which the O(K) bucket pass runs before the sort
_SKIP = -1  # model code of a drop
_ROOT = -2  # model code of the start state


@dataclass(frozen=True)
class FrontierStats:
    """Size and time of one run of the programme.

    :ivar n_states: front states kept in total (over all request indices).
    :ivar max_front: largest front (states at one request index).
    :ivar mean_front: mean front size.
    :ivar n_candidates: candidate states generated (before pruning).
    :ivar elapsed_s: wall time (s).
    """

    n_states: int
    max_front: int
    mean_front: float
    n_candidates: int
    elapsed_s: float

    @classmethod
    def of_fronts(cls, sizes: list[int], n_candidates: int, start: float) -> FrontierStats:
        """The stats of a run that kept ``sizes[k]`` states at index k and began at ``start``
        (a ``time.perf_counter()`` reading)."""
        array = np.asarray(sizes)
        return cls(
            n_states=int(array.sum()),
            max_front=int(array.max()),
            mean_front=float(array.mean()),
            n_candidates=n_candidates,
            elapsed_s=time.perf_counter() - start,
        )


@dataclass(frozen=True)
class FrontierResult:
    """The best terminal state of the programme and the way to it.

    :ivar cost: least total cost found (inf if no schedule obeys the rules: ``realisable`` mode
        when the queue capacity cannot be kept).
    :ivar schedule: its schedule (None when ``cost`` is inf).
    :ivar stats: sizes and time.
    """

    cost: float
    schedule: Schedule | None
    stats: FrontierStats


class _Store:
    """Growable flat arrays of front states (the fronts of consecutive indices are contiguous)."""

    _FIELDS = ("f", "c", "index", "parent", "model", "last")

    def __init__(self, capacity: int) -> None:
        self.f = np.empty(capacity)
        self.c = np.empty(capacity)
        self.index = np.empty(capacity, dtype=np.int64)
        self.parent = np.empty(capacity, dtype=np.int64)
        self.model = np.empty(capacity, dtype=np.int8)
        self.last = np.empty(capacity, dtype=bool)  # last (cheapest) state of its front

    def ensure(self, size: int) -> None:
        if size <= len(self.f):
            return
        capacity = max(size, 2 * len(self.f))
        for name in self._FIELDS:
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


class BatchTables(NamedTuple):
    """The tables both schedule programmes price a batch with (this one and
    :mod:`agents.hindsight.workers`). A batch of requests ``i .. k - 1`` (size b) on model m
    dispatched at d costs ``size_weight[b] * d - (w_prefix[k] - w_prefix[i]) + batch_cost[b, m]``
    plus its SLO penalties: its requests' latency up to d, then ``b (best - quality(m)) +
    w b service(m, b)``.

    :ivar arr: 1-based arrivals (s), shape (N + 1,): ``arr[k]`` is the arrival of request k - 1.
    :ivar w_prefix: ``w_latency_per_s`` x the sum of the first k arrivals, shape (N + 1,).
    :ivar service_by_size: service time (s), shape (B + 1, M).
    :ivar batch_cost: the dispatch-time-free part of a batch's cost, shape (B + 1, M).
    :ivar size_weight: ``w_latency_per_s * b``, shape (B + 1,).
    :ivar allowed: the (b, m) that no other model beats outright (:func:`useful_models`).
    """

    arr: np.ndarray
    w_prefix: np.ndarray
    service_by_size: np.ndarray
    batch_cost: np.ndarray
    size_weight: np.ndarray
    allowed: np.ndarray

    @classmethod
    def of(cls, p: HindsightProblem) -> BatchTables:
        """The tables of ``p``."""
        n, w = p.n_requests, p.w_latency_per_s
        arr = np.empty(n + 1)
        arr[0] = 0.0
        arr[1:] = p.arrivals_s
        w_prefix = np.zeros(n + 1)
        w_prefix[1:] = w * np.cumsum(p.arrivals_s)
        service_by_size = p.service_by_size()
        sizes = np.arange(service_by_size.shape[0])
        batch_cost = p.batch_costs()
        allowed = useful_models(service_by_size, batch_cost)
        return cls(arr, w_prefix, service_by_size, batch_cost, w * sizes.astype(float), allowed)

    def costs(
        self, p: HindsightProblem, cost: np.ndarray, first: np.ndarray, k: int, dispatch: np.ndarray
    ) -> np.ndarray:
        """The cost after a batch of requests ``first .. k - 1`` dispatched at ``dispatch`` (s),
        on each model, from states of cost ``cost``: shape (S, M) for inputs of shape (S,)."""
        b = k - first
        waited = cost + self.w_prefix[first] - self.w_prefix[k] + self.size_weight[b] * dispatch
        total = waited[:, None] + self.batch_cost[b]
        if p.w_slo:
            completion = dispatch[:, None] + self.service_by_size[b]
            before = np.searchsorted(p.arrivals_s, completion - p.slo_s, side="left")
            total += p.w_slo * np.clip(before - first[:, None], 0, b[:, None])
        return total


def floor_to_grid(values: np.ndarray, grid_s: float) -> np.ndarray:
    """``values`` rounded down to multiples of ``grid_s``, never above ``values``: in floating
    point ``floor(x / g) * g`` can exceed ``x`` by an ulp (0.018 on a 1 ms grid gives
    0.018000000000000002), which would make a relaxation's free time later than a real one (and,
    with an SLO penalty, count a miss at a latency exactly at the SLO); such values stay at x."""
    return np.minimum(np.floor(values / grid_s) * grid_s, values)


def suffix_sums(values: np.ndarray) -> np.ndarray:
    """``out[i] = sum(values[i:])``, shape (len + 1,)."""
    out = np.zeros(len(values) + 1)
    out[:-1] = np.cumsum(values[::-1])[::-1]
    return out


def _not_surely_dominated(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """A cheap first pass of the Pareto pruning, O(K): bucket the states by f; a state is
    dominated if a state of a lower bucket (hence a strictly smaller f) costs no more. Returns
    the mask of the states this pass cannot rule out (a superset of the front)."""
    low = f.min()
    span = f.max() - low
    if not span > 0:
        return np.ones(len(f), dtype=bool)
    n_buckets = len(f)
    bucket = ((f - low) * (n_buckets / span)).astype(np.int64)
    np.minimum(bucket, n_buckets - 1, out=bucket)
    cheapest = np.full(n_buckets + 1, np.inf)
    np.minimum.at(cheapest[1:], bucket, c)
    np.minimum.accumulate(cheapest, out=cheapest)  # cheapest[g] = min cost over buckets < g
    return c < cheapest[bucket]


def segmented_front(c_sorted: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Pareto pruning of states sorted by (segment, f, c): keep a state if it costs less than
    every earlier state of its segment (``starts`` marks each segment's first state)."""
    keep = np.empty(len(c_sorted), dtype=bool)
    first = np.flatnonzero(starts)
    for lo, hi in zip(first, np.r_[first[1:], len(c_sorted)], strict=True):
        part = c_sorted[lo:hi]
        keep[lo] = True
        keep[lo + 1 : hi] = part[1:] < np.minimum.accumulate(part)[:-1]
    return keep


@dataclass
class _Candidates:
    """Candidate states of one request index, by id: an id below ``n_grid`` is the grid cell
    (source row, model) of a batch, from ``n_grid`` on a drop of ``drops[id - n_grid]``."""

    ids: np.ndarray
    f: np.ndarray
    c: np.ndarray

    def select(self, mask: np.ndarray) -> None:
        self.ids, self.f, self.c = self.ids[mask], self.f[mask], self.c[mask]

    def append(self, ids: np.ndarray, f: np.ndarray, c: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, ids])
        self.f = np.concatenate([self.f, f])
        self.c = np.concatenate([self.c, c])


class _Programme:
    """One run of the programme (see the module docstring); :meth:`run` returns the result."""

    def __init__(self, problem: HindsightProblem, relaxed: bool) -> None:
        self.problem = p = problem
        self.relaxed = relaxed
        a = p.arrivals_s
        n = self.n = p.n_requests
        self.horizon = p.horizon_s
        service = p.service_s
        self.n_models, self.max_b = service.shape[0], service.shape[1] - 1
        # 1-based arrivals: arr[k] = arrival of request k - 1 (BatchTables); clamp[k] = arrival
        # of the next request of front k (-inf at k = n: none).
        self.tables = BatchTables.of(p)
        self.arr, self.service_by_size, self.allowed = (
            self.tables.arr,
            self.tables.service_by_size,
            self.tables.allowed,
        )
        # several workers (relaxed only): f is the virtual worker's free time less the credit,
        # the earliest dispatch it allows (HindsightProblem.credit_s); 0 and 1 for one worker
        self.credit = p.credit_s
        self.n_workers = p.n_workers
        if p.n_workers > 1 and not relaxed:
            raise ValueError("the realisable programme covers one worker")
        self.clamp = np.append(a - self.credit, -np.inf)
        self.max_service = float(service.max())
        leftover = p.leftover_costs()
        if relaxed:
            self.tail = suffix_sums(np.minimum(leftover, p.drop_cost))
        else:
            self.tail = suffix_sums(leftover)
            self.shield = p.shield_deadline_s()
            self.capacity = p.capacity_deadline_s()
            # may the requests from index i on be left waiting (queue room, no shield before H)?
            room = np.arange(n) + p.queue_capacity >= n
            self.may_leave = np.append(room & (self.shield >= self.horizon), True)
        self.s = _Store(max(1024, 8 * n + 2))
        self.offsets = np.zeros(n + 2, dtype=np.int64)
        # best terminal: (total cost, state, extra step (parent, model, index) or None, first left)
        self.best: tuple[float, int, tuple[int, int, int] | None, int] = (np.inf, -1, None, n)
        self.n_candidates = 0
        self.largest_front = 1

    # ---------------------------------------------------------------- ends of the episode
    def _leave_at(self, state: int, k: int) -> None:
        """End the episode at a stored state: requests k.. wait at the horizon."""
        if self.relaxed or self.may_leave[k]:
            total = self.s.c[state] + self.tail[k]
            if total < self.best[0]:
                self.best = (total, state, None, k)

    def _room_at(self, k: int) -> bool:
        """May requests k.. wait at the horizon without filling the queue?"""
        return self.relaxed or k + self.problem.queue_capacity >= self.n

    # ---------------------------------------------------------------- one request index
    def _sources(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Source states of batches ending with request k - 1: (states, dispatch times, first
        requests, how many of them leave at the earliest time)."""
        s, ak = self.s, self.arr[k]
        lo = self.offsets[k - self.max_b if k > self.max_b else 0]
        hi = self.offsets[k]
        s.ensure(hi + 1)
        # Per group, only the states still busy at ak and the last one that is not (the cheapest
        # of those, which all dispatch at ak) can be best.
        src = lo + np.flatnonzero(s.last[lo:hi] | (s.f[lo + 1 : hi + 1] > ak - self.credit))
        f_src = s.f[src]
        first = s.index[src]
        dispatch = np.maximum(f_src, ak)
        if self.relaxed:
            return src, dispatch, first, len(src)
        latest = np.maximum(f_src, self.shield[first])  # an idle worker must dispatch by then
        ok = (ak <= latest) & (dispatch < self.capacity[first])
        # Also the latest dispatch the shield allows (it keeps the worker busy longer, which can
        # let the next batch grow); marked by model codes M..2M-1.
        late = ok & (latest > dispatch) & (latest < self.horizon) & (latest < self.capacity[first])
        return (
            np.concatenate([src[ok], src[late]]),
            np.concatenate([dispatch[ok], latest[late]]),
            np.concatenate([first[ok], first[late]]),
            int(np.count_nonzero(ok)),
        )

    def _batches(self, k: int, src: np.ndarray, dispatch: np.ndarray, first: np.ndarray) -> _Candidates:
        """The states after each batch (source, model) of requests first .. k - 1."""
        p = self.problem
        b = k - first
        service = self.service_by_size[b]  # (K, M)
        completion = dispatch[:, None] + service
        if self.n_workers == 1:
            free = completion
        else:  # the virtual worker: f' = max(f, d - credit) + service / W, rounded down
            free = np.maximum(self.s.f[src], dispatch - self.credit)[:, None] + service / self.n_workers
            free = floor_to_grid(free, GRID_S)
        cost = self.tables.costs(p, self.s.c[src], first, k, dispatch)
        ids = np.flatnonzero(self.allowed[b])
        return _Candidates(ids, free.ravel()[ids], cost.ravel()[ids])

    def _add_drops(self, k: int, cand: _Candidates, n_grid: int) -> np.ndarray:
        """Relaxed: append the drop of request k - 1 from every state of front k - 1; returns
        those states."""
        s = self.s
        prev = np.arange(self.offsets[k - 1], self.offsets[k])
        cand.append(n_grid + np.arange(len(prev)), s.f[prev], s.c[prev] + self.problem.drop_cost)
        return prev

    def _origin(
        self, ids: np.ndarray, src: np.ndarray, drops: np.ndarray | None, n_grid: int, n_early: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(parent states, model codes) of candidate ids."""
        m = self.n_models
        parents = np.empty(len(ids), dtype=np.int64)
        models = np.empty(len(ids), dtype=np.int8)
        on_grid = ids < n_grid
        row = ids[on_grid] // m
        parents[on_grid] = src[row]
        models[on_grid] = ids[on_grid] % m + m * (row >= n_early)
        if drops is not None:
            parents[~on_grid] = drops[ids[~on_grid] - n_grid]
            models[~on_grid] = _SKIP
        return parents, models

    def _prune(self, cand: _Candidates) -> np.ndarray:
        """Indices (into cand) of the front, sorted by f (cost falling)."""
        if len(cand.ids) > _PREFILTER_FROM:
            cand.select(_not_surely_dominated(cand.f, cand.c))
        order = np.lexsort((cand.c, cand.f))
        starts = np.zeros(len(order), dtype=bool)
        starts[0] = True
        return order[segmented_front(cand.c[order], starts)]

    def _store(self, k: int, cand: _Candidates, front: np.ndarray, parents, models) -> None:
        """Append front k to the store."""
        s = self.s
        hi = self.offsets[k]
        size = len(front)
        s.ensure(hi + size + 1)
        out = slice(hi, hi + size)
        s.f[out] = cand.f[front]
        s.c[out] = cand.c[front]
        s.index[out] = k
        s.parent[out] = parents
        s.model[out] = models
        s.last[out] = False
        s.last[hi + size - 1] = True
        self._leave_at(int(hi + size - 1), k)  # the cheapest state of the front
        self.offsets[k + 1] = hi + size
        self.largest_front = max(self.largest_front, size)

    def _step(self, k: int) -> None:
        """Build front k from the fronts before it."""
        src, dispatch, first, n_early = self._sources(k)
        cand = self._batches(k, src, dispatch, first)
        n_grid = len(src) * self.n_models
        drops = self._add_drops(k, cand, n_grid) if self.relaxed else None
        self.n_candidates += len(cand.ids)
        np.maximum(cand.f, self.clamp[k], out=cand.f)
        # a drop keeps a state busy until the horizon at any index, a batch only near the horizon
        if self.relaxed or (len(dispatch) and dispatch.max() + self.max_service >= self.horizon):
            done = cand.f >= self.horizon  # busy until the horizon: the episode ends
            if done.any():
                if self._room_at(k):
                    j = int(np.argmin(np.where(done, cand.c, np.inf)))
                    total = cand.c[j] + self.tail[k]
                    if total < self.best[0]:
                        parents, models = self._origin(cand.ids[j : j + 1], src, drops, n_grid, n_early)
                        self.best = (total, -1, (int(parents[0]), int(models[0]), k), k)
                cand.select(~done)
        if len(cand.ids) == 0:
            self.offsets[k + 1] = self.offsets[k]
            return
        front = self._prune(cand)
        parents, models = self._origin(cand.ids[front], src, drops, n_grid, n_early)
        self._store(k, cand, front, parents, models)

    def run(self) -> FrontierResult:
        start = time.perf_counter()
        s = self.s
        s.f[0] = max(-self.credit, self.clamp[0])
        s.c[0] = 0.0
        s.index[0] = 0
        s.parent[0] = -1
        s.model[0] = _ROOT
        s.last[0] = True
        self.offsets[1] = 1
        self._leave_at(0, 0)
        for k in range(1, self.n + 1):
            self._step(k)
        total_states = int(self.offsets[self.n + 1])
        stats = FrontierStats(
            n_states=total_states,
            max_front=self.largest_front,
            mean_front=total_states / (self.n + 1),
            n_candidates=self.n_candidates,
            elapsed_s=time.perf_counter() - start,
        )
        if not np.isfinite(self.best[0]):
            return FrontierResult(np.inf, None, stats)
        return FrontierResult(float(self.best[0]), self._way_back(), stats)

    def _way_back(self) -> Schedule:
        """The schedule of the best terminal state, by following parents back to the start."""
        p, s = self.problem, self.s
        _, state, extra, first_left = self.best
        steps: list[tuple[int, int, int]] = []  # (parent state, model code, index reached)
        if extra is not None:
            steps.append(extra)
            state = extra[0]
        while s.model[state] != _ROOT:
            steps.append((int(s.parent[state]), int(s.model[state]), int(s.index[state])))
            state = int(s.parent[state])
        batches: list[PlannedBatch] = []
        dropped: list[int] = []
        for parent, model, k in reversed(steps):
            i = int(s.index[parent])
            if model == _SKIP:
                dropped.append(k - 1)
            elif model >= p.n_models:  # dispatched at the latest time the shield allows
                dispatch = max(float(s.f[parent]), float(self.shield[i]))
                batches.append(PlannedBatch(dispatch, model - p.n_models, k - i, i))
            else:
                dispatch = max(float(s.f[parent]), float(self.arr[k]))
                batches.append(PlannedBatch(dispatch, model, k - i, i))
        if self.relaxed and first_left < self.n:
            tail = np.arange(first_left, self.n)
            cheaper = p.drop_cost < p.leftover_costs()[tail]
            dropped.extend(int(r) for r in tail[cheaper])
        return Schedule(tuple(batches), tuple(dropped), self.n)


def solve_frontier(problem: HindsightProblem, mode: str) -> FrontierResult:
    """Run the programme on ``problem`` (``realisable``: one worker).

    :param mode: ``"relaxed"`` (lower bound) or ``"realisable"`` (a schedule the simulator plays).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _Programme(problem, relaxed=mode == "relaxed").run()
