"""The solved SMDP: :func:`solve_optimal` (cached per system and rate) and its
:class:`OptimalSolution`, the optimal policy's tables and exact long-run figures.

``tol`` (default 1e-9) is the largest allowed span of the certified gain bounds per request
(:mod:`agents.smdp.solvers`); they come out about 1e-14 wide. ``benchmarks/solve_speed.py``
records how long a solve takes (docs/optimal.md quotes it).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from agents.smdp.model import (
    CAP_PROBABILITY,
    SMDPModel,
    build_smdp,
    check_action_set,
    check_queue_cap,
    check_supported,
    checked_rate,
    default_queue_cap,
)
from agents.smdp.solvers import (
    action_values,
    bellman_rates,
    evaluate_policy,
    policy_iteration,
    relative_value_iteration,
    single_threaded_blas,
    stationary_distribution,
)
from batchenv.config import ArrivalConfig, EnvConfig, SystemConfig
from batchenv.sim import Decision

__all__ = ["OptimalSolution", "clear_cache", "solve_optimal"]


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
    :ivar cost_per_request: best model quality - score_per_request (the project's comparison
        measure, docs/design.md: the regret against instant answers by the best model).
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
    :ivar action_set: the batch sizes allowed (:data:`agents.smdp.ACTION_SETS`).
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
        return min(int(np.searchsorted(cumulative, p)), self.queue_cap)


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
            actions, h, iterations = relative_value_iteration(model, tol_per_s)
        gain, h, transition = evaluate_policy(model, actions)
        rates = bellman_rates(model, h)
        pi = stationary_distribution(transition)
    low, high = float(rates.min()), float(rates.max())
    if high - low > tol_per_s:
        raise RuntimeError(
            f"gain bounds [{low}, {high}] (1/s) wider than tol * rate = {tol_per_s}: "
            "numerical trouble; try a smaller queue_cap"
        )
    return _solution(
        system, model, actions, gain, (low, high), h, pi, method, iterations, tol, action_set, start
    )


def clear_cache() -> None:
    """Forget every cached solution (to time a solve from scratch)."""
    _solve_cached.cache_clear()


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
        latency_target=None,
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
        :func:`agents.smdp.default_queue_cap`, doubled until the cap state's stationary
        probability is at most :data:`agents.smdp.CAP_PROBABILITY` or K is ``queue_capacity``.
    :param tol: largest allowed span of the certified gain bounds, per request (score units).
    :param method: ``"policy"`` (policy iteration, default, exact up to linear algebra) or
        ``"value"`` (relative value iteration with Tijms' data transformation, stopped at ``tol``).
    :param action_set: the batch sizes a dispatch may use (:data:`agents.smdp.ACTION_SETS`):
        ``"any"`` (default, the simulator's full choice), ``"whole"`` or ``"table"`` (the env's
        actions without or with ``batch_choice``: the optimum an agent of that env can reach).
    """
    check_supported(config)
    rate = checked_rate(config, rate_per_s)
    check_queue_cap(config, queue_cap)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if method not in ("policy", "value"):
        raise ValueError(f"method must be 'policy' or 'value', got {method!r}")
    check_action_set(action_set)
    system = _system_key(config)
    if queue_cap is not None:
        return _solve_cached(system, rate, int(queue_cap), float(tol), method, action_set)
    cap = default_queue_cap(config, rate)
    while True:
        solution = _solve_cached(system, rate, cap, float(tol), method, action_set)
        if solution.cap_probability <= CAP_PROBABILITY or cap == config.queue_capacity:
            return solution
        cap = min(2 * cap, config.queue_capacity)
