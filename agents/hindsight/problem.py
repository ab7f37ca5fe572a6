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

__all__ = ["HindsightProblem", "useful_models"]


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
        objective: tuple[float, float] | None = None,
    ) -> HindsightProblem:
        """The problem of serving ``arrivals_s`` with the system ``config``.

        :param arrivals_s: arrival times (s), sorted, finite, >= 0. Arrivals at or after the
            horizon are left out (the simulator never sees them).
        :param horizon_s: episode length (s); default ``config.horizon_s``.
        :param objective: the episode's SLO bound (s) and penalty, ``(Simulator.slo_s,
            Simulator.w_slo)``, when it draws its own (``reward.slo_probability`` > 0,
            :func:`agents.hindsight.episode.episode_objective`); default the config's
            ``slo_ms / 1000`` and ``reward.w_slo``.
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
        slo_s, w_slo = (config.slo_ms / 1000.0, config.reward.w_slo) if objective is None else objective
        return cls(
            arrivals_s=times,
            horizon_s=float(horizon),
            service_s=np.asarray(table.service_s, dtype=float),
            quality=np.asarray(config.qualities, dtype=float),
            queue_capacity=config.queue_capacity,
            max_wait_s=config.max_wait_ms / 1000.0,
            slo_s=float(slo_s),
            w_latency_per_s=config.reward.w_latency_per_s,
            w_slo=float(w_slo),
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

    def service_by_size(self) -> np.ndarray:
        """Service time (s) of a batch of b on model m, ``[b, m]``: shape (B + 1, M)."""
        return np.ascontiguousarray(self.service_s.T)

    def batch_costs(self) -> np.ndarray:
        """The part of a batch's cost that does not depend on its dispatch time, ``[b, m]``:
        ``b (best - quality(m)) + w_latency_per_s b service(m, b)``. Shape (B + 1, M)."""
        service = self.service_by_size()
        sizes = np.arange(service.shape[0])[:, None]
        quality_loss = (self.best_quality - self.quality)[None, :]
        return sizes * quality_loss + self.w_latency_per_s * sizes * service

    def useful_options(self) -> np.ndarray:
        """``[b, m]``: True where no other model is at least as fast and at least as cheap for a
        batch of b (:func:`useful_models`). Shape (B + 1, M)."""
        return useful_models(self.service_by_size(), self.batch_costs())

    @property
    def credit_s(self) -> float:
        """How far (s) a dispatch may run ahead of the *virtual* worker of the relaxed programme
        with several workers: ``(W - 1) / W`` times the longest service time of a useful option
        (:meth:`useful_options`); 0 for one worker.

        The relaxation replaces the W workers by one virtual worker that a batch of service s
        occupies for s / W (its latency still counts s): ``f' = max(f, d) + s / W``. Every
        schedule of the W workers is one of the relaxation with the same dispatch times if each
        dispatch ``d_j >= f_j - credit_s``: the work dispatched in ``[d_k, d_j)`` is at most
        ``W (d_j - d_k) + (W - 1) s_max`` (the worker that takes batch j is free by ``d_j``; each
        other one can start at most ``d_j - d_k + s_max`` of work in that window, s_max the
        longest batch it runs), so
        ``f_j - d_j = max_k (work in [d_k, d_j) / W - (d_j - d_k)) <= (W - 1) s_max / W``.

        Only useful options count in s_max: a schedule that runs a batch on an option another
        model beats outright costs no less than the same schedule with that batch on the
        faster, no dearer model (same dispatch times, the worker free sooner, no more SLO
        misses), so the least cost over every schedule is reached among those that use useful
        options only. On the default system this halves the credit: LLM-1 above 21 requests and
        LLM-2 above 37 are not useful, and the longest useful batch is LLM-2's at 37 (125 ms)
        instead of LLM-1's at 64 (271 ms)."""
        w = self.n_workers
        if w == 1:
            return 0.0
        useful = self.useful_options()
        useful[0] = False  # the empty batch
        return (w - 1) / w * float(self.service_by_size()[useful].max())

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


def useful_models(service_by_size: np.ndarray, batch_cost: np.ndarray) -> np.ndarray:
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
