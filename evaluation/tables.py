"""Human-readable tables of an evaluation: the Markdown report and the terminal tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from batchenv.config import LatencyTarget, SystemConfig
from batchenv.seeds import TRAINING_SEEDS
from evaluation.cells import Cell, HindsightBounds
from evaluation.outputs import params_text
from evaluation.plan import Plan, ScenarioEntry

__all__ = [
    "CI_COLUMNS",
    "TABLE_COLUMNS",
    "TARGET_COLUMNS",
    "TERMINAL_COLUMNS",
    "print_tables",
    "summary_lines",
    "to_markdown",
]

TABLE_COLUMNS = (  # (metric, header, format) of the terminal and Markdown tables
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
    return f"{scenario.name} ({scenario.describe()}; {gap})"


def to_markdown(plan: Plan, cells: dict[tuple[str, str], Cell], figure_dir: str | None) -> str:
    headers = ["agent", *(h for _, h, _ in TABLE_COLUMNS), "model mix"]
    seeds = _seed_text(plan.seeds)
    horizon = f"{plan.horizon_s:g} s" if plan.horizon_s else "each scenario's horizon_s"
    lines = [
        f"# {plan.title}",
        "",
        "Produced by:",
        "",
        f"```\n{plan.command}\n```",
        "",
        f"Seeds {seeds} ({len(plan.seeds)} per cell), episodes of {horizon}, common random numbers "
        "(every agent meets the same arrivals for the same scenario and seed). Each number is the "
        "mean over seeds; ± is the half-width of the 95% confidence interval (Student t). "
        "cost/req = best quality - score per request (lower is better); gap = (mean cost - mean "
        "cost of the reference) / mean cost of the reference, its CI from the seed-paired cost "
        "differences. Latencies in ms; SLO = fraction "
        "of requests within slo_ms; thr/s = served requests per second; forced = dispatches forced "
        "by the max_wait_ms shield per episode. Each agent's parameters and where they come from "
        "are listed under Parameters"
        + (
            f"; tuned ones come from agents/tuned/<scenario>.yaml (grid search on seeds "
            f"{_seed_text(list(TRAINING_SEEDS))}, never used here)."
            if plan.tuned
            else "."
        ),
        "",
    ]
    extended = _extended_seeds_text(plan)
    if extended:
        lines[-2] += " " + extended
    lines += _overview(plan, cells)
    lines += _targets(plan, cells)
    for scenario in plan.scenarios:
        lines += [f"## {_table_title(scenario, cells, plan)}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for row in _table_rows(plan, cells, scenario):
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
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
            f"![Latency CDF per scenario]({figure_dir}latency_cdf.png)",
            "",
            f"![Score and cost per request vs mean arrival rate]({figure_dir}score_vs_rate.png)",
            "",
            f"![Mean quality vs p99 latency, Pareto front]({figure_dir}pareto_quality_p99.png)",
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
        row = [scenario.name, cells[(labels[0], scenario.name)].reference or "-"]
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
    from rich.table import Table

    columns = [c for c in TABLE_COLUMNS if c[0] in TERMINAL_COLUMNS]
    for scenario in plan.scenarios:
        table = Table(title=_table_title(scenario, cells, plan), title_justify="left")
        table.add_column("agent", style="bold", no_wrap=True)
        for metric, header, _ in columns:
            table.add_column(header, justify="right", no_wrap=metric in CI_COLUMNS)
        table.add_column("model mix")
        for row in _table_rows(plan, cells, scenario, columns):
            table.add_row(*row)
        console.print(table)


EXACT_BOUND_RTOL = 1e-9
"""Relative gap (a fraction of the bound) between the schedule found and the hindsight bound
below which the bound counts as exact: the two costs then differ only by rounding."""


def _found_gap(hindsight: HindsightBounds | None, scenario: str) -> float:
    """(mean found - mean bound) / mean bound over the scenario's seeds; NaN without both."""
    if hindsight is None or not hindsight.lower.get(scenario) or not hindsight.found.get(scenario):
        return math.nan
    lower = math.fsum(hindsight.lower[scenario].values()) / len(hindsight.lower[scenario])
    found = math.fsum(hindsight.found[scenario].values()) / len(hindsight.found[scenario])
    return (found - lower) / lower if lower > 0 and math.isfinite(found) else math.nan


def summary_lines(
    plan: Plan, cells: dict[tuple[str, str], Cell], hindsight: HindsightBounds | None = None
) -> list[str]:
    """What the tables show, in a few lines computed from the results: per scenario, the agents
    from the cheapest to the dearest with their gap to the scenario's reference, the cheapest's
    gap to the hindsight bound, and where the bound is not exact, how far above it the best
    schedule found with the arrivals known is (the least cost lies between the two)."""
    lines = [
        "What the tables show: the cost per request (the regret against an instant LLM-1 answer;",
        "lower is better) as a gap to each scenario's reference, mean over seeds, cheapest first:",
    ]
    width = max(len(s.name) for s in plan.scenarios)
    for scenario in plan.scenarios:
        ran = [c for a in plan.agents if (c := cells[(a.label, scenario.name)]).per_seed]
        if not ran:
            lines.append(f"  {scenario.name:<{width}}  no agent ran")
            continue
        ranked = sorted(ran, key=lambda c: c.value("cost_per_request"))
        ref = ranked[0].reference
        parts = []
        for cell in ranked:
            gap = cell.value("gap")
            text = "reference" if cell.agent == ref else (_fmt(gap, "{:+.1%}") if math.isfinite(gap) else "")
            parts.append(f"{cell.agent} {text}".rstrip())
        head = f"  {scenario.name:<{width}}  vs {ref}:" if ref else f"  {scenario.name:<{width}}:"
        lines.append(f"{head} " + ", ".join(parts))
        best = ranked[0].value("gap_hindsight")
        if math.isfinite(best):
            workers = scenario.config.n_workers
            what = "the least cost of any schedule"
            if workers > 1:
                what = f"a lower bound of {what}, {workers} workers"
            lines.append(
                f"  {'':<{width}}  the cheapest, {ranked[0].agent}, is {best:+.1%} above the hindsight "
                f"bound ({what}, on the same arrivals)"
            )
            room = _found_gap(hindsight, scenario.name)
            if room > EXACT_BOUND_RTOL:  # not exact beyond rounding noise
                lines.append(
                    f"  {'':<{width}}  the best schedule found with the arrivals known is {room:+.1%} "
                    "above the bound: the least cost lies between the two"
                )
        if scenario.target is not None:
            met = [c.agent for c in ran if c.target_met(scenario.target)]
            missed = [c.agent for c in ran if c.target_met(scenario.target) is False]
            text = scenario.target.describe(scenario.config.slo_ms)
            lines.append(
                f"  {'':<{width}}  {text}: met by {', '.join(met) or 'none'}; "
                f"missed by {', '.join(missed) or 'none'}"
            )
    return lines
