"""Monte Carlo simulation of the discrete-time model, tick by tick: the cross-check of Storm.

:func:`simulate_ticks` samples the same chain the PRISM DTMC encodes (:mod:`formal.discrete`):
truncated-Poisson arrivals per tick, service rounded down or up at random, the policy's shielded
decision at ticks with an idle worker. Arrival counts and service coins are stratified (each value
appears in exactly its expected proportion, in random order), a variance reduction that leaves
the distribution of every single tick unchanged. With Markov-modulated arrivals the phase path is
sampled first (one-tick transition matrix of :class:`~formal.discrete.TickModel`), then the counts
of the ticks of each phase are stratified among them. It is written independently of
:mod:`formal.prism` (plain Python over the state, no PRISM text), and measures each request's
latency directly from a FIFO of arrival ticks rather than by Little's law. Its long-run figures
must agree with Storm's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from formal.discrete import TickModel
from formal.policies import DiscretePolicy, policy_table

__all__ = ["TickSimResult", "simulate_ticks"]


@dataclass(frozen=True)
class TickSimResult:
    """Figures of one simulated run (after the warm-up). Rates per second, latency in ms.

    :ivar latency_ms: mean latency of requests dispatched in the measured window, measured per
        request (completion tick - arrival tick) plus half a tick (the arrival offset).
    :ivar latency_sem_ms: standard error of ``latency_ms`` from batch means (20 batches).
    :ivar decision_visits: how often each decision state (q, a) was visited.
    """

    policy: str
    ticks: int
    throughput_per_s: float
    utilisation: float
    mean_queue: float
    mean_batch: float
    latency_ms: float
    latency_sem_ms: float
    cost_per_request: float
    drop_rate: float
    decision_visits: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)


def _stratified_counts(probs: tuple[float, ...], n: int, rng: np.random.Generator) -> list[int]:
    """``n`` per-tick arrival counts with exactly ``round(p_k n)`` ticks of k arrivals, in random
    order: each tick's count has the distribution ``probs`` (up to rounding), and the sampling
    noise of the total count, which would dominate the error of every long-run figure, is gone."""
    counts = [round(p * n) for p in probs]
    counts[0] += n - sum(counts)
    values = np.repeat(np.arange(len(probs)), counts)
    return rng.permutation(values).tolist()


def _arrival_counts(tm: TickModel, total: int, rng: np.random.Generator) -> list[int]:
    """Arrivals of ``total`` ticks: stratified per phase along a sampled phase path."""
    if tm.n_phases == 1:
        return _stratified_counts(tm.phase_arrival_probs[0], total, rng)
    switch = np.asarray(tm.phase_switch)
    cumulative = np.cumsum(switch, axis=1)
    uniforms = rng.random(total)
    phase = int(rng.choice(tm.n_phases, p=np.asarray(tm.phase_stationary)))
    path = np.empty(total, dtype=int)
    for t in range(total):
        path[t] = phase
        phase = min(int(np.searchsorted(cumulative[phase], uniforms[t], side="right")), tm.n_phases - 1)
    counts = np.zeros(total, dtype=int)
    for i in range(tm.n_phases):
        ticks = np.flatnonzero(path == i)
        if len(ticks):
            counts[ticks] = _stratified_counts(tm.phase_arrival_probs[i], len(ticks), rng)
    return counts.tolist()


def simulate_ticks(
    tm: TickModel,
    policy: DiscretePolicy,
    ticks: int,
    seed: int,
    *,
    warmup_ticks: int | None = None,
) -> TickSimResult:
    """Simulate ``ticks`` ticks of ``policy`` on ``tm`` (after ``warmup_ticks``, default 5% of
    ``ticks``), from an empty system.

    :param ticks: measured ticks (>= 1000).
    :param seed: seed of the numpy generator (the only randomness).
    """
    if ticks < 1000:
        raise ValueError(f"ticks must be >= 1000, got {ticks!r}")
    warm = ticks // 20 if warmup_ticks is None else warmup_ticks
    total = warm + ticks
    rng = np.random.default_rng(seed)
    arrivals = _arrival_counts(tm, total, rng)
    coins = ((rng.permutation(total) + rng.random(total)) / total).tolist()
    table = policy_table(policy, tm)
    service = tm.service
    cap = tm.queue_cap
    w_max = tm.max_age_ticks
    n_workers = tm.n_workers
    w_lat = tm.config.reward.w_latency_per_s
    drop_cost = max(tm.config.qualities) + tm.config.reward.w_drop
    regret = [tm.regret(m) for m in range(tm.n_models)]
    tick_ms = tm.tick_ms

    q = 0
    a = 0
    r = [0] * n_workers
    fifo: deque[list[int]] = deque()  # [arrival tick, count] groups, oldest first
    served = batches = waiting_sum = busy_sum = dropped = 0
    cost = 0.0
    latency_sum_ticks = 0.0
    arrived = 0
    n_blocks = 20
    block_len = max(1, ticks // n_blocks)
    visits: dict[tuple[int, int], int] = {}
    block_lat = [0.0] * n_blocks
    block_n = [0] * n_blocks
    tick_s = tm.tick_s

    for t in range(total):
        measuring = t >= warm
        dispatched = 0
        remaining = 0
        idle_before = min(r) == 0
        if q and idle_before:
            decision = table[(q, a)]
            if measuring:
                visits[(q, a)] = visits.get((q, a), 0) + 1
            if decision is not None:
                model, b = decision
                ticks_of = service[model][b - 1]
                s = ticks_of.hi if coins[t] < ticks_of.p_hi else ticks_of.hi - 1
                remaining = s - 1
                dispatched = b
                # FIFO: the b oldest requests complete at tick t + s.
                lat = 0
                left = b
                while left:
                    group = fifo[0]
                    take = min(left, group[1])
                    lat += take * (t + s - group[0])
                    group[1] -= take
                    left -= take
                    if not group[1]:
                        fifo.popleft()
                if measuring:
                    served += b
                    batches += 1
                    latency_sum_ticks += lat
                    blk = min((t - warm) // block_len, n_blocks - 1)
                    block_lat[blk] += lat
                    block_n[blk] += b
                    cost += b * (regret[model] + w_lat * ticks_of.service_ms / 1000.0)
        # Workers: busy during this tick, then one tick of progress.
        busy_now = sum(1 for x in r if x > 0) + (1 if dispatched else 0)
        if dispatched:
            target = r.index(0)
            r = [max(x - 1, 0) for x in r]
            r[target] = remaining
        else:
            r = [max(x - 1, 0) for x in r]
        q1 = q - dispatched
        k = arrivals[t]
        admitted = min(k, cap - q1)
        drops = k - admitted
        if measuring:
            waiting_sum += q1
            busy_sum += busy_now
            dropped += drops
            arrived += k
            cost += w_lat * tick_s * q1 + drop_cost * drops
        if admitted:
            fifo.append([t + 1, admitted])
        # Age of the oldest request (formal.discrete): while every worker is busy, the age it
        # will have when the first one frees; with a worker idle, the age itself.
        free = min(r)
        if q1 > 0:
            if dispatched:
                a = min(a + 1 + free, w_max)  # the oldest left behind: at most as old
            elif idle_before:
                a = min(a + 1, w_max + 1)  # waited with a worker idle
            # else: every worker busy, a unchanged
        else:
            a = min(free, w_max) if admitted else 0
        q = q1 + admitted

    measured_s = ticks * tm.tick_s
    means = [block_lat[i] / block_n[i] for i in range(n_blocks) if block_n[i]]
    sem = float(np.std(means, ddof=1) / math.sqrt(len(means))) if len(means) > 1 else math.nan
    return TickSimResult(
        policy=policy.name,
        ticks=ticks,
        throughput_per_s=served / measured_s,
        utilisation=busy_sum / (ticks * n_workers),
        mean_queue=waiting_sum / ticks + tm.mean_arrivals / 2,
        mean_batch=served / batches if batches else math.nan,
        latency_ms=latency_sum_ticks / served * tick_ms + tick_ms / 2 if served else math.nan,
        latency_sem_ms=sem * tick_ms,
        cost_per_request=cost / arrived + w_lat * tm.tick_s / 2 if arrived else math.nan,
        drop_rate=dropped / arrived if arrived else 0.0,
        decision_visits=visits,
    )
