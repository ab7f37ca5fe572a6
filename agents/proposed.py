"""The project's own scheduler: rate-indexed tables of SMDP-optimal control limits, an online
rate estimate with change detection, and an SLO guard. O(1) work per decision.

    scheduler = Proposed(config)              # builds (or reuses) its table: a few seconds
    sim = simulate(config, scheduler, seed)   # then one table lookup per decision epoch

The algorithm (docs/algorithm.md gives the reasoning and the measurements)
    Offline, for a log-spaced grid of total arrival rates (``rate_points`` rates from 1/s to
    ``max_load`` times the largest sustainable throughput), solve the batching SMDP of
    :mod:`agents.smdp` and keep, per rate and queue length q, its decision (wait, or dispatch
    b requests on model m) and its best dispatch (used when a wait must end): the
    :class:`~agents.policy_table.PolicyTable`. With one worker that is the exact optimum for
    Poisson arrivals at that rate; with n workers it is the *staggered-workers* SMDP
    (:func:`agents.smdp.staggered_model`).

    Online, at each decision epoch (a worker idle, q >= 1 requests waiting):

    1. update the arrival-rate estimate from the arrival counter
       (:class:`batchenv.estimators.RateEstimator`:
       EWMAs at several time constants, the slowest one consistent with all faster ones, and a
       Poisson CUSUM that restarts them after a jump up);
    2. look up the table row of that rate (arithmetic on log(rate)) and the decision at q;
    3. a wait is a timed wait: it ends after ``patience`` mean inter-arrival times (or at the
       SLO deadline, or at ``max_wait_ms``), and then the row's best dispatch at q is sent;
    4. SLO guard (when ``reward.w_slo > 0``): if the oldest request would miss ``slo_ms`` with the
       table's model, pick the model with the best SMDP action value minus the expected SLO
       penalty of the batch (a one-step improvement on the age-blind table).

Formal models (:mod:`formal.band`) read the table through :meth:`Proposed.decision_rows`: the
rows the scheduler can follow for any estimate within a band of rates, each with its timers and
its SLO guard (:mod:`batchenv.decision_rows`).

Ablations (constructor flags): ``rate_estimation=False`` uses the scenario's nominal mean rate;
``model_switching=False`` keeps one model per rate row (the best single model at that rate), so
the model no longer depends on the queue; ``slo_guard=False`` ignores request deadlines.

Units: rates in requests/s, ``*_ms`` in milliseconds, ``*_s`` in seconds (the simulator's unit).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

from agents.base import Scheduler
from agents.policy_table import Dispatch, PolicyRow, PolicyTable, build_policy_table
from batchenv.config import SystemConfig
from batchenv.decision_rows import DecisionRow
from batchenv.estimators import RateEstimator
from batchenv.sim import Decision, Simulator
from batchenv.timing import ServiceTable

__all__ = ["Proposed", "latency_weight_scaled"]


def latency_weight_scaled(config: SystemConfig, scale: float) -> SystemConfig:
    """``config`` with its latency weight ``reward.w_latency_per_s`` (per s) multiplied by ``scale``."""
    reward = dataclasses.replace(config.reward, w_latency_per_s=config.reward.w_latency_per_s * scale)
    return config.replace(reward=reward)


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
    :param action_set: batch sizes of the table (:data:`agents.smdp.ACTION_SETS`); default
        ``"any"``.
    :param estimator: keyword arguments of :class:`~batchenv.estimators.RateEstimator` (``taus_s``, ``z``,
        ``cusum_ratio``, ``cusum_threshold``, ``detect_drops``).
    :param guard_slo_ms: latency objective the guard protects (ms); default the system's
        ``slo_ms``. With ``guard_penalty`` it turns the guard into a tail-latency guard on
        scenarios without an SLO penalty (the scenario's own score is unchanged).
    :param guard_penalty: penalty per request over ``guard_slo_ms`` that the guard weighs
        (score units); default the system's ``reward.w_slo``.
    :param guard_waits: the guard also ends waits before the oldest request would miss the
        objective (default); False: it only chooses the model of a batch whose oldest request
        would be late.
    :param worker_model: with several workers, ``"staggered"`` (default) uses the
        staggered-workers SMDP (:func:`agents.smdp.staggered_model`); ``"share"`` uses the
        one-worker table at the per-worker rate (total rate / n), the simpler approximation it
        replaces.
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
        guard_waits: bool = True,
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
        self.guard_waits = bool(guard_waits)
        self.worker_model = worker_model
        share = worker_model == "share" and config.n_workers > 1
        self._rate_scale = 1.0 / config.n_workers if share else 1.0
        self._estimator_kwargs = dict(estimator or {})
        self.estimator = RateEstimator(**self._estimator_kwargs)
        self._w_slo = config.reward.w_slo if guard_penalty is None else float(guard_penalty)
        self._slo_s = (config.slo_ms if guard_slo_ms is None else guard_slo_ms) / 1000.0
        self._guard = self.slo_guard and self.model_switching and self._w_slo > 0.0
        self._table_config = config.replace(n_workers=1) if share else config
        self.table = self._build_table()
        self._rows = self.table.rows
        self._row_index = self.table.row_index
        self._service_s = ServiceTable(config).service_s
        self._max_wait_s = config.max_wait_ms / 1000.0
        service_s = self._service_s

        def fastest(b: int) -> int:
            """The model that serves a batch of b soonest (the first on ties)."""
            return min(range(config.n_models), key=lambda m: service_s[m][b])

        self._fastest = [fastest(b) for b in range(config.max_batch_size + 1)]
        self.rate_per_s = self.nominal_rate_per_s

    # ------------------------------------------------------------------ episode
    def _build_table(self, latency_scale: float = 1.0) -> PolicyTable:
        """This scheduler's decision table (its rate points, load bound, actions, model switching
        and SLO guard), solved with the latency weight times ``latency_scale``: a few seconds."""
        config = self._table_config
        if latency_scale != 1.0:
            config = latency_weight_scaled(config, latency_scale)
        return build_policy_table(
            config,
            rate_points=self.rate_points,
            max_load=self.max_load,
            action_set=self.action_set,
            model_switching=self.model_switching,
            values=self._guard,
        )

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: restart the rate estimate at the simulator's clock and counter."""
        self.estimator.reset(sim.now_s, sim.n_arrived)
        self.rate_per_s = self.nominal_rate_per_s if not self.rate_estimation else 0.0

    def decide(self, sim: Simulator) -> Decision:
        """The table's decision at the estimated rate and the queue length (module docstring)."""
        now = sim.now_s
        if self.rate_estimation:
            rate = self._estimate_rate(sim)
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
        if self._guard and decision is not None:
            decision = self._slo_choice(sim, row, k, decision)
        return decision

    def _estimate_rate(self, sim: Simulator) -> float:
        """The arrival-rate estimate (requests/s) at this decision epoch (a subclass may add
        evidence to the estimator's)."""
        return self.estimator.update(sim.now_s, sim.n_arrived)

    def _timer_s(self, rate: float, fallback: Dispatch | None) -> float:
        """Age (s) of the oldest request at which a wait ends: ``patience`` mean inter-arrival
        times, at most ``max_wait_ms`` and, with the guard, at most the last moment at which the
        best dispatch, on the fastest model, still meets the SLO."""
        timer = self.patience / rate if rate > 0.0 else self._max_wait_s
        if timer > self._max_wait_s:
            timer = self._max_wait_s
        if self._guard and self.guard_waits and fallback is not None:
            b = fallback[1]
            latest = self._slo_s - self._service_s[self._fastest[b]][b]
            if 0.0 < latest < timer:
                timer = latest
        return timer

    # ------------------------------------------------------------------ SLO guard
    def _slo_choice(self, sim: Simulator, row: PolicyRow, k: int, decision: Dispatch) -> Dispatch:
        """When the oldest request would miss the SLO with ``decision``: the model with the best
        table action value (same batch size) minus ``w_slo`` times the batch's expected misses."""
        now = sim.now_s
        oldest = sim.oldest_arrival_s
        model, b = decision
        if now + self._service_s[model][b] <= oldest + self._slo_s or row.model_values is None:
            return decision
        return self._slo_choice_at(row, k, decision, now, oldest, _arrival_spacing_s(sim))

    def _slo_choice_at(
        self, row: PolicyRow, k: int, decision: Dispatch, now: float, oldest: float, spacing: float
    ) -> Dispatch:
        """:meth:`_slo_choice` at time ``now`` (s), the oldest request arrived at ``oldest`` (s)
        and the waiting requests ``spacing`` (s) apart."""
        b = decision[1]
        assert row.model_values is not None
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

    # ------------------------------------------------------------------ formal models
    def decision_rows(self, rate_lo_per_s: float, rate_hi_per_s: float) -> list[DecisionRow]:
        """Every table row the scheduler follows while its rate estimate is anywhere in
        ``[rate_lo_per_s, rate_hi_per_s]`` (requests/s), each with, per queue length, its decision,
        the range of its wait's timer (ms) over the estimates of the band that select the row, the
        dispatch that ends the wait, and the SLO guard (when active). Without rate estimation the
        estimate is the nominal rate, whatever the band: one row.

        A decision of the table is a dispatch or a timed wait; the timer ``_timer_s`` decreases
        with the estimate, so over an interval of estimates its range is given by the interval's
        two ends (:mod:`batchenv.decision_rows`)."""
        if not 0 < rate_lo_per_s <= rate_hi_per_s:
            raise ValueError(
                f"need 0 < rate_lo_per_s <= rate_hi_per_s, got {rate_lo_per_s!r}, {rate_hi_per_s!r}"
            )
        if not self.rate_estimation:
            rate_lo_per_s = rate_hi_per_s = self.nominal_rate_per_s
        return self._table_decision_rows(self._rows, rate_lo_per_s, rate_hi_per_s)

    def _table_decision_rows(
        self, table_rows: Sequence[Any], rate_lo_per_s: float, rate_hi_per_s: float
    ) -> list[DecisionRow]:
        """:meth:`decision_rows` of the table ``table_rows`` (the rows of a table solved on this
        table's rate grid, e.g. at another latency weight)."""
        scale = self._rate_scale
        first = self._row_index(rate_lo_per_s * scale)
        last = self._row_index(rate_hi_per_s * scale)
        rows = []
        for index in range(first, last + 1):
            low, high = _rate_bounds(self.table, index)
            lo = max(rate_lo_per_s, low / scale)
            hi = min(rate_hi_per_s, high / scale)
            rows.append(self._decision_row(table_rows[index], index, lo, hi))
        return rows

    def _decision_row(self, row: Any, index: int, lo: float, hi: float) -> DecisionRow:
        """Row ``row`` (index ``index`` of its table) for estimates in ``[lo, hi]`` (requests/s)."""
        timers: list[tuple[float, float] | None] = []
        for decision, fallback in zip(row.decisions[1:], row.fallback[1:], strict=True):
            if decision is not None:
                timers.append(None)
                continue
            shortest, longest = self._timer_s(hi, fallback), self._timer_s(lo, fallback)
            timers.append((1000.0 * shortest, 1000.0 * longest))
        rate = self.table.rates_per_s[index]
        return DecisionRow(
            label=f"row {index} ({rate:.4g}/s), estimates {lo:.4g}-{hi:.4g}/s",
            decisions=tuple(row.decisions[1:]),
            timers_ms=tuple(timers),
            fallbacks=tuple(row.fallback[1:]),
            guard=_RowGuard(self, row) if self._guard else None,
        )

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
            "guard_waits": True,
        }
        params = {key: getattr(self, key) for key, value in defaults.items() if getattr(self, key) != value}
        if not self.rate_estimation:
            params["nominal_rate_per_s"] = self.nominal_rate_per_s
        if self._estimator_kwargs:
            params["estimator"] = dict(self._estimator_kwargs)
        return params


def _rate_bounds(table: PolicyTable, index: int) -> tuple[float, float]:
    """The rates (requests/s) for which ``table.row_index`` gives ``index``: ``[low, high)``
    (0 below the first row, inf above the last)."""
    half = 0.5 / table.inv_log_step
    low = 0.0 if index == 0 else math.exp(table.log_low + index / table.inv_log_step - half)
    last = len(table.rates_per_s) - 1
    high = math.inf if index == last else math.exp(table.log_low + index / table.inv_log_step + half)
    return low, high


class _RowGuard:
    """The SLO guard of one table row as a :class:`batchenv.decision_rows.SloGuard`: every
    dispatch :meth:`Proposed._slo_choice` may send at a queue length and age, over every arrival
    pattern of the other waiting requests. The guard reads that pattern through one number, the
    mean spacing of the waiting requests' arrivals (:func:`_arrival_spacing_s`), which lies in
    ``[0, 2 age / q]`` (the others arrived with the oldest, or just now); its choice is constant
    between the spacings at which some model's count of misses changes (``late / j``), so the
    guard is evaluated at each of them and between each two."""

    def __init__(self, scheduler: Proposed, row: PolicyRow) -> None:
        self.scheduler = scheduler
        self.row = row

    def choices(self, queue: int, decision: Dispatch, age_ms: float) -> frozenset[Dispatch]:
        """Every dispatch the guard may send at ``queue`` requests, the oldest ``age_ms`` old."""
        s = self.scheduler
        row = self.row
        k = queue if queue < len(row.decisions) else len(row.decisions) - 1
        age = age_ms / 1000.0
        model, b = decision
        if age + s._service_s[model][b] <= s._slo_s or row.model_values is None:
            return frozenset((decision,))
        widest = 2.0 * age / queue if queue >= 2 else 0.0
        points = {0.0, widest}
        for m, value in enumerate(row.model_values[k]):
            late = age + s._service_s[m][b] - s._slo_s
            if value == -math.inf or late <= 0.0:
                continue
            points.update(late / j for j in range(1, b + 1) if late / j < widest)
        ordered = sorted(points)
        candidates = ordered + [0.5 * (x + y) for x, y in itertools.pairwise(ordered)]
        return frozenset(s._slo_choice_at(row, k, decision, age, 0.0, spacing) for spacing in candidates)


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
