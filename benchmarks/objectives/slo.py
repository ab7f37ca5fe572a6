"""The latency-target study (``python benchmarks/slo_targets.py``): does the SLO-targeted
scheduler meet every feasible target, with what quality, against baselines tuned to meet it?

Per scenario and target:

1. ``timeout`` and ``util_switch`` are tuned to meet the target on the training seeds (the best
   mean quality among the candidates that meet it with the margin of the SLO-targeted
   scheduler, :class:`evaluation.tuning.TargetObjective`), on the scenario itself for the suite
   and on the ``_train`` half for a trace (evaluated on the ``_test`` half).
2. On the evaluation seeds: ``slo_target`` (the proposed scheduler at the smallest latency weight
   that meets the target, :mod:`agents.slo_target`), ``slo_target(inner=optimal)`` where the
   optimum applies (one worker, Poisson), the two tuned baselines, and the cost-optimal
   ``proposed`` (latency weight 1) for reference.
3. A target is *met* by an agent when its mean attainment over the seeds is at least the
   target's fraction (:meth:`evaluation.cells.Cell.target_met`'s rule). It is *feasible* when
   at least one evaluated agent meets it; when none does, the best attainment of any policy we
   ran is reported, with the most latency-averse candidate of the whole timeout grid on the
   training seeds (a target none of them meets is infeasible for every policy we tried; that is
   evidence, not a proof over all policies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from batchenv.config import LatencyTarget, SystemConfig
from batchenv.scenarios import scenario_config
from benchmarks.objectives.common import (
    BOUNDS_MS,
    AgentRun,
    Cell,
    run_cells,
    tuning_runs,
)
from evaluation.stats import mean_ci95
from evaluation.tuning import TargetObjective, timeout_grid, tune_for_objective
from execution.backends import Backend

__all__ = ["AGENTS", "DEFAULT_TARGETS", "LABELS", "run_study"]

DEFAULT_TARGETS = ("p99<=50ms", "p99<=100ms", "99%")
"""A tight, a medium and a loose target (the last: 99% of the requests within ``slo_ms``)."""

AGENTS = ("slo_target", "slo_target(inner=optimal)", "timeout", "util_switch", "proposed")
LABELS = {
    "slo_target": "SLO-targeted proposed",
    "slo_target(inner=optimal)": "SLO-targeted optimum",
    "timeout": "timeout (tuned to the target)",
    "util_switch": "util_switch (tuned to the target)",
    "proposed": "proposed (w = 1, no target)",
}
MARGIN = 0.2
"""The share of the miss budget every tuned agent keeps in reserve (agent slo_target's default)."""


def _summary(run: AgentRun, target: LatencyTarget, config: SystemConfig) -> dict[str, Any]:
    bound = target.bound_for(config.slo_ms)
    attainment = run.attainment(bound)
    return {
        "met": bool(attainment[0] >= target.quantile),
        "attainment": list(attainment),
        "seeds_met": sum(a >= target.quantile for a in _per_seed_attainment(run, BOUNDS_MS.index(bound))),
        "target_latency_ms": list(run.metric("target_latency_ms")),
        "mean_quality": list(run.metric("mean_quality")),
        "throughput_per_s": list(run.metric("throughput_per_s")),
        "latency_mean_ms": list(run.metric("latency_mean_ms")),
        "latency_p99_ms": list(run.metric("latency_p99_ms")),
        "cost_per_request": list(run.metric("cost_per_request")),
        "mean_scale": mean_ci95([r.diagnostics.get("slo_mean_scale", math.nan) for r in run.results])[0],
    }


def _per_seed_attainment(run: AgentRun, index: int) -> list[float]:
    out = []
    for terms, result in zip(run.terms(), run.results, strict=True):
        judged = sum(terms.served_per_model) + terms.n_dropped
        out.append((result.within or [])[index] / judged if judged else math.nan)
    return out


def _grid_best_attainment(config: SystemConfig, target: LatencyTarget, backend: Backend) -> dict[str, Any]:
    """The timeout candidate with the highest mean attainment on the training seeds."""
    runs = tuning_runs(config, backend)
    grid = timeout_grid(config)
    index = runs.target_index(target)
    means = [sum(e.attainment(index) for e in eps) / len(eps) for eps in runs.episodes("timeout", grid)]
    best = max(range(len(grid)), key=means.__getitem__)
    return {"params": grid[best], "attainment": means[best], "candidates": len(grid)}


def run_study(
    rows: Sequence[tuple[str, str, str]],
    targets: Sequence[LatencyTarget],
    seeds: Sequence[int],
    backend: Backend,
    horizon_s: float | None = None,
    log: Any = print,
    console: Any = None,
) -> dict[str, Any]:
    """The study over ``rows`` (label, tuning scenario, evaluation scenario) and ``targets``;
    returns the JSON-ready results (per row and target: tuned parameters, per-agent summaries,
    feasibility). ``horizon_s``: simulated seconds of every episode (None: each scenario's)."""
    tuned: dict[tuple[str, int], dict[str, Any]] = {}
    grid_best: dict[tuple[str, int], dict[str, Any]] = {}
    for label, tune_name, _ in rows:
        config = scenario_config(tune_name, horizon_s)
        runs = tuning_runs(config, backend)
        for t, target in enumerate(targets):
            log(f"{label}: tuning for {target.describe(config.slo_ms)} on {tune_name}")
            tuned[(label, t)] = tune_for_objective(runs, TargetObjective(target, MARGIN))
            grid_best[(label, t)] = _grid_best_attainment(config, target, backend)
    cells = []
    for label, _, eval_name in rows:
        for t, target in enumerate(targets):
            for spec in AGENTS:
                params = tuned[(label, t)][spec]["params"] if spec in ("timeout", "util_switch") else None
                cells.append(Cell((label, t, spec), spec, eval_name, tuple(seeds), params, target, horizon_s))
    log(f"{len(cells)} cells x {len(seeds)} seeds on {backend.describe()}")
    results = run_cells(backend, cells, console)
    out_rows = []
    for label, tune_name, eval_name in rows:
        config = scenario_config(eval_name, horizon_s)
        entry: dict[str, Any] = {
            "label": label,
            "tuned_on": tune_name,
            "evaluated_on": eval_name,
            "targets": [],
        }
        for t, target in enumerate(targets):
            agents: dict[str, Any] = {}
            for spec in AGENTS:
                run = results[(label, t, spec)]
                agents[spec] = (
                    {"not_applicable": run} if isinstance(run, str) else _summary(run, target, config)
                )
            ran = {k: v for k, v in agents.items() if "met" in v}
            best = max(ran, key=lambda k: ran[k]["attainment"][0])
            entry["targets"].append(
                {
                    "target": target.short(config.slo_ms),
                    "describe": target.describe(config.slo_ms),
                    "feasible": any(v["met"] for v in ran.values()),
                    "best_attainment": {"agent": best, "attainment": ran[best]["attainment"][0]},
                    "grid_best_training": grid_best[(label, t)],
                    "tuned": {k: tuned[(label, t)][k] for k in ("timeout", "util_switch")},
                    "agents": agents,
                }
            )
        out_rows.append(entry)
    return {"rows": out_rows}
