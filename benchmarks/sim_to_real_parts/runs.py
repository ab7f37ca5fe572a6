"""Running the sim-to-real study, simulated and measured: the :class:`Cell` of each (scenario,
agent), the servers to start, and the simulations and real-server replays that fill the cells.

One server is started per distinct spec of an agent, configured with the first scenario it serves
(:func:`server_groups`): the other scenarios of the group are replayed against that server, so a
scheduler that reads the configured rate has the first scenario's in every scenario (proposed's
nominal rate, unused while it estimates the rate, its default). The simulator builds the agent for
the same config, so both sides see the same scheduler. A scheduler that needs each scenario's
true rate (``optimal``) is refused by the command line for that reason.

Each measured run is replayed by a load generator in a process of its own
(:func:`serving.replay_process.run_episode_in_process`), and simulated once more on the arrival
times the server recorded (its answered and rejected requests), which separates what the replay
did to the arrivals from what the simulator gets wrong about the server.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import make_agent
from batchenv.config import SystemConfig
from batchenv.fileio import write_atomic
from batchenv.metrics import compute_metrics, request_table
from batchenv.sim import Simulator, simulate
from benchmarks.sim_to_real_parts.checks import run_is_valid
from serving.fidelity import batch_service_check
from serving.process import ServerProcess
from serving.replay_process import run_episode_in_process

WARMUP_SEED = 10_000  # the discarded warm-up replay's arrivals (never an evaluation seed)

SERVER_LOG_LINES = 20
"""Lines of a server's log printed when it exits with an error (its work folder is removed)."""


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
    server_config: str = ""


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
        cell.server_config = server_config.name
        for seed in seeds:
            sim = simulate(scenarios[name], agent, seed)
            cell.simulated[seed] = compute_metrics(sim).to_dict()
            cell.sim_latency_ms.append(request_table(sim).latency_s * 1000.0)


def simulate_recorded(
    config: SystemConfig, agent: Any, arrivals_s: np.ndarray, horizon_s: float, rate_per_s: float
) -> dict[str, Any]:
    """The metrics of ``agent`` simulated on ``arrivals_s`` (the arrival times a server recorded,
    s from its episode's start) up to ``horizon_s``. The episode's rate the scheduler may read at
    its reset is ``rate_per_s``, the server's configured rate (as on the server)."""
    sim = Simulator(config)
    inside = np.sort(np.asarray(arrivals_s, dtype=float))
    inside = inside[(inside >= 0.0) & (inside < horizon_s)]
    sim.reset(arrivals=iter([inside, np.array([math.inf])]), horizon_s=horizon_s)
    sim.episode_rate_per_s = rate_per_s
    reset = getattr(agent, "reset", None)
    if callable(reset):
        reset(sim)
    sim.run(agent)
    return compute_metrics(sim).to_dict()


def measure_group(
    cells: dict[tuple[str, str], Cell], scenarios: dict[str, SystemConfig], label: str, spec: str,
    names: list[str], server_config: SystemConfig, args: argparse.Namespace, folder: Path,
    loads: list[float],
) -> int:  # fmt: skip
    """Start a server for ``spec``, warm it up, replay every seed of ``names`` ``repeats`` times
    (each by a load generator in its own process), simulate each run again on the arrivals the
    server recorded; returns the server's exit code after SIGTERM."""
    server_args = [
        "--scenario", str(write_server_config(server_config, folder)), "--agent", spec, "--no-tuned",
        "--torch-threads", "1", "--warmup-reps", "2",
    ]  # fmt: skip
    agent = make_agent(spec, server_config, tuned=False)
    rate = server_config.arrivals.mean_rate_per_s
    with ServerProcess(server_args, log_dir=folder) as server:
        first = scenarios[names[0]]
        run_episode_in_process(server.url, first, WARMUP_SEED, min(args.warmup_s, first.horizon_s))
        for name in names:
            cell = cells[(name, label)]
            for seed in args.seeds:
                for repeat in range(args.repeats):
                    load = os.getloadavg()[0]
                    loads.append(load)
                    run = run_episode_in_process(server.url, scenarios[name], seed, args.horizon_s)
                    metrics, client = run["metrics"], run["client"]
                    recorded = simulate_recorded(
                        scenarios[name], agent, run["recorded_arrivals_s"], args.horizon_s, rate
                    )
                    entry = {
                        "seed": seed,
                        "repeat": repeat,
                        "load_average_1min": load,
                        "metrics": metrics.to_dict(),
                        "client": client,
                        "server_stats": run["server_stats"],
                        "simulated_recorded": recorded,
                        "n_recorded_arrivals": len(run["recorded_arrivals_s"]),
                    }
                    gate = (
                        "valid"
                        if run_is_valid(entry, args.max_send_lag_ms)
                        else f"INVALID: above {args.max_send_lag_ms:g} ms"
                    )
                    stats = run["server_stats"]
                    print(
                        f"  {name} {label} seed {seed} run {repeat}: mean {metrics.latency_mean_ms:.1f} ms "
                        f"(sim {cell.simulated[seed]['latency_mean_ms']:.1f}, on the recorded arrivals "
                        f"{recorded['latency_mean_ms']:.1f}), p99 {metrics.latency_p99_ms:.1f} "
                        f"(sim {cell.simulated[seed]['latency_p99_ms']:.1f}, recorded "
                        f"{recorded['latency_p99_ms']:.1f}); {client['n_sent']} sent, "
                        f"{client['n_unanswered']} unanswered; "
                        f"send lag p99 {client['send_lag_ms_p99']:.2f} ms ({gate}); "
                        f"scheduler errors {stats['n_scheduler_errors']}, failed {stats['n_failed']}; "
                        f"load average {load:.2f}",
                        flush=True,
                    )
                    cell.measured.append(entry)
                    cell.real_latency_ms.append(run["latency_ms"])
                    cell.service_check.append(batch_service_check(server_config, run["answers"]))
        code = server.stop()
        if code != 0:
            tail = server.output().strip().splitlines()[-SERVER_LOG_LINES:]
            print(f"the server for {label} ({spec}) exited with {code}; its log ends:", *tail, sep="\n  ")
    return code
