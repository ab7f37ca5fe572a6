"""The proposed scheduler's offline part: SMDP-optimal policies for a log-spaced grid of total
arrival rates, looked up by rate in O(1).

For each grid rate the batching SMDP (:mod:`agents.smdp`) is solved: with one worker the exact,
certified optimum (:func:`agents.smdp.solve_optimal`); with n workers the staggered-workers SMDP
(:func:`agents.smdp.staggered_model`). Each row keeps, per queue length q, the decision (wait,
or dispatch b requests on model m) and the best dispatch (used when a wait must end).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.smdp import (
    action_values,
    build_smdp,
    check_action_set,
    policy_iteration,
    single_threaded_blas,
    solve_optimal,
    solver_system,
    staggered_model,
)
from batchenv.config import SystemConfig
from batchenv.timing import ServiceTable

__all__ = ["Dispatch", "PolicyRow", "PolicyTable", "build_policy_table", "clear_cache"]

Dispatch = tuple[int, int]
"""(model index, batch size)."""


@dataclass(frozen=True)
class PolicyRow:
    """One rate's policy: decisions and best dispatches by queue length, and action values.

    :ivar decisions: (K + 1) decisions by queue length q: None (wait) or (model, batch size).
    :ivar fallback: (K + 1) best dispatch by q when a wait must end (None at q = 0).
    :ivar threshold: the control limit q*, the smallest q >= 1 that dispatches (requests).
    :ivar gain_per_s: the row's optimal gain (score units/s).
    :ivar model_values: (K + 1, M) action value of dispatching the fallback's batch size on each
        model (score units), or None when not kept.
    """

    decisions: tuple[Dispatch | None, ...]
    fallback: tuple[Dispatch | None, ...]
    threshold: int
    gain_per_s: float
    model_values: np.ndarray | None = None


def _decode(actions: np.ndarray, max_batch: int, model_map: Sequence[int]) -> list[Dispatch | None]:
    """Decisions of encoded actions (0 = wait, 1 + m * max_batch + b - 1 = dispatch b on m)."""
    out: list[Dispatch | None] = []
    for a in actions:
        if a <= 0:
            out.append(None)
        else:
            a = int(a) - 1
            out.append((model_map[a // max_batch], a % max_batch + 1))
    return out


def _solve_row(
    config: SystemConfig, rate_per_s: float, n_workers: int, action_set: str, model: int | None, values: bool
) -> tuple[list[Dispatch | None], list[Dispatch | None], float, np.ndarray | None]:
    """Decisions, best dispatches and gain (per s) of one rate, and (if ``values``) the action
    values r - g tau + E h(next) of every (queue length, action)."""
    solver = solver_system(config, model)
    model_map = [model] if model is not None else list(range(config.n_models))
    max_batch = solver.max_batch_size
    if n_workers == 1:  # the exact, certified one-worker optimum
        sol = solve_optimal(solver, rate_per_s, action_set=action_set)
        actions = np.where(sol.model < 0, 0, 1 + sol.model * max_batch + sol.batch - 1)
        best = np.where(sol.shield_model < 0, 0, 1 + sol.shield_model * max_batch + sol.shield_batch - 1)
        gain, h = sol.gain_per_s, np.asarray(sol.relative_values)
        smdp = None
        if values:
            smdp = build_smdp(solver, rate_per_s, sol.queue_cap, action_set)
    else:
        smdp = staggered_model(solver, rate_per_s, n_workers, action_set)
        actions, gain, h, _, _ = policy_iteration(smdp)
        best = None
    table = None
    if smdp is not None:
        table = action_values(smdp, h, gain)
        table[:, 0] = -np.inf
        if best is None:
            best = table.argmax(axis=1)
            best[0] = 0
    assert best is not None  # one worker: from the solution; several: from the action values
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
    :ivar log_low: log of the lowest grid rate (log requests/s).
    :ivar inv_log_step: 1 / the grid's step in log rate.
    """

    rates_per_s: tuple[float, ...]
    rows: tuple[PolicyRow, ...]
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
) -> PolicyRow:
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
    return PolicyRow(tuple(decisions), tuple(fallback), threshold, gain, model_values)


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
    with single_threaded_blas():
        rows = tuple(_row(system, r, n_workers, action_set, model_switching, values) for r in rates)
    return PolicyTable(rates, rows, n_workers, log_low, 1.0 / step)


def clear_cache() -> None:
    """Forget every cached table (to time a build from scratch; solutions stay cached)."""
    _build_cached.cache_clear()


def build_policy_table(
    config: SystemConfig,
    *,
    rate_points: int = 80,
    max_load: float = 1.2,
    action_set: str = "any",
    model_switching: bool = True,
    values: bool = False,
) -> PolicyTable:
    """Solve the SMDP for ``rate_points`` log-spaced total rates.

    The grid runs from 1/s to ``max_load`` times the largest sustainable throughput of
    ``config.n_workers`` workers. Cached per system (the scenario's name, arrivals, horizon and
    SLO settings do not matter).

    :param config: the system (models, timing, rewards, workers, max_wait_ms, queue capacity).
    :param rate_points: grid size (>= 2); 80 gives a step of 8.6% on the default system.
    :param max_load: top of the grid as a multiple of the largest sustainable throughput.
    :param action_set: batch sizes allowed (:data:`agents.smdp.ACTION_SETS`).
    :param model_switching: False keeps, per rate, only the best single model's policy.
    :param values: also keep the action values per model (needed by the SLO guard).
    """
    if rate_points < 2:
        raise ValueError(f"rate_points must be >= 2, got {rate_points!r}")
    if not max_load > 0:
        raise ValueError(f"max_load must be > 0, got {max_load!r}")
    check_action_set(action_set)
    system = solver_system(config)
    return _build_cached(
        system,
        config.n_workers,
        int(rate_points),
        float(max_load),
        action_set,
        bool(model_switching),
        bool(values),
    )
