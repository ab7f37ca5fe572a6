"""What the objective studies share (``benchmarks/slo_targets.py``, ``benchmarks/frontiers.py``,
``benchmarks/sensitivity.py``): the scenarios, the memoised candidate episodes of the tuned
baselines, episodes of other agents with their score terms, and formatting.

Candidate episodes (:class:`evaluation.candidates.CandidateRuns`) are kept in
``.cache/objectives/<scenario>__<seeds>.jsonl`` (not committed): a study run after another reuses
the episodes both need (the timeout grid on the training seeds serves the three studies), and an
entry is ignored as soon as the scenario, the horizon, the seeds' episode or the simulator's or
the baselines' code differ (:func:`evaluation.candidates.code_version`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchenv.config import LatencyTarget, SystemConfig
from batchenv.metrics import ScoreTerms
from batchenv.scenarios import SUITE, eval_split_of, scenario_config, trace_scenarios, train_split_of
from batchenv.seeds import TRAINING_SEEDS
from evaluation.candidates import CandidateRuns
from evaluation.stats import mean_ci95, paired_gap
from execution.backends import Backend
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.run import run_tasks

__all__ = [
    "BOUNDS_MS",
    "CACHE_DIR",
    "REPO",
    "AgentRun",
    "Cell",
    "display_path",
    "pct",
    "run_cells",
    "suite_and_traces",
    "tuning_runs",
]

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "objectives"
BOUNDS_MS = (50.0, 100.0, 150.0, 250.0)
"""Latency bounds (ms) whose attainment every candidate episode records."""


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def pct(value: float, digits: int = 2, sign: bool = True) -> str:
    """``value`` (a fraction) as a percentage; ``n/a`` when not finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.{digits}f}%" if sign else f"{100 * value:.{digits}f}%"


def suite_and_traces(traces: bool = True) -> list[tuple[str, str, str]]:
    """(label, tuning scenario, evaluation scenario) of the suite's scenarios (tuned and evaluated
    on the same scenario, on disjoint seeds) and, with ``traces``, of every trace scenario not
    in the suite (tuned on its ``_train`` half, evaluated on its ``_test`` half)."""
    rows = [(name, name, name) for name in SUITE]
    if traces:
        rows += [(name, train_split_of(name), eval_split_of(name)) for name in trace_scenarios()]
    return rows


def tuning_runs(
    config: SystemConfig, backend: Backend | None, seeds: Sequence[int] = TRAINING_SEEDS
) -> CandidateRuns:
    """The memoised candidate episodes of ``config`` on ``seeds`` (by default the training seeds),
    recording :data:`BOUNDS_MS`."""
    label = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return CandidateRuns(config, seeds, BOUNDS_MS, backend, CACHE_DIR / f"{config.name}__{label}.jsonl")


class AgentRun:
    """One agent's episodes on one scenario: per seed, the metrics, the score terms and the
    within-bound counts of :data:`BOUNDS_MS`.

    :ivar results: the episode results in seed order.
    """

    def __init__(self, results: list[EpisodeResult]) -> None:
        self.results = results

    def terms(self) -> list[ScoreTerms]:
        return [ScoreTerms.from_dict(r.terms or {}) for r in self.results]

    def costs(self, qualities: Sequence[float], reward: Any) -> list[float]:
        """Per seed, the cost per request under ``qualities`` and ``reward``."""
        return [t.cost_per_request(qualities, reward) for t in self.terms()]

    def metric(self, name: str) -> tuple[float, float]:
        """Mean and 95% half-width over seeds of metric ``name``."""
        return mean_ci95([r.metrics[name] for r in self.results])

    def values(self, name: str) -> list[float]:
        return [r.metrics[name] for r in self.results]

    def attainment(self, bound_ms: float) -> tuple[float, float]:
        """Mean and 95% half-width over seeds of the fraction within ``bound_ms``."""
        index = BOUNDS_MS.index(bound_ms)
        values = []
        for r in self.results:
            terms = ScoreTerms.from_dict(r.terms or {})
            judged = sum(terms.served_per_model) + terms.n_dropped
            values.append((r.within or [])[index] / judged if judged else math.nan)
        return mean_ci95(values)


@dataclass(frozen=True)
class Cell:
    """One agent on one scenario over seeds, as a study asks for it.

    :param key: the study's name for the cell (any hashable).
    :param spec: the agent spec.
    :param scenario: a scenario name or config.
    :param seeds: evaluation seeds.
    :param params: constructor keywords that override the spec's (e.g. parameters a study tuned;
        tuned files are then not read).
    :param latency_target: the latency target stated for the episodes.
    :param horizon_s: None = the scenario's.
    """

    key: Any
    spec: str
    scenario: str | SystemConfig
    seeds: tuple[int, ...]
    params: dict[str, Any] | None = None
    latency_target: LatencyTarget | None = None
    horizon_s: float | None = None


def run_cells(backend: Backend, cells: Sequence[Cell], console: Any = None) -> dict[Any, AgentRun | str]:
    """Per cell key: its :class:`AgentRun` (episodes with score terms and the within-bound counts
    of :data:`BOUNDS_MS`), or the reason the agent does not apply. Every episode of every cell is
    one task on ``backend`` (results identical for any backend and number of jobs)."""
    tasks = [
        (
            cell.key,
            EpisodeTask(
                cell.spec,
                cell.scenario,
                seed,
                cell.horizon_s,
                tuned=cell.params is None,
                params=cell.params,
                record="requests",
                latency_target=cell.latency_target,
                terms=True,
                bounds_ms=BOUNDS_MS,
            ),
        )
        for cell in cells
        for seed in cell.seeds
    ]
    outcomes = run_tasks(
        backend, run_episode_task, [(task,) for _, task in tasks], description="episodes", console=console
    )
    grouped: dict[Any, list[EpisodeResult]] = {}
    for (key, _), outcome in zip(tasks, outcomes, strict=True):
        grouped.setdefault(key, []).append(outcome.unwrap())
    out: dict[Any, AgentRun | str] = {}
    for key, results in grouped.items():
        bad = [r for r in results if r.status != "ok"]
        out[key] = bad[0].reason if bad else AgentRun(results)
    return out


def gap_of(costs: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The gap (:func:`evaluation.stats.paired_gap`) of seed-paired costs."""
    return paired_gap(list(costs), list(reference))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def config_of(name: str, horizon_s: float | None = None) -> SystemConfig:
    return scenario_config(name, horizon_s)
