"""Episodes of an evaluation: one :class:`Task` per (agent, scenario, seed), run in worker
processes. Each episode is a pure function of its task, so the results do not depend on the
number of processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from agents.registry import AgentSpecError, NotApplicableError, make_agent, run_episode
from batchenv.metrics import EpisodeMetrics, compute_metrics, request_table
from evaluation.plan import Plan, scenario_config

__all__ = ["LATENCY_EDGES_MS", "SCALAR_METRICS", "Task", "make_tasks", "run_task", "run_tasks"]

LATENCY_EDGES_MS = np.logspace(-1, 6, 701)
"""Bins of the pooled latency histograms (ms): 0.1 ms to 1000 s, 100 per decade."""

SCALAR_METRICS = tuple(
    f.name for f in fields(EpisodeMetrics) if f.name not in ("utilisation_per_worker", "model_mix")
)
"""Per-episode numbers summarised over seeds (besides the model mix and the gap)."""


@dataclass(frozen=True)
class Task:
    """One episode: picklable, and everything its result depends on."""

    agent: str
    scenario: str
    seed: int
    horizon_s: float | None
    tuned: bool


def make_tasks(plan: Plan) -> list[Task]:
    """The episodes of ``plan``, by scenario, then agent, then seed."""
    return [
        Task(agent.text, scenario.spec, seed, plan.horizon_s, plan.tuned)
        for scenario in plan.scenarios
        for agent in plan.agents
        for seed in plan.seeds
    ]


_AGENTS: dict[tuple[str, str, float | None, bool], Any] = {}  # per-process cache of built agents


def run_task(task: Task) -> dict[str, Any]:
    """Run one episode; returns its metrics, its latency histogram and the agent's description,
    or ``{"not_applicable": why}`` / ``{"error": why}``."""
    key = (task.agent, task.scenario, task.horizon_s, task.tuned)
    config = scenario_config(task.scenario, task.horizon_s)
    try:
        if key not in _AGENTS:
            _AGENTS[key] = make_agent(task.agent, config, tuned=task.tuned)
        agent = _AGENTS[key]
    except NotApplicableError as exc:
        return {"not_applicable": str(exc)}
    except AgentSpecError as exc:
        return {"error": str(exc)}
    sim = run_episode(agent, config, task.seed, record=True)
    metrics = compute_metrics(sim)
    values = {name: float(getattr(metrics, name)) for name in SCALAR_METRICS}
    mix = {name: float(share) for name, share in metrics.model_mix.items()}
    latency_ms = request_table(sim).latency_s * 1000.0
    histogram, _ = np.histogram(
        np.clip(latency_ms, LATENCY_EDGES_MS[0], LATENCY_EDGES_MS[-1]), LATENCY_EDGES_MS
    )
    return {
        "metrics": values,
        "model_mix": mix,
        "latency_histogram": histogram.astype(np.int64),
        "describe": agent.describe(),
        "params": agent.params(),
        "params_source": getattr(agent, "params_source", "defaults"),
    }


def run_tasks(tasks: list[Task], jobs: int, console: Any) -> list[dict[str, Any]]:
    """Results of every task, in task order, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    results: list[dict[str, Any] | None] = [None] * len(tasks)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("episodes", total=len(tasks))
        if jobs == 1:
            for i, task in enumerate(tasks):
                results[i] = run_task(task)
                progress.advance(bar)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    progress.advance(bar)
    return [r for r in results if r is not None]
