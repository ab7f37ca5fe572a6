"""*speed* part: simulated requests and decisions per second, proposed vs timeout vs optimal, in
one process (a timing: it depends on the machine and its load)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.registry import make_agent
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate
from execution.backends import Backend


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Simulated requests and decision epochs per second (simulator + policy, one process)."""
    lines = [
        "## Speed",
        "",
        "Simulator plus policy in one process, 5 episodes of 60 s per cell (seeds 0-4), after the "
        "table is built; absolute rates depend on the machine and its load, the ratios much less.",
        "",
        "| scenario | agent | decisions/s | requests/s | relative to timeout |",
        "|---|---|---|---|---|",
    ]
    data = {}
    for scenario in ("default", "poisson_50", "bursty", "multi_gpu_4"):
        config = load_scenario(scenario)
        base = None
        for spec in ("timeout", "optimal", "proposed"):
            try:
                agent = make_agent(spec, config)
            except Exception:  # optimal does not apply to every scenario
                continue
            sim = Simulator(config, record=False)
            epochs = requests = 0
            start = time.perf_counter()
            for seed in range(5):
                simulate(config, agent, seed, sim=sim)
                epochs += sim.n_epochs
                requests += sim.n_arrived
            elapsed = time.perf_counter() - start
            rate = epochs / elapsed
            base = base or rate
            lines.append(
                f"| {scenario} | {spec} | {rate / 1e3:.0f}k | {requests / elapsed / 1e3:.0f}k "
                f"| {rate / base:.2f} |"
            )
            data[f"{scenario}/{spec}"] = {"decisions_per_s": rate, "requests_per_s": requests / elapsed}
    return [*lines, ""], data
