"""Episodes of an evaluation: one :class:`~execution.episode.EpisodeTask` per (agent, scenario,
seed), run on the plan's backend (:mod:`execution`). Each episode is a pure function of its
task, so the results do not depend on the backend or its number of jobs. The hindsight bounds
(one per scenario and seed) are read from the plan's cache where it holds them
(:func:`execution.hindsight_task.run_bound_tasks`)."""

from __future__ import annotations

from rich.console import Console

from agents.hindsight.cache import BoundCache
from evaluation.plan import Plan
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.hindsight_task import BoundResult, BoundTask, run_bound_tasks
from execution.outcome import Outcome
from execution.run import run_tasks

__all__ = ["make_bound_tasks", "make_tasks", "open_bound_cache", "run_plan"]


def make_tasks(plan: Plan) -> list[EpisodeTask]:
    """The episodes of ``plan``, by scenario, then agent, then seed (the scenario's own seeds:
    :meth:`Plan.seeds_of`)."""
    return [
        EpisodeTask(agent.text, scenario.spec, seed, plan.horizon_s, plan.tuned, latency_target=plan.target)
        for scenario in plan.scenarios
        for agent in plan.agents
        for seed in plan.seeds_of(scenario)
    ]


def make_bound_tasks(plan: Plan) -> list[BoundTask]:
    """The hindsight bounds of ``plan`` (one per scenario and seed; none without
    ``plan.hindsight``, and for several workers only with ``plan.hindsight_several``): the least
    cost any schedule reaches on each episode's arrivals (a lower bound of it for several
    workers)."""
    if not plan.hindsight:
        return []
    return [
        BoundTask(scenario.spec, seed, plan.horizon_s)
        for scenario in plan.scenarios
        if scenario.config.n_workers == 1 or plan.hindsight_several
        for seed in plan.seeds_of(scenario)
    ]


def open_bound_cache(plan: Plan) -> BoundCache | None:
    """The cache of hindsight bounds the plan reads and writes (``--hindsight-cache``; default
    ``.hindsight_cache`` in ``--out``), or None (``--no-hindsight-cache``, or no bounds)."""
    return BoundCache(plan.hindsight_cache) if plan.hindsight and plan.hindsight_cache is not None else None


def run_plan(
    plan: Plan,
    tasks: list[EpisodeTask],
    console: Console | None,
    bound_tasks: list[BoundTask] | None = None,
    cache: BoundCache | None = None,
) -> tuple[list[Outcome[EpisodeResult]], list[Outcome[BoundResult]]]:
    """The outcome of every episode and every hindsight bound, in task order, with progress
    bars on ``console``, on one backend; a failed task is an outcome with its error, the others
    are kept. With ``cache`` (:func:`open_bound_cache`) the bounds it holds are read from it
    and the others stored in it: the outcomes are the same.

    :raises KeyboardInterrupt: after cancelling the queued and running tasks.
    """
    with plan.backend.create() as backend:
        if console is not None:
            console.print(f"running on {backend.describe()}", markup=False)
        episodes = run_tasks(
            backend, run_episode_task, [(task,) for task in tasks], description="episodes", console=console
        )
        bounds: list[Outcome[BoundResult]] = []
        if bound_tasks:
            bounds = run_bound_tasks(backend, bound_tasks, cache, console=console)
    return episodes, bounds
