"""Episodes of an evaluation: one :class:`~execution.episode.EpisodeTask` per (agent, scenario,
seed), run on the plan's backend (:mod:`execution`). Each episode is a pure function of its
task, so the results do not depend on the backend or its number of jobs."""

from __future__ import annotations

from rich.console import Console

from evaluation.plan import Plan
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.outcome import Outcome
from execution.run import run_tasks

__all__ = ["make_tasks", "run_plan"]


def make_tasks(plan: Plan) -> list[EpisodeTask]:
    """The episodes of ``plan``, by scenario, then agent, then seed."""
    return [
        EpisodeTask(agent.text, scenario.spec, seed, plan.horizon_s, plan.tuned)
        for scenario in plan.scenarios
        for agent in plan.agents
        for seed in plan.seeds
    ]


def run_plan(plan: Plan, tasks: list[EpisodeTask], console: Console | None) -> list[Outcome[EpisodeResult]]:
    """The outcome of every task, in task order, with a progress bar on ``console``; a failed
    episode is an outcome with its error, the others are kept.

    :raises KeyboardInterrupt: after cancelling the queued and running episodes.
    """
    with plan.backend.create() as backend:
        if console is not None:
            console.print(f"running on {backend.describe()}")
        return run_tasks(
            backend, run_episode_task, [(task,) for task in tasks], description="episodes", console=console
        )
