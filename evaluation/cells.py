"""Results of an evaluation grouped per (agent, scenario) cell: per-seed rows, pooled latency
histogram, and the summary over seeds (:mod:`evaluation.stats`: means with 95% confidence
intervals, the gap to the reference agent)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from batchenv.config import LatencyTarget
from evaluation.plan import Plan
from evaluation.stats import mean_ci95, relative_gap
from execution.episode import EpisodeResult, EpisodeTask
from execution.hindsight_task import BoundResult, BoundTask
from execution.outcome import Outcome

__all__ = ["Bounds", "Cell", "HindsightBounds", "collect", "hindsight_bounds"]

Bounds = dict[str, dict[int, float]]
"""Hindsight costs per request (lower bounds, or the schedules found) by scenario name, then seed."""


class HindsightBounds(NamedTuple):
    """What the hindsight bounds of an evaluation found.

    :ivar lower: per scenario and seed, the lower bound (no policy's cost per request is below).
    :ivar found: per scenario and seed, the cost per request of the best schedule found with the
        arrivals known (the least cost lies between the two; equal where the bound is exact).
    :ivar missing: per scenario, why it has no bound (does not apply, or failed).
    """

    lower: Bounds
    found: Bounds
    missing: dict[str, str]


def hindsight_bounds(
    plan: Plan, tasks: list[BoundTask], outcomes: list[Outcome[BoundResult]]
) -> HindsightBounds:
    """The bounds that were computed and the schedules found, by scenario name and seed, and per
    scenario why there is none (does not apply, or failed)."""
    names = {s.spec: s.name for s in plan.scenarios}
    bounds: Bounds = {}
    found: Bounds = {}
    missing: dict[str, str] = {
        s.name: f"{s.config.n_workers} workers: their bound is slow to compute, "
        "--hindsight-several asks for it (docs/hindsight.md)"
        for s in plan.scenarios
        if plan.hindsight and s.config.n_workers > 1 and not plan.hindsight_several
    }
    for task, outcome in zip(tasks, outcomes, strict=True):
        name = names[str(task.scenario)]
        result = outcome.value
        if outcome.error is not None or result is None:
            missing[name] = f"seed {task.seed}: {outcome.error}"
        elif result.status != "ok":
            missing[name] = result.reason
        else:
            bounds.setdefault(name, {})[task.seed] = result.lower_cost_per_request
            found.setdefault(name, {})[task.seed] = result.upper_cost_per_request
    for name in missing:
        bounds.pop(name, None)  # a gap over some of the seeds would not be comparable
        found.pop(name, None)
    return HindsightBounds(bounds, found, missing)


@dataclass
class Cell:
    """Results of one agent on one scenario."""

    agent: str
    scenario: str
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    histogram: np.ndarray | None = None
    describe: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    params_source: str = ""
    not_applicable: str | None = None
    error: str | None = None
    reference: str | None = None
    summary: dict[str, tuple[float, float]] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        return self.summary.get(metric, (math.nan, math.nan))[0]

    def target_met(self, target: LatencyTarget) -> bool | None:
        """Whether the cell met ``target``: its mean attainment over seeds (dropped requests
        count as late) is at least the target's fraction; None when the cell has no attainment."""
        attainment = self.value("target_attainment")
        if not math.isfinite(attainment):
            return None
        return attainment >= target.quantile


def collect(
    plan: Plan,
    tasks: list[EpisodeTask],
    outcomes: list[Outcome[EpisodeResult]],
    bounds: Bounds | None = None,
) -> dict[tuple[str, str], Cell]:
    """Group episode results by (agent label, scenario name) and summarise them. A failed
    episode makes its cell an error cell with the message (the cell's other seeds are dropped:
    a summary over some of the seeds would not be comparable); other cells are unaffected.

    :param bounds: hindsight lower bounds by scenario and seed (:func:`hindsight_bounds`): each
        cell of such a scenario gets ``gap_hindsight``, its mean cost's relative distance above
        the mean bound (seed-paired CI), the room any scheduler could still gain.
    """
    labels = {a.text: a.label for a in plan.agents}
    names = {s.spec: s.name for s in plan.scenarios}
    cells: dict[tuple[str, str], Cell] = {}
    for task, outcome in zip(tasks, outcomes, strict=True):
        key = (labels[task.agent], names[str(task.scenario)])
        cell = cells.setdefault(key, Cell(*key))
        result = outcome.value
        if outcome.error is not None or result is None:
            cell.error = cell.error or f"seed {task.seed}: {outcome.error}"
            continue
        if result.status == "not_applicable":
            cell.not_applicable = result.reason
            continue
        if result.status == "error":
            cell.error = result.reason
            continue
        row = {"seed": task.seed, **result.metrics}
        row.update({f"mix_{m}": share for m, share in result.model_mix.items()})
        cell.per_seed.append(row)
        hist = result.latency_histogram
        if hist is not None:
            cell.histogram = hist.copy() if cell.histogram is None else cell.histogram + hist
        cell.describe, cell.params, cell.params_source = result.describe, result.params, result.params_source
    for cell in cells.values():
        if cell.error:
            cell.per_seed, cell.histogram = [], None
    for scenario in plan.scenarios:
        ref = _reference(plan, cells, scenario.name)
        ref_costs = {}
        if ref is not None:
            ref_costs = {r["seed"]: r["cost_per_request"] for r in cells[(ref, scenario.name)].per_seed}
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            cell.reference = ref
            if not cell.per_seed:
                continue
            for row in cell.per_seed:
                base = ref_costs.get(row["seed"])
                row["gap"] = (row["cost_per_request"] - base) / base if base else math.nan
            keys = [k for k in cell.per_seed[0] if k not in ("seed", "gap")]
            cell.summary = {k: mean_ci95([row[k] for row in cell.per_seed]) for k in keys}
            cell.summary["gap"] = relative_gap(cell.per_seed, ref_costs)
            scenario_bounds = (bounds or {}).get(scenario.name)
            if scenario_bounds:
                cell.summary["gap_hindsight"] = relative_gap(cell.per_seed, scenario_bounds)
    return cells


def _reference(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: str) -> str | None:
    """Label of the reference agent on ``scenario`` (None: no gap)."""
    labels = [a.label for a in plan.agents]

    def usable(label: str) -> bool:
        return label in labels and bool(cells[(label, scenario)].per_seed)

    if plan.reference == "none":
        return None
    if plan.reference != "auto":
        return plan.reference if usable(plan.reference) else None
    for kind in ("optimal", "timeout"):
        for agent in plan.agents:
            if agent.name == kind and usable(agent.label):
                return agent.label
    return None
