"""Tuned parameters of the ``timeout`` and ``util_switch`` baselines: the files
``agents/tuned/<scenario>.yaml``, written by the grid search (``python -m apps.tune``,
:mod:`evaluation.tuning`) and read by :mod:`agents.registry`.

Each file records the command that produced it, the training seeds and a fingerprint of the
scenario; :func:`load_tuned` ignores a file whose scenario has changed since (stale).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchenv.config import ConfigError, SystemConfig, check_name
from batchenv.fileio import write_atomic
from batchenv.safe_yaml import YamlError, comment_block, load_yaml
from batchenv.scenarios import load_scenario, trace_scenarios, train_split_of

__all__ = [
    "TUNABLE",
    "TUNED_DIR",
    "TunedRecord",
    "config_fingerprint",
    "load_tuned",
    "read_tuned",
    "tuned_file",
    "tuned_path",
    "tuning_target",
    "write_tuned",
]

TUNABLE = ("timeout", "util_switch")
"""The baselines that have tuned parameters."""

TUNED_DIR = Path(__file__).resolve().parent / "tuned"
TARGETS_SUBDIR = "targets"
"""Tuned files for a scenario with a latency target live in ``<tuned dir>/targets/``."""


def config_fingerprint(config: SystemConfig) -> str:
    """Short hash of everything in a scenario that a baseline's cost depends on (all fields
    except the horizon and the environment options)."""
    data = config.to_dict()
    data.pop("horizon_s", None)
    data.pop("env", None)
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TunedRecord:
    """The content of one ``agents/tuned/<scenario>.yaml``.

    :ivar agents: per tuned agent: ``params`` (constructor keywords), ``cost_per_request``,
        ``candidates``.
    :ivar stale: the scenario changed since tuning (its fingerprint differs); do not use.
    """

    path: Path
    scenario: str
    fingerprint: str
    agents: dict[str, dict[str, Any]]
    data: dict[str, Any]
    stale: bool = False


def tuned_path(scenario: str, directory: Path = TUNED_DIR) -> Path:
    """Where the tuned parameters of ``scenario`` live in ``directory``.

    :raises ConfigError: (``name``) if the file would not be directly in ``directory``: a name
        with a path separator or NUL, ``.`` or ``..`` (:func:`batchenv.config.check_name`, which
        a :class:`SystemConfig` has passed already).
    """
    return _file_in(Path(directory), scenario)


def _file_in(directory: Path, stem: str) -> Path:
    """``<directory>/<stem>.yaml``; ConfigError (``name``) unless ``stem`` is a plain file name
    (:func:`batchenv.config.check_name`), so that the file is directly in ``directory``."""
    return directory / f"{check_name('name', stem)}.yaml"


def tuning_target(config: SystemConfig) -> SystemConfig:
    """The scenario whose tuned parameters serve ``config``: for the held-out half of a trace
    scenario (``X_test``, :func:`batchenv.scenarios.eval_split_of`) its training half ``X_train``
    (tune on the first part of a trace, evaluate on the rest), with ``config``'s latency target;
    otherwise ``config`` itself."""
    base = config.name.removesuffix("_test")
    if base == config.name or base not in trace_scenarios():
        return config
    plain = config.replace(latency_target=None)
    if config_fingerprint(plain) != config_fingerprint(load_scenario(config.name)):
        return config  # a changed copy of the packaged scenario: tune it as it is
    return load_scenario(train_split_of(base)).replace(latency_target=config.latency_target)


def tuned_file(config: SystemConfig, directory: Path = TUNED_DIR) -> Path:
    """Where the tuned parameters of ``config`` live: ``<directory>/<scenario>.yaml``, or with a
    latency target (tuned to meet it, :func:`evaluation.tuning.tune_for_objective`)
    ``<directory>/targets/<scenario>__<target>.yaml`` (e.g. ``azure_trace__p99-100ms.yaml``);
    the scenario is the :func:`tuning_target` of ``config``."""
    source = tuning_target(config)
    target = config.latency_target
    if target is None:
        return tuned_path(source.name, directory)
    return _file_in(Path(directory) / TARGETS_SUBDIR, f"{source.name}__{target.slug(config.slo_ms)}")


def load_tuned(config: SystemConfig, directory: Path = TUNED_DIR) -> TunedRecord | None:
    """The tuned parameters for ``config`` (looked up by the name of its :func:`tuning_target`
    and its latency target, :func:`tuned_file`: a trace's ``_test`` half takes those tuned on its
    ``_train`` half), or None if there are none or they were tuned for a different version of
    the scenario."""
    record = read_tuned(tuned_file(config, directory))
    if record is None or record.fingerprint != config_fingerprint(tuning_target(config)):
        return None
    return record


def read_tuned(path: Path) -> TunedRecord | None:
    """Read a tuned-parameter file; None if it does not exist.

    :raises ConfigError: the file exists but is malformed.
    """
    if not path.is_file():
        return None
    try:
        data = load_yaml(path, allow_aliases=True)
    except YamlError as exc:
        raise ConfigError("<tuned>", f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        raise ConfigError("<tuned>", f"{path} must hold a mapping with an 'agents' section")
    for name, entry in data["agents"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
            raise ConfigError(f"<tuned>.agents.{name}", f"{path}: needs a 'params' mapping")
    return TunedRecord(
        path=path,
        scenario=str(data.get("scenario", path.stem)),
        fingerprint=str(data.get("config_fingerprint", "")),
        agents=data["agents"],
        data=data,
    )


def write_tuned(path: Path, data: dict[str, Any]) -> None:
    """Write a tuned-parameter file atomically (temporary file + rename)."""
    objective = "mean cost per request (best quality - score); lower is better"
    if "latency_target" in data:
        objective = data["objective"]
    header = comment_block(
        [
            f"Tuned parameters of the timeout and util_switch baselines for scenario {data['scenario']!r}.",
            f"Grid search on training seeds {data['training_seeds']} (never used for evaluation);",
            f"objective: {objective}.",
            f"Reproduce with: {data['command']}",
        ]
    )
    text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    write_atomic(path, text)
