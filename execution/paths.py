"""The files a task names, made absolute in the driver when the task is made.

A task names files as the user typed them: a checkpoint (``checkpoints/ppo.zip``), a scenario YAML
file (``benchmarks/configs/x.yaml``, and through it the trace files it names relative to itself),
a folder of tuned parameters. A worker of the local pool runs in the driver's working folder, but
a Ray worker runs in the folder of its Ray session (where ``ray start`` ran, on its own node), where
a relative path names another file or none. So :class:`execution.episode.EpisodeTask` and
:class:`execution.hindsight_task.BoundTask` keep what the user typed, for the results and the
messages, and carry besides the absolute paths it names, resolved here when the task is made (in
the driver, like :func:`apps.sweep.trial_args` for training runs). A worker uses those, so a
relative path means the same file on every backend (on a cluster: the same path on every node).

Scenario names are left as they are: the packaged ones are on every node, and the directories of
``$BATCHENV_SCENARIO_PATH`` reach Ray's workers through the session's environment
(:func:`execution.ray_backend.start_or_join`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["TaskFiles", "absolute", "checkpoint_file", "scenario_file", "task_files"]

SCENARIO_SUFFIXES = (".yaml", ".yml")
"""A scenario spec ending in one of these is a path (:func:`batchenv.scenarios.load_scenario`)."""


def absolute(text: str) -> str:
    """``text`` as an absolute path from this process's working folder, as the file functions
    would read it here (no ``~`` expansion, no file access); an absolute path is unchanged."""
    return str(Path(text).absolute())


def checkpoint_file(agent: str) -> str | None:
    """The absolute path of the checkpoint an agent spec names (a spec ending in ``.zip``,
    :func:`agents.registry.parse_agent_spec`), None for any other spec."""
    text = agent.strip()
    return absolute(text) if text.endswith(".zip") else None


def scenario_file(scenario: str) -> str | None:
    """The absolute path of the YAML file a scenario spec names when it is a path (it ends in
    ``.yaml``/``.yml`` or names an existing file from here, the rule of
    :func:`batchenv.scenarios.load_scenario`); None for a scenario name."""
    if scenario.endswith(SCENARIO_SUFFIXES) or Path(scenario).is_file():
        return absolute(scenario)
    return None


class TaskFiles(NamedTuple):
    """The absolute paths an episode's task names, None where it names none (see the module
    docstring): what a worker reads, wherever it runs."""

    scenario: str | None = None
    checkpoint: str | None = None
    tuned_dir: str | None = None


def task_files(agent: str | None, scenario: object, tuned_dir: str | None = None) -> TaskFiles:
    """The :class:`TaskFiles` of an agent spec, a scenario (a spec, or a config: then None) and
    a folder of tuned parameters, from this process's working folder."""
    return TaskFiles(
        scenario=scenario_file(scenario) if isinstance(scenario, str) else None,
        checkpoint=checkpoint_file(agent) if agent is not None else None,
        tuned_dir=absolute(tuned_dir) if tuned_dir else None,
    )
