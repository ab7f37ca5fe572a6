"""The ``regime`` part of ``python benchmarks/robust_eval.py``: the grid of the regime memory of
the burst-aware experts (``regime_hold_s``, ``regime_llr`` of
:class:`agents.robust.burst.BurstAwareProposed`) on training data only, and the selection rule
of docs/algorithm.md ("Robust to bursts", section 4) applied to it.

Every candidate is ``robust`` itself (with its default tail guard) and the regime setting; it runs
on the training seeds 1000-1019 (60 s each) on the MMPP (against the phase oracle, with the
closure of the timeout tuned on the MMPP), on every stationary Poisson load of the suite plus
Poisson at 173 requests/s (against the exact optimum) and on the first halves of the traces at
30% and 60% load (against the timeout tuned there).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from batchenv.scenarios import load_scenario
from benchmarks.robust.common import (
    MMPP_NAME,
    ORACLE,
    gap,
    mmpp_config,
    p99_difference,
    pct,
    summary,
    tuned_for,
)
from benchmarks.robust.guard import GUARD_POISSON, GUARD_SEEDS, MAX_POISSON_GAP, run_cells
from benchmarks.robust.parts import ROBUST_TUNED
from execution.backends import Backend

REGIME_TRACES = ("azure_trace_30", "azure_trace_60", "mooncake_conv_30", "mooncake_conv_60")
"""Traces whose first halves (``_train``) the grid runs on."""
OFF = "robust(regime_hold_s=0)"
"""The baseline of the grid: no regime memory (the default before this grid chose one)."""
HOLDS_S = (0.25, 0.5, 1.0)
LLRS = (0.0, 4.0, 8.0)
CANDIDATES = tuple(f"robust(regime_hold_s={h:g},regime_llr={llr:g})" for h in HOLDS_S for llr in LLRS)
MIN_GAIN = 0.0005
"""The pick replaces the default (no regime memory) only if its MMPP gap to the oracle is lower
by at least 0.05 points."""
COST_SLACK = 0.001
"""Admissible: on every training half, the cost gap to the tuned timeout is at most 0.10 points
above the default's."""
P99_SLACK_MS = 1.0
"""Admissible: on every training half, the p99 difference to the tuned timeout is at most this
(ms) above the default's."""


def select(rows: dict[str, dict[str, Any]]) -> str:
    """The rule of docs/algorithm.md applied to ``rows[spec]``: admissible if every Poisson gap is
    at most :data:`MAX_POISSON_GAP` and, on every trace half, the cost gap to the tuned timeout at
    most :data:`COST_SLACK` and the p99 difference at most :data:`P99_SLACK_MS` above the
    default's (point estimates); the
    admissible candidate with the smallest MMPP gap to the oracle, if it gains at least
    :data:`MIN_GAIN` on the default; otherwise the default."""
    admissible = [spec for spec in CANDIDATES if rows[spec]["admissible"]]
    if not admissible:
        return OFF
    best = min(admissible, key=lambda spec: rows[spec]["mmpp_gap"][0])
    return best if rows[best]["mmpp_gap"][0] <= rows[OFF]["mmpp_gap"][0] - MIN_GAIN else OFF


def grid_rows(
    args: argparse.Namespace, backend: Backend, command: str, specs: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[dict]]], float, list[int]]:
    """Run ``specs`` (the first is the default the others are compared with) on the training data
    of the module docstring. Per spec: its MMPP gap to the oracle and closure, its Poisson gaps to
    the optimum, its cost gap and p99 difference to the timeout tuned on each training half, and
    whether it is admissible (every Poisson gap at most :data:`MAX_POISSON_GAP`; on every half a
    cost gap at most :data:`COST_SLACK` and a p99 difference at most :data:`P99_SLACK_MS` above
    the default's). Returns the rows, the raw episode results, the tuned timeout's MMPP gap to
    the oracle and the seeds."""
    seeds = list(GUARD_SEEDS)
    tuned = {
        name: tuned_for(load_scenario(f"{name}_train"), ROBUST_TUNED, backend, command)
        for name in REGIME_TRACES
    }
    mmpp_tuned = tuned_for(mmpp_config(), ROBUST_TUNED, backend, command)
    cells = [("mmpp", spec, "mmpp", MMPP_NAME, spec, mmpp_tuned) for spec in ("timeout", ORACLE, *specs)]
    cells += [
        (name, spec, "design", name, spec, None) for name in GUARD_POISSON for spec in ("optimal", *specs)
    ]
    cells += [
        (f"{name}_train", spec, "design", f"{name}_train", spec, tuned[name])
        for name in REGIME_TRACES
        for spec in ("timeout", *specs)
    ]
    res = run_cells(backend, cells, seeds, args.horizon_s)
    timeout_gap = gap(res["mmpp"]["timeout"], res["mmpp"][ORACLE])[0]
    rows: dict[str, dict[str, Any]] = {}
    for spec in specs:
        mmpp_gap = gap(res["mmpp"][spec], res["mmpp"][ORACLE])
        poisson = {name: gap(res[name][spec], res[name]["optimal"]) for name in GUARD_POISSON}
        halves = {
            name: {
                "gap": gap(res[f"{name}_train"][spec], res[f"{name}_train"]["timeout"]),
                "p99": p99_difference(res[f"{name}_train"][spec], res[f"{name}_train"]["timeout"]),
            }
            for name in REGIME_TRACES
        }
        rows[spec] = {
            "mmpp_gap": mmpp_gap,
            "closure": 1.0 - mmpp_gap[0] / timeout_gap,
            "poisson_gap": poisson,
            "max_poisson_gap": max(g[0] for g in poisson.values()),
            "halves": halves,
        }
    off = rows[specs[0]]["halves"]
    for row in rows.values():
        p99_ok = all(h["p99"][0] <= off[name]["p99"][0] + P99_SLACK_MS for name, h in row["halves"].items())
        cost_ok = all(h["gap"][0] <= off[name]["gap"][0] + COST_SLACK for name, h in row["halves"].items())
        row["admissible"] = row["max_poisson_gap"] <= MAX_POISSON_GAP and cost_ok and p99_ok
    return rows, res, timeout_gap, seeds


def grid_table(rows: dict[str, dict[str, Any]], pick: str) -> list[str]:
    """The Markdown table of :func:`grid_rows`' rows, the pick in bold."""
    lines = [
        "| candidate | MMPP: gap vs oracle | closure | largest Poisson gap | "
        + " | ".join(REGIME_TRACES)
        + " | admissible |",
        "|---|---|---|---|" + "---|" * len(REGIME_TRACES) + "---|",
    ]
    for spec, row in rows.items():
        worst = max(row["poisson_gap"], key=lambda n: row["poisson_gap"][n][0])
        cells_text = [
            pct(row["mmpp_gap"]),
            f"{100 * row['closure']:.0f}%",
            f"{100 * row['max_poisson_gap']:+.2f}% ({worst})",
            *(f"{100 * h['gap'][0]:+.2f}%; p99 {h['p99'][0]:+.1f}" for h in row["halves"].values()),
            "yes" if row.get("admissible") else "no",
        ]
        label = f"**{spec}** (pick)" if spec == pick else spec
        lines.append(f"| {label} | " + " | ".join(cells_text) + " |")
    return lines


def grid_data(
    rows: dict[str, dict[str, Any]],
    res: dict[str, dict[str, list[dict]]],
    timeout_gap: float,
    seeds: list[int],
    pick: str,
) -> dict[str, Any]:
    """The JSON data of a grid part."""
    return {
        "seeds": seeds,
        "candidates": rows,
        "pick": pick,
        "timeout_gap_vs_oracle": timeout_gap,
        "summaries": {name: {spec: summary(r) for spec, r in by.items()} for name, by in res.items()},
    }


RULE_ADMISSIBLE = (
    f"admissible if every Poisson gap is <= {100 * MAX_POISSON_GAP:.2f}% and, on every trace half, "
    f"the cost gap is at most {100 * COST_SLACK:.2f} points and the p99 difference at most "
    f"{P99_SLACK_MS:g} ms above the default's"
)
"""The admissibility rule of :func:`grid_rows`, in words."""


def grid_part(
    args: argparse.Namespace,
    backend: Backend,
    command: str,
    specs: tuple[str, ...],
    select_pick: Callable[[dict[str, dict[str, Any]]], str],
    heading: str,
    description: str,
    notes: Callable[[dict[str, dict[str, Any]]], list[str]] = lambda rows: [],
) -> tuple[list[str], dict]:
    """A grid part: :func:`grid_rows` of ``specs``, the pick of ``select_pick``, the Markdown
    (heading, description, table, ``notes`` of the rows, the pick) and the data."""
    rows, res, timeout_gap, seeds = grid_rows(args, backend, command, specs)
    pick = select_pick(rows)
    lines = [heading, "", description, "", *grid_table(rows, pick), "", *notes(rows), f"Pick: {pick}.", ""]
    return lines, grid_data(rows, res, timeout_gap, seeds, pick)


def run_regime(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The grid (module docstring): its Markdown lines and data."""
    seeds = GUARD_SEEDS
    description = (
        "`robust` with its burst-aware experts' regime memory: after a jump up, the rate estimate is "
        "held for `regime_hold_s` at least at the rate read 1 s into the previous jump; `regime_llr` "
        "(0: off) adds a CUSUM for a return to that rate. Seeds "
        f"{seeds[0]}-{seeds[-1]}, {args.horizon_s:g} s each. MMPP: cost gap to the phase oracle and "
        "closure of the gap of the timeout tuned on the MMPP; Poisson: the largest cost gap to "
        "`optimal` over the suite's loads and 173/s (point estimate); traces' first halves: cost gap "
        f"and p99 difference (ms) to the timeout tuned there. Rule (docs/algorithm.md): {RULE_ADMISSIBLE}; "
        "the pick is the admissible "
        f"candidate with the smallest MMPP gap if it gains at least {100 * MIN_GAIN:.2f} points."
    )
    heading = "## Regime memory grid (training data only)"
    return grid_part(args, backend, command, (OFF, *CANDIDATES), select, heading, description)
