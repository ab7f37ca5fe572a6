"""The relaxed programme for two workers: the pair of free times as the state, a lower bound much
tighter than the one-virtual-worker relaxation of :mod:`agents.hindsight.frontier`.

State ``i`` means the first ``i`` requests are settled (dispatched or dropped). Its data: the free
times of the two workers, sorted (``f0 <= f1``), each raised to at least the arrival of the next
request (no later dispatch is earlier) and rounded *down* to a grid of ``grid_s`` (never up, not
even by an ulp: :func:`~agents.hindsight.frontier.floor_to_grid`), and the cost so
far. From a state the next batch holds requests ``i .. k - 1`` (``1 <= k - i <= B``) on model m,
dispatched at ``d = max(f0, arrival of request k - 1)`` on the worker free first; the pair becomes
``sorted(d + service(m, k - i), max(f1, d))``. Any request may be dropped, at ``best + w_drop``;
the requests left at the end cost the cheaper of waiting until the horizon and being dropped.

Why its optimum is a lower bound on every policy of the simulator (docs/hindsight.md, "Several
workers"): the simulator's batches are FIFO batches in dispatch order, each dispatched before the
horizon on a free worker once its last request has arrived; the programme drops the timeout shield
and the queue capacity as constraints and allows every drop. Fix the batches, their models and
the drops: dispatching each batch as early as possible on the worker free first keeps the sorted
pair of free times, after every batch, at or below the pair of the given schedule, component by
component (if ``x <= y`` component by component, so are their sorted versions), so every dispatch
is at least as early, and every cost term grows with the dispatch time. Rounding the free times
down and raising them to the next arrival only loosen the constraints. The pruning is exact: a
state whose pair and cost are both at or below another's does at least as well from there on.

Pruning: per request index, the Pareto front of (f0, f1, cost), by a sweep over f0 that keeps the
least cost at each f1 cell. Sources: per earlier index, every state with a worker still busy at
the batch's last arrival, and of those with both idle then (which all lead to the same pairs)
only the cheapest. Work per request index: the sources of the previous ``B`` indices times the
``M`` models, one sort of the candidates and a sweep of one pass per distinct f0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agents.hindsight.frontier import BatchTables, FrontierStats, floor_to_grid, suffix_sums
from agents.hindsight.problem import HindsightProblem

__all__ = ["PAIR_GRID_S", "PairResult", "pareto_pairs", "solve_pairs"]

_PREFILTER_FROM = 512  # candidates from which the bucket pass runs before the exact sweep

PAIR_GRID_S = 1e-3
"""Grid (s) the free times are rounded down to (docs/hindsight.md, "Several workers", measures
the choice: a finer grid gives a higher bound and larger fronts)."""


@dataclass(frozen=True)
class PairResult:
    """The least cost of the two-worker relaxation (a lower bound) and the programme's sizes.

    :ivar cost: the relaxation's least total cost.
    :ivar stats: sizes and time.
    """

    cost: float
    stats: FrontierStats


def _not_surely_dominated(
    f0: np.ndarray, f1: np.ndarray, cost: np.ndarray, n_buckets: int = 32
) -> np.ndarray:
    """A cheap first pass of the pruning, O(K + buckets^2): bucket the states by f0 and f1; a state
    is dominated if a state of a bucket lower on both (hence strictly smaller f0 and f1) costs no
    more. Returns the mask of the states this pass cannot rule out (a superset of the front)."""
    rows = []
    for values in (f0, f1):
        low, span = values.min(), values.max() - values.min()
        if not span > 0:
            return np.ones(len(cost), dtype=bool)
        rows.append(np.minimum((values - low) * (n_buckets / span), n_buckets - 1).astype(np.int64))
    b0, b1 = rows
    cheapest = np.full((n_buckets + 1, n_buckets + 1), np.inf)
    np.minimum.at(cheapest, (b0 + 1, b1 + 1), cost)
    np.minimum.accumulate(cheapest, axis=0, out=cheapest)
    np.minimum.accumulate(cheapest, axis=1, out=cheapest)  # [i, j]: least cost in buckets < i, < j
    return cost < cheapest[b0, b1]


def pareto_pairs(f0: np.ndarray, f1: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the states that no other state beats or ties on ``f0``, ``f1`` and ``cost`` at
    once (the first of exact duplicates is kept). Shapes (K,)."""
    if len(cost) > _PREFILTER_FROM:
        survivors = np.flatnonzero(_not_surely_dominated(f0, f1, cost))
        if len(survivors) < len(cost):
            return survivors[pareto_pairs(f0[survivors], f1[survivors], cost[survivors])]
    _, x0 = np.unique(f0, return_inverse=True)
    _, x1 = np.unique(f1, return_inverse=True)
    order = np.lexsort((cost, x1, x0))
    x0, x1, c = x0[order], x1[order], cost[order]
    best = np.full(int(x1.max()) + 1, np.inf)  # least cost kept so far at each f1 value
    below = best.copy()  # least cost kept so far at or below each f1 value
    keep = np.zeros(len(order), dtype=bool)
    starts = np.flatnonzero(np.r_[True, x0[1:] != x0[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        cells, group = x1[lo:hi], c[lo:hi]
        earlier = np.empty(hi - lo)  # least cost in this f0 group at a lower or equal f1, before
        earlier[0] = np.inf
        earlier[1:] = np.minimum.accumulate(group)[:-1]
        kept = (group < below[cells]) & (group < earlier)
        keep[lo:hi] = kept
        if kept.any():
            np.minimum.at(best, cells[kept], group[kept])
            below = np.minimum.accumulate(best)
    return order[keep]


class _Pairs:
    """One run of the programme (module docstring)."""

    def __init__(self, problem: HindsightProblem, grid_s: float) -> None:
        self.p = problem
        self.grid = grid_s
        self.tables = BatchTables.of(problem)
        self.max_b = problem.max_batch_size
        self.tail = suffix_sums(np.minimum(problem.leftover_costs(), problem.drop_cost))
        self.fronts: list[tuple[np.ndarray, np.ndarray]] = []  # per index: pairs (K, 2), costs (K,)
        self.best = float(self.tail[0])
        self.n_candidates = 0

    def _sources(self, k: int, ak: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs, costs and first requests of the states a batch ending with request k - 1 may
        leave from: of the states of one index with both workers idle at ``ak``, which all lead to
        the same pairs, only the cheapest."""
        rows = [i for i in range(max(0, k - self.max_b), k) if len(self.fronts[i][1])]
        sizes = [len(self.fronts[i][1]) for i in rows]
        pairs = np.concatenate([self.fronts[i][0] for i in rows])
        cost = np.concatenate([self.fronts[i][1] for i in rows])
        first = np.repeat(rows, sizes)
        # both workers idle at ak: all such states of one index lead to the same pairs
        both = pairs[:, 1] <= ak
        if not both.any():
            return pairs, cost, first
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        least = np.repeat(np.minimum.reduceat(np.where(both, cost, np.inf), starts), sizes)
        kept = ~both | (cost == least)  # (ties are merged by the pruning)
        return pairs[kept], cost[kept], first[kept]

    def _step(self, k: int) -> None:
        p, t = self.p, self.tables
        ak = t.arr[k]
        pairs, cost, first = self._sources(k, ak)
        d = np.maximum(pairs[:, 0], ak)
        ok = d < p.horizon_s
        pairs, cost, first, d = pairs[ok], cost[ok], first[ok], d[ok]
        b = k - first
        service = t.service_by_size[b]  # (S, M)
        total = t.costs(p, cost, first, k, d)
        src, model = np.nonzero(t.allowed[b])
        done = d[src] + service[src, model]
        other = np.maximum(pairs[src, 1], d[src])
        low = np.concatenate([np.minimum(done, other), self.fronts[k - 1][0][:, 0]])
        high = np.concatenate([np.maximum(done, other), self.fronts[k - 1][0][:, 1]])
        # or drop request k - 1: every front has states (a drop is always allowed)
        c = np.concatenate([total[src, model], self.fronts[k - 1][1] + p.drop_cost])
        self.n_candidates += len(c)
        after = t.arr[k + 1] if k < p.n_requests else ak  # the next arrival
        low = floor_to_grid(np.maximum(low, after), self.grid)
        high = floor_to_grid(np.maximum(high, after), self.grid)
        keep = pareto_pairs(low, high, c)
        self.fronts.append((np.stack([low[keep], high[keep]], axis=1), c[keep]))
        self.best = min(self.best, float(c[keep].min() + self.tail[k]))

    def run(self) -> PairResult:
        start = time.perf_counter()
        self.fronts.append((np.zeros((1, 2)), np.zeros(1)))
        for k in range(1, self.p.n_requests + 1):
            self._step(k)
        sizes = [len(front[1]) for front in self.fronts]
        return PairResult(self.best, FrontierStats.of_fronts(sizes, self.n_candidates, start))


def solve_pairs(problem: HindsightProblem, grid_s: float = PAIR_GRID_S) -> PairResult:
    """The least cost of the two-worker relaxation of ``problem`` (a lower bound on every policy of
    the simulator with two workers; module docstring).

    :param grid_s: the free times are rounded down to this grid (s, > 0).
    :raises ValueError: ``problem`` does not have two workers, or a bad grid.
    """
    if problem.n_workers != 2:
        raise ValueError(f"the pair programme covers two workers, the problem has {problem.n_workers}")
    if isinstance(grid_s, bool) or not isinstance(grid_s, int | float) or not 0 < grid_s < np.inf:
        raise ValueError(f"grid_s must be a number > 0 (s), got {grid_s!r}")
    return _Pairs(problem, float(grid_s)).run()
