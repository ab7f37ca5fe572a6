"""Outputs of a :class:`~formal.verification.VerificationReport`: the Markdown of
``docs/results/verification.md``, the same results as JSON (``verification.json``, read by the
report builder) and rich tables for the terminal. The number formats are defined here once."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from batchenv.fileio import json_safe
from formal.check import Interval
from formal.real_agents import RealAgentResult
from formal.verification import CROSS_CHECK_FIELDS, BandRow, PolicyRow, VerificationReport

__all__ = [
    "TICK_SIM_TOLERANCE",
    "band_table_rows",
    "fmt_pct",
    "fmt_prob",
    "fmt_resolved",
    "fmt_sig",
    "markdown",
    "policy_table_rows",
    "real_agent_rows",
    "report_data",
    "rich_tables",
]

TICK_SIM_TOLERANCE = 0.02
"""Largest relative difference between Storm's figures and the tick simulator's (the same chain,
simulated) that counts as agreement."""


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
                str(f.stats.states),
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


def _cross_rows(row: PolicyRow) -> list[list[str]]:
    out = []
    f = row.figures
    if f is None:
        return out
    for name in (*CROSS_CHECK_FIELDS, "mean_batch", "cost_per_request"):
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


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _worst_deviations(report: VerificationReport) -> tuple[float, float] | None:
    """Largest relative differences of Storm's figures over CROSS_CHECK_FIELDS and every checked
    policy: (tick simulator, event simulator); None when no policy was checked."""
    deviations = [(r.deviation(r.ticksim), r.deviation(r.continuous)) for r in report.rows if r.figures]
    if not deviations:
        return None
    return max(d[0] for d in deviations), max(d[1] for d in deviations)


def _summary(report: VerificationReport) -> list[tuple[str, str, str]]:
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
                f"({s.shielded.states} states); without it {fmt_prob(s.p_max_unshielded)} "
                f"({s.unshielded.states} states): the check is not vacuous. {_bound_text(tm)}",
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
    worst = _worst_deviations(report)
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
                f"{100 * worst_cont:.2f}%",
                "largest relative difference (continuous time, exact service times: not the same "
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


def markdown(report: VerificationReport, command: str, preamble: str = "") -> str:
    """The Markdown report for ``docs/results/verification.md``; ``preamble`` (e.g. that the run's
    settings are reduced) is printed under the first paragraph."""
    tm = report.model
    st = report.settings
    lines = [
        "# Verification results",
        "",
        f"Produced by `{command}` (scenario `{tm.config.name}`, {report.total_s:.1f} s wall time "
        f"with {st.jobs} worker processes, {report.cpu_s:.1f} s CPU time in all). Semantics of the "
        "models: [docs/formal.md](../formal.md).",
        "",
        *([preamble, ""] if preamble else []),
        f"Discrete-time model: {tm.describe()}; arrivals per tick Poisson "
        f"truncated with tail <= {tm.arrival_tail:g}; service ticks rounded at random to keep "
        "the mean exact. Latencies include the half-tick arrival offset.",
        "",
        "## Summary",
        "",
    ]
    lines += _md_table(["check", "result", "detail"], [list(x) for x in _summary(report)])
    lines += ["", "## (a) Timeout safety over every scheduler (MDP)", ""]
    if report.safety is not None:
        s = report.safety

        def row(label: str, size, p_max: float) -> list[str]:
            return [
                label,
                str(size.states),
                str(size.transitions),
                str(size.choices),
                f"{size.build_s:.1f}",
                fmt_prob(p_max),
            ]

        lines += _md_table(
            ["model", "states", "transitions", "choices", "build s", 'Pmax=? [F "violation"]'],
            [
                row("MDP with the timeout shield", s.shielded, s.p_max_shielded),
                row("MDP without the shield", s.unshielded, s.p_max_unshielded),
            ],
        )
    lines += ["", "## (b) Optimal long-run cost and its scheduler", ""]
    if report.optimum is not None:
        o = report.optimum
        lines.append(
            f'`R{{"cost"}}min=? [LRA]` = {o.cost_per_tick:.6g} per tick, i.e. **{o.cost_per_request:.6g} '
            f"per request** (cost = best quality - score); model checking {o.check_s:.1f} s."
        )
        if report.smdp is not None:
            sm = report.smdp
            lines += [
                "",
                f"- SMDP optimum of `agents/optimal.py` (continuous time, whole-queue batches as in "
                f"the MDP): {sm.cost_whole:.6g} per request; with any batch size: {sm.cost_any:.6g}.",
                f"- Relative gap of the discrete optimum: "
                f"{fmt_pct((o.cost_per_request - sm.cost_whole) / sm.cost_whole)} (the price of deciding "
                f"only every {tm.tick_ms:g} ms tick).",
            ]
            smdp_row = next((r for r in report.rows if r.key == "smdp_optimum" and r.figures), None)
            if smdp_row is not None:
                cost = smdp_row.figures.cost_per_request
                lines.append(
                    f"- The SMDP policy run in the discrete model (its DTMC): {cost:.6g} per request, "
                    f"{fmt_pct((cost - o.cost_per_request) / o.cost_per_request)} from Storm's optimum."
                )
            lines += [
                f"- Storm's scheduler and the SMDP policy take the same decision in "
                f"{100 * sm.agreement:.1f}% of the decisions the optimal scheduler makes (decision "
                "states weighted by how often the tick simulator visits them; Storm's choice in "
                "states it never visits is arbitrary). By queue length, up to the SMDP's 99.99% "
                f"queue quantile q = {sm.q_max}:",
                f"  - Storm's scheduler (at the most visited age for each q): {sm.storm_policy}",
                f"  - SMDP policy: {sm.smdp_policy}",
            ]
    lines += ["", "## (c) Policies as DTMCs (Storm)", ""]
    lines += _md_table(POLICY_HEADER, policy_table_rows(report))
    resolution = tm.truncation_resolution(max(1, round(st.overflow_s / tm.tick_s)))
    solvers = sorted({r.figures.solver for r in report.rows if r.figures is not None})
    lines += [
        "",
        f"P(overflow): probability that the queue reaches the model's capacity ({tm.queue_cap}) "
        f'within {st.overflow_s:g} s from an empty system (`P=? [F<=n "full"]`); values below '
        f"{resolution:.0e}, the largest error the truncation of the per-tick arrival counts (tail "
        f"{tm.arrival_tail:g} per tick) can cause over {st.overflow_s:g} s, are not resolved by the model "
        'and shown as a bound. P(violation): `P=? [F "violation"]`, first on the policy\'s raw table '
        "(no shield: a wait at the limit is a violation), then with the shield (0 by construction). "
        "Long-run averages: "
        + "; ".join(solvers)
        + " (formal/lra.py: a direct sparse solve of the chain Storm "
        "built, with a certified interval; the +- is its largest half-width per tick).",
        "",
        "| policy | definition | parameters from |",
        "|---|---|---|",
    ]
    lines += [f"| {r.key} | `{r.name}` | {r.source} |" for r in report.rows]
    if report.bands:
        lines += ["", f"## (d) {report.bands[0].scheduler} under estimation error (MDP)", ""]
        lines += _band_intro(report)
        lines += [""]
        lines += _md_table(BAND_HEADER, band_table_rows(report))
    if report.portfolio:
        lines += ["", f"## (g) {report.portfolio[0].scheduler}: any switching among its experts (MDP)", ""]
        lines += _portfolio_intro(report)
        lines += [""]
        lines += _md_table(BAND_HEADER, band_table_rows(report, report.portfolio))
        compared = portfolio_comparison_rows(report)
        if compared:
            lines += ["", f"Worst and best cases against `{report.bands[0].scheduler}`'s, band by band:", ""]
            lines += _md_table(comparison_header(report), compared)
        if report.portfolio_experts:
            lines += [
                "",
                "Each expert alone with an exact estimate (the MDP of its own choices: its tilts, backlog "
                "raises and guard alternatives; a timeout's is its DTMC):",
                "",
            ]
            alone = band_table_rows(report, report.portfolio_experts)
            named = [[b.scheduler, *r[1:]] for b, r in zip(report.portfolio_experts, alone, strict=True)]
            lines += _md_table(["expert", *BAND_HEADER[1:]], named)
    lines += ["", "## Cross-check: the same policies simulated", ""]
    lines.append(
        f"Tick simulator: {st.crosscheck_ticks} ticks of the same chain (formal/ticksim.py, seed "
        f"{st.seed}); event simulator: batchenv's continuous-time simulator, {st.sim_horizon_s:g} s, "
        "the policy re-asked whenever its view (queue, age in ticks) changes."
    )
    lines.append("")
    cross = [r for row in report.rows for r in _cross_rows(row)]
    lines += _md_table(CROSS_HEADER, cross)
    if report.real_agents:
        lines += ["", "## (e) The real agents in the event simulator", ""]
        first = report.real_agents[0]
        lines.append(
            "Each agent as it runs (its rate estimator, its network and EWMA observations), and the table "
            "the model checks, in batchenv's event simulator on the model's arrival process and queue "
            f"capacity, seeds 0-{len(first.seeds) - 1}, {first.horizon_s:g} s each (the same arrivals for "
            "both): costs per request with 95% intervals over the seeds; `real - table` is the "
            "seed-paired gap of the mean costs (what the table hides), `real - model` the difference "
            "to the model's figure (it also contains the price of the tick, about -0.4% for a table in "
            "continuous time at 2 ms). "
            "`estimate in band`: the share of the agent's decisions taken with its rate estimate within the "
            "band of the true rate."
        )
        lines.append("")
        lines += _md_table(REAL_HEADER, real_agent_rows(report))
    if report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in report.notes]
    lines += ["", "## Timings (s)", ""]
    steps = [[k, f"{v:.1f}"] for k, v in report.timings.items() if not k.endswith(": wait")]
    if report.optimum is not None:
        o = report.optimum
        steps.append([f"MDP with shield: build ({o.stats.states} states)", f"{o.stats.build_s:.1f}"])
        steps.append(["MDP with shield: Rmin[LRA] and its scheduler", f"{o.check_s:.1f}"])
    if report.safety is not None:
        steps.append(
            [
                f"MDP without shield: build ({report.safety.unshielded.states} states)",
                f"{report.safety.unshielded.build_s:.1f}",
            ]
        )
        steps.append(["both MDPs: Pmax[F violation]", f"{report.safety.check_s:.1f}"])
    for row in report.rows:
        if row.figures is not None and row.figures.stats is not None and not row.same_as:
            steps.append(
                [
                    f"DTMC {row.key}: build + check ({row.figures.stats.states} states)",
                    f"{row.figures.stats.build_s + row.figures.check_s:.1f}",
                ]
            )
    for band in report.bands + report.portfolio + report.portfolio_experts:
        if band.figures is not None and not band.same_as:
            kind = "DTMC" if band.figures.deterministic else "MDP"
            steps.append(
                [
                    f"{kind} {band.scheduler}, {band.label}: build + check "
                    f"({band.figures.stats.states} states)",
                    f"{band.figures.stats.build_s + band.figures.check_s:.1f}",
                ]
            )
    steps += [
        ["total (wall)", f"{report.total_s:.1f}"],
        ["total (CPU, all processes)", f"{report.cpu_s:.1f}"],
    ]
    lines += _md_table(["step", "seconds"], steps)
    return "\n".join(lines) + "\n"


def _band_intro(report: VerificationReport) -> list[str]:
    tm = report.model
    spec = report.bands[0].scheduler
    phases = (
        "the true rate"
        if tm.n_phases == 1
        else "the current phase's rate (the phase is hidden from the scheduler; the estimate's only "
        "constraint is the band)"
    )
    return [
        f"`{spec}`'s own decision table (its rows, with their timed waits, fallbacks and SLO guard, read "
        "through `decision_rows`, batchenv/decision_rows.py) in the discrete model, its arrival-rate "
        f"estimate an adversary: at every decision it may be any rate within [r / f, r x f] of {phases}. "
        "The MDP's nondeterminism is the set of decisions of every row such an estimate selects "
        "(formal/band.py); its minimum and maximum over every scheduler are the algorithm's "
        "guaranteed best and worst cases under any estimation error within the band (Rmin/Rmax of "
        "the cost and of the drops, bounds on the mean latency from Rmin/Rmax of the sojourn, "
        f"Pmin/Pmax of the overflow within {report.settings.overflow_s:g} s). The raw rows (no shield) "
        "are checked first: Pmax of a violation. "
        "With an exact estimate (f = 1) and one phase it is a DTMC; `= key` marks a table identical in "
        "every state to that (c) policy, whose figures it shares.",
    ]


def _portfolio_intro(report: VerificationReport) -> list[str]:
    spec = report.portfolio[0].scheduler
    return [
        f"`{spec}` follows one expert of its portfolio at a time and switches at coupling epochs by a "
        "rule that reads the experts' shadow costs and latency tails, none of which the model tracks. "
        "Here the rule is an adversary (formal/portfolio.py): at every decision the MDP may follow any "
        "expert, a table expert with any estimate within the band of the true rate, any of its tilted "
        "tables (the burst meter may read anything), any rate its backlog test may raise the estimate "
        "to in that state, and any dispatch of its SLO guard; a timeout expert with its exact (B, T). "
        "Every switching pattern of the portfolio is a scheduler of this MDP, so its maximum is a "
        "sound worst case of the robust scheduler for any switching and any estimate within the band "
        "(its minimum is a best case of the MDP, which the portfolio need not reach). The raw choices "
        "(no shield) are checked first: Pmax of a violation.",
    ]


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


def _fields(obj: Any, drop: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A dataclass's fields as a mapping (nested dataclasses too), without ``drop``; None stays None."""
    if obj is None:
        return None
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in drop}


def _plain(value: Any) -> Any:
    return _fields(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def report_data(report: VerificationReport, command: str) -> dict[str, Any]:
    """The results of ``report`` as strict-JSON data (``verification.json``): the same numbers as
    :func:`markdown`, unrounded; times in s, latencies in ms, rates per s, costs per request.

    Keys: ``command``, ``scenario``, ``wall_s``, ``cpu_s``, ``jobs``, ``model`` (the discrete-time
    model), ``settings``, ``safety`` (a) and ``safety_bound_ms``, ``optimum`` and ``smdp`` (b),
    ``policies`` (c: per policy Storm's figures, the tick and event simulators' and their largest
    relative differences), ``bands`` (d: the band scheduler's bounds per band), ``real_agents``
    (e), ``portfolio`` (g: the portfolio scheduler's bounds per band, empty unless checked) and
    ``portfolio_experts`` (each of its experts alone, exact estimate),
    ``cross_check``, ``notes``, ``timings_s``."""
    tm, st = report.model, report.settings
    o, sm = report.optimum, report.smdp
    worst = _worst_deviations(report)
    smdp = _fields(sm)
    if smdp is not None and o is not None:
        smdp["relative_gap_of_discrete_optimum"] = (o.cost_per_request - sm.cost_whole) / sm.cost_whole
    data = {
        "command": command,
        "scenario": tm.config.name,
        "wall_s": report.total_s,
        "cpu_s": report.cpu_s,
        "jobs": st.jobs,
        "model": {
            "tick_ms": tm.tick_ms,
            "rate_per_s": tm.rate_per_s,
            "mean_arrivals_per_tick": tm.mean_arrivals,
            "max_arrivals_per_tick": tm.max_arrivals,
            "arrival_tail": tm.arrival_tail,
            "queue_cap": tm.queue_cap,
            "max_wait_ticks": tm.max_age_ticks,
            "n_workers": tm.n_workers,
            "description": tm.describe(),
        },
        "settings": {
            "overflow_s": st.overflow_s,
            "crosscheck_ticks": st.crosscheck_ticks,
            "sim_horizon_s": st.sim_horizon_s,
            "seed": st.seed,
            "agents": list(st.agents),
        },
        "safety": None if report.safety is None else {"holds": report.safety.holds, **_fields(report.safety)},
        "optimum": _fields(o, drop=("policy",)),
        "smdp": smdp,
        "policies": [
            {
                "key": row.key,
                "name": row.name,
                "source": row.source,
                "same_as": row.same_as,
                "error": row.error,
                "storm": _fields(row.figures, drop=("rates",)),
                "tick_simulator": _fields(row.ticksim, drop=("decision_visits",)),
                "event_simulator": _fields(row.continuous),
                "max_rel_diff_tick_simulator": row.deviation(row.ticksim),
                "max_rel_diff_event_simulator": row.deviation(row.continuous),
            }
            for row in report.rows
        ],
        "cross_check": {
            "fields": list(CROSS_CHECK_FIELDS),
            "tick_simulator_tolerance": TICK_SIM_TOLERANCE,
            "tick_simulator_max_rel_diff": worst[0] if worst else None,
            "event_simulator_max_rel_diff": worst[1] if worst else None,
        },
        "bands": [_band_data(b) for b in report.bands],
        "portfolio": [_band_data(b) for b in report.portfolio],
        "portfolio_experts": [_band_data(b) for b in report.portfolio_experts],
        "real_agents": [_real_agent_data(r) for r in report.real_agents],
        "safety_bound_ms": (tm.max_age_ticks + 1) * tm.tick_ms,
        "notes": list(report.notes),
        "timings_s": dict(report.timings),
    }
    return json_safe(data)


def _band_data(band: BandRow) -> dict[str, Any]:
    return {
        "factor": band.factor,
        "label": band.label,
        "scheduler": band.scheduler,
        "rows": list(band.rows),
        "same_as": band.same_as,
        "error": band.error,
        "figures": _fields(band.figures),
    }


def _real_agent_data(r: RealAgentResult) -> dict[str, Any]:
    gap, half = r.agent_vs_table
    return {
        **_fields(r),
        "agent_cost": list(r.agent_cost),
        "table_cost": list(r.table_cost) if r.table_costs else None,
        "agent_vs_table": {"gap": gap, "ci95": half},
        "agent_vs_model": r.agent_vs_model,
        "in_band": {f"{f:g}": v for f, v in r.in_band.items()},
    }


def rich_tables(report: VerificationReport) -> list[Any]:
    """Rich renderables for the terminal: summary, policies, cross-check."""
    from rich.table import Table

    summary = Table(title="Verification summary", show_lines=False)
    for col in ("check", "result", "detail"):
        summary.add_column(col, overflow="fold")
    for check, result, detail in _summary(report):
        summary.add_row(check, result, detail)
    policies = Table(title="Policies as DTMCs (Storm)")
    for col in POLICY_HEADER:
        policies.add_column(col, justify="left" if col == "policy" else "right")
    for row in policy_table_rows(report):
        policies.add_row(*row)
    cross = Table(title="Cross-check: Storm vs tick simulator vs event simulator")
    for col in CROSS_HEADER:
        cross.add_column(col, justify="left" if col in ("policy", "quantity") else "right")
    for row in report.rows:
        for r in _cross_rows(row):
            cross.add_row(*r)
    out = [summary, policies, cross]
    for title, header, rows in (
        ("The band scheduler under estimation error (min - max)", BAND_HEADER, band_table_rows(report)),
        (
            "The portfolio under any switching (min - max)",
            BAND_HEADER,
            band_table_rows(report, report.portfolio),
        ),
        ("Real agents in the event simulator", REAL_HEADER, real_agent_rows(report)),
    ):
        if rows:
            table = Table(title=title)
            for col in header:
                table.add_column(col, overflow="fold")
            for r in rows:
                table.add_row(*r)
            out.append(table)
    return out
