"""Latency targets for table-based schedulers: meet "p99 <= 100 ms" with the best quality it can.

An operator states a latency target (:class:`batchenv.config.LatencyTarget`: at least a fraction
p of the requests within a bound B, e.g. p99 <= 100 ms), not an exchange rate between latency and
quality. A table-based scheduler (the proposed scheduler, the SMDP optimum) is optimal for the
score ``quality - w * latency`` at the latency weight w of its SMDP tables; raising w buys
latency with quality. :class:`SloTargeted` wraps such a scheduler and chooses, at every decision
epoch, the multiplier s of the system's ``reward.w_latency_per_s`` whose tables it follows: the
smallest s at which the target holds, so the best quality among those policies.

    scheduler = SloTargeted(config, inner="proposed", target="p99<=100ms")
    sim = simulate(config, scheduler, seed)          # evaluate.py: agent slo_target

Two parts choose s (the grid :data:`DEFAULT_SCALES`, 0.1 to 100, 8 per decade):

- **Offline, per rate** (:func:`calibrate_scale`): for each arrival rate the inner scheduler's
  policy is indexed by (a row of its rate grid), the first time it is visited, simulate Poisson
  arrivals at that rate under the inner policy at each scale (bisection over the grid, one long
  episode of :data:`CALIBRATION_REQUESTS` requests on :data:`batchenv.seeds.CALIBRATION_SEED`)
  and keep the smallest scale whose attainment meets the aimed-at quantile
  ``1 - (1 - margin) (1 - p)``. The result is cached per process; it is a pure function of the
  system, the inner policy, the target and the rate, so episodes stay deterministic.
- **Online, from the measured tail** (an integral controller on a log multiplier m, O(1) per
  decision): at every dispatch the batch's misses of B are estimated from the oldest wait, the
  mean wait and the queue length (requests taken as evenly spaced; dropped requests count as
  misses), and ``log m += gain * (misses - (1 - margin) (1 - p) b) / ((1 - p) memory)`` for a
  batch of b. The scale used is the grid scale nearest to ``s*(rate) * m``. This is a dual
  ascent step on a Lagrange multiplier of the miss rate: m rises while the tail misses more
  than the budget, falls while it misses less, and so corrects what the Poisson calibration gets
  wrong on bursty or traced arrivals. log m is clipped to plus or minus the grid's span, so it
  never winds up beyond what the grid can express. It integrates the misses at every rate, also
  where the rate's own scale is already at an end of the grid: misses in a burst, served by the
  most latency-averse tables, are what must make the tables of the calmer rates before it more
  cautious.

The interface a wrapped scheduler needs (:class:`LatencyScaled`; implemented here for the
proposed scheduler by :class:`ScaledProposed` and for the optimum by :class:`ScaledOptimal`):

- ``latency_scales``: the multipliers of ``reward.w_latency_per_s`` it has policies for;
- ``use_latency_scale(index)``: follow the policy of that scale from now on (O(1) once built);
- ``policy_rate_per_s(sim)``: the rate (requests/s) whose policy row it uses at this epoch
  (updating its rate estimate as ``decide`` would);
- ``fixed_rate_policy(rate_per_s, index)``: a scheduler that plays its policy at that rate and
  scale, for the offline calibration on Poisson arrivals at that rate;
- and the :class:`agents.base.Scheduler` interface (``reset``, ``decide``, ``params``).

A scheduler built from several tables (a portfolio of experts, burst-tilted tables) implements
it by indexing every table it holds by scale as well, so the target composes with its own choice.

Units: ``*_ms`` milliseconds, ``*_s`` seconds, rates in requests/s.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from agents.base import Scheduler
from agents.optimal import OptimalScheduler
from agents.proposed import Proposed, _arrival_spacing_s, _misses, latency_weight_scaled
from agents.smdp import solve_optimal
from batchenv.config import ArrivalConfig, ConfigError, LatencyTarget, SystemConfig
from batchenv.metrics import latency_within
from batchenv.seeds import CALIBRATION_SEED
from batchenv.sim import Decision, Simulator, simulate

__all__ = [
    "CALIBRATION_REQUESTS",
    "DEFAULT_SCALES",
    "INNER_SCHEDULERS",
    "LatencyScaled",
    "ScaledOptimal",
    "ScaledProposed",
    "SloTargeted",
    "calibrate_scale",
    "latency_scaled_config",
    "scale_grid",
]

DEFAULT_SCALES: tuple[float, ...] = tuple(10.0 ** (k / 8) for k in range(-8, 17))
"""Multipliers of ``reward.w_latency_per_s`` with a policy: 0.1 to 100, 8 per decade (25). At
the top the tables send even single requests to the fastest model, whatever the rate."""

CALIBRATION_REQUESTS = 20_000
"""Requests of the Poisson episode that calibrates one (rate, scale)."""

CALIBRATION_MIN_HORIZON_S = 20.0
"""Shortest calibration episode (s), at high rates."""


def scale_grid(low: float = 0.1, high: float = 10.0, per_decade: int = 8) -> tuple[float, ...]:
    """Log-spaced multipliers from ``low`` to ``high`` with ``per_decade`` steps per decade
    (both ends on the grid of powers of ``10 ** (1 / per_decade)``)."""
    if not 0 < low <= high or per_decade < 1:
        raise ValueError(f"need 0 < low <= high and per_decade >= 1, got {low!r}, {high!r}, {per_decade!r}")
    first = round(math.log10(low) * per_decade)
    last = round(math.log10(high) * per_decade)
    return tuple(10.0 ** (k / per_decade) for k in range(first, last + 1))


def latency_scaled_config(config: SystemConfig, scale: float) -> SystemConfig:
    """``config`` with ``reward.w_latency_per_s`` multiplied by ``scale`` (and no latency target:
    the tables do not depend on it)."""
    return latency_weight_scaled(config, scale).replace(latency_target=None)


@runtime_checkable
class LatencyScaled(Protocol):
    """What :class:`SloTargeted` needs from the scheduler it wraps (module docstring)."""

    latency_scales: tuple[float, ...]

    def use_latency_scale(self, index: int) -> None:
        """Follow the policy of ``latency_scales[index]`` from now on."""

    def policy_rate_per_s(self, sim: Simulator) -> float:
        """The rate (requests/s) whose policy row is used at this epoch."""

    def fixed_rate_policy(self, rate_per_s: float, index: int) -> Scheduler:
        """A scheduler playing the policy of ``rate_per_s`` at scale ``index``."""

    def reset(self, sim: Simulator) -> None:
        """Start an episode."""

    def decide(self, sim: Simulator) -> Decision:
        """The decision at this epoch."""

    def params(self) -> dict[str, Any]:
        """The scheduler's parameters."""


def _scale_setup(
    scales: Sequence[float], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], tuple[float, ...], int]:
    """(the inner scheduler's own parameters, the checked scale grid, the index of the scale 1);
    ValueError unless the grid is increasing multipliers > 0 that include 1."""
    grid = tuple(float(s) for s in scales)
    if not grid or any(not s > 0 for s in grid) or list(grid) != sorted(set(grid)) or 1.0 not in grid:
        raise ValueError(f"latency_scales must be increasing multipliers > 0 that include 1, got {scales!r}")
    return dict(kwargs), grid, grid.index(1.0)


# --------------------------------------------------------------------------------------------
# The proposed scheduler and the optimum with a policy per latency scale
# --------------------------------------------------------------------------------------------


class ScaledProposed(Proposed):
    """The proposed scheduler (:class:`agents.proposed.Proposed`, every parameter accepted) with
    a table per latency scale, built when first used. At the scale 1 it is the proposed
    scheduler, decision for decision.

    :param latency_scales: the multipliers of ``reward.w_latency_per_s`` (increasing, with 1).
    """

    name = "proposed"

    def __init__(
        self, config: SystemConfig, latency_scales: Sequence[float] = DEFAULT_SCALES, **kwargs: Any
    ) -> None:
        super().__init__(config.replace(latency_target=None), **kwargs)
        self._kwargs, self.latency_scales, self._base = _scale_setup(latency_scales, kwargs)
        self._scaled_rows: dict[int, tuple[Any, ...]] = {self._base: self._rows}
        self.scale_index = self._base

    def _rows_at(self, index: int) -> tuple[Any, ...]:
        """The table rows of scale ``index`` (solved the first time: a few seconds)."""
        rows = self._scaled_rows.get(index)
        if rows is None:
            rows = self._build_table(self.latency_scales[index]).rows
            self._scaled_rows[index] = rows
        return rows

    def use_latency_scale(self, index: int) -> None:
        """Follow the table of ``latency_scales[index]`` (solved the first time)."""
        self._rows = self._rows_at(index)
        self.scale_index = index

    def policy_rate_per_s(self, sim: Simulator) -> float:
        """The grid rate (requests/s) of the row used now; updates the rate estimate."""
        rate = (
            self.estimator.update(sim.now_s, sim.n_arrived)
            if self.rate_estimation
            else self.nominal_rate_per_s
        )
        row = self._row_index(rate * self._rate_scale)
        return self.table.rates_per_s[row] / self._rate_scale

    def fixed_rate_policy(self, rate_per_s: float, index: int) -> Scheduler:
        """The proposed scheduler at a fixed rate (no estimation) and the scale ``index``."""
        kwargs = {**self._kwargs, "rate_estimation": False, "nominal_rate_per_s": rate_per_s}
        policy = ScaledProposed(self.config, self.latency_scales, **kwargs)
        policy._scaled_rows = self._scaled_rows  # shared: each scale's table is solved once
        policy.use_latency_scale(index)
        return policy


class ScaledOptimal(OptimalScheduler):
    """The SMDP optimum (:class:`agents.optimal.OptimalScheduler`; one worker, Poisson arrivals)
    solved at every latency scale for the episode's rate when first used (cached).

    :param latency_scales: the multipliers of ``reward.w_latency_per_s`` (increasing, with 1).
    """

    name = "optimal"

    def __init__(
        self, config: SystemConfig, latency_scales: Sequence[float] = DEFAULT_SCALES, **kwargs: Any
    ) -> None:
        super().__init__(config.replace(latency_target=None), **kwargs)
        self._kwargs, self.latency_scales, self._base = _scale_setup(latency_scales, kwargs)
        self.scale_index = self._base
        self._tables: dict[tuple[float, int], tuple[list[Decision], list[Decision], int]] = {}
        self._loaded: tuple[float, int] | None = (self.solution.rate_per_s, self._base)
        self._tables[self._loaded] = (self._table, self._shield, self._cap)

    def reset(self, sim: Simulator) -> None:
        """Start an episode at the scale 1."""
        super().reset(sim)  # the episode's rate at the scale 1 (solved if new)
        self._loaded = None
        self.use_latency_scale(self._base)

    def use_latency_scale(self, index: int) -> None:
        """Follow the optimum at ``latency_scales[index]`` (solved for the rate when first used)."""
        key = (self.solution.rate_per_s, index)
        self.scale_index = index
        if key == self._loaded:
            return
        tables = self._tables.get(key)
        if tables is None:
            config = latency_scaled_config(self.config, self.latency_scales[index])
            self._load(solve_optimal(config, key[0], queue_cap=self._queue_cap, action_set=self._action_set))
            tables = (self._table, self._shield, self._cap)
            self._tables[key] = tables
        self._table, self._shield, self._cap = tables
        self._loaded = key

    def policy_rate_per_s(self, sim: Simulator) -> float:
        """The episode's rate (requests/s): the optimum knows it."""
        return self.solution.rate_per_s

    def fixed_rate_policy(self, rate_per_s: float, index: int) -> Scheduler:
        """The optimum at ``rate_per_s`` and the scale ``index``."""
        config = latency_scaled_config(self.config, self.latency_scales[index])
        return OptimalScheduler(config, rate_per_s, **self._kwargs)


Factory = Callable[..., Any]
INNER_SCHEDULERS: dict[str, Factory] = {"proposed": ScaledProposed, "optimal": ScaledOptimal}
"""The schedulers :class:`SloTargeted` can wrap, by agent name: each takes ``(config,
latency_scales=..., **its own parameters)`` and implements :class:`LatencyScaled`."""


# --------------------------------------------------------------------------------------------
# Offline: the smallest scale that meets the target at a rate
# --------------------------------------------------------------------------------------------


def _poisson_at(config: SystemConfig, rate_per_s: float, n_requests: int) -> SystemConfig:
    """The system with stationary Poisson arrivals at ``rate_per_s`` for about ``n_requests``."""
    horizon = max(CALIBRATION_MIN_HORIZON_S, n_requests / rate_per_s)
    return config.replace(
        arrivals=ArrivalConfig(process="poisson", rate_per_s=rate_per_s),
        horizon_s=horizon,
        latency_target=None,
        name="slo-calibration",
    )


def _attainment(policy: Scheduler, config: SystemConfig, bound_ms: float) -> float:
    """Served within ``bound_ms`` / (served + dropped) of one episode of ``policy``."""
    sim = simulate(config, policy, CALIBRATION_SEED, sim=Simulator(config, record=True))
    (within,) = latency_within(sim, [bound_ms])
    judged = sim.n_served + sim.n_dropped
    return within / judged if judged else 1.0


def calibrate_scale(
    policy_at: Callable[[int], Scheduler],
    config: SystemConfig,
    rate_per_s: float,
    n_scales: int,
    bound_ms: float,
    quantile: float,
    n_requests: int = CALIBRATION_REQUESTS,
) -> int:
    """The smallest scale index whose policy (``policy_at(index)``) serves at least ``quantile``
    of the requests within ``bound_ms`` on Poisson arrivals at ``rate_per_s``; the largest index
    when none does. Bisection over the indices (attainment taken as non-decreasing in the
    scale: a larger latency weight never waits longer on purpose), about log2(n_scales) episodes.

    :param config: the system (its arrivals are replaced by Poisson at ``rate_per_s``).
    """
    episode = _poisson_at(config, rate_per_s, n_requests)
    low, high = 0, n_scales - 1
    if _attainment(policy_at(low), episode, bound_ms) >= quantile:
        return low
    while high - low > 1:  # invariant: low misses, high meets (or is the largest index)
        mid = (low + high) // 2
        if _attainment(policy_at(mid), episode, bound_ms) >= quantile:
            high = mid
        else:
            low = mid
    return high


_CALIBRATED: dict[tuple[Any, ...], int] = {}
"""Calibrated scale indices per (system, inner policy, grid, rate, bound, quantile, requests),
kept for the life of the process (a pure function of the key)."""


# --------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------


class SloTargeted(Scheduler):
    """A table-based scheduler aiming at a latency target with the best quality it can (module
    docstring): an offline scale per rate, corrected online by an O(1) integral controller.

    :param config: the system; its ``latency_target`` is the default target.
    :param inner: the wrapped scheduler, an agent spec of :data:`INNER_SCHEDULERS` with its own
        parameters, e.g. ``"proposed"``, ``"proposed(rate_estimation=false)"``, ``"optimal"``.
    :param target: the latency target (a :class:`LatencyTarget`, its short form ``"p99<=100ms"``
        or a mapping of its fields); default the system's ``latency_target`` (ConfigError if
        neither states one).
    :param margin: the share of the miss budget ``1 - p`` kept in reserve: the controller and the
        calibration aim at a miss rate of ``(1 - margin)(1 - p)``; in [0, 1), default 0.2.
    :param gain: the controller's gain (log multiplier per budget of misses over ``memory``
        requests) >= 0; 0 turns the online part off. Default 1.
    :param memory: requests over which a miss budget's excess moves log m by ``gain``; default
        2000.
    :param latency_scales: the scale grid (default :data:`DEFAULT_SCALES`).
    :param calibration_requests: requests of each calibration episode (default
        :data:`CALIBRATION_REQUESTS`).
    :ivar scale: the latency multiplier followed at the last decision.
    :ivar multiplier: the online multiplier m.
    """

    name = "slo_target"

    def __init__(
        self,
        config: SystemConfig,
        inner: str = "proposed",
        target: LatencyTarget | str | dict[str, Any] | None = None,
        margin: float = 0.2,
        gain: float = 1.0,
        memory: float = 2000.0,
        latency_scales: Sequence[float] = DEFAULT_SCALES,
        calibration_requests: int = CALIBRATION_REQUESTS,
    ) -> None:
        super().__init__(config)
        self.target = _resolve_target(config, target)
        for field_name, value, ok in (
            ("margin", margin, isinstance(margin, int | float) and 0 <= margin < 1),
            ("gain", gain, isinstance(gain, int | float) and gain >= 0),
            ("memory", memory, isinstance(memory, int | float) and memory > 0),
            (
                "calibration_requests",
                calibration_requests,
                isinstance(calibration_requests, int) and calibration_requests >= 100,
            ),
        ):
            if isinstance(value, bool) or not ok:
                allowed = {
                    "margin": "in [0, 1)",
                    "gain": ">= 0",
                    "memory": "> 0 (requests)",
                    "calibration_requests": "an integer >= 100",
                }[field_name]
                raise ValueError(f"{field_name} must be {allowed}, got {value!r}")
        self.inner_spec = str(inner)
        name, kwargs = _parse_inner(self.inner_spec)
        self.inner: LatencyScaled = INNER_SCHEDULERS[name](config, latency_scales=latency_scales, **kwargs)
        self.latency_scales = self.inner.latency_scales
        self.margin = float(margin)
        self.gain = float(gain)
        self.memory = float(memory)
        self.calibration_requests = int(calibration_requests)
        self._custom_scales = tuple(latency_scales) != DEFAULT_SCALES
        self._bound_ms = self.target.bound_for(config.slo_ms)
        self._bound_s = self._bound_ms / 1000.0
        self._budget = 1.0 - self.target.quantile
        self._aim = (1.0 - self.margin) * self._budget
        self._step = self.gain / (self._budget * self.memory)
        self._span = math.log(self.latency_scales[-1] / self.latency_scales[0])
        self._log_step = (
            math.log(self.latency_scales[1] / self.latency_scales[0]) if len(self.latency_scales) > 1 else 1.0
        )
        self._system_key = repr(
            config.replace(name="-", horizon_s=1.0, arrivals=ArrivalConfig(), latency_target=None)
        )
        self._max_batch = config.max_batch_size
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the online part (the offline calibration is kept)."""
        self.log_multiplier = 0.0
        self.multiplier = 1.0
        self.scale = 1.0
        self._served = 0
        self._dropped = 0
        self._estimated_misses = 0
        self._decisions = 0
        self._sum_index = 0

    # ------------------------------------------------------------------ episode
    def reset(self, sim: Simulator) -> None:
        """Start an episode: the online part forgotten, the inner scheduler reset."""
        self.reset_state()
        self.inner.reset(sim)

    def decide(self, sim: Simulator) -> Decision:
        """Choose the scale (offline index times the online multiplier), let the inner scheduler
        decide, and update the multiplier from the decision's estimated misses. O(1) once the
        rate's scale is calibrated."""
        rate = self.inner.policy_rate_per_s(sim)
        base = self._offline_index(rate)
        last = len(self.latency_scales) - 1
        offset = round(self.log_multiplier / self._log_step)
        index = min(max(base + offset, 0), last)
        self.inner.use_latency_scale(index)
        self.scale = self.latency_scales[index]
        self._decisions += 1
        self._sum_index += index
        q = sim.queue_len
        served_before, dropped_before = self._served, self._dropped
        dropped = sim.n_arrived - served_before - q
        decision = self.inner.decide(sim)
        misses = dropped - dropped_before
        count = misses
        if isinstance(decision, tuple):
            model, batch = decision
            b = min(batch, q, self._max_batch)
            late_s = sim.now_s + sim.service_s(model, b) - self._bound_s - sim.oldest_arrival_s
            batch_misses = _misses(late_s, _arrival_spacing_s(sim), b)
            misses += batch_misses
            count += b
            self._served = served_before + b
            self._estimated_misses += batch_misses
        self._dropped = dropped
        if self.gain > 0.0 and count:
            change = self._step * (misses - self._aim * count)
            log_m = self.log_multiplier + change
            self.log_multiplier = min(max(log_m, -self._span), self._span)  # no windup beyond the grid
            self.multiplier = math.exp(self.log_multiplier)
        return decision

    def _offline_index(self, rate_per_s: float) -> int:
        """The calibrated scale index of the policy row at ``rate_per_s`` (cached per process)."""
        key = (
            self._system_key,
            self.inner_spec,
            self.latency_scales,
            rate_per_s,
            self._bound_ms,
            self._aim,
            self.calibration_requests,
        )
        index = _CALIBRATED.get(key)
        if index is None:
            policy_at = functools.partial(self.inner.fixed_rate_policy, rate_per_s)
            index = calibrate_scale(
                policy_at,
                self.config,
                rate_per_s,
                len(self.latency_scales),
                self._bound_ms,
                1.0 - self._aim,
                self.calibration_requests,
            )
            _CALIBRATED[key] = index
        return index

    # ------------------------------------------------------------------ reports
    def params(self) -> dict[str, Any]:
        """The inner spec, the target and the parameters that differ from their defaults."""
        params: dict[str, Any] = {
            "inner": self.inner_spec,
            "target": self.target.describe(self.config.slo_ms),
        }
        defaults = {
            "margin": 0.2,
            "gain": 1.0,
            "memory": 2000.0,
            "calibration_requests": CALIBRATION_REQUESTS,
        }
        params.update({k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v})
        if self._custom_scales:
            params["latency_scales"] = list(self.latency_scales)
        return params

    def diagnostics(self) -> dict[str, float]:
        """The episode's mean scale index as a multiplier, the final online multiplier and the
        estimated misses (numbers for the results' per-seed rows)."""
        mean_index = self._sum_index / self._decisions if self._decisions else float("nan")
        low = self.latency_scales[0]
        return {
            "slo_mean_scale": low * math.exp(mean_index * self._log_step)
            if self._decisions
            else float("nan"),
            "slo_final_multiplier": self.multiplier,
            "slo_estimated_misses": float(self._estimated_misses),
        }


def _resolve_target(
    config: SystemConfig, target: LatencyTarget | str | dict[str, Any] | None
) -> LatencyTarget:
    if target is None:
        if config.latency_target is None:
            raise ConfigError(
                "latency_target",
                f"scenario {config.name!r} states no latency target; give one (e.g. target=p99<=100ms, "
                "or evaluate.py --target p99<=100ms)",
            )
        return config.latency_target
    if isinstance(target, LatencyTarget):
        return target.validate("target")
    if isinstance(target, str):
        return LatencyTarget.parse(target, "target")
    if isinstance(target, dict):
        return LatencyTarget(**{k: target[k] for k in target}).validate("target")
    raise ValueError(f"target must be a latency target such as 'p99<=100ms', got {target!r}")


def _parse_inner(spec: str) -> tuple[str, dict[str, Any]]:
    """``"proposed(rate_estimation=false)"`` -> ("proposed", {"rate_estimation": False})."""
    from agents.registry import AgentSpecError, parse_agent_spec  # the registry imports this module

    try:
        parsed = parse_agent_spec(spec)
    except AgentSpecError as exc:
        raise ValueError(f"inner: {exc}") from None
    if parsed.name not in INNER_SCHEDULERS:
        raise ValueError(f"inner must be one of {sorted(INNER_SCHEDULERS)} (with parameters), got {spec!r}")
    return parsed.name, dict(parsed.kwargs)
