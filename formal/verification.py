"""The whole verification run behind ``verify.py``: Storm on the MDP and on one DTMC per policy,
the comparison with the SMDP optimum of :mod:`agents.optimal`, the proposed scheduler's own rows
with its rate estimate as an adversary (:mod:`formal.band`), the cross-checks against the tick
simulator (:mod:`formal.ticksim`) and the event-driven simulator (:mod:`batchenv.sim`), and the
real agents against their tables (:mod:`formal.real_agents`).

Model checking tasks run on a backend of :mod:`execution` (``jobs`` local processes by default,
or Ray); each returns plain dataclasses.
Modules of ``agents/`` are imported lazily: when one is missing, the rows that need it are
reported as skipped with the reason.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchenv.config import ConfigError, SystemConfig
from batchenv.metrics import compute_metrics, request_table
from batchenv.sim import Decision, Simulator, simulate
from execution.backends import BackendSpec
from execution.outcome import Outcome
from formal.band import EstimateBand, band_choices, describe_rows
from formal.check import (
    CPU_BUDGET_S,
    BuildStats,
    ChoiceFigures,
    OptimumResult,
    PolicyFigures,
    SafetyResult,
    build_model,
    check_choices,
    check_optimum,
    check_policy,
    max_violation_probability,
)
from formal.discrete import TickModel
from formal.policies import (
    DiscretePolicy,
    GreedyPolicy,
    StaticPolicy,
    TablePolicy,
    TimeoutPolicy,
    distill,
    policy_table,
)
from formal.portfolio import distinct_experts, experts_of, portfolio_choice_pair
from formal.prism import Choices, check_costs_modelled, mdp_program
from formal.real_agents import RealAgentResult, run_real_agent
from formal.ticksim import TickSimResult, simulate_ticks

__all__ = [
    "CROSS_CHECK_FIELDS",
    "BandRow",
    "ContinuousResult",
    "PolicyEntry",
    "PolicyRow",
    "Settings",
    "SmdpComparison",
    "VerificationReport",
    "as_sim_policy",
    "baseline_policies",
    "compare_with_smdp",
    "describe_by_queue",
    "run_verification",
    "simulate_continuous",
    "smdp_policy",
]

CROSS_CHECK_FIELDS = ("throughput_per_s", "utilisation", "mean_queue", "latency_ms")
"""Quantities compared between Storm and the simulators."""


@dataclass(frozen=True)
class Settings:
    """What ``verify.py`` checks.

    :param config: the system.
    :param rate_per_s: Poisson rate (requests/s); None = the config's mean rate.
    :param tick_ms: tick of the discrete model (ms), in [1, 5].
    :param queue_cap: queue capacity of the discrete model (requests).
    :param overflow_s: time bound (s) of the overflow probability.
    :param agents: agent specs of :mod:`agents.registry` to distil into tables and check
        (e.g. ``util_switch``, ``proposed``, a ``.zip`` checkpoint). Each decision state is
        probed on a fresh simulator, so an agent that estimates the arrival rate online would see
        only the probe's few arrivals: ``proposed`` is distilled with its nominal rate
        (``rate_estimation=false``).
    :param crosscheck_ticks: ticks simulated per policy by the tick simulator.
    :param sim_horizon_s: simulated time (s) per policy in the event-driven simulator.
    :param jobs: parallel processes (or Ray CPUs) for the model checking.
    :param backend: ``"local"`` (processes on this machine) or ``"ray"`` (:mod:`execution`).
    :param address: Ray cluster to join with ``backend="ray"`` (None: an embedded local Ray).
    :param seed: seed of the simulations.
    :param arrivals: ``"auto"``: a scenario with Markov-modulated arrivals (``bursty``) is
        modelled phase by phase, any other as Poisson at its mean rate; ``"poisson"``: Poisson at
        the mean rate always.
    :param band_scheduler: agent spec of the scheduler whose own rows are checked with its rate
        estimate as an adversary (it must have ``decision_rows``, :mod:`batchenv.decision_rows`);
        None or ``""`` to skip.
    :param bands: the band factors ``f`` of the estimate, ``[rate / f, rate * f]`` (1: exact).
    :param cpu_budget_s: CPU time (s) of one sound MDP long-run-average query before Storm's
        default solver answers it.
    :param agent_seeds: seeds of the real agents' event simulations (0, 1, ...).
    :param agent_horizon_s: simulated time (s) per seed of each real agent and its table.
    :param portfolio_scheduler: agent spec of a portfolio scheduler (``robust``) checked as an
        adversarial switch among its experts, each with its estimate within each band of
        ``bands`` (:mod:`formal.portfolio`); None or ``""`` to skip (default).
    """

    config: SystemConfig
    rate_per_s: float | None = None
    tick_ms: float = 2.0
    queue_cap: int = 64
    overflow_s: float = 1.0
    agents: tuple[str, ...] = ("util_switch", "proposed(rate_estimation=false)")
    crosscheck_ticks: int = 300_000
    sim_horizon_s: float = 600.0
    jobs: int = 2
    seed: int = 0
    backend: str = "local"
    address: str | None = None
    arrivals: str = "auto"
    band_scheduler: str | None = "proposed"
    bands: tuple[float, ...] = (1.0, 1.25, 2.0)
    cpu_budget_s: float = CPU_BUDGET_S
    agent_seeds: int = 3
    agent_horizon_s: float = 200.0
    portfolio_scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.arrivals not in ("auto", "poisson"):
            raise ConfigError("arrivals", f"must be 'auto' or 'poisson', got {self.arrivals!r}")
        for f in self.bands:
            try:
                EstimateBand(f)
            except ValueError as exc:
                raise ConfigError("bands", str(exc)) from None
        if not self.cpu_budget_s >= 0:
            raise ConfigError("cpu_budget_s", f"must be >= 0 (s of CPU time), got {self.cpu_budget_s!r}")
        if (
            isinstance(self.agent_seeds, bool)
            or not isinstance(self.agent_seeds, int)
            or self.agent_seeds < 0
        ):
            raise ConfigError("agent_seeds", f"must be an integer >= 0, got {self.agent_seeds!r}")
        if not self.agent_horizon_s > 0:
            raise ConfigError("agent_horizon_s", f"must be > 0 (s), got {self.agent_horizon_s!r}")

    @property
    def phased(self) -> bool:
        """Markov-modulated arrivals are modelled phase by phase."""
        return self.arrivals == "auto" and self.config.arrivals.process == "mmpp"

    def model_config(self) -> SystemConfig:
        """The config the model describes: its MMPP (when :attr:`phased`) or Poisson arrivals at
        ``rate_per_s`` (default the config's mean rate), no per-episode rate range. Agents, tuned
        parameters and the SMDP are looked up for it, so they act at the rate being verified."""
        rate = self.config.arrivals.mean_rate_per_s if self.rate_per_s is None else self.rate_per_s
        arrivals = self.config.arrivals
        if self.phased:
            if rate == arrivals.mean_rate_per_s and arrivals.rate_range_per_s is None:
                return self.config
            return self.config.at_rate(rate)
        if (
            arrivals.process == "poisson"
            and arrivals.rate_per_s == rate
            and arrivals.rate_range_per_s is None
        ):
            return self.config
        return self.config.replace(
            arrivals={
                "process": "poisson",
                "rate_per_s": rate,
                "rates_per_s": None,
                "switch_rates_per_s": None,
                "trace_path": None,
                "rate_range_per_s": None,
            }
        )

    def tick_model(self) -> TickModel:
        return TickModel(self.model_config(), None, self.tick_ms, self.queue_cap, mmpp=self.phased)


@dataclass(frozen=True)
class PolicyEntry:
    """A policy to check: short key, the policy, where its parameters come from."""

    key: str
    policy: DiscretePolicy
    source: str


@dataclass
class ContinuousResult:
    """Figures of a policy in the event-driven simulator (:func:`simulate_continuous`)."""

    throughput_per_s: float
    utilisation: float
    mean_queue: float
    mean_batch: float
    latency_ms: float
    cost_per_request: float
    horizon_s: float


@dataclass
class PolicyRow:
    """Everything computed for one policy."""

    key: str
    name: str
    source: str
    same_as: str | None = None
    figures: PolicyFigures | None = None
    ticksim: TickSimResult | None = None
    continuous: ContinuousResult | None = None
    error: str | None = None

    def deviation(self, other: Any) -> float:
        """Largest relative difference between Storm and ``other`` over CROSS_CHECK_FIELDS."""
        if self.figures is None or other is None:
            return math.nan
        return max(
            abs(getattr(other, f) - getattr(self.figures, f)) / abs(getattr(self.figures, f))
            for f in CROSS_CHECK_FIELDS
            if getattr(self.figures, f)
        )


@dataclass
class SmdpComparison:
    """Storm's discrete optimum against the continuous-time SMDP optimum of agents.optimal.

    :ivar cost_whole: SMDP optimum cost per request with whole-queue dispatches (the MDP's
        actions); ``cost_any``: with any batch size.
    :ivar agreement: fraction of the optimal scheduler's decisions (decision states weighted by
        how often the tick simulator visits them) where the SMDP policy decides the same.
    :ivar q_max: the SMDP's 99.99% queue quantile (range of the policy descriptions).
    :ivar storm_policy: Storm's decisions by queue length, each at its most visited age.
    """

    cost_whole: float
    cost_any: float
    q_max: int
    agreement: float
    storm_policy: str
    smdp_policy: str


@dataclass
class BandRow:
    """The band scheduler's rows with its estimate within one band (:mod:`formal.band`).

    :ivar rows: per phase, a summary of the rows the band allows.
    :ivar same_as: key of the (c) policy whose table equals these rows in every state (the
        figures are then that policy's).
    """

    factor: float
    scheduler: str
    rows: list[str]
    figures: ChoiceFigures | None = None
    same_as: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return EstimateBand(self.factor).label


@dataclass
class VerificationReport:
    """Results of :func:`run_verification`, timings in seconds."""

    settings: Settings
    model: TickModel
    safety: SafetyResult | None = None
    optimum: OptimumResult | None = None
    smdp: SmdpComparison | None = None
    rows: list[PolicyRow] = field(default_factory=list)
    bands: list[BandRow] = field(default_factory=list)
    portfolio: list[BandRow] = field(default_factory=list)
    portfolio_experts: list[BandRow] = field(default_factory=list)
    real_agents: list[RealAgentResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    cpu_s: float = 0.0


# ---------------------------------------------------------------------------------- policies
def _best_model(config: SystemConfig) -> int:
    qualities = config.qualities
    return qualities.index(max(qualities))


def baseline_policies(config: SystemConfig) -> tuple[list[PolicyEntry], list[str]]:
    """The pure-function baselines: greedy and static(8) on the best model, and timeout with the
    parameters tuned for the scenario (``agents/tuned``) when available, else Triton-like
    defaults (B = 8, T = 10 ms). Returns the entries and notes."""
    best = _best_model(config)
    notes: list[str] = []
    entries = [
        PolicyEntry("greedy", GreedyPolicy(best), "defaults (best model)"),
        PolicyEntry(
            "static", StaticPolicy(min(8, config.max_batch_size), best), "defaults (B=8, best model)"
        ),
    ]
    timeout = TimeoutPolicy(min(8, config.max_batch_size), min(10.0, config.max_wait_ms), (best,))
    source = "defaults (B=8, T=10 ms, best model)"
    try:
        from agents.registry import make_agent

        agent = make_agent("timeout", config)
        params = agent.params()
        timeout = TimeoutPolicy(
            int(params["preferred_batch_size"]),
            float(params["max_queue_delay_ms"]),
            (config.model_index(params["model"]),),
            max_batch=int(params["max_batch_size"]),
        )
        source = getattr(agent, "params_source", "agents.registry")
    except (ImportError, ValueError) as exc:
        notes.append(f"timeout: tuned parameters not available ({exc}); Triton-like defaults used")
    entries.append(PolicyEntry("timeout", timeout.validate(config), source))
    return entries, notes


def smdp_policy(tm: TickModel, action_set: str = "whole") -> tuple[TablePolicy, Any]:
    """The SMDP optimum of :mod:`agents.optimal` as a table over (q, a): its decision at q for
    every age (queue lengths beyond its cap use the cap's decision)."""
    from agents.smdp import solve_optimal

    solution = solve_optimal(tm.config, tm.rate_per_s, action_set=action_set)
    table: dict[tuple[int, int], Decision] = {}
    for q in range(1, tm.queue_cap + 1):
        decision = solution.decision(q)
        for a in range(tm.max_age_ticks + 1):
            table[(q, a)] = decision
    forced = int(solution.shield_model[1]) if len(solution.shield_model) > 1 else 0
    return TablePolicy(f"SMDP optimum ({action_set})", table, max(forced, 0)), solution


def describe_by_queue(
    policy: DiscretePolicy, tm: TickModel, q_max: int, ages: dict[int, int] | None = None
) -> str:
    """A policy's decisions for q = 1..q_max as runs, e.g. ``1-10 LLM-1; 11 LLM-2``, at age
    ``ages[q]`` (default 0)."""
    names = tm.config.model_names
    runs: list[list[Any]] = []
    for q in range(1, q_max + 1):
        decision = policy.decide(q, (ages or {}).get(q, 0), tm)
        label = "wait" if decision is None else names[decision[0]]
        if runs and runs[-1][2] == label:
            runs[-1][1] = q
        else:
            runs.append([q, q, label])
    return "; ".join(f"{lo}-{hi} {label}" if lo != hi else f"{lo} {label}" for lo, hi, label in runs)


def compare_with_smdp(
    tm: TickModel,
    storm: DiscretePolicy,
    smdp: DiscretePolicy,
    visits: dict[tuple[int, int], int],
    whole: Any,
    any_batch: Any,
) -> SmdpComparison:
    """Compare Storm's optimal scheduler with the SMDP policy on the decision states the optimal
    scheduler visits (``visits``, from the tick simulator), weighted by visits; Storm's choices
    in states it never visits are arbitrary and are left out."""
    total = sum(visits.values())
    same = sum(
        n
        for (q, a), n in visits.items()
        if _normalised(storm.decide(q, a, tm), q, tm) == _normalised(smdp.decide(q, a, tm), q, tm)
    )
    q_max = max(1, min(whole.queue_quantile(0.9999), tm.queue_cap))
    modal: dict[int, tuple[int, int]] = {}
    for (q, a), n in visits.items():
        if q not in modal or n > modal[q][1]:
            modal[q] = (a, n)
    return SmdpComparison(
        cost_whole=whole.cost_per_request,
        cost_any=any_batch.cost_per_request,
        q_max=q_max,
        agreement=same / total if total else math.nan,
        storm_policy=describe_by_queue(storm, tm, q_max, ages={q: a for q, (a, _) in modal.items()}),
        smdp_policy=describe_by_queue(smdp, tm, q_max),
    )


def _normalised(decision: Decision, q: int, tm: TickModel) -> tuple[int, int] | None:
    if decision is None or isinstance(decision, float):
        return None
    return (decision[0], min(q, decision[1], tm.max_batch))


# ---------------------------------------------------------------------------------- simulator
def as_sim_policy(policy: DiscretePolicy, tm: TickModel) -> Callable[[Simulator], Decision]:
    """Run a discrete policy in the event-driven simulator: at each epoch it sees the queue
    (capped at the model's queue cap) and the oldest age in whole ticks; when it waits, it sets a
    timer for the next tick of age, so it is asked again exactly when its view changes. A wait at
    ``a >= max_age_ticks`` becomes the model's shield dispatch."""
    tick_s = tm.tick_s
    w_max = tm.max_age_ticks

    def decide(sim: Simulator) -> Decision:
        q = min(sim.queue_len, tm.queue_cap)
        a = min(math.floor(sim.oldest_wait_s / tick_s + 1e-9), w_max)
        decision = policy.decide(q, a, tm)
        if decision is None:
            if a >= w_max:
                return (policy.forced_model, tm.max_batch)
            return (a + 1) * tick_s
        return decision

    return decide


def simulate_continuous(
    tm: TickModel, policy: DiscretePolicy, horizon_s: float, seed: int
) -> ContinuousResult:
    """Figures of ``policy`` (through :func:`as_sim_policy`) in the event-driven simulator with
    the model's arrival process (:meth:`~formal.discrete.TickModel.event_config`), one episode
    of ``horizon_s``. The mean queue is the time-average of the waiting requests (total waiting
    time / horizon)."""
    config = tm.event_config(horizon_s)
    sim = simulate(config, as_sim_policy(policy, tm), seed, record=True)
    metrics = compute_metrics(sim)
    table = request_table(sim)
    waited = float(np.sum(table.dispatch_s - table.arrival_s) + np.sum(sim.now_s - table.waiting_arrival_s))
    return ContinuousResult(
        throughput_per_s=metrics.throughput_per_s,
        utilisation=metrics.utilisation,
        mean_queue=waited / sim.now_s,
        mean_batch=metrics.mean_batch_size,
        latency_ms=metrics.latency_mean_ms,
        cost_per_request=metrics.cost_per_request,
        horizon_s=horizon_s,
    )


# ---------------------------------------------------------------------------------- tasks
def _shielded_task(tm: TickModel) -> tuple[float, float, OptimumResult]:
    built = build_model(mdp_program(tm), tm, choice_labels=True, state_valuations=True)
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, check_optimum(tm, built)


def _unshielded_task(tm: TickModel) -> tuple[float, float, BuildStats]:
    built = build_model(mdp_program(tm, shield=False), tm)
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, built.stats


def _policy_task(
    tm: TickModel, policy: DiscretePolicy, settings: Settings
) -> tuple[PolicyFigures, TickSimResult, ContinuousResult]:
    figures = check_policy(tm, policy, overflow_s=settings.overflow_s)
    ticks = simulate_ticks(tm, policy, settings.crosscheck_ticks, settings.seed)
    continuous = simulate_continuous(tm, policy, settings.sim_horizon_s, settings.seed)
    return figures, ticks, continuous


def _band_task(
    tm: TickModel, choices: Choices, raw: Choices, title: str, settings: Settings
) -> ChoiceFigures:
    return check_choices(
        tm,
        choices,
        title,
        raw_choices=raw,
        overflow_s=settings.overflow_s,
        cpu_budget_s=settings.cpu_budget_s,
    )


def _real_agent_task(
    tm: TickModel, spec: str, table: DiscretePolicy | None, settings: Settings, factors: tuple[float, ...]
) -> RealAgentResult:
    from agents.registry import make_agent

    return run_real_agent(
        tm,
        spec,
        make_agent(spec, tm.config),
        None if table is None else as_sim_policy(table, tm),
        seeds=range(settings.agent_seeds),
        horizon_s=settings.agent_horizon_s,
        band_factors=factors,
    )


def _one_worker_agent(
    spec: str | None, settings: Settings, tm: TickModel, notes: list[str], what: str
) -> Any:
    """The agent ``spec`` for ``tm``'s system, or None (with a note saying why ``what`` are not
    built) when there is no spec or band, the system has several workers, or it cannot be built."""
    if not spec or not settings.bands:
        return None
    if tm.n_workers != 1:
        notes.append(f"{spec}: {what} not built: they need 1 worker, the system has {tm.n_workers}")
        return None
    try:
        from agents.registry import AgentSpecError, make_agent

        return make_agent(spec, tm.config)
    except (ImportError, AgentSpecError, ValueError) as exc:
        notes.append(f"{spec}: {what} not built ({exc})")
        return None


def _band_rows(
    settings: Settings, tm: TickModel, notes: list[str]
) -> list[tuple[BandRow, Choices, Choices, TablePolicy | None]]:
    """For each band of ``settings.bands``: its row, its choice sets with and without the shield,
    and (exact estimate with Poisson arrivals: one row) the scheduler's table as a policy."""
    spec = settings.band_scheduler
    scheduler = _one_worker_agent(spec, settings, tm, notes, "band models")
    if scheduler is None:
        return []
    out = []
    for factor in settings.bands:
        band = EstimateBand(factor)
        try:
            choices, phase_rows = band_choices(tm, scheduler, band)
            raw, _ = band_choices(tm, scheduler, band, shield=False)
        except TypeError as exc:
            notes.append(f"{spec}: band models not built ({exc})")
            return []
        rows = [describe_rows(r) for r in phase_rows]
        table = None
        if tm.n_phases == 1 and all(len(c) == 1 for c in choices.values()):
            decisions = {(q, a): next(iter(c)) for (_, q, a), c in choices.items()}
            table = TablePolicy(f"{spec} rows at {tm.rate_per_s:g}/s", decisions, _modal_model(decisions))
        out.append((BandRow(factor, spec, rows), choices, raw, table))
    return out


def _portfolio_rows(
    settings: Settings, tm: TickModel, notes: list[str]
) -> tuple[list[tuple[BandRow, Choices, Choices]], list[tuple[BandRow, Choices, Choices]]]:
    """For each band of ``settings.bands``: the portfolio scheduler's row (its experts and rows)
    and its choice sets with and without the shield (:mod:`formal.portfolio`); and the same for
    each distinct expert alone with an exact estimate (a row named after the expert)."""
    spec = settings.portfolio_scheduler
    scheduler = _one_worker_agent(spec, settings, tm, notes, "portfolio models")
    if scheduler is None:
        return [], []
    experts = experts_of(scheduler)
    kept, same = distinct_experts(experts)
    described = ", ".join(e.label + (f" (= {same[e.label]})" if e.label in same else "") for e in experts)
    notes.append(f"{spec}: {len(experts)} experts: {described}")
    out = []
    for factor in settings.bands:
        band = EstimateBand(factor)
        try:
            choices, raw, counts = portfolio_choice_pair(tm, kept, band)
        except TypeError as exc:
            notes.append(f"{spec}: portfolio models not built ({exc})")
            return [], []
        rows = [f"{len(experts)} experts, {n} rows (+ backlog rows)" for n in counts]
        out.append((BandRow(factor, spec, rows), choices, raw))
    alone = []
    for expert in kept:
        choices, raw, counts = portfolio_choice_pair(tm, [expert], EstimateBand(1.0))
        rows = [
            f"{n} row{'s' if n > 1 else ''}" + (" (+ backlog rows)" if expert.backlog_llr else "")
            for n in counts
        ]
        alone.append((BandRow(1.0, expert.label, rows), choices, raw))
    return out, alone


def _fill_band_row(row: BandRow, future: Future[Outcome[Any]], say: Callable[[str], None]) -> None:
    """Wait for the check of ``row`` and put its figures, or its error, into ``row``."""
    say(f"checking {row.scheduler}, {row.label} ...")
    try:
        row.figures = future.result().unwrap()
    except Exception as exc:
        row.error = repr(exc)


def _modal_model(table: dict[tuple[int, int], Decision]) -> int:
    models = [d[0] for d in table.values() if d is not None]
    return max(set(models), key=models.count) if models else 0


def _distilled(settings: Settings, tm: TickModel, notes: list[str]) -> list[PolicyEntry]:
    """Tables distilled from the agents of ``settings.agents`` (skipped with a note when an
    agent cannot be built here)."""
    entries: list[PolicyEntry] = []
    if not settings.agents:
        return entries
    if tm.n_workers != 1:
        notes.append(f"agents not distilled: distillation needs 1 worker, the system has {tm.n_workers}")
        return entries
    try:
        from agents.registry import AgentSpecError, make_agent
    except ImportError as exc:
        notes.append(f"agents not distilled: agents.registry not importable ({exc})")
        return entries
    for spec in settings.agents:
        try:
            agent = make_agent(spec, tm.config)
        except (AgentSpecError, ImportError, ValueError) as exc:
            notes.append(f"{spec}: skipped ({exc})")
            continue
        start = time.perf_counter()
        table = distill(agent, tm, name=spec)
        source = getattr(agent, "params_source", "agents.registry")
        entries.append(
            PolicyEntry(
                spec,
                table,
                f"{source}; distilled over {len(table.table)} states in {time.perf_counter() - start:.1f} s",
            )
        )
    return entries


def _smdp(tm: TickModel, notes: list[str]) -> tuple[PolicyEntry | None, Any, Any]:
    try:
        policy, whole = smdp_policy(tm, "whole")
        _, any_batch = smdp_policy(tm, "any")
    except ImportError as exc:
        notes.append(f"SMDP optimum: agents.optimal not importable ({exc})")
        return None, None, None
    except (ValueError, ConfigError) as exc:
        notes.append(f"SMDP optimum: does not apply ({exc})")
        return None, None, None
    return PolicyEntry("smdp_optimum", policy, "agents.optimal, whole-queue dispatches"), whole, any_batch


def run_verification(settings: Settings, progress: Callable[[str], None] | None = None) -> VerificationReport:
    """Run every check of ``settings`` (see the module docstring).

    The two MDPs start first; the baselines' DTMCs follow; agents are distilled in this process
    meanwhile; Storm's optimal scheduler is checked as soon as it is known.
    """
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    cpu_start = _cpu_s()
    tm = settings.tick_model()
    check_costs_modelled(tm)
    report = VerificationReport(settings, tm)
    if tm.config is not settings.config:
        modelled = (
            f"its MMPP at a mean {tm.rate_per_s:g}/s"
            if tm.n_phases > 1
            else f"Poisson at {tm.rate_per_s:g}/s (the scenario has {settings.config.arrivals.process} "
            f"arrivals at a mean {settings.config.arrivals.mean_rate_per_s:g}/s"
            + (", a per-episode rate range" if settings.config.arrivals.rate_range_per_s else "")
            + ")"
        )
        report.notes.append(
            f"arrivals modelled as {modelled}; agents and tuned parameters are looked up for that system"
        )
    entries, notes = baseline_policies(tm.config)
    report.notes += notes
    rows: dict[str, PolicyRow] = {}
    pending: dict[str, Future[Outcome[Any]]] = {}
    band_pending: list[tuple[BandRow, Future[Outcome[Any]] | None]] = []
    agent_pending: list[tuple[str, Future[Outcome[Any]]]] = []
    execution = BackendSpec(settings.backend, max(1, settings.jobs), settings.address, start_method="fork")  # type: ignore[arg-type]
    with execution.create() as pool:
        seen: dict[tuple, str] = {}  # policy table -> key of the first entry with it
        same_as: dict[str, str] = {}

        def submit(entry: PolicyEntry) -> None:
            rows[entry.key] = PolicyRow(entry.key, entry.policy.name, entry.source)
            table = tuple(sorted(policy_table(entry.policy, tm).items()))
            if table in seen:  # the same decisions in every state: the same chain
                same_as[entry.key] = seen[table]
                rows[entry.key].same_as = seen[table]
                rows[entry.key].source += f"; the same decisions as {seen[table]} in every state"
                return
            seen[table] = entry.key
            pending[entry.key] = pool.submit(_policy_task, tm, entry.policy, settings)

        say("model checking the MDPs (timeout safety, optimal long-run cost) ...")
        shielded = pool.submit(_shielded_task, tm)
        unshielded = pool.submit(_unshielded_task, tm)
        for entry in entries:
            submit(entry)
        t0 = time.perf_counter()
        smdp_entry, smdp_whole, smdp_any = _smdp(tm, report.notes)
        report.timings["SMDP optimum (agents.optimal)"] = time.perf_counter() - t0
        if smdp_entry is not None:
            entries.append(smdp_entry)
            submit(smdp_entry)
        t0 = time.perf_counter()
        say("distilling agents into tables ...")
        distilled = _distilled(settings, tm, report.notes)
        for entry in distilled:
            entries.append(entry)
            submit(entry)
        report.timings["distillation of agents"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say("the band scheduler's rows with its estimate as an adversary ...")
        band_table = None
        for row, choices, raw, table in _band_rows(settings, tm, report.notes):
            key = seen.get(tuple(sorted(table.table.items()))) if table is not None else None
            if table is not None and row.factor == 1.0:
                band_table = table
            if key is not None:
                row.same_as = key
                band_pending.append((row, None))
            else:
                title = f"{row.scheduler}: its rows, {row.label}"
                band_pending.append((row, pool.submit(_band_task, tm, choices, raw, title, settings)))
        report.timings["band choice sets"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        portfolio_pending: list[tuple[BandRow, Future[Outcome[Any]]]] = []
        if settings.portfolio_scheduler:
            say(f"{settings.portfolio_scheduler}: any switching among its experts ...")
        expert_pending: list[tuple[BandRow, Future[Outcome[Any]]]] = []
        together, alone = _portfolio_rows(settings, tm, report.notes)
        for row, choices, raw in together:
            title = f"{row.scheduler}: any expert, {row.label}"
            portfolio_pending.append((row, pool.submit(_band_task, tm, choices, raw, title, settings)))
        for row, choices, raw in alone:
            title = f"expert {row.scheduler} alone, {row.label}"
            expert_pending.append((row, pool.submit(_band_task, tm, choices, raw, title, settings)))
        if portfolio_pending:
            report.timings["portfolio choice sets (and its tables)"] = time.perf_counter() - t0
        if settings.agent_seeds:
            factors = tuple(f for f in settings.bands if f > 1.0)
            if settings.band_scheduler and band_pending:
                job = pool.submit(
                    _real_agent_task, tm, settings.band_scheduler, band_table, settings, factors
                )
                agent_pending.append((settings.band_scheduler, job))
            for entry in distilled:
                agent_pending.append(
                    (entry.key, pool.submit(_real_agent_task, tm, entry.key, entry.policy, settings, ()))
                )
        try:
            p_shielded, t_shielded, optimum = shielded.result().unwrap()
        except Exception as exc:
            report.notes.append(f"shielded MDP failed: {exc!r}")
            optimum = None
            p_shielded, t_shielded = math.nan, math.nan
        report.optimum = optimum
        report.timings["MDP with shield: wait"] = time.perf_counter() - start
        if optimum is not None and optimum.policy is not None:
            entry = PolicyEntry("storm_optimum", optimum.policy, "Storm's optimal scheduler (Rmin LRA)")
            entries.append(entry)
            submit(entry)
        try:
            p_unshielded, t_unshielded, unshielded_stats = unshielded.result().unwrap()
            if optimum is not None:
                report.safety = SafetyResult(
                    p_shielded, p_unshielded, optimum.stats, unshielded_stats, t_shielded + t_unshielded
                )
        except Exception as exc:
            report.notes.append(f"unshielded MDP failed: {exc!r}")
        for key, future in pending.items():
            say(f"checking the DTMC of {key} ...")
            try:
                rows[key].figures, rows[key].ticksim, rows[key].continuous = future.result().unwrap()
            except Exception as exc:
                rows[key].error = repr(exc)
        for row, future in band_pending:
            if future is not None:
                _fill_band_row(row, future, say)
        for collected, pending in (
            (report.portfolio, portfolio_pending),
            (report.portfolio_experts, expert_pending),
        ):
            for row, future in pending:
                _fill_band_row(row, future, say)
                collected.append(row)
        for spec, future in agent_pending:
            say(f"simulating the real agent {spec} ...")
            try:
                report.real_agents.append(future.result().unwrap())
            except Exception as exc:
                report.notes.append(f"{spec}: real agent not simulated ({exc!r})")
    for key, original in same_as.items():
        rows[key].figures, rows[key].ticksim, rows[key].continuous = (
            rows[original].figures,
            rows[original].ticksim,
            rows[original].continuous,
        )
        rows[key].error = rows[original].error
    report.rows = [rows[e.key] for e in entries]
    for row, _ in band_pending:
        if row.same_as is not None:
            row.figures = ChoiceFigures.of_policy(rows[row.same_as].figures, tm)
        report.bands.append(row)
    _attach_model_costs(report)

    storm_row = rows.get("storm_optimum")
    if (
        storm_row is not None
        and storm_row.ticksim is not None
        and smdp_entry is not None
        and optimum is not None
        and tm.n_phases == 1
    ):
        report.smdp = compare_with_smdp(
            tm, optimum.policy, smdp_entry.policy, storm_row.ticksim.decision_visits, smdp_whole, smdp_any
        )
    report.total_s = time.perf_counter() - start
    report.cpu_s = _cpu_s() - cpu_start
    return report


def _attach_model_costs(report: VerificationReport) -> None:
    """Each real agent's model figure: its table's DTMC, or for the band scheduler the model with
    an exact estimate."""
    by_key = {r.key: r for r in report.rows}
    exact = next((b for b in report.bands if b.factor == 1.0 and b.figures is not None), None)
    for result in report.real_agents:
        row = by_key.get(result.agent)
        if row is not None and row.figures is not None:
            result.model, result.model_cost = "DTMC of its table", row.figures.cost_per_request
        elif result.agent == report.settings.band_scheduler and exact is not None:
            result.model = "its rows, exact estimate"
            result.model_cost = exact.figures.cost_per_request.low


def _cpu_s() -> float:
    """CPU time (s) of this process and its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
