"""The batching SMDP for clumped arrivals: requests come in clumps (several at once), the clumps
as a Poisson process, the clump sizes geometric.

The arrivals of real LLM traffic are over-dispersed at the time scale of a batch (10-100 ms):
requests come in clumps, the more so when a trace's timestamps are coarse (the requests of one
recorded second or millisecond arrive together once the trace is replayed faster). A Poisson
model of the same mean rate underestimates how often a long service is followed by a large
queue. This module generalises the Poisson SMDP of :mod:`agents.optimal` to *compound* Poisson
arrivals: clumps at rate ``rate / m``, each of ``K ~ Geometric`` requests with mean ``m >= 1``
(``P(K = k) = p (1 - p)^(k - 1)``, ``p = 1 / m``). The number of arrivals in a window of s
seconds is then Polya-Aeppli with mean ``rate s`` and variance ``rate s (2 m - 1)``: its index of
dispersion ``2 m - 1`` is the same at every window length. With ``m = 1`` it is the Poisson
SMDP exactly (a test checks the policy and gain against :func:`agents.optimal.solve_optimal`).

The decision process is :mod:`agents.optimal`'s with two changes:

- wait: until the next clump, ``Exp(rate / m)``: expected sojourn ``m / rate``, reward
  ``-w_lat q m / rate``, next state ``q + K``;
- dispatch (m, b), service s: next state ``q - b + N``, N Polya-Aeppli as above; the expected
  waiting area of the arrivals during the service is ``rate s^2 / 2`` as for Poisson (the clumps
  arrive at uniform times), so the reward is unchanged.

It is solved by the same policy iteration (exact evaluation by one linear solve per step). The
state space is capped at K ("K or more"), below the queue capacity (drops are not modelled).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from agents import optimal
from batchenv.config import SystemConfig
from batchenv.timing import ServiceTable

__all__ = ["ClumpedSolution", "clumped_cap", "polya_aeppli_pmf", "solve_clumped"]

_MAX_ITERATIONS = 200


def polya_aeppli_pmf(mean: np.ndarray, clump: float, length: int) -> np.ndarray:
    """(len(mean), length + 1): pmf at 0..length - 1 of the number of arrivals of a compound
    Poisson process with geometric clumps of mean ``clump`` (>= 1) and mean count ``mean`` (per
    row), last column the tail P(N >= length). Recursion (Polya-Aeppli):
    ``n g_n = (theta p + 2 (1 - p) (n - 1)) g_{n-1} - (1 - p)^2 (n - 2) g_{n-2}``,
    ``theta = mean / clump`` clumps, ``p = 1 / clump``, ``g_0 = exp(-theta)``."""
    mean = np.asarray(mean, dtype=float)
    p = 1.0 / clump
    theta = mean / clump
    out = np.zeros((len(mean), length + 1))
    out[:, 0] = np.exp(-theta)
    if length > 1:
        out[:, 1] = theta * p * out[:, 0]
    a = 1.0 - p
    for n in range(2, length):
        out[:, n] = ((theta * p + 2.0 * a * (n - 1)) * out[:, n - 1] - a * a * (n - 2) * out[:, n - 2]) / n
    out[:, length] = np.maximum(0.0, 1.0 - out[:, :length].sum(axis=1))
    return out


def _geometric_pmf(clump: float, length: int) -> np.ndarray:
    """(length + 1,): P(K = k) for k = 0..length - 1 (0 at k = 0), last entry P(K >= length)."""
    p = 1.0 / clump
    k = np.arange(length)
    pmf = np.where(k >= 1, p * (1.0 - p) ** np.maximum(k - 1, 0), 0.0)
    return np.append(pmf, (1.0 - p) ** (length - 1))


def _support(mean: float, clump: float) -> int:
    """Support length whose tail is negligible: mean + 12 standard deviations + 30 clumps."""
    return math.ceil(mean + 12.0 * math.sqrt(mean * (2.0 * clump - 1.0)) + 30.0 * clump)


def clumped_cap(config: SystemConfig, rate_per_s: float, clump: float) -> int:
    """State-space cap K (requests): twice a full batch plus the arrivals during the longest
    service up to 8 standard deviations, at least 4 B, below the queue capacity."""
    table = ServiceTable(config)
    mu = rate_per_s * table.max_service_s
    sd = math.sqrt(mu * (2.0 * clump - 1.0))
    cap = max(4 * config.max_batch_size, 2 * math.ceil(config.max_batch_size + mu + 8.0 * sd + 4.0 * clump))
    return min(cap, config.queue_capacity - 1)


class ClumpedSolution(NamedTuple):
    """An optimal policy of the clumped SMDP.

    :ivar actions: (K + 1,) action per queue length (0 = wait; 1 + m B + b - 1 = dispatch b on m).
    :ivar best_dispatch: (K + 1,) the best dispatch action per queue length (0 at q = 0).
    :ivar gain_per_s: optimal long-run reward per second (score units/s).
    :ivar relative_values: (K + 1,) h(q), h(0) = 0.
    :ivar values: (K + 1, 1 + M B) action values r - g tau + E h(next); -inf where not allowed.
    :ivar iterations: policy-iteration steps.
    """

    actions: np.ndarray
    best_dispatch: np.ndarray
    gain_per_s: float
    relative_values: np.ndarray
    values: np.ndarray
    iterations: int


@dataclasses.dataclass(frozen=True)
class _Model:
    base: optimal.SMDPModel  # rewards and sojourns of dispatches; its pmf replaced
    wait_pmf: np.ndarray  # (L_w + 1,) clump-size pmf, last entry the tail


def _build(config: SystemConfig, rate_per_s: float, clump: float, cap: int, action_set: str) -> _Model:
    base = optimal.build_smdp(config, rate_per_s, cap, action_set)
    service_s = (ServiceTable(config).service_ms[:, 1:] / 1000.0).reshape(-1)
    mean = rate_per_s * service_s
    pmf = polya_aeppli_pmf(mean, clump, min(_support(float(mean.max()), clump), cap + 1))
    q = np.arange(cap + 1)
    reward = base.reward.copy()
    tau = base.tau.copy()
    reward[:, 0] = -config.reward.w_latency_per_s * q * clump / rate_per_s
    tau[:, 0] = clump / rate_per_s
    wait_len = min(math.ceil(40.0 * clump) + 1, cap + 1)
    return _Model(dataclasses.replace(base, reward=reward, tau=tau, pmf=pmf), _geometric_pmf(clump, wait_len))


def _shifted_expectation(h: np.ndarray, pmf: np.ndarray, cap: int) -> np.ndarray:
    """(K + 1, rows of pmf): E h(min(r + N, K)) for every start r and every pmf row."""
    pmf = np.atleast_2d(pmf)
    length = pmf.shape[1] - 1
    h_ext = np.concatenate([h, np.full(length, h[cap])])
    return sliding_window_view(h_ext, length + 1)[: cap + 1] @ pmf.T


def _expected_values(model: _Model, h: np.ndarray) -> np.ndarray:
    base = model.base
    out = np.empty(base.reward.shape)
    out[:, 0] = _shifted_expectation(h, model.wait_pmf, base.cap)[:, 0]
    after = _shifted_expectation(h, base.pmf, base.cap)
    out[:, 1:] = np.take_along_axis(after, base.leftover, axis=0)
    return out


def _transition(model: _Model, actions: np.ndarray) -> np.ndarray:
    """(K + 1, K + 1) transition matrix of the embedded chain under a stationary policy."""
    base = model.base
    size = base.cap + 1
    q = np.arange(size)
    waits = actions == 0
    flat, weights = [], []
    for rows, starts, pmf in (
        (q[waits], q[waits], np.broadcast_to(model.wait_pmf, (int(waits.sum()), len(model.wait_pmf)))),
        (q[~waits], base.leftover[q[~waits], actions[~waits] - 1], base.pmf[actions[~waits] - 1]),
    ):
        cols = np.minimum(starts[:, None] + np.arange(pmf.shape[1])[None, :], size - 1)
        flat.append((rows[:, None] * size + cols).ravel())
        weights.append(pmf.ravel())
    return np.bincount(np.concatenate(flat), weights=np.concatenate(weights), minlength=size * size).reshape(
        size, size
    )


def _evaluate(model: _Model, actions: np.ndarray) -> tuple[float, np.ndarray]:
    base = model.base
    size = base.cap + 1
    q = np.arange(size)
    matrix = np.eye(size) - _transition(model, actions)
    matrix[:, 0] = base.tau[q, actions]
    x = np.linalg.solve(matrix, base.reward[q, actions])
    h = x.copy()
    h[0] = 0.0
    return float(x[0]), h


def solve_clumped(
    config: SystemConfig, rate_per_s: float, clump: float, action_set: str = "any"
) -> ClumpedSolution:
    """Solve the clumped SMDP (module docstring) by policy iteration.

    :param config: a one-worker system the Poisson solver accepts (Poisson arrivals, w_slo = 0).
    :param rate_per_s: mean arrival rate (requests/s) > 0.
    :param clump: mean clump size m >= 1 (requests); 1 is Poisson.
    :param action_set: batch sizes (:data:`agents.optimal.ACTION_SETS`).
    """
    if not (math.isfinite(clump) and clump >= 1.0):
        raise ValueError(f"clump must be a mean clump size >= 1 (requests), got {clump!r}")
    cap = clumped_cap(config, rate_per_s, clump)
    model = _build(config, rate_per_s, clump, cap, action_set)
    base = model.base
    q = np.arange(cap + 1)
    start = np.where(base.allowed, base.reward / base.tau, -np.inf)
    start[:, 0] = np.where(q == 0, 0.0, -np.inf)
    actions = start.argmax(axis=1)
    for iteration in range(1, _MAX_ITERATIONS + 1):
        gain, h = _evaluate(model, actions)
        values = base.reward + _expected_values(model, h) - gain * base.tau
        best = values.argmax(axis=1)
        current = values[q, actions]
        improved = np.where(values[q, best] > current + 1e-12 * (1.0 + np.abs(current)), best, actions)
        if np.array_equal(improved, actions):
            dispatch = values.copy()
            dispatch[:, 0] = -np.inf
            best_dispatch = np.where(q > 0, dispatch.argmax(axis=1), 0)
            return ClumpedSolution(actions, best_dispatch, gain, h, values, iteration)
        actions = improved
    raise RuntimeError(f"policy iteration did not converge in {_MAX_ITERATIONS} iterations")
