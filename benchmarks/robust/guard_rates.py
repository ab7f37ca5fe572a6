"""The ``guard_rates`` part of ``python benchmarks/robust_eval.py``: the tail guard's grid on Poisson
arrivals at the rates where ``robust`` loses the p99 to the tuned timeout, on training seeds.

The ``replay`` part found that on the Azure excerpt's second half robust's longer p99 is
systematic at 25% load, 150 requests/s and 50% (on fresh Poisson at those rates, not only on the
recorded half), and about 2 ms at 30%; the ``guard`` grid measured the tail at one rate only
(173 requests/s). This part asks, at each of those rates: does any setting of the tail guard
reach the tail of the timeout tuned on the trace's first half without breaking the Poisson goal
(within 0.5% of the optimum at every load)? Every candidate of the ``guard`` part (and the guard
off) runs on Poisson arrivals at the half's rate on the default system, with the exact optimum
and that tuned timeout on the same seeds (training seeds :data:`GUARD_SEEDS`, 60 s). A
candidate's *largest Poisson gap* is the largest of its gaps to the optimum over the ``guard``
part's eight loads (read from its JSON) and these rates. Nothing is chosen from it: it measures
the price of the timeout's tail on Poisson arrivals. The SLO scenario is left out: its guard
protects the scenario's own SLO and the exact optimum does not apply to an SLO penalty.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchenv.scenarios import load_scenario
from benchmarks.robust.common import POISSON_AT, gap, ms, p99_difference, pct, summary, tuned_for, verdict
from benchmarks.robust.guard import (
    CANDIDATES,
    GOAL_POISSON_GAP,
    GUARD_RESULTS,
    GUARD_SEEDS,
    MAX_POISSON_GAP,
    OFF,
    guard_grid,
    run_cells,
)
from benchmarks.robust.replay import TUNED_DIR
from benchmarks.robust.surrogate import half_rate
from execution.backends import Backend

TRACES = ("azure_trace_low", "azure_trace_30", "azure_trace", "azure_trace_medium")
"""The excerpt's scenarios whose second half robust loses on p99 without an SLO penalty (25%,
30%, 150 requests/s, 50%; the ``replay`` part)."""
SPECS = (OFF, *CANDIDATES)


def poisson_at(rate_per_s: float) -> str:
    """The part's scenario name of Poisson at ``rate_per_s`` on the default system (the rate
    rounded to 0.01 requests/s, as the tables print it; the JSON keeps the half's exact rate)."""
    return f"{POISSON_AT}{rate_per_s:.2f}"


def _rate_figures(rows: dict[str, list[dict]], spec: str) -> dict[str, Any]:
    """One candidate at one rate: cost gap to the optimum, p99 difference to the tuned timeout
    (mean and 95% half-width, paired by seed), and the p99 verdict."""
    p99 = p99_difference(rows[spec], rows["timeout"])
    cost = gap(rows[spec], rows["optimal"])
    return {"gap_to_optimal": cost, "p99_vs_timeout": p99, "p99_verdict": verdict(p99)}


def rate_summary(figures: dict[str, dict[str, Any]], largest: dict[str, float]) -> dict[str, Any]:
    """At one rate: the candidate within the Poisson goal with the shortest p99 against the
    timeout, and the candidate with the smallest largest Poisson gap among those whose p99 does
    not lose to the timeout's (None if none)."""
    within = [spec for spec in SPECS if largest[spec] <= GOAL_POISSON_GAP]
    shortest = min(within, key=lambda spec: figures[spec]["p99_vs_timeout"][0]) if within else None
    reaching = [spec for spec in SPECS if figures[spec]["p99_verdict"] != "loses"]
    cheapest = min(reaching, key=lambda spec: largest[spec]) if reaching else None
    return {"shortest_within_goal": shortest, "cheapest_reaching_timeout": cheapest}


def run_guard_rates(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The part (module docstring): its Markdown lines and data."""
    grid = guard_grid(SPECS)
    seeds = list(GUARD_SEEDS)
    rates = {trace: half_rate(f"{trace}_test") for trace in TRACES}
    tuned = {
        trace: tuned_for(load_scenario(f"{trace}_train"), TUNED_DIR, backend, command) for trace in TRACES
    }
    cells = [
        (trace, spec, "design", poisson_at(rates[trace]), spec, tuned[trace] if spec == "timeout" else None)
        for trace in TRACES
        for spec in ("optimal", "timeout", *SPECS)
    ]
    res = run_cells(backend, cells, seeds, args.horizon_s)
    figures = {trace: {spec: _rate_figures(res[trace], spec) for spec in SPECS} for trace in TRACES}
    largest = {
        spec: max(grid[spec]["max_poisson_gap"], *(figures[t][spec]["gap_to_optimal"][0] for t in TRACES))
        for spec in SPECS
    }
    summaries = {trace: rate_summary(figures[trace], largest) for trace in TRACES}
    timeout = {
        trace: {
            "params": tuned[trace]["timeout"]["params"],
            "gap_to_optimal": gap(res[trace]["timeout"], res[trace]["optimal"]),
            "p99_vs_optimal_ms": p99_difference(res[trace]["timeout"], res[trace]["optimal"]),
            "p99_ms": summary(res[trace]["timeout"])["p99_ms"][0],
        }
        for trace in TRACES
    }
    data = {
        "seeds": seeds,
        "goal_poisson_gap": GOAL_POISSON_GAP,
        "rule_poisson_gap": MAX_POISSON_GAP,
        "rates_per_s": rates,
        "timeout": timeout,
        "candidates": {
            spec: {"largest_poisson_gap": largest[spec], "rates": {t: figures[t][spec] for t in TRACES}}
            for spec in SPECS
        },
        "summaries": summaries,
    }
    return _lines(data, args.horizon_s), data


def _lines(data: dict[str, Any], horizon_s: float) -> list[str]:
    seeds, rates, timeout = data["seeds"], data["rates_per_s"], data["timeout"]
    lines = [
        "## The tail guard at the rates where robust loses the p99 (Poisson, training seeds)",
        "",
        f"Every candidate of the `guard` part on Poisson arrivals at the rate of each losing half of "
        f"the Azure excerpt (default system, seeds {seeds[0]}-{seeds[-1]}, {horizon_s:g} s), against "
        "the exact optimum (cost gap, %) and the timeout tuned on the trace's first half "
        "(`agents/tuned/`; p99 difference, ms, 95% interval paired by seed). Largest Poisson gap: "
        "the largest gap to the optimum over the `guard` part's eight loads "
        f"(`{GUARD_RESULTS.name}`) and these four rates; the goal allows "
        f"{100 * GOAL_POISSON_GAP:g}%, the guard rule's admissibility {100 * MAX_POISSON_GAP:.2f}%. "
        "Nothing is chosen from this table.",
        "",
        "| rate | tuned timeout | its gap to the optimum | its p99 (ms) | its p99 vs the optimum |",
        "|---|---|---|---|---|",
    ]
    for trace in TRACES:
        t = timeout[trace]
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        lines.append(
            f"| {trace}_test, {rates[trace]:.2f}/s | {params} | {pct(t['gap_to_optimal'])} | "
            f"{t['p99_ms']:.1f} | {ms(t['p99_vs_optimal_ms'])} |"
        )
    lines += [
        "",
        "| candidate | largest Poisson gap | "
        + " | ".join(f"{rates[t]:.0f}/s: gap to optimum; p99 vs timeout" for t in TRACES)
        + " |",
        "|---|---|" + "---|" * len(TRACES),
    ]
    for spec, c in data["candidates"].items():
        cells = [f"{100 * c['largest_poisson_gap']:+.2f}%"]
        cells += [
            f"{pct(c['rates'][t]['gap_to_optimal'])}; {ms(c['rates'][t]['p99_vs_timeout'])}" for t in TRACES
        ]
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    lines += ["", "Per rate:", ""]
    for trace in TRACES:
        s = data["summaries"][trace]
        shortest, cheapest = s["shortest_within_goal"], s["cheapest_reaching_timeout"]
        candidates = data["candidates"]
        text = f"- {rates[trace]:.2f}/s ({trace}_test): "
        if shortest is None:
            text += "no candidate is within the goal; "
        else:
            p99 = candidates[shortest]["rates"][trace]["p99_vs_timeout"]
            text += f"the shortest p99 within the goal is `{shortest}`'s, {ms(p99)} against the timeout; "
        if cheapest is None:
            text += "no candidate's p99 ties or beats the timeout's."
        else:
            text += (
                f"the candidate whose p99 ties or beats the timeout's with the smallest largest "
                f"Poisson gap is `{cheapest}` ({100 * candidates[cheapest]['largest_poisson_gap']:+.2f}%)."
            )
        lines.append(text)
    return [*lines, ""]
