"""The parts of the robust scheduler's benchmarks (``python benchmarks/robust_eval.py``): each
``run_*(args, backend, command)`` returns its Markdown lines and its data for the JSON file."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.robust.scheduler import TAIL_BUDGET
from batchenv.scenarios import load_scenario, trace_scenarios
from batchenv.seeds import TRAINING_SEEDS
from benchmarks.proposed.common import display_path
from benchmarks.robust.common import (
    MMPP_NAME,
    ORACLE,
    PHASE_EDGES_S,
    REPO,
    TUNED_AGENTS,
    agent_table,
    gap,
    mmpp_config,
    ms,
    p99_difference,
    pct,
    run_episodes,
    summary,
    trace_tasks,
    tuned_for,
    verdict,
)
from evaluation.stats import closure_interval
from execution.backends import Backend

ROBUST_TUNED = REPO / "docs" / "results" / "robust" / "tuned"
"""The tuned baselines of docs/results/robust.md (the tail part reuses them)."""
RECORDED_TRACES = (
    "azure_trace_native",
    "azure_trace_30",
    "azure_trace_60",
    "mooncake_conv",
    "mooncake_conv_30",
    "mooncake_conv_60",
)
"""The goal scenarios of the two recorded traces: each at its native rate and at 30% and 60% of
LLM-3's capacity."""
GOAL_TRACES = (*RECORDED_TRACES, "servegen", "servegen_30")
"""The trace scenarios of the goal: the recorded traces' and the ServeGen hour's (generated from
production statistics; its own rate is 63% of LLM-3's capacity, so it has no separate 60%
scenario)."""
TAIL_TRACES = RECORDED_TRACES
"""The goal traces of the ``tail`` part: those of the goal when the tail rules were measured
(before the ServeGen hour was added); the rules stay off by default."""
AGENTS = (
    "timeout",
    "util_switch",
    "proposed",
    "robust",
    "robust(portfolio=false)",
    "robust(burst_tilt=false)",
    "robust(tail_guard=false,backlog_llr=0,regime_hold_s=0)",
)
POISSON = ("poisson_05", "poisson_25", "default", "poisson_50", "poisson_75", "poisson_95", "high_load")
POISSON_AGENTS = ("optimal", "timeout", "proposed", "robust")


def run_traces(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    names = list(GOAL_TRACES) if args.traces == "goal" else trace_scenarios()
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    tuned = {name: tuned_for(load_scenario(f"{name}_train"), tuned_dir, backend, command) for name in names}
    seeds = list(range(args.seeds))
    tasks = trace_tasks(names, AGENTS, seeds, tuned, args.horizon_s)
    flat = iter(run_episodes(backend, tasks))
    results = {name: {spec: [next(flat) for _ in seeds] for spec in AGENTS} for name in names}
    model_names = load_scenario("default").model_names
    lines = [
        "## Traces: tuned on the first half, evaluated on the second",
        "",
        "Every trace scenario with a time split; timeout and util_switch tuned on `<name>_train` "
        f"(seeds {TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, parameters in "
        f"`{display_path(tuned_dir)}/`), every agent evaluated on `<name>_test`, seeds "
        f"0-{seeds[-1]}, {args.horizon_s:g} s each. Gap = relative difference of the mean costs to the "
        "tuned timeout's, with its 95% interval from the seed-paired differences; p99 difference "
        "paired by seed; verdicts: *beats* (95% interval below 0), "
        "*ties* (it contains 0), *loses*. Goal scenarios (each trace at its native rate, 30% and "
        "60% of LLM-3's capacity) are in bold.",
        "",
        "| scenario | robust: cost vs timeout | p99 vs timeout (ms) | verdict (cost, p99) "
        "| proposed: cost vs timeout | p99 vs timeout (ms) | verdict (cost, p99) |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {}
    for name in names:
        res = results[name]
        ref = res["timeout"]
        cells = []
        for spec in ("robust", "proposed"):
            cost_gap = gap(res[spec], ref)
            d99 = p99_difference(res[spec], ref)
            cells += [pct(cost_gap), ms(d99), f"{verdict(cost_gap)}, {verdict(d99)}"]
        label = f"**{name}**" if name in GOAL_TRACES else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        data[name] = {
            "tuned": {a: tuned[name][a]["params"] for a in TUNED_AGENTS},
            "agents": {spec: summary(rows) for spec, rows in res.items()},
            "gap_vs_timeout": {spec: gap(rows, ref) for spec, rows in res.items()},
            "p99_minus_timeout_ms": {spec: p99_difference(rows, ref) for spec, rows in res.items()},
        }
    lines.append("")
    for name in names:
        config = load_scenario(f"{name}_test")
        params = ", ".join(f"{k}={v}" for k, v in tuned[name]["timeout"]["params"].items())
        lines += [
            f"### {name}_test ({config.arrivals.rate_per_s:g}/s; tuned timeout: {params})",
            "",
            *agent_table(results[name], "timeout", model_names),
            "",
        ]
    return lines, data


def _closures(res: dict[str, list[dict]], specs: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """Per spec of ``specs``: the share of the tuned timeout's gap to the oracle that it closes on
    the MMPP runs ``res`` (rows by seed), with its bootstrap interval (``closure_interval``)."""
    costs = {spec: [row["cost"] for row in rows] for spec, rows in res.items()}
    return {spec: closure_interval(costs[spec], costs["timeout"], costs[ORACLE]) for spec in specs}


def run_mmpp(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    config = mmpp_config()
    tuned = tuned_for(config, Path(args.out).with_suffix("") / "tuned", backend, command)
    specs = (*AGENTS, ORACLE)
    seeds = list(range(args.mmpp_seeds))
    tasks = [("mmpp", MMPP_NAME, spec, seed, tuned, config.horizon_s) for spec in specs for seed in seeds]
    flat = iter(run_episodes(backend, tasks))
    res = {spec: [next(flat) for _ in seeds] for spec in specs}
    oracle, timeout = res[ORACLE], res["timeout"]
    lines = [
        "## MMPP 50 <-> 450 requests/s, 5 s sojourns",
        "",
        f"Phases recorded; seeds 0-{seeds[-1]}, {config.horizon_s:g} s each; timeout and util_switch "
        f"tuned on the same MMPP (seeds {TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}). The oracle is the "
        "SMDP table at the true rate of the current phase. Closure = 1 - (agent's gap to the oracle) "
        "/ (tuned timeout's gap), with its 95% interval from a paired bootstrap over the seeds "
        "(`evaluation.stats.closure_interval`).",
        "",
        "| agent | cost/req | gap vs oracle | closure (95% interval) | gap vs timeout | p99 ms "
        "| switches, regret |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {"tuned": {a: tuned[a]["params"] for a in TUNED_AGENTS}, "agents": {}}
    closures = _closures(res, res)
    for spec, rows in res.items():
        s = summary(rows)
        cost_gap = gap(rows, oracle)
        closure, low, high = closures[spec]
        interval = f" ({100 * low:.0f}-{100 * high:.0f}%)" if spec not in ("timeout", ORACLE) else ""
        portfolio = f"{s['switches']:.1f}, {s['regret_pct'][0]:.2f}%" if "switches" in s else ""
        lines.append(
            f"| {spec} | {s['cost'][0]:.4f} | {pct(cost_gap)} | {100 * closure:.0f}%{interval} "
            f"| {pct(gap(rows, timeout))} | {s['p99_ms'][0]:.1f} | {portfolio} |"
        )
        data["agents"][spec] = {
            **s,
            "gap_vs_oracle": cost_gap,
            "closure": closure,
            "closure_interval": [low, high],
        }
    return [*lines, ""], data


def run_poisson(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    seeds = list(range(args.seeds))
    tasks = [
        ("poisson", name, spec, seed, None, args.horizon_s)
        for name in POISSON
        for spec in POISSON_AGENTS
        for seed in seeds
    ]
    flat = iter(run_episodes(backend, tasks))
    lines = [
        "## Stationary Poisson loads: gap to the exact optimum",
        "",
        f"Seeds 0-{seeds[-1]}, {args.horizon_s:g} s each; gap to `optimal` "
        "(the SMDP optimum at the true rate); the timeout with its parameters tuned per scenario "
        "(`agents/tuned/`).",
        "",
        "| scenario | rate (1/s) | timeout | proposed | robust | robust p99 ms (optimal) | robust switches |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {}
    for name in POISSON:
        res = {spec: [next(flat) for _ in seeds] for spec in POISSON_AGENTS}
        ref = res["optimal"]
        gaps = {spec: gap(res[spec], ref) for spec in POISSON_AGENTS}
        robust = summary(res["robust"])
        p99 = (robust["p99_ms"][0], summary(ref)["p99_ms"][0])
        lines.append(
            f"| {name} | {load_scenario(name).arrivals.rate_per_s:g} | {pct(gaps['timeout'], 3)} "
            f"| {pct(gaps['proposed'], 3)} | {pct(gaps['robust'], 3)} | {p99[0]:.1f} ({p99[1]:.1f}) "
            f"| {robust['switches']:.1f} |"
        )
        data[name] = {"gap_vs_optimal": gaps, "robust": robust}
    return [*lines, ""], data


DESIGN_SEEDS = tuple(range(1000, 1008))
DESIGN_POISSON = ("poisson_25", "poisson_50")
DESIGN_TRACES = ("azure_trace_30", "azure_trace_60", "mooncake_conv_30", "mooncake_conv_60")
DESIGN_TILTS = ("proposed", "tilted(1.25)", "tilted(1.5)")
DESIGN_AWARE = tuple(f"aware({c:g},{w:g})" for c in (1.0, 2.0, 4.0) for w in (0.5, 1.0))
DESIGN_Z = tuple(f"robust(z={z:g})" for z in (1.5, 2.0, 2.5))
DESIGN_BACKLOG = tuple(f"robust(backlog_llr={llr:g})" for llr in (0, 4, 6, 8))
"""The backlog-aware rate estimate of the burst-aware experts (default 6; 0: off)."""


def _design_grid(
    args: argparse.Namespace, backend: Backend, command: str, specs: Sequence[str]
) -> dict[str, dict[str, list[dict]]]:
    """Per design scenario and spec, the per-seed results on the training seeds (Poisson: against
    the optimum; trace train halves: against the timeout tuned there)."""
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    scenarios: list[tuple[str, dict | None, tuple[str, ...]]] = [
        (name, None, ("optimal", *specs)) for name in DESIGN_POISSON
    ]
    for name in DESIGN_TRACES:
        tuned = tuned_for(load_scenario(f"{name}_train"), tuned_dir, backend, command)
        scenarios.append((f"{name}_train", tuned, ("timeout", *specs)))
    tasks = [
        ("design", name, spec, seed, tuned, args.horizon_s)
        for name, tuned, all_specs in scenarios
        for spec in all_specs
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_episodes(backend, tasks))
    return {
        name: {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in all_specs}
        for name, _, all_specs in scenarios
    }


def _design_table(results: dict[str, dict[str, list[dict]]], specs: Sequence[str]) -> list[str]:
    lines = [
        "| agent | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for spec in specs:
        cells = []
        for res in results.values():
            ref = res["optimal"] if "optimal" in res else res["timeout"]
            cost_gap = gap(res[spec], ref)
            d99 = p99_difference(res[spec], ref)
            sigma = (
                f", sigma {np.mean([r['sigma'] for r in res[spec]]):.2f}" if "sigma" in res[spec][0] else ""
            )
            cells.append(f"{pct(cost_gap)}; p99 {ms(d99)}{sigma}")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return lines


def run_design(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    data: dict[str, Any] = {"seeds": list(DESIGN_SEEDS)}
    # 1. where the proposed scheduler loses on the MMPP
    config = mmpp_config()
    tasks = [
        ("mmpp", MMPP_NAME, spec, seed, None, config.horizon_s)
        for spec in ("proposed", ORACLE)
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_episodes(backend, tasks))
    runs = {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in ("proposed", ORACLE)}
    sums = {spec: np.sum([r["phases"] for r in rows], axis=0) for spec, rows in runs.items()}
    excess = sums["proposed"][:, :, 0] - sums[ORACLE][:, :, 0]
    total = float(sums[ORACLE][:, :, 0].sum())
    lines = [
        "## Design measurements (training data only)",
        "",
        f"Seeds {DESIGN_SEEDS[0]}-{DESIGN_SEEDS[-1]}, {config.horizon_s:g} s each; the trace scenarios are "
        "their first halves (`_train`), the timeout tuned there.",
        "",
        "### Where the proposed scheduler loses on the MMPP",
        "",
        "Excess cost of `proposed` over the phase oracle, summed over the seeds, by the phase the requests "
        "arrived in and the time since that phase began, in % of the oracle's total cost "
        "(quality part in brackets).",
        "",
        "| phase | " + " | ".join(f"{a:g}-{b:g} s" for a, b in itertools.pairwise(PHASE_EDGES_S)) + " |",
        "|---|" + "---|" * (len(PHASE_EDGES_S) - 1),
    ]
    quality = sums["proposed"][:, :, 1] - sums[ORACLE][:, :, 1]
    for phase, label in enumerate(("low (50/s)", "high (450/s)")):
        cells = [
            f"{100 * excess[phase, b] / total:+.2f}% ({100 * quality[phase, b] / total:+.2f}%)"
            for b in range(len(PHASE_EDGES_S) - 1)
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    data["mmpp_excess_pct"] = (100 * excess / total).tolist()
    # 2-4. latency tilt, burst-aware settings
    results = _design_grid(args, backend, command, (*DESIGN_TILTS, *DESIGN_AWARE))
    lines += [
        "",
        "### Latency tilt and the burst-aware table",
        "",
        "Paired cost gap and p99 difference (ms) to `optimal` (Poisson) or to the timeout tuned on the "
        "same half (traces); `tilted(k)` is the SMDP table solved with the latency weight times k; "
        "`aware(c,w)` is the burst-aware table (`BurstAwareProposed`) with tilt c and window w s, with "
        "the burst meter's last reading (sigma). The default is aware(2,0.5).",
        "",
        *_design_table(results, (*DESIGN_TILTS, *DESIGN_AWARE)),
    ]
    data["tilt"] = {
        name: {spec: summary(rows) for spec, rows in res.items()} for name, res in results.items()
    }
    # 5. the switching test's confidence
    mmpp_tasks = [
        ("mmpp", MMPP_NAME, spec, seed, None, config.horizon_s)
        for spec in (*DESIGN_Z, ORACLE)
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_episodes(backend, mmpp_tasks))
    mmpp = {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in (*DESIGN_Z, ORACLE)}
    poisson = _design_grid_poisson(args, backend, DESIGN_Z)
    lines += [
        "",
        "### Confidence of the portfolio's switching test",
        "",
        "| agent | MMPP: gap vs oracle | "
        + " | ".join(f"{name}: gap vs optimal" for name in DESIGN_POISSON)
        + " | switches (MMPP) |",
        "|---|---|" + "---|" * len(DESIGN_POISSON) + "---|",
    ]
    for spec in DESIGN_Z:
        cells = [pct(gap(mmpp[spec], mmpp[ORACLE]))]
        cells += [pct(gap(poisson[name][spec], poisson[name]["optimal"]), 3) for name in DESIGN_POISSON]
        cells.append(f"{np.mean([r['switches'] for r in mmpp[spec]]):.1f}")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    data["z"] = {spec: summary(rows) for spec, rows in mmpp.items()}
    lines += _design_backlog(args, backend, data)
    return [*lines, ""], data


def _design_backlog(args: argparse.Namespace, backend: Backend, data: dict) -> list[str]:
    """The backlog-aware rate estimate on the MMPP (against the phase oracle) and the Poisson
    loads where over-estimating the rate costs most (against the optimum)."""
    config = mmpp_config()
    specs = (*DESIGN_BACKLOG, ORACLE)
    tasks = [
        ("mmpp", MMPP_NAME, spec, seed, None, config.horizon_s) for spec in specs for seed in DESIGN_SEEDS
    ]
    flat = iter(run_episodes(backend, tasks))
    mmpp = {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in specs}
    poisson_names = ("default", "poisson_25")
    poisson = _design_grid_poisson(args, backend, DESIGN_BACKLOG, poisson_names)
    lines = [
        "",
        "### Backlog-aware rate estimate",
        "",
        "`robust(backlog_llr=h)`: the burst-aware experts raise the rate estimate to (q - 1) / age of "
        "the oldest request when the Poisson log-likelihood ratio of that backlog against the estimate "
        "exceeds h (0: off; the default is 6). Gap to the phase oracle (MMPP) and to the optimum "
        "(Poisson).",
        "",
        "| agent | MMPP: gap vs oracle | "
        + " | ".join(f"{name}: gap vs optimal" for name in poisson_names)
        + " |",
        "|---|---|" + "---|" * len(poisson_names),
    ]
    for spec in DESIGN_BACKLOG:
        cells = [pct(gap(mmpp[spec], mmpp[ORACLE]))]
        cells += [pct(gap(poisson[name][spec], poisson[name]["optimal"]), 3) for name in poisson_names]
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    data["backlog"] = {spec: summary(rows) for spec, rows in mmpp.items()}
    return lines


def _design_grid_poisson(
    args: argparse.Namespace,
    backend: Backend,
    specs: Sequence[str],
    names: Sequence[str] = DESIGN_POISSON,
) -> dict[str, dict[str, list[dict]]]:
    """Per Poisson scenario of ``names`` and spec (and the optimum), the per-seed results on the
    design seeds."""
    tasks = [
        ("design", name, spec, seed, None, args.horizon_s)
        for name in names
        for spec in ("optimal", *specs)
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_episodes(backend, tasks))
    return {
        name: {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in ("optimal", *specs)} for name in names
    }


TAIL_GATED = "robust(tilted=true,tail_tolerance=0.02)"
TAIL_ALWAYS = "robust(tilted=true,tail_tolerance=0.02,tail_sigma=0)"
TAIL_BUDGETED = f"robust(guarded=true,tail_budget={TAIL_BUDGET:g})"
TAIL_AGENTS = ("robust", TAIL_GATED, TAIL_ALWAYS, TAIL_BUDGETED)
"""The robust scheduler without, with a burst-gated and with an always-on tail term, and with
the budgeted tail rule."""


def run_tail(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The tail rules of the portfolio (``RobustProposed(tail_tolerance=...)`` and
    ``RobustProposed(guarded=True, tail_budget=...)``) on the goal traces
    (against the timeout tuned on the first half), the stationary Poisson loads (against the
    optimum) and the MMPP (closure)."""
    tuned_dir = ROBUST_TUNED
    seeds = list(range(args.seeds))
    tuned = {
        name: tuned_for(load_scenario(f"{name}_train"), tuned_dir, backend, command) for name in TAIL_TRACES
    }
    mmpp_tuned = tuned_for(mmpp_config(), tuned_dir, backend, command)
    trace_specs = ("timeout", *TAIL_AGENTS)
    poisson_specs = ("optimal", "timeout", *TAIL_AGENTS)
    mmpp_specs = ("timeout", *TAIL_AGENTS, ORACLE)
    mmpp_seeds = list(range(args.mmpp_seeds))
    tasks = trace_tasks(TAIL_TRACES, trace_specs, seeds, tuned, args.horizon_s)
    tasks += [
        ("poisson", name, spec, seed, None, args.horizon_s)
        for name in POISSON
        for spec in poisson_specs
        for seed in seeds
    ]
    tasks += [
        ("mmpp", MMPP_NAME, spec, seed, mmpp_tuned, mmpp_config().horizon_s)
        for spec in mmpp_specs
        for seed in mmpp_seeds
    ]
    flat = iter(run_episodes(backend, tasks))
    traces = {name: {spec: [next(flat) for _ in seeds] for spec in trace_specs} for name in TAIL_TRACES}
    poisson = {name: {spec: [next(flat) for _ in seeds] for spec in poisson_specs} for name in POISSON}
    mmpp = {spec: [next(flat) for _ in mmpp_seeds] for spec in mmpp_specs}

    def cells(rows: list[dict], ref: list[dict]) -> str:
        return f"{pct(gap(rows, ref))}; p99 {ms(p99_difference(rows, ref))}"

    head = "| scenario | " + " | ".join(TAIL_AGENTS) + " |"
    rule = "|---|" + "---|" * len(TAIL_AGENTS)
    lines = [
        "## The tail term of the portfolio",
        "",
        "`robust` without a tail term (the default), with the tail term gated by the burst meter "
        f"(`{TAIL_GATED}`) and always on (`{TAIL_ALWAYS}`), and with the budgeted tail rule "
        f"(`{TAIL_BUDGETED}`: at most {100 * TAIL_BUDGET:g}% more cost than the start expert, on "
        "smooth traffic only). Goal traces: cost gap and p99 "
        "difference (ms) to the timeout tuned on the first half, on the second half, seeds "
        f"0-{seeds[-1]}, {args.horizon_s:g} s each.",
        "",
        head,
        rule,
    ]
    data: dict[str, Any] = {"traces": {}, "poisson": {}, "mmpp": {}}
    for name, res in traces.items():
        lines.append(
            f"| {name} | " + " | ".join(cells(res[spec], res["timeout"]) for spec in TAIL_AGENTS) + " |"
        )
        data["traces"][name] = {
            spec: {
                "gap_vs_timeout": gap(res[spec], res["timeout"]),
                "p99_minus_timeout_ms": p99_difference(res[spec], res["timeout"]),
            }
            for spec in TAIL_AGENTS
        }
    lines += [
        "",
        f"Stationary Poisson loads: cost gap and p99 difference (ms) to `optimal`, seeds 0-{seeds[-1]}, "
        f"{args.horizon_s:g} s each; the last column is the p99 (ms) of the optimum and of the timeout "
        "tuned per scenario (`agents/tuned/`).",
        "",
        head[:-1] + "| p99 optimal, timeout |",
        rule + "---|",
    ]
    for name, res in poisson.items():
        p99 = (summary(res["optimal"])["p99_ms"][0], summary(res["timeout"])["p99_ms"][0])
        lines.append(
            f"| {name} | "
            + " | ".join(cells(res[spec], res["optimal"]) for spec in TAIL_AGENTS)
            + f" | {p99[0]:.1f}, {p99[1]:.1f} |"
        )
        data["poisson"][name] = {
            spec: {
                "gap_vs_optimal": gap(res[spec], res["optimal"]),
                "p99_minus_optimal_ms": p99_difference(res[spec], res["optimal"]),
            }
            for spec in ("timeout", *TAIL_AGENTS)
        }
    closures = _closures(mmpp, TAIL_AGENTS)
    lines += [
        "",
        f"MMPP 50 <-> 450/s (seeds 0-{mmpp_seeds[-1]}): cost gap to the phase oracle and closure of the "
        "tuned timeout's gap (95% interval: paired bootstrap over the seeds).",
        "",
        head,
        rule,
        "| mmpp_50_450 | "
        + " | ".join(
            f"{pct(gap(mmpp[spec], mmpp[ORACLE]))}; closure {100 * closures[spec][0]:.0f}% "
            f"({100 * closures[spec][1]:.0f}-{100 * closures[spec][2]:.0f}%)"
            for spec in TAIL_AGENTS
        )
        + " |",
        "",
    ]
    data["mmpp"] = {
        spec: {
            "gap_vs_oracle": gap(mmpp[spec], mmpp[ORACLE]),
            "closure": closures[spec][0],
            "closure_interval": list(closures[spec][1:]),
        }
        for spec in TAIL_AGENTS
    }
    return lines, data
