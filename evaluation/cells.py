"""Results of an evaluation grouped per (agent, scenario) cell: per-seed rows, pooled latency
histogram, and the summary over seeds (:mod:`evaluation.stats`: means with 95% confidence
intervals, the gap to the reference agent).

A ratio an episode cannot define (no arrival: cost, score, drops; no batch: the mean batch
size; nothing served: latencies, quality, model mix) is NaN in its row, and every mean leaves
the NaN seeds out: :attr:`Cell.n_used` counts the seeds each mean uses, and
:meth:`Cell.empty_episodes` says how many episodes had nothing to measure."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from batchenv.config import LatencyTarget
from batchenv.metrics import EpisodeMetrics
from evaluation.plan import Plan
from evaluation.stats import mean_ci95, relative_gap
from execution.episode import EpisodeResult, EpisodeTask
from execution.hindsight_task import BoundResult, BoundTask
from execution.outcome import Outcome

__all__ = [
    "COUNT_METRICS",
    "PER_SEED_RATIO",
    "Bounds",
    "Cell",
    "HindsightBounds",
    "collect",
    "hindsight_bounds",
]

COUNT_METRICS = tuple(f.name for f in fields(EpisodeMetrics) if f.type in ("int", int))
"""The per-episode counts (arrived, served, dropped, waiting, batches, forced dispatches): whole
numbers, kept as ints in the per-seed rows (their means over seeds are floats)."""

PER_SEED_RATIO = "cost_ratio_to_reference_minus_1"
"""The per-seed field ``cost / reference cost - 1`` of the same seed. Not the gap, which is the
ratio of the mean costs (:func:`evaluation.stats.relative_gap`); a mean of these ratios weighs
cheap seeds more, so it is never summarised."""

Bounds = dict[str, dict[int, float]]
"""Hindsight costs per request (lower bounds, or the schedules found) by scenario name, then seed."""


class HindsightBounds(NamedTuple):
    """What the hindsight bounds of an evaluation found.

    :ivar lower: per scenario and seed, the lower bound (no policy's cost per request is below).
    :ivar found: per scenario and seed, the cost per request of the best schedule found with the
        arrivals known (the least cost lies between the two; equal where the bound is exact).
    :ivar missing: per scenario, why some or all of its seeds have no bound (does not apply, or
        failed); the gap to the bound covers the seeds that have one (the rule of
        ``benchmarks/trace_results.py``, :func:`evaluation.stats.paired_gap`).
    """

    lower: Bounds
    found: Bounds
    missing: dict[str, str]


def hindsight_bounds(
    plan: Plan, tasks: list[BoundTask], outcomes: list[Outcome[BoundResult]]
) -> HindsightBounds:
    """The bounds that were computed and the schedules found, by scenario name and seed, and per
    scenario why some or all of its seeds have none (does not apply, or failed). A seed whose
    bound failed is left out, not the whole scenario: gaps are measured over the seeds that
    have a bound, and the tables say how many."""
    names = {s.spec: s.name for s in plan.scenarios}
    bounds: Bounds = {}
    found: Bounds = {}
    missing: dict[str, str] = {
        s.name: f"{s.config.n_workers} workers: their bound is slow to compute, "
        "--hindsight-several asks for it (docs/hindsight.md)"
        for s in plan.scenarios
        if plan.hindsight and s.config.n_workers > 1 and not plan.hindsight_several
    }
    failed: dict[str, dict[str, list[int]]] = defaultdict(dict)  # scenario -> reason -> seeds
    for task, outcome in zip(tasks, outcomes, strict=True):
        name = names[str(task.scenario)]
        result = outcome.value
        if outcome.error is not None or result is None:
            failed[name].setdefault(str(outcome.error), []).append(task.seed)
        elif result.status != "ok":
            failed[name].setdefault(result.reason, []).append(task.seed)
        else:
            bounds.setdefault(name, {})[task.seed] = result.lower_cost_per_request
            found.setdefault(name, {})[task.seed] = result.upper_cost_per_request
    for name, reasons in failed.items():
        if name not in bounds and len(reasons) == 1:  # every seed, one reason: the reason
            missing[name] = next(iter(reasons))
        else:
            missing[name] = "; ".join(
                f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}: {reason}"
                for reason, seeds in reasons.items()
            )
    return HindsightBounds(bounds, found, missing)


@dataclass
class Cell:
    """Results of one agent on one scenario.

    :ivar n_used: per summary metric, the seeds its mean uses (those where it is defined; for
        the gaps, the seeds paired with the reference or the bound).
    """

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
    n_used: dict[str, int] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        return self.summary.get(metric, (math.nan, math.nan))[0]

    def target_met(self, target: LatencyTarget) -> bool | None:
        """Whether the cell met ``target``: its mean attainment over seeds (dropped requests
        count as late) is at least the target's fraction; None when the cell has no attainment."""
        attainment = self.value("target_attainment")
        if not math.isfinite(attainment):
            return None
        return attainment >= target.quantile

    def fewer_seeds(self) -> dict[str, int]:
        """The summary metrics whose mean uses fewer seeds than the cell ran, with that number."""
        return {k: n for k, n in self.n_used.items() if n < len(self.per_seed)}

    def empty_episodes(self) -> str:
        """The cell's episodes with nothing to measure, in words (empty when there are none):
        ``2 of 5 episodes had no arrival`` (those have no cost), ``1 of 5 episodes had arrivals
        but no batch`` (no batch size, latency or quality)."""
        rows = self.per_seed
        counts = [
            (sum(r["n_arrived"] == 0 for r in rows), "no arrival"),
            (sum(r["n_arrived"] > 0 and r["n_batches"] == 0 for r in rows), "arrivals but no batch"),
        ]
        return ", ".join(f"{n} of {len(rows)} episodes had {what}" for n, what in counts if n)


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _paired(rows: list[dict[str, Any]], costs: dict[int, float]) -> int:
    """Seeds of ``rows`` with a finite cost and a finite cost in ``costs`` (the pairs of a gap)."""
    return sum(_finite(r["cost_per_request"]) and _finite(costs.get(r["seed"])) for r in rows)


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
        row: dict[str, Any] = {"seed": task.seed, **result.metrics}
        for name in COUNT_METRICS:
            row[name] = int(row[name])
        row["queued_at_end"] = row["n_waiting"] / row["n_arrived"] if row["n_arrived"] else math.nan
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
                row[PER_SEED_RATIO] = (row["cost_per_request"] - base) / base if base else math.nan
            keys = [k for k in cell.per_seed[0] if k not in ("seed", PER_SEED_RATIO)]
            cell.summary = {k: mean_ci95([row[k] for row in cell.per_seed]) for k in keys}
            cell.n_used = {k: sum(_finite(row[k]) for row in cell.per_seed) for k in keys}
            cell.summary["gap"] = relative_gap(cell.per_seed, ref_costs)
            cell.n_used["gap"] = _paired(cell.per_seed, ref_costs)
            scenario_bounds = (bounds or {}).get(scenario.name)
            if scenario_bounds:
                cell.summary["gap_hindsight"] = relative_gap(cell.per_seed, scenario_bounds)
                cell.n_used["gap_hindsight"] = _paired(cell.per_seed, scenario_bounds)
    return cells


def _reference(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: str) -> str | None:
    """Label of the reference agent on ``scenario`` (None: no gap): ``--reference`` as given, or
    for ``auto`` the rule :data:`evaluation.plan.REFERENCE_RULE` among the agents that ran there."""
    labels = [a.label for a in plan.agents]

    def usable(label: str) -> bool:
        return label in labels and bool(cells[(label, scenario)].per_seed)

    if plan.reference == "none":
        return None
    if plan.reference != "auto":
        return plan.reference if usable(plan.reference) else None
    optimal = [a for a in plan.agents if a.name == "optimal"]
    timeouts = [a for a in plan.agents if a.name == "timeout"]
    bare = [a for a in timeouts if not a.kwargs]  # the tuned timeout, as --agents timeout gives it
    for agent in [*optimal, *bare, *timeouts]:
        if usable(agent.label):
            return agent.label
    return None
