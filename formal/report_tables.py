"""The tables of a :class:`~formal.verification.VerificationReport` as rows of strings, for the
Markdown (:mod:`formal.report_markdown`) and the terminal (:func:`formal.report.rich_tables`): the
number formats (defined here once), the summary of the headline results, and the tables of the
policies, the bands, the real agents and the cross-check."""

from __future__ import annotations

import math
from typing import Any

from formal.check import Interval
from formal.results import CROSS_CHECK_FIELDS, BandRow, PolicyRow, VerificationReport

__all__ = [
    "BAND_HEADER",
    "CROSS_HEADER",
    "EVENT_SIM_TOLERANCE",
    "POLICY_HEADER",
    "REAL_HEADER",
    "TICK_SIM_TOLERANCE",
    "band_table_rows",
    "comparison_header",
    "cross_check_failures",
    "cross_rows",
    "fmt_interval",
    "fmt_pct",
    "fmt_prob",
    "fmt_resolved",
    "fmt_sig",
    "policy_table_rows",
    "portfolio_comparison_rows",
    "real_agent_rows",
    "summary_rows",
    "worst_deviations",
]


TICK_SIM_TOLERANCE = 0.02
"""Largest relative difference between Storm's figures and the tick simulator's (the same chain,
simulated) that counts as agreement, over :data:`formal.results.CROSS_CHECK_FIELDS`."""

EVENT_SIM_TOLERANCE = 0.03
"""The same for the event-driven simulator (continuous time, exact service times: not the same
discretisation). Set for the default 2 ms tick: the committed runs differ by at most 2.6% (the
mean batch of static(8) at 100/s; 1.64% over the other five figures); a longer tick differs more
(about 7% at 4 ms), and a run beyond it fails the cross-check."""


def cross_check_failures(report: VerificationReport) -> list[str]:
    """One line per simulator whose largest difference from Storm exceeds its tolerance (empty:
    the cross-checks pass)."""
    worst = worst_deviations(report)
    if worst is None:
        return []
    out = []
    for label, value, tolerance in (
        ("tick simulator", worst[0], TICK_SIM_TOLERANCE),
        ("event simulator", worst[1], EVENT_SIM_TOLERANCE),
    ):
        if value > tolerance:  # NaN: not measured
            out.append(
                f"cross-check failed: the {label} differs from Storm by {100 * value:.2f}% "
                f"(tolerance {100 * tolerance:g}%) over {', '.join(CROSS_CHECK_FIELDS)}"
            )
    return out


def fmt_sig(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits; None or NaN as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def fmt_prob(value: float | None) -> str:
    """A probability: exact zero shown as 0, tiny values in scientific notation."""
    if value is None or math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def fmt_resolved(value: float | None, resolution: float | None) -> str:
    """A model probability or rate: below the model's ``resolution`` (the error the truncation of
    the arrival counts can cause) it is shown as a bound, ``< 5e-04``, never as 1e-46."""
    if value is None or math.isnan(value):
        return "-"
    if resolution is not None and math.isfinite(resolution) and value < resolution:
        return f"< {resolution:.0e}"
    return fmt_prob(value)


def fmt_pct(value: float | None) -> str:
    """A fraction as a signed per cent with two decimals (``+0.42%``); None or NaN as ``-``."""
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:+.2f}%"


def fmt_interval(interval: Interval | None, fmt: Any = None) -> str:
    """``low - high`` (one value when they are equal), each formatted by ``fmt``."""
    if interval is None:
        return "-"
    fmt = fmt or (lambda v: fmt_sig(v, 5))
    low, high = fmt(interval.low), fmt(interval.high)
    return low if low == high else f"{low} - {high}"


POLICY_HEADER = [
    "policy",
    "states",
    "build+check s",
    "throughput /s",
    "utilisation",
    "mean queue",
    "mean batch",
    "latency ms",
    "cost/request",
    "P(overflow)",
    "P(violation), raw table",
    "with the shield",
]


def policy_table_rows(report: VerificationReport) -> list[list[str]]:
    """One row per policy of the DTMC figures (Storm)."""
    rows = []
    for row in report.rows:
        f = row.figures
        if f is None:
            rows.append([row.key, "-", "-", *(["-"] * 8), f"error: {row.error}"])
            continue
        stats = f.stats
        rows.append(
            [
                row.key,
                str(stats.states) if stats else "-",
                f"= {row.same_as}" if row.same_as else f"{(stats.build_s if stats else 0) + f.check_s:.1f}",
                fmt_sig(f.throughput_per_s, 5),
                fmt_sig(f.utilisation),
                fmt_sig(f.mean_queue),
                fmt_sig(f.mean_batch),
                fmt_sig(f.latency_ms),
                fmt_sig(f.cost_per_request, 5),
                fmt_resolved(f.p_overflow, f.overflow_resolution),
                fmt_prob(f.p_violation_raw),
                fmt_prob(f.p_violation),
            ]
        )
    return rows


BAND_HEADER = [
    "estimate",
    "rows",
    "states",
    "choices",
    "build+check s",
    "cost/request",
    "latency ms",
    "drop rate",
    "P(overflow)",
    "Pmax(violation), raw rows",
    "solver",
]


def band_table_rows(report: VerificationReport, bands: list[BandRow] | None = None) -> list[list[str]]:
    """One row per band of the band scheduler (min - max over every estimate in the band), or of
    ``bands`` (e.g. the portfolio's, :attr:`VerificationReport.portfolio`)."""
    out = []
    for band in report.bands if bands is None else bands:
        f = band.figures
        rows = "; ".join(band.rows)
        if f is None:
            out.append([band.label, rows, *(["-"] * 8), f"error: {band.error}"])
            continue
        resolved = lambda v, r=f.overflow_resolution: fmt_resolved(v, r)  # noqa: E731
        drops = lambda v, r=f.drop_resolution: fmt_resolved(v, r)  # noqa: E731
        solvers = sorted(set(f.solvers.values()))
        out.append(
            [
                band.label,
                rows,
                str(f.stats.states) + (" (age in [l, a])" if f.age_bounds else ""),
                str(f.stats.choices),
                f"= {band.same_as}" if band.same_as else f"{f.stats.build_s + f.check_s:.1f}",
                fmt_interval(f.cost_per_request),
                fmt_interval(f.latency_ms, lambda v: fmt_sig(v, 4)),
                fmt_interval(f.drop_rate, drops),
                fmt_interval(f.p_overflow, resolved),
                fmt_prob(f.p_violation_raw_max),
                "; ".join(solvers),
            ]
        )
    return out


REAL_HEADER = [
    "agent",
    "model",
    "model cost",
    "its table, event sim",
    "real agent, event sim",
    "real - table",
    "real - model",
    "estimate in band",
]


def real_agent_rows(report: VerificationReport) -> list[list[str]]:
    """One row per real agent: the model's figure, its table and itself in the event simulator."""
    out = []
    for r in report.real_agents:
        gap, half = r.agent_vs_table
        in_band = ", ".join(f"x{f:g}: {100 * v:.1f}%" for f, v in r.in_band.items()) or "-"
        out.append(
            [
                r.agent,
                r.model or "-",
                fmt_sig(r.model_cost, 5),
                _mean_ci(r.table_cost) if r.table_costs else "-",
                _mean_ci(r.agent_cost),
                f"{fmt_pct(gap)} +- {100 * half:.2f}%" if r.table_costs else "-",
                fmt_pct(r.agent_vs_model),
                in_band,
            ]
        )
    return out


def _mean_ci(value: tuple[float, float]) -> str:
    mean, half = value
    return fmt_sig(mean, 5) if math.isnan(half) else f"{fmt_sig(mean, 5)} +- {fmt_sig(half, 2)}"


CROSS_HEADER = ["policy", "quantity", "Storm (DTMC)", "tick simulator", "diff", "event simulator", "diff"]


def cross_rows(row: PolicyRow) -> list[list[str]]:
    out = []
    f = row.figures
    if f is None:
        return out
    for name in CROSS_CHECK_FIELDS:
        storm = getattr(f, name)
        tick = getattr(row.ticksim, name) if row.ticksim else math.nan
        cont = getattr(row.continuous, name) if row.continuous else math.nan
        out.append(
            [
                row.key,
                name,
                fmt_sig(storm, 5),
                fmt_sig(tick, 5),
                fmt_pct((tick - storm) / storm if storm else math.nan),
                fmt_sig(cont, 5),
                fmt_pct((cont - storm) / storm if storm else math.nan),
            ]
        )
    return out


def worst_deviations(report: VerificationReport) -> tuple[float, float] | None:
    """Largest relative differences of Storm's figures over CROSS_CHECK_FIELDS and every checked
    policy: (tick simulator, event simulator), NaN for a simulator that measured no policy; None
    when no policy was checked."""
    deviations = [(r.deviation(r.ticksim), r.deviation(r.continuous)) for r in report.rows if r.figures]
    if not deviations:
        return None

    def largest(values: list[float]) -> float:
        measured = [v for v in values if not math.isnan(v)]
        return max(measured) if measured else math.nan

    return largest([d[0] for d in deviations]), largest([d[1] for d in deviations])


def summary_rows(report: VerificationReport) -> list[tuple[str, str, str]]:
    """(check, result, detail) lines of the headline results."""
    tm = report.model
    out: list[tuple[str, str, str]] = []
    s = report.safety
    if s is not None:
        out.append(
            (
                "(a) timeout safety, every scheduler",
                "holds" if s.holds else "FAILS",
                f"Pmax[F violation] = {fmt_prob(s.p_max_shielded)} with the shield "
                f"({s.shielded.states} states), 0 by construction (the shield allows no wait at the "
                "limit): a sanity check of the encoding; without it "
                f"{fmt_prob(s.p_max_unshielded)} ({s.unshielded.states} states). The substantive "
                f"checks are the raw tables and raw choices below and the timed automata. {_bound_text(tm)}",
            )
        )
    raw = [r for r in report.rows if r.figures is not None and r.figures.p_violation_raw is not None]
    if raw:
        unsafe = [r.key for r in raw if r.figures.p_violation_raw > 0]
        out.append(
            (
                "(a) each policy's raw table, no shield",
                f"{len(raw) - len(unsafe)} of {len(raw)} safe",
                "P[F violation] = 0 on the raw tables of every policy"
                + (" but " + ", ".join(unsafe) if unsafe else "")
                + " (a raw table that waits at the limit reaches the violation; the shield, which "
                "every running scheduler has, dispatches there)",
            )
        )
    o = report.optimum
    if o is not None:
        detail = f"Rmin[LRA] = {o.cost_per_tick:.6g} per tick = {o.cost_per_request:.6g} per request"
        if report.smdp is not None:
            gap = (o.cost_per_request - report.smdp.cost_whole) / report.smdp.cost_whole
            detail += (
                f"; continuous-time SMDP optimum (agents.optimal, whole batches) "
                f"{report.smdp.cost_whole:.6g}: the {tm.tick_ms:g} ms tick costs {fmt_pct(gap)}; "
                f"the two optimal policies agree on {100 * report.smdp.agreement:.1f}% of decisions"
            )
        out.append(("(b) optimal long-run cost", f"{o.cost_per_request:.5g}", detail))
    for band in report.bands:
        f = band.figures
        if f is None:
            continue
        exact = next((b.figures for b in report.bands if b.factor == 1.0 and b.figures), None)
        worst = f.cost_per_request.high
        overflow = fmt_interval(f.p_overflow, lambda v, r=f.overflow_resolution: fmt_resolved(v, r))
        detail = (
            f"cost per request {fmt_interval(f.cost_per_request)}, mean latency "
            f"{fmt_interval(f.latency_ms, lambda v: fmt_sig(v, 4))} ms, P(overflow within "
            f"{f.overflow_s:g} s) {overflow}, Pmax[F violation] of the raw rows "
            f"{fmt_prob(f.p_violation_raw_max)}"
        )
        if exact is not None and band.factor != 1.0:
            base = exact.cost_per_request.high
            detail += f"; worst case {fmt_pct((worst - base) / base)} over the exact estimate"
        out.append((f"(d) {band.scheduler}, {band.label}", f"<= {fmt_sig(worst, 5)}", detail))
    for row in report.portfolio:
        f = row.figures
        if f is None:
            continue
        detail = (
            f"any expert at every decision: cost per request {fmt_interval(f.cost_per_request)}, mean "
            f"latency {fmt_interval(f.latency_ms, lambda v: fmt_sig(v, 4))} ms, Pmax[F violation] "
            f"without the shield {fmt_prob(f.p_violation_raw_max)}"
        )
        twin = next((b.figures for b in report.bands if b.factor == row.factor and b.figures), None)
        if twin is not None:
            detail += f"; {report.bands[0].scheduler}'s worst case {fmt_sig(twin.cost_per_request.high, 5)}"
        out.append((f"(g) {row.scheduler}, {row.label}", f"<= {fmt_sig(f.cost_per_request.high, 5)}", detail))
    for r in report.real_agents:
        gap, half = r.agent_vs_table
        out.append(
            (
                f"(e) real agent {r.agent}",
                fmt_pct(r.agent_vs_model),
                f"event simulator, {len(r.seeds)} seeds x {r.horizon_s:g} s: "
                f"{fmt_sig(r.agent_cost[0], 5)} per request against the model's {fmt_sig(r.model_cost, 5)} "
                f"({r.model or 'no model'})"
                + (f"; against its own table {fmt_pct(gap)} +- {100 * half:.2f}%" if r.table_costs else ""),
            )
        )
    worst = worst_deviations(report)
    if worst is not None:
        worst_tick, worst_cont = worst
        out.append(
            (
                "cross-check, tick simulator",
                "agrees" if worst_tick <= TICK_SIM_TOLERANCE else "DISAGREES",
                f"largest relative difference over {', '.join(CROSS_CHECK_FIELDS)}: "
                f"{100 * worst_tick:.2f}% (tolerance {100 * TICK_SIM_TOLERANCE:g}%)",
            )
        )
        out.append(
            (
                "cross-check, event simulator",
                "agrees" if worst_cont <= EVENT_SIM_TOLERANCE else "DISAGREES",
                f"largest relative difference over the same: {100 * worst_cont:.2f}% (tolerance "
                f"{100 * EVENT_SIM_TOLERANCE:g}%: continuous time, exact service times, not the same "
                "discretisation; docs/formal.md explains the tolerance)",
            )
        )
    out.append(("model", tm.describe(), ""))
    return out


def _bound_text(tm: Any) -> str:
    """The waiting bound the safety check proves, with the tick included."""
    bound = (tm.max_age_ticks + 1) * tm.tick_ms
    return (
        f"Bound proven: a request counted at a tick boundary is dispatched by age {tm.max_age_ticks} ticks "
        f"while a worker is idle, so it waits less than (W + 1) x tick = {bound:g} ms from its arrival "
        f"(max_wait_ms = {tm.config.max_wait_ms:g} ms plus up to one tick: ages count from the tick after "
        "the arrival)"
    )


def comparison_header(report: VerificationReport) -> list[str]:
    """Header of :func:`portfolio_comparison_rows`."""
    first, other = report.bands[0].scheduler, report.portfolio[0].scheduler
    return ["estimate"] + [
        f"{what}, {who}" for what in ("cost/request", "latency ms", "P(overflow)") for who in (first, other)
    ]


def portfolio_comparison_rows(report: VerificationReport) -> list[list[str]]:
    """Per band: the band scheduler's and the portfolio's intervals side by side
    (:func:`comparison_header`)."""
    if not report.bands or not report.portfolio:
        return []
    out = []
    for row in report.portfolio:
        twin = next((b for b in report.bands if b.factor == row.factor), None)
        if twin is None or twin.figures is None or row.figures is None:
            continue
        a, b = twin.figures, row.figures
        out.append(
            [
                row.label,
                fmt_interval(a.cost_per_request),
                fmt_interval(b.cost_per_request),
                fmt_interval(a.latency_ms, lambda v: fmt_sig(v, 4)),
                fmt_interval(b.latency_ms, lambda v: fmt_sig(v, 4)),
                fmt_interval(a.p_overflow, lambda v, r=a.overflow_resolution: fmt_resolved(v, r)),
                fmt_interval(b.p_overflow, lambda v, r=b.overflow_resolution: fmt_resolved(v, r)),
            ]
        )
    return out
