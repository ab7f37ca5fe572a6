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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from batchenv.sim import Simulator

__all__ = ["EpisodeMetrics", "RequestTable", "compute_metrics", "request_scores", "request_table"]


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
    served ``quality - w_lat * latency - w_slo * [latency > slo]``, dropped ``-w_drop``,
    still waiting ``-w_lat * (now - arrival)``. Shape: (arrived,)."""
    table = table or request_table(sim)
    cfg = sim.config
    w_lat, w_slo, w_drop = cfg.reward.w_latency_per_s, cfg.reward.w_slo, cfg.reward.w_drop
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
    score = sim.total_reward / n_arrived if n_arrived else 0.0
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
        mean_batch_size=n_served / sim.n_batches if sim.n_batches else 0.0,
        latency_mean_ms=1000.0 * sim.sum_latency_s / n_served if n_served else nan,
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_p99_ms=float(p99),
        latency_max_ms=latency_max,
        slo_attainment=within_slo / judged if judged else nan,
        goodput_per_s=within_slo / span if span > 0 else 0.0,
        throughput_per_s=n_served / span if span > 0 else 0.0,
        drop_rate=sim.n_dropped / n_arrived if n_arrived else 0.0,
        mean_quality=sim.sum_quality / n_served if n_served else nan,
        utilisation=float(np.mean(utilisation)),
        score_per_request=score,
        cost_per_request=max(cfg.qualities) - score if n_arrived else nan,
        utilisation_per_worker=utilisation,
        model_mix={
            name: (count / n_served if n_served else 0.0)
            for name, count in zip(cfg.model_names, sim.served_per_model, strict=True)
        },
    )
