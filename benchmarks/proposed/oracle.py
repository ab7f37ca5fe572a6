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
from benchmarks.proposed.common import pct
from evaluation.stats import paired_gap
from execution.backends import Backend


def _mmpp_with_phases(seed: int, horizon_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times (s), phase start times (s) and phase rates of the two-phase MMPP of
    bursty.yaml (50 and 400 requests/s, leaving rates 0.2 and 0.5 per s, stationary start)."""
    config = load_scenario("bursty").arrivals
    rates = np.asarray(config.rates_per_s)
    leave = np.asarray([sum(row) for row in config.switch_rates_per_s])
    rng = np.random.default_rng(seed)
    stationary = (1.0 / leave) / (1.0 / leave).sum()
    phase = int(rng.choice(len(rates), p=stationary))
    t, times, starts, phase_rates = 0.0, [], [], []
    while t < horizon_s:
        end = t + rng.exponential(1.0 / leave[phase])
        times.append(np.sort(rng.uniform(t, end, rng.poisson(rates[phase] * (end - t)))))
        starts.append(t)
        phase_rates.append(rates[phase])
        t, phase = end, 1 - phase
    return np.concatenate(times), np.asarray(starts), np.asarray(phase_rates)


class _PhaseOracle:
    """The proposed scheduler fed the true phase rate instead of its estimate."""

    def __init__(self, config: Any) -> None:
        self.inner = Proposed(config, rate_estimation=False)
        self.starts = np.zeros(1)
        self.rates = np.ones(1)

    def reset(self, sim: Simulator) -> None:
        self.inner.reset(sim)

    def __call__(self, sim: Simulator) -> Any:
        index = int(np.searchsorted(self.starts, sim.now_s, side="right")) - 1
        self.inner.nominal_rate_per_s = float(self.rates[index])
        return self.inner.decide(sim)


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Bursty load with known phases: how much does rate estimation leave on the table?"""
    config = load_scenario("bursty")
    agents: dict[str, Any] = {
        "timeout (tuned)": make_agent("timeout", config),
        "util_switch (tuned)": make_agent("util_switch", config),
        "proposed": Proposed(config),
        "proposed, true phase rate (oracle)": _PhaseOracle(config),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in agents}
    seeds = list(range(args.oracle_seeds))
    for seed in seeds:
        times, starts, rates = _mmpp_with_phases(seed, config.horizon_s)
        for name, agent in agents.items():
            if isinstance(agent, _PhaseOracle):
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
