"""Every agent on every trace scenario (``python benchmarks/trace_results.py``): tuned on the
first half of each trace, evaluated on the second, with the gap to the tuned timeout and to the
hindsight bound of each episode.

The baselines with parameters (timeout, util_switch: :func:`benchmarks.robust.common.tuned_for`,
the same files as ``docs/results/robust.md``; aimd: :func:`tuned_aimd`) are tuned on
``<name>_train`` (seeds 1000-1003); every agent runs on ``<name>_test`` at seeds 0..N-1. An agent
that does not apply to a scenario (``optimal`` needs Poisson arrivals; a checkpoint must fit the
system) is reported as not applicable with the registry's reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import AgentSpecError
from agents.tuned_params import load_tuned
from batchenv.config import SystemConfig
from batchenv.seeds import TRAINING_SEEDS
from benchmarks.robust.common import REPO, episode, gap, p99_difference, summary, verdict, write_tuned_record
from evaluation.stats import paired_gap
from evaluation.tuning import grid_search
from execution.backends import Backend
from execution.hindsight_task import BoundTask, run_bound_task
from execution.run import run_tasks

__all__ = ["AGENTS", "CHECKPOINTS", "agent_label", "hindsight", "run_cells", "tuned_aimd"]

CHECKPOINTS = {
    "ppo_default": REPO / "checkpoints" / "ppo_default.zip",
    "dqn_default": REPO / "checkpoints" / "dqn_default.zip",
    "ppo_default_mixture": REPO / "checkpoints" / "ppo_default_mixture.zip",
    "dqn_default_mixture": REPO / "checkpoints" / "dqn_default_mixture.zip",
}
"""The shipped learned agents, by label."""
AGENTS = (
    "greedy",
    "static",
    "timeout",
    "util_switch",
    "aimd",
    "proposed",
    "robust",
    *CHECKPOINTS,
    "optimal",
)
"""Every agent of the table, by label."""
AIMD_BATCH_SLO_MS = (25.0, 50.0, 100.0, 150.0, 250.0)
"""Grid of aimd's ``batch_slo_ms`` (ms), crossed with its model."""


def agent_label(spec: str) -> str:
    """The spec an episode builds for a table label (checkpoint labels become their path)."""
    return str(CHECKPOINTS[spec]) if spec in CHECKPOINTS else spec


def tuned_aimd(config: SystemConfig, directory: Path, backend: Backend, command: str) -> dict[str, Any]:
    """aimd tuned on ``config`` over model x :data:`AIMD_BATCH_SLO_MS` on the training seeds
    (read back from ``directory``, or tuned and written there)."""
    record = load_tuned(config, directory)
    if record is not None and "aimd" in record.agents:
        return record.agents["aimd"]
    print(f"  tuning aimd on {config.name} (seeds {list(TRAINING_SEEDS)})", flush=True)
    grid = [{"model": m, "batch_slo_ms": t} for m in config.model_names for t in AIMD_BATCH_SLO_MS]
    best, cost, _ = grid_search(config, "aimd", grid, TRAINING_SEEDS, backend)
    entry = {"params": dict(best), "cost_per_request": round(cost, 6), "candidates": len(grid)}
    write_tuned_record(directory, config, command, {"aimd": entry})
    return entry


def cell_episode(task: tuple) -> dict[str, Any]:
    """:func:`benchmarks.robust.common.episode`, or ``{"not_applicable": reason}`` when the
    agent does not apply to the scenario."""
    try:
        return episode(task)
    except AgentSpecError as exc:
        return {"not_applicable": str(exc)}


def run_cells(backend: Backend, tasks: list[tuple]) -> list[dict[str, Any]]:
    """:func:`cell_episode` of every task on ``backend``, in task order."""
    return [outcome.unwrap() for outcome in run_tasks(backend, cell_episode, [(task,) for task in tasks])]


def hindsight(backend: Backend, scenarios: Sequence[str], seeds: Sequence[int], horizon_s: float) -> dict:
    """Hindsight bound per (scenario, seed): ``{scenario: [result, ...]}`` in seed order
    (:class:`execution.hindsight_task.BoundResult`)."""
    tasks = [(BoundTask(name, seed, horizon_s),) for name in scenarios for seed in seeds]
    flat = iter(outcome.unwrap() for outcome in run_tasks(backend, run_bound_task, tasks))
    return {name: [next(flat) for _ in seeds] for name in scenarios}


def scenario_summary(rows: dict[str, list[dict]], bounds: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per agent of one scenario: the summary (cost, latencies, SLO, quality: mean and 95%
    half-width), the gap and p99 difference to the tuned timeout with verdicts, and the gap to
    the hindsight lower bound (NaN where it does not apply)."""
    ref = rows["timeout"]
    lower = [b.lower_cost_per_request if b.status == "ok" else math.nan for b in bounds]
    out: dict[str, dict[str, Any]] = {}
    for spec, episodes in rows.items():
        if any("not_applicable" in e for e in episodes):
            out[spec] = {
                "not_applicable": next(e["not_applicable"] for e in episodes if "not_applicable" in e)
            }
            continue
        cost_gap = gap(episodes, ref)
        d99 = p99_difference(episodes, ref)
        out[spec] = {
            **summary(episodes),
            "gap_vs_timeout": cost_gap,
            "p99_minus_timeout_ms": d99,
            "verdict_cost": verdict(cost_gap),
            "verdict_p99": verdict(d99),
            "gap_vs_hindsight": paired_gap([e["cost"] for e in episodes], lower),
            "mix": {
                key[4:]: float(np.mean([e[key] for e in episodes]))
                for key in episodes[0]
                if key.startswith("mix_")
            },
        }
    return out
