"""The whole verification run behind ``verify.py``: Storm on the MDP and on one DTMC per policy,
the comparison with the SMDP optimum of :mod:`agents.optimal`, and the cross-checks against the
tick simulator (:mod:`formal.ticksim`) and the event-driven simulator (:mod:`batchenv.sim`).

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
from formal.check import (
    BuildStats,
    OptimumResult,
    PolicyFigures,
    SafetyResult,
    build,
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
from formal.prism import mdp_program
from formal.ticksim import TickSimResult, simulate_ticks

__all__ = [
    "CROSS_CHECK_FIELDS",
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

    def model_config(self) -> SystemConfig:
        """The config the model describes: Poisson arrivals at ``rate_per_s`` (default the
        config's mean rate), no per-episode rate range. Agents, tuned parameters and the SMDP
        are looked up for it, so they act at the rate being verified."""
        rate = self.config.arrivals.mean_rate_per_s if self.rate_per_s is None else self.rate_per_s
        arrivals = self.config.arrivals
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
        return TickModel(self.model_config(), None, self.tick_ms, self.queue_cap)


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
class VerificationReport:
    """Results of :func:`run_verification`, timings in seconds."""

    settings: Settings
    model: TickModel
    safety: SafetyResult | None = None
    optimum: OptimumResult | None = None
    smdp: SmdpComparison | None = None
    rows: list[PolicyRow] = field(default_factory=list)
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
    Poisson arrivals at the model's rate, one episode of ``horizon_s``. The mean queue is the
    time-average of the waiting requests (total waiting time / horizon)."""
    config = tm.config.replace(
        horizon_s=horizon_s,
        queue_capacity=tm.queue_cap,  # the model's capacity: the same drops
        arrivals={"process": "poisson", "rate_per_s": tm.rate_per_s, "rate_range_per_s": None},
    )
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
    built = build(mdp_program(tm), choice_labels=True, state_valuations=True)
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, check_optimum(tm, built)


def _unshielded_task(tm: TickModel) -> tuple[float, float, BuildStats]:
    built = build(mdp_program(tm, shield=False))
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, built.stats


def _policy_task(
    tm: TickModel, policy: DiscretePolicy, settings: Settings
) -> tuple[PolicyFigures, TickSimResult, ContinuousResult]:
    figures = check_policy(tm, policy, overflow_s=settings.overflow_s)
    ticks = simulate_ticks(tm, policy, settings.crosscheck_ticks, settings.seed)
    continuous = simulate_continuous(tm, policy, settings.sim_horizon_s, settings.seed)
    return figures, ticks, continuous


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
    report = VerificationReport(settings, tm)
    if tm.config is not settings.config:
        report.notes.append(
            f"arrivals modelled as Poisson at {tm.rate_per_s:g}/s (the scenario has "
            f"{settings.config.arrivals.process} arrivals at a mean "
            f"{settings.config.arrivals.mean_rate_per_s:g}/s"
            + (", a per-episode rate range" if settings.config.arrivals.rate_range_per_s else "")
            + "); agents and tuned parameters are looked up for that system"
        )
    entries, notes = baseline_policies(tm.config)
    report.notes += notes
    rows: dict[str, PolicyRow] = {}
    pending: dict[str, Future[Outcome[Any]]] = {}
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
        for entry in _distilled(settings, tm, report.notes):
            entries.append(entry)
            submit(entry)
        report.timings["distillation of agents"] = time.perf_counter() - t0
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
    for key, original in same_as.items():
        rows[key].figures, rows[key].ticksim, rows[key].continuous = (
            rows[original].figures,
            rows[original].ticksim,
            rows[original].continuous,
        )
        rows[key].error = rows[original].error
    report.rows = [rows[e.key] for e in entries]

    storm_row = rows.get("storm_optimum")
    if (
        storm_row is not None
        and storm_row.ticksim is not None
        and smdp_entry is not None
        and optimum is not None
    ):
        report.smdp = compare_with_smdp(
            tm, optimum.policy, smdp_entry.policy, storm_row.ticksim.decision_visits, smdp_whole, smdp_any
        )
    report.total_s = time.perf_counter() - start
    report.cpu_s = _cpu_s() - cpu_start
    return report


def _cpu_s() -> float:
    """CPU time (s) of this process and its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
