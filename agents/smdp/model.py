"""The batching SMDP's data: states, actions, rewards, sojourn times and transition laws.

The decision process (the simulator's semantics, :mod:`batchenv.sim`)
    Decision epochs are the moments the worker is idle and q >= 1 requests wait; the state is q.
    With one worker and Poisson(lambda) arrivals the future after an epoch depends on q only
    (arrival ages matter only for the timeout, see :mod:`agents.optimal`). Actions, with
    s = service(b, m) in s:

    - wait: until the next arrival, Exp(lambda): expected sojourn 1 / lambda, reward
      -w_lat q / lambda, next state q + 1.
    - dispatch (m, b), 1 <= b <= min(q, max_batch_size), every b (not only table sizes: the
      simulator interpolates or pads service times): sojourn s, reward
      b (quality(m) - w_lat s) - w_lat ((q - b) s + lambda s^2 / 2) (the batch's score, the
      leftover's wait through the service, the expected waiting area of the Poisson(lambda s)
      arrivals during it), next state q - b + N with N ~ Poisson(lambda s).
    - q = 0 (the service ended with an empty queue): the worker idles until the next arrival,
      sojourn 1 / lambda, no cost, next state 1.

    The gain g (reward per second) divided by lambda is the long-run score per arrived request,
    the simulator's ``total_reward / n_arrived``; cost per request = best quality - score.
    SLO penalties need request ages: ``reward.w_slo`` must be 0 (ConfigError otherwise), as must
    ``n_workers`` be 1 and ``arrivals.process`` be ``poisson``.

Queue cap
    The states are q = 0..K; the cap state stands for "K or more". K starts at
    :func:`default_queue_cap` (twice a full batch plus the arrivals of the longest service up to
    8 standard deviations: 256 to 586 for 20 to 500/s on the default system) and
    :func:`agents.smdp.solve_optimal` doubles it until the cap state's stationary probability is
    at most :data:`CAP_PROBABILITY` (1e-12). Near saturation (rate >= 90% of the largest
    throughput) K is ``queue_capacity`` and the model is exact, drops included (expected drops
    E[(N - c)+] at c free places, and the waiting area that dropped arrivals do not spend).
    tests/test_optimal.py checks that doubling K changes the score per request by less than
    1e-12 and leaves the policy unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from batchenv.config import ConfigError, SystemConfig
from batchenv.timing import ServiceTable

__all__ = [
    "ACTION_SETS",
    "CAP_PROBABILITY",
    "SMDPModel",
    "build_smdp",
    "check_action_set",
    "check_queue_cap",
    "check_supported",
    "checked_rate",
    "default_queue_cap",
]


ACTION_SETS = ("any", "whole", "table")
"""Batch sizes a dispatch may use at queue length q: ``any`` b in 1..min(q, B); ``whole`` only
b = min(q, B), as the env's ``Discrete(1 + M)``; ``table`` b = min(size, q) for the env's
``batch_choice`` sizes (table sizes below B, then B)."""

CAP_PROBABILITY = 1e-12
"""Largest stationary probability of the cap state q = K (at decision epochs) that the default
cap accepts; above it, :func:`agents.smdp.solve_optimal` doubles K."""


@dataclass(frozen=True)
class SMDPModel:
    """The data of the batching SMDP for one (system, arrival rate, queue cap).

    What :func:`build_smdp` returns and the solvers of :mod:`agents.smdp.solvers` solve. Replace
    ``reward`` or ``tau`` (``dataclasses.replace``) to solve a modified SMDP with the same
    transition law.

    States are the queue lengths q = 0..K at a decision epoch (K = ``cap``; the cap state stands
    for "K or more" unless ``exact_capacity``). Actions: 0 is wait; 1 + a with
    a = m * B + (b - 1) dispatches b requests (1 <= b <= B = ``max_batch``) on model index m
    (0 <= m < M = ``n_models``). Times in s, rewards in score units.

    :ivar rate_per_s: Poisson arrival rate (requests/s).
    :ivar cap: K, the largest queue length of the state space (requests).
    :ivar exact_capacity: K equals the system's ``queue_capacity``: drops are modelled exactly.
    :ivar n_models: M, the number of models.
    :ivar max_batch: B, the largest batch size (requests).
    :ivar reward: (K + 1, 1 + M B) expected reward of the sojourn; -inf where not allowed.
    :ivar tau: (K + 1, 1 + M B) expected sojourn time (s); 1 where not allowed.
    :ivar allowed: (K + 1, 1 + M B) the actions allowed at each q (bool).
    :ivar leftover: (K + 1, M B) queue left behind by each dispatch, q - b (requests); 0 where
        not allowed.
    :ivar pmf: (M B, L + 1) Poisson pmf of the arrivals during each dispatch at 0..L - 1; last
        entry P(N >= L).
    :ivar drops: (K + 1, 1 + M B) expected dropped arrivals of the sojourn (requests; 0 unless
        ``exact_capacity``).
    """

    rate_per_s: float
    cap: int
    exact_capacity: bool
    n_models: int
    max_batch: int
    reward: np.ndarray
    tau: np.ndarray
    allowed: np.ndarray
    leftover: np.ndarray
    pmf: np.ndarray
    drops: np.ndarray


def check_supported(config: SystemConfig) -> None:
    """Raise ConfigError (naming the field) unless the SMDP models ``config`` exactly.

    The SMDP needs one worker, Poisson arrivals and ``reward.w_slo == 0``.

    :param config: the system.
    """
    if config.n_workers != 1:
        raise ConfigError("n_workers", f"the exact SMDP solver models one worker, got {config.n_workers}")
    if config.arrivals.process != "poisson":
        raise ConfigError(
            "arrivals.process",
            f"the exact SMDP solver needs 'poisson' arrivals, got {config.arrivals.process!r}",
        )
    if config.reward.w_slo != 0:
        raise ConfigError(
            "reward.w_slo",
            "the exact SMDP solver needs w_slo = 0 (an SLO miss depends on request ages, which "
            f"the queue-length state does not carry), got {config.reward.w_slo}",
        )


def checked_rate(config: SystemConfig, rate_per_s: float | None) -> float:
    """``rate_per_s`` as a float (requests/s; None: the config's mean rate).

    :param config: the system.
    :param rate_per_s: the arrival rate (requests/s) or None.
    :raises ValueError: unless the rate is finite and > 0.
    """
    rate = config.arrivals.mean_rate_per_s if rate_per_s is None else float(rate_per_s)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate_per_s must be a finite number > 0 (requests/s), got {rate_per_s!r}")
    return rate


def check_queue_cap(config: SystemConfig, queue_cap: int | None) -> None:
    """Raise ValueError unless ``queue_cap`` is None or in [1, queue_capacity] (requests).

    :param config: the system.
    :param queue_cap: the state-space cap K or None.
    """
    if queue_cap is not None and not 1 <= queue_cap <= config.queue_capacity:
        raise ValueError(
            f"queue_cap must be in [1, queue_capacity = {config.queue_capacity}], got {queue_cap!r}"
        )


def check_action_set(action_set: str) -> None:
    """Raise ValueError unless ``action_set`` is one of :data:`ACTION_SETS`.

    :param action_set: the name to check.
    """
    if action_set not in ACTION_SETS:
        raise ValueError(f"action_set must be one of {ACTION_SETS}, got {action_set!r}")


def default_queue_cap(config: SystemConfig, rate_per_s: float) -> int:
    """Return the first queue-length cap K (requests) that ``solve_optimal`` tries.

    :func:`agents.smdp.solve_optimal` then doubles K until the cap's stationary probability is
    below :data:`CAP_PROBABILITY` (or K reaches ``queue_capacity``).

    ``K = 2 ceil(B + mu + 8 sqrt(mu))`` with ``mu = rate * (longest service)``: twice a full
    batch plus the arrivals during the longest service up to 8 standard deviations; at least
    ``4 B``. At 90% or more of the largest sustainable throughput: ``queue_capacity`` (the model
    is then exact, drops included). Never above ``queue_capacity``.

    :param config: the system.
    :param rate_per_s: the Poisson arrival rate (requests/s).
    """
    table = ServiceTable(config)
    mu = rate_per_s * table.max_service_s
    cap = max(4 * config.max_batch_size, 2 * math.ceil(config.max_batch_size + mu + 8 * math.sqrt(mu)))
    if rate_per_s >= 0.9 * table.max_throughput_per_s(1):
        cap = config.queue_capacity
    return min(cap, config.queue_capacity)


def _support(mean: float) -> int:
    """Length n of a Poisson(mean) support 0..n - 1 whose tail P(N >= n) is below 1e-25."""
    return math.ceil(mean + 12.0 * math.sqrt(mean) + 30.0)


def _poisson_pmf(mean: np.ndarray, length: int) -> np.ndarray:
    """(len(mean), length + 1): pmf of Poisson(mean) at 0..length - 1, last column P(N >= length)."""
    n = np.arange(length)
    pmf = np.empty((len(mean), length + 1))
    pmf[:, :length] = stats.poisson.pmf(n[None, :], mean[:, None])
    pmf[:, length] = stats.poisson.sf(length - 1, mean)
    return pmf


def _allowed_batches(config: SystemConfig, cap: int, action_set: str) -> np.ndarray:
    """(K + 1, B) mask: batch size b (column b - 1) may be dispatched at queue length q."""
    q = np.arange(cap + 1)[:, None]
    b = np.arange(1, config.max_batch_size + 1)[None, :]
    if action_set == "any":
        return b <= q
    if action_set == "whole":
        return b == np.minimum(q, config.max_batch_size)
    sizes = [x for x in config.timing.batch_sizes if x < config.max_batch_size]
    sizes.append(config.max_batch_size)
    return np.any([b == np.minimum(q, size) for size in sizes], axis=0)


def build_smdp(config: SystemConfig, rate_per_s: float, queue_cap: int, action_set: str = "any") -> SMDPModel:
    """Build the SMDP's rewards, sojourn times and transition laws of every (queue length, action).

    As described in the module docstring; not cached (build once, solve as often as needed).
    Only the fields the SMDP reads matter: models, timing, rewards, ``max_batch_size`` and
    ``queue_capacity`` (not the name, horizon, SLO threshold, arrival settings or env options).

    :param config: the system; needs ``n_workers == 1``, ``arrivals.process == "poisson"`` and
        ``reward.w_slo == 0`` (ConfigError naming the field otherwise).
    :param rate_per_s: Poisson arrival rate (requests/s), finite and > 0.
    :param queue_cap: K, the largest queue length of the state space (requests), in
        [1, ``queue_capacity``]; :func:`default_queue_cap` gives a first guess. With K equal to
        ``queue_capacity`` drops are modelled exactly, else the cap state stands for "K or more".
    :param action_set: the batch sizes a dispatch may use (:data:`ACTION_SETS`); default ``"any"``.
    :returns: an :class:`SMDPModel` with arrays of K + 1 rows.
    """
    check_supported(config)
    lam = checked_rate(config, rate_per_s)
    check_queue_cap(config, queue_cap)
    check_action_set(action_set)
    cap = int(queue_cap)
    w_lat = config.reward.w_latency_per_s
    w_drop = config.reward.w_drop
    n_models, max_batch = config.n_models, config.max_batch_size
    table = ServiceTable(config)
    service_s = (table.service_ms[:, 1:] / 1000.0).reshape(-1)  # a = m * B + (b - 1)
    batch = np.tile(np.arange(1, max_batch + 1), n_models)
    quality = np.repeat(np.asarray(config.qualities), max_batch)
    mean = lam * service_s
    support = _support(float(mean.max()))
    pmf = _poisson_pmf(mean, min(support, cap + 1))

    q = np.arange(cap + 1)
    n_actions = 1 + n_models * max_batch
    leftover = q[:, None] - batch[None, :]
    allowed = np.ones((cap + 1, n_actions), dtype=bool)
    allowed[:, 1:] = np.tile(_allowed_batches(config, cap, action_set), n_models)
    leftover = np.maximum(leftover, 0)

    reward = np.full((cap + 1, n_actions), -np.inf)
    tau = np.ones((cap + 1, n_actions))
    # wait: until the next arrival, Exp(lam); the q waiting requests cost w_lat each per second.
    reward[:, 0] = -w_lat * q / lam
    tau[:, 0] = 1.0 / lam
    exact_capacity = cap == config.queue_capacity
    if exact_capacity:
        reward[cap, 0] -= w_drop  # the next arrival finds a full queue and is dropped
    # dispatch (m, b): the batch's own score, the leftover waiting through the service, and the
    # arrivals during the service (expected area lam s^2 / 2).
    dispatch = batch * (quality - w_lat * service_s) - w_lat * (leftover * service_s + lam * service_s**2 / 2)
    drops = np.zeros((cap + 1, n_actions))
    if exact_capacity:
        drops[cap, 0] = 1.0
        drops[:, 1:], lost_area = _overflow(config, lam, service_s, leftover)
        dispatch -= w_drop * drops[:, 1:] - w_lat * lost_area
    reward[:, 1:] = np.where(allowed[:, 1:], dispatch, -np.inf)
    tau[:, 1:] = np.where(allowed[:, 1:], service_s[None, :], 1.0)
    return SMDPModel(
        rate_per_s=lam,
        cap=cap,
        exact_capacity=exact_capacity,
        n_models=n_models,
        max_batch=max_batch,
        reward=reward,
        tau=tau,
        allowed=allowed,
        leftover=leftover,
        pmf=pmf,
        drops=drops,
    )


def _overflow(
    config: SystemConfig, lam: float, service_s: np.ndarray, leftover: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected drops, and waiting area (request s) not spent by dropped arrivals, of every
    (queue length, dispatch action) when the cap is the queue capacity C; both (K + 1, A).

    With c = C - leftover free places and N ~ Poisson(lam s) arrivals during the service:
    drops E[(N - c)+]; lost area (1 / (2 lam)) E[(N - c)(N - c - 1); N > c] (the integral over
    the service of E[(N(t) - c)+]).
    """
    capacity = config.queue_capacity
    mean = lam * service_s
    n = np.arange(_support(float(mean.max())))
    pmf = stats.poisson.pmf(n[None, :], mean[:, None])  # (A, support)
    excess = np.maximum(n[None, :] - np.arange(capacity + 1)[:, None], 0)  # (C + 1, support)
    drops = excess @ pmf.T  # (C + 1, A), by free places c
    lost_area = (excess * np.maximum(excess - 1, 0)) @ pmf.T / (2 * lam)
    free = capacity - leftover
    cols = np.arange(len(service_s))[None, :]
    return drops[free, cols], lost_area[free, cols]
