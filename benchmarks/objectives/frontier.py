"""Quality against latency, per agent family (``python benchmarks/frontiers.py``): instead of one
point per agent at the latency weight 1, the whole trade-off each family can reach.

Per scenario, on the evaluation seeds, every point is (mean latency, p99 latency, mean quality):

- the timeout family: every candidate of the tuning grid (:func:`evaluation.tuning.timeout_grid`),
  episodes memoised in :class:`evaluation.candidates.CandidateRuns`;
- the optimum (one worker, Poisson) and the proposed scheduler, each solved for a sweep of latency
  weights ``w`` (per second, log-spaced from 0.1 to 10): the system's ``reward.w_latency_per_s``
  set to w;
- the learned agents at the weight they were trained for (the checkpoint's own config).

A point is *on the frontier* of a latency measure when no other point of any family has at most
its latency and at least its quality, one of them strictly (means over the seeds; points whose
intervals overlap can trade places with other seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.checkpoint import load_checkpoint
from agents.slo_target import scale_grid
from batchenv.config import SystemConfig
from batchenv.scenarios import scenario_config
from benchmarks.objectives.common import AgentRun, Cell, run_cells, tuning_runs
from evaluation.stats import mean_ci95
from evaluation.tuning import timeout_grid
from execution.backends import Backend

__all__ = ["DEFAULT_WEIGHTS", "LATENCIES", "frontier_flags", "run_study", "training_weight"]

DEFAULT_WEIGHTS: tuple[float, ...] = scale_grid(0.1, 10.0, 4)
"""Latency weights (per second) of the optimum's and the proposed scheduler's sweeps: 0.1 to 10,
four per decade."""

LATENCIES = ("latency_mean_ms", "latency_p99_ms")


def training_weight(path: Path) -> float:
    """The latency weight (per second) a checkpoint was trained with."""
    return load_checkpoint(path).config.reward.w_latency_per_s


def weighted(config: SystemConfig, weight: float) -> SystemConfig:
    """``config`` with ``reward.w_latency_per_s = weight``."""
    return config.replace(reward={"w_latency_per_s": weight})


def _point(run: AgentRun) -> dict[str, Any]:
    return {
        "latency_mean_ms": run.metric("latency_mean_ms")[0],
        "latency_p99_ms": run.metric("latency_p99_ms")[0],
        "mean_quality": run.metric("mean_quality")[0],
        "mean_quality_ci95": run.metric("mean_quality")[1],
    }


def frontier_flags(points: Sequence[dict[str, Any]], latency: str) -> list[bool]:
    """Per point, whether it is on the frontier of (``latency`` lower, ``mean_quality`` higher)."""
    flags = []
    for p in points:
        lat, q = p[latency], p["mean_quality"]
        if not (math.isfinite(lat) and math.isfinite(q)):
            flags.append(False)
            continue
        dominated = any(
            o is not p
            and o[latency] <= lat
            and o["mean_quality"] >= q
            and (o[latency] < lat or o["mean_quality"] > q)
            for o in points
        )
        flags.append(not dominated)
    return flags


def run_study(
    scenarios: Sequence[str],
    seeds: Sequence[int],
    weights: Sequence[float],
    checkpoints: Sequence[Path],
    backend: Backend,
    horizon_s: float | None = None,
    log: Any = print,
    console: Any = None,
) -> dict[str, Any]:
    """Every point of every family on ``scenarios``; returns JSON-ready data per scenario: the
    points (family, label, parameter, latencies, quality) and their frontier flags.
    ``horizon_s``: simulated seconds of every episode (None: each scenario's)."""
    trained = {str(path): training_weight(path) for path in checkpoints}
    cells = []
    for name in scenarios:
        config = scenario_config(name, horizon_s)
        for w in weights:
            for family in ("optimal", "proposed"):
                cells.append(Cell((name, family, w), family, weighted(config, w), tuple(seeds)))
        for path, w in trained.items():
            cells.append(Cell((name, "rl", path), path, weighted(config, w), tuple(seeds)))
    log(f"{len(cells)} cells of the optimum, the proposed scheduler and the learned agents")
    results = run_cells(backend, cells, console)
    out: dict[str, Any] = {}
    for name in scenarios:
        config = scenario_config(name, horizon_s)
        log(f"{name}: the timeout grid on seeds {seeds[0]}-{seeds[-1]}")
        runs = tuning_runs(config, backend, seeds)
        grid = timeout_grid(config)
        points: list[dict[str, Any]] = []
        for params, episodes in zip(grid, runs.episodes("timeout", grid), strict=True):
            points.append(
                {
                    "family": "timeout",
                    "label": f"{params['model']} B={params['preferred_batch_size']} "
                    f"T={params['max_queue_delay_ms']:g}",
                    "param": params,
                    "latency_mean_ms": mean_ci95([e.latency_mean_ms for e in episodes])[0],
                    "latency_p99_ms": mean_ci95([e.latency_p99_ms for e in episodes])[0],
                    "mean_quality": mean_ci95([e.terms.mean_quality(config.qualities) for e in episodes])[0],
                    "mean_quality_ci95": math.nan,
                }
            )
        for w in weights:
            for family in ("optimal", "proposed"):
                run = results[(name, family, w)]
                if isinstance(run, AgentRun):
                    points.append({"family": family, "label": f"w={w:.3g}", "param": w, **_point(run)})
        for path, w in trained.items():
            run = results[(name, "rl", path)]
            if isinstance(run, AgentRun):
                points.append({"family": Path(path).stem, "label": f"w={w:g}", "param": w, **_point(run)})
        for latency in LATENCIES:
            for point, flag in zip(points, frontier_flags(points, latency), strict=True):
                point[f"frontier_{latency}"] = flag
        out[name] = {"points": points, "families": _families(points)}
    return {"scenarios": out, "trained_weights": trained}


def _families(points: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family, the parameters of its points on each frontier."""
    families: dict[str, dict[str, Any]] = {}
    for point in points:
        entry = families.setdefault(point["family"], {"points": 0, **{lat: [] for lat in LATENCIES}})
        entry["points"] += 1
        for latency in LATENCIES:
            if point[f"frontier_{latency}"]:
                entry[latency].append(point["label"])
    return families
