"""The project's own scheduler: rate-indexed tables of SMDP-optimal control limits, an online
rate estimate with change detection, and an SLO guard. O(1) work per decision.

    scheduler = Proposed(config)              # builds (or reuses) its table: a few seconds
    sim = simulate(config, scheduler, seed)   # then one table lookup per decision epoch

The algorithm (docs/algorithm.md gives the reasoning and the measurements)
    Offline, for a log-spaced grid of total arrival rates (``rate_points`` rates from 1/s to
    ``max_load`` times the largest sustainable throughput), solve the batching SMDP of
    :mod:`agents.optimal` and keep, per rate and queue length q, its decision (wait, or dispatch
    b requests on model m) and its best dispatch (used when a wait must end). With one worker
    that is the exact optimum for Poisson arrivals at that rate; with n workers it is the
    *staggered-workers* SMDP (:func:`staggered_model`).

    Online, at each decision epoch (a worker idle, q >= 1 requests waiting):

    1. update the arrival-rate estimate from the arrival counter (:class:`RateEstimator`:
       EWMAs at several time constants, the slowest one consistent with all faster ones, and a
       Poisson CUSUM that restarts them after a jump up);
    2. look up the table row of that rate (arithmetic on log(rate)) and the decision at q;
    3. a wait is a timed wait: it ends after ``patience`` mean inter-arrival times (or at the
       SLO deadline, or at ``max_wait_ms``), and then the row's best dispatch at q is sent;
    4. SLO guard (when ``reward.w_slo > 0``): if the oldest request would miss ``slo_ms`` with the
       table's model, pick the model with the best SMDP action value minus the expected SLO
       penalty of the batch (a one-step improvement on the age-blind table).

Ablations (constructor flags): ``rate_estimation=False`` uses the scenario's nominal mean rate;
``model_switching=False`` keeps one model per rate row (the best single model at that rate), so
the model no longer depends on the queue; ``slo_guard=False`` ignores request deadlines.

Units: rates in requests/s, ``*_ms`` in milliseconds, ``*_s`` in seconds (the simulator's unit).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents import optimal
from agents.base import Scheduler
from agents.optimal import solve_optimal
from batchenv.config import ArrivalConfig, EnvConfig, SystemConfig
from batchenv.sim import Decision, Simulator
from batchenv.timing import ServiceTable

__all__ = [
    "PolicyTable",
    "Proposed",
    "RateEstimator",
    "build_policy_table",
    "staggered_model",
]

Dispatch = tuple[int, int]
"""(model index, batch size)."""


# --------------------------------------------------------------------------------------------
# Rate estimation
# --------------------------------------------------------------------------------------------


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
        return {
            "taus_s": list(self.taus_s),
            "z": self.z,
            "cusum_ratio": self.cusum_ratio,
            "cusum_threshold": self.cusum_threshold,
            "detect_drops": self.detect_drops,
        }


# --------------------------------------------------------------------------------------------
# The staggered-workers SMDP (several workers)
# --------------------------------------------------------------------------------------------


def _solver_config(config: SystemConfig, model: int | None = None) -> SystemConfig:
    """The one-worker, Poisson, w_slo = 0 system the SMDP solver accepts (optionally restricted
    to one model); everything else as in ``config``."""
    changes: dict[str, Any] = {
        "name": "proposed-table",
        "n_workers": 1,
        "arrivals": ArrivalConfig(),
        "reward": dataclasses.replace(config.reward, w_slo=0.0),
        "env": EnvConfig(),
        "horizon_s": 1.0,
        "max_wait_ms": 100.0,  # the SMDP has no request ages: its policy does not depend on it
    }
    if model is not None:
        changes["models"] = (config.models[model],)
    return dataclasses.replace(config, source_path=None, **changes)


def _scaled_timing(config: SystemConfig, factor: float) -> SystemConfig:
    """``config`` with every per-batch time (pre, comm, inference, post) multiplied by ``factor``."""
    timing = config.timing
    return config.replace(
        timing=dataclasses.replace(
            timing,
            comm_ms=tuple(c * factor for c in timing.comm_ms),
            t_pre_ms=timing.t_pre_ms * factor,
            t_post_ms=timing.t_post_ms * factor,
        ),
        models=tuple(
            dataclasses.replace(m, inference_ms=tuple(x * factor for x in m.inference_ms))
            for m in config.models
        ),
    )


def staggered_model(
    config: SystemConfig, rate_per_s: float, n_workers: int, action_set: str = "any"
) -> optimal.SMDPModel:
    """The batching SMDP of ``n_workers`` workers behind one queue, approximated as if the
    workers were perfectly staggered (each one frees up ``1 / n`` of a service time after the
    previous one). A dispatch of b on model m, service s, then leads to the next decision epoch
    after ``s / n`` (not s), with ``Poisson(rate * s / n)`` arrivals in between; the leftover and
    the new arrivals wait ``s / n`` for the next worker; the batch's own requests still take s.

    This is the one-worker SMDP of :mod:`agents.optimal` with every service time divided by n
    (sojourns, arrival counts and waiting areas) and the batch's own latency term corrected
    back to s: ``- w_lat * b * s * (1 - 1 / n)`` per dispatch. With n = 1 it is exactly the
    one-worker SMDP.

    :param config: the system (its ``n_workers`` is ignored; models, timing and rewards used).
    :param rate_per_s: total arrival rate (requests/s).
    :param n_workers: number of workers n >= 1.
    :returns: the :class:`agents.optimal.SMDPModel` of the scaled system with the corrected
        rewards.
    """
    base = _solver_config(config)
    scaled = _scaled_timing(base, 1.0 / n_workers)
    cap = optimal.default_queue_cap(scaled, rate_per_s)
    model = optimal.build_smdp(scaled, rate_per_s, cap, action_set)
    service_s = ServiceTable(base).service_ms[:, 1:].reshape(-1) / 1000.0
    batch = np.tile(np.arange(1, base.max_batch_size + 1), base.n_models)
    correction = base.reward.w_latency_per_s * batch * service_s * (1.0 - 1.0 / n_workers)
    reward = model.reward.copy()
    reward[:, 1:] -= correction[None, :]
    return dataclasses.replace(model, reward=reward)


@dataclass(frozen=True)
class _Row:
    """One rate's policy: decisions and best dispatches by queue length, and action values."""

    decisions: tuple[Decision, ...]
    fallback: tuple[Dispatch | None, ...]
    threshold: int
    gain_per_s: float
    model_values: np.ndarray | None = None  # (K + 1, M): value of dispatching the fallback b on m


def _decode(actions: np.ndarray, max_batch: int, model_map: Sequence[int]) -> list[Decision]:
    out: list[Decision] = []
    for a in actions:
        if a <= 0:
            out.append(None)
        else:
            a = int(a) - 1
            out.append((model_map[a // max_batch], a % max_batch + 1))
    return out


def _solve_row(
    config: SystemConfig, rate_per_s: float, n_workers: int, action_set: str, model: int | None, values: bool
) -> tuple[list[Decision], list[Dispatch | None], float, np.ndarray | None]:
    """Decisions, best dispatches and gain (per s) of one rate, and (if ``values``) the action
    values r - g tau + E h(next) of every (queue length, action)."""
    solver = _solver_config(config, model)
    model_map = [model] if model is not None else list(range(config.n_models))
    max_batch = solver.max_batch_size
    if n_workers == 1:  # the exact, certified one-worker optimum
        sol = solve_optimal(solver, rate_per_s, action_set=action_set)
        actions = np.where(sol.model < 0, 0, 1 + sol.model * max_batch + sol.batch - 1)
        best = np.where(sol.shield_model < 0, 0, 1 + sol.shield_model * max_batch + sol.shield_batch - 1)
        gain, h = sol.gain_per_s, np.asarray(sol.relative_values)
        smdp = None
        if values:
            smdp = optimal.build_smdp(solver, rate_per_s, sol.queue_cap, action_set)
    else:
        smdp = staggered_model(solver, rate_per_s, n_workers, action_set)
        actions, gain, h, _, _ = optimal.policy_iteration(smdp)
        best = None
    table = None
    if smdp is not None:
        table = optimal.action_values(smdp, h, gain)
        table[:, 0] = -np.inf
        if best is None:
            best = table.argmax(axis=1)
            best[0] = 0
    decisions = _decode(actions, max_batch, model_map)
    fallback = _decode(best, max_batch, model_map)
    return decisions, fallback, float(gain), table if values else None


def _model_values(
    values: np.ndarray, fallback: list[Dispatch | None], n_models: int, max_batch: int
) -> np.ndarray:
    """(K + 1, M): per q, the action value of dispatching the fallback's batch size on each model."""
    per_model = np.full((len(fallback), n_models), -np.inf)
    for q, d in enumerate(fallback):
        if d is not None:
            per_model[q] = values[q, 1 + np.arange(n_models) * max_batch + (d[1] - 1)]
    return per_model


@dataclass(frozen=True)
class PolicyTable:
    """Precomputed policies for a log-spaced grid of total arrival rates.

    :ivar rates_per_s: the grid of total arrival rates (requests/s), increasing, log-spaced.
    :ivar rows: one policy per rate (decisions and best dispatches by queue length).
    :ivar n_workers: workers the table was solved for.
    """

    rates_per_s: tuple[float, ...]
    rows: tuple[_Row, ...]
    n_workers: int
    log_low: float
    inv_log_step: float

    def row_index(self, rate_per_s: float) -> int:
        """Index of the grid rate nearest to ``rate_per_s`` in log scale (clipped); O(1)."""
        if rate_per_s <= 0.0:
            return 0
        i = round((math.log(rate_per_s) - self.log_low) * self.inv_log_step)
        last = len(self.rates_per_s) - 1
        return 0 if i < 0 else (last if i > last else i)

    def thresholds(self) -> list[int]:
        """The control limit q* of every row (requests)."""
        return [row.threshold for row in self.rows]


def _row(
    config: SystemConfig, rate: float, n_workers: int, action_set: str, model_switching: bool, values: bool
) -> _Row:
    """Solve one rate: all models, or the best single model at this rate."""
    candidates = [None] if model_switching else list(range(config.n_models))
    best = None
    for model in candidates:
        solved = _solve_row(config, rate, n_workers, action_set, model, values and model is None)
        if best is None or solved[2] > best[1][2]:
            best = (model, solved)
    assert best is not None
    model, (decisions, fallback, gain, value_table) = best
    threshold = next((q for q, d in enumerate(decisions) if q >= 1 and d is not None), len(decisions))
    model_values = None
    if value_table is not None:
        model_values = _model_values(value_table, fallback, config.n_models, config.max_batch_size)
    return _Row(tuple(decisions), tuple(fallback), threshold, gain, model_values)


@functools.lru_cache(maxsize=32)
def _build_cached(
    system: SystemConfig,
    n_workers: int,
    rate_points: int,
    max_load: float,
    action_set: str,
    model_switching: bool,
    values: bool,
) -> PolicyTable:
    low = 1.0
    high = max_load * ServiceTable(system).max_throughput_per_s(n_workers)
    log_low, log_high = math.log(low), math.log(high)
    step = (log_high - log_low) / (rate_points - 1)
    rates = tuple(math.exp(log_low + i * step) for i in range(rate_points))
    with optimal.single_threaded_blas():
        rows = tuple(_row(system, r, n_workers, action_set, model_switching, values) for r in rates)
    return PolicyTable(rates, rows, n_workers, log_low, 1.0 / step)


def build_policy_table(
    config: SystemConfig,
    *,
    rate_points: int = 80,
    max_load: float = 1.2,
    action_set: str = "any",
    model_switching: bool = True,
    values: bool = False,
) -> PolicyTable:
    """Solve the SMDP for ``rate_points`` log-spaced total rates from 1/s to ``max_load`` times
    the largest sustainable throughput of ``config.n_workers`` workers. Cached per system (the
    scenario's name, arrivals, horizon and SLO settings do not matter).

    :param config: the system (models, timing, rewards, workers, max_wait_ms, queue capacity).
    :param rate_points: grid size (>= 2); 80 gives a step of 8.6% on the default system.
    :param max_load: top of the grid as a multiple of the largest sustainable throughput.
    :param action_set: batch sizes allowed (:data:`agents.optimal.ACTION_SETS`).
    :param model_switching: False keeps, per rate, only the best single model's policy.
    :param values: also keep the action values per model (needed by the SLO guard).
    """
    if rate_points < 2:
        raise ValueError(f"rate_points must be >= 2, got {rate_points!r}")
    if not max_load > 0:
        raise ValueError(f"max_load must be > 0, got {max_load!r}")
    if action_set not in optimal.ACTION_SETS:
        raise ValueError(f"action_set must be one of {optimal.ACTION_SETS}, got {action_set!r}")
    system = _solver_config(config)
    return _build_cached(
        system,
        config.n_workers,
        int(rate_points),
        float(max_load),
        action_set,
        bool(model_switching),
        bool(values),
    )


# --------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------


class Proposed(Scheduler):
    """Rate-adaptive SMDP control limits with an SLO guard (module docstring); O(1) per decision.

    :param config: the system; any arrival process, any number of workers.
    :param rate_estimation: estimate the arrival rate online (default); False uses
        ``nominal_rate_per_s`` throughout (ablation "no rate estimation").
    :param model_switching: choose the model of each batch from the queue length and the rate
        (default); False keeps, per rate row, the policy of the best single model at that rate,
        so the model no longer depends on the queue (ablation "no model switching").
    :param slo_guard: weigh the SLO penalty ``reward.w_slo`` of the batch against the table's
        action values when the oldest request would miss ``slo_ms``, and end waits before its
        deadline (default); False ignores deadlines (ablation "no SLO guard"). The guard does
        nothing when the penalty is 0 (the default scenarios).
    :param patience: a wait ends once the oldest request has waited this many mean
        inter-arrival times (1 / estimated rate), capped by ``max_wait_ms``; the best dispatch
        at that queue length is then sent. Default 2.
    :param nominal_rate_per_s: the rate used without estimation (requests/s); default the
        scenario's mean rate.
    :param rate_points: rates in the table's log-spaced grid; default 80 (8.6% apart on the
        default system).
    :param max_load: top of the rate grid, as a multiple of the largest sustainable throughput
        of the workers; default 1.2.
    :param action_set: batch sizes of the table (:data:`agents.optimal.ACTION_SETS`); default
        ``"any"``.
    :param estimator: keyword arguments of :class:`RateEstimator` (``taus_s``, ``z``,
        ``cusum_ratio``, ``cusum_threshold``, ``detect_drops``).
    :param guard_slo_ms: latency objective the guard protects (ms); default the system's
        ``slo_ms``. With ``guard_penalty`` it turns the guard into a tail-latency guard on
        scenarios without an SLO penalty (the scenario's own score is unchanged).
    :param guard_penalty: penalty per request over ``guard_slo_ms`` that the guard weighs
        (score units); default the system's ``reward.w_slo``.
    :param worker_model: with several workers, ``"staggered"`` (default) uses the
        staggered-workers SMDP (:func:`staggered_model`); ``"share"`` uses the one-worker table
        at the per-worker rate (total rate / n), the simpler approximation it replaces.
    :ivar rate_per_s: the rate used at the last decision (requests/s).
    """

    name = "proposed"

    def __init__(
        self,
        config: SystemConfig,
        rate_estimation: bool = True,
        model_switching: bool = True,
        slo_guard: bool = True,
        patience: float = 2.0,
        nominal_rate_per_s: float | None = None,
        rate_points: int = 80,
        max_load: float = 1.2,
        action_set: str = "any",
        estimator: dict[str, Any] | None = None,
        guard_slo_ms: float | None = None,
        guard_penalty: float | None = None,
        worker_model: str = "staggered",
    ) -> None:
        super().__init__(config)
        if worker_model not in ("staggered", "share"):
            raise ValueError(f"worker_model must be 'staggered' or 'share', got {worker_model!r}")
        if isinstance(patience, bool) or not isinstance(patience, int | float) or not patience > 0:
            raise ValueError(f"patience must be > 0 (mean inter-arrival times), got {patience!r}")
        nominal = config.arrivals.mean_rate_per_s if nominal_rate_per_s is None else nominal_rate_per_s
        if not nominal > 0:
            raise ValueError(f"nominal_rate_per_s must be > 0 (requests/s), got {nominal!r}")
        if guard_slo_ms is not None and not guard_slo_ms > 0:
            raise ValueError(f"guard_slo_ms must be > 0 (ms), got {guard_slo_ms!r}")
        if guard_penalty is not None and not guard_penalty >= 0:
            raise ValueError(f"guard_penalty must be >= 0, got {guard_penalty!r}")
        self.rate_estimation = bool(rate_estimation)
        self.model_switching = bool(model_switching)
        self.slo_guard = bool(slo_guard)
        self.patience = float(patience)
        self.nominal_rate_per_s = float(nominal)
        self.rate_points = int(rate_points)
        self.max_load = float(max_load)
        self.action_set = action_set
        self.guard_slo_ms = guard_slo_ms
        self.guard_penalty = guard_penalty
        self.worker_model = worker_model
        share = worker_model == "share" and config.n_workers > 1
        self._rate_scale = 1.0 / config.n_workers if share else 1.0
        self._estimator_kwargs = dict(estimator or {})
        self.estimator = RateEstimator(**self._estimator_kwargs)
        self._w_slo = config.reward.w_slo if guard_penalty is None else float(guard_penalty)
        self._slo_s = (config.slo_ms if guard_slo_ms is None else guard_slo_ms) / 1000.0
        self._guard = self.slo_guard and self.model_switching and self._w_slo > 0.0
        self.table = build_policy_table(
            config.replace(n_workers=1) if share else config,
            rate_points=rate_points,
            max_load=max_load,
            action_set=action_set,
            model_switching=model_switching,
            values=self._guard,
        )
        self._rows = self.table.rows
        self._row_index = self.table.row_index
        self._service_s = ServiceTable(config).service_s
        self._max_wait_s = config.max_wait_ms / 1000.0
        self._fastest = [
            min(range(config.n_models), key=lambda m, b=b: self._service_s[m][b])
            for b in range(config.max_batch_size + 1)
        ]
        self.rate_per_s = self.nominal_rate_per_s

    # ------------------------------------------------------------------ episode
    def reset(self, sim: Simulator) -> None:
        self.estimator.reset(sim.now_s, sim.n_arrived)
        self.rate_per_s = self.nominal_rate_per_s if not self.rate_estimation else 0.0

    def decide(self, sim: Simulator) -> Decision:
        now = sim.now_s
        if self.rate_estimation:
            rate = self.estimator.update(now, sim.n_arrived)
            self.rate_per_s = rate
        else:
            rate = self.nominal_rate_per_s
        row = self._rows[self._row_index(rate * self._rate_scale)]
        decisions = row.decisions
        q = sim.queue_len
        k = q if q < len(decisions) else len(decisions) - 1
        decision = decisions[k]
        if decision is None:
            timer = self._timer_s(rate, row.fallback[k])
            if now < sim.oldest_arrival_s + timer and not sim.shielded:
                return timer
            decision = row.fallback[k]
        if self._guard:
            decision = self._slo_choice(sim, row, k, decision)
        return decision

    def _timer_s(self, rate: float, fallback: Dispatch | None) -> float:
        """Age (s) of the oldest request at which a wait ends: ``patience`` mean inter-arrival
        times, at most ``max_wait_ms`` and, with the guard, at most the last moment at which the
        best dispatch, on the fastest model, still meets the SLO."""
        timer = self.patience / rate if rate > 0.0 else self._max_wait_s
        if timer > self._max_wait_s:
            timer = self._max_wait_s
        if self._guard and fallback is not None:
            b = fallback[1]
            latest = self._slo_s - self._service_s[self._fastest[b]][b]
            if 0.0 < latest < timer:
                timer = latest
        return timer

    # ------------------------------------------------------------------ SLO guard
    def _slo_choice(self, sim: Simulator, row: _Row, k: int, decision: Dispatch) -> Dispatch:
        """When the oldest request would miss the SLO with ``decision``: the model with the best
        table action value (same batch size) minus ``w_slo`` times the batch's expected misses."""
        model, b = decision
        now = sim.now_s
        oldest = sim.oldest_arrival_s
        if now + self._service_s[model][b] <= oldest + self._slo_s or row.model_values is None:
            return decision
        spacing = _arrival_spacing_s(sim)
        values = row.model_values[k]
        best, best_value = decision, -math.inf
        for m, value in enumerate(values):
            if value == -math.inf:
                continue
            late_s = now + self._service_s[m][b] - self._slo_s - oldest
            value -= self._w_slo * _misses(late_s, spacing, b)
            if value > best_value:
                best, best_value = (m, b), value
        return best

    # ------------------------------------------------------------------ reports
    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that differ from the defaults."""
        defaults: dict[str, Any] = {
            "rate_estimation": True,
            "model_switching": True,
            "slo_guard": True,
            "patience": 2.0,
            "rate_points": 80,
            "max_load": 1.2,
            "action_set": "any",
            "guard_slo_ms": None,
            "guard_penalty": None,
            "worker_model": "staggered",
        }
        params = {key: getattr(self, key) for key, value in defaults.items() if getattr(self, key) != value}
        if not self.rate_estimation:
            params["nominal_rate_per_s"] = self.nominal_rate_per_s
        if self._estimator_kwargs:
            params["estimator"] = dict(self._estimator_kwargs)
        return params


def _arrival_spacing_s(sim: Simulator) -> float:
    """Mean gap (s) between the arrivals of the waiting requests, from the oldest and the mean
    wait (exact when they are evenly spaced; O(1)); 0 with fewer than two requests."""
    q = sim.queue_len
    if q < 2:
        return 0.0
    return 2.0 * (sim.oldest_wait_s - sim.mean_wait_s) / (q - 1)


def _misses(late_s: float, spacing_s: float, batch: int) -> int:
    """SLO misses in a batch whose oldest request completes ``late_s`` s after its deadline,
    the others arriving ``spacing_s`` apart: request i (0-based) misses if ``i * spacing_s <
    late_s``."""
    if late_s <= 0.0:
        return 0
    if spacing_s <= 0.0:
        return batch
    return min(batch, math.ceil(late_s / spacing_s))
