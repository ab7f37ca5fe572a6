"""The ``guard`` part of ``python benchmarks/robust_eval.py``: the grid of the tail guard of the
robust scheduler (its target latency and price per late request) on training data only, and the
selection rule of docs/algorithm.md ("Robust to bursts", section 4) applied to it.

Every candidate is ``robust`` itself with the guard setting (``guard_ms``, ``guard_penalty``,
``guard_waits``); it runs on the training seeds :data:`GUARD_SEEDS` (60 s each) on every
stationary Poisson load of the suite plus Poisson at 173 requests/s (against the exact optimum)
and on the first halves of the traces at 30% load (against the timeout tuned there). The timeout
tuned on ``azure_trace_30_train`` is also run on Poisson at 173 requests/s, to place it on the
Poisson frontier of cost and p99.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from agents.robust.scheduler import TAIL_GUARD_MS, TAIL_GUARD_PENALTY
from batchenv.scenarios import load_scenario
from benchmarks.robust.common import (
    REPO,
    gap,
    ms,
    p99_difference,
    pct,
    run_episodes,
    summary,
    tuned_for,
    verdict,
)
from benchmarks.robust.parts import ROBUST_TUNED
from execution.backends import Backend

GUARD_SEEDS = tuple(range(1000, 1020))
"""Training seeds of the grid (the test seeds are 0-19)."""
GUARD_POISSON = (
    "poisson_05",
    "poisson_25",
    "default",
    "poisson@173",
    "poisson_50",
    "poisson_75",
    "poisson_95",
    "high_load",
)
"""Every stationary Poisson load of the suite, and the default system at 173 requests/s (the
rate of the traces' 30% scenarios)."""
GUARD_TRACES = ("azure_trace_30", "mooncake_conv_30")
"""Traces whose first halves (``_train``) the grid runs on: the 30% loads, where the tail is."""
TAIL_POISSON = "poisson@173"
MAX_POISSON_GAP = 0.003
"""Admissible: cost gap to the optimum at most 0.30% (point estimate) on every Poisson load."""
TIE_MS = 0.1
"""Scores (ms) closer than this are a tie, broken by the smaller largest Poisson gap."""
OFF = "robust(tail_guard=false)"
TARGETS_MS = (65, 70, 72, 75, 78, 80)
PRICES = (0.01, 0.02, 0.03, 0.05)
MODEL_ONLY = ((70, 0.02), (75, 0.02))
"""Guards that only choose models (``guard_waits=false``): target ms, price."""


def guard_spec(target_ms: float, price: float, waits: bool = True) -> str:
    """The agent spec of ``robust`` with the tail guard at ``target_ms`` and ``price``."""
    spec = f"robust(guard_ms={target_ms:g},guard_penalty={price:g}"
    return spec + (")" if waits else ",guard_waits=false)")


CANDIDATES = (
    *(guard_spec(t, p) for t in TARGETS_MS for p in PRICES),
    *(guard_spec(t, p, waits=False) for t, p in MODEL_ONLY),
)
TIMEOUT_173 = "timeout (tuned on azure_trace_30_train)"


def select(rows: dict[str, dict[str, Any]]) -> str | None:
    """The rule of docs/algorithm.md applied to the grid's figures ``rows[spec]``: admissible if
    the cost gap to the optimum is <= :data:`MAX_POISSON_GAP` on every Poisson load and the cost
    gap to the tuned timeout is < 0 on every training half (point estimates); among those, the
    smallest mean p99 difference (ms) over Poisson at 173/s and the training halves, ties within
    :data:`TIE_MS` going to the smaller largest Poisson gap. None if no candidate is admissible."""
    admissible = [spec for spec in CANDIDATES if rows[spec]["admissible"]]
    if not admissible:
        return None
    best_score = min(rows[spec]["score_ms"] for spec in admissible)
    tied = [spec for spec in admissible if rows[spec]["score_ms"] <= best_score + TIE_MS]
    return min(tied, key=lambda spec: rows[spec]["max_poisson_gap"])


Cell = tuple[str, str, str, str, str, dict | None]
"""(result key, row label, task part, scenario, agent spec, tuned baselines or None)."""


def run_cells(
    backend: Backend, cells: Sequence[Cell], seeds: Sequence[int], horizon_s: float
) -> dict[str, dict[str, list[dict]]]:
    """Every cell on every seed (one episode each, :func:`benchmarks.robust.common.episode`):
    ``result[key][label]`` is the list of per-seed rows, in seed order."""
    tasks = [
        (part, scenario, spec, seed, tuned, horizon_s)
        for _, _, part, scenario, spec, tuned in cells
        for seed in seeds
    ]
    flat = iter(run_episodes(backend, tasks))
    res: dict[str, dict[str, list[dict]]] = {}
    for key, label, *_ in cells:
        res.setdefault(key, {})[label] = [next(flat) for _ in seeds]
    return res


def run_guard(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The grid (module docstring): its Markdown lines and data."""
    seeds = list(GUARD_SEEDS)
    tuned = {
        name: tuned_for(load_scenario(f"{name}_train"), ROBUST_TUNED, backend, command)
        for name in GUARD_TRACES
    }
    specs = (OFF, *CANDIDATES)
    cells = [
        (name, spec, "design", name, spec, None) for name in GUARD_POISSON for spec in ("optimal", *specs)
    ]
    cells.append((TAIL_POISSON, TIMEOUT_173, "design", TAIL_POISSON, "timeout", tuned["azure_trace_30"]))
    cells += [
        (f"{name}_train", spec, "design", f"{name}_train", spec, tuned[name])
        for name in GUARD_TRACES
        for spec in ("timeout", *specs)
    ]
    res = run_cells(backend, cells, seeds, args.horizon_s)
    rows = {spec: _figures(res, spec) for spec in specs}
    pick = select(rows)
    lines = _lines(res, rows, pick, seeds, args.horizon_s)
    data = {
        "seeds": seeds,
        "rule": {"max_poisson_gap": MAX_POISSON_GAP, "tie_ms": TIE_MS},
        "candidates": rows,
        "pick": pick,
        "timeout_at_173": {
            "gap_vs_optimal": gap(res[TAIL_POISSON][TIMEOUT_173], res[TAIL_POISSON]["optimal"]),
            "p99_minus_optimal_ms": p99_difference(
                res[TAIL_POISSON][TIMEOUT_173], res[TAIL_POISSON]["optimal"]
            ),
        },
        "summaries": {name: {spec: summary(r) for spec, r in by.items()} for name, by in res.items()},
    }
    return lines, data


def _figures(res: dict[str, dict[str, list[dict]]], spec: str) -> dict[str, Any]:
    """One candidate's gaps and p99 differences, its admissibility and its score."""
    poisson = {name: gap(res[name][spec], res[name]["optimal"]) for name in GUARD_POISSON}
    p99_173 = p99_difference(res[TAIL_POISSON][spec], res[TAIL_POISSON]["optimal"])
    halves = {
        name: {
            "gap": gap(res[f"{name}_train"][spec], res[f"{name}_train"]["timeout"]),
            "p99": p99_difference(res[f"{name}_train"][spec], res[f"{name}_train"]["timeout"]),
        }
        for name in GUARD_TRACES
    }
    largest = max(poisson.values(), key=lambda g: g[0])[0]
    admissible = largest <= MAX_POISSON_GAP and all(h["gap"][0] < 0 for h in halves.values())
    score = (p99_173[0] + sum(h["p99"][0] for h in halves.values())) / (1 + len(halves))
    return {
        "poisson_gap": poisson,
        "p99_173_minus_optimal_ms": p99_173,
        "halves": halves,
        "max_poisson_gap": largest,
        "admissible": admissible,
        "score_ms": score,
    }


def _lines(
    res: dict[str, dict[str, list[dict]]],
    rows: dict[str, dict[str, Any]],
    pick: str | None,
    seeds: Sequence[int],
    horizon_s: float,
) -> list[str]:
    short = {"poisson_05": "05", "poisson_25": "25", "default": "100/s", "poisson@173": "173/s"}
    short |= {"poisson_50": "50", "poisson_75": "75", "poisson_95": "95", "high_load": "400/s"}
    lines = [
        "## Tail guard grid (training data only)",
        "",
        f"`robust` with its tail guard at `guard_ms` and `guard_penalty` per late request "
        f"(`guard_waits=false`: the guard only chooses models); seeds {seeds[0]}-{seeds[-1]}, "
        f"{horizon_s:g} s each. Poisson: cost gap to `optimal` (point estimates, %) on every load "
        "of the suite and at 173 requests/s; the 30% traces' first halves: cost gap and p99 "
        "difference (ms) to the timeout tuned there. Score: mean of the p99 differences at 173/s "
        f"(to the optimum) and on the two halves (ms). Rule (docs/algorithm.md): admissible if every "
        f"Poisson gap is <= {100 * MAX_POISSON_GAP:.2f}% and both trace gaps are < 0; the pick is "
        f"the admissible candidate with the lowest score (ties within {TIE_MS:g} ms: the smaller "
        f"largest Poisson gap). The default of `robust` when this file was written: {TAIL_GUARD_MS:g} ms at "
        f"{TAIL_GUARD_PENALTY:g}.",
        "",
        "| candidate | "
        + " | ".join(short[n] for n in GUARD_POISSON)
        + " | p99 173/s | azure_trace_30_train | mooncake_conv_30_train | score ms | admissible |",
        "|---|" + "---|" * (len(GUARD_POISSON) + 5),
    ]
    for spec, row in rows.items():
        cells = [f"{100 * row['poisson_gap'][n][0]:+.2f}" for n in GUARD_POISSON]
        cells.append(f"{row['p99_173_minus_optimal_ms'][0]:+.1f}")
        cells += [f"{pct(h['gap'])}; p99 {h['p99'][0]:+.1f}" for h in row["halves"].values()]
        cells += [f"{row['score_ms']:+.1f}", "yes" if row["admissible"] else "no"]
        label = f"**{spec}** (pick)" if spec == pick else spec
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    timeout = res[TAIL_POISSON][TIMEOUT_173]
    optimal = res[TAIL_POISSON]["optimal"]
    t_gap, t_p99 = gap(timeout, optimal), p99_difference(timeout, optimal)
    lines += [
        "",
        f"The timeout tuned on azure_trace_30_train (`docs/results/robust/tuned/`) at Poisson 173/s, "
        f"same seeds: cost gap to the optimum {pct(t_gap)}, p99 {t_p99[0]:+.1f} ± {t_p99[1]:.1f} ms "
        f"(the optimum's p99: {summary(optimal)['p99_ms'][0]:.1f} ms).",
        "",
        f"Pick: {pick if pick else 'none admissible (the previous default stays)'}.",
        "",
    ]
    return lines


GOAL_POISSON_GAP = 0.005
"""The no-regression goal: within 0.5% of the optimum on every stationary Poisson load."""
GUARD_RESULTS = REPO / "docs" / "results" / "robust_guard.json"
"""The grid's training-data figures (the ``guard`` part), read by the ``guard_test`` part."""


def guard_grid(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``guard`` part's figures per candidate (``candidates`` of :data:`GUARD_RESULTS`), for
    the parts that read them; SystemExit naming what to run when the file or a candidate of
    ``specs`` is missing."""
    if not GUARD_RESULTS.is_file():
        raise SystemExit(f"{GUARD_RESULTS} is missing: run --parts guard first")
    grid = json.loads(GUARD_RESULTS.read_text())["guard"]["candidates"]
    missing = [spec for spec in specs if spec not in grid]
    if missing:
        raise SystemExit(f"{GUARD_RESULTS} has no figures for {missing}: rerun --parts guard")
    return grid


def run_guard_test(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The grid's candidates on the second halves of the 30% traces, after the fact: which guard
    setting would have matched the tuned timeout's p99 there, and at what cost on Poisson
    arrivals (the largest Poisson gap of the ``guard`` part, training seeds). An analysis of the
    conflict between the two goals; nothing is chosen here (the default comes from the ``guard``
    part's rule on training data)."""
    specs = (OFF, *CANDIDATES)
    grid = guard_grid(specs)
    seeds = list(range(args.seeds))
    tuned = {
        name: tuned_for(load_scenario(f"{name}_train"), ROBUST_TUNED, backend, command)
        for name in GUARD_TRACES
    }
    cells = [
        (f"{name}_test", spec, "traces", f"{name}_test", spec, tuned[name])
        for name in GUARD_TRACES
        for spec in ("timeout", *specs)
    ]
    res = run_cells(backend, cells, seeds, args.horizon_s)
    rows: dict[str, dict[str, Any]] = {}
    for spec in specs:
        tests = {
            name: {
                "gap": gap(res[f"{name}_test"][spec], res[f"{name}_test"]["timeout"]),
                "p99": p99_difference(res[f"{name}_test"][spec], res[f"{name}_test"]["timeout"]),
            }
            for name in GUARD_TRACES
        }
        matches = all(verdict(t["gap"]) != "loses" and verdict(t["p99"]) != "loses" for t in tests.values())
        largest = grid[spec]["max_poisson_gap"]
        rows[spec] = {
            "max_poisson_gap": largest,
            "within_goal": largest <= GOAL_POISSON_GAP,
            "tests": tests,
            "matches_timeout": matches,
        }
    both = [spec for spec, row in rows.items() if row["within_goal"] and row["matches_timeout"]]
    matching = [spec for spec, row in rows.items() if row["matches_timeout"]]
    lightest = min(matching, key=lambda spec: rows[spec]["max_poisson_gap"]) if matching else None
    names = " | ".join(f"{name}_test: cost, p99 vs timeout" for name in GUARD_TRACES)
    lines = [
        "## Tail guard grid on the held-out halves (after the fact)",
        "",
        f"The candidates of the `guard` part on the second halves of the 30% traces, seeds "
        f"0-{seeds[-1]}, {args.horizon_s:g} s each, against the timeout tuned on the first half: cost gap "
        "and p99 difference (ms) with their 95% intervals, paired by seed. Largest Poisson gap: the "
        "largest cost gap to the optimum over the Poisson loads of the `guard` part (training seeds "
        f"1000-1019, read from `{GUARD_RESULTS.relative_to(REPO)}`); within the goal: at most "
        f"{100 * GOAL_POISSON_GAP:g}%. Matches: neither the cost nor the p99 loses (a tie counts) on both "
        "halves. Nothing is chosen from this table: it measures the conflict between the two goals.",
        "",
        f"| candidate | largest Poisson gap | within the goal | {names} | matches |",
        "|---|---|---|" + "---|" * len(GUARD_TRACES) + "---|",
    ]
    for spec, row in rows.items():
        cells = [f"{100 * row['max_poisson_gap']:+.2f}%", "yes" if row["within_goal"] else "no"]
        cells += [f"{pct(t['gap'])}; {ms(t['p99'])}" for t in row["tests"].values()]
        cells.append("yes" if row["matches_timeout"] else "no")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Candidates within the Poisson goal that match the tuned timeout on both halves: "
        + (", ".join(f"`{s}`" for s in both) if both else "none")
        + ".",
        "",
        "The candidate with the smallest largest Poisson gap among those that match: "
        + (
            f"`{lightest}` ({100 * rows[lightest]['max_poisson_gap']:+.2f}% on Poisson)"
            if lightest
            else "none matches"
        )
        + ".",
        "",
    ]
    data = {
        "seeds": seeds,
        "goal_poisson_gap": GOAL_POISSON_GAP,
        "candidates": rows,
        "within_goal_and_matching": both,
        "lightest_matching": lightest,
        "summaries": {name: {spec: summary(r) for spec, r in by.items()} for name, by in res.items()},
    }
    return lines, data
