"""The exact optimum for one worker and Poisson arrivals: an average-reward semi-Markov decision
process (SMDP) over the queue length, solved by policy iteration and certified by value-iteration
bounds. It is the yardstick of docs/design.md ("Agents").

    solution = solve_optimal(config, rate_per_s=100.0)   # cached per (system, rate)
    solution.score_per_request, solution.cost_per_request, solution.dispatch_threshold
    simulate(config, OptimalScheduler(config), seed)     # the policy as a scheduler (table lookup)

To solve a modified SMDP (other rewards or sojourns, as :mod:`agents.proposed` does for several
workers), build its data, change it and solve it with the same solver (not cached):

    model = build_smdp(config, rate_per_s=100.0, queue_cap=266)   # an SMDPModel
    model = dataclasses.replace(model, reward=model.reward - extra)
    with single_threaded_blas():
        result = policy_iteration(model)                          # actions, gain, h, ...
    values = action_values(model, result.relative_values, result.gain_per_s)

The decision process (the simulator's semantics, :mod:`batchenv.sim`)
    Decision epochs are the moments the worker is idle and q >= 1 requests wait; the state is q.
    With one worker and Poisson(lambda) arrivals the future after an epoch depends on q only
    (arrival ages matter only for the timeout, below). Actions, with s = service(b, m) in s:

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
    8 standard deviations: 256 to 586 for 20 to 500/s on the default system) and is doubled until
    the cap state's stationary probability is at most :data:`CAP_PROBABILITY` (1e-12). Near
    saturation (rate >= 90% of the largest throughput) K is ``queue_capacity`` and the model is
    exact, drops included (expected drops E[(N - c)+] at c free places, and the waiting area that
    dropped arrivals do not spend). tests/test_optimal.py checks that doubling K changes the
    score per request by less than 1e-12 and leaves the policy unchanged.

Solver and tolerance
    Howard's policy iteration (exact policy evaluation by one linear solve per iteration, 2 to 6
    iterations) finds the policy; one Bellman step at its relative values h then gives the
    bounds min_q T(q) <= g* <= max_q T(q), T(q) = max_a (r(q, a) + E h(next) - h(q)) / tau(q, a)
    (the SMDP value-iteration bounds of Tijms' data transformation). ``tol`` (default 1e-9) is
    the largest allowed span of these bounds per request; they come out about 1e-14 wide.
    ``method="value"`` runs relative value iteration on the data-transformed SMDP instead
    (Schweitzer/Tijms: tau~ = 0.95 min tau, rewards r / tau, transitions (tau~ / tau) p plus a
    self-loop), stopped when the span of V_n - V_{n-1} is at most ``tol``; the tests check that
    both agree. The default system solves in 20 to 200 ms (test: < 5 s).

The timeout (``max_wait_ms``)
    The state has no ages, so the SMDP ignores the timeout: its gain is an upper bound for every
    policy that obeys it. The bound is attained when the optimal policy never waits long: on the
    default system (100 ms) it waits only at q = 1 and only when lambda >= 260/s, where the next
    arrival is due within a few ms; a request that finds the system empty waits 100 ms with
    probability e^(-0.1 lambda) < 1e-11 (``p_timeout_from_empty``), and the simulator records
    no forced dispatch in millions of epochs (tests).
    Where the timeout does bind (say max_wait_ms = 2), :class:`OptimalScheduler` dispatches the
    best action at q itself (``shield_model``/``shield_batch``); at 300/s with max_wait_ms = 2
    its simulated cost stays within 1% of the bound (the wait at q = 1 is nearly indifferent).

Structure found (default system; ``python -m agents.optimal --rates 20,50,100,200,300,400``)
    ======  ====  ==============  ==============  ==========================================
    rate/s   q*   score/request   cost/request    policy by queue length q (to p99.99 of q)
    ======  ====  ==============  ==============  ==========================================
     20      1    0.982271        0.017729        1-4 LLM-1 (b = 1..3: q = 4 sends 3)
     50      1    0.976465        0.023535        1-6 LLM-1 b = q
    100      1    0.961726        0.038274        1-10 LLM-1 (q = 10 sends 9); 11 LLM-2
    200      1    0.917316        0.082684        1-5 LLM-1; 6-14 LLM-2; 15-21 LLM-3 b = 12..15
    300      2    0.891156        0.108844        1 wait; 2-3 LLM-1; 4-21 LLM-3 b = 4..20
    400      2    0.867379        0.132621        1 wait; 2-41 LLM-3 b = q
    ======  ====  ==============  ==============  ==========================================

    - Control limit: for every rate from 5 to 575/s (step 5) the policy dispatches iff q >= q*,
      the form Deb and Serfozo (1973) proved for batch service with one service mode (here,
      with three models and size-dependent service times, a finding). q* is 1 or 2 and not
      monotone in the rate: 2 for 260-320/s and from 345/s, 1 below 260/s and at 325-340/s
      (there one request is worth sending on LLM-1 at once).
    - Model: the model index never decreases with q (quality while the queue is short, speed
      when it is long): LLM-1, then LLM-2, then LLM-3. The switch points fall as the rate grows
      (LLM-2 from q = 6 at 200/s, q = 4 at 270/s, not at all from 295/s).
    - Batch: mostly the whole queue; not always: near a kink of the interpolated table (q = 4
      at 20/s, q = 10 at 100/s) and when a backlog builds, the policy sends part of the queue
      (several smaller batches finish earlier on average than one big one).
    - With ``timing.mode: pad`` (a batch runs as the next table size) the policy is not a
      control limit at every rate: it also waits just below a table size to fill it (q = 3 at
      230/s; q = 7 at 350/s; q = 5-7, 15 and 31 at 550/s).
    - Partial batches are worth little: the best policy that always sends the whole queue (the
      env's ``Discrete(1 + M)``, ``action_set="whole"``) costs at most 0.04% more.
    - The simulator's cost of this policy matches the solver's within 0.05% at every rate above
      (4M requests per rate, ``--simulate 4000000 --seeds 8``; docs/optimal.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from agents.base import Scheduler
from batchenv.config import ArrivalConfig, ConfigError, EnvConfig, SystemConfig
from batchenv.sim import Decision, Simulator
from batchenv.timing import ServiceTable

__all__ = [
    "ACTION_SETS",
    "CAP_PROBABILITY",
    "ControlLimits",
    "OptimalScheduler",
    "OptimalSolution",
    "PolicyEvaluation",
    "PolicyIterationResult",
    "PolicyRun",
    "SMDPModel",
    "action_values",
    "build_smdp",
    "control_limits",
    "default_queue_cap",
    "evaluate_policy",
    "policy_iteration",
    "single_threaded_blas",
    "solve_optimal",
]


ACTION_SETS = ("any", "whole", "table")
"""Batch sizes a dispatch may use at queue length q: ``any`` b in 1..min(q, B); ``whole`` only
b = min(q, B), as the env's ``Discrete(1 + M)``; ``table`` b = min(size, q) for the env's
``batch_choice`` sizes (table sizes below B, then B)."""

CAP_PROBABILITY = 1e-12
"""Largest stationary probability of the cap state q = K (at decision epochs) that the default
cap accepts; above it, :func:`solve_optimal` doubles K."""

_MAX_POLICY_ITERATIONS = 200
_MAX_VALUE_ITERATIONS = 200_000


# --------------------------------------------------------------------------------------------
# The SMDP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SMDPModel:
    """The data of the batching SMDP for one (system, arrival rate, queue cap): what
    :func:`build_smdp` returns and :func:`policy_iteration`, :func:`evaluate_policy` and
    :func:`action_values` solve. Replace ``reward`` or ``tau`` (``dataclasses.replace``) to solve a
    modified SMDP with the same transition law.

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


class PolicyEvaluation(NamedTuple):
    """Long-run figures of one stationary policy of an :class:`SMDPModel`
    (:func:`evaluate_policy`).

    :ivar gain_per_s: long-run reward per second (score units/s).
    :ivar relative_values: (K + 1,) relative values h(q), h(0) = 0 (score units).
    :ivar transition: (K + 1, K + 1) transition matrix of the embedded chain at decision epochs.
    """

    gain_per_s: float
    relative_values: np.ndarray
    transition: np.ndarray


class PolicyIterationResult(NamedTuple):
    """An optimal policy of an :class:`SMDPModel` found by :func:`policy_iteration`.

    :ivar actions: (K + 1,) action index per queue length (0 = wait, see :class:`SMDPModel`).
    :ivar gain_per_s: its long-run reward per second (score units/s), the optimal gain.
    :ivar relative_values: (K + 1,) relative values h(q), h(0) = 0 (score units).
    :ivar transition: (K + 1, K + 1) transition matrix of the embedded chain under ``actions``.
    :ivar iterations: policy-iteration steps taken.
    """

    actions: np.ndarray
    gain_per_s: float
    relative_values: np.ndarray
    transition: np.ndarray
    iterations: int


def _check_supported(config: SystemConfig) -> None:
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


def default_queue_cap(config: SystemConfig, rate_per_s: float) -> int:
    """The first queue-length cap K (requests) that :func:`solve_optimal` tries at ``rate_per_s``
    (requests/s); it doubles K until the cap's stationary probability is below
    :data:`CAP_PROBABILITY` (or K reaches ``queue_capacity``).

    ``K = 2 ceil(B + mu + 8 sqrt(mu))`` with ``mu = rate * (longest service)``: twice a full
    batch plus the arrivals during the longest service up to 8 standard deviations; at least
    ``4 B``. At 90% or more of the largest sustainable throughput: ``queue_capacity`` (the model
    is then exact, drops included). Never above ``queue_capacity``.
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


def _checked_rate(config: SystemConfig, rate_per_s: float | None) -> float:
    """``rate_per_s`` as a float (requests/s; None: the config's mean rate); ValueError unless it
    is finite and > 0."""
    rate = config.arrivals.mean_rate_per_s if rate_per_s is None else float(rate_per_s)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate_per_s must be a finite number > 0 (requests/s), got {rate_per_s!r}")
    return rate


def _check_queue_cap(config: SystemConfig, queue_cap: int | None) -> None:
    """ValueError unless ``queue_cap`` is None or in [1, queue_capacity]."""
    if queue_cap is not None and not 1 <= queue_cap <= config.queue_capacity:
        raise ValueError(
            f"queue_cap must be in [1, queue_capacity = {config.queue_capacity}], got {queue_cap!r}"
        )


def _check_action_set(action_set: str) -> None:
    """ValueError unless ``action_set`` is one of :data:`ACTION_SETS`."""
    if action_set not in ACTION_SETS:
        raise ValueError(f"action_set must be one of {ACTION_SETS}, got {action_set!r}")


def build_smdp(config: SystemConfig, rate_per_s: float, queue_cap: int, action_set: str = "any") -> SMDPModel:
    """The SMDP's rewards, sojourn times and transition laws of every (queue length, action), as
    described in the module docstring; not cached (build once, solve as often as needed).

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
    _check_supported(config)
    lam = _checked_rate(config, rate_per_s)
    _check_queue_cap(config, queue_cap)
    _check_action_set(action_set)
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


# --------------------------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------------------------


def _expected_values(model: SMDPModel, h: np.ndarray) -> np.ndarray:
    """(K + 1, 1 + M B): expected relative value of the state after each (q, action)."""
    cap = model.cap
    length = model.pmf.shape[1] - 1
    h_ext = np.concatenate([h, np.full(length, h[cap])])
    windows = sliding_window_view(h_ext, length + 1)[: cap + 1]  # row r: h(min(r + n, K))
    after_service = windows @ model.pmf.T  # (K + 1, A): leftover r, action a
    out = np.empty(model.reward.shape)
    out[:, 0] = h[np.minimum(np.arange(cap + 1) + 1, cap)]
    out[:, 1:] = np.take_along_axis(after_service, model.leftover, axis=0)
    return out


def _transition_matrix(model: SMDPModel, actions: np.ndarray) -> np.ndarray:
    """(K + 1, K + 1) transition matrix of the embedded chain under a stationary policy."""
    cap = model.cap
    size = cap + 1
    q = np.arange(size)
    length = model.pmf.shape[1]
    waits = actions == 0
    rows_w = q[waits]
    dispatch_q = q[~waits]
    a = actions[~waits] - 1
    r = model.leftover[dispatch_q, a]
    cols_d = np.minimum(r[:, None] + np.arange(length)[None, :], cap)
    flat = np.concatenate(
        [
            rows_w * size + np.minimum(rows_w + 1, cap),
            (dispatch_q[:, None] * size + cols_d).ravel(),
        ]
    )
    weights = np.concatenate([np.ones(len(rows_w)), model.pmf[a].ravel()])
    return np.bincount(flat, weights=weights, minlength=size * size).reshape(size, size)


def evaluate_policy(model: SMDPModel, actions: np.ndarray) -> PolicyEvaluation:
    """Exact evaluation of a stationary policy by one linear solve: its gain (reward/s), relative
    values h (h(0) = 0) and the transition matrix of its embedded chain.

    :param model: the SMDP.
    :param actions: (K + 1,) an allowed action index per queue length (see :class:`SMDPModel`).
    """
    size = model.cap + 1
    q = np.arange(size)
    transition = _transition_matrix(model, actions)
    matrix = np.eye(size) - transition
    matrix[:, 0] = model.tau[q, actions]  # column of h(0) = 0 carries the gain's coefficient
    x = np.linalg.solve(matrix, model.reward[q, actions])
    gain = float(x[0])
    h = x.copy()
    h[0] = 0.0
    return PolicyEvaluation(gain, h, transition)


def action_values(model: SMDPModel, h: np.ndarray, gain: float) -> np.ndarray:
    """(K + 1, 1 + M B): the value r(q, a) - g tau(q, a) + E h(next) of every (queue length,
    action) at relative values ``h`` ((K + 1,), score units) and gain ``gain`` (score units/s);
    -inf where the action is not allowed. At an optimal (h, g) the best action of each row is
    optimal, and another action's shortfall from the row's best is what taking it once costs."""
    return model.reward + _expected_values(model, h) - gain * model.tau


def _improve(model: SMDPModel, actions: np.ndarray, gain: float, h: np.ndarray) -> np.ndarray:
    """Policy-improvement step; the current action is kept unless another is strictly better."""
    q = np.arange(model.cap + 1)
    values = action_values(model, h, gain)
    best = values.argmax(axis=1)
    current = values[q, actions]
    slack = 1e-12 * (1.0 + np.abs(current))
    return np.where(values[q, best] > current + slack, best, actions)


def _bellman_rates(model: SMDPModel, h: np.ndarray) -> np.ndarray:
    """max over actions of (reward + E h(next) - h(q)) / tau, per state (reward per second).

    Its minimum and maximum over states bound the optimal gain (the SMDP value-iteration bounds,
    after Tijms' data transformation, evaluated at h): min <= g* <= max.
    """
    values = (model.reward + _expected_values(model, h) - h[:, None]) / model.tau
    return values.max(axis=1)


def _stationary(transition: np.ndarray) -> np.ndarray:
    """Stationary law of the embedded chain (at decision epochs; states 0..K)."""
    size = len(transition)
    matrix = (np.eye(size) - transition).T
    matrix[0, :] = 1.0
    rhs = np.zeros(size)
    rhs[0] = 1.0
    pi = np.linalg.solve(matrix, rhs)
    pi = np.maximum(pi, 0.0)
    return pi / pi.sum()


def policy_iteration(model: SMDPModel) -> PolicyIterationResult:
    """Howard's policy iteration (exact policy evaluation, 2 to 6 iterations on the default
    system), from the policy that never waits; a current action is kept unless another is
    strictly better (by a relative 1e-12). Run it inside :func:`single_threaded_blas` when
    solving many models. RuntimeError if it does not converge in 200 iterations.
    """
    q = np.arange(model.cap + 1)
    values = np.where(model.allowed, model.reward / model.tau, -np.inf)
    values[:, 0] = np.where(q == 0, 0.0, -np.inf)  # start from a policy that never waits
    actions = values.argmax(axis=1)
    for iteration in range(1, _MAX_POLICY_ITERATIONS + 1):
        gain, h, transition = evaluate_policy(model, actions)
        improved = _improve(model, actions, gain, h)
        if np.array_equal(improved, actions):
            return PolicyIterationResult(actions, gain, h, transition, iteration)
        actions = improved
    raise RuntimeError(f"policy iteration did not converge in {_MAX_POLICY_ITERATIONS} iterations")


def _value_iteration(model: SMDPModel, tol_per_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Relative value iteration on Tijms' data-transformed SMDP (a discrete-time MDP with
    rewards r / tau and transitions (tau~ / tau) p + (1 - tau~ / tau) self-loop, tau~ below every
    sojourn). Stops when the span of V_n - V_{n-1} (the gain bounds) is at most ``tol_per_s``.

    :returns: actions, relative values h = tau~ V (h(0) = 0) and the number of iterations.
    """
    tau_step = 0.95 * float(model.tau[model.allowed].min())
    ratio = tau_step / model.tau
    rate_reward = np.where(model.allowed, model.reward / model.tau, -np.inf)
    v = np.zeros(model.cap + 1)
    for iteration in range(1, _MAX_VALUE_ITERATIONS + 1):
        expected = _expected_values(model, v)
        values = rate_reward + ratio * (expected - v[:, None]) + v[:, None]
        new = values.max(axis=1)
        diff = new - v
        v = new - new[0]
        if diff.max() - diff.min() <= tol_per_s:
            return values.argmax(axis=1), tau_step * v, iteration
    raise RuntimeError(f"value iteration did not reach the tolerance in {_MAX_VALUE_ITERATIONS} steps")


@functools.cache
def _openblas_threads() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set, get) of the thread count of the OpenBLAS that numpy bundles, or None if not found."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libs.glob("lib*openblas*")):
        try:
            lib = ctypes.CDLL(str(path))  # the copy numpy has loaded already
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run numpy's BLAS/LAPACK on one thread inside the block (restored afterwards); a no-op
    where the OpenBLAS that numpy bundles is not found.

    The solver's matrices are small (a few hundred states), so threads only add overhead; on a
    busy 2-core machine (tests run in parallel) multi-threaded OpenBLAS made a solve 20x slower.
    """
    threads = _openblas_threads()
    if threads is None:
        yield
        return
    set_threads, get_threads = threads
    previous = int(get_threads())
    set_threads(1)
    try:
        yield
    finally:
        set_threads(previous)


# --------------------------------------------------------------------------------------------
# The solution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OptimalSolution:
    """The optimal policy of the SMDP for one arrival rate, and its exact long-run figures.

    Arrays are indexed by the queue length q = 0..queue_cap at a decision epoch (q = 0 is the idle,
    empty system; the cap state stands for "queue_cap or more" unless ``exact_capacity``). They
    are read-only.

    :ivar rate_per_s: Poisson arrival rate (requests/s).
    :ivar queue_cap: K, the largest queue length of the state space (requests).
    :ivar exact_capacity: K equals ``queue_capacity``: drops are modelled exactly.
    :ivar gain_per_s: optimal long-run reward per second (score units/s).
    :ivar gain_bounds_per_s: certified bounds (low, high) on the optimal gain (score units/s),
        from one Bellman step at the solution's relative values; high - low <= tol * rate.
    :ivar score_per_request: gain_per_s / rate_per_s, the long-run score per arrived request
        (the simulator's ``total_reward / n_arrived``).
    :ivar cost_per_request: best model quality - score_per_request (docs/design.md's comparison
        measure: the regret against instant answers by the best model).
    :ivar model: (K + 1,) model index dispatched at each q; -1 = wait.
    :ivar batch: (K + 1,) batch size dispatched at each q; 0 = wait.
    :ivar shield_model: (K + 1,) best model to dispatch at q when waiting is not allowed (the
        ``max_wait_ms`` shield), from the optimal relative values.
    :ivar shield_batch: (K + 1,) batch size that goes with ``shield_model``.
    :ivar relative_values: (K + 1,) h(q), with h(0) = 0 (score units).
    :ivar epoch_probability: (K + 1,) stationary probability of each q at decision epochs.
    :ivar mean_batch_size: mean dispatched batch size (requests).
    :ivar model_mix: fraction of the served requests per model.
    :ivar drop_rate: fraction of arrivals dropped (0 unless the queue capacity is reached).
    :ivar p_timeout_from_empty: probability that a request arriving to an idle, empty system is
        still waiting after ``max_wait_ms`` under this policy if no timeout existed, i.e. that
        the simulator's timeout shield acts (0 when the policy dispatches at q = 1).
    :ivar action_set: the batch sizes allowed (:data:`ACTION_SETS`).
    :ivar cap_probability: stationary probability of the cap state q = K at decision epochs (the
        truncation's weight; 0 is ideal unless ``exact_capacity``).
    :ivar method: ``"policy"`` (policy iteration) or ``"value"`` (relative value iteration).
    :ivar iterations: iterations of that method.
    :ivar tol: requested span of the gain bounds, per request (score units).
    :ivar solve_time_s: wall time of the solve (s).
    """

    rate_per_s: float
    queue_cap: int
    exact_capacity: bool
    gain_per_s: float
    gain_bounds_per_s: tuple[float, float]
    score_per_request: float
    cost_per_request: float
    model: np.ndarray
    batch: np.ndarray
    shield_model: np.ndarray
    shield_batch: np.ndarray
    relative_values: np.ndarray
    epoch_probability: np.ndarray
    mean_batch_size: float
    model_mix: tuple[float, ...]
    drop_rate: float
    p_timeout_from_empty: float
    cap_probability: float
    model_names: tuple[str, ...]
    max_batch_size: int
    action_set: str
    method: str
    iterations: int
    tol: float
    solve_time_s: float = field(compare=False)

    @property
    def policy(self) -> np.ndarray:
        """(K + 1,) encoded actions: -1 = wait, else ``model * max_batch_size + (batch - 1)``."""
        return np.where(self.model < 0, -1, self.model * self.max_batch_size + self.batch - 1)

    @property
    def dispatch_threshold(self) -> int:
        """q*: the smallest queue length >= 1 at which the policy dispatches."""
        dispatching = np.flatnonzero(self.model[1:] >= 0)
        return int(dispatching[0]) + 1 if len(dispatching) else self.queue_cap + 1

    @property
    def is_control_limit(self) -> bool:
        """True if the policy waits at every 1 <= q < q* and dispatches at every q >= q*."""
        q_star = self.dispatch_threshold
        return bool(np.all(self.model[q_star:] >= 0))

    def decision(self, queue_len: int) -> Decision:
        """The optimal decision at a decision epoch with ``queue_len`` waiting requests."""
        q = min(queue_len, self.queue_cap)
        if self.model[q] < 0:
            return None
        return int(self.model[q]), int(self.batch[q])

    def queue_quantile(self, p: float) -> int:
        """Smallest q with P(queue <= q at a decision epoch) >= p."""
        cumulative = np.cumsum(self.epoch_probability)
        return int(min(np.searchsorted(cumulative, p), self.queue_cap))


@functools.lru_cache(maxsize=256)
def _solve_cached(
    system: SystemConfig, rate_per_s: float, queue_cap: int, tol: float, method: str, action_set: str
) -> OptimalSolution:
    start = time.perf_counter()
    tol_per_s = tol * rate_per_s
    with single_threaded_blas():
        model = build_smdp(system, rate_per_s, queue_cap, action_set)
        if method == "policy":
            actions, _, h, _, iterations = policy_iteration(model)
        else:
            actions, h, iterations = _value_iteration(model, tol_per_s)
        gain, h, transition = evaluate_policy(model, actions)
        rates = _bellman_rates(model, h)
        pi = _stationary(transition)
    low, high = float(rates.min()), float(rates.max())
    if high - low > tol_per_s:
        raise RuntimeError(
            f"gain bounds [{low}, {high}] (1/s) wider than tol * rate = {tol_per_s}: "
            "numerical trouble; try a smaller queue_cap"
        )
    return _solution(
        system, model, actions, gain, (low, high), h, pi, method, iterations, tol, action_set, start
    )


def _solution(
    system: SystemConfig,
    model: SMDPModel,
    actions: np.ndarray,
    gain: float,
    bounds: tuple[float, float],
    h: np.ndarray,
    pi: np.ndarray,
    method: str,
    iterations: int,
    tol: float,
    action_set: str,
    start: float,
) -> OptimalSolution:
    """Assemble the solution's tables and long-run figures."""
    lam = model.rate_per_s
    q = np.arange(model.cap + 1)
    dispatch = actions - 1
    model_index = np.where(actions > 0, dispatch // model.max_batch, -1)
    batch = np.where(actions > 0, dispatch % model.max_batch + 1, 0)
    values = action_values(model, h, gain)
    values[:, 0] = -np.inf
    values[0, :] = 0.0  # q = 0 never dispatches; keep the table well defined
    shield = values.argmax(axis=1) - 1
    shield_model = np.where(q > 0, shield // model.max_batch, -1)
    shield_batch = np.where(q > 0, shield % model.max_batch + 1, 0)
    served = pi * batch
    mix = np.array([served[model_index == m].sum() for m in range(model.n_models)])
    mean_batch = served.sum() / pi[batch > 0].sum()
    time_per_epoch_s = float(pi @ model.tau[q, actions])
    drops_per_s = float(pi @ model.drops[q, actions]) / time_per_epoch_s
    score = gain / lam
    return OptimalSolution(
        rate_per_s=lam,
        queue_cap=model.cap,
        exact_capacity=model.exact_capacity,
        gain_per_s=gain,
        gain_bounds_per_s=bounds,
        score_per_request=score,
        cost_per_request=max(system.qualities) - score,
        model=_frozen(model_index),
        batch=_frozen(batch),
        shield_model=_frozen(shield_model),
        shield_batch=_frozen(shield_batch),
        relative_values=_frozen(h),
        epoch_probability=_frozen(pi),
        mean_batch_size=float(mean_batch),
        model_mix=tuple(float(x) for x in mix / mix.sum()),
        drop_rate=drops_per_s / lam,
        p_timeout_from_empty=_p_timeout_from_empty(model_index, lam, system.max_wait_ms / 1000.0),
        cap_probability=float(pi[-1]),
        model_names=system.model_names,
        max_batch_size=system.max_batch_size,
        action_set=action_set,
        method=method,
        iterations=iterations,
        tol=tol,
        solve_time_s=time.perf_counter() - start,
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


def _p_timeout_from_empty(model_index: np.ndarray, lam: float, max_wait_s: float) -> float:
    """P(a request arriving to an idle, empty system waits max_wait_s before the policy
    dispatches): fewer than d - 1 further arrivals within max_wait_s, d the first dispatching q."""
    dispatching = np.flatnonzero(model_index[1:] >= 0)
    if not len(dispatching):
        return 1.0
    needed = int(dispatching[0])  # arrivals still needed after the first one
    if needed == 0:
        return 0.0
    return float(stats.poisson.cdf(needed - 1, lam * max_wait_s))


def _system_key(config: SystemConfig) -> SystemConfig:
    """The config with the fields the SMDP does not read set to defaults (one cache entry per
    system, whatever the scenario name, horizon or arrival settings)."""
    return dataclasses.replace(
        config,
        name="smdp",
        horizon_s=1.0,
        slo_ms=1.0,
        arrivals=ArrivalConfig(),
        env=EnvConfig(),
        source_path=None,
    )


def solve_optimal(
    config: SystemConfig,
    rate_per_s: float | None = None,
    *,
    queue_cap: int | None = None,
    tol: float = 1e-9,
    method: str = "policy",
    action_set: str = "any",
) -> OptimalSolution:
    """Solve the SMDP of ``config`` (one worker, Poisson arrivals) for one arrival rate.

    Results are cached per (system, rate, cap, tol, method): repeated calls are free.

    :param config: the system; needs ``n_workers == 1``, ``arrivals.process == "poisson"`` and
        ``reward.w_slo == 0`` (ConfigError naming the field otherwise).
    :param rate_per_s: arrival rate (requests/s); default the config's mean rate.
    :param queue_cap: state-space cap K (requests), at most ``queue_capacity``; default: from
        :func:`default_queue_cap`, doubled until the cap state's stationary probability is at
        most :data:`CAP_PROBABILITY` or K is ``queue_capacity``.
    :param tol: largest allowed span of the certified gain bounds, per request (score units).
    :param method: ``"policy"`` (policy iteration, default, exact up to linear algebra) or
        ``"value"`` (relative value iteration with Tijms' data transformation, stopped at ``tol``).
    :param action_set: the batch sizes a dispatch may use (:data:`ACTION_SETS`): ``"any"``
        (default, the simulator's full choice), ``"whole"`` or ``"table"`` (the env's actions
        without or with ``batch_choice``: the optimum an agent of that env can reach).
    """
    _check_supported(config)
    rate = _checked_rate(config, rate_per_s)
    _check_queue_cap(config, queue_cap)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if method not in ("policy", "value"):
        raise ValueError(f"method must be 'policy' or 'value', got {method!r}")
    _check_action_set(action_set)
    system = _system_key(config)
    if queue_cap is not None:
        return _solve_cached(system, rate, int(queue_cap), float(tol), method, action_set)
    cap = default_queue_cap(config, rate)
    while True:
        solution = _solve_cached(system, rate, cap, float(tol), method, action_set)
        if solution.cap_probability <= CAP_PROBABILITY or cap == config.queue_capacity:
            return solution
        cap = min(2 * cap, config.queue_capacity)


# --------------------------------------------------------------------------------------------
# Structure of the policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRun:
    """Consecutive queue lengths q_low..q_high (requests) with the same decision type: wait
    (``model = -1``), or dispatch on ``model`` with batch sizes ``batch_low..batch_high``, the
    whole queue at every q of the run or at none.

    :ivar whole: every q of the run dispatches its whole queue, min(q, max_batch_size).
    """

    q_low: int
    q_high: int
    model: int
    batch_low: int
    batch_high: int
    whole: bool


@dataclass(frozen=True)
class ControlLimits:
    """The control limits of an optimal policy: the compact form of one rate's table.

    :ivar rate_per_s: arrival rate (requests/s).
    :ivar dispatch_threshold: q*: wait below it, dispatch at it (requests).
    :ivar is_control_limit: waits at every 1 <= q < q* and dispatches at every q >= q*.
    :ivar model_from: per model, the smallest q at which the policy dispatches on it (None: never).
    :ivar whole_batch_until: the policy dispatches the whole queue at every q* <= q <= this.
    :ivar runs: the policy over q = 1..q_max as runs of one model that dispatch either the whole
        queue at every q or not (see :class:`PolicyRun`).
    :ivar q_max: the runs cover q <= q_max, by default the 99.99th percentile of the queue at
        decision epochs.
    :ivar model_names: names of the models, by index.
    """

    rate_per_s: float
    dispatch_threshold: int
    is_control_limit: bool
    model_from: tuple[int | None, ...]
    whole_batch_until: int
    runs: tuple[PolicyRun, ...]
    q_max: int
    model_names: tuple[str, ...]

    def describe(self) -> str:
        """One line, e.g. ``1 wait; 2-3 LLM-1 b=q; 4-21 LLM-3 b=4..20`` (``b=q``: whole queue)."""
        parts = []
        for run in self.runs:
            span = f"{run.q_low}" if run.q_low == run.q_high else f"{run.q_low}-{run.q_high}"
            if run.model < 0:
                parts.append(f"{span} wait")
                continue
            if run.whole:
                sizes = "q" if run.batch_high == run.q_high else f"min(q, {run.batch_high})"
            elif run.batch_low == run.batch_high:
                sizes = f"{run.batch_low}"
            else:
                sizes = f"{run.batch_low}..{run.batch_high}"
            parts.append(f"{span} {self.model_names[run.model]} b={sizes}")
        return "; ".join(parts)


def control_limits(solution: OptimalSolution, q_max: int | None = None) -> ControlLimits:
    """The control-limit summary of ``solution``, its runs up to ``q_max`` (default the 99.99th
    percentile of the queue length at decision epochs)."""
    q_max = solution.queue_quantile(0.9999) if q_max is None else min(q_max, solution.queue_cap)
    q_max = max(q_max, min(solution.dispatch_threshold, solution.queue_cap))
    model, batch = solution.model, solution.batch
    model_from = []
    for m in range(len(solution.model_names)):
        used = np.flatnonzero(model == m)
        model_from.append(int(used[0]) if len(used) else None)
    q = np.arange(solution.queue_cap + 1)
    whole = batch == np.minimum(q, solution.max_batch_size)
    partial = np.flatnonzero((q >= solution.dispatch_threshold) & ~whole)
    return ControlLimits(
        rate_per_s=solution.rate_per_s,
        dispatch_threshold=solution.dispatch_threshold,
        is_control_limit=solution.is_control_limit,
        model_from=tuple(model_from),
        whole_batch_until=int(partial[0]) - 1 if len(partial) else solution.queue_cap,
        runs=tuple(_runs(model, batch, whole, q_max)),
        q_max=q_max,
        model_names=solution.model_names,
    )


def _runs(model: np.ndarray, batch: np.ndarray, whole: np.ndarray, q_max: int) -> list[PolicyRun]:
    """The policy over q = 1..q_max, merged into runs of one model and one kind of batch."""
    runs: list[PolicyRun] = []
    for q in range(1, q_max + 1):
        m, b, w = int(model[q]), int(batch[q]), bool(whole[q]) and model[q] >= 0
        if runs and runs[-1].model == m and runs[-1].whole == w:
            last = runs[-1]
            runs[-1] = PolicyRun(
                last.q_low, q, m, min(last.batch_low, b), max(last.batch_high, b), last.whole and w
            )
        else:
            runs.append(PolicyRun(q, q, m, b, b, w))
    return runs


# --------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------


class OptimalScheduler(Scheduler):
    """The SMDP-optimal policy as a scheduler: a table lookup by queue length at each epoch (O(1)).

    With ``rate_per_s=None`` and no ``solution``, the scheduler solves (cached) for the rate of
    each episode (``sim.episode_rate_per_s``: the config's mean rate, or the rate drawn for the
    episode when ``arrivals.rate_range_per_s`` is set): an oracle that knows the Poisson rate,
    the yardstick of docs/design.md.

    Where the table says wait but the oldest request has waited ``max_wait_ms`` (the simulator
    would force a dispatch on the last model), it dispatches the best action at that queue length
    itself (``solution.shield_model``/``shield_batch``). The SMDP has no request ages, so its gain
    is an upper bound for any policy that obeys the timeout; on the default system this never
    happens (module docstring).

    :param config: the system (one worker, Poisson arrivals, ``reward.w_slo = 0``).
    :param rate_per_s: solve for this rate (requests/s) instead of each episode's rate.
    :param solution: use this solution (overrides ``rate_per_s``, ``queue_cap``, ``action_set``).
    :param queue_cap: state-space cap passed to :func:`solve_optimal`.
    :param action_set: batch sizes allowed (:data:`ACTION_SETS`); default ``"any"``.
    """

    name = "optimal"

    def __init__(
        self,
        config: SystemConfig,
        rate_per_s: float | None = None,
        *,
        solution: OptimalSolution | None = None,
        queue_cap: int | None = None,
        action_set: str = "any",
    ) -> None:
        super().__init__(config)
        _check_supported(config)
        if solution is None:
            solution = solve_optimal(config, rate_per_s, queue_cap=queue_cap, action_set=action_set)
            self._follow_episode_rate = rate_per_s is None
        else:
            self._follow_episode_rate = False
            queue_cap, action_set = solution.queue_cap, solution.action_set
        self._queue_cap = queue_cap
        self._action_set = action_set
        self._load(solution)

    def _load(self, solution: OptimalSolution) -> None:
        self.solution = solution
        self._cap = solution.queue_cap
        self._table: list[Decision] = [solution.decision(q) for q in range(solution.queue_cap + 1)]
        self._shield: list[Decision] = [None] + [
            (int(m), int(b))
            for m, b in zip(solution.shield_model[1:], solution.shield_batch[1:], strict=True)
        ]

    def reset(self, sim: Simulator) -> None:
        rate = sim.episode_rate_per_s
        if self._follow_episode_rate and math.isfinite(rate) and rate != self.solution.rate_per_s:
            self._load(
                solve_optimal(self.config, rate, queue_cap=self._queue_cap, action_set=self._action_set)
            )

    def decide(self, sim: Simulator) -> Decision:
        q = sim.queue_len
        if q > self._cap:
            q = self._cap
        decision = self._table[q]
        if decision is None and sim.shielded:
            return self._shield[q]
        return decision

    def params(self) -> dict[str, float | int | str]:
        """Constructor keyword arguments that differ from the defaults."""
        params: dict[str, float | int | str] = {}
        if not self._follow_episode_rate:
            params["rate_per_s"] = self.solution.rate_per_s
        if self._queue_cap is not None:
            params["queue_cap"] = self._queue_cap
        if self._action_set != "any":
            params["action_set"] = self._action_set
        return params


# --------------------------------------------------------------------------------------------
# Command line: the table of docs/optimal.md
# --------------------------------------------------------------------------------------------


def _simulated_cost(
    config: SystemConfig, solution: OptimalSolution, n_requests: int, seeds: int
) -> tuple[float, float, int]:
    """Mean and standard error of the simulator's cost per request of the solution's policy over
    ``seeds`` episodes (seeds 0, 1, ...) of about ``n_requests / seeds`` arrivals each, and the
    number of forced dispatches."""
    from batchenv.sim import simulate

    arrivals = {"process": "poisson", "rate_per_s": solution.rate_per_s, "rate_range_per_s": None}
    system = config.replace(arrivals=arrivals)
    scheduler = OptimalScheduler(system, solution=solution)
    horizon_s = n_requests / seeds / solution.rate_per_s
    best = max(config.qualities)
    costs, forced = [], 0
    for seed in range(seeds):
        sim = simulate(system, scheduler, seed, record=False, horizon_s=horizon_s)
        costs.append(best - sim.total_reward / sim.n_arrived)
        forced += sim.n_forced
    values = np.asarray(costs)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(seeds)), forced


def format_table(
    config: SystemConfig,
    rates_per_s: list[float],
    *,
    action_set: str = "any",
    simulate_requests: int = 0,
    seeds: int = 4,
) -> str:
    """The Markdown table of :func:`main`: one row per rate, then the policy runs per rate.

    The column "whole queue" is the extra cost of the optimum restricted to dispatching the whole
    queue (``action_set="whole"``, the env's default actions), relative to this optimum.
    """
    header = (
        "| rate (1/s) | q* | control limit | score / request | cost / request | gain (1/s) "
        "| mean batch | model mix | whole queue | PI iter. | solve (ms) |"
    )
    sep = "|" + "---|" * (header.count("|") - 1)
    if simulate_requests:
        header += " sim cost +- s.e. | sim vs solver | forced |"
        sep += "---|---|---|"
    lines = [header, sep]
    runs = []
    for rate in rates_per_s:
        sol = solve_optimal(config, rate, action_set=action_set)
        whole = solve_optimal(config, rate, action_set="whole")
        extra = (whole.cost_per_request - sol.cost_per_request) / sol.cost_per_request
        limits = control_limits(sol)
        mix = " / ".join(f"{x:.3f}" for x in sol.model_mix)
        row = (
            f"| {rate:g} | {sol.dispatch_threshold} | {'yes' if limits.is_control_limit else 'no'} "
            f"| {sol.score_per_request:.6f} | {sol.cost_per_request:.6f} | {sol.gain_per_s:.4f} "
            f"| {sol.mean_batch_size:.2f} | {mix} | {100 * extra:+.3f}% | {sol.iterations} "
            f"| {1000 * sol.solve_time_s:.0f} |"
        )
        if simulate_requests:
            mean, err, forced = _simulated_cost(config, sol, simulate_requests, seeds)
            gap = (mean - sol.cost_per_request) / sol.cost_per_request
            row += f" {mean:.6f} +- {err:.6f} | {100 * gap:+.2f}% | {forced} |"
        lines.append(row)
        runs.append(f"- {rate:g}/s (q <= {limits.q_max}): {limits.describe()}")
    mix_names = " / ".join(config.model_names)
    return "\n".join(
        [
            *lines,
            "",
            f"Model mix: fraction of requests served by {mix_names}. Whole queue: extra cost of the "
            "best policy that always dispatches min(q, max_batch_size).",
            "",
            "Policy by queue length q at a decision epoch (up to the 99.99th percentile of q; "
            "b=q: the whole queue):",
            *runs,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m agents.optimal``: solve the SMDP for several rates and print the table."""
    import argparse

    from batchenv.scenarios import load_scenario

    parser = argparse.ArgumentParser(
        prog="python -m agents.optimal",
        description=(
            "Solve the one-worker, Poisson SMDP of a scenario exactly for several arrival rates and "
            "print, per rate, the optimal score and cost per request, the control limit q* and the "
            "policy by queue length (a Markdown table; docs/optimal.md shows its output)."
        ),
    )
    parser.add_argument(
        "--rates",
        default="20,50,100,200,300,400",
        help="comma-separated arrival rates, requests/s (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario",
        default="default",
        help="packaged scenario name or YAML path; needs one worker and Poisson arrivals "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--timing", choices=("interp", "pad"), default=None, help="override timing.mode of the scenario"
    )
    parser.add_argument(
        "--action-set",
        choices=ACTION_SETS,
        default="any",
        help="batch sizes a dispatch may use: any b <= q, the whole queue, or the env's table sizes "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="also simulate each policy for N requests (seeds 0.., common to all rates) and print "
        "the simulator's cost next to the solver's (default: 0, no simulation)",
    )
    parser.add_argument("--seeds", type=int, default=4, help="episodes per rate with --simulate")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    config = load_scenario(args.scenario)
    if args.timing:
        config = config.replace(timing={"mode": args.timing})
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    try:
        table = format_table(
            config,
            rates,
            action_set=args.action_set,
            simulate_requests=args.simulate,
            seeds=args.seeds,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        print(f"\nwrote {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
