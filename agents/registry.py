"""Agents by name: one line from a command-line spec to a runnable agent.

A spec is one of

- a baseline name, optionally with parameters: ``greedy``, ``static(B=16)``,
  ``timeout(B=16,T=30,model=LLM-2)``, ``util_switch(queue_thresholds=[16,64])`` (values are read as
  YAML scalars or lists; ``B`` and ``T`` are short for ``preferred_batch_size`` /
  ``max_queue_delay_ms``, or ``batch_size`` for ``static``);
- ``optimal``: the exact SMDP optimum of :mod:`agents.optimal` (one worker, Poisson arrivals);
- ``proposed``: the project's own scheduler (:mod:`agents.proposed`);
- ``robust``: the proposed scheduler made robust to bursts (:mod:`agents.robust`);
- ``slo_target``: a table-based scheduler aiming at a latency target with the best quality it
  can (:mod:`agents.slo_target`), e.g. ``slo_target(inner=optimal,target=p99<=100ms)``;
- a checkpoint path ending in ``.zip``: a learned agent saved by ``train.py``
  (:mod:`agents.checkpoint`), run by :class:`~agents.checkpoint.RLScheduler`.

``timeout`` and ``util_switch`` take the parameters tuned for the scenario
(``agents/tuned/<scenario>.yaml``, written by ``python -m apps.tune``, read by
:mod:`agents.tuned_params`) unless ``tuned=False``;
parameters given in the spec override tuned ones. Every agent built here carries
``params_source``, a short text saying where its parameters came from.

:func:`run_episode` runs one episode of any agent on the simulator's fast path; a learned agent
builds the environment's observation from the simulator state itself, so it acts as it would
through :class:`~batchenv.env.DynamicBatchingEnv` and meets the same arrivals for the same seed.
"""

from __future__ import annotations

import inspect
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.base import Scheduler
from agents.baselines import BASELINES
from agents.optimal import OptimalScheduler
from agents.proposed import Proposed
from agents.robust import RobustProposed
from agents.slo_target import SloTargeted
from agents.tuned_params import TUNABLE, TUNED_DIR, load_tuned, tuned_file, tuning_target
from batchenv.config import ConfigError, SystemConfig
from batchenv.sim import Simulator, simulate

__all__ = [
    "ALIASES",
    "UNTUNED_SOURCE",
    "AgentSpec",
    "AgentSpecError",
    "CheckpointError",
    "NotApplicableError",
    "agent_names",
    "is_untuned",
    "make_agent",
    "parse_agent_spec",
    "run_episode",
    "split_specs",
]

ALIASES: dict[str, dict[str, str]] = {
    "static": {"B": "batch_size"},
    "timeout": {"B": "preferred_batch_size", "T": "max_queue_delay_ms"},
    "util_switch": {"B": "preferred_batch_size", "T": "max_queue_delay_ms"},
}
"""Short parameter names accepted in specs, per agent."""

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


class AgentSpecError(ValueError):
    """An agent spec cannot be turned into an agent (unknown name, bad parameter, ...)."""


class CheckpointError(AgentSpecError):
    """A checkpoint file is missing, corrupted or does not fit the scenario (the message of
    :class:`agents.checkpoint.CheckpointError`)."""


class NotApplicableError(AgentSpecError):
    """The agent exists but does not apply to this scenario (e.g. ``optimal`` on two workers)."""


EXTERNAL: dict[str, tuple[type[Scheduler], str]] = {
    "optimal": (OptimalScheduler, "solved"),
    "proposed": (Proposed, "defaults"),
    "robust": (RobustProposed, "defaults"),
    "slo_target": (SloTargeted, "defaults"),
}
"""The agents besides the baselines, whose construction solves SMDPs (a plan builds them only
when it runs them): name -> (class, the ``params_source`` of their default parameters)."""


def agent_names() -> list[str]:
    """Names accepted in specs (besides checkpoint paths)."""
    return [*BASELINES, *EXTERNAL]


@dataclass(frozen=True)
class AgentSpec:
    """A parsed spec. ``name`` is a registry name or ``"checkpoint"`` (then ``path`` is set)."""

    text: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    alias: str | None = None  # the label, when the default one is taken (see :attr:`label`)

    @property
    def label(self) -> str:
        """Short label for tables: ``alias`` if set, else the spec as typed, or the checkpoint's
        file stem."""
        if self.alias is not None:
            return self.alias
        return self.path.stem if self.path is not None else self.text.replace(" ", "")


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs, keeping commas inside ``(...)`` and ``[...]``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    if depth != 0:
        raise AgentSpecError(f"unbalanced brackets in {text!r}")
    return [p for p in parts if p]


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_agent_spec(text: str) -> AgentSpec:
    """Parse ``name``, ``name(key=value, ...)`` or a ``.zip`` checkpoint path (no file access)."""
    text = text.strip()
    if text.endswith(".zip"):
        return AgentSpec(text, "checkpoint", path=Path(text))
    match = _SPEC.match(text)
    if not match:
        raise AgentSpecError(
            f"cannot parse agent {text!r}; expected NAME, NAME(key=value,...) or a .zip checkpoint path"
        )
    name, inner = match.group(1), match.group(2)
    if name not in agent_names():
        raise AgentSpecError(f"unknown agent {name!r}; known: {agent_names()} or a .zip checkpoint path")
    kwargs: dict[str, Any] = {}
    for item in split_specs(inner or ""):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise AgentSpecError(f"{text!r}: parameters are key=value pairs, got {item!r}")
        key = ALIASES.get(name, {}).get(key, key)
        if key in kwargs:
            raise AgentSpecError(f"{text!r}: parameter {key!r} given twice")
        kwargs[key] = _parse_value(value.strip())
    return AgentSpec(text, name, kwargs)


def _accepted(factory: Callable[..., Any]) -> list[str]:
    """Keyword parameters of a constructor, besides ``config``."""
    params = inspect.signature(factory).parameters
    return [p for p in params if p not in ("self", "config")]


UNTUNED_SOURCE = "defaults (tuned parameters for"
"""How the ``params_source`` of a tunable baseline (``timeout``, ``util_switch``) that has no tuned
parameters for its scenario (and latency target) starts: it runs with its default parameters."""


def is_untuned(params_source: str) -> bool:
    """Whether ``params_source`` says a tunable baseline ran untuned: tuned parameters were
    asked for (no ``--no-tuned``, no parameters given) but none exist for its scenario and target."""
    return params_source.startswith(UNTUNED_SOURCE)


def _tune_hint(config: SystemConfig, directory: Path, scenario_spec: str | None) -> str:
    """Where the parameters of an untuned ``timeout``/``util_switch`` come from, with the command
    that tunes them: for the held-out half of a trace its packaged training half, otherwise the
    scenario as the user named it (``scenario_spec``, e.g. a YAML path: a path's ``name:`` is no
    scenario name ``apps.tune`` knows), so the command works as printed."""
    source = tuning_target(config)
    why = "stale: the scenario changed" if tuned_file(config, directory).is_file() else "none"
    target = config.latency_target
    for_what = source.name if target is None else f"{source.name} with {target.describe(config.slo_ms)}"
    given = scenario_spec if scenario_spec and source is config else source.name
    option = "" if target is None else f" --target {shlex.quote(target.short(config.slo_ms))}"
    return (
        f"{UNTUNED_SOURCE} {for_what!r}: {why}; "
        f"run python -m apps.tune --scenarios {shlex.quote(given)}{option})"
    )


def _build_baseline(
    spec: AgentSpec,
    config: SystemConfig,
    tuned: bool,
    tuned_dir: Path | None,
    scenario_spec: str | None = None,
) -> Scheduler:
    cls = BASELINES[spec.name]
    accepted = _accepted(cls.__init__)
    unknown = sorted(set(spec.kwargs) - set(accepted))
    if unknown:
        short = ALIASES.get(spec.name, {})
        hint = f" (short names: {short})" if short else ""
        raise AgentSpecError(f"{spec.text!r}: unknown parameter {unknown[0]!r}; accepted: {accepted}{hint}")
    kwargs = dict(spec.kwargs)
    source = "given" if kwargs else "defaults"
    if tuned and spec.name in TUNABLE:
        if tuned_dir is not None and not Path(tuned_dir).is_dir():
            # an explicit folder that is not there is a mistake (a relative path read elsewhere):
            # never the silent defaults of a scenario that has no tuned file
            raise ConfigError("tuned_dir", f"no such folder: {tuned_dir}")
        directory = tuned_dir or TUNED_DIR
        record = load_tuned(config, directory)
        if record is not None and spec.name in record.agents:
            kwargs = {**record.agents[spec.name]["params"], **kwargs}
            source = f"tuned ({record.path.name})" + (" with given overrides" if spec.kwargs else "")
        elif not spec.kwargs:
            source = _tune_hint(config, Path(directory), scenario_spec)
    try:
        agent = cls(config, **kwargs)
    except (ValueError, TypeError) as exc:
        raise AgentSpecError(f"{spec.text!r}: {exc}") from None
    agent.params_source = source
    return agent


def _build_external(spec: AgentSpec, config: SystemConfig) -> Scheduler:
    cls, default_source = EXTERNAL[spec.name]
    accepted = _accepted(cls.__init__)
    unknown = sorted(set(spec.kwargs) - set(accepted))
    if unknown:
        raise AgentSpecError(f"{spec.text!r}: unknown parameter {unknown[0]!r}; accepted: {accepted}")
    try:
        agent = cls(config, **spec.kwargs)
    except ConfigError as exc:
        raise NotApplicableError(f"{spec.name} does not apply to scenario {config.name!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise AgentSpecError(f"{spec.text!r}: {exc}") from None
    agent.params_source = default_source if not spec.kwargs else f"{default_source}, given options"
    return agent


def _build_checkpoint(path: Path, config: SystemConfig) -> Scheduler:
    # torch and Stable-Baselines3 take seconds to import: only a checkpoint agent needs them
    from agents.checkpoint import CheckpointError as LoadError
    from agents.checkpoint import CheckpointMismatchError, RLScheduler, load_checkpoint

    try:
        import torch

        torch.set_num_threads(1)  # one thread per process: evaluation runs processes in parallel
        agent = RLScheduler(load_checkpoint(path), config)
    except CheckpointMismatchError as exc:  # a sound checkpoint for another system
        raise NotApplicableError(str(exc)) from None
    except LoadError as exc:
        raise CheckpointError(str(exc)) from None
    agent.params_source = f"checkpoint {path.name}"
    return agent


def make_agent(
    spec: str | AgentSpec,
    config: SystemConfig,
    *,
    tuned: bool = True,
    tuned_dir: Path | None = None,
    scenario_spec: str | None = None,
) -> Any:
    """The agent a spec names, for the system ``config``.

    :param spec: a spec string (see the module docstring) or a parsed :class:`AgentSpec`.
    :param config: the scenario the agent will serve (tuned parameters are looked up by its name).
    :param tuned: use ``agents/tuned/<scenario>.yaml`` for ``timeout`` and ``util_switch``.
    :param tuned_dir: look for tuned files there instead of ``agents/tuned/`` (it must exist).
    :param scenario_spec: the scenario as the user named it (a name or YAML path), for the
        ``python -m apps.tune --scenarios ...`` hint of an untuned baseline (default: its name).
    :raises AgentSpecError: unknown name or bad parameter; :class:`CheckpointError` for a bad
        checkpoint; :class:`NotApplicableError` if the agent does not apply to the scenario.
    :raises ConfigError: (``tuned_dir``) ``tuned_dir`` is given but is no folder, for an agent
        with tuned parameters.
    """
    if isinstance(spec, str):
        spec = parse_agent_spec(spec)
    if spec.name == "checkpoint":
        assert spec.path is not None
        return _build_checkpoint(spec.path, config)
    if spec.name in EXTERNAL:
        return _build_external(spec, config)
    return _build_baseline(spec, config, tuned, tuned_dir, scenario_spec)


def run_episode(agent: Scheduler, config: SystemConfig, seed: int, *, record: bool = True) -> Simulator:
    """Run one episode of ``agent`` on ``config`` (its ``horizon_s``) with arrivals from ``seed``;
    returns the finished simulator (see :func:`batchenv.metrics.compute_metrics`)."""
    return simulate(config, agent, seed, sim=Simulator(config, record=record))
