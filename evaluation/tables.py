"""Human-readable tables of an evaluation: the Markdown report and the terminal tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agents.registry import is_untuned
from batchenv.config import LatencyTarget, SystemConfig
from batchenv.seeds import TRAINING_SEEDS
from evaluation.cells import Cell, HindsightBounds
from evaluation.outputs import params_text
from evaluation.plan import REFERENCE_RULE, Plan, ScenarioEntry

__all__ = [
    "CI_COLUMNS",
    "MARKDOWN_COLUMNS",
    "TABLE_COLUMNS",
    "TARGET_COLUMNS",
    "TERMINAL_COLUMNS",
    "bound_note",
    "empty_episode_warnings",
    "markdown_summary",
    "print_tables",
    "summary_lines",
    "to_markdown",
    "untuned_reference_warnings",
]

TABLE_COLUMNS = (  # (metric, header, format) of the tables; the Markdown ones add MARKDOWN_COLUMNS
    ("cost_per_request", "cost/req", "{:.4f}"),
    ("gap", "gap", "{:+.2%}"),
    ("gap_hindsight", "vs bound", "{:+.2%}"),
    ("score_per_request", "score/req", "{:.4f}"),
    ("latency_mean_ms", "mean ms", "{:.1f}"),
    ("latency_p99_ms", "p99 ms", "{:.1f}"),
    ("slo_attainment", "SLO", "{:.3f}"),
    ("throughput_per_s", "thr/s", "{:.1f}"),
    ("mean_quality", "quality", "{:.4f}"),
    ("mean_batch_size", "batch", "{:.1f}"),
    ("utilisation", "util", "{:.2f}"),
    ("drop_rate", "drops", "{:.3f}"),
    ("n_forced", "forced", "{:.1f}"),
)
MARKDOWN_COLUMNS = (
    *TABLE_COLUMNS[: [m for m, _, _ in TABLE_COLUMNS].index("n_forced")],
    ("queued_at_end", "queued at end", "{:.2%}"),
    ("n_forced", "forced", "{:.1f}"),
)
"""The Markdown tables' columns: :data:`TABLE_COLUMNS` (those the report builder quotes,
apps/report/names.py) and the fraction of the arrivals still queued at the horizon."""
CI_COLUMNS = ("cost_per_request", "gap", "gap_hindsight", "score_per_request", "target_attainment")
TERMINAL_COLUMNS = (
    "cost_per_request",
    "gap",
    "gap_hindsight",
    "latency_mean_ms",
    "latency_p99_ms",
    "slo_attainment",
    "mean_quality",
    "mean_batch_size",
    "utilisation",
    "drop_rate",
    "n_forced",
)
"""The columns of TABLE_COLUMNS printed in the terminal (the files hold them all)."""


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else spec.format(value)


def _cell_text(cell: Cell, metric: str, spec: str, with_ci: bool) -> str:
    mean, half = cell.summary.get(metric, (math.nan, math.nan))
    text = _fmt(mean, spec)
    if with_ci and metric in CI_COLUMNS and math.isfinite(half) and math.isfinite(mean):
        text += " ± " + _fmt(half, spec).lstrip("+")
    return text


def _mix_text(cell: Cell, config: SystemConfig) -> str:
    parts = []
    for name in config.model_names:
        share = cell.value(f"mix_{name}")
        if math.isfinite(share) and share >= 0.005:
            parts.append(f"{name.replace('LLM-', 'L')} {share:.0%}")
    return " ".join(parts)


def _table_rows(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    scenario: ScenarioEntry,
    columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS,
) -> list[list[str]]:
    rows = []
    for agent in plan.agents:
        cell = cells[(agent.label, scenario.name)]
        if not cell.per_seed:
            status = "n/a" if cell.not_applicable else "error"
            rows.append([agent.label, status] + [""] * len(columns))
            continue
        values = [_cell_text(cell, metric, spec, True) for metric, _, spec in columns]
        rows.append([agent.label, *values, _mix_text(cell, scenario.config)])
    return rows


def _table_title(scenario: ScenarioEntry, cells: dict[tuple[str, str], Cell], plan: Plan) -> str:
    ref = cells[(plan.agents[0].label, scenario.name)].reference
    gap = f"gap vs {ref}" if ref else "no gap reference"
    if _untuned_reference(plan, cells, scenario) is not None:
        gap += ", untuned"
    return f"{scenario.name} ({scenario.describe()}; {gap})"


def _untuned_reference(
    plan: Plan, cells: dict[tuple[str, str], Cell], scenario: ScenarioEntry
) -> Cell | None:
    """The cell of ``scenario``'s gap reference when that is a tunable baseline that ran with its
    default parameters, none being tuned for the scenario (and its latency target); else None."""
    ref = cells[(plan.agents[0].label, scenario.name)].reference
    if ref is None:
        return None
    cell = cells[(ref, scenario.name)]
    return cell if is_untuned(cell.params_source) else None


def _reference_label(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: ScenarioEntry) -> str | None:
    """The gap reference of ``scenario`` as the tables name it: its label, marked ``(untuned)``
    when it ran with default parameters (:func:`untuned_reference_warnings`); None: no gap."""
    ref = cells[(plan.agents[0].label, scenario.name)].reference
    return f"{ref} (untuned)" if _untuned_reference(plan, cells, scenario) is not None else ref


def _untuned_reference_note(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: ScenarioEntry) -> str:
    """Why ``scenario``'s gap reference is marked untuned, in a sentence (empty when it is not)."""
    cell = _untuned_reference(plan, cells, scenario)
    if cell is None:
        return ""
    return (
        f"The gap reference, {cell.agent}, is untuned: it ran with its {cell.params_source}; every "
        f"gap on {scenario.name} is to an untuned baseline"
    )


def untuned_reference_warnings(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[str]:
    """One warning per scenario whose gap reference is a baseline that ran untuned (a timeout
    without tuned parameters for the scenario or for ``--target``): every gap there is to that
    untuned baseline."""
    notes = [(s.name, _untuned_reference_note(plan, cells, s)) for s in plan.scenarios]
    return [f"{name}: {note[0].lower()}{note[1:]}" for name, note in notes if note]


def _scenario_columns(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    scenario: ScenarioEntry,
    columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS,
) -> list[tuple[str, str, str]]:
    """``columns`` without "vs bound" where no agent of ``scenario`` has a gap to a hindsight
    bound (``--no-hindsight``, a bound that does not apply or failed: the notes say why)."""
    bounded = _has_bound(plan, cells, scenario)
    return [c for c in columns if bounded or c[0] != "gap_hindsight"]


def _has_bound(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: ScenarioEntry) -> bool:
    """Whether an agent of ``scenario`` has a gap to the hindsight bound."""
    return any(math.isfinite(cells[(a.label, scenario.name)].value("gap_hindsight")) for a in plan.agents)


HEADERS = {metric: header for metric, header, _ in MARKDOWN_COLUMNS}


def _fewer_seeds_notes(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    scenario: ScenarioEntry,
    columns: Sequence[tuple[str, str, str]] = MARKDOWN_COLUMNS,
) -> list[str]:
    """Per agent of ``scenario`` whose means do not all use every seed: which of ``columns``
    (and the model mix) use how many seeds, and the episodes that had nothing to measure."""
    notes = []
    order = [metric for metric, _, _ in columns]
    for agent in plan.agents:
        cell = cells[(agent.label, scenario.name)]
        fewer = cell.fewer_seeds() if cell.per_seed else {}
        by_count: dict[int, list[str]] = {}
        for metric in sorted(fewer, key=lambda m: order.index(m) if m in order else len(order)):
            name = (
                HEADERS.get(metric)
                if metric in order
                else ("model mix" if metric.startswith("mix_") else None)
            )
            if name is not None and name not in by_count.get(fewer[metric], []):
                by_count.setdefault(fewer[metric], []).append(name)
        if not by_count:
            continue
        parts = "; ".join(
            f"{', '.join(names)} over {n} of {len(cell.per_seed)} seeds"
            for n, names in sorted(by_count.items())
        )
        empty = cell.empty_episodes()
        notes.append(
            f"{agent.label}: {parts}" + (f" ({empty}, where these are undefined)" if empty else "") + "."
        )
    return notes


def bound_note(plan: Plan, scenario: ScenarioEntry, hindsight: HindsightBounds | None) -> str:
    """What "vs bound" is on ``scenario``: exact, a lower bound (and how far the best schedule
    found is above it), over how many seeds, or why there is none."""
    if not plan.hindsight or hindsight is None:  # not asked for, or no bounds at all (a replay)
        return ""
    seeds = plan.seeds_of(scenario)
    lower = (hindsight.lower if hindsight else {}).get(scenario.name, {})
    reasons = [(hindsight.missing if hindsight else {}).get(scenario.name)]
    empty = [seed for seed, value in lower.items() if not math.isfinite(value)]
    if empty:
        reasons.append(f"seed{'s' * (len(empty) > 1)} {_seed_text(sorted(empty))}: no arrival")
    reason = "; ".join(r for r in reasons if r)
    bounded = len(lower) - len(empty)
    if not bounded:
        return f"No hindsight bound: {reason or 'not computed'}."
    workers = scenario.config.n_workers
    room = _found_gap(hindsight, scenario.name)
    if room > EXACT_BOUND_RTOL:
        what = f"a lower bound ({workers} workers)" if workers > 1 else "a lower bound"
        text = (
            f"vs bound: {what}; the best schedule found with the arrivals known is {room:+.1%} above "
            "it, so the least cost lies between the two"
        )
    elif math.isfinite(room):
        text = "vs bound: exact (the best schedule found with the arrivals known reaches it)"
    else:
        text = f"vs bound: a lower bound{f' ({workers} workers)' if workers > 1 else ''}"
    if bounded < len(seeds):
        text += f"; over the {bounded} of {len(seeds)} seeds that have a bound ({reason})"
    return text + "."


def _status_notes(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: ScenarioEntry) -> list[str]:
    """Why a cell of ``scenario`` is n/a or an error."""
    notes = []
    for agent in plan.agents:
        cell = cells[(agent.label, scenario.name)]
        if cell.per_seed:
            continue
        if cell.not_applicable:
            notes.append(f"{agent.label} n/a: {cell.not_applicable}")
        elif cell.error:
            notes.append(f"{agent.label} error: {cell.error}")
    return notes


def empty_episode_warnings(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[str]:
    """One warning per scenario with episodes without an arrival (the same for every agent:
    common random numbers) and one per cell with episodes that had arrivals but no batch."""
    warnings = []
    for scenario in plan.scenarios:
        ran = [c for a in plan.agents if (c := cells[(a.label, scenario.name)]).per_seed]
        if not ran:
            continue
        empty = [r["seed"] for r in ran[0].per_seed if r["n_arrived"] == 0]
        if empty:
            rest = (
                "no agent has a cost there"
                if len(empty) == len(ran[0].per_seed)
                else "the means use the other seeds, the report's notes say how many"
            )
            warnings.append(
                f"{scenario.name}: {len(empty)} of {len(ran[0].per_seed)} episodes had no arrival (seeds "
                f"{_seed_text(empty)}): cost, score and the other ratios are undefined (NaN) there; {rest}"
            )
        for cell in ran:
            idle = [r["seed"] for r in cell.per_seed if r["n_arrived"] > 0 and r["n_batches"] == 0]
            if idle:
                warnings.append(
                    f"{cell.agent} on {scenario.name}: {len(idle)} of {len(cell.per_seed)} episodes had "
                    f"arrivals but no batch (seeds {_seed_text(idle)}): no batch size, latency or "
                    "quality there; those means use the other seeds"
                )
    return warnings


def _legend(plan: Plan, bounded: bool = True) -> str:
    """The paragraph under the command that defines every number of the tables (``bounded``: a
    table shows the gap to the hindsight bound)."""
    seeds = _seed_text(plan.seeds)
    horizon = f"{plan.horizon_s:g} s" if plan.horizon_s else "each scenario's horizon_s"
    if plan.reference == "auto":
        reference = f"The reference (--reference auto) is {REFERENCE_RULE}."
    elif plan.reference == "none":
        reference = "No reference (--reference none): no gap."
    else:
        reference = f"The reference is {plan.reference} (--reference)."
    bound = (
        "vs bound = the same gap to the hindsight bound of each episode: the least cost of any "
        "schedule on the same arrivals known in advance (agents/hindsight/, docs/hindsight.md); "
        "with one worker exact where the best schedule found reaches it, else a lower bound, and "
        "with several workers a lower bound from a relaxation; the note under each table says "
        "which, over how many seeds, or why there is none. "
        if bounded
        else ""
    )
    optimum = (
        "optimal minimises the long-run average cost per request (the SMDP optimum), not each "
        "finite episode's cost: on a short episode another agent can come out slightly cheaper "
        "(a small negative gap to it). "
        if any(a.name == "optimal" for a in plan.agents)
        else ""
    )
    drawn = [s.name for s in plan.scenarios if s.config.reward.slo_probability > 0]
    objectives = (
        f"On {', '.join(drawn)} each episode draws its own SLO objective (reward.slo_probability): "
        "its cost/req, SLO and hindsight bound use the episode's drawn SLO bound and penalty. "
        if drawn
        else ""
    )
    tuned = (
        f"; tuned ones come from agents/tuned/<scenario>.yaml (grid search on seeds "
        f"{_seed_text(list(TRAINING_SEEDS))}, never used here)."
        if plan.tuned
        else "."
    )
    return (
        f"Seeds {seeds} ({len(plan.seeds)} per cell), episodes of {horizon} that start empty (no "
        "warm-up), common random numbers (every agent meets the same arrivals for the same scenario "
        "and seed). Each number is the mean over seeds; ± is the half-width of the 95% confidence "
        "interval (Student t); a seed where a ratio is undefined (no arrival, no batch, nothing "
        "served) is left out of its mean, and the notes under a table say where a mean uses fewer "
        "seeds. cost/req = best quality - score per request (lower is better); a request still "
        "queued at the horizon is charged best quality + w_latency_per_s x its wait so far (about "
        "1 with the default qualities, where a served request costs a few hundredths); queued at "
        "end = the fraction of the arrivals still queued at the horizon. gap = (mean cost - mean "
        "cost of the reference) / mean cost of the reference, its CI from the seed-paired cost "
        f"differences. {reference} {optimum}{bound}{objectives}Latencies in ms, of the served requests "
        "(requests queued at the horizon are left out); p99 ms = the mean over seeds of each "
        "episode's 99th percentile (the latency CDF figure pools the requests of all seeds "
        "instead); SLO = fraction of the served and dropped requests within slo_ms (queued ones "
        "not counted); thr/s = requests dispatched per second of horizon (a batch still running at "
        "the horizon counts in full), while util = busy time within the horizon / horizon; drops = "
        "fraction of the arrivals dropped; forced = dispatches forced by the max_wait_ms shield per "
        "episode. Each agent's parameters and where they come from are listed under Parameters" + tuned
    )


def to_markdown(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    figure_dir: str | None,
    hindsight: HindsightBounds | None = None,
) -> str:
    """The Markdown report: command, legend, summary, overview, latency targets, one table per
    scenario with its notes (seeds per mean, the hindsight bound, n/a reasons), parameters and
    (``figure_dir`` not None: their folder prefix) the figures."""
    lines = [
        f"# {plan.title}",
        "",
        "Produced by:",
        "",
        f"```\n{plan.command}\n```",
        "",
        _legend(plan, any(_has_bound(plan, cells, s) for s in plan.scenarios)),
        "",
    ]
    extended = _extended_seeds_text(plan)
    if extended:
        lines[-2] += " " + extended
    lines += ["## Summary", "", *markdown_summary(plan, cells, hindsight), ""]
    lines += _overview(plan, cells)
    lines += _targets(plan, cells)
    for scenario in plan.scenarios:
        columns = _scenario_columns(plan, cells, scenario, MARKDOWN_COLUMNS)
        headers = ["agent", *(h for _, h, _ in columns), "model mix"]
        lines += [f"## {_table_title(scenario, cells, plan)}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for row in _table_rows(plan, cells, scenario, columns):
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        notes = [
            _untuned_reference_note(plan, cells, scenario),
            bound_note(plan, scenario, hindsight),
            *_fewer_seeds_notes(plan, cells, scenario, columns),
            *_status_notes(plan, cells, scenario),
        ]
        notes = [n for n in notes if n]
        if notes:
            lines += [*(f"- {n}" for n in notes), ""]
    lines += ["## Parameters", "", "| agent | scenarios | parameters | source |", "|---|---|---|---|"]
    for agent in plan.agents:
        groups: dict[tuple[str, str], list[str]] = {}
        for scenario in plan.scenarios:
            cell = cells[(agent.label, scenario.name)]
            if cell.not_applicable:
                key = ("not applicable", "")
            else:
                key = (params_text(cell.params), cell.params_source)
            groups.setdefault(key, []).append(scenario.name)
        for (params, source), names in groups.items():
            where = "all" if len(names) == len(plan.scenarios) and len(names) > 1 else ", ".join(names)
            lines.append(f"| {agent.label} | {where} | {params} | {source} |")
    lines.append("")
    if figure_dir is not None:
        lines += [
            "## Figures",
            "",
            f"![Latency CDF per scenario, the requests of all seeds pooled]({figure_dir}latency_cdf.png)",
            "",
            f"![Cost per request and p99 latency vs mean arrival rate]({figure_dir}score_vs_rate.png)",
            "",
            f"![Mean quality vs p99 latency (mean of per-episode p99), Pareto front]"
            f"({figure_dir}pareto_quality_p99.png)",
            "",
        ]
    return "\n".join(lines)


def _overview(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[str]:
    """Markdown overview: cost per request (and gap) of every agent on every scenario."""
    labels = [a.label for a in plan.agents]
    lines = [
        "## Overview: cost per request (gap to the reference)",
        "",
        "| scenario | reference | " + " | ".join(labels) + " |",
        "|---|---|" + "|".join("---" for _ in labels) + "|",
    ]
    for scenario in plan.scenarios:
        row = [scenario.name, _reference_label(plan, cells, scenario) or "-"]
        for label in labels:
            cell = cells[(label, scenario.name)]
            if not cell.per_seed:
                row.append("n/a" if cell.not_applicable else "error")
                continue
            text = _fmt(cell.value("cost_per_request"), "{:.4f}")
            gap = cell.value("gap")
            if math.isfinite(gap) and label != cell.reference:
                text += f" ({gap:+.2%})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


TARGET_COLUMNS = (  # (metric, header, format) of the latency-target tables
    ("target_attainment", "attainment", "{:.4f}"),
    ("target_latency_ms", "latency at the percentile (ms)", "{:.1f}"),
    ("mean_quality", "quality", "{:.4f}"),
    ("throughput_per_s", "thr/s", "{:.1f}"),
    ("latency_mean_ms", "mean ms", "{:.1f}"),
    ("latency_p99_ms", "p99 ms", "{:.1f}"),
    ("cost_per_request", "cost/req", "{:.4f}"),
)


def _met_text(cell: Cell, target: LatencyTarget) -> str:
    met = cell.target_met(target)
    return "n/a" if met is None else ("yes" if met else "**no**")


def _targets(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[str]:
    """Markdown: per scenario with a latency target, whether each agent met it and the quality,
    throughput and latency under it."""
    targeted = [s for s in plan.scenarios if s.target is not None]
    if not targeted:
        return []
    lines = [
        "## Latency targets",
        "",
        "A target is met when the mean over seeds of the attainment (served within the bound / "
        "(served + dropped)) is at least its fraction: p99 <= 100 ms means at least 99% of the "
        "requests within 100 ms. The latency at the target's percentile is the mean over seeds "
        "of each episode's percentile of the served requests' latencies.",
        "",
    ]
    headers = ["agent", "met", *(h for _, h, _ in TARGET_COLUMNS)]
    for scenario in targeted:
        target = scenario.target
        assert target is not None
        lines += [f"### {scenario.name}: {target.describe(scenario.config.slo_ms)}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            if not cell.per_seed:
                status = "n/a" if cell.not_applicable else "error"
                lines.append("| " + " | ".join([agent.label, status, *[""] * len(TARGET_COLUMNS)]) + " |")
                continue
            values = [
                _cell_text(cell, metric, spec, metric == "target_attainment")
                for metric, _, spec in TARGET_COLUMNS
            ]
            lines.append("| " + " | ".join([agent.label, _met_text(cell, target), *values]) + " |")
        lines.append("")
    return lines


def _extended_seeds_text(plan: Plan) -> str:
    """The sentence that lists the scenarios ``--min-requests`` gave more seeds (empty: none)."""
    more = [(s.name, plan.seeds_of(s)) for s in plan.scenarios if len(plan.seeds_of(s)) > len(plan.seeds)]
    if not more:
        return ""
    listed = ", ".join(f"{name} {_seed_text(seeds)} ({len(seeds)} per cell)" for name, seeds in more)
    return (
        f"A scenario whose {len(plan.seeds)} episodes hold fewer than {plan.min_requests:,} requests on "
        f"average (mean rate x horizon) runs the seeds that follow too, up to that many (--min-requests): "
        f"{listed}."
    )


def _seed_text(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def print_tables(plan: Plan, cells: dict[tuple[str, str], Cell], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    for scenario in plan.scenarios:
        columns = _scenario_columns(
            plan, cells, scenario, [c for c in TABLE_COLUMNS if c[0] in TERMINAL_COLUMNS]
        )
        table = Table(title=escape(_table_title(scenario, cells, plan)), title_justify="left")
        table.add_column("agent", style="bold", no_wrap=True)
        for metric, header, _ in columns:
            table.add_column(header, justify="right", no_wrap=metric in CI_COLUMNS)
        table.add_column("model mix")
        for row in _table_rows(plan, cells, scenario, columns):  # names and paths as typed
            table.add_row(*(escape(text) for text in row))
        console.print(table)


EXACT_BOUND_RTOL = 1e-9
"""Relative gap (a fraction of the bound) between the schedule found and the hindsight bound
below which the bound counts as exact: the two costs then differ only by rounding."""


def _found_gap(hindsight: HindsightBounds | None, scenario: str) -> float:
    """(mean found - mean bound) / mean bound over the scenario's seeds where both are finite (a
    seed without arrivals has neither); NaN without such a seed."""
    if hindsight is None:
        return math.nan
    lower, found = hindsight.lower.get(scenario, {}), hindsight.found.get(scenario, {})
    seeds = [s for s in lower if math.isfinite(lower[s]) and s in found and not math.isnan(found[s])]
    if not seeds:
        return math.nan
    # each term divided first: a mean of finite figures stays finite however large they are (a sum
    # of figures near the float range overflows math.fsum)
    mean_lower = math.fsum(lower[s] / len(seeds) for s in seeds)
    mean_found = math.fsum(found[s] / len(seeds) for s in seeds)
    return (
        (mean_found - mean_lower) / mean_lower if mean_lower > 0 and math.isfinite(mean_found) else math.nan
    )


def _summary_items(
    plan: Plan, cells: dict[tuple[str, str], Cell], hindsight: HindsightBounds | None
) -> list[tuple[str, str | None, str, list[str]]]:
    """Per scenario: (its name, its reference, the ranking, the sentences that follow it)."""
    items: list[tuple[str, str | None, str, list[str]]] = []
    for scenario in plan.scenarios:
        ran = [c for a in plan.agents if (c := cells[(a.label, scenario.name)]).per_seed]
        if not ran:
            items.append((scenario.name, None, "no agent ran", []))
            continue
        costed = [c for c in ran if math.isfinite(c.value("cost_per_request"))]
        ranked = sorted(costed, key=lambda c: c.value("cost_per_request"))
        ref = ran[0].reference
        parts = []
        for cell in ranked:
            gap = cell.value("gap")
            text = "reference" if cell.agent == ref else (_fmt(gap, "{:+.1%}") if math.isfinite(gap) else "")
            parts.append(f"{cell.agent} {text}".rstrip())
        more: list[str] = []
        unranked = [c.agent for c in ran if c not in costed]
        if unranked:
            more.append(f"no cost (no arrival on any seed), not ranked: {', '.join(unranked)}")
        best = ranked[0].value("gap_hindsight") if ranked else math.nan
        if math.isfinite(best):
            workers = scenario.config.n_workers
            what = "the least cost of any schedule"
            if workers > 1:
                what = f"a lower bound of {what}, {workers} workers"
            used, seeds = ranked[0].n_used.get("gap_hindsight", 0), len(ranked[0].per_seed)
            over = f", over {used} of {seeds} seeds" if used < seeds else ""
            more.append(
                f"the cheapest, {ranked[0].agent}, is {best:+.1%} above the hindsight "
                f"bound ({what}, on the same arrivals{over})"
            )
            room = _found_gap(hindsight, scenario.name)
            if room > EXACT_BOUND_RTOL:  # not exact beyond rounding noise
                more.append(
                    f"the best schedule found with the arrivals known is {room:+.1%} "
                    "above the bound: the least cost lies between the two"
                )
        if scenario.target is not None:
            met = [c.agent for c in ran if c.target_met(scenario.target)]
            missed = [c.agent for c in ran if c.target_met(scenario.target) is False]
            text = scenario.target.describe(scenario.config.slo_ms)
            more.append(f"{text}: met by {', '.join(met) or 'none'}; missed by {', '.join(missed) or 'none'}")
        label = _reference_label(plan, cells, scenario)
        items.append((scenario.name, label, ", ".join(parts) or "no agent has a cost", more))
    return items


SUMMARY_HEAD = (
    "the cost per request (the regret against an instant LLM-1 answer; lower is better) as a gap "
    "to each scenario's reference, mean over seeds, cheapest first"
)


def summary_lines(
    plan: Plan, cells: dict[tuple[str, str], Cell], hindsight: HindsightBounds | None = None
) -> list[str]:
    """What the tables show, in a few lines computed from the results: per scenario, the agents
    with a cost from the cheapest to the dearest with their gap to the scenario's reference (an
    agent with no cost on any seed is named apart, not ranked), the cheapest's gap to the
    hindsight bound, and where the bound is not exact, how far above it the best schedule found
    with the arrivals known is (the least cost lies between the two)."""
    lines = [
        "What the tables show: the cost per request (the regret against an instant LLM-1 answer;",
        "lower is better) as a gap to each scenario's reference, mean over seeds, cheapest first:",
    ]
    width = max(len(s.name) for s in plan.scenarios)
    for name, ref, ranking, more in _summary_items(plan, cells, hindsight):
        if ref:
            lines.append(f"  {name:<{width}}  vs {ref}: {ranking}")
        elif ranking == "no agent ran":
            lines.append(f"  {name:<{width}}  {ranking}")
        else:
            lines.append(f"  {name:<{width}}: {ranking}")
        lines += [f"  {'':<{width}}  {sentence}" for sentence in more]
    return lines


def markdown_summary(
    plan: Plan, cells: dict[tuple[str, str], Cell], hindsight: HindsightBounds | None = None
) -> list[str]:
    """:func:`summary_lines` as Markdown: one item per scenario."""
    lines = [f"What the tables show: {SUMMARY_HEAD}.", ""]
    for name, ref, ranking, more in _summary_items(plan, cells, hindsight):
        head = f"vs {ref}: " if ref else ""
        lines.append(f"- **{name}**: {head}{ranking}" + "".join(f"; {sentence}" for sentence in more) + ".")
    return lines
