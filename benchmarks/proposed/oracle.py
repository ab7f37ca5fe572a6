"""*oracle* part: the bursty load regenerated with its phases known (a two-phase MMPP with the
parameters of ``bursty.yaml``): the proposed scheduler against the same table driven by the true
phase rate (an oracle) and the tuned baselines."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.proposed import Proposed
from agents.registry import make_agent
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator
from benchmarks.mmpp_phases import PhaseRateOracle, mmpp_with_phases
from benchmarks.proposed.common import pct
from evaluation.stats import paired_gap
from execution.backends import Backend


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Bursty load with known phases: how much does rate estimation leave on the table?"""
    config = load_scenario("bursty")
    agents: dict[str, Any] = {
        "timeout (tuned)": make_agent("timeout", config),
        "util_switch (tuned)": make_agent("util_switch", config),
        "proposed": Proposed(config),
        "proposed, true phase rate (oracle)": PhaseRateOracle(config),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in agents}
    seeds = list(range(args.oracle_seeds))
    for seed in seeds:
        times, starts, rates = mmpp_with_phases(config.arrivals, seed, config.horizon_s)
        for name, agent in agents.items():
            if isinstance(agent, PhaseRateOracle):
                agent.starts, agent.rates = starts, rates
            sim = Simulator(config, record=True)
            sim.reset(arrivals=iter([times, np.asarray([math.inf])]), horizon_s=config.horizon_s)
            agent.reset(sim)
            sim.run(agent)
            m = compute_metrics(sim)
            results[name].append((m.cost_per_request, m.latency_p99_ms))
    reference = results["timeout (tuned)"]
    lines = [
        "## Bursty load with known phases",
        "",
        f"The MMPP of bursty.yaml regenerated with its phase path recorded, seeds 0-{seeds[-1]}, "
        f"{config.horizon_s:g} s each; every agent meets the same arrivals. The oracle is the "
        "proposed scheduler's table looked up at the true rate of the current phase.",
        "",
        "| agent | cost/req | gap vs timeout (95% CI, seed-paired) | p99 ms |",
        "|---|---|---|---|",
    ]
    data = {}
    for name, rows in results.items():
        gap = paired_gap([c for c, _ in rows], [r for r, _ in reference])
        cost = float(np.mean([c for c, _ in rows]))
        p99 = float(np.mean([p for _, p in rows]))
        lines.append(f"| {name} | {cost:.4f} | {pct(gap, 2)} | {p99:.1f} |")
        data[name] = {"cost": cost, "gap": gap, "p99_ms": p99}
    return [*lines, ""], data
