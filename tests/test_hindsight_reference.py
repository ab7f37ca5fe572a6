"""The relaxed programmes against references without their shortcuts, on episodes long and busy
enough that the shortcuts run: the one-worker programme against an unpruned programme (exact
Pareto fronts over every source state and every model, written here from the rules), and each
programme (one worker, the virtual worker of three, the pair of two) against itself with its
bucket pre-filter switched off. The brute-force tests of tests/test_hindsight.py never reach the
pre-filter (it runs from 256 candidates at one request index, 512 for the pair programme)."""

from __future__ import annotations

import numpy as np
import pytest

import agents.hindsight.frontier as frontier
import agents.hindsight.pairs as pairs
from agents.hindsight import HindsightProblem, episode_arrivals, hindsight_bound
from batchenv.scenarios import load_scenario


def reference_relaxed(problem: HindsightProblem) -> float:
    """Least cost of the relaxed one-worker programme (docs/hindsight.md), without any of its
    shortcuts: from every state of the previous ``B`` fronts, a batch of requests ``i .. k - 1``
    on every model, dispatched at ``max(free, arrival of request k - 1)``; or a drop of request
    k - 1 (best quality + ``w_drop``). The free time is raised to the next arrival; a state busy
    until the horizon ends the episode. The requests left at the end cost the cheaper of waiting
    until the horizon (best quality + latency) and being dropped. Each front is pruned only by
    exact dominance (no later free time and no higher cost), which loses no optimum."""
    a = np.asarray(problem.arrivals_s, dtype=float)
    n = len(a)
    horizon, w, w_slo, slo = problem.horizon_s, problem.w_latency_per_s, problem.w_slo, problem.slo_s
    quality = np.asarray(problem.quality, dtype=float)
    best_q = float(quality.max())
    drop = best_q + problem.w_drop
    service = np.asarray(problem.service_s, dtype=float)  # [model, batch size]
    n_models, max_b = service.shape[0], service.shape[1] - 1
    settled_by_leaving = np.minimum(best_q + w * (horizon - a), drop)
    tail = np.append(np.cumsum(settled_by_leaving[::-1])[::-1], 0.0)  # tail[k]: requests k.. left
    arrival_sum = np.append(0.0, np.cumsum(a))
    fronts: list[tuple[np.ndarray, np.ndarray]] = [(np.array([a[0] if n else 0.0]), np.zeros(1))]
    best = float(tail[0])
    for k in range(1, n + 1):
        free_parts, cost_parts = [], []
        for i in range(max(0, k - max_b), k):
            free, cost = fronts[i]
            if not len(free):
                continue
            size = k - i
            dispatch = np.maximum(free, a[k - 1])
            for m in range(n_models):
                done = dispatch + service[m, size]
                late = np.clip(np.searchsorted(a, done - slo, side="left") - i, 0, size)
                latency = size * done - (arrival_sum[k] - arrival_sum[i])
                free_parts.append(done)
                cost_parts.append(cost + size * (best_q - quality[m]) + w * latency + w_slo * late)
        free, cost = fronts[k - 1]
        free_parts.append(free)
        cost_parts.append(cost + drop)
        free, cost = np.concatenate(free_parts), np.concatenate(cost_parts)
        if k < n:
            free = np.maximum(free, a[k])
        ended = free >= horizon
        if ended.any():
            best = min(best, float(cost[ended].min() + tail[k]))
        free, cost = free[~ended], cost[~ended]
        if len(free):
            best = min(best, float(cost.min() + tail[k]))
            order = np.lexsort((cost, free))
            free, cost = free[order], cost[order]
            keep = np.r_[True, cost[1:] < np.minimum.accumulate(cost)[:-1]]
            free, cost = free[keep], cost[keep]
        fronts.append((free, cost))
    return best


def _episode(scenario: str, rate: float | None, horizon_s: float, seed: int, **changes) -> tuple:
    config = load_scenario(scenario)
    if rate is not None:
        config = config.at_rate(rate)
    config = config.replace(horizon_s=horizon_s, **changes)
    return config, episode_arrivals(config, seed)


class _Counted:
    """Wraps a pre-filter: counts its calls and the states it rules out."""

    def __init__(self, prefilter) -> None:
        self.prefilter = prefilter
        self.calls = 0
        self.ruled_out = 0

    def __call__(self, *args):
        mask = self.prefilter(*args)
        self.calls += 1
        self.ruled_out += int(len(mask) - np.count_nonzero(mask))
        return mask


ONE_WORKER = [
    ("azure_trace", 300.0, 2.0, 0, {}),
    ("high_load", None, 1.0, 0, {}),  # 400 requests/s
    ("high_load", None, 1.0, 1, {"queue_capacity": 20}),
    ("default", 600.0, 1.0, 0, {"reward": {"w_slo": 0.5, "w_drop": 0.05}, "slo_ms": 60.0}),
]


@pytest.mark.parametrize(("scenario", "rate", "horizon_s", "seed", "changes"), ONE_WORKER)
def test_one_worker_bound_is_the_unpruned_optimum_where_the_bucket_pass_runs(
    monkeypatch: pytest.MonkeyPatch, scenario: str, rate: float | None, horizon_s: float, seed: int, changes
) -> None:
    """At 300-600 requests/s the fronts pass 256 candidates, the bucket pass runs and rules states
    out, and the bound is still the least cost of the relaxation (the unpruned programme's), to
    the rounding of the cost sums. A pass that over-prunes (a state ruled out by a cheaper one
    of a lower bucket by less than it should) raises the bound above it."""
    config, arrivals = _episode(scenario, rate, horizon_s, seed, **changes)
    counted = _Counted(frontier._not_surely_dominated)
    monkeypatch.setattr(frontier, "_not_surely_dominated", counted)
    bound = hindsight_bound(config, arrivals)
    assert counted.calls > 0 and counted.ruled_out > 0  # the pass ran and did something
    reference = reference_relaxed(HindsightProblem.from_config(config, arrivals))
    assert bound.lower_cost == pytest.approx(reference, rel=1e-11, abs=1e-11)


def test_the_reference_agrees_with_the_programme_without_the_bucket_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reference itself, against the programme with its bucket pass off, on an episode whose
    optimum drops requests in the middle of the episode (2) and misses SLOs (37)."""
    monkeypatch.setattr(frontier, "_PREFILTER_FROM", 10**12)
    config, arrivals = _episode("default", 250.0, 0.5, 3, reward={"w_slo": 0.3, "w_drop": 0.02}, slo_ms=20.0)
    problem = HindsightProblem.from_config(config, arrivals)
    result = frontier.solve_frontier(problem, "relaxed")
    assert result.schedule is not None and 0 < min(result.schedule.dropped) < problem.n_requests // 2
    assert result.cost == pytest.approx(reference_relaxed(problem), rel=1e-11, abs=1e-11)


def _relaxed_run(problem: HindsightProblem) -> tuple[float, int, int]:
    """The lower bound's programme alone (no schedule search; the pair programme with two
    workers, the relaxed one, on the virtual worker with three, otherwise): its cost, the states
    its fronts keep in all and its largest front."""
    if problem.n_workers == 2:
        result = pairs.solve_pairs(problem)
    else:
        result = frontier.solve_frontier(problem, "relaxed")
    return result.cost, result.stats.n_states, result.stats.max_front


@pytest.mark.parametrize(
    ("workers", "scenario", "rate"),
    [(1, "default", 500.0), (1, "azure_trace", 300.0), (2, "default", 400.0), (3, "default", 600.0)],
)
def test_the_bucket_pass_changes_no_front(
    monkeypatch: pytest.MonkeyPatch, workers: int, scenario: str, rate: float
) -> None:
    """Each programme (one worker, the pair of two, the virtual worker of three) keeps the same
    fronts, state for state, with its bucket pass as without it, on an episode where the pass
    rules states out: it only removes states the exact pruning removes. (A pass that also
    removes a state of the front, however little cheaper than the states of the lower buckets,
    shrinks some front even where the optimum does not move.)"""
    config, arrivals = _episode(scenario, rate, 1.0, 0, n_workers=workers)
    problem = HindsightProblem.from_config(config, arrivals)
    module = pairs if workers == 2 else frontier
    counted = _Counted(module._not_surely_dominated)
    monkeypatch.setattr(module, "_not_surely_dominated", counted)
    with_pass = _relaxed_run(problem)
    assert counted.calls > 0 and counted.ruled_out > 0
    calls = counted.calls
    monkeypatch.setattr(module, "_PREFILTER_FROM", 10**12)
    assert _relaxed_run(problem) == with_pass
    assert counted.calls == calls  # the pass did not run
