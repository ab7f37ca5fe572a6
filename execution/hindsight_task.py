"""The hindsight bound of one evaluation episode as a task: (scenario, seed, horizon) -> plain data.

An evaluation reports every agent's gap to the least cost any schedule reaches on the same
arrivals (:mod:`agents.hindsight`); the bound depends on the scenario and the seed only, so it is
computed once per (scenario, seed), on the same backend as the episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agents.hindsight import episode_bound
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import scenario_config
from execution.paths import scenario_file

__all__ = ["BoundResult", "BoundTask", "run_bound_task"]


@dataclass(frozen=True)
class BoundTask:
    """The hindsight bound of the episode ``simulate(scenario, policy, seed)``.

    :param scenario: a scenario name or YAML path, or a :class:`SystemConfig`.
    :param seed: the episode's seed.
    :param horizon_s: simulated seconds; None = the scenario's ``horizon_s``.
    :ivar scenario_file: the absolute path of the scenario's file when ``scenario`` is a path,
        resolved where the task is made (the driver): what a worker reads, wherever it runs
        (:mod:`execution.paths`).
    """

    scenario: str | SystemConfig
    seed: int
    horizon_s: float | None = None
    scenario_file: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.scenario, str):
            object.__setattr__(self, "scenario_file", scenario_file(self.scenario))


@dataclass(frozen=True)
class BoundResult:
    """The bound per arrived request (cost units), or why it does not apply.

    :ivar status: ``"ok"`` or ``"not_applicable"`` (e.g. several workers).
    :ivar lower_cost_per_request: no policy's cost per request on the episode is below it.
    :ivar exact: the simulator can play a schedule that reaches the bound.
    :ivar upper_cost_per_request: the cost of the best schedule found (the bound when exact).
    :ivar reason: why the bound does not apply.
    """

    status: Literal["ok", "not_applicable"]
    lower_cost_per_request: float = float("nan")
    exact: bool = False
    upper_cost_per_request: float = float("nan")
    reason: str = ""


def run_bound_task(task: BoundTask) -> BoundResult:
    """Compute the bound of ``task``'s episode (seconds of CPU at a few hundred requests/s)."""
    if isinstance(task.scenario, SystemConfig):
        config = task.scenario if task.horizon_s is None else task.scenario.replace(horizon_s=task.horizon_s)
    else:
        config = scenario_config(task.scenario_file or task.scenario, task.horizon_s)
    try:  # the same config as the episode's (execution.episode), so the same arrivals
        bound = episode_bound(config, task.seed)
    except ConfigError as exc:  # raised for the systems the bound does not cover
        return BoundResult("not_applicable", reason=str(exc))
    return BoundResult(
        "ok",
        lower_cost_per_request=bound.lower_cost_per_request,
        exact=bound.exact,
        upper_cost_per_request=bound.upper_cost_per_request,
    )
