"""Episode metrics from the simulator's records: latency percentiles, SLO attainment, goodput,
throughput, utilisation, model mix, drops, forced dispatches and the score per request.

Definitions (``H`` = the time simulated, normally the horizon):

- *served*: dispatched requests (their completion time is fixed at dispatch; a batch running at
  the horizon is counted with its full latency).
- latency = completion - arrival (ms): accumulation + queueing + service.
- ``slo_attainment`` = served within ``slo_ms`` / (served + dropped); requests still waiting at the
  horizon are censored (not counted).
- ``goodput_per_s`` = served within SLO / H; ``throughput_per_s`` = served / H.
- ``utilisation`` per worker = busy time in [0, H] / H.
- ``score_per_request`` = sum of per-request scores / arrived requests, which equals the episode
  return / arrived requests; ``cost_per_request`` = best model quality - score (the regret
  against an ideal that answers instantly with the best model; compare agents by it).
- End of the episode: a request still waiting at the horizon has been charged its wait so far
  and earns no quality, so it costs best quality + ``w_latency_per_s`` * its wait (about 1 with
  the default qualities, where a served request costs a few hundredths); latencies,
  percentiles and SLO attainment leave it out (it has no latency yet). Episodes start empty
  (no warm-up).
- A ratio with nothing to divide by is NaN, never 0: without arrivals ``score_per_request``,
  ``cost_per_request`` and ``drop_rate``; without a batch ``mean_batch_size``; with nothing
  served the latencies, ``mean_quality`` and the model mix; with nothing served or dropped
  ``slo_attainment``. Means over episodes leave NaN out (``evaluation.stats.mean_ci95``).
- A latency target (:class:`batchenv.config.LatencyTarget`, bound ``B`` ms, quantile ``p``):
  ``target_attainment`` = served within ``B`` / (served + dropped), the definition of
  ``slo_attainment`` with ``B`` for ``slo_ms``; the target is met when it is at least ``p``.
  ``target_latency_ms`` = the ``100 p``-th percentile of the served requests' latencies.
- :class:`ScoreTerms` splits the score into what its weights multiply (quality served per
  model, latency charged, misses, drops), so that the cost of an episode under other weights or
  qualities follows without a rerun, for every policy that does not read them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from batchenv.reward_config import LatencyTarget, RewardConfig
from batchenv.sim import Simulator

__all__ = [
    "EpisodeMetrics",
    "RequestTable",
    "ScoreTerms",
    "compute_metrics",
    "latency_within",
    "request_scores",
    "request_table",
    "score_terms",
    "target_metrics",
]


@dataclass(frozen=True)
class RequestTable:
    """Per-request records of an episode (served requests in dispatch order = arrival order).

    Shapes: every ``served_*`` array has one entry per served request (``n_served``); times in s.
    """

    arrival_s: np.ndarray
    dispatch_s: np.ndarray
    completion_s: np.ndarray
    model: np.ndarray
    batch_size: np.ndarray
    worker: np.ndarray
    waiting_arrival_s: np.ndarray  # requests still waiting at the end of the run
    drop_s: np.ndarray  # arrival times of dropped requests

    @property
    def latency_s(self) -> np.ndarray:
        """(n,) latency of each served request (s): completion minus arrival."""
        return self.completion_s - self.arrival_s


def request_table(sim: Simulator) -> RequestTable:
    """Expand the simulator's batch records into per-request arrays (needs ``record=True``)."""
    arrivals = np.asarray(sim.admitted_arrivals_s, dtype=float)
    batches = sim.batches
    n_served = sim.n_served
    if batches:
        dispatch, service, model, size, worker, _ = (np.asarray(col) for col in zip(*batches, strict=True))
    else:
        dispatch = service = np.zeros(0)
        model = size = worker = np.zeros(0, dtype=int)
    return RequestTable(
        arrival_s=arrivals[:n_served],
        dispatch_s=np.repeat(dispatch, size),
        completion_s=np.repeat(dispatch + service, size),
        model=np.repeat(model, size).astype(int),
        batch_size=np.repeat(size, size).astype(int),
        worker=np.repeat(worker, size).astype(int),
        waiting_arrival_s=arrivals[n_served:],
        drop_s=np.asarray(sim.drop_times_s, dtype=float),
    )


def request_scores(sim: Simulator, table: RequestTable | None = None) -> np.ndarray:
    """Score of every request of the episode, computed from the records alone:
    served ``quality - w_lat * latency - w_slo * [latency > slo]`` (the episode's SLO bound and
    penalty, ``sim.slo_s`` and ``sim.w_slo``), dropped ``-w_drop``, still waiting ``-w_lat * (now -
    arrival)``. Shape: (arrived,)."""
    table = table or request_table(sim)
    cfg = sim.config
    w_lat, w_slo, w_drop = cfg.reward.w_latency_per_s, sim.w_slo, cfg.reward.w_drop
    quality = np.asarray(cfg.qualities)[table.model]
    missed = table.arrival_s < table.completion_s - sim.slo_s
    served = quality - w_lat * (table.completion_s - table.arrival_s) - w_slo * missed
    waiting = -w_lat * (sim.now_s - table.waiting_arrival_s)
    dropped = np.full(len(table.drop_s), -w_drop)
    return np.concatenate([served, waiting, dropped])


@dataclass(frozen=True)
class EpisodeMetrics:
    """Summary of one episode. Latencies in ms, rates per second, fractions in [0, 1]."""

    horizon_s: float
    arrival_rate_per_s: float
    n_arrived: int
    n_served: int
    n_dropped: int
    n_waiting: int
    n_batches: int
    n_forced: int
    mean_batch_size: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    slo_attainment: float
    goodput_per_s: float
    throughput_per_s: float
    drop_rate: float
    mean_quality: float
    utilisation: float
    score_per_request: float
    cost_per_request: float
    utilisation_per_worker: tuple[float, ...] = field(default_factory=tuple)
    model_mix: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The metrics as a plain dict."""
        return asdict(self)


def compute_metrics(sim: Simulator) -> EpisodeMetrics:
    """Metrics of the episode so far. Percentiles need ``record=True`` (NaN otherwise)."""
    cfg = sim.config
    span = sim.now_s
    n_served = sim.n_served
    nan = float("nan")
    if sim.record and n_served:
        table = request_table(sim)
        latency_ms = table.latency_s * 1000.0
        p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
        latency_max = float(latency_ms.max())
        within_slo = int(np.sum(~(table.arrival_s < table.completion_s - sim.slo_s)))
    else:
        p50 = p95 = p99 = latency_max = nan
        within_slo = n_served - sim.n_slo_misses
    busy_per_worker = [
        busy - max(0.0, free - span) for busy, free in zip(sim.busy_s, sim.free_at_s, strict=True)
    ]
    utilisation = tuple(b / span for b in busy_per_worker) if span > 0 else (0.0,) * sim.n_workers
    n_arrived = sim.n_arrived
    score = sim.total_reward / n_arrived if n_arrived else nan
    judged = n_served + sim.n_dropped
    return EpisodeMetrics(
        horizon_s=span,
        arrival_rate_per_s=n_arrived / span if span > 0 else 0.0,
        n_arrived=n_arrived,
        n_served=n_served,
        n_dropped=sim.n_dropped,
        n_waiting=sim.queue_len,
        n_batches=sim.n_batches,
        n_forced=sim.n_forced,
        mean_batch_size=n_served / sim.n_batches if sim.n_batches else nan,
        latency_mean_ms=1000.0 * sim.sum_latency_s / n_served if n_served else nan,
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_p99_ms=float(p99),
        latency_max_ms=latency_max,
        slo_attainment=within_slo / judged if judged else nan,
        goodput_per_s=within_slo / span if span > 0 else 0.0,
        throughput_per_s=n_served / span if span > 0 else 0.0,
        drop_rate=sim.n_dropped / n_arrived if n_arrived else nan,
        mean_quality=sim.sum_quality / n_served if n_served else nan,
        utilisation=float(np.mean(utilisation)),
        score_per_request=score,
        cost_per_request=max(cfg.qualities) - score if n_arrived else nan,
        utilisation_per_worker=utilisation,
        model_mix={
            name: (count / n_served if n_served else nan)
            for name, count in zip(cfg.model_names, sim.served_per_model, strict=True)
        },
    )


def latency_within(
    sim: Simulator, bounds_ms: Sequence[float], table: RequestTable | None = None
) -> list[int]:
    """Per bound (ms): the served requests whose latency is at most the bound (the comparison of
    ``slo_attainment``). Needs ``record=True``."""
    table = table or request_table(sim)
    return [int(np.sum(~(table.arrival_s < table.completion_s - b / 1000.0))) for b in bounds_ms]


def target_metrics(
    sim: Simulator, target: LatencyTarget, table: RequestTable | None = None
) -> dict[str, float]:
    """``target_attainment`` (served within the bound / (served + dropped)) and
    ``target_latency_ms`` (the target's percentile of the served latencies, ms) of the episode
    (module docstring); NaN where nothing was judged. Needs ``record=True``."""
    table = table or request_table(sim)
    bound_ms = target.bound_for(sim.config.slo_ms)
    (within,) = latency_within(sim, [bound_ms], table)
    judged = sim.n_served + sim.n_dropped
    latency_ms = table.latency_s * 1000.0
    quantile = float(np.percentile(latency_ms, 100.0 * target.quantile)) if len(latency_ms) else math.nan
    return {
        "target_attainment": within / judged if judged else math.nan,
        "target_latency_ms": quantile,
    }


@dataclass(frozen=True)
class ScoreTerms:
    """An episode's score split into the parts its weights multiply.

    score per request = (sum over models of served_m * quality_m - w_latency_per_s * latency_s
    - w_slo * n_slo_misses - w_drop * n_dropped) / n_arrived, exactly the simulator's
    ``total_reward / n_arrived``. A policy that reads neither the weights nor the qualities (the
    baselines, a trained network) has the same trajectory under other ones, so its cost there
    follows from these terms without a rerun.

    :ivar n_arrived: arrived requests (admitted or dropped).
    :ivar n_dropped: dropped requests.
    :ivar n_slo_misses: served requests over ``slo_ms``.
    :ivar served_per_model: served requests per model index.
    :ivar latency_s: latency charged (s): the served requests' latencies plus the time waited so
        far by the requests still waiting at the end.
    """

    n_arrived: int
    n_dropped: int
    n_slo_misses: int
    served_per_model: tuple[int, ...]
    latency_s: float

    def score_per_request(self, qualities: Sequence[float], reward: RewardConfig) -> float:
        """The score per arrived request under ``qualities`` (one per model) and ``reward`` (NaN
        without arrivals)."""
        if not self.n_arrived:
            return math.nan
        quality = sum(n * q for n, q in zip(self.served_per_model, qualities, strict=True))
        total = (
            quality
            - reward.w_latency_per_s * self.latency_s
            - reward.w_slo * self.n_slo_misses
            - reward.w_drop * self.n_dropped
        )
        return total / self.n_arrived

    def cost_per_request(self, qualities: Sequence[float], reward: RewardConfig) -> float:
        """Best quality - score per request (NaN without arrivals)."""
        if not self.n_arrived:
            return math.nan
        return max(qualities) - self.score_per_request(qualities, reward)

    def mean_quality(self, qualities: Sequence[float]) -> float:
        """Mean quality of the served requests (NaN if none was served)."""
        served = sum(self.served_per_model)
        if not served:
            return math.nan
        return sum(n * q for n, q in zip(self.served_per_model, qualities, strict=True)) / served

    def to_dict(self) -> dict[str, Any]:
        """The terms as plain JSON values."""
        return {**asdict(self), "served_per_model": list(self.served_per_model)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreTerms:
        """The terms of :meth:`to_dict`'s output."""
        return cls(
            n_arrived=int(data["n_arrived"]),
            n_dropped=int(data["n_dropped"]),
            n_slo_misses=int(data["n_slo_misses"]),
            served_per_model=tuple(int(n) for n in data["served_per_model"]),
            latency_s=float(data["latency_s"]),
        )


def score_terms(sim: Simulator) -> ScoreTerms:
    """The :class:`ScoreTerms` of the episode so far (running totals: no ``record`` needed)."""
    return ScoreTerms(
        n_arrived=sim.n_arrived,
        n_dropped=sim.n_dropped,
        n_slo_misses=sim.n_slo_misses,
        served_per_model=tuple(sim.served_per_model),
        latency_s=sim.sum_latency_s + sim.queue_len * sim.mean_wait_s,
    )
