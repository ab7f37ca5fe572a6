"""The ``replay`` part of ``python benchmarks/robust_eval.py``: how much of a verdict on a
replayed trace half one realization of its arrivals can move.

The goal verdict that ``robust`` loses (docs/algorithm.md, "Where it still loses") is the p99 on
``azure_trace_30_test``: 1,475 recorded arrivals (8.7 s at 30% load) replayed in a loop in every
60 s episode, whose gaps look exponential (CV 1.00, docs/results/traces.md); the same half loses
the p99 at the excerpt's other moderate rates too (:data:`TRACES`). A 95% interval over
evaluation seeds treats that realization as fixed: the seeds only move the replay's start. For
every trace of :data:`TRACES`, this part runs the candidates (``robust``, and ``robust`` with the
guard setting that matches the timeout's p99 on Poisson arrivals at 173 requests/s within the
Poisson goal, 80 ms at 0.03, the ``guard`` part's grid) and the timeout tuned on the trace's
first half (``agents/tuned/``) on :data:`N_SURROGATES` Poisson surrogates of the second half
(:mod:`benchmarks.robust.surrogate`: the half's number of gaps and rate, exponential gaps, the
same replay), on the recorded half, and on fresh Poisson arrivals at the half's rate on the
half's system (no replay). Nothing is chosen from it: it says where the recorded half's verdict
lies among those of Poisson-like halves of its length, and what the verdict is on Poisson
arrivals themselves.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from batchenv.scenarios import load_scenario
from benchmarks.robust.common import REPO, gap, ms, p99_difference, pct, tuned_for, verdict
from benchmarks.robust.guard import run_cells
from benchmarks.robust.surrogate import FRESH_POISSON, SURROGATE_SEED_BASE, half_rate, surrogate_name
from execution.backends import Backend

TRACES = ("azure_trace_30", "azure_trace_low", "azure_trace", "azure_trace_slo", "azure_trace_medium")
"""The excerpt's scenarios whose second half robust loses on p99 (docs/results/trace_results_all.md):
30% (the goal's), 25%, 150 requests/s, 150 requests/s with an SLO penalty, 50%."""
DETAILED = "azure_trace_30"
"""The trace whose per-surrogate figures are tabulated (the goal's)."""
TUNED_DIR = REPO / "agents" / "tuned"
CANDIDATES = ("robust", "robust(guard_ms=80,guard_penalty=0.03)")
"""Compared with the tuned timeout: the default, and the guard setting of the ``guard`` grid whose
p99 at Poisson 173/s matches the timeout's within the Poisson goal (docs/algorithm.md)."""
SPECS = ("timeout", *CANDIDATES)
N_SURROGATES = 30
REPLAY_SEEDS = tuple(range(5))
"""Evaluation seeds of every surrogate and of the recorded half (the replay's start)."""
POISSON_SEEDS = tuple(range(10))
VERDICTS = ("beats", "ties", "loses")


def _cell_figures(rows: dict[str, list[dict]], spec: str) -> dict[str, Any]:
    """``spec`` against the tuned timeout in one cell: cost gap and p99 difference (ms), each a
    (mean, 95% half-width) paired by seed, with their verdicts."""
    cost = gap(rows[spec], rows["timeout"])
    p99 = p99_difference(rows[spec], rows["timeout"])
    return {"gap": cost, "p99": p99, "cost_verdict": verdict(cost), "p99_verdict": verdict(p99)}


def spread(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation (n - 1) and quantiles of a list of figures."""
    x = np.asarray(values, dtype=float)
    q = np.quantile(x, [0.0, 0.1, 0.5, 0.9, 1.0])
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)),
        **{k: float(v) for k, v in zip(("min", "p10", "median", "p90", "max"), q, strict=True)},
    }


def candidate_figures(res: dict[str, dict[str, list[dict]]], half: str, spec: str) -> dict[str, Any]:
    """Every figure of one candidate on one half: on the recorded half, on fresh Poisson, on each
    surrogate, and the spread and verdict counts over the surrogates."""
    recorded = _cell_figures(res[half], spec)
    surrogates = [_cell_figures(res[surrogate_name(half, k)], spec) for k in range(N_SURROGATES)]
    p99s = [c["p99"][0] for c in surrogates]
    return {
        "recorded": recorded,
        "poisson": _cell_figures(res[surrogate_name(half, FRESH_POISSON)], spec),
        "surrogates": surrogates,
        "p99_spread_ms": spread(p99s),
        "gap_spread": spread([c["gap"][0] for c in surrogates]),
        "p99_verdicts": {v: sum(c["p99_verdict"] == v for c in surrogates) for v in VERDICTS},
        "cost_verdicts": {v: sum(c["cost_verdict"] == v for c in surrogates) for v in VERDICTS},
        "matches": sum(c["p99_verdict"] != "loses" and c["cost_verdict"] != "loses" for c in surrogates),
        "surrogates_above_recorded": sum(p > recorded["p99"][0] for p in p99s),
    }


def _mean_p99(rows: list[dict]) -> float:
    return float(np.mean([r["p99_ms"] for r in rows]))


def trace_cells(trace: str, tuned: dict[str, dict]) -> tuple[list[tuple], list[tuple]]:
    """The cells of one trace, each spec: the replayed ones (its recorded half and every
    surrogate, run on :data:`REPLAY_SEEDS`) and fresh Poisson (run on :data:`POISSON_SEEDS`)."""
    half = f"{trace}_test"
    replayed = [(half, spec, "traces", half, spec, tuned) for spec in SPECS]
    for name in (surrogate_name(half, k) for k in range(N_SURROGATES)):
        replayed += [(name, spec, "replay", name, spec, tuned) for spec in SPECS]
    fresh = surrogate_name(half, FRESH_POISSON)
    return replayed, [(fresh, spec, "replay", fresh, spec, tuned) for spec in SPECS]


def trace_figures(
    res: dict[str, dict[str, list[dict]]], trace: str, tuned: dict[str, dict]
) -> dict[str, Any]:
    """Every figure of one trace (its data in the results file)."""
    half = f"{trace}_test"
    return {
        "half": half,
        "rate_per_s": half_rate(half),
        "tuned_timeout": tuned["timeout"]["params"],
        "timeout_p99_ms": {
            "recorded": _mean_p99(res[half]["timeout"]),
            "poisson": _mean_p99(res[surrogate_name(half, FRESH_POISSON)]["timeout"]),
            "surrogates": [_mean_p99(res[surrogate_name(half, k)]["timeout"]) for k in range(N_SURROGATES)],
        },
        "candidates": {spec: candidate_figures(res, half, spec) for spec in CANDIDATES},
    }


def _summary_line(spec: str, c: dict[str, Any]) -> str:
    p, g, v = c["p99_spread_ms"], c["gap_spread"], c["p99_verdicts"]
    return (
        f"- `{spec}`: p99 difference mean {p['mean']:+.1f} ms (standard deviation {p['sd']:.1f}; "
        f"min {p['min']:+.1f}, 10% {p['p10']:+.1f}, median {p['median']:+.1f}, 90% {p['p90']:+.1f}, "
        f"max {p['max']:+.1f}); p99 verdict beats on {v['beats']}, ties on {v['ties']}, loses on "
        f"{v['loses']}; cost gap mean {100 * g['mean']:+.2f}% (from {100 * g['min']:+.2f}% to "
        f"{100 * g['max']:+.2f}%; cost loses on {c['cost_verdicts']['loses']}); matches the timeout "
        f"on both on {c['matches']} of {N_SURROGATES}; the p99 difference is larger than on the "
        f"recorded half on {c['surrogates_above_recorded']}."
    )


def _overview(traces: dict[str, dict[str, Any]]) -> list[str]:
    """One row per trace and candidate: recorded half, fresh Poisson, the surrogates' spread."""
    lines = [
        "| trace half | rate (/s) | candidate | recorded half: cost, p99 | fresh Poisson: cost, p99 "
        "| surrogates: p99 mean (SD), min to max | p99 loses on | matches on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in traces.values():
        for spec, c in t["candidates"].items():
            rec, poi, p = c["recorded"], c["poisson"], c["p99_spread_ms"]
            lines.append(
                f"| {t['half']} | {t['rate_per_s']:.2f} | {spec} | {pct(rec['gap'])}; {ms(rec['p99'])} "
                f"| {pct(poi['gap'])}; {ms(poi['p99'])} | {p['mean']:+.1f} ({p['sd']:.1f}), "
                f"{p['min']:+.1f} to {p['max']:+.1f} | {c['p99_verdicts']['loses']} | {c['matches']} |"
            )
    return lines


def _detail(t: dict[str, Any]) -> list[str]:
    """The detailed figures of one trace: summary lines and the per-surrogate table."""
    timeout = t["timeout_p99_ms"]
    lines = [
        f"### {t['half']}: every surrogate",
        "",
        f"The timeout's mean p99 is {timeout['recorded']:.1f} ms on the recorded half and "
        f"{timeout['poisson']:.1f} ms on fresh Poisson; over the surrogates it runs from "
        f"{min(timeout['surrogates']):.1f} to {max(timeout['surrogates']):.1f} ms. Over the "
        f"{N_SURROGATES} surrogates:",
        "",
        *(_summary_line(spec, c) for spec, c in t["candidates"].items()),
        "",
        "| surrogate | timeout p99 (ms) | "
        + " | ".join(f"{spec}: cost gap; p99 difference" for spec in CANDIDATES)
        + " |",
        "|---|---|" + "---|" * len(CANDIDATES),
    ]
    for k in range(N_SURROGATES):
        each = [t["candidates"][spec]["surrogates"][k] for spec in CANDIDATES]
        cells = " | ".join(f"{pct(c['gap'])}; {ms(c['p99'])}" for c in each)
        lines.append(f"| {k} | {timeout['surrogates'][k]:.1f} | {cells} |")
    return [*lines, ""]


def run_replay(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The part (module docstring): its Markdown lines and data."""
    tuned = {
        trace: tuned_for(load_scenario(f"{trace}_train"), TUNED_DIR, backend, command) for trace in TRACES
    }
    cells = [trace_cells(trace, tuned[trace]) for trace in TRACES]
    replayed = [cell for trace_replayed, _ in cells for cell in trace_replayed]
    fresh = [cell for _, trace_fresh in cells for cell in trace_fresh]
    res = run_cells(backend, replayed, REPLAY_SEEDS, args.horizon_s)
    res |= run_cells(backend, fresh, POISSON_SEEDS, args.horizon_s)
    traces = {trace: trace_figures(res, trace, tuned[trace]) for trace in TRACES}
    data = {
        "replay_seeds": list(REPLAY_SEEDS),
        "poisson_seeds": list(POISSON_SEEDS),
        "surrogate_seeds": [SURROGATE_SEED_BASE, SURROGATE_SEED_BASE + N_SURROGATES - 1],
        "traces": traces,
    }
    lines = [
        "## One realization or the scheduler? Poisson surrogates of the Azure excerpt's second half",
        "",
        "The candidates against the timeout tuned on each trace's first half (`agents/tuned/`) on "
        f"the recorded second half (seeds {REPLAY_SEEDS[0]}-{REPLAY_SEEDS[-1]}), on {N_SURROGATES} "
        "Poisson surrogates of it (its gaps drawn exponential with seeds "
        f"{SURROGATE_SEED_BASE}-{SURROGATE_SEED_BASE + N_SURROGATES - 1}, replayed like the half, "
        f"seeds {REPLAY_SEEDS[0]}-{REPLAY_SEEDS[-1]}) and on fresh Poisson arrivals at the half's rate "
        f"on its system (no replay, seeds {POISSON_SEEDS[0]}-{POISSON_SEEDS[-1]}); {args.horizon_s:g} s "
        "episodes. Cost gap and p99 difference (ms) of the candidate minus the timeout, 95% intervals "
        "paired by seed; *p99 loses on*, *matches on*: of the surrogates, those where the p99 "
        "verdict is a loss, and those where neither verdict is.",
        "",
        *_overview(traces),
        "",
        *_detail(traces[DETAILED]),
    ]
    return lines, data
