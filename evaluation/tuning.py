"""Grid search of the ``timeout`` and ``util_switch`` baselines, per scenario, on training seeds.

The objective is the mean cost per request (best quality - score, docs/design.md) over
:data:`batchenv.seeds.TRAINING_SEEDS`, which evaluation never uses (``evaluate.py`` uses seeds
0..N-1). Every candidate meets the same arrivals (common random numbers), so candidates are
compared paired, seed by seed.

- ``timeout``: the full grid of (preferred_batch_size B, max_queue_delay_ms T, model).
- ``util_switch``: coordinate search from the best timeout's (B, T): queue thresholds, then
  utilisation thresholds, then (B, T) again, then the hysteresis; each stage keeps its best
  candidate (the incumbent is always in the next stage, so the cost never goes up). With queue
  thresholds of 1 it serves every request on the last model, so it is never worse than timeout
  on that model with the same (B, T).

Episodes run as :class:`~execution.episode.EpisodeTask` chunks on any backend of
:mod:`execution`; the result does not depend on the backend or its number of jobs. The command
line is ``python -m apps.tune``; the results go to ``agents/tuned/<scenario>.yaml``
(:mod:`agents.tuned_params`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.baselines import BASELINES
from agents.tuned_params import TUNABLE
from batchenv.config import LatencyTarget, RewardConfig, SystemConfig
from batchenv.seeds import TRAINING_SEEDS
from evaluation.candidates import CandidateEpisode, CandidateRuns
from execution.backends import Backend, LocalBackend
from execution.episode import EpisodeResult, EpisodeTask, run_episode_tasks
from execution.run import run_tasks

__all__ = [
    "BATCH_GRID",
    "DELAY_GRID_MS",
    "HYSTERESIS_GRID",
    "QUEUE_GRID",
    "UTIL_GRID",
    "CostObjective",
    "TargetObjective",
    "grid_search",
    "mean_cost",
    "timeout_grid",
    "tune_for_objective",
    "tune_scenario",
    "util_switch_stages",
]

BATCH_GRID = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
DELAY_GRID_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0)
QUEUE_GRID: tuple[float | None, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, None)
UTIL_GRID: tuple[float | None, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, None)
HYSTERESIS_GRID = (0.25, 0.5, 0.75, 1.0)

CHUNKS_PER_JOB = 4
"""Candidates are sent to the backend in about this many chunks per job."""


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def _tasks(
    config: SystemConfig, name: str, params: dict[str, Any], seeds: Sequence[int]
) -> list[EpisodeTask]:
    """One candidate's episodes, one per seed, running totals only."""
    return [EpisodeTask(name, config, seed, tuned=False, params=params, record="totals") for seed in seeds]


def _mean_cost(config: SystemConfig, results: Sequence[EpisodeResult]) -> float:
    """Mean cost per request (best quality - score) of the episodes, in seed order."""
    best = max(config.qualities)
    total = 0.0
    for result in results:
        if result.status != "ok":
            raise ValueError(result.reason)
        total += best - result.metrics["score_per_request"]
    return total / len(results)


def mean_cost(config: SystemConfig, name: str, params: dict[str, Any], seeds: Sequence[int]) -> float:
    """Mean over ``seeds`` of the cost per request of baseline ``name`` with ``params``, run in
    this process."""
    return _mean_cost(config, run_episode_tasks(_tasks(config, name, params, seeds)))


def grid_search(
    config: SystemConfig,
    name: str,
    candidates: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    backend: Backend | None = None,
) -> tuple[dict[str, Any], float, list[float]]:
    """Evaluate every candidate on ``backend`` (None: in this process); returns ``(best params,
    best mean cost, all costs)``. Ties go to the first candidate in grid order, so the result
    does not depend on the backend or its number of jobs.

    :raises execution.outcome.TaskFailedError: an episode failed (its message says why).
    """
    candidates = list(candidates)
    backend = backend or LocalBackend(1)
    size = max(1, -(-len(candidates) // (CHUNKS_PER_JOB * backend.jobs)))
    chunks = [candidates[i : i + size] for i in range(0, len(candidates), size)]
    args = [([t for params in chunk for t in _tasks(config, name, params, seeds)],) for chunk in chunks]
    outcomes = run_tasks(backend, run_episode_tasks, args)
    results = [result for outcome in outcomes for result in outcome.unwrap()]
    n = len(seeds)
    costs = [_mean_cost(config, results[i * n : (i + 1) * n]) for i in range(len(candidates))]
    best = min(range(len(costs)), key=costs.__getitem__)
    return candidates[best], costs[best], costs


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def _batch_grid(config: SystemConfig) -> list[int]:
    return sorted({b for b in BATCH_GRID if b <= config.max_batch_size} | {config.max_batch_size})


def _delay_grid(config: SystemConfig) -> list[float]:
    return sorted({t for t in DELAY_GRID_MS if t <= config.max_wait_ms} | {config.max_wait_ms})


def _batch_delay_grid(config: SystemConfig) -> list[tuple[int, float]]:
    """(B, T) pairs; with B = 1 every epoch dispatches, so one T stands for all."""
    delays = _delay_grid(config)
    return [(b, t) for b in _batch_grid(config) for t in (delays[:1] if b == 1 else delays)]


def timeout_grid(config: SystemConfig) -> list[dict[str, Any]]:
    """Every (preferred_batch_size, max_queue_delay_ms, model) candidate of ``timeout``."""
    return [
        {"preferred_batch_size": b, "max_queue_delay_ms": t, "model": model}
        for model in config.model_names
        for b, t in _batch_delay_grid(config)
    ]


def _threshold_tuples(values: Sequence[float | None], steps: int) -> list[list[float | None]]:
    """Non-decreasing threshold tuples (None = never, sorted last)."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    return [list(c) for c in itertools.combinations_with_replacement(ordered, steps)]


Stage = tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]


def util_switch_stages(config: SystemConfig) -> list[Stage]:
    """The coordinate-search stages of ``util_switch``: each maps the incumbent to candidates."""
    steps = config.n_models - 1
    return [
        (
            "queue thresholds",
            lambda p: [{**p, "queue_thresholds": q} for q in _threshold_tuples(QUEUE_GRID, steps)],
        ),
        (
            "util thresholds",
            lambda p: [{**p, "util_thresholds": u} for u in _threshold_tuples(UTIL_GRID, steps)],
        ),
        (
            "B, T",
            lambda p: [
                {**p, "preferred_batch_size": b, "max_queue_delay_ms": t}
                for b, t in _batch_delay_grid(config)
            ],
        ),
        ("hysteresis", lambda p: [{**p, "hysteresis": h} for h in HYSTERESIS_GRID]),
    ]


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


# --------------------------------------------------------------------------------------------
# Objectives other than the scenario's cost (episodes memoised by evaluation.candidates)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostObjective:
    """The mean cost per request over the seeds under ``qualities`` (one per model) and
    ``reward``; None keeps the scenario's. A baseline's trajectory reads neither, so its cost
    under them follows from the score terms of one run."""

    qualities: tuple[float, ...] | None = None
    reward: RewardConfig | None = None

    def describe(self) -> str:
        parts = []
        if self.reward is not None:
            parts.append(f"w_latency_per_s = {self.reward.w_latency_per_s:g}")
        if self.qualities is not None:
            parts.append("qualities " + "/".join(f"{q:g}" for q in self.qualities))
        return "mean cost per request" + (f" ({', '.join(parts)})" if parts else "")

    def cost(self, config: SystemConfig, episodes: Sequence[CandidateEpisode]) -> float:
        qualities = self.qualities or config.qualities
        reward = self.reward or config.reward
        return sum(e.terms.cost_per_request(qualities, reward) for e in episodes) / len(episodes)

    def key(self, runs: CandidateRuns, episodes: Sequence[CandidateEpisode]) -> tuple[float, ...]:
        return (self.cost(runs.config, episodes),)

    def summary(self, runs: CandidateRuns, episodes: Sequence[CandidateEpisode]) -> dict[str, Any]:
        return {"cost_per_request": round(self.cost(runs.config, episodes), 6)}


@dataclass(frozen=True)
class TargetObjective:
    """Meet a latency target on the seeds, then the best quality: a candidate is feasible when
    its mean attainment of the target's bound is at least ``1 - (1 - margin)(1 - p)`` (the
    margin of :class:`agents.slo_target.SloTargeted`: the same reserve for every agent);
    feasible candidates rank by mean quality (higher first), then mean cost; infeasible ones
    after them, by attainment. The runs must record the target's bound."""

    target: LatencyTarget
    margin: float = 0.2

    def describe(self, slo_ms: float) -> str:
        return f"best mean quality with {self.target.describe(slo_ms)} (margin {self.margin:g})"

    def aim(self) -> float:
        return 1.0 - (1.0 - self.margin) * (1.0 - self.target.quantile)

    def _figures(
        self, runs: CandidateRuns, episodes: Sequence[CandidateEpisode]
    ) -> tuple[float, float, float]:
        index = runs.target_index(self.target)
        config = runs.config
        n = len(episodes)
        attainment = sum(e.attainment(index) for e in episodes) / n
        quality = sum(e.terms.mean_quality(config.qualities) for e in episodes) / n
        cost = sum(e.terms.cost_per_request(config.qualities, config.reward) for e in episodes) / n
        return attainment, quality, cost

    def key(self, runs: CandidateRuns, episodes: Sequence[CandidateEpisode]) -> tuple[float, ...]:
        attainment, quality, cost = self._figures(runs, episodes)
        if attainment >= self.aim():
            return (0.0, -quality, cost)
        return (1.0, -attainment, cost)

    def summary(self, runs: CandidateRuns, episodes: Sequence[CandidateEpisode]) -> dict[str, Any]:
        attainment, quality, cost = self._figures(runs, episodes)
        return {
            "feasible": bool(attainment >= self.aim()),
            "attainment": round(attainment, 6),
            "mean_quality": round(quality, 6),
            "cost_per_request": round(cost, 6),
        }


Objective = CostObjective | TargetObjective


# --------------------------------------------------------------------------------------------
# Tuning one scenario
# --------------------------------------------------------------------------------------------


Evaluate = Callable[[str, list[dict[str, Any]]], list[Any]]
"""(agent name, candidates) -> one comparable key per candidate, smaller is better."""


def _first_best(candidates: list[dict[str, Any]], keys: list[Any]) -> tuple[dict[str, Any], Any]:
    """The first candidate with the smallest key (ties keep grid order: backend-independent)."""
    best = min(range(len(keys)), key=keys.__getitem__)
    return candidates[best], keys[best]


def _search(
    config: SystemConfig, agents: list[str], evaluate: Evaluate, log: Callable[[str], None]
) -> dict[str, tuple[dict[str, Any], Any, int]]:
    """The timeout grid, then util_switch's coordinate search from the best timeout's (B, T);
    per agent asked for: (best params, its key, candidates evaluated)."""
    found: dict[str, tuple[dict[str, Any], Any, int]] = {}
    grid = timeout_grid(config)
    best, key = _first_best(grid, evaluate("timeout", grid))
    log(f"  timeout: {len(grid)} candidates -> {key} {best}")
    if "timeout" in agents:
        found["timeout"] = (best, key, len(grid))
    if "util_switch" in agents:
        incumbent: dict[str, Any] = {
            "preferred_batch_size": best["preferred_batch_size"],
            "max_queue_delay_ms": best["max_queue_delay_ms"],
        }
        count = 0
        for stage, make in util_switch_stages(config):
            # the incumbent first: ties keep it (the first of equal keys wins)
            candidates = [incumbent, *(c for c in make(incumbent) if c != incumbent)]
            count += len(candidates)
            incumbent, key = _first_best(candidates, evaluate("util_switch", candidates))
            log(f"  util_switch {stage}: {len(candidates)} candidates -> {key}")
        found["util_switch"] = (BASELINES["util_switch"](config, **incumbent).params(), key, count)
    return found


def tune_scenario(
    config: SystemConfig,
    agents: Iterable[str] = TUNABLE,
    seeds: Sequence[int] = TRAINING_SEEDS,
    backend: Backend | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, Any]]:
    """Tune the named agents on ``config`` (its horizon) and return, per agent, the entry of the
    tuned file: ``params``, ``cost_per_request``, ``candidates``."""

    def costs(name: str, candidates: list[dict[str, Any]]) -> list[float]:
        return grid_search(config, name, candidates, seeds, backend)[2]

    found = _search(config, list(agents), costs, log)
    return {
        name: {"params": _plain_params(params), "cost_per_request": round(cost, 6), "candidates": count}
        for name, (params, cost, count) in found.items()
    }


def tune_for_objective(
    runs: CandidateRuns,
    objective: Objective,
    agents: Iterable[str] = TUNABLE,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, Any]]:
    """Tune the named agents on ``runs``' scenario and seeds for ``objective`` (a cost under other
    weights or qualities, or a latency target); episodes are memoised in ``runs``, so tuning for
    several objectives runs each candidate once. Per agent: ``params``, ``candidates`` and the
    objective's ``summary`` of the chosen candidate (e.g. ``feasible``, ``attainment``)."""

    def keys(name: str, candidates: list[dict[str, Any]]) -> list[tuple[float, ...]]:
        return [objective.key(runs, episodes) for episodes in runs.episodes(name, candidates)]

    found = _search(runs.config, list(agents), keys, log)
    out = {}
    for name, (params, _, count) in found.items():
        (episodes,) = runs.episodes(name, [params])
        out[name] = {
            "params": _plain_params(params),
            "candidates": count,
            **objective.summary(runs, episodes),
        }
    return out
