"""Burst-aware SMDP tables: the latency weight of the table tilts with the measured burstiness.

The SMDP tables of :mod:`agents.proposed` are optimal for Poisson arrivals at the estimated
rate. Real traffic is over-dispersed: at the scale of 0.1-1 s its rate moves far more than
Poisson counting noise (index of dispersion 2 to 12 on the shipped traces at 1 s), so a long
service is more often followed by a large queue than the Poisson model expects. The table then
spends latency on quality (LLM-1 at short queues) where the real risk does not pay for it, and
its latency tail is longer than a tuned timeout's.

:class:`BurstMeter` measures the *extra-Poisson* variability of the rate, sigma: the relative
standard deviation of the rate over windows of ``window_s`` around the rate estimate, after the
Poisson variance of each window's count is subtracted (0 for Poisson arrivals, whatever the
rate). :class:`BurstAwareProposed` keeps SMDP tables solved for a grid of latency weights
``kappa * w_latency_per_s`` and uses, at each decision, the table of the grid tilt nearest to
``kappa = 1 + tilt * sigma``. On Poisson arrivals sigma stays near 0 and the scheduler is the
proposed scheduler (the optimum at the estimated rate); on bursty traffic it prices the risk of
long services by weighting latency more.

With ``backlog_llr`` it also reads the queue as evidence of the rate: when the waiting
requests are significantly more than the rate estimate explains, the estimate is raised to the
rate they imply (:meth:`BurstAwareProposed._estimate_rate`). With ``regime_hold_s`` it
remembers the rate of the last high regime: after a jump up, the estimate is held, for that long,
at least at the rate it read one second into the previous jump (if that was less than
:data:`REGIME_MEMORY_S` ago). At the start of a burst the estimator's restart rests on a few
arrivals, and a recurring burst is better predicted by the last one. ``regime_llr`` adds a CUSUM
for a return to that remembered rate (:meth:`BurstAwareProposed._regime_floor`).

Work per decision: O(1) (one window update, one nearest-grid lookup, the backlog test, then the
table lookup of :class:`agents.proposed.Proposed`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents.proposed import Proposed
from batchenv.config import SystemConfig
from batchenv.decision_rows import DecisionRow
from batchenv.sim import Decision, Simulator

__all__ = ["DEFAULT_TILTS", "REGIME_MEMORY_S", "REGIME_SETTLE_S", "BurstAwareProposed", "BurstMeter"]

DEFAULT_TILTS = (1.0, 1.1, 1.25, 1.5, 2.0)
"""Latency-weight multipliers kappa the burst-aware scheduler keeps a table for."""

REGIME_SETTLE_S = 1.0
"""Time (s) after a detected jump up at which the estimate is recorded as the regime's rate."""

REGIME_MEMORY_S = 30.0
"""A regime's recorded rate is used at the next jump up only if recorded less than this (s) ago."""


def checked_number(name: str, value: Any, *, positive: bool = False, unit: str = "") -> float:
    """``value`` as a float, or ValueError naming ``name`` unless it is a number (not a bool)
    ``>= 0`` (``> 0`` with ``positive``; NaN is neither); ``unit`` is named in the message."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and (value > 0 if positive else value >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number {bound}{f' ({unit})' if unit else ''}, got {value!r}")
    return float(value)


class BurstMeter:
    """Extra-Poisson relative variability of the arrival rate at one time scale; O(1) per update.

    The arrival counter is read at decision epochs. A window closes at the first reading at least
    ``window_s`` after it opened; with ``n`` arrivals in ``d`` seconds its rate is ``r = n / d``,
    compared with the reference rate ``lam`` (the rate estimate at the window's end). The excess
    of ``(r - lam)^2`` over the Poisson variance ``lam / d`` of ``r`` is averaged (EWMA over about
    ``memory`` windows, as an unbiased running mean for the first ones) and so is ``lam^2``:

        sigma = sqrt(max(mean excess, 0) / mean lam^2).

    For Poisson arrivals the excess averages 0 whatever the rate; for a rate that moves at the
    scale of the window, sigma is its relative standard deviation around the estimate.

    :param window_s: window length (s) > 0; default 0.5.
    :param memory: windows averaged (>= 1); default 40 (20 s at 0.5 s windows).
    :ivar sigma: the current value (0 before the first window closes).
    """

    def __init__(self, window_s: float = 0.5, memory: int = 40) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 (s), got {window_s!r}")
        if not memory >= 1:
            raise ValueError(f"memory must be >= 1 (windows), got {memory!r}")
        self.window_s = float(window_s)
        self.memory = int(memory)
        self._alpha = 1.0 / self.memory
        self.reset()

    def reset(self, t_s: float = 0.0, count: float = 0.0) -> None:
        """Forget everything; the counter reads ``count`` at time ``t_s`` (s)."""
        self._open_s = t_s
        self._open_count = count
        self._excess = 0.0
        self._lam2 = 0.0
        self.windows = 0
        self.sigma = 0.0

    def update(self, t_s: float, count: float, rate_per_s: float) -> float:
        """Read the counter ``count`` at ``t_s`` (s) with the rate estimate ``rate_per_s``;
        returns sigma."""
        duration = t_s - self._open_s
        if duration < self.window_s or not rate_per_s > 0.0:
            return self.sigma
        rate = (count - self._open_count) / duration
        excess = (rate - rate_per_s) ** 2 - rate_per_s / duration
        weight = max(self._alpha, 1.0 / (self.windows + 1))
        self._excess += weight * (excess - self._excess)
        self._lam2 += weight * (rate_per_s * rate_per_s - self._lam2)
        self.windows += 1
        self._open_s = t_s
        self._open_count = count
        self.sigma = math.sqrt(self._excess / self._lam2) if self._excess > 0.0 else 0.0
        return self.sigma

    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {"window_s": self.window_s, "memory": self.memory}


class BurstAwareProposed(Proposed):
    """The proposed scheduler with its table tilted towards latency by the measured burstiness
    (module docstring). Every :class:`agents.proposed.Proposed` parameter is accepted.

    :param tilt: ``kappa = 1 + tilt * sigma`` (>= 0); 0 is the proposed scheduler. Default 2.
    :param tilts: the grid of kappa values with a table (increasing, the first 1); default
        :data:`DEFAULT_TILTS`.
    :param burst_window_s: :class:`BurstMeter` window (s); default 0.5.
    :param burst_memory: :class:`BurstMeter` memory (windows); default 40.
    :param backlog_llr: raise the rate estimate to the rate a significant backlog implies
        (:meth:`_estimate_rate`; log-likelihood units, >= 0); default 0 (never).
    :param regime_hold_s: after a jump up, hold the estimate for this long (s, >= 0) at least at
        the rate recorded in the previous high regime (module docstring); default 0 (never).
    :param regime_llr: with ``regime_hold_s``, also detect a return to that rate with a CUSUM
        for it, alarming at this level (log-likelihood units, >= 0; :meth:`_regime_floor`);
        default 0 (only the estimator's own alarms).
    :ivar kappa: the tilt of the table used at the last decision.
    """

    name = "burst_aware"

    def __init__(
        self,
        config: SystemConfig,
        *,
        tilt: float = 2.0,
        tilts: Sequence[float] = DEFAULT_TILTS,
        burst_window_s: float = 0.5,
        burst_memory: int = 40,
        backlog_llr: float = 0.0,
        regime_hold_s: float = 0.0,
        regime_llr: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        self.regime_hold_s = checked_number("regime_hold_s", regime_hold_s)
        self.regime_llr = checked_number("regime_llr", regime_llr)
        self.backlog_llr = checked_number("backlog_llr", backlog_llr, unit="log-likelihood units")
        grid = tuple(float(k) for k in tilts)
        if not grid or grid[0] != 1.0 or list(grid) != sorted(set(grid)):
            raise ValueError(
                f"tilts must be increasing latency-weight multipliers starting at 1, got {tilts!r}"
            )
        self.tilt = checked_number("tilt", tilt)
        self.tilts = grid
        self.meter = BurstMeter(burst_window_s, burst_memory)
        self._tilted_rows = [self._rows] + [self._build_table(kappa).rows for kappa in grid[1:]]
        self._midpoints = [(a + b) / 2.0 for a, b in itertools.pairwise(grid)]
        self.kappa = 1.0

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: the proposed scheduler's reset, the burst meter forgotten."""
        super().reset(sim)
        self.meter.reset(sim.now_s, sim.n_arrived)
        self._rows = self._tilted_rows[0]
        self.kappa = 1.0
        self._alarms = 0
        self._last_rate = 0.0
        self._onset_s = -math.inf  # the last jump up
        self._floor = 0.0  # the rate held after it
        self._recorded = True  # the current regime's rate is recorded
        self._regime_rate = 0.0  # the last recorded regime rate, and when
        self._regime_at_s = -math.inf
        self._cusum = 0.0  # the regime CUSUM, and the counter at its last update
        self._t_s, self._count = sim.now_s, float(sim.n_arrived)

    def decision_rows(self, rate_lo_per_s: float, rate_hi_per_s: float) -> list[DecisionRow]:
        """Every row the scheduler may follow while its rate estimate is in ``[rate_lo_per_s,
        rate_hi_per_s]`` (requests/s): those of each tilted table, since the burst meter may
        select any of them (labels start with ``kappa <tilt>``). Without rate estimation or with
        ``tilt = 0`` only the untilted table is ever used."""
        if not self.rate_estimation or self.tilt == 0.0:
            return super().decision_rows(rate_lo_per_s, rate_hi_per_s)
        out: list[DecisionRow] = []
        for kappa, table_rows in zip(self.tilts, self._tilted_rows, strict=True):
            rows = self._table_decision_rows(table_rows, rate_lo_per_s, rate_hi_per_s)
            out += [replace(r, label=f"kappa {kappa:g}, {r.label}") for r in rows]
        return out

    def decide(self, sim: Simulator) -> Decision:
        """The proposed scheduler's decision on the table of the tilt nearest to 1 + tilt x sigma."""
        if self.rate_estimation and self.tilt > 0.0:
            now, count = sim.now_s, sim.n_arrived
            rate = self.estimator.update(now, count)  # Proposed.decide's own update is then a no-op
            kappa = 1.0 + self.tilt * self.meter.update(now, count, rate)
            index = 0
            for midpoint in self._midpoints:
                if kappa < midpoint:
                    break
                index += 1
            self._rows = self._tilted_rows[index]
            self.kappa = self.tilts[index]
        return super().decide(sim)

    def _estimate_rate(self, sim: Simulator) -> float:
        """The estimator's rate, raised to the rate the backlog implies, ``(q - 1) / age`` of
        the oldest request, when the backlog is significantly more than the estimate explains:
        the Poisson log-likelihood ratio of ``k = q - 1`` arrivals in ``age`` s at rate
        ``k / age`` against the estimate, ``k ln(k / mu) - (k - mu)`` with ``mu = rate * age``,
        exceeds ``backlog_llr`` (0: never). The queue is the most recent evidence of the rate;
        the estimator weighs it only after its own delay. With ``regime_hold_s``, the estimate
        is first raised to the remembered rate of the previous high regime
        (:meth:`_regime_floor`)."""
        rate = self.estimator.update(sim.now_s, sim.n_arrived)
        if self.regime_hold_s:
            rate = self._regime_floor(sim.now_s, sim.n_arrived, rate)
        threshold = self.backlog_llr
        if threshold:
            k, age = sim.queue_len - 1, sim.oldest_wait_s
            mu = rate * age
            if k > mu and age > 0.0 and (mu <= 0.0 or k * math.log(k / mu) - (k - mu) > threshold):
                return k / age
        return rate

    def _regime_floor(self, now: float, count: float, rate: float) -> float:
        """The estimator's ``rate`` (requests/s), held for ``regime_hold_s`` after a jump up at
        least at the rate recorded :data:`REGIME_SETTLE_S` into the previous jump (if recorded
        less than :data:`REGIME_MEMORY_S` ago). A jump up is the estimator's own alarm or, with
        ``regime_llr``, a CUSUM for a return to that remembered rate R: per interval with ``k``
        arrivals in ``dt`` s it adds ``k ln(R / rate) - (R - rate) dt`` and alarms above
        ``regime_llr`` (``count`` is the arrival counter at ``now`` s). O(1)."""
        alarms = self.estimator.alarms
        recent = now - self._regime_at_s < REGIME_MEMORY_S
        if alarms != self._alarms:
            self._alarms = alarms
            if rate > self._last_rate:
                self._onset_s = now
                self._recorded = False
                self._floor = self._regime_rate if recent else 0.0
        elif self.regime_llr and recent and now - self._onset_s >= self.regime_hold_s:
            high = self._regime_rate
            if rate > 0.0 and high > 2.0 * rate:
                dt = now - self._t_s
                step = (count - self._count) * math.log(high / rate) - (high - rate) * dt
                self._cusum = max(0.0, self._cusum + step)
                if self._cusum > self.regime_llr:
                    self._onset_s, self._floor, self._cusum = now, high, 0.0
            else:
                self._cusum = 0.0
        self._last_rate = rate
        self._t_s, self._count = now, count
        since = now - self._onset_s
        if not self._recorded and since >= REGIME_SETTLE_S:
            self._recorded = True
            self._regime_rate, self._regime_at_s = rate, now
        if since < self.regime_hold_s and self._floor > rate:
            return self._floor
        return rate

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that differ from the defaults."""
        params = super().params()
        if self.regime_hold_s:
            params["regime_hold_s"] = self.regime_hold_s
        if self.regime_llr:
            params["regime_llr"] = self.regime_llr
        if self.backlog_llr:
            params["backlog_llr"] = self.backlog_llr
        if self.tilt != 2.0:
            params["tilt"] = self.tilt
        if self.tilts != DEFAULT_TILTS:
            params["tilts"] = list(self.tilts)
        if self.meter.params() != {"window_s": 0.5, "memory": 40}:
            params["burst_window_s"] = self.meter.window_s
            params["burst_memory"] = self.meter.memory
        return params
