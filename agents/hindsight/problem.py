"""One hindsight problem: a whole arrival sequence and the system that serves it, as arrays.

Everything the dynamic programme (:mod:`agents.hindsight.frontier`), the schedule checker
(:mod:`agents.hindsight.schedule`) and the replay need is computed here once, from the same
numbers the simulator uses (:class:`batchenv.timing.ServiceTable`, the reward weights), so that
the three agree to the last bit on every time they compare.

Indices: request ``r`` (0-based) arrives at ``arrivals_s[r]``; "state i" means the first ``i``
requests are settled (dispatched or dropped). Times are in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from batchenv.config import ConfigError, SystemConfig
from batchenv.timing import ServiceTable

__all__ = ["HindsightProblem"]


@dataclass(frozen=True, eq=False)
class HindsightProblem:
    """A sorted arrival sequence, the system's tables and the episode's rules (one worker).

    Build it with :meth:`from_config`. Arrays are float64 unless said otherwise.

    :ivar arrivals_s: arrival times (s), shape (N,), sorted, all in [0, horizon_s).
    :ivar horizon_s: end of the episode (s): no dispatch at or after it.
    :ivar service_s: service time (s) of a batch, shape (M, B + 1) (``[m, b]``; column 0 is 0).
    :ivar quality: model qualities, shape (M,).
    :ivar queue_capacity: waiting requests beyond which arrivals are dropped.
    :ivar max_wait_s: the timeout shield (s), as the simulator computes it (``max_wait_ms / 1000``).
    :ivar slo_s: latency objective (s), as the simulator computes it.
    :ivar w_latency_per_s, w_slo, w_drop: reward weights.
    :ivar n_workers: identical workers W (the relaxed programme covers any W, the realisable one
        and the schedule checks one; :attr:`credit_s`).
    """

    arrivals_s: np.ndarray
    horizon_s: float
    service_s: np.ndarray
    quality: np.ndarray
    queue_capacity: int
    max_wait_s: float
    slo_s: float
    w_latency_per_s: float
    w_slo: float
    w_drop: float
    n_workers: int = 1

    @classmethod
    def from_config(
        cls,
        config: SystemConfig,
        arrivals_s: np.ndarray,
        horizon_s: float | None = None,
    ) -> HindsightProblem:
        """The problem of serving ``arrivals_s`` with the system ``config``.

        :param arrivals_s: arrival times (s), sorted, finite, >= 0. Arrivals at or after the
            horizon are left out (the simulator never sees them).
        :param horizon_s: episode length (s); default ``config.horizon_s``.
        :raises ConfigError: bad arrivals or horizon (naming the argument).
        """
        horizon = config.horizon_s if horizon_s is None else horizon_s
        if isinstance(horizon, bool) or not isinstance(horizon, int | float) or not horizon > 0:
            raise ConfigError("horizon_s", f"must be a number > 0 (s), got {horizon!r}")
        if not math.isfinite(horizon):
            raise ConfigError("horizon_s", f"must be finite, got {horizon!r}")
        times = np.asarray(arrivals_s, dtype=float)
        if times.ndim != 1:
            raise ConfigError("arrivals_s", f"must be a 1-D array of times (s), got shape {times.shape}")
        if len(times) and not np.all(np.isfinite(times)):
            raise ConfigError("arrivals_s", "must be finite")
        if len(times) and times[0] < 0:
            raise ConfigError("arrivals_s", f"must be >= 0 (s), got {times[0]!r}")
        if np.any(np.diff(times) < 0):
            raise ConfigError("arrivals_s", "must be sorted in increasing order")
        times = np.ascontiguousarray(times[times < horizon])
        table = ServiceTable(config)
        return cls(
            arrivals_s=times,
            horizon_s=float(horizon),
            service_s=np.asarray(table.service_s, dtype=float),
            quality=np.asarray(config.qualities, dtype=float),
            queue_capacity=config.queue_capacity,
            max_wait_s=config.max_wait_ms / 1000.0,
            slo_s=config.slo_ms / 1000.0,
            w_latency_per_s=config.reward.w_latency_per_s,
            w_slo=config.reward.w_slo,
            w_drop=config.reward.w_drop,
            n_workers=config.n_workers,
        )

    # ---------------------------------------------------------------- derived quantities
    @property
    def n_requests(self) -> int:
        """Requests arrived in the episode."""
        return len(self.arrivals_s)

    @property
    def n_models(self) -> int:
        """The number of models M."""
        return len(self.quality)

    @property
    def max_batch_size(self) -> int:
        """The largest batch (requests)."""
        return self.service_s.shape[1] - 1

    @property
    def best_quality(self) -> float:
        """The best model's quality."""
        return float(self.quality.max())

    @property
    def drop_cost(self) -> float:
        """Cost of a dropped request: best quality + ``w_drop``."""
        return self.best_quality + self.w_drop

    @property
    def credit_s(self) -> float:
        """How far (s) a dispatch may run ahead of the *virtual* worker of the relaxed programme
        with several workers: ``(W - 1) / W`` times the longest service time; 0 for one worker.

        The relaxation replaces the W workers by one virtual worker that a batch of service s
        occupies for s / W (its latency still counts s): ``f' = max(f, d) + s / W``. Every
        schedule of the W workers is one of the relaxation with the same dispatch times if each
        dispatch ``d_j >= f_j - credit_s``: the work dispatched in ``[d_k, d_j)`` is at most
        ``W (d_j - d_k) + (W - 1) s_max`` (the worker that takes batch j is free by ``d_j``; each
        other one can start at most ``d_j - d_k + s_max`` of work in that window), so
        ``f_j - d_j = max_k (work in [d_k, d_j) / W - (d_j - d_k)) <= (W - 1) s_max / W``."""
        w = self.n_workers
        return (w - 1) / w * float(self.service_s[:, 1:].max())

    def leftover_costs(self) -> np.ndarray:
        """Cost of each request if it is still waiting at the horizon: best quality +
        ``w_latency_per_s`` * (horizon - arrival). Shape (N,)."""
        return self.best_quality + self.w_latency_per_s * (self.horizon_s - self.arrivals_s)

    def shield_deadline_s(self) -> np.ndarray:
        """Time at which request r, the oldest waiting, triggers the timeout shield:
        ``arrivals_s[r] + max_wait_s``, the simulator's own float sum. Shape (N,)."""
        return self.arrivals_s + self.max_wait_s

    def capacity_deadline_s(self) -> np.ndarray:
        """Request r must be dispatched strictly before the arrival of request
        r + queue_capacity, else that arrival finds the queue full (inf when there is none).
        Shape (N,)."""
        n, cap = self.n_requests, self.queue_capacity
        deadline = np.full(n, np.inf)
        if cap < n:
            deadline[: n - cap] = self.arrivals_s[cap:]
        return deadline
