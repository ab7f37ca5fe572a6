"""The schedulers a verification run checks, built in its main process: the policies checked as
DTMCs (the baselines, the SMDP optimum of :mod:`agents.optimal`, the agents distilled into
tables), the comparison of Storm's optimal scheduler with the SMDP policy, and the choice sets of
the band scheduler's rows (:mod:`formal.band`) and of the portfolio scheduler's experts
(:mod:`formal.portfolio`).

Modules of ``agents/`` are imported lazily: when one is missing, the rows that need it are
reported as skipped with the reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from batchenv.config import ConfigError, SystemConfig
from batchenv.sim import Decision
from formal.band import EstimateBand, band_choices, describe_rows
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, GreedyPolicy, StaticPolicy, TablePolicy, TimeoutPolicy, distill
from formal.portfolio import distinct_experts, experts_of, portfolio_choice_pair
from formal.prism import Choices, needs_age_bounds
from formal.results import BandRow, SmdpComparison
from formal.settings import Settings

__all__ = [
    "PolicyEntry",
    "band_rows",
    "baseline_policies",
    "compare_with_smdp",
    "describe_by_queue",
    "distilled_entries",
    "portfolio_rows",
    "smdp_optimum_entry",
    "smdp_policy",
]


@dataclass(frozen=True)
class PolicyEntry:
    """A policy to check: short key, the policy, where its parameters come from."""

    key: str
    policy: DiscretePolicy
    source: str


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


def distilled_entries(settings: Settings, tm: TickModel, notes: list[str]) -> list[PolicyEntry]:
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


def smdp_optimum_entry(tm: TickModel, notes: list[str]) -> tuple[PolicyEntry | None, Any, Any]:
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


# ---------------------------------------------------------------------------------- band and portfolio rows
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


def band_rows(
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
        deterministic = all(len(c) == 1 for c in choices.values())
        if tm.n_phases == 1 and deterministic and not needs_age_bounds(tm, choices):
            decisions = {(q, a): next(iter(c)) for (_, q, a), c in choices.items()}
            table = TablePolicy(f"{spec} rows at {tm.rate_per_s:g}/s", decisions, _modal_model(decisions))
        out.append((BandRow(factor, spec, rows), choices, raw, table))
    return out


def portfolio_rows(
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


def _modal_model(table: dict[tuple[int, int], Decision]) -> int:
    models = [d[0] for d in table.values() if d is not None]
    return max(set(models), key=models.count) if models else 0
