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
from pathlib import Path
from typing import Any

from batchenv.config import SystemConfig
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
    "display_path",
    "pct",
    "run_agents",
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


def run_agents(
    backend: Backend,
    specs: Sequence[str],
    scenario: str | SystemConfig,
    seeds: Sequence[int],
    horizon_s: float | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    tuned: bool = True,
) -> dict[str, AgentRun | str]:
    """Per agent spec: its :class:`AgentRun` on ``scenario`` (episodes with score terms and the
    within-bound counts), or the reason it does not apply.

    :param params: per spec, constructor keywords that override its parameters (e.g. the
        parameters a study tuned; then ``tuned`` files are not read for it).
    """
    params = params or {}
    tasks = [
        EpisodeTask(
            spec,
            scenario,
            seed,
            horizon_s,
            tuned=tuned and spec not in params,
            params=params.get(spec),
            record="requests",
            terms=True,
            bounds_ms=BOUNDS_MS,
        )
        for spec in specs
        for seed in seeds
    ]
    outcomes = run_tasks(backend, run_episode_task, [(task,) for task in tasks])
    out: dict[str, AgentRun | str] = {}
    for spec in specs:
        results = [o.unwrap() for t, o in zip(tasks, outcomes, strict=True) if t.agent == spec]
        bad = [r for r in results if r.status != "ok"]
        out[spec] = bad[0].reason if bad else AgentRun(results)
    return out


def gap_of(costs: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The gap (:func:`evaluation.stats.paired_gap`) of seed-paired costs."""
    return paired_gap(list(costs), list(reference))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def config_of(name: str, horizon_s: float | None = None) -> SystemConfig:
    return scenario_config(name, horizon_s)
