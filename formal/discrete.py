"""The discrete-time abstraction of the batching system that the PRISM/Storm models encode.

Time advances in ticks of ``tick_ms`` (1-5 ms). The state at a tick boundary is

- ``q``: waiting requests, 0..``queue_cap`` (the model's queue capacity; arrivals beyond it are
  dropped);
- ``a``: age of the oldest waiting request in whole ticks since the tick it was counted at
  (0..``max_age_ticks``; ``max_age_ticks + 1`` marks a timeout violation, see below);
- ``r_i``: remaining service ticks of worker ``i`` (0 = idle).

One tick, from boundary k to k + 1:

1. Decision (only if a worker is idle and ``q > 0``): wait, or dispatch ``b = min(q, cap)``
   requests (FIFO) on a model to the lowest-numbered idle worker. At most one dispatch per tick.
2. The batch occupies its worker for ``service_ms(b, m) / tick_ms`` ticks, rounded down or up at
   random so that the *mean* service time is exact: ``hi`` ticks with probability ``p_hi``, else
   ``lo = hi - 1`` ticks.
3. ``N`` requests arrive during the tick, ``N ~ Poisson(rate * tick)`` truncated at ``K`` (the
   tail mass beyond ``K``, below ``arrival_tail``, is put on ``K``). They are counted at boundary
   k + 1 with age 0; ``min(q + N, queue_cap)`` wait, the rest are dropped. With Markov-modulated
   arrivals (``mmpp=True``, the bursty scenario) the rate is that of the current phase ``ph``,
   and the phase moves at the boundary with the one-tick transition matrix ``expm(Q * tick)`` of
   the phase process (Q its generator): the phase is held constant within a tick, an error of
   order ``switching rate x tick`` (0.1% at 0.5/s and 2 ms).
4. Ages: a dispatch that empties the queue resets ``a``; one that leaves requests behind keeps the
   oldest age (an upper bound on the age of the new oldest request: the model keeps one age, not
   one per request); otherwise ``a`` grows by one tick. While every worker is busy, ``a`` holds
   the age the oldest request will have when the first worker frees, capped at
   ``max_age_ticks`` (constant during the busy period): decisions happen only when a worker is
   idle, so this merges states that differ only in ages that cannot matter.

The timeout shield of :mod:`batchenv.sim` becomes: at a decision with ``a >= max_age_ticks``
(``floor(max_wait_ms / tick_ms)``) wait is not allowed. A wait there would leave the oldest
request waiting beyond ``max_wait_ms`` while a worker is idle; the model then sets
``a = max_age_ticks + 1``, the *timeout violation* that :mod:`formal.check` shows unreachable
under every scheduler.

Latency in the model is counted from the boundary at which a request is counted; a Poisson
arrival comes on average half a tick earlier, so reported latencies add ``tick_ms / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import expm

from batchenv.config import ConfigError, SystemConfig, mmpp_stationary
from batchenv.timing import ServiceTable

__all__ = [
    "MAX_QUEUE_CAP",
    "TICK_MS_RANGE",
    "ServiceTicks",
    "TickModel",
    "truncated_poisson",
]

TICK_MS_RANGE = (1.0, 5.0)
"""Allowed tick lengths (ms), inclusive."""

MAX_QUEUE_CAP = 2048
"""Largest model queue capacity accepted (the state space grows linearly with it)."""


def truncated_poisson(mean: float, tail: float) -> tuple[float, ...]:
    """Probabilities ``p_0..p_K`` of a Poisson(``mean``) count truncated at the smallest ``K`` with
    ``P(N > K) <= tail``; the tail mass is added to ``p_K`` so that they sum to one.

    :param mean: mean count (> 0).
    :param tail: largest probability mass allowed beyond ``K``, in (0, 0.1].
    """
    if not mean > 0 or not math.isfinite(mean):
        raise ValueError(f"mean must be a finite number > 0, got {mean!r}")
    if not 0 < tail <= 0.1:
        raise ValueError(f"tail must be in (0, 0.1], got {tail!r}")
    probs = [math.exp(-mean)]
    cumulative = probs[0]
    while 1.0 - cumulative > tail:
        probs.append(probs[-1] * mean / len(probs))
        cumulative += probs[-1]
    probs[-1] += max(0.0, 1.0 - cumulative)
    total = sum(probs)
    return tuple(p / total for p in probs)


@dataclass(frozen=True)
class ServiceTicks:
    """Service time of one (model, batch size) in ticks: ``hi`` with probability ``p_hi``, else
    ``hi - 1`` (``p_hi = 1`` when the service time is a whole number of ticks)."""

    service_ms: float
    hi: int
    p_hi: float

    @property
    def lo(self) -> int:
        return self.hi - 1

    @property
    def mean_ticks(self) -> float:
        return self.hi - (1.0 - self.p_hi)


@dataclass(frozen=True)
class TickModel:
    """The discrete-time model of ``config`` at a Poisson arrival rate.

    :param config: the served system (models, timing table, workers, max_wait_ms, reward weights).
    :param rate_per_s: Poisson arrival rate (requests/s); default the config's mean rate.
    :param tick_ms: tick length (ms), in [1, 5].
    :param queue_cap: the model's queue capacity (requests), in [1, min(config.queue_capacity,
        2048)]; arrivals beyond it are dropped. Smaller than the config's to keep the state space
        small; pick it so that the overflow probability is small.
    :param arrival_tail: probability mass of the per-tick Poisson count cut off (and put on the
        largest count kept), in (0, 0.1].
    :param mmpp: model the config's Markov-modulated arrivals (``arrivals.process: mmpp``) phase
        by phase, rescaled to the mean ``rate_per_s`` when it is given; False: Poisson at the
        mean rate.
    """

    config: SystemConfig
    rate_per_s: float | None = None
    tick_ms: float = 2.0
    queue_cap: int = 128
    arrival_tail: float = 1e-6
    mmpp: bool = False
    phase_rates_per_s: tuple[float, ...] = field(init=False)
    phase_arrival_probs: tuple[tuple[float, ...], ...] = field(init=False, repr=False)
    phase_switch: tuple[tuple[float, ...], ...] = field(init=False, repr=False)
    phase_stationary: tuple[float, ...] = field(init=False, repr=False)
    max_age_ticks: int = field(init=False)
    service: tuple[tuple[ServiceTicks, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        config = self.config
        rate = config.arrivals.mean_rate_per_s if self.rate_per_s is None else self.rate_per_s
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ConfigError("rate_per_s", f"must be a number > 0 (requests/s), got {rate!r}")
        tick = self.tick_ms
        lo_tick, hi_tick = TICK_MS_RANGE
        if isinstance(tick, bool) or not isinstance(tick, int | float) or not lo_tick <= tick <= hi_tick:
            raise ConfigError("tick_ms", f"must be a number in [{lo_tick:g}, {hi_tick:g}] (ms), got {tick!r}")
        cap_limit = min(config.queue_capacity, MAX_QUEUE_CAP)
        cap = self.queue_cap
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= cap_limit:
            raise ConfigError("queue_cap", f"must be an integer in [1, {cap_limit}] (requests), got {cap!r}")
        if not isinstance(self.arrival_tail, float) or not 0 < self.arrival_tail <= 0.1:
            raise ConfigError("arrival_tail", f"must be a float in (0, 0.1], got {self.arrival_tail!r}")
        phases, switch, stationary = self._phases(float(rate), tick)
        for phase_rate in phases:
            mean_per_tick = phase_rate * tick / 1000.0
            if mean_per_tick > 20:
                raise ConfigError(
                    "rate_per_s",
                    f"{phase_rate:g} requests/s is {mean_per_tick:.1f} arrivals per {tick:g} ms tick; "
                    "must be <= 20 per tick (use a shorter tick)",
                )
        object.__setattr__(self, "rate_per_s", float(rate))
        object.__setattr__(self, "tick_ms", float(tick))
        object.__setattr__(self, "phase_rates_per_s", phases)
        object.__setattr__(
            self,
            "phase_arrival_probs",
            tuple(truncated_poisson(r * tick / 1000.0, self.arrival_tail) for r in phases),
        )
        object.__setattr__(self, "phase_switch", switch)
        object.__setattr__(self, "phase_stationary", stationary)
        object.__setattr__(self, "max_age_ticks", max(1, math.floor(config.max_wait_ms / tick + 1e-9)))
        table = ServiceTable(config).service_ms
        service = []
        for m in range(config.n_models):
            row = []
            for b in range(1, config.max_batch_size + 1):
                ms = float(table[m, b])
                ticks = ms / tick
                if ticks < 1.0 - 1e-9:
                    raise ConfigError(
                        "tick_ms",
                        f"must be <= the shortest service time ({ms:g} ms for b={b} on "
                        f"{config.models[m].name}), got {tick:g}",
                    )
                hi = math.ceil(ticks - 1e-9)
                frac = ticks - (hi - 1)
                p_hi = 1.0 if frac > 1.0 - 1e-9 else max(0.0, frac)
                row.append(ServiceTicks(ms, hi, p_hi))
            service.append(tuple(row))
        object.__setattr__(self, "service", tuple(service))

    def _phases(
        self, rate: float, tick_ms: float
    ) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...], tuple[float, ...]]:
        """Rates of the arrival phases (requests/s), the one-tick phase transition matrix and the
        stationary phase distribution; one phase for Poisson arrivals."""
        if not self.mmpp:
            return (rate,), ((1.0,),), (1.0,)
        arrivals = self.config.arrivals
        if arrivals.process != "mmpp":
            raise ConfigError(
                "arrivals.process", f"must be 'mmpp' for an MMPP model, got {arrivals.process!r}"
            )
        rates = np.asarray(arrivals.rates_per_s, dtype=float)
        switch = np.asarray(arrivals.switch_rates_per_s, dtype=float)
        stationary = np.asarray(mmpp_stationary(switch))
        rates = rates * (rate / float(stationary @ rates))
        generator = switch - np.diag(switch.sum(axis=1))
        step = expm(generator * tick_ms / 1000.0)
        step = np.clip(step, 0.0, None)
        step /= step.sum(axis=1, keepdims=True)
        return (
            tuple(float(r) for r in rates),
            tuple(tuple(float(p) for p in row) for row in step),
            tuple(float(p) for p in stationary),
        )

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_phases(self) -> int:
        """Phases of the arrival process (1 for Poisson)."""
        return len(self.phase_rates_per_s)

    @property
    def arrival_probs(self) -> tuple[float, ...]:
        """Per-tick arrival count distribution of a Poisson model (one phase)."""
        if self.n_phases != 1:
            raise ValueError("arrival_probs: the model has several arrival phases; use phase_arrival_probs")
        return self.phase_arrival_probs[0]

    @property
    def n_workers(self) -> int:
        return self.config.n_workers

    @property
    def n_models(self) -> int:
        return self.config.n_models

    @property
    def max_batch(self) -> int:
        return self.config.max_batch_size

    @property
    def tick_s(self) -> float:
        return self.tick_ms / 1000.0

    @property
    def max_arrivals(self) -> int:
        """``K``: the largest number of arrivals in one tick (over the phases)."""
        return max(len(p) for p in self.phase_arrival_probs) - 1

    def phase_mean_arrivals(self, phase: int) -> float:
        """Mean arrivals per tick in ``phase`` (truncated distribution)."""
        return sum(k * p for k, p in enumerate(self.phase_arrival_probs[phase]))

    @property
    def mean_arrivals(self) -> float:
        """Mean arrivals per tick of the truncated distribution (stationary over the phases)."""
        return sum(w * self.phase_mean_arrivals(i) for i, w in enumerate(self.phase_stationary))

    @property
    def max_busy_ticks(self) -> int:
        """Largest remaining-service value a worker can hold (``max hi - 1``)."""
        return max(s.hi for row in self.service for s in row) - 1

    def service_ticks(self, model: int, batch: int) -> ServiceTicks:
        """Service of a batch of ``batch`` (1..max_batch) on model index ``model``."""
        return self.service[model][batch - 1]

    def regret(self, model: int) -> float:
        """Quality lost per request served on ``model`` instead of the best model (>= 0)."""
        qualities = self.config.qualities
        return max(qualities) - qualities[model]

    def expected_drops(self, waiting: int, phase: int | None = None) -> float:
        """Expected arrivals dropped in a tick that starts with ``waiting`` requests queued, in
        ``phase`` (default: stationary over the phases)."""
        cap = self.queue_cap
        phases = range(self.n_phases) if phase is None else (phase,)
        weights = self.phase_stationary if phase is None else (1.0,) * self.n_phases
        return sum(
            weights[i] * sum(p * max(0, waiting + k - cap) for k, p in enumerate(self.phase_arrival_probs[i]))
            for i in phases
        )

    def truncation_resolution(self, ticks: int) -> float:
        """Largest error the per-tick truncation of the arrival counts can cause in a probability
        of an event within ``ticks`` ticks: the model and the untruncated system can be coupled so
        that they differ only after a tick with more than ``K`` arrivals, which happens with
        probability at most ``1 - (1 - arrival_tail) ** ticks``. Model probabilities below it are
        not resolved."""
        return -math.expm1(ticks * math.log1p(-self.arrival_tail))

    def ticks_of(self, duration_ms: float) -> int:
        """The first age in ticks at which a request has waited ``duration_ms``: ``ceil(duration /
        tick)`` (a policy's timeout T fires at the first tick with ``a * tick >= T``, as in the
        simulator). The shield's ``max_age_ticks`` is rounded down instead: the last tick at which
        the oldest request has not yet waited longer than ``max_wait_ms``."""
        return max(0, math.ceil(duration_ms / self.tick_ms - 1e-9))

    def event_config(self, horizon_s: float) -> SystemConfig:
        """The config of an event-driven simulation of the model's system: its arrival process
        (Poisson at the model's rate, or the config's MMPP at that mean rate), its queue capacity
        (the same drops), one episode of ``horizon_s`` seconds."""
        if self.n_phases == 1:
            arrivals: Any = {"process": "poisson", "rate_per_s": self.rate_per_s, "rate_range_per_s": None}
        else:
            arrivals = self.config.at_rate(self.rate_per_s).arrivals
        return self.config.replace(horizon_s=horizon_s, queue_capacity=self.queue_cap, arrivals=arrivals)

    def describe(self) -> str:
        if self.n_phases == 1:
            arrivals = (
                f"rate {self.rate_per_s:g}/s ({self.mean_arrivals:.3f} arrivals/tick, K={self.max_arrivals})"
            )
        else:
            phases = "/".join(f"{r:g}" for r in self.phase_rates_per_s)
            arrivals = (
                f"MMPP {phases}/s (mean {self.rate_per_s:g}/s, {self.mean_arrivals:.3f} arrivals/tick, "
                f"K={self.max_arrivals})"
            )
        return (
            f"tick {self.tick_ms:g} ms, {arrivals}, queue cap "
            f"{self.queue_cap}, max_wait {self.max_age_ticks} ticks, {self.n_workers} worker(s)"
        )
