"""The hindsight bound of one evaluation episode as a task: (scenario, seed, horizon) -> plain data.

An evaluation reports every agent's gap to the least cost any schedule reaches on the same
arrivals (:mod:`agents.hindsight`); the bound depends on the scenario and the seed only, so it is
computed once per (scenario, seed), on the same backend as the episodes.

:func:`run_bound_tasks` runs many of them with a cache on disk
(:class:`agents.hindsight.cache.BoundCache`): in the calling process it reads the bounds already
known, runs only the others on the backend, and stores each bound as it comes back, so the
cache works with any backend (a Ray cluster's nodes included), a bound is computed once across
runs, and an interrupted run keeps the bounds it finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rich.console import Console

from agents.hindsight import episode_bound
from agents.hindsight.cache import BoundCache, BoundKey, CachedBound, bound_key
from agents.hindsight.workers import DEFAULT_BEAM
from batchenv.arrivals import ArrivalProcess, make_arrival_process
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import scenario_config
from execution.backends import Backend
from execution.outcome import Outcome
from execution.paths import scenario_file
from execution.run import run_tasks

__all__ = ["BoundResult", "BoundTask", "bound_config", "run_bound_task", "run_bound_tasks"]


@dataclass(frozen=True)
class BoundTask:
    """The hindsight bound of the episode ``simulate(scenario, policy, seed)``.

    :param scenario: a scenario name or YAML path, or a :class:`SystemConfig`.
    :param seed: the episode's seed.
    :param horizon_s: simulated seconds; None = the scenario's ``horizon_s``.
    :param beam: several workers: the states the schedule search keeps per request index.
    :param projection: several workers: the search's fronts, ``"sum"`` or ``"all"``.
    :ivar scenario_file: the absolute path of the scenario's file when ``scenario`` is a path,
        resolved where the task is made (the driver): what a worker reads, wherever it runs
        (:mod:`execution.paths`).
    """

    scenario: str | SystemConfig
    seed: int
    horizon_s: float | None = None
    beam: int = DEFAULT_BEAM
    projection: str = "sum"
    scenario_file: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.scenario, str):
            object.__setattr__(self, "scenario_file", scenario_file(self.scenario))


class _BoundValues(Protocol):
    """What a bound and a cache entry both hold (:meth:`BoundResult.ok`)."""

    @property
    def lower_cost_per_request(self) -> float: ...
    @property
    def exact(self) -> bool: ...
    @property
    def upper_cost_per_request(self) -> float: ...
    @property
    def n_requests(self) -> int: ...


@dataclass(frozen=True)
class BoundResult:
    """The bound per arrived request (cost units), or why it does not apply.

    :ivar status: ``"ok"`` or ``"not_applicable"`` (e.g. several workers).
    :ivar lower_cost_per_request: no policy's cost per request on the episode is below it.
    :ivar exact: the simulator can play a schedule that reaches the bound.
    :ivar upper_cost_per_request: the cost of the best schedule found (the bound when exact).
    :ivar reason: why the bound does not apply.
    :ivar n_requests: the episode's arrived requests.
    :ivar compute_s: seconds the programmes took (as when the bound was computed, if it was read
        from a cache).
    """

    status: Literal["ok", "not_applicable"]
    lower_cost_per_request: float = float("nan")
    exact: bool = False
    upper_cost_per_request: float = float("nan")
    reason: str = ""
    n_requests: int = 0
    compute_s: float = 0.0

    @classmethod
    def ok(cls, bound: _BoundValues, compute_s: float) -> BoundResult:
        """The ``"ok"`` result holding ``bound``'s values (a freshly computed
        :class:`~agents.hindsight.bound.HindsightBound` or a :class:`CachedBound`), which took
        ``compute_s`` seconds."""
        return cls(
            "ok",
            lower_cost_per_request=bound.lower_cost_per_request,
            exact=bound.exact,
            upper_cost_per_request=bound.upper_cost_per_request,
            n_requests=bound.n_requests,
            compute_s=compute_s,
        )


_KEY_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)
"""What building a task's cache key may legitimately raise (:func:`_keys`): OSError for a
scenario or trace file that cannot be read, ValueError for a bad one (batchenv's ConfigError and
YamlError among them: a file gone, bad YAML, bad arrivals or horizon). The task then runs uncached
and reports the error itself; any other exception is a bug and propagates."""


def bound_config(task: BoundTask) -> SystemConfig:
    """The config of ``task``'s episode, horizon included: the same as the episode's
    (:mod:`execution.episode`), so the same arrivals."""
    if isinstance(task.scenario, SystemConfig):
        return task.scenario if task.horizon_s is None else task.scenario.replace(horizon_s=task.horizon_s)
    return scenario_config(task.scenario_file or task.scenario, task.horizon_s)


def run_bound_task(task: BoundTask) -> BoundResult:
    """Compute the bound of ``task``'s episode (seconds of CPU at a few hundred requests/s)."""
    config = bound_config(task)
    try:  # the same config as the episode's (execution.episode), so the same arrivals
        bound = episode_bound(config, task.seed, beam=task.beam, projection=task.projection)
    except ConfigError as exc:  # raised for the systems the bound does not cover
        return BoundResult("not_applicable", reason=str(exc))
    return BoundResult.ok(bound, compute_s=bound.elapsed_s)


def _keys(tasks: list[BoundTask]) -> list[BoundKey | None]:
    """The cache key of every task (:func:`agents.hindsight.cache.bound_key`, from the config
    :func:`bound_config` gives); None where it cannot be computed for a reason the task will
    report itself (:data:`_KEY_ERRORS`: a scenario or trace file gone or bad), so such a task
    runs uncached. Any other exception propagates: a bug in building keys must not pass for a
    missing file and silently turn the cache off."""
    built: dict[tuple[object, float | None], tuple[SystemConfig, ArrivalProcess] | None] = {}
    keys: list[BoundKey | None] = []
    for task in tasks:
        ident = (task.scenario if isinstance(task.scenario, str) else id(task.scenario), task.horizon_s)
        if ident not in built:
            try:
                config = bound_config(task)
                built[ident] = (config, make_arrival_process(config))
            except _KEY_ERRORS:  # the task itself will say what is wrong
                built[ident] = None
        entry = built[ident]
        key = None
        if entry is not None:
            try:
                key = bound_key(
                    entry[0], task.seed, beam=task.beam, projection=task.projection, arrival_process=entry[1]
                )
            except _KEY_ERRORS:
                key = None
        keys.append(key)
    return keys


def _to_cache(result: BoundResult) -> CachedBound:
    return CachedBound(
        n_requests=result.n_requests,
        lower_cost_per_request=result.lower_cost_per_request,
        upper_cost_per_request=result.upper_cost_per_request,
        exact=result.exact,
        compute_s=result.compute_s if math.isfinite(result.compute_s) else 0.0,
    )


def run_bound_tasks(
    backend: Backend,
    tasks: list[BoundTask],
    cache: BoundCache | None = None,
    *,
    description: str = "hindsight bounds",
    console: Console | None = None,
) -> list[Outcome[BoundResult]]:
    """:func:`run_bound_task` of every task on ``backend``, in task order; with ``cache``, the
    bounds it holds are read instead (in this process) and each bound computed is stored in it
    as soon as it is back (``cache.hits``, ``cache.stored`` and ``cache.warnings`` say what
    happened), so a run interrupted halfway keeps the bounds it finished. A cached bound is the
    same value the task computes, so the outcomes are the same with or without it.

    :param console: where the progress bar and the cache's count go (None: nowhere).
    :raises KeyboardInterrupt: after storing the bounds already back and cancelling every
        queued and running task.
    """
    keys: list[BoundKey | None] = _keys(tasks) if cache is not None else [None] * len(tasks)
    outcomes: list[Outcome[BoundResult] | None] = [None] * len(tasks)
    if cache is not None:
        for i, key in enumerate(keys):
            entry = cache.get(key) if key is not None else None
            if entry is not None:
                outcomes[i] = Outcome(value=BoundResult.ok(entry, compute_s=entry.compute_s))
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if cache is not None and console is not None:
        console.print(
            f"{description}: {len(tasks) - len(todo)} of {len(tasks)} from the cache {cache.directory}/",
            highlight=False,
            markup=False,
        )
    if todo:

        def store(position: int, outcome: Outcome[BoundResult]) -> None:
            """Keep a bound in the cache as soon as it is back, so an interrupted run keeps
            every bound it finished."""
            key, result = keys[todo[position]], outcome.value
            if cache is not None and key is not None and result is not None and result.status == "ok":
                cache.put(key, _to_cache(result))

        computed = run_tasks(
            backend,
            run_bound_task,
            [(tasks[i],) for i in todo],
            description=description,
            console=console,
            on_result=store,
        )
        for i, outcome in zip(todo, computed, strict=True):
            outcomes[i] = outcome
    return [outcome for outcome in outcomes if outcome is not None]
