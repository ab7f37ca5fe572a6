"""Online estimates a real server can make from running counters: an exponentially weighted rate
(:class:`EwmaRate`) and a multi-scale arrival-rate estimate with change detection
(:class:`RateEstimator`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["EwmaRate", "RateEstimator"]


class EwmaRate:
    """Exponentially weighted moving average of a rate, fed with a cumulative counter.

    Each :meth:`update` observes the counter at time ``t_s``; the increment since the previous
    update, divided by the elapsed time, is averaged with weight ``1 - exp(-dt / tau)``, so an
    interval's weight grows with its length (the estimate does not depend on how often it is
    updated within a constant-rate stretch). Starts at ``initial``.

    With ``unbiased``, a cold start (:meth:`reset` without ``warm``) does not average with the
    initial value: the estimate is divided by the weight of what has been observed,
    ``1 - exp(-(t - t_start) / tau)``, so that before ``t >> tau`` it is the mean rate since the
    start (as Adam's bias correction), and 0 before any time has passed.

    :param tau_s: time constant (s).
    :param initial: estimate before the first interval (units of the counter per second).
    :param unbiased: correct a cold start's bias towards ``initial`` (see above).
    """

    __slots__ = ("_count", "_raw", "_start_s", "_t_s", "inv_tau", "unbiased", "value")

    def __init__(self, tau_s: float, initial: float = 0.0, *, unbiased: bool = False) -> None:
        if not tau_s > 0:
            raise ValueError(f"tau_s must be > 0, got {tau_s!r}")
        self.inv_tau = 1.0 / tau_s
        self.unbiased = unbiased
        self.reset(initial)

    def reset(
        self, initial: float = 0.0, t_s: float = 0.0, count: float = 0.0, *, warm: bool = False
    ) -> None:
        """Restart at the estimate ``initial``; the counter reads ``count`` at time ``t_s`` (s).
        ``warm``: ``initial`` stands for a long history (no bias correction); otherwise the
        start is cold."""
        self.value = initial
        self._raw = 0.0 if self.unbiased and not warm else initial
        self._start_s = -math.inf if warm or not self.unbiased else t_s
        self._t_s = t_s
        self._count = count

    def update(self, t_s: float, count: float) -> float:
        """Observe the cumulative ``count`` at time ``t_s`` (s); returns the new estimate."""
        dt = t_s - self._t_s
        if dt > 0.0:
            weight = 1.0 - math.exp(-dt * self.inv_tau)
            self._raw += weight * ((count - self._count) / dt - self._raw)
            self._t_s = t_s
            self._count = count
            if self._start_s == -math.inf:
                self.value = self._raw
            else:
                self.value = self._raw / (1.0 - math.exp(-(t_s - self._start_s) * self.inv_tau))
        return self.value


class RateEstimator:
    """Online arrival-rate estimate from a cumulative arrival counter, O(1) per update.

    - EWMAs of the interval rates at time constants ``taus_s`` (each interval weighted by
      ``1 - exp(-dt / tau)``, as :class:`batchenv.estimators.EwmaRate`), bias-corrected for the
      time since the last restart ``a`` (divided by ``1 - exp(-a / tau)``), so they start
      unbiased without a prior.
    - Scale selection by intersection of confidence intervals (ICI): from the fastest scale up,
      keep the interval ``estimate +- z sqrt((estimate + 1 / T) / T)`` (Poisson noise over the
      effective window ``T = 2 tau tanh(a / 2 tau)``); the estimate is the slowest scale whose
      interval still meets all faster ones. A stationary load gets the slowest (least noisy)
      scale; a drift selects a faster one. ``z`` is large (6) because real traffic is
      over-dispersed: on the Azure trace the variance of the counts is about 6.4 times the
      Poisson variance (index of dispersion at 1 s windows), so z = 6 is about 2.4 standard
      deviations of the real noise.
    - Change detection: a one-sided Poisson CUSUM for a jump up by ``cusum_ratio``: per
      interval with ``k`` arrivals in ``dt`` s it adds ``k ln(r) - (r - 1) rate dt`` (the
      log-likelihood ratio of rate ``r * rate`` against the current estimate); above
      ``cusum_threshold`` every EWMA restarts at the rate observed since the CUSUM last left 0
      (the estimated change point). Drops are only tracked by the EWMAs (``detect_drops=False``):
      underestimating the rate after a short lull costs more than overestimating it
      (docs/algorithm.md).

    :param taus_s: EWMA time constants (s), increasing; default 0.25, 0.5, 1, 2, 4, 8.
    :param z: half-width of the ICI intervals, in Poisson standard deviations; default 6.
    :param cusum_ratio: rate ratio r > 1 the CUSUM detects; default 4.
    :param cusum_threshold: CUSUM alarm level (log-likelihood units); default 10.
    :param detect_drops: also restart on a drop by the same ratio (a second, downward CUSUM).
    :ivar value: the current estimate (requests/s); 0 before the first interval.
    :ivar alarms: CUSUM restarts since :meth:`reset`.
    """

    def __init__(
        self,
        taus_s: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
        z: float = 6.0,
        cusum_ratio: float = 4.0,
        cusum_threshold: float = 10.0,
        detect_drops: bool = False,
    ) -> None:
        taus = tuple(float(t) for t in taus_s)
        if not taus or any(not t > 0 for t in taus) or list(taus) != sorted(set(taus)):
            raise ValueError(f"taus_s must be increasing time constants > 0 (s), got {taus_s!r}")
        if not z > 0:
            raise ValueError(f"z must be > 0, got {z!r}")
        if not cusum_ratio > 1:
            raise ValueError(f"cusum_ratio must be > 1, got {cusum_ratio!r}")
        if not cusum_threshold > 0:
            raise ValueError(f"cusum_threshold must be > 0, got {cusum_threshold!r}")
        self.taus_s = taus
        self.z = float(z)
        self.cusum_ratio = float(cusum_ratio)
        self.cusum_threshold = float(cusum_threshold)
        self.detect_drops = bool(detect_drops)
        self._ln_ratio = math.log(cusum_ratio)
        self._inv_taus = tuple(1.0 / t for t in taus)
        self.reset()

    def reset(self, t_s: float = 0.0, count: float = 0.0) -> None:
        """Forget everything; the counter reads ``count`` at time ``t_s`` (s)."""
        self._ewma = [0.0] * len(self.taus_s)
        self._start_s = t_s
        self._t_s = t_s
        self._count = count
        self._up = self._down = 0.0
        self._up_from = self._down_from = (t_s, count)
        self.value = 0.0
        self.alarms = 0

    def update(self, t_s: float, count: float) -> float:
        """Observe the counter ``count`` at time ``t_s`` (s); returns the estimate (requests/s)."""
        dt = t_s - self._t_s
        if dt <= 0.0:
            return self.value
        arrived = count - self._count
        restarted = self.value > 0.0 and self._cusum(t_s, count, dt, arrived)
        self._t_s = t_s
        self._count = count
        if not restarted:
            rate = arrived / dt
            ewma = self._ewma
            for k, inv_tau in enumerate(self._inv_taus):
                ewma[k] -= math.expm1(-dt * inv_tau) * (rate - ewma[k])
        self.value = self._select(t_s - self._start_s)
        return self.value

    def _cusum(self, t_s: float, count: float, dt: float, arrived: float) -> bool:
        """Advance the CUSUM(s) by one interval; restart the EWMAs on an alarm (returns True)."""
        expected = self.value * dt
        up = self._up + arrived * self._ln_ratio - (self.cusum_ratio - 1.0) * expected
        if up <= 0.0:
            up = 0.0
            self._up_from = (t_s, count)
        self._up = up
        if up > self.cusum_threshold:
            self._restart(t_s, count, self._up_from)
            return True
        if self.detect_drops:
            down = self._down - arrived * self._ln_ratio - (1.0 / self.cusum_ratio - 1.0) * expected
            if down <= 0.0:
                down = 0.0
                self._down_from = (t_s, count)
            self._down = down
            if down > self.cusum_threshold:
                self._restart(t_s, count, self._down_from)
                return True
        return False

    def _restart(self, t_s: float, count: float, since: tuple[float, float]) -> None:
        """Restart every EWMA at the rate observed since ``since`` = (time s, count)."""
        t0, n0 = since
        if t0 >= t_s:
            t0, n0 = self._t_s, self._count
        rate = (count - n0) / (t_s - t0)
        self._start_s = t0
        for k, tau in enumerate(self.taus_s):
            self._ewma[k] = rate * (1.0 - math.exp(-(t_s - t0) / tau))
        self._up = self._down = 0.0
        self._up_from = self._down_from = (t_s, count)
        self.alarms += 1

    def _select(self, age_s: float) -> float:
        """The slowest bias-corrected EWMA whose interval meets those of all faster ones."""
        if age_s <= 0.0:
            return self.value
        z = self.z
        low, high = -math.inf, math.inf  # the intersection of the faster scales' intervals
        chosen = 0.0
        for ewma, tau, inv_tau in zip(self._ewma, self.taus_s, self._inv_taus, strict=True):
            weight = -math.expm1(-age_s * inv_tau)  # 1 - exp(-age / tau), the kernel's mass
            estimate = ewma / weight
            window = 2.0 * tau * weight / (2.0 - weight)  # 2 tau tanh(age / 2 tau)
            half = z * math.sqrt((estimate + 1.0 / window) / window)
            if estimate + half < low or estimate - half > high:
                break
            if estimate - half > low:
                low = estimate - half
            if estimate + half < high:
                high = estimate + half
            chosen = estimate
        return chosen

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this estimator."""
        return {
            "taus_s": list(self.taus_s),
            "z": self.z,
            "cusum_ratio": self.cusum_ratio,
            "cusum_threshold": self.cusum_threshold,
            "detect_drops": self.detect_drops,
        }
