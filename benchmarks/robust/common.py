"""What the parts of the robust scheduler's benchmarks share: the agents (tuned baselines built
from another scenario's tuned file, the phase oracle, latency-tilted tables), one episode as a
task on the execution layer, the tuned baselines of a training scenario, the statistics and the
formatting."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import BASELINES
from agents.proposed import Proposed, latency_weight_scaled
from agents.registry import make_agent
from agents.robust.burst import BurstAwareProposed
from agents.tuned_params import config_fingerprint, load_tuned, write_tuned
from batchenv.config import ArrivalConfig, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.metrics import compute_metrics, request_table
from batchenv.scenarios import load_scenario
from batchenv.seeds import TRAINING_SEEDS
from batchenv.sim import Simulator, simulate
from benchmarks.mmpp_phases import PhaseRateOracle, mmpp_with_phases
from benchmarks.robust.surrogate import SURROGATE_AT, surrogate_process
from evaluation.stats import mean_ci95, paired_gap
from evaluation.tuning import tune_scenario
from execution.backends import Backend
from execution.run import run_tasks

REPO = Path(__file__).resolve().parents[2]
TUNED_AGENTS = ("timeout", "util_switch")
MMPP = ArrivalConfig(
    process="mmpp", rate_per_s=None, rates_per_s=(50.0, 450.0), switch_rates_per_s=(0.2, 0.2)
)
MMPP_NAME = "mmpp_50_450"
ORACLE = "oracle (true phase rate)"


def mmpp_config() -> SystemConfig:
    """The default system with the MMPP of the ``mmpp`` part (60 s episodes)."""
    return load_scenario("default").replace(name=MMPP_NAME, arrivals=MMPP.validate("arrivals"))


def build_agent(spec: str, config: SystemConfig, tuned: dict[str, dict] | None) -> Any:
    """An agent for ``config``: the baselines ``tuned`` names, with its parameters (tuned on
    another scenario: the training half), the oracle, a latency-tilted table ``tilted(kappa)``
    and a burst-aware table ``aware(tilt, window_s)`` (design part), anything else from the
    registry."""
    if tuned is not None and spec in tuned:
        return BASELINES[spec](config, **tuned[spec]["params"])
    if spec == ORACLE:
        return PhaseRateOracle(config)
    if spec.startswith("tilted(") and spec.endswith(")"):
        return Proposed(latency_weight_scaled(config, float(spec[len("tilted(") : -1])))
    if spec.startswith("aware(") and spec.endswith(")"):
        tilt, window = (float(x) for x in spec[len("aware(") : -1].split(","))
        return BurstAwareProposed(config, tilt=tilt, burst_window_s=window)
    return make_agent(spec, config)


POISSON_AT = "poisson@"
"""Scenario name prefix of the default system at another Poisson rate: ``poisson@173`` is
Poisson at 173 requests/s (design part)."""


def design_scenario(name: str) -> SystemConfig:
    """The scenario ``name``, or for ``poisson@<rate>`` the default system with Poisson arrivals
    at that rate (requests/s)."""
    if not name.startswith(POISSON_AT):
        return load_scenario(name)
    rate = float(name[len(POISSON_AT) :])
    arrivals = ArrivalConfig(process="poisson", rate_per_s=rate).validate("arrivals")
    return load_scenario("default").replace(name=name, arrivals=arrivals)


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


def _run_on(config: SystemConfig, agent: Any, arrivals: Any, horizon_s: float) -> Simulator:
    """One episode of ``agent`` on explicit ``arrivals`` (an iterator of sorted time chunks, s)."""
    sim = Simulator(config, record=True)
    sim.reset(arrivals=arrivals, horizon_s=horizon_s)
    agent.reset(sim)
    sim.run(agent)
    return sim


def episode(task: tuple) -> dict[str, Any]:
    """One episode: (part, scenario, agent spec, seed, tuned parameters or None, horizon s).
    A scenario named ``surrogate@<half>#<k>`` replays a Poisson surrogate of a trace half
    (:mod:`benchmarks.robust.surrogate`), its start drawn from ``seed``."""
    part, scenario, spec, seed, tuned, horizon_s = task
    if part == "mmpp":
        config = mmpp_config().replace(horizon_s=horizon_s)
        agent = build_agent(spec, config, tuned)
        times, starts, rates = mmpp_with_phases(config.arrivals, seed, horizon_s)
        if isinstance(agent, PhaseRateOracle):
            agent.starts, agent.rates = starts, rates
        sim = _run_on(config, agent, iter([times, np.asarray([math.inf])]), horizon_s)
        return {**measure(sim, agent), "phases": phase_breakdown(sim, starts, rates)}
    if scenario.startswith(SURROGATE_AT):
        config, process = surrogate_process(scenario)
        config = config.replace(horizon_s=horizon_s)
        agent = build_agent(spec, config, tuned)
        sim = _run_on(config, agent, process.stream(np.random.default_rng(seed)), horizon_s)
        return measure(sim, agent)
    config = design_scenario(scenario).replace(horizon_s=horizon_s)
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


def run_episodes(backend: Backend, tasks: list[tuple]) -> list[dict[str, Any]]:
    """:func:`episode` of every task on ``backend``, in task order."""
    return [outcome.unwrap() for outcome in run_tasks(backend, episode, [(task,) for task in tasks])]


def tuned_for(config: SystemConfig, directory: Path, backend: Backend, command: str) -> dict[str, dict]:
    """The tuned timeout and util_switch of ``config`` (read back, or tuned on the training seeds
    and written to ``directory``)."""
    record = load_tuned(config, directory)
    if record is not None and all(a in record.agents for a in TUNED_AGENTS):
        return record.agents
    print(f"  tuning {', '.join(TUNED_AGENTS)} on {config.name} (seeds {list(TRAINING_SEEDS)})", flush=True)
    agents = tune_scenario(config, TUNED_AGENTS, backend=backend)
    write_tuned_record(directory, config, command, agents)
    return agents


def write_tuned_record(directory: Path, config: SystemConfig, command: str, agents: dict[str, dict]) -> None:
    """Write ``directory/<config name>.yaml``: the agents' entries tuned on ``config`` at the
    training seeds by ``command`` (read back by :func:`agents.tuned_params.load_tuned`)."""
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


def write_results(out: Path, lines: Sequence[str], data: dict[str, Any]) -> None:
    """Write the Markdown ``lines`` to ``out`` and ``data`` to ``out`` with suffix .json."""
    write_atomic(out, "\n".join(lines) + "\n")
    write_atomic(out.with_suffix(".json"), json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")


def trace_tasks(
    names: Sequence[str], specs: Sequence[str], seeds: Sequence[int], tuned: dict[str, dict], horizon_s: float
) -> list[tuple]:
    """Episode tasks of every spec on the second half (``<name>_test``) of every trace ``name``,
    with the baselines tuned on its first half (``tuned[name]``): scenario, spec, then seed order."""
    return [
        ("traces", f"{name}_test", spec, seed, tuned[name], horizon_s)
        for name in names
        for spec in specs
        for seed in seeds
    ]


def gap(rows: Sequence[dict], ref: Sequence[dict]) -> tuple[float, float]:
    """The gap (:func:`evaluation.stats.paired_gap`) of the rows' costs to the reference rows',
    paired by seed: relative difference of mean costs and its 95% confidence interval."""
    return paired_gap([r["cost"] for r in rows], [r["cost"] for r in ref])


def p99_difference(rows: Sequence[dict], ref: Sequence[dict]) -> tuple[float, float]:
    """Mean and 95% half-width of the seed-paired difference of the p99 latencies (ms)."""
    return mean_ci95([a["p99_ms"] - r["p99_ms"] for a, r in zip(rows, ref, strict=True)])


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
        cost_gap = gap(rows, reference)
        d99 = p99_difference(rows, reference)
        portfolio = f"{s['switches']:.1f}, {s['regret_pct'][0]:.2f}%" if "switches" in s else ""
        lines.append(
            f"| {spec} | {s['cost'][0]:.4f} ± {s['cost'][1]:.4f} | {pct(cost_gap)} | {s['p99_ms'][0]:.1f} "
            f"| {ms(d99)} | {s['mean_ms'][0]:.1f} | {s['slo'][0]:.3f} | {s['quality'][0]:.4f} "
            f"| {mix_text(rows, names)} | {portfolio} |"
        )
    return lines
