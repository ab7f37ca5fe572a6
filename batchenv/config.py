"""System configuration: one validated description of the serving system.

Every part of batchenv (simulator, environment, agents, evaluation, formal models) reads the same
:class:`SystemConfig`, so that a number computed by one can be checked against another.

Units are in the names: ``*_ms`` milliseconds, ``*_s`` seconds, ``*_per_s`` per second.
The defaults are the numbers of the project brief (timing table, T_pre = 2 ms, T_post = 1 ms,
three models of quality 1.00 / 0.97 / 0.92, max batch 64, one worker).

Bad input raises :class:`ConfigError`, whose message names the field (as a dotted path such as
``arrivals.rate_per_s``) and the allowed range.

The parts live in modules of one job each, and everything public is re-exported here, the public
entry point: :mod:`batchenv.config_fields` (the error type and the field checkers),
:mod:`batchenv.timing_config` (timing table, models), :mod:`batchenv.arrival_config` (arrival
process, MMPP), :mod:`batchenv.reward_config` (reward weights, latency target),
:mod:`batchenv.env_config` (environment options) and :mod:`batchenv.config_yaml` (YAML files and
``extends``). This module holds :class:`SystemConfig`, which ties them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchenv.arrival_config import (
    ARRIVAL_PROCESSES,
    MAX_EPISODE_REQUESTS,
    MAX_MMPP_SOJOURN_S,
    MAX_MMPP_SWITCH_RATE_PER_S,
    RATE_RANGE_SCALES,
    ArrivalConfig,
    MixtureComponent,
    _check_mmpp_stay,
    mmpp_stationary,
)
from batchenv.config_fields import (
    MAX_FLOAT,
    MAX_NAME_LENGTH,
    ConfigError,
    _build,
    _integer,
    _positive,
    check_name,
    short_repr,
)
from batchenv.config_yaml import (
    _LEFT_OUT_AT_DEFAULT,
    MAX_EXTENDS,
    _leave_out_defaults,
    _plain,
    _read_yaml_tree,
)
from batchenv.env_config import RATE_SCALES, SLO_WAIT_MODES, EnvConfig
from batchenv.reward_config import LatencyTarget, RewardConfig
from batchenv.timing_config import (
    BRIEF_SYSTEM_PATH,
    MAX_BATCH_SIZE,
    MAX_TABLE_ROWS,
    MAX_TIME_MS,
    MIN_TIME_MS,
    TIMING_MODES,
    ModelProfile,
    TimingTable,
    _default_models,
)

__all__ = [
    "ARRIVAL_PROCESSES",
    "BRIEF_SYSTEM_PATH",
    "MAX_BATCH_SIZE",
    "MAX_EPISODE_REQUESTS",
    "MAX_EXTENDS",
    "MAX_FLOAT",
    "MAX_MMPP_SOJOURN_S",
    "MAX_MMPP_SWITCH_RATE_PER_S",
    "MAX_MODELS",
    "MAX_NAME_LENGTH",
    "MAX_QUEUE_CAPACITY",
    "MAX_TABLE_ROWS",
    "MAX_TIME_MS",
    "MIN_TIME_MS",
    "RATE_RANGE_SCALES",
    "RATE_SCALES",
    "SLO_WAIT_MODES",
    "TIMING_MODES",
    "ArrivalConfig",
    "ConfigError",
    "EnvConfig",
    "LatencyTarget",
    "MixtureComponent",
    "ModelProfile",
    "RewardConfig",
    "SystemConfig",
    "TimingTable",
    "check_name",
    "mmpp_stationary",
    "short_repr",
]

MAX_MODELS = 16
MAX_QUEUE_CAPACITY = 1_000_000


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemConfig:
    """The whole served system and its episode settings.

    :param name: scenario name.
    :param timing: the per-batch timing table.
    :param models: deployable models, in action order (action k dispatches on ``models[k - 1]``).
    :param max_batch_size: largest batch (<= the largest table batch size), default 64.
    :param n_workers: identical workers (GPUs), default 1.
    :param queue_capacity: waiting requests beyond which arrivals are dropped, default 1024.
    :param max_wait_ms: batch timeout as a hard guarantee: the oldest request never waits longer
        while a worker is idle (ms), default 100.
    :param slo_ms: latency objective per request (ms), default 250.
    :param horizon_s: simulated time per episode (s), default 60.
    :param arrivals: the arrival process.
    :param reward: reward weights.
    :param env: environment options.
    :param latency_target: an operator's latency objective (:class:`LatencyTarget`), on top of
        the score; None (default) states none. Schedulers that take targets
        (:mod:`agents.slo_target`) aim at it and ``evaluate.py`` reports whether it was met.
    :param source_path: the YAML file this config came from (relative trace paths resolve there).
    """

    name: str = "default"
    timing: TimingTable = field(default_factory=TimingTable)
    models: tuple[ModelProfile, ...] = field(default_factory=_default_models)
    max_batch_size: int = 64
    n_workers: int = 1
    queue_capacity: int = 1024
    max_wait_ms: float = 100.0
    slo_ms: float = 250.0
    horizon_s: float = 60.0
    arrivals: ArrivalConfig = field(default_factory=ArrivalConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    latency_target: LatencyTarget | None = None
    source_path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for section, cls in _SECTIONS.items():
            value = getattr(self, section)
            if not isinstance(value, cls):
                object.__setattr__(self, section, _build(cls, value, section))
        if isinstance(self.models, Sequence) and not isinstance(self.models, str | bytes):
            object.__setattr__(
                self,
                "models",
                tuple(_build(ModelProfile, m, f"models[{i}]") for i, m in enumerate(self.models)),
            )
        check_name("name", self.name)
        timing = self.timing.validate("timing")
        models = self.models
        if isinstance(models, str | bytes) or not isinstance(models, Sequence) or not models:
            raise ConfigError("models", "must be a non-empty list of models")
        if len(models) > MAX_MODELS:
            raise ConfigError("models", f"at most {MAX_MODELS} models, got {len(models)}")
        models = tuple(m.validate(f"models[{i}]") for i, m in enumerate(models))
        names = [m.name for m in models]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"models[{i}].name", f"duplicate model name {name!r}")
        for i, m in enumerate(models):
            if len(m.inference_ms) != len(timing.batch_sizes):
                raise ConfigError(
                    f"models[{i}].inference_ms",
                    f"must have {len(timing.batch_sizes)} entries (one per timing.batch_sizes), "
                    f"got {len(m.inference_ms)}",
                )
        validated = dict(
            timing=timing,
            models=models,
            max_batch_size=_integer("max_batch_size", self.max_batch_size, 1, timing.batch_sizes[-1]),
            n_workers=_integer("n_workers", self.n_workers, 1, 64),
            queue_capacity=_integer("queue_capacity", self.queue_capacity, 1, MAX_QUEUE_CAPACITY),
            max_wait_ms=_positive("max_wait_ms", self.max_wait_ms),
            slo_ms=_positive("slo_ms", self.slo_ms),
            horizon_s=_positive("horizon_s", self.horizon_s),
            arrivals=self.arrivals.validate("arrivals"),
            reward=self.reward.validate("reward"),
            env=self.env.validate("env"),
            latency_target=_latency_target(self.latency_target),
        )
        for key, value in validated.items():
            object.__setattr__(self, key, value)
        arrivals = self.arrivals  # the validated settings, set just above
        peak_rate = max((arrivals.mean_rate_per_s, *(arrivals.rate_range_per_s or ())))
        if peak_rate * self.horizon_s > MAX_EPISODE_REQUESTS:
            raise ConfigError(
                "horizon_s",
                f"{self.horizon_s:g} s at up to {peak_rate:g} requests/s is more than "
                f"{MAX_EPISODE_REQUESTS:g} requests per episode (evaluation keeps every request: "
                "memory); use a shorter horizon or a lower rate",
            )
        if arrivals.process == "mmpp":
            _check_mmpp_stay(arrivals, peak_rate)

    # ---------------------------------------------------------------- derived quantities
    @property
    def n_models(self) -> int:
        """The number of models M."""
        return len(self.models)

    @property
    def model_names(self) -> tuple[str, ...]:
        """The models' names, by index."""
        return tuple(m.name for m in self.models)

    @property
    def qualities(self) -> tuple[float, ...]:
        """The models' qualities, by index."""
        return tuple(m.quality for m in self.models)

    def model_index(self, name: str) -> int:
        """Index of the model called ``name``; ConfigError naming the known models otherwise."""
        try:
            return self.model_names.index(name)
        except ValueError:
            raise ConfigError("model", f"unknown model {name!r}; known: {list(self.model_names)}") from None

    def replace(self, **changes: Any) -> SystemConfig:
        """A validated copy with ``changes`` applied (nested sections as dataclasses or dicts).

        :raises ConfigError: naming a field that does not exist, or a value out of range.
        """
        self._check_fields(changes)
        for section, cls in _SECTIONS.items():
            if isinstance(changes.get(section), Mapping):
                base = dataclasses.asdict(getattr(self, section))
                base.update(changes[section])
                changes[section] = _build(cls, base, section)
        return dataclasses.replace(self, **changes)

    def at_rate(self, mean_rate_per_s: float) -> SystemConfig:
        """The same system and arrival shape at a fixed mean rate (requests/s), without domain
        randomisation: for load sweeps and per-rate evaluation."""
        arrivals = self.arrivals.scaled_to(mean_rate_per_s).without_rate_ranges()
        return dataclasses.replace(self, arrivals=arrivals)

    # ---------------------------------------------------------------- YAML
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source_path: str | None = None) -> SystemConfig:
        """Build and validate a config from a plain mapping (as read from YAML)."""
        if not isinstance(data, Mapping):
            raise ConfigError("", f"a config must be a mapping of fields, got {type(data).__name__}")
        cls._check_fields(data)
        return cls(**data, source_path=source_path)

    @classmethod
    def _check_fields(cls, names: Mapping[str, Any]) -> None:
        """ConfigError naming the first of ``names`` that is no field a user may set."""
        known = {f.name for f in dataclasses.fields(cls)} - {"source_path"}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; allowed: {sorted(known)}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> SystemConfig:
        """Load a config from a YAML file; missing file or bad YAML give a ConfigError.

        A file may start from another with ``extends: NAME`` (a packaged scenario) or
        ``extends: other.yaml`` (relative to the file): its fields are merged over that one's,
        section by section.
        """
        path = Path(path).resolve()
        return cls.from_dict(_read_yaml_tree(path, ()), source_path=str(path))

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-ready mapping; ``SystemConfig.from_dict(c.to_dict()) == c``."""
        data = _plain(dataclasses.asdict(self))
        data.pop("source_path", None)
        _leave_out_defaults(data["arrivals"], _LEFT_OUT_AT_DEFAULT["arrivals"])
        for component in data["arrivals"].get("components") or ():
            _leave_out_defaults(component["arrivals"], _LEFT_OUT_AT_DEFAULT["arrivals"])
        _leave_out_defaults(data["env"], _LEFT_OUT_AT_DEFAULT["env"])
        _leave_out_defaults(data["reward"], _LEFT_OUT_AT_DEFAULT["reward"])
        if data["latency_target"] is None:  # unset: the YAML (and tuned fingerprints) as before
            del data["latency_target"]
        else:
            data["latency_target"] = {k: v for k, v in data["latency_target"].items() if v is not None}
        return data

    def to_yaml(self) -> str:
        """The config as YAML text (what :meth:`from_yaml` reads back)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _latency_target(value: Any) -> LatencyTarget | None:
    """The ``latency_target`` field: None, a :class:`LatencyTarget`, a mapping of its fields or
    its short form (``p99<=100ms``), checked."""
    if value is None:
        return None
    if isinstance(value, str):
        return LatencyTarget.parse(value)
    return _build(LatencyTarget, value, "latency_target").validate("latency_target")


_SECTIONS: dict[str, type] = {
    "timing": TimingTable,
    "arrivals": ArrivalConfig,
    "reward": RewardConfig,
    "env": EnvConfig,
}
