"""Solvers of the batching SMDP (:class:`agents.smdp.model.SMDPModel`): exact policy evaluation,
Howard's policy iteration, relative value iteration, action values and the gain bounds.

Solver and tolerance
    Howard's policy iteration (exact policy evaluation by one linear solve per iteration, 2 to 6
    iterations) finds the policy; one Bellman step at its relative values h then gives the
    bounds min_q T(q) <= g* <= max_q T(q), T(q) = max_a (r(q, a) + E h(next) - h(q)) / tau(q, a)
    (the SMDP value-iteration bounds of Tijms' data transformation, :func:`bellman_rates`).
    :func:`relative_value_iteration` runs relative value iteration on the data-transformed SMDP
    instead (Schweitzer/Tijms: tau~ = 0.95 min tau, rewards r / tau, transitions
    (tau~ / tau) p plus a self-loop), stopped when the span of V_n - V_{n-1} is at most a
    tolerance; the tests check that both agree.

The matrices are small (a few hundred states): run the solvers inside
:func:`single_threaded_blas` when solving many models.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from agents.smdp.model import SMDPModel

__all__ = [
    "PolicyEvaluation",
    "PolicyIterationResult",
    "action_values",
    "bellman_rates",
    "evaluate_policy",
    "policy_iteration",
    "relative_value_iteration",
    "single_threaded_blas",
    "stationary_distribution",
]

MAX_POLICY_ITERATIONS = 200
MAX_VALUE_ITERATIONS = 200_000


class PolicyEvaluation(NamedTuple):
    """Long-run figures of one stationary policy of an :class:`SMDPModel` (:func:`evaluate_policy`).

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


def single_threaded_blas() -> AbstractContextManager[object]:
    """Return a context manager that runs BLAS/LAPACK on one thread inside its block.

    The thread counts are restored afterwards (``threadpoolctl``). The solver's matrices are
    small (a few hundred states), so threads only add overhead; on a busy 2-core machine (tests
    run in parallel) multi-threaded OpenBLAS made a solve 20x slower.
    """
    return threadpool_limits(limits=1, user_api="blas")


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
    """Evaluate a stationary policy exactly, by one linear solve.

    :param model: the SMDP.
    :param actions: (K + 1,) an allowed action index per queue length (see :class:`SMDPModel`).
    :returns: its gain (reward/s), relative values h (h(0) = 0) and the transition matrix of its
        embedded chain.
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
    """Return the value r(q, a) - g tau(q, a) + E h(next) of every (queue length, action).

    At an optimal (h, g) the best action of each row is optimal, and another action's shortfall
    from the row's best is what taking it once costs.

    :param model: the SMDP.
    :param h: (K + 1,) relative values (score units).
    :param gain: the gain g (score units/s).
    :returns: (K + 1, 1 + M B) values; -inf where the action is not allowed.
    """
    return model.reward + _expected_values(model, h) - gain * model.tau


def _improve(model: SMDPModel, actions: np.ndarray, gain: float, h: np.ndarray) -> np.ndarray:
    """Policy-improvement step; the current action is kept unless another is strictly better."""
    q = np.arange(model.cap + 1)
    values = action_values(model, h, gain)
    best = values.argmax(axis=1)
    current = values[q, actions]
    slack = 1e-12 * (1.0 + np.abs(current))
    return np.where(values[q, best] > current + slack, best, actions)


def bellman_rates(model: SMDPModel, h: np.ndarray) -> np.ndarray:
    """Return max over actions of (reward + E h(next) - h(q)) / tau, per state (reward per s).

    Its minimum and maximum over states bound the optimal gain (the SMDP value-iteration bounds,
    after Tijms' data transformation, evaluated at h): min <= g* <= max.

    :param model: the SMDP.
    :param h: (K + 1,) relative values (score units).
    :returns: (K + 1,) rates (score units/s).
    """
    values = (model.reward + _expected_values(model, h) - h[:, None]) / model.tau
    return values.max(axis=1)


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """Stationary law of an embedded chain (at decision epochs; states 0..K).

    :param transition: (K + 1, K + 1) transition matrix.
    :returns: (K + 1,) probabilities.
    """
    size = len(transition)
    matrix = (np.eye(size) - transition).T
    matrix[0, :] = 1.0
    rhs = np.zeros(size)
    rhs[0] = 1.0
    pi = np.linalg.solve(matrix, rhs)
    pi = np.maximum(pi, 0.0)
    return pi / pi.sum()


def policy_iteration(model: SMDPModel) -> PolicyIterationResult:
    """Solve the SMDP by Howard's policy iteration, with exact policy evaluation.

    Starts from the policy that never waits (2 to 6 iterations on the default system); a current
    action is kept unless another is strictly better (by a relative 1e-12). Run it inside
    :func:`single_threaded_blas` when solving many models.

    :param model: the SMDP.
    :raises RuntimeError: if it does not converge in 200 iterations.
    """
    q = np.arange(model.cap + 1)
    values = np.where(model.allowed, model.reward / model.tau, -np.inf)
    values[:, 0] = np.where(q == 0, 0.0, -np.inf)  # start from a policy that never waits
    actions = values.argmax(axis=1)
    for iteration in range(1, MAX_POLICY_ITERATIONS + 1):
        gain, h, transition = evaluate_policy(model, actions)
        improved = _improve(model, actions, gain, h)
        if np.array_equal(improved, actions):
            return PolicyIterationResult(actions, gain, h, transition, iteration)
        actions = improved
    raise RuntimeError(f"policy iteration did not converge in {MAX_POLICY_ITERATIONS} iterations")


def relative_value_iteration(model: SMDPModel, tol_per_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Solve the SMDP by relative value iteration on Tijms' data-transformed SMDP.

    A discrete-time MDP with rewards r / tau and transitions (tau~ / tau) p + (1 - tau~ / tau)
    self-loop, tau~ below every sojourn. Stops when the span of V_n - V_{n-1} (the gain bounds)
    is at most ``tol_per_s``.

    :param model: the SMDP.
    :param tol_per_s: largest span of the gain bounds (score units/s).
    :returns: actions, relative values h = tau~ V (h(0) = 0) and the number of iterations.
    :raises RuntimeError: if the tolerance is not reached in 200,000 iterations.
    """
    tau_step = 0.95 * float(model.tau[model.allowed].min())
    ratio = tau_step / model.tau
    rate_reward = np.where(model.allowed, model.reward / model.tau, -np.inf)
    v = np.zeros(model.cap + 1)
    for iteration in range(1, MAX_VALUE_ITERATIONS + 1):
        expected = _expected_values(model, v)
        values = rate_reward + ratio * (expected - v[:, None]) + v[:, None]
        new = values.max(axis=1)
        diff = new - v
        v = new - new[0]
        if diff.max() - diff.min() <= tol_per_s:
            return values.argmax(axis=1), tau_step * v, iteration
    raise RuntimeError(f"value iteration did not reach the tolerance in {MAX_VALUE_ITERATIONS} steps")
