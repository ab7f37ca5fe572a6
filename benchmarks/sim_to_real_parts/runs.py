"""Running the sim-to-real study, simulated and measured: the :class:`Cell` of each (scenario,
agent), the servers to start, and the simulations and real-server replays that fill the cells."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import make_agent
from batchenv.config import SystemConfig
from batchenv.fileio import write_atomic
from batchenv.metrics import compute_metrics, request_table
from batchenv.sim import simulate
from serving.fidelity import batch_service_check
from serving.loadgen import run_episode
from serving.process import ServerProcess

WARMUP_SEED = 10_000  # the discarded warm-up replay's arrivals (never an evaluation seed)


@dataclass
class Cell:
    """One (scenario, agent): simulated metrics per seed, measured runs, pooled latencies (ms)."""

    scenario: str
    agent: str
    spec: str
    simulated: dict[int, dict[str, Any]] = field(default_factory=dict)
    measured: list[dict[str, Any]] = field(default_factory=list)
    sim_latency_ms: list[np.ndarray] = field(default_factory=list)
    real_latency_ms: list[np.ndarray] = field(default_factory=list)
    service_check: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)


def server_groups(specs: dict[str, dict[str, str]]) -> list[tuple[str, str, list[str]]]:
    """(agent label, spec, scenarios) per server to start: one per distinct spec of an agent."""
    groups: list[tuple[str, str, list[str]]] = []
    for label, by_scenario in specs.items():
        for spec in dict.fromkeys(by_scenario.values()):
            groups.append((label, spec, [s for s, v in by_scenario.items() if v == spec]))
    return groups


def write_server_config(config: SystemConfig, folder: Path) -> Path:
    path = folder / f"{config.name}.yaml"
    write_atomic(path, config.to_yaml())
    return path


def simulate_group(
    cells: dict[tuple[str, str], Cell], scenarios: dict[str, SystemConfig], label: str, spec: str,
    names: list[str], server_config: SystemConfig, seeds: list[int],
) -> None:  # fmt: skip
    """Simulate every seed of ``names`` with the agent built for ``server_config`` (as the server
    builds it), on the same arrivals the server will get."""
    agent = make_agent(spec, server_config, tuned=False)
    for name in names:
        cell = cells[(name, label)]
        for seed in seeds:
            sim = simulate(scenarios[name], agent, seed)
            cell.simulated[seed] = compute_metrics(sim).to_dict()
            cell.sim_latency_ms.append(request_table(sim).latency_s * 1000.0)


def measure_group(
    cells: dict[tuple[str, str], Cell], scenarios: dict[str, SystemConfig], label: str, spec: str,
    names: list[str], server_config: SystemConfig, args: argparse.Namespace, folder: Path,
    loads: list[float],
) -> int:  # fmt: skip
    """Start a server for ``spec``, warm it up, replay every seed of ``names`` ``repeats`` times;
    returns the server's exit code after SIGTERM."""
    server_args = [
        "--scenario", str(write_server_config(server_config, folder)), "--agent", spec, "--no-tuned",
        "--torch-threads", "1", "--warmup-reps", "2",
    ]  # fmt: skip
    with ServerProcess(server_args, log_dir=folder) as server:
        first = scenarios[names[0]]
        asyncio.run(run_episode(server.url, first, WARMUP_SEED, min(args.warmup_s, first.horizon_s)))
        for name in names:
            cell = cells[(name, label)]
            for seed in args.seeds:
                for repeat in range(args.repeats):
                    loads.append(os.getloadavg()[0])
                    run = asyncio.run(run_episode(server.url, scenarios[name], seed, args.horizon_s))
                    metrics, client = run["metrics"], run["client"]
                    print(
                        f"  {name} {label} seed {seed} run {repeat}: mean {metrics.latency_mean_ms:.1f} ms "
                        f"(sim {cell.simulated[seed]['latency_mean_ms']:.1f}), "
                        f"p99 {metrics.latency_p99_ms:.1f} "
                        f"(sim {cell.simulated[seed]['latency_p99_ms']:.1f}); {client['n_sent']} sent, "
                        f"{client['n_unanswered']} unanswered; load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    cell.measured.append(
                        {"seed": seed, "repeat": repeat, "metrics": metrics.to_dict(), "client": client}
                    )
                    cell.real_latency_ms.append(run["latency_ms"])
                    cell.service_check.append(batch_service_check(server_config, run["answers"]))
        code = server.stop()
    return code
