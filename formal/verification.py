"""The whole verification run behind ``verify.py``: Storm on the MDP and on one DTMC per policy,
the comparison with the SMDP optimum of :mod:`agents.optimal`, the proposed scheduler's own rows
with its rate estimate as an adversary (:mod:`formal.band`), the cross-checks against the tick
simulator (:mod:`formal.ticksim`) and the event-driven simulator (:mod:`batchenv.sim`), and the
real agents against their tables (:mod:`formal.real_agents`).

Model checking tasks run on a backend of :mod:`execution` (``jobs`` local processes by default,
or Ray); each returns plain dataclasses.
Modules of ``agents/`` are imported lazily: when one is missing, the rows that need it are
reported as skipped with the reason.

Its parts have their modules: :mod:`formal.settings` (what is checked), :mod:`formal.results`
(what was found), :mod:`formal.checked_schedulers` (the schedulers checked, built in this
process) and :mod:`formal.tasks` (what the worker processes run); this module runs them and
re-exports their public names.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from execution.backends import BackendSpec
from execution.outcome import Outcome
from formal.check import ChoiceFigures, SafetyResult
from formal.checked_schedulers import (
    PolicyEntry,
    band_rows,
    baseline_policies,
    compare_with_smdp,
    describe_by_queue,
    distilled_entries,
    portfolio_rows,
    smdp_optimum_entry,
    smdp_policy,
)
from formal.policies import policy_table
from formal.prism import check_costs_modelled
from formal.results import (
    CROSS_CHECK_FIELDS,
    BandRow,
    ContinuousResult,
    PolicyRow,
    SmdpComparison,
    VerificationReport,
)
from formal.settings import Settings
from formal.tasks import (
    as_sim_policy,
    band_task,
    policy_task,
    real_agent_task,
    shielded_task,
    simulate_continuous,
    unshielded_task,
)

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


def _fill_band_row(row: BandRow, future: Future[Outcome[Any]], say: Callable[[str], None]) -> None:
    """Wait for the check of ``row`` and put its figures, or its error, into ``row``."""
    say(f"checking {row.scheduler}, {row.label} ...")
    try:
        row.figures = future.result().unwrap()
    except Exception as exc:
        row.error = repr(exc)


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
            pending[entry.key] = pool.submit(policy_task, tm, entry.policy, settings)

        say("model checking the MDPs (timeout safety, optimal long-run cost) ...")
        shielded = pool.submit(shielded_task, tm)
        unshielded = pool.submit(unshielded_task, tm)
        for entry in entries:
            submit(entry)
        t0 = time.perf_counter()
        smdp_entry, smdp_whole, smdp_any = smdp_optimum_entry(tm, report.notes)
        report.timings["SMDP optimum (agents.optimal)"] = time.perf_counter() - t0
        if smdp_entry is not None:
            entries.append(smdp_entry)
            submit(smdp_entry)
        t0 = time.perf_counter()
        say("distilling agents into tables ...")
        distilled = distilled_entries(settings, tm, report.notes)
        for entry in distilled:
            entries.append(entry)
            submit(entry)
        report.timings["distillation of agents"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say("the band scheduler's rows with its estimate as an adversary ...")
        band_table = None
        for row, choices, raw, table in band_rows(settings, tm, report.notes):
            key = seen.get(tuple(sorted(table.table.items()))) if table is not None else None
            if table is not None and row.factor == 1.0:
                band_table = table
            if key is not None:
                row.same_as = key
                band_pending.append((row, None))
            else:
                title = f"{row.scheduler}: its rows, {row.label}"
                band_pending.append((row, pool.submit(band_task, tm, choices, raw, title, settings)))
        report.timings["band choice sets"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        portfolio_pending: list[tuple[BandRow, Future[Outcome[Any]]]] = []
        if settings.portfolio_scheduler:
            say(f"{settings.portfolio_scheduler}: any switching among its experts ...")
        expert_pending: list[tuple[BandRow, Future[Outcome[Any]]]] = []
        together, alone = portfolio_rows(settings, tm, report.notes)
        for row, choices, raw in together:
            title = f"{row.scheduler}: any expert, {row.label}"
            portfolio_pending.append((row, pool.submit(band_task, tm, choices, raw, title, settings)))
        for row, choices, raw in alone:
            title = f"expert {row.scheduler} alone, {row.label}"
            expert_pending.append((row, pool.submit(band_task, tm, choices, raw, title, settings)))
        if portfolio_pending:
            report.timings["portfolio choice sets (and its tables)"] = time.perf_counter() - t0
        if settings.agent_seeds:
            factors = tuple(f for f in settings.bands if f > 1.0)
            if settings.band_scheduler and band_pending:
                job = pool.submit(real_agent_task, tm, settings.band_scheduler, band_table, settings, factors)
                agent_pending.append((settings.band_scheduler, job))
            for entry in distilled:
                agent_pending.append(
                    (entry.key, pool.submit(real_agent_task, tm, entry.key, entry.policy, settings, ()))
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
