"""Replayed episodes written in ``evaluate.py``'s layout: a new ``eval_<time>_<n>/`` folder with
results.json, summary.csv, per_seed.csv, report.md and the plots (:mod:`evaluation`), plus
``replay.json`` with what only a real server has (the client's view, the server's counters)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import parse_agent_spec
from batchenv.config import SystemConfig
from batchenv.fileio import json_safe, write_atomic, write_json_atomic
from batchenv.metrics import EpisodeMetrics
from evaluation.cells import Cell, collect
from evaluation.outputs import make_run_dir, per_seed_rows, summary_rows, to_csv, to_json
from evaluation.plan import Plan, ScenarioEntry
from evaluation.plots import plot_all
from evaluation.tables import to_markdown
from execution.backends import BackendSpec
from execution.episode import SCALAR_METRICS, EpisodeResult, EpisodeTask, latency_histogram
from execution.outcome import Outcome

__all__ = ["episode_result", "evaluation_cells", "write_run"]


def episode_result(
    metrics: EpisodeMetrics, latency_ms: np.ndarray, describe: str, params: dict[str, Any], source: str
) -> EpisodeResult:
    """One episode as :func:`execution.episode.run_episode_task` returns it (metrics, model mix,
    latency histogram, the agent's description)."""
    return EpisodeResult(
        metrics={name: float(getattr(metrics, name)) for name in SCALAR_METRICS},
        model_mix={name: float(share) for name, share in metrics.model_mix.items()},
        latency_histogram=latency_histogram(latency_ms),
        describe=describe,
        params=params,
        params_source=source,
    )


def evaluation_cells(
    command: str,
    title: str,
    info: dict[str, Any],
    config: SystemConfig,
    horizon_s: float,
    episodes: Sequence[dict[str, Any]],
    out: Path,
    plots: bool,
) -> tuple[Plan, dict[tuple[str, str], Cell]]:
    """The evaluation plan and cells (one agent, one scenario) of replayed ``episodes``."""
    agent = parse_agent_spec(info["agent"])
    scenario = ScenarioEntry(config.name, config)
    seeds = [e["seed"] for e in episodes]
    plan = Plan(
        agents=[agent],
        scenarios=[scenario],
        seeds=seeds,
        horizon_s=horizon_s,
        tuned=True,
        reference="none",
        backend=BackendSpec("local", 1),
        out=out,
        report=None,
        title=title,
        plots=plots,
        command=command,
    )
    tasks = [EpisodeTask(agent.text, scenario.spec, seed, horizon_s) for seed in seeds]
    results = [
        Outcome(
            value=episode_result(
                e["metrics"], e["latency_ms"], info["describe"], info["params"], info["params_source"]
            )
        )
        for e in episodes
    ]
    return plan, collect(plan, tasks, results)


def write_run(
    out: Path,
    command: str,
    info: dict[str, Any],
    config: SystemConfig,
    horizon_s: float,
    episodes: Sequence[dict[str, Any]],
    *,
    plots: bool = True,
) -> Path:
    """Write the run folder under ``out``; returns its path."""
    title = f"Measured on a real server: {info['describe']} on {config.name}"
    plan, cells = evaluation_cells(command, title, info, config, horizon_s, episodes, out, plots)
    run_dir = make_run_dir(out)
    write_atomic(run_dir / "summary.csv", to_csv(summary_rows(plan, cells)))
    write_atomic(run_dir / "per_seed.csv", to_csv(per_seed_rows(plan, cells)))
    write_atomic(run_dir / "results.json", to_json(plan, cells))
    figures = plot_all(plan, cells, run_dir) if plots else []
    write_atomic(run_dir / "report.md", to_markdown(plan, cells, "" if figures else None))
    replay = {
        "command": command,
        "server": info,
        "episodes": [
            {
                "seed": e["seed"],
                "episode": e["episode"],
                "client": e["client"],
                "server_stats": e["server_stats"],
            }
            for e in episodes
        ],
    }
    write_json_atomic(run_dir / "replay.json", json_safe(replay))
    return run_dir
