"""The Markdown of a :class:`~formal.verification.VerificationReport`
(``docs/results/verification.md``): :func:`markdown`, the rows of :mod:`formal.report_tables`
with the text that explains them."""

from __future__ import annotations

from formal.report_tables import (
    BAND_HEADER,
    CROSS_HEADER,
    POLICY_HEADER,
    REAL_HEADER,
    band_table_rows,
    comparison_header,
    cross_rows,
    fmt_pct,
    fmt_prob,
    policy_table_rows,
    portfolio_comparison_rows,
    real_agent_rows,
    summary_rows,
)
from formal.results import VerificationReport

__all__ = ["markdown"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


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
    lines += _md_table(["check", "result", "detail"], [list(x) for x in summary_rows(report)])
    lines += ["", "## (a) Timeout safety over every scheduler (MDP)", ""]
    lines += [
        "With the shield the MDP allows no wait at the limit, so its Pmax is 0 by construction: a "
        "sanity check of the encoding, beside the MDP without the shield (where a scheduler that "
        "keeps waiting violates it). The substantive checks are each policy's raw table (c), the raw "
        "choices of the band and portfolio models (d, g) and the timed automata with their mutants.",
        "",
    ]
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
    cross = [r for row in report.rows for r in cross_rows(row)]
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
        f"A state of age a ticks stands for every real age of the oldest request in [a, a + 1) ticks "
        f"(from W on, every age from W): its choices are the decisions at any of them (a timer that "
        f"fires inside the tick gives both the wait and the dispatch). Where the choices depend on the "
        f"age below the model's upper bound after a dispatch that left requests behind, the model also "
        f"keeps a lower bound l of the age ('age in [l, a]' in the table). "
        "With an exact estimate (f = 1), one phase and no timer inside a tick it is a DTMC; `= key` "
        "marks a table identical in every state to that (c) policy, whose figures it shares.",
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
