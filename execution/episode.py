"""One episode as a task: (agent spec, scenario, seed, horizon, tuned, what to record) -> plain
data. ``evaluate.py``, the tuning grids and the benchmarks all run their episodes through here.

An episode is a pure function of its :class:`EpisodeTask`: the same task gives the same
:class:`EpisodeResult` bit for bit in any process, on any backend, whatever ran before it there.
Each worker process keeps a few built agents and simulators (building ``optimal`` solves an
SMDP); agents are reset at the start of every episode, and a test checks that results do not
depend on the number of processes or the backend.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agents.registry import AgentSpecError, NotApplicableError, make_agent, parse_agent_spec
from batchenv.config import LatencyTarget, SystemConfig
from batchenv.metrics import (
    EpisodeMetrics,
    compute_metrics,
    latency_within,
    request_table,
    score_terms,
    target_metrics,
)
from batchenv.scenarios import scenario_config
from batchenv.sim import Simulator, simulate
from execution.paths import TaskFiles, task_files

__all__ = [
    "LATENCY_EDGES_MS",
    "SCALAR_METRICS",
    "EpisodeResult",
    "EpisodeTask",
    "latency_histogram",
    "run_episode_task",
    "run_episode_tasks",
]

LATENCY_EDGES_MS = np.logspace(-1, 6, 701)
"""Bins of the latency histograms (ms): 0.1 ms to 1000 s, 100 per decade."""

SCALAR_METRICS = tuple(
    f.name for f in fields(EpisodeMetrics) if f.name not in ("utilisation_per_worker", "model_mix")
)
"""The per-episode numbers of :class:`batchenv.metrics.EpisodeMetrics` (besides the model mix and
the per-worker utilisation) that an :class:`EpisodeResult` carries."""

CACHE_SIZE = 16
"""Built agents and simulators kept per worker process (least recently used dropped first)."""


@dataclass(frozen=True)
class EpisodeTask:
    """One episode; picklable, and everything its result depends on.

    :param agent: an agent spec of :mod:`agents.registry` (``"timeout(B=8)"``, ``"optimal"``, a
        ``.zip`` checkpoint path).
    :param scenario: a scenario name or YAML path, or a :class:`SystemConfig`.
    :param seed: the arrivals' seed (the same seed gives every agent the same arrivals).
    :param horizon_s: simulated seconds; None = the scenario's ``horizon_s``.
    :param tuned: use the tuned parameters of ``timeout`` and ``util_switch``.
    :param tuned_dir: look for tuned files there instead of ``agents/tuned/``.
    :param params: constructor keywords that override the spec's (e.g. a tuning candidate).
    :param record: ``"histogram"``: keep every request, return latency percentiles and the
        latency histogram (:data:`LATENCY_EDGES_MS`); ``"requests"``: percentiles, no
        histogram; ``"totals"``: running totals only (percentiles are NaN; fastest, memory
        bounded by the queue capacity).
    :param latency_target: state this latency target for the episode (replaces the scenario's
        ``latency_target``); with a target (either) and every request kept, the metrics carry
        ``target_attainment`` and ``target_latency_ms`` (:func:`batchenv.metrics.target_metrics`).
    :param terms: also return the episode's :class:`~batchenv.metrics.ScoreTerms` (``terms``).
    :param bounds_ms: also return, per bound (ms), the served requests within it (``within``);
        needs every request kept (``record`` other than ``"totals"``).
    :ivar files: the absolute paths of the checkpoint, the scenario file and ``tuned_dir``,
        resolved from the working folder of the process that made the task (the driver): what a
        worker reads, wherever it runs (:mod:`execution.paths`); the fields above keep what the
        user typed, for the results and the messages.
    """

    agent: str
    scenario: str | SystemConfig
    seed: int
    horizon_s: float | None = None
    tuned: bool = True
    tuned_dir: str | None = None
    params: Mapping[str, Any] | None = None
    record: Literal["histogram", "requests", "totals"] = "histogram"
    latency_target: LatencyTarget | None = None
    terms: bool = False
    bounds_ms: tuple[float, ...] = ()
    files: TaskFiles = field(default=TaskFiles(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", task_files(self.agent, self.scenario, self.tuned_dir))


@dataclass
class EpisodeResult:
    """What an episode gives back, as plain data.

    :ivar status: ``"ok"``, ``"not_applicable"`` (the agent does not apply to the scenario) or
        ``"error"`` (the agent cannot be built); ``reason`` says why.
    :ivar metrics: :data:`SCALAR_METRICS` by name (latencies in ms, rates per s).
    :ivar model_mix: share of the served requests per model name.
    :ivar latency_histogram: counts per bin of :data:`LATENCY_EDGES_MS` (``record="histogram"``).
    :ivar describe: the agent's one-line description; ``params``: its parameters;
        ``params_source``: where they come from.
    :ivar diagnostics: agent-specific counters, e.g. ``estimator_alarms`` (the proposed
        scheduler's rate-change alarms in the episode), and whatever an agent's
        ``diagnostics()`` method returns.
    :ivar terms: the episode's :class:`~batchenv.metrics.ScoreTerms` as a dict (``terms=True``).
    :ivar within: per bound of ``bounds_ms``, the served requests within it.
    """

    status: Literal["ok", "not_applicable", "error"] = "ok"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    model_mix: dict[str, float] = field(default_factory=dict)
    latency_histogram: np.ndarray | None = None
    describe: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    params_source: str = ""
    diagnostics: dict[str, float] = field(default_factory=dict)
    terms: dict[str, Any] | None = None
    within: list[int] | None = None


def latency_histogram(latency_ms: np.ndarray) -> np.ndarray:
    """Counts (int64, one per bin of :data:`LATENCY_EDGES_MS`) of latencies in ms; values
    outside the bins count in the first or the last."""
    clipped = np.clip(latency_ms, LATENCY_EDGES_MS[0], LATENCY_EDGES_MS[-1])
    counts, _ = np.histogram(clipped, LATENCY_EDGES_MS)
    return counts.astype(np.int64)


_AGENTS: OrderedDict[str, Any] = OrderedDict()
_SIMULATORS: OrderedDict[str, Simulator] = OrderedDict()


def _cached(cache: OrderedDict[str, Any], key: str, build: Callable[[], Any]) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = build()
    cache[key] = value
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _config(task: EpisodeTask) -> SystemConfig:
    if isinstance(task.scenario, SystemConfig):
        config = task.scenario
        config = config if task.horizon_s is None else config.replace(horizon_s=task.horizon_s)
    else:
        config = scenario_config(task.files.scenario or task.scenario, task.horizon_s)
    return config if task.latency_target is None else config.replace(latency_target=task.latency_target)


def _build_agent(task: EpisodeTask, config: SystemConfig) -> Any:
    spec = parse_agent_spec(task.agent)
    if task.params:
        spec = replace(spec, kwargs={**spec.kwargs, **task.params})
    if task.files.checkpoint is not None:
        spec = replace(spec, path=Path(task.files.checkpoint))
    tuned_dir = Path(task.files.tuned_dir) if task.files.tuned_dir else None
    given = task.scenario if isinstance(task.scenario, str) else None
    return make_agent(spec, config, tuned=task.tuned, tuned_dir=tuned_dir, scenario_spec=given)


def _as_typed(task: EpisodeTask, message: str) -> str:
    """``message`` (why an agent does not apply or cannot be built: part of the results) with
    the absolute paths of ``task.files`` written as the task's fields give them, so that it
    reads the same on every backend and in every working folder."""
    typed = ((task.files.checkpoint, task.agent.strip()), (task.files.tuned_dir, task.tuned_dir))
    for resolved, given in typed:
        if resolved and given:
            message = message.replace(resolved, str(Path(given)))
    return message


def run_episode_task(task: EpisodeTask) -> EpisodeResult:
    """Run one episode (see :class:`EpisodeTask`). An agent that does not apply or cannot be
    built gives a result with that status; any other error (e.g. a trace file that cannot be
    read) is raised, and the execution layer returns it as a task error."""
    if task.bounds_ms and task.record == "totals":
        raise ValueError("EpisodeTask: bounds_ms needs every request kept (record 'requests' or 'histogram')")
    config = _config(task)
    config_key = repr(config)
    params = sorted((task.params or {}).items())
    agent_key = repr((task.agent, params, config_key, task.tuned, task.files))
    try:
        agent = _cached(_AGENTS, agent_key, lambda: _build_agent(task, config))
    except NotApplicableError as exc:
        return EpisodeResult("not_applicable", _as_typed(task, str(exc)))
    except AgentSpecError as exc:
        return EpisodeResult("error", _as_typed(task, str(exc)))
    record = task.record != "totals"
    sim = _cached(_SIMULATORS, repr((config_key, record)), lambda: Simulator(config, record=record))
    simulate(config, agent, task.seed, sim=sim)
    metrics = compute_metrics(sim)
    values = {name: float(getattr(metrics, name)) for name in SCALAR_METRICS}
    needs_table = task.record == "histogram" or config.latency_target is not None or task.bounds_ms
    table = request_table(sim) if record and needs_table else None
    histogram = None
    if task.record == "histogram":
        histogram = latency_histogram(table.latency_s * 1000.0)
    if config.latency_target is not None and table is not None:
        values.update(target_metrics(sim, config.latency_target, table))
    estimator = getattr(agent, "estimator", None)
    diagnostics = {"estimator_alarms": float(estimator.alarms)} if hasattr(estimator, "alarms") else {}
    if callable(getattr(agent, "diagnostics", None)):
        diagnostics.update(agent.diagnostics())
    return EpisodeResult(
        metrics=values,
        model_mix={name: float(share) for name, share in metrics.model_mix.items()},
        latency_histogram=histogram,
        describe=agent.describe(),
        params=agent.params(),
        params_source=getattr(agent, "params_source", "defaults"),
        diagnostics=diagnostics,
        terms=score_terms(sim).to_dict() if task.terms else None,
        within=latency_within(sim, task.bounds_ms, table) if task.bounds_ms else None,
    )


def run_episode_tasks(tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
    """Several episodes in one task (fewer round trips for short episodes, e.g. a tuning grid)."""
    return [run_episode_task(task) for task in tasks]
