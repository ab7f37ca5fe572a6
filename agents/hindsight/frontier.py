"""The dynamic programme over FIFO batches: per request index, the Pareto front of
(worker-free time, cost so far).

State ``i`` means the first ``i`` requests are settled (dispatched or dropped); its data is ``f``,
the time the worker becomes free, clamped to at least the arrival of request ``i`` (0-based, the
next one; no later dispatch can happen earlier), and ``c``, the cost of the settled requests.
From a state, the next batch holds requests ``i .. k - 1`` (``1 <= k - i <= B``) on model m,
dispatched as early as possible, at ``d = max(f, arrival of request k - 1)``; the new state is
``(k, d + service(m, k - i))``. A state with ``f >= horizon`` can only end the episode.

Two programmes share this engine (:mod:`agents.hindsight.bound` explains what each proves):

``relaxed`` (a lower bound)
    No timeout shield; any request may be dropped at ``best quality + w_drop`` when the worker's
    backlog is at least :meth:`HindsightProblem.drop_backlog_s` (a drop implies it); at the end,
    each request left over costs the cheaper of waiting until the horizon and being dropped.
    Dominance ``f1 <= f2, c1 <= c2`` is exact here: from ``f1``, every continuation of ``f2`` can
    be played with the same dispatch times, at the same cost. States whose drop options differ
    are not compared (their *class*: how many future requests they may drop at once).
``realisable`` (schedules the simulator plays)
    The shield (a batch is dispatched by ``max(f, arrival of its first request + max_wait)``),
    the queue capacity (request r before request r + capacity arrives), no drops, and the
    requests left at the horizon must not trigger the shield or fill the queue. Earliest
    dispatch and the same dominance are then heuristics (the shield can reward a later
    dispatch), so its optimum is a schedule found, not a proven optimum.

Work per request index: the source states (fronts of the previous ``B`` indices, of which only
the states with ``f`` after the batch's last arrival and one more per front matter) times the
``M`` models; memory: all front states (for the way back), 40 bytes each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agents.hindsight.problem import HindsightProblem
from agents.hindsight.schedule import PlannedBatch, Schedule

__all__ = ["MODES", "FrontierResult", "FrontierStats", "solve_frontier"]

MODES = ("relaxed", "realisable")

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
    :ivar n_merged: states merged into an optimistic corner state (several workers only; 0
        means the programme is exact for its relaxation).
    :ivar elapsed_s: wall time (s).
    """

    n_states: int
    max_front: int
    mean_front: float
    n_candidates: int
    n_merged: int
    elapsed_s: float


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

    def __init__(self, capacity: int) -> None:
        self.f = np.empty(capacity)
        self.c = np.empty(capacity)
        self.index = np.empty(capacity, dtype=np.int64)
        self.parent = np.empty(capacity, dtype=np.int64)
        self.model = np.empty(capacity, dtype=np.int8)
        self.last = np.empty(capacity, dtype=bool)  # last state of its (index, class) group

    def ensure(self, size: int) -> None:
        if size <= len(self.f):
            return
        capacity = max(size, 2 * len(self.f))
        for name in ("f", "c", "index", "parent", "model", "last"):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """``out[i] = sum(values[i:])``, shape (len + 1,)."""
    out = np.zeros(len(values) + 1)
    out[:-1] = np.cumsum(values[::-1])[::-1]
    return out


def solve_frontier(problem: HindsightProblem, mode: str) -> FrontierResult:
    """Run the programme on one worker (``problem.n_workers`` is ignored here; see
    :mod:`agents.hindsight.workers` for several).

    :param mode: ``"relaxed"`` (lower bound) or ``"realisable"`` (a schedule the simulator plays).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    relaxed = mode == "relaxed"
    start = time.perf_counter()
    a = problem.arrivals_s
    n = problem.n_requests
    horizon = problem.horizon_s
    service = problem.service_s
    n_models, max_b = service.shape[0], service.shape[1] - 1
    w = problem.w_latency_per_s
    w_slo, slo = problem.w_slo, problem.slo_s
    best_q = problem.best_quality

    # 1-based arrivals with sentinels: arr[k] = arrival of request k - 1 (0-based); clamp[k] is
    # the clamp of front k (arrival of its next request; -inf at k = n: no next request).
    arr = np.empty(n + 2)
    arr[1 : n + 1] = a
    arr[0] = 0.0
    clamp = np.empty(n + 1)
    clamp[:n] = a
    clamp[n] = -np.inf
    w_prefix = np.zeros(n + 1)
    w_prefix[1:] = w * np.cumsum(a)
    service_by_size = np.ascontiguousarray(service.T)  # (B + 1, M)
    sizes = np.arange(max_b + 1)
    # Cost of a batch of b on model m dispatched at d, besides the waiting of its requests up to
    # d: b (best - quality(m)) + w b service(m, b) + w b d; the first two terms by (b, m):
    batch_cost = sizes[:, None] * (best_q - problem.quality)[None, :] + w * sizes[:, None] * service_by_size
    size_weight = w * sizes.astype(float)
    allowed = _useful_models(service_by_size, batch_cost)
    max_service = float(service.max())

    leftover = problem.leftover_costs()
    if relaxed:
        tail = _suffix_sums(np.minimum(leftover, problem.drop_cost))
        drop_backlog = problem.drop_backlog_s()
    else:
        tail = _suffix_sums(leftover)
        shield = problem.shield_deadline_s()
        capacity = problem.capacity_deadline_s()
        may_leave = np.zeros(n + 1, dtype=bool)  # may the requests from index i on be left waiting?
        may_leave[n] = True
        room = np.arange(n) + problem.queue_capacity >= n
        may_leave[:n] = room & (shield >= horizon)  # an idle worker before it would dispatch

    store = _Store(max(1024, 8 * n + 2))
    s = store
    s.f[0] = max(0.0, clamp[0])
    s.c[0] = 0.0
    s.index[0] = 0
    s.parent[0] = -1
    s.model[0] = _ROOT
    s.last[0] = True
    offsets = np.zeros(n + 2, dtype=np.int64)
    offsets[1] = 1

    # best terminal: (total cost, state, extra op (parent, model, index) or None, first leftover)
    best: tuple[float, int, tuple[int, int, int] | None, int] = (np.inf, -1, None, n)

    def room_at(k: int) -> bool:
        """May the requests from index k on wait at the horizon without filling the queue?"""
        return relaxed or k + problem.queue_capacity >= n

    def leave_at(state: int, k: int) -> None:
        """End the episode at a stored state (its worker is free before the horizon)."""
        nonlocal best
        if relaxed or may_leave[k]:
            total = s.c[state] + tail[k]
            if total < best[0]:
                best = (total, state, None, k)

    leave_at(0, 0)
    n_candidates = 0
    max_front = 1
    for k in range(1, n + 1):
        ak = arr[k]
        lo = offsets[k - max_b if k > max_b else 0]
        hi = offsets[k]
        s.ensure(hi + 1)
        # Per front, only states still busy at the batch's last arrival and the last one that is
        # not (the cheapest of those that all dispatch at ak) can be best.
        keep = s.last[lo:hi] | (s.f[lo + 1 : hi + 1] > ak)
        src = lo + np.flatnonzero(keep)
        f_src = s.f[src]
        i_src = s.index[src]
        dispatch = np.maximum(f_src, ak)
        if not relaxed:
            latest = np.maximum(f_src, shield[i_src])  # an idle worker must dispatch by then
            ok = (ak <= latest) & (dispatch < capacity[i_src])
            # Also the latest dispatch the shield allows (it keeps the worker busy longer, which
            # can let the next batch grow); marked by model codes M..2M-1.
            late = ok & (latest > dispatch) & (latest < horizon) & (latest < capacity[i_src])
            n_late = int(np.count_nonzero(late))
            src = np.concatenate([src[ok], src[late]])
            i_src = np.concatenate([i_src[ok], i_src[late]])
            dispatch = np.concatenate([dispatch[ok], latest[late]])
            n_early = len(src) - n_late
        b = k - i_src
        completion = dispatch[:, None] + service_by_size[b]  # (K, M)
        cost = (s.c[src] + w_prefix[i_src] - w_prefix[k] + size_weight[b] * dispatch)[:, None] + batch_cost[b]
        if w_slo:
            before = np.searchsorted(a, completion - slo, side="left")
            cost += w_slo * np.clip(before - i_src[:, None], 0, b[:, None])
        # Candidates by id: id < K * M is the grid cell (source, model), above it a drop.
        ids = np.flatnonzero(allowed[b])
        new_f = completion.ravel()[ids]
        new_c = cost.ravel()[ids]
        n_grid = completion.size
        drops = None
        if relaxed:
            prev = np.arange(offsets[k - 1], hi)
            prev = prev[s.f[prev] >= ak + drop_backlog]
            if len(prev):
                drops = prev
                ids = np.concatenate([ids, n_grid + np.arange(len(prev))])
                new_f = np.concatenate([new_f, s.f[prev]])
                new_c = np.concatenate([new_c, s.c[prev] + problem.drop_cost])
        n_candidates += len(ids)
        np.maximum(new_f, clamp[k], out=new_f)
        if (len(dispatch) and dispatch.max() + max_service >= horizon) or drops is not None:
            done = new_f >= horizon
            if done.any():
                if room_at(k):
                    j = int(np.argmin(np.where(done, new_c, np.inf)))
                    total = new_c[j] + tail[k]
                    if total < best[0]:
                        parent, model = _origin(int(ids[j]), src, drops, n_models, n_grid)
                        if not relaxed and int(ids[j]) // n_models >= n_early:
                            model += n_models
                        best = (total, -1, (parent, model, k), k)
                alive = ~done
                ids, new_f, new_c = ids[alive], new_f[alive], new_c[alive]
        if len(ids) == 0:
            offsets[k + 1] = hi
            continue
        if len(ids) > _PREFILTER_FROM:
            survive = _not_surely_dominated(new_f, new_c)
            ids, new_f, new_c = ids[survive], new_f[survive], new_c[survive]
        order = np.lexsort((new_c, new_f))
        groups = None
        if relaxed and new_f[order[-1]] >= clamp[k] + drop_backlog:
            key = np.maximum(k, np.searchsorted(a, new_f[order] - drop_backlog, side="right"))
            if key[-1] != key[0]:
                groups = key
        c_sorted = new_c[order]
        keep = np.empty(len(order), dtype=bool)
        keep[0] = True
        if groups is None:
            keep[1:] = c_sorted[1:] < np.minimum.accumulate(c_sorted)[:-1]
        else:
            _prune_by_group(c_sorted, groups, keep)
        order = order[keep]
        kept = ids[order]
        parents = np.empty(len(kept), dtype=np.int64)
        models = np.empty(len(kept), dtype=np.int8)
        on_grid = kept < n_grid
        parents[on_grid] = src[kept[on_grid] // n_models]
        models[on_grid] = kept[on_grid] % n_models
        if not relaxed and n_late:
            models[on_grid] += n_models * (kept[on_grid] // n_models >= n_early)
        if drops is not None:
            parents[~on_grid] = drops[kept[~on_grid] - n_grid]
            models[~on_grid] = _SKIP
        size = len(order)
        s.ensure(hi + size + 1)
        out = slice(hi, hi + size)
        s.f[out] = new_f[order]
        s.c[out] = new_c[order]
        s.index[out] = k
        s.parent[out] = parents
        s.model[out] = models
        last = np.zeros(size, dtype=bool)
        last[-1] = True
        if groups is not None:
            kept_groups = groups[keep]
            last[:-1] = kept_groups[1:] != kept_groups[:-1]
        s.last[out] = last
        offsets[k + 1] = hi + size
        max_front = max(max_front, size)
        # The cheapest state of each class is the last of its group.
        for state in np.flatnonzero(last) + hi:
            leave_at(int(state), k)

    total_states = int(offsets[n + 1])
    stats = FrontierStats(
        n_states=total_states,
        max_front=max_front,
        mean_front=total_states / (n + 1),
        n_candidates=n_candidates,
        n_merged=0,
        elapsed_s=time.perf_counter() - start,
    )
    if not np.isfinite(best[0]):
        return FrontierResult(np.inf, None, stats)
    schedule = _way_back(problem, s, arr, best, relaxed)
    return FrontierResult(float(best[0]), schedule, stats)


def _origin(
    candidate: int, src: np.ndarray, drops: np.ndarray | None, n_models: int, n_grid: int
) -> tuple[int, int]:
    """(parent state, model code) of a candidate id."""
    if candidate < n_grid:
        return int(src[candidate // n_models]), candidate % n_models
    assert drops is not None
    return int(drops[candidate - n_grid]), _SKIP


def _useful_models(service_by_size: np.ndarray, batch_cost: np.ndarray) -> np.ndarray:
    """``allowed[b, m]``: False where another model is at least as fast and at least as cheap for
    a batch of b (from the same state it then gives a state at least as good: earlier free
    worker, lower cost, and no more SLO misses). Shape (B + 1, M)."""
    n_models = service_by_size.shape[1]
    allowed = np.ones(service_by_size.shape, dtype=bool)
    for m in range(n_models):
        for other in range(n_models):
            if other == m:
                continue
            faster = service_by_size[:, other] <= service_by_size[:, m]
            cheaper = batch_cost[:, other] <= batch_cost[:, m]
            strictly = (service_by_size[:, other] < service_by_size[:, m]) | (
                batch_cost[:, other] < batch_cost[:, m]
            )
            # on exact ties keep the lower model index
            allowed[:, m] &= ~(faster & cheaper & (strictly | (other < m)))
    return allowed


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


def _prune_by_group(c_sorted: np.ndarray, groups: np.ndarray, keep: np.ndarray) -> None:
    """Pareto pruning within each run of equal ``groups`` values (states sorted by f)."""
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(groups)], strict=True):
        part = c_sorted[lo:hi]
        keep[lo] = True
        keep[lo + 1 : hi] = part[1:] < np.minimum.accumulate(part)[:-1]


def _way_back(
    problem: HindsightProblem,
    s: _Store,
    arr: np.ndarray,
    best: tuple[float, int, tuple[int, int, int] | None, int],
    relaxed: bool,
) -> Schedule:
    """The schedule of the best terminal state, by following parents back to the start."""
    _, state, extra, first_left = best
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
        elif model >= problem.n_models:  # dispatched at the latest time the shield allows
            dispatch = max(float(s.f[parent]), float(problem.shield_deadline_s()[i]))
            batches.append(PlannedBatch(dispatch, model - problem.n_models, k - i, i))
        else:
            dispatch = max(float(s.f[parent]), float(arr[k]))
            batches.append(PlannedBatch(dispatch, model, k - i, i))
    if relaxed and first_left < problem.n_requests:
        tail = np.arange(first_left, problem.n_requests)
        cheaper = problem.drop_cost < problem.leftover_costs()[tail]
        dropped.extend(int(r) for r in tail[cheaper])
    return Schedule(tuple(batches), tuple(dropped), problem.n_requests)
