"""The robust proposed scheduler (agents/robust/) against the tuned baselines, on traffic it was
not fitted to: every number of docs/algorithm.md's "Robust to bursts" section comes from here.

Parts (``--parts``, comma-separated; default all):

- ``traces``: each packaged trace at its native rate and at 30% and 60% of LLM-3's capacity
  (``--traces all``: every trace scenario with a time split, ``batchenv.scenarios
  .trace_scenarios``). The timeout and util_switch baselines are tuned on the first half of the
  trace (``<name>_train``, seeds 1000-1003, ``agents.tuning.tune_scenario``; the tuned parameters
  are written to ``<out stem>/tuned/``) and every agent is evaluated on the second half
  (``<name>_test``, seeds 0..N-1). The scheduler has no parameter tuned per trace. Verdicts
  against the tuned timeout: *beats* (the 95% interval of the paired difference lies below 0),
  *ties* (it contains 0), *loses*.
- ``mmpp``: an MMPP alternating 50 and 450 requests/s with mean sojourns of 5 s in each phase,
  phases recorded; the rate-aware oracle knows the phase (``benchmarks/mmpp_phases.py``). The
  timeout and util_switch are tuned on the simulator's MMPP at seeds 1000-1003. *Closure* is the
  part of the tuned timeout's gap to the oracle that an agent closes.
- ``poisson``: stationary Poisson loads from 5% to 95% of capacity, against the exact optimum
  (the timeout with its tuned parameters from ``agents/tuned/``).
- ``design``: the measurements behind the design, on training data only (seeds 1000-1007, the
  first halves of the traces): where the proposed scheduler loses on the MMPP (excess cost by
  phase and time since the phase began), the latency tilt on Poisson loads and on traces, the
  burst meter's reading, the tilt and window of the burst-aware table, and the confidence z of the
  portfolio's switching test. Run only when asked for.

Every cell pairs agents by seed (common random numbers). Usage::

    python benchmarks/robust_eval.py                      # all parts, 2 processes
    python benchmarks/robust_eval.py --parts mmpp --mmpp-seeds 40
    python benchmarks/robust_eval.py --help

It writes ``docs/results/robust.md`` (tables) and ``.json`` next to it, and prints where.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from mmpp_phases import PhaseRateOracle, mmpp_with_phases  # benchmarks/, next to this script

from agents.baselines import BASELINES
from agents.proposed import Proposed
from agents.registry import make_agent
from agents.robust.burst import tilted_config
from agents.tuning import TRAINING_SEEDS, config_fingerprint, load_tuned, tune_scenario, write_tuned
from batchenv.config import ArrivalConfig, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.metrics import compute_metrics, request_table
from batchenv.scenarios import load_scenario, trace_scenarios
from batchenv.sim import Simulator, simulate
from evaluation.stats import mean_ci95

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results" / "robust.md"
PARTS = ("traces", "mmpp", "poisson", "design")
DEFAULT_PARTS = PARTS[:-1]
GOAL_TRACES = (
    "azure_trace_native",
    "azure_trace_30",
    "azure_trace_60",
    "mooncake_conv",
    "mooncake_conv_30",
    "mooncake_conv_60",
)
"""The trace scenarios of the goal: each trace at its native rate and at 30% and 60% of LLM-3's
capacity."""
AGENTS = (
    "timeout",
    "util_switch",
    "proposed",
    "robust",
    "robust(portfolio=false)",
    "robust(burst_tilt=false)",
)
TUNED_AGENTS = ("timeout", "util_switch")
MMPP = ArrivalConfig(
    process="mmpp", rate_per_s=None, rates_per_s=(50.0, 450.0), switch_rates_per_s=(0.2, 0.2)
)
MMPP_NAME = "mmpp_50_450"
ORACLE = "oracle (true phase rate)"
POISSON = ("poisson_05", "poisson_25", "default", "poisson_50", "poisson_75", "poisson_95", "high_load")
POISSON_AGENTS = ("optimal", "timeout", "proposed", "robust")


# --------------------------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------------------------


def mmpp_config() -> SystemConfig:
    """The default system with the MMPP of the ``mmpp`` part (60 s episodes)."""
    return load_scenario("default").replace(name=MMPP_NAME, arrivals=MMPP.validate("arrivals"))


def build_agent(spec: str, config: SystemConfig, tuned: dict[str, dict] | None) -> Any:
    """An agent for ``config``: the tuned baselines with the parameters of ``tuned`` (tuned on
    another scenario: the training half), the oracle, a latency-tilted table ``tilted(kappa)``
    (design part), anything else from the registry."""
    if tuned is not None and spec in TUNED_AGENTS:
        return BASELINES[spec](config, **tuned[spec]["params"])
    if spec == ORACLE:
        return PhaseRateOracle(config)
    if spec.startswith("tilted(") and spec.endswith(")"):
        return Proposed(tilted_config(config, float(spec[len("tilted(") : -1])))
    return make_agent(spec, config)


def measure(sim: Simulator, agent: Any) -> dict[str, Any]:
    """Per-episode figures: cost, latencies (ms), SLO attainment, quality, model mix, and for the
    portfolio its switches and regret against the best expert in hindsight (% of its cost)."""
    m = compute_metrics(sim)
    row: dict[str, Any] = {
        "cost": m.cost_per_request,
        "mean_ms": m.latency_mean_ms,
        "p99_ms": m.latency_p99_ms,
        "slo": m.slo_attainment,
        "quality": m.mean_quality,
        "forced": m.n_forced,
        **{f"mix_{k}": v for k, v in m.model_mix.items()},
    }
    meter = getattr(agent, "meter", None)
    if meter is not None:
        row["sigma"] = meter.sigma
    report = getattr(agent, "report", None)
    if callable(report) and len(getattr(agent, "experts", ())) > 1:
        rep = report(sim)
        row["switches"] = rep["switches"]
        row["regret_pct"] = 100.0 * rep["regret"] / rep["real_cost"] if rep["real_cost"] > 0 else 0.0
        row["followed"] = rep["followed"]
        row["best_expert"] = rep["best_expert"]
    return row


def episode(task: tuple) -> dict[str, Any]:
    """One episode: (part, scenario, agent spec, seed, tuned parameters or None, horizon s)."""
    part, scenario, spec, seed, tuned, horizon_s = task
    if part == "mmpp":
        config = mmpp_config().replace(horizon_s=horizon_s)
        agent = build_agent(spec, config, tuned)
        times, starts, rates = mmpp_with_phases(config.arrivals, seed, horizon_s)
        if isinstance(agent, PhaseRateOracle):
            agent.starts, agent.rates = starts, rates
        sim = Simulator(config, record=True)
        sim.reset(arrivals=iter([times, np.asarray([math.inf])]), horizon_s=horizon_s)
        agent.reset(sim)
        sim.run(agent)
        return {**measure(sim, agent), "phases": phase_breakdown(sim, starts, rates)}
    config = load_scenario(scenario).replace(horizon_s=horizon_s)
    agent = build_agent(spec, config, tuned)
    return measure(simulate(config, agent, seed), agent)


PHASE_EDGES_S = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, math.inf)
"""Bins of the time since the current phase began (s), for the MMPP breakdown."""


def phase_breakdown(sim: Simulator, starts: np.ndarray, rates: np.ndarray) -> list[list[float]]:
    """Summed cost (cost units) of the served requests of an MMPP episode by the phase they
    arrived in (low, high) and the time since that phase began (:data:`PHASE_EDGES_S`):
    ``[phase][bin] = [cost, quality loss, requests]``."""
    table = request_table(sim)
    quality = np.asarray(sim.config.qualities)
    loss = quality.max() - quality[table.model]
    cost = loss + sim.config.reward.w_latency_per_s * table.latency_s
    index = np.searchsorted(starts, table.arrival_s, side="right") - 1
    high = (rates[index] > rates.min()).astype(int)
    bins = np.searchsorted(PHASE_EDGES_S, table.arrival_s - starts[index], side="right") - 1
    out = [[[0.0, 0.0, 0.0] for _ in PHASE_EDGES_S[:-1]] for _ in range(2)]
    for phase in (0, 1):
        for b in range(len(PHASE_EDGES_S) - 1):
            mask = (high == phase) & (bins == b)
            out[phase][b] = [float(cost[mask].sum()), float(loss[mask].sum()), float(mask.sum())]
    return out


def run_tasks(tasks: list[tuple], jobs: int) -> list[dict[str, Any]]:
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(episode, tasks, chunksize=1))
    return [episode(t) for t in tasks]


def tuned_for(config: SystemConfig, directory: Path, jobs: int, command: str) -> dict[str, dict]:
    """The tuned timeout and util_switch of ``config`` (read back, or tuned on the training seeds
    and written to ``directory``)."""
    record = load_tuned(config, directory)
    if record is not None and all(a in record.agents for a in TUNED_AGENTS):
        return record.agents
    print(f"  tuning {', '.join(TUNED_AGENTS)} on {config.name} (seeds {list(TRAINING_SEEDS)})", flush=True)
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        agents = tune_scenario(config, TUNED_AGENTS, pool=pool, jobs=jobs)
    finally:
        if pool is not None:
            pool.shutdown()
    write_tuned(
        directory / f"{config.name}.yaml",
        {
            "scenario": config.name,
            "config_fingerprint": config_fingerprint(config),
            "command": command,
            "training_seeds": list(TRAINING_SEEDS),
            "horizon_s": config.horizon_s,
            "objective": "mean cost per request (best quality - score)",
            "agents": agents,
        },
    )
    return agents


# --------------------------------------------------------------------------------------------
# Statistics and formatting
# --------------------------------------------------------------------------------------------


def paired(rows: list[dict], ref: list[dict], key: str, relative: bool) -> tuple[float, float]:
    """Mean and 95% half-width of the seed-paired difference of ``key`` (relative to the
    reference's value when ``relative``)."""
    diffs = [
        (a[key] - r[key]) / r[key] if relative else a[key] - r[key] for a, r in zip(rows, ref, strict=True)
    ]
    return mean_ci95(diffs)


def verdict(mean_half: tuple[float, float]) -> str:
    mean, half = mean_half
    if mean + half < 0:
        return "beats"
    if mean - half > 0:
        return "loses"
    return "ties"


def pct(mean_half: tuple[float, float], digits: int = 2) -> str:
    return f"{100 * mean_half[0]:+.{digits}f}% ± {100 * mean_half[1]:.{digits}f}%"


def ms(mean_half: tuple[float, float]) -> str:
    return f"{mean_half[0]:+.1f} ± {mean_half[1]:.1f}"


def mix_text(rows: list[dict], names: Sequence[str]) -> str:
    return " / ".join(f"{100 * np.mean([r[f'mix_{n}'] for r in rows]):.0f}%" for n in names)


def summary(rows: list[dict]) -> dict[str, Any]:
    out = {key: mean_ci95([r[key] for r in rows]) for key in ("cost", "mean_ms", "p99_ms", "slo", "quality")}
    if rows and "switches" in rows[0]:
        out["switches"] = float(np.mean([r["switches"] for r in rows]))
        out["regret_pct"] = mean_ci95([r["regret_pct"] for r in rows])
    return out


def agent_table(
    results: dict[str, list[dict]], ref: str, names: Sequence[str], extra: dict[str, list[str]] | None = None
) -> list[str]:
    """Markdown table of every agent of one scenario against ``ref``."""
    head = (
        "| agent | cost/req | gap vs " + ref + " | p99 ms | p99 - " + ref + " (ms) | mean ms | SLO | quality"
    )
    head += " | " + " / ".join(names) + " | switches, regret |"
    lines = [head, "|" + "---|" * 10]
    reference = results[ref]
    for spec, rows in results.items():
        s = summary(rows)
        gap = paired(rows, reference, "cost", True)
        d99 = paired(rows, reference, "p99_ms", False)
        portfolio = f"{s['switches']:.1f}, {s['regret_pct'][0]:.2f}%" if "switches" in s else ""
        lines.append(
            f"| {spec} | {s['cost'][0]:.4f} ± {s['cost'][1]:.4f} | {pct(gap)} | {s['p99_ms'][0]:.1f} "
            f"| {ms(d99)} | {s['mean_ms'][0]:.1f} | {s['slo'][0]:.3f} | {s['quality'][0]:.4f} "
            f"| {mix_text(rows, names)} | {portfolio} |"
        )
    return lines


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def part_traces(args: argparse.Namespace, command: str) -> tuple[list[str], dict]:
    names = list(GOAL_TRACES) if args.traces == "goal" else trace_scenarios()
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    tuned = {name: tuned_for(load_scenario(f"{name}_train"), tuned_dir, args.jobs, command) for name in names}
    seeds = list(range(args.seeds))
    tasks = [
        ("traces", f"{name}_test", spec, seed, tuned[name], args.horizon_s)
        for name in names
        for spec in AGENTS
        for seed in seeds
    ]
    flat = iter(run_tasks(tasks, args.jobs))
    results = {name: {spec: [next(flat) for _ in seeds] for spec in AGENTS} for name in names}
    model_names = load_scenario("default").model_names
    lines = [
        "## Traces: tuned on the first half, evaluated on the second",
        "",
        "Every trace scenario with a time split; timeout and util_switch tuned on `<name>_train` "
        f"(seeds {TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, parameters in "
        f"`{tuned_dir.relative_to(REPO)}/`), every agent evaluated on `<name>_test`, seeds "
        f"0-{seeds[-1]}, {args.horizon_s:g} s each. Gap = paired relative cost difference to the "
        "tuned timeout; p99 difference paired by seed; verdicts: *beats* (95% interval below 0), "
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
            gap = paired(res[spec], ref, "cost", True)
            d99 = paired(res[spec], ref, "p99_ms", False)
            cells += [pct(gap), ms(d99), f"{verdict(gap)}, {verdict(d99)}"]
        label = f"**{name}**" if name in GOAL_TRACES else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        data[name] = {
            "tuned": {a: tuned[name][a]["params"] for a in TUNED_AGENTS},
            "agents": {spec: summary(rows) for spec, rows in res.items()},
            "gap_vs_timeout": {spec: paired(rows, ref, "cost", True) for spec, rows in res.items()},
            "p99_minus_timeout_ms": {spec: paired(rows, ref, "p99_ms", False) for spec, rows in res.items()},
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


def part_mmpp(args: argparse.Namespace, command: str) -> tuple[list[str], dict]:
    config = mmpp_config()
    tuned = tuned_for(config, Path(args.out).with_suffix("") / "tuned", args.jobs, command)
    specs = (*AGENTS, ORACLE)
    seeds = list(range(args.mmpp_seeds))
    tasks = [("mmpp", MMPP_NAME, spec, seed, tuned, config.horizon_s) for spec in specs for seed in seeds]
    flat = iter(run_tasks(tasks, args.jobs))
    res = {spec: [next(flat) for _ in seeds] for spec in specs}
    oracle, timeout = res[ORACLE], res["timeout"]
    gap_timeout = paired(timeout, oracle, "cost", True)[0]
    lines = [
        "## MMPP 50 <-> 450 requests/s, 5 s sojourns",
        "",
        f"Phases recorded; seeds 0-{seeds[-1]}, {config.horizon_s:g} s each; timeout and util_switch "
        f"tuned on the same MMPP (seeds {TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}). The oracle is the "
        "SMDP table at the true rate of the current phase. Closure = 1 - (agent's gap to the oracle) "
        "/ (tuned timeout's gap).",
        "",
        "| agent | cost/req | gap vs oracle | closure | gap vs timeout | p99 ms | switches, regret |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {"tuned": {a: tuned[a]["params"] for a in TUNED_AGENTS}, "agents": {}}
    for spec, rows in res.items():
        s = summary(rows)
        gap = paired(rows, oracle, "cost", True)
        closure = 1.0 - gap[0] / gap_timeout if gap_timeout > 0 else math.nan
        portfolio = f"{s['switches']:.1f}, {s['regret_pct'][0]:.2f}%" if "switches" in s else ""
        lines.append(
            f"| {spec} | {s['cost'][0]:.4f} | {pct(gap)} | {100 * closure:.0f}% "
            f"| {pct(paired(rows, timeout, 'cost', True))} | {s['p99_ms'][0]:.1f} | {portfolio} |"
        )
        data["agents"][spec] = {**s, "gap_vs_oracle": gap, "closure": closure}
    return [*lines, ""], data


def part_poisson(args: argparse.Namespace, command: str) -> tuple[list[str], dict]:
    seeds = list(range(args.seeds))
    tasks = [
        ("poisson", name, spec, seed, None, args.horizon_s)
        for name in POISSON
        for spec in POISSON_AGENTS
        for seed in seeds
    ]
    flat = iter(run_tasks(tasks, args.jobs))
    lines = [
        "## Stationary Poisson loads: gap to the exact optimum",
        "",
        f"Seeds 0-{seeds[-1]}, {args.horizon_s:g} s each; gap = paired relative cost difference to `optimal` "
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
        gaps = {spec: paired(res[spec], ref, "cost", True) for spec in POISSON_AGENTS}
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
DESIGN_AWARE = tuple(
    f"robust(portfolio=false,proposed={{tilt: {c:g}, burst_window_s: {w:g}}})"
    for c in (1.0, 2.0, 4.0)
    for w in (0.5, 1.0)
)
DESIGN_Z = tuple(f"robust(z={z:g})" for z in (1.5, 2.0, 2.5))


def _design_grid(
    args: argparse.Namespace, command: str, specs: Sequence[str]
) -> dict[str, dict[str, list[dict]]]:
    """Per design scenario and spec, the per-seed results on the training seeds (Poisson: against
    the optimum; trace train halves: against the timeout tuned there)."""
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    scenarios: list[tuple[str, dict | None, tuple[str, ...]]] = [
        (name, None, ("optimal", *specs)) for name in DESIGN_POISSON
    ]
    for name in DESIGN_TRACES:
        tuned = tuned_for(load_scenario(f"{name}_train"), tuned_dir, args.jobs, command)
        scenarios.append((f"{name}_train", tuned, ("timeout", *specs)))
    tasks = [
        ("design", name, spec, seed, tuned, args.horizon_s)
        for name, tuned, all_specs in scenarios
        for spec in all_specs
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_tasks(tasks, args.jobs))
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
            gap = paired(res[spec], ref, "cost", True)
            d99 = paired(res[spec], ref, "p99_ms", False)
            sigma = (
                f", sigma {np.mean([r['sigma'] for r in res[spec]]):.2f}" if "sigma" in res[spec][0] else ""
            )
            cells.append(f"{pct(gap)}; p99 {ms(d99)}{sigma}")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return lines


def part_design(args: argparse.Namespace, command: str) -> tuple[list[str], dict]:
    data: dict[str, Any] = {"seeds": list(DESIGN_SEEDS)}
    # 1. where the proposed scheduler loses on the MMPP
    config = mmpp_config()
    tasks = [
        ("mmpp", MMPP_NAME, spec, seed, None, config.horizon_s)
        for spec in ("proposed", ORACLE)
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_tasks(tasks, args.jobs))
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
    results = _design_grid(args, command, (*DESIGN_TILTS, *DESIGN_AWARE))
    lines += [
        "",
        "### Latency tilt and the burst-aware table",
        "",
        "Paired cost gap and p99 difference (ms) to `optimal` (Poisson) or to the timeout tuned on the "
        "same half (traces); `tilted(k)` is the SMDP table solved with the latency weight times k; the "
        "burst-aware rows give the burst meter's last reading (sigma). The default is tilt 2, window 0.5 s.",
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
    flat = iter(run_tasks(mmpp_tasks, args.jobs))
    mmpp = {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in (*DESIGN_Z, ORACLE)}
    poisson = _design_grid_poisson(args, DESIGN_Z)
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
        cells = [pct(paired(mmpp[spec], mmpp[ORACLE], "cost", True))]
        cells += [
            pct(paired(poisson[name][spec], poisson[name]["optimal"], "cost", True), 3)
            for name in DESIGN_POISSON
        ]
        cells.append(f"{np.mean([r['switches'] for r in mmpp[spec]]):.1f}")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    data["z"] = {spec: summary(rows) for spec, rows in mmpp.items()}
    return [*lines, ""], data


def _design_grid_poisson(args: argparse.Namespace, specs: Sequence[str]) -> dict[str, dict[str, list[dict]]]:
    tasks = [
        ("design", name, spec, seed, None, args.horizon_s)
        for name in DESIGN_POISSON
        for spec in ("optimal", *specs)
        for seed in DESIGN_SEEDS
    ]
    flat = iter(run_tasks(tasks, args.jobs))
    return {
        name: {spec: [next(flat) for _ in DESIGN_SEEDS] for spec in ("optimal", *specs)}
        for name in DESIGN_POISSON
    }


PART_FUNCTIONS = {"traces": part_traces, "mmpp": part_mmpp, "poisson": part_poisson, "design": part_design}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/robust_eval.py",
        description="The robust proposed scheduler against tuned baselines on traces (tuned on the "
        "first half, evaluated on the second), an MMPP with a phase oracle and Poisson loads "
        "(see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--parts",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated, among {','.join(PARTS)} (design only when asked for)",
    )
    parser.add_argument(
        "--traces",
        choices=("goal", "all"),
        default="goal",
        help="goal: each trace at its native rate, 30%% and 60%% of capacity; all: every trace scenario",
    )
    parser.add_argument("--seeds", type=int, default=10, help="evaluation seeds 0..N-1 (traces, poisson)")
    parser.add_argument("--mmpp-seeds", type=int, default=20, help="evaluation seeds 0..N-1 of the mmpp part")
    parser.add_argument(
        "--horizon-s", type=float, default=60.0, help="episode length (s), traces and poisson"
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (results do not depend on it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write (and .json)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown part {unknown[0]!r}; parts: {','.join(PARTS)}")
    if min(args.seeds, args.mmpp_seeds) < 2:
        parser.error("--seeds and --mmpp-seeds must be >= 2")
    if not args.horizon_s > 0:
        parser.error("--horizon-s must be > 0")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    command = "python benchmarks/robust_eval.py" + (" " + shlex.join(argv) if argv else "")
    lines = [
        "# Robust proposed scheduler: traces, bursts and Poisson loads",
        "",
        f'Produced by `{command}` (docs/algorithm.md, "Robust to bursts", explains every table).',
        "",
    ]
    data: dict[str, Any] = {"command": command}
    for part in parts:
        start = time.perf_counter()
        print(f"part {part} ...", flush=True)
        part_lines, data[part] = PART_FUNCTIONS[part](args, command)
        lines += part_lines
        print(f"part {part} done in {time.perf_counter() - start:.0f} s", flush=True)
    out = Path(args.out)
    write_atomic(out, "\n".join(lines) + "\n")
    write_atomic(out.with_suffix(".json"), json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
