"""The timed-automata stage of ``verify.py``: which schedulers, the TChecker run, the report
(a Markdown section of docs/results/verification.md and docs/results/verification_ta.json)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchenv.decision_rows import rows_of
from formal.band import EstimateBand, describe_rows
from formal.discrete import TickModel
from formal.policies import TimeoutPolicy
from formal.portfolio import experts_of
from formal.ta.portfolio import portfolio_table
from formal.ta.properties import PROPERTIES, PropertyResult, TAChecks, TASettings, distinct
from formal.ta.schedulers import (
    ChoiceTable,
    DecisionTable,
    from_decision_rows,
    from_tick_policy,
    from_timeout,
)
from formal.tchecker import TChecker

__all__ = [
    "SECTION_TITLE",
    "StageSchedulers",
    "TAReport",
    "default_schedulers",
    "markdown_section",
    "run_ta",
    "to_json",
]

SECTION_TITLE = "## Timed automata (TChecker)"
"""Heading of the stage's section in docs/results/verification.md."""

PORTFOLIO_SKIPS = ("timeout safety",)
"""Properties the stage does not check for a portfolio's union table (:func:`default_schedulers`)."""

TRITON_DEFAULT = (8, 10.0)
"""Triton-like timeout(B, T ms) checked besides the tuned one."""


@dataclass
class StageSchedulers:
    """What :func:`default_schedulers` returns.

    :ivar schedulers: (name, table) of every scheduler the stage checks, in order.
    :ivar notes: what was not checked and why.
    :ivar skip: per scheduler name, the properties the stage does not check for it
        (:data:`PORTFOLIO_SKIPS` for the portfolio's union tables); ``skip`` of :func:`run_ta`.
    """

    schedulers: list[tuple[str, DecisionTable | ChoiceTable]]
    notes: list[str]
    skip: dict[str, tuple[str, ...]]


def default_schedulers(
    settings: TASettings,
    tick_ms: float = 2.0,
    *,
    band_scheduler: str | None = "proposed",
    bands: tuple[float, ...] = (1.0, 1.25, 2.0),
    portfolio_scheduler: str | None = None,
) -> StageSchedulers:
    """The schedulers of the stage: the scenario's tuned timeout (``agents/tuned``), the
    Triton-like timeout(8, 10 ms), both on the best model, the SMDP optimum of
    :mod:`agents.optimal` at the curve's mean rate (a table over q, with the shield), and for each
    band factor f of ``bands`` the rows of ``band_scheduler`` (the proposed scheduler) that its
    rate estimate may select anywhere in ``[rate / f, rate * f]``, chosen by an adversary at every
    decision (:func:`formal.ta.schedulers.from_decision_rows`), and for each band the portfolio
    ``portfolio_scheduler`` (``robust``) following any of its experts at every decision
    (:func:`formal.ta.portfolio.portfolio_table`; the properties not checked for them,
    :data:`PORTFOLIO_SKIPS`, are in the result's ``skip``)."""
    # formal.verification brings the Storm stack; this stage runs inside verify.py beside it.
    from formal.verification import baseline_policies, smdp_policy

    config, cap, unit = settings.config, settings.queue_cap, settings.unit_ms
    entries, notes = baseline_policies(config)
    tuned = next(e for e in entries if e.key == "timeout")
    best = tuned.policy.models[0]
    batch, timeout_ms = (
        min(TRITON_DEFAULT[0], config.max_batch_size),
        min(TRITON_DEFAULT[1], config.max_wait_ms),
    )
    triton = TimeoutPolicy(batch, timeout_ms, (best,)).validate(config)
    schedulers = [
        (
            f"timeout tuned {tuned.policy.name}",
            from_timeout(tuned.policy, config, queue_cap=cap, unit_ms=unit),
        ),
        (f"Triton-like {triton.name}", from_timeout(triton, config, queue_cap=cap, unit_ms=unit)),
    ]
    try:
        tm = TickModel(config, settings.rate, tick_ms, cap)
        smdp, _ = smdp_policy(tm)
        schedulers.append((f"SMDP optimum at {settings.rate:g}/s", from_tick_policy(smdp, tm, unit_ms=unit)))
    except ImportError as exc:
        notes.append(f"SMDP optimum not checked ({exc})")
    if band_scheduler:
        schedulers += _band_schedulers(settings, band_scheduler, bands, notes)
    skip: dict[str, tuple[str, ...]] = {}
    if portfolio_scheduler:
        tables = _portfolio_schedulers(settings, portfolio_scheduler, bands, notes)
        schedulers += tables
        skip.update({name: PORTFOLIO_SKIPS for name, _ in tables})
        if tables:
            notes.append(
                f"{portfolio_scheduler}: {', '.join(PORTFOLIO_SKIPS)} not checked here (its union table "
                "under unconstrained arrivals, queue up to the capacity, gave no verdict within TChecker's "
                "time-out); the Storm part proves it for the same scheduler (Pmax of a violation, with and "
                "without the shield)"
            )
    return StageSchedulers(schedulers, notes, skip)


def _shape(settings: TASettings) -> dict[str, int | float]:
    """The keyword arguments of a choice table for the stage's system: queue capacity, time unit
    (ms), the shield's age in time units, the shield's model and batch."""
    config = settings.config
    return {
        "queue_cap": settings.queue_cap,
        "unit_ms": settings.unit_ms,
        "max_wait": math.floor(config.max_wait_ms / settings.unit_ms + 1e-9),
        "forced_model": 0,
        "max_batch": config.max_batch_size,
    }


def _portfolio_schedulers(
    settings: TASettings, spec: str, bands: tuple[float, ...], notes: list[str]
) -> list[tuple[str, DecisionTable | ChoiceTable]]:
    """The choice tables of the portfolio ``spec`` under any switching, one per band."""
    from agents.registry import AgentSpecError, make_agent

    config = settings.config
    try:
        scheduler = make_agent(spec, config.at_rate(settings.rate))
        experts = experts_of(scheduler)
    except (ImportError, AgentSpecError, ValueError, TypeError) as exc:
        notes.append(f"{spec}: not checked ({exc})")
        return []
    out: list[tuple[str, DecisionTable | ChoiceTable]] = []
    for factor in bands:
        band = EstimateBand(factor)
        name = f"{spec}, any of its {len(experts)} experts, {band.label}"
        out.append((name, portfolio_table(name, experts, *band.around(settings.rate), **_shape(settings))))
    notes.append(f"{spec}: experts " + ", ".join(e.label for e in experts))
    return out


def _band_schedulers(
    settings: TASettings, spec: str, bands: tuple[float, ...], notes: list[str]
) -> list[tuple[str, DecisionTable | ChoiceTable]]:
    """The choice tables of ``spec``'s rows for each band (module docstring of
    :mod:`formal.band` for the band; :func:`from_decision_rows` for the table)."""
    from agents.registry import AgentSpecError, make_agent

    config = settings.config
    try:
        scheduler = make_agent(spec, config.at_rate(settings.rate))
    except (ImportError, AgentSpecError, ValueError) as exc:
        notes.append(f"{spec}: its rows not checked ({exc})")
        return []
    out: list[tuple[str, DecisionTable | ChoiceTable]] = []
    for factor in bands:
        band = EstimateBand(factor)
        try:
            rows = rows_of(scheduler, *band.around(settings.rate))
        except TypeError as exc:
            notes.append(f"{spec}: its rows not checked ({exc})")
            return out
        name = f"{spec}, {band.label} ({len(rows)} row{'s' if len(rows) > 1 else ''})"
        out.append((name, from_decision_rows(name, rows, **_shape(settings))))
        notes.append(f"{name}: {describe_rows(rows)}")
    return out


@dataclass
class TAReport:
    """Results of the stage."""

    settings: TASettings
    checker: str
    results: list[PropertyResult] = field(default_factory=list)
    same_as: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.holds for r in self.results)


def run_ta(
    settings: TASettings,
    tck: TChecker,
    schedulers: list[tuple[str, DecisionTable | ChoiceTable]],
    progress: Callable[[str], None] | None = None,
    skip: dict[str, tuple[str, ...]] | None = None,
) -> TAReport:
    """Check every property (but those ``skip`` names for a scheduler) of every scheduler that
    decides differently from the ones before."""
    start = time.perf_counter()
    kept, same = distinct(schedulers)
    if progress:
        progress(f"{tck.describe()}: {len(kept)} scheduler(s), {len(PROPERTIES)} properties")
    report = TAReport(settings, tck.describe(), same_as=same)
    report.tables = {name: table.describe(settings.unit_ms) for name, table in kept}
    report.results = TAChecks(tck, settings).run(kept, skip)
    report.seconds = time.perf_counter() - start
    return report


def _value(r: PropertyResult) -> str:
    if r.value is None:
        return "-"
    return f"{r.value:g} {r.unit}"


def markdown_section(report: TAReport, command: str) -> str:
    """The Markdown section of the timed-automata checks."""
    s = report.settings
    lines = [
        SECTION_TITLE,
        "",
        f"Generated by `{command}` with {report.checker}. Model: formal/ta/model.py "
        f"(docs/formal.md, 'The timed-automata model'); time unit {s.unit_ms:g} ms (service times "
        f"rounded up), queue capacity {s.queue_cap}, token period {s.period * s.unit_ms:g} ms "
        f"(mean rate {s.rate:g}/s). Every row is a TChecker verdict on reachability of an error "
        "location (covreach) or on an accepting cycle (nested DFS); suprema are exact (bound c "
        "unreachable and c - 1 reachable).",
        "",
        "| scheduler | property | arrivals | verdict | value | TChecker calls | max states | time (s) |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in report.results:
        verdict = "holds" if r.holds else ("**fails**" if r.decided else "**no verdict**")
        lines.append(
            f"| {r.scheduler} | {r.prop} | {r.arrivals} | {verdict}: {r.detail} | {_value(r)} | {r.checks} "
            f"| {r.states:,} | {r.seconds:.1f} |"
        )
    lines.append("")
    for name, twin in report.same_as.items():
        lines.append(f"- {name}: decides as {twin} in every state; not checked again.")
    for name, table in report.tables.items():
        lines.append(f"- {name}: {table}")
    for note in report.notes:
        lines.append(f"- note: {note}")
    lines += ["", f"Wall time of the stage: {report.seconds:.1f} s ({s.jobs} TChecker calls at a time).", ""]
    return "\n".join(lines)


def to_json(report: TAReport, command: str) -> dict[str, Any]:
    s = report.settings
    return {
        "command": command,
        "checker": report.checker,
        "system": s.config.name,
        "settings": {
            "rate_per_s": s.rate,
            "unit_ms": s.unit_ms,
            "queue_cap": s.queue_cap,
            "token_period_ms": s.period * s.unit_ms,
            "bursts": list(s.bursts),
            "liveness_burst": s.liveness_burst,
            "finite_arrivals": s.finite_arrivals,
            "max_wait_ms": s.config.max_wait_ms,
        },
        "schedulers": report.tables,
        "same_as": report.same_as,
        "results": [r.as_dict() for r in report.results],
        "all_hold": report.ok,
        "seconds": round(report.seconds, 2),
        "notes": report.notes,
    }
