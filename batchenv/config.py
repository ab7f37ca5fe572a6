"""System configuration: one validated description of the serving system.

Every part of batchenv (simulator, environment, agents, evaluation, formal models) reads the same
:class:`SystemConfig`, so that a number computed by one can be checked against another.

Units are in the names: ``*_ms`` milliseconds, ``*_s`` seconds, ``*_per_s`` per second.
The defaults are the numbers of the project brief (timing table, T_pre = 2 ms, T_post = 1 ms,
three models of quality 1.00 / 0.97 / 0.92, max batch 64, one worker).

Bad input raises :class:`ConfigError`, whose message names the field (as a dotted path such as
``arrivals.rate_per_s``) and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from batchenv.safe_yaml import YamlError, load_yaml

__all__ = [
    "ARRIVAL_PROCESSES",
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
    "short_repr",
]

TIMING_MODES = ("interp", "pad")
MAX_MODELS = 16
MAX_TABLE_ROWS = 32
MAX_BATCH_SIZE = 65_536
MAX_QUEUE_CAPACITY = 1_000_000
MIN_TIME_MS = 1e-6
"""Shortest inference time of a table entry (ms): a service time must not round to zero."""
MAX_EPISODE_REQUESTS = 10_000_000
"""Most arrivals an episode may expect (peak mean rate x horizon): bounds the memory of
evaluation, which records every request (about 200 bytes each)."""
MAX_TIME_MS = 3_600_000.0
"""Longest time of a timing-table entry (ms; one hour): pre- and post-processing, communication
and inference times of a batch."""
MAX_NAME_LENGTH = 200
"""Longest scenario name (characters): names become file names, with a suffix."""
MAX_MMPP_SOJOURN_S = 86_400.0
"""Longest mean stay in an MMPP phase (s; one day): each phase's leaving rate is at least its
inverse."""
MAX_MMPP_SWITCH_RATE_PER_S = 10_000.0
"""Largest leaving rate of an MMPP phase (1/s): the arrival stream draws every phase switch."""
MAX_FLOAT = sys.float_info.max
ARRIVAL_PROCESSES = ("poisson", "mmpp", "diurnal", "trace", "mixture")
RATE_RANGE_SCALES = ("linear", "log")
RATE_SCALES = ("linear", "log")
SLO_WAIT_MODES = ("always", "penalised")
"""``env.observe_slo_wait``: when the oldest-wait-over-the-bound entry reads the wait."""


_MAX_MESSAGE = 400


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never print a whole (possibly
    hostile, huge) value; an integer too long to print is described by its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"an integer of about {math.floor(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(ValueError):
    """A configuration value is invalid. ``field`` is the dotted path of the offending field."""

    def __init__(self, field_path: str, message: str) -> None:
        if len(message) > _MAX_MESSAGE:  # never print a whole (possibly huge) value
            message = message[: _MAX_MESSAGE - 3] + "..."
        super().__init__(f"{field_path}: {message}")
        self.field = field_path


# --------------------------------------------------------------------------------------------
# Small validation helpers: each raises ConfigError naming the field.
# --------------------------------------------------------------------------------------------


def _number(path: str, value: Any, allowed: str = "") -> float:
    """``value`` as a finite float; ConfigError naming ``path`` and the range ``allowed`` (e.g.
    ``"> 0"``) otherwise, also for an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be a number, got {short_repr(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        what = f"a finite number {allowed}".rstrip()
        raise ConfigError(path, f"must be {what} (at most {MAX_FLOAT:.4g} in size), got {short_repr(value)}")
    return number


def _positive(path: str, value: Any) -> float:
    value = _number(path, value, "> 0")
    if value <= 0:
        raise ConfigError(path, f"must be > 0, got {value!r}")
    return value


def _non_negative(path: str, value: Any) -> float:
    value = _number(path, value, ">= 0")
    if value < 0:
        raise ConfigError(path, f"must be >= 0, got {value!r}")
    return value


def _time_ms(path: str, value: float) -> float:
    """A time of the timing table (ms), already a number: ConfigError naming ``path`` above
    :data:`MAX_TIME_MS`."""
    if value > MAX_TIME_MS:
        raise ConfigError(path, f"must be <= {MAX_TIME_MS:g} ms (one hour), got {value!r}")
    return value


def check_name(path: str, value: Any) -> str:
    r"""A scenario name, which names files (``agents/tuned/<name>.yaml``, result folders): a
    non-empty string of at most :data:`MAX_NAME_LENGTH` characters with no path separator
    (``/``, ``\``) nor NUL, and not ``.`` or ``..``; ConfigError naming ``path`` otherwise."""
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"must be a non-empty string, got {short_repr(value)}")
    if len(value) > MAX_NAME_LENGTH or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ConfigError(
            path,
            f"must be usable as a file name: 1 to {MAX_NAME_LENGTH} characters, no '/', '\\' or NUL, "
            f"not '.' or '..'; got {short_repr(value)}",
        )
    return value


def _integer(path: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(path, f"must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(path, f"must be an integer >= {minimum}{upper}, got {value!r}")
    return value


def _number_list(path: str, values: Any, *, min_len: int = 1) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(path, f"must be a list of numbers, got {values!r}")
    if len(values) < min_len:
        raise ConfigError(path, f"must have at least {min_len} entries, got {len(values)}")
    return tuple(_number(f"{path}[{i}]", v) for i, v in enumerate(values))


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelProfile:
    """One deployable model.

    :param name: unique name, e.g. ``"LLM-1"``.
    :param quality: answer quality in (0, 1]; the reward for serving one request on this model.
    :param inference_ms: inference time of a batch (ms), one entry per ``TimingTable.batch_sizes``.
    """

    name: str
    quality: float
    inference_ms: tuple[float, ...]

    def validate(self, path: str) -> ModelProfile:
        """The profile, checked; ConfigError naming the field under ``path`` otherwise."""
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{path}.name", f"must be a non-empty string, got {self.name!r}")
        quality = _number(f"{path}.quality", self.quality)
        if not 0 < quality <= 1:
            raise ConfigError(f"{path}.quality", f"must be in (0, 1], got {quality!r}")
        inference = _number_list(f"{path}.inference_ms", self.inference_ms)
        if len(inference) > MAX_TABLE_ROWS:
            raise ConfigError(
                f"{path}.inference_ms", f"at most {MAX_TABLE_ROWS} entries, got {len(inference)}"
            )
        for i, v in enumerate(inference):
            if v < MIN_TIME_MS:
                raise ConfigError(f"{path}.inference_ms[{i}]", f"must be >= {MIN_TIME_MS:g} ms, got {v!r}")
            _time_ms(f"{path}.inference_ms[{i}]", v)
        _check_non_decreasing(f"{path}.inference_ms", inference)
        return dataclasses.replace(self, quality=quality, inference_ms=inference)


def _check_non_decreasing(path: str, values: Sequence[float]) -> None:
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            raise ConfigError(
                f"{path}[{i}]",
                f"must be non-decreasing in batch size ({values[i - 1]!r} then {values[i]!r})",
            )


BRIEF_SYSTEM_PATH = Path(__file__).resolve().parent / "configs" / "default.yaml"
"""The default scenario, where the brief's timing table is written: ``timing`` (batch sizes, comm,
pre- and post-processing times) and ``models`` (quality, inference times). It is written nowhere
else: the defaults of :class:`TimingTable` and :class:`SystemConfig` are read from this file."""


def _brief_table() -> dict[str, Any]:
    """The ``timing`` and ``models`` sections of :data:`BRIEF_SYSTEM_PATH`, as plain data."""
    data = load_yaml(BRIEF_SYSTEM_PATH)
    return {"timing": data["timing"], "models": data["models"]}


_BRIEF = _brief_table()


def _default_models() -> tuple[ModelProfile, ...]:
    """The brief's models and their inference times (ms) per table batch size, from
    :data:`BRIEF_SYSTEM_PATH`."""
    return tuple(
        ModelProfile(m["name"], float(m["quality"]), tuple(float(x) for x in m["inference_ms"]))
        for m in _BRIEF["models"]
    )


@dataclass(frozen=True)
class TimingTable:
    """The brief's per-batch timing model (all times in ms).

    ``service(b, m) = t_pre_ms + comm(b) + inference(m, b) + t_post_ms``; sizes between table rows
    are linearly interpolated (``mode="interp"``) or run as the next table size (``mode="pad"``).
    The defaults are the brief's table, read from :data:`BRIEF_SYSTEM_PATH`.

    :param batch_sizes: strictly increasing table batch sizes, starting at 1.
    :param comm_ms: communication time per batch (ms), one entry per batch size.
    :param t_pre_ms: preprocessing time per batch (ms).
    :param t_post_ms: postprocessing time per batch (ms).
    :param mode: ``"interp"`` or ``"pad"``.
    """

    batch_sizes: tuple[int, ...] = tuple(int(b) for b in _BRIEF["timing"]["batch_sizes"])
    comm_ms: tuple[float, ...] = tuple(float(x) for x in _BRIEF["timing"]["comm_ms"])
    t_pre_ms: float = float(_BRIEF["timing"]["t_pre_ms"])
    t_post_ms: float = float(_BRIEF["timing"]["t_post_ms"])
    mode: str = str(_BRIEF["timing"]["mode"])

    def validate(self, path: str) -> TimingTable:
        """The table, checked and normalised; ConfigError naming the field under ``path`` otherwise."""
        sizes = self.batch_sizes
        if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or not sizes:
            raise ConfigError(f"{path}.batch_sizes", f"must be a non-empty list, got {sizes!r}")
        if len(sizes) > MAX_TABLE_ROWS:
            raise ConfigError(f"{path}.batch_sizes", f"at most {MAX_TABLE_ROWS} entries, got {len(sizes)}")
        sizes = tuple(_integer(f"{path}.batch_sizes[{i}]", b, 1, MAX_BATCH_SIZE) for i, b in enumerate(sizes))
        if sizes[0] != 1:
            raise ConfigError(f"{path}.batch_sizes[0]", f"must be 1, got {sizes[0]}")
        for i in range(1, len(sizes)):
            if sizes[i] <= sizes[i - 1]:
                raise ConfigError(
                    f"{path}.batch_sizes[{i}]",
                    f"must be strictly increasing ({sizes[i - 1]} then {sizes[i]})",
                )
        comm = _number_list(f"{path}.comm_ms", self.comm_ms)
        if len(comm) != len(sizes):
            raise ConfigError(
                f"{path}.comm_ms",
                f"must have {len(sizes)} entries (one per batch size), got {len(comm)}",
            )
        for i, v in enumerate(comm):
            if v < 0:
                raise ConfigError(f"{path}.comm_ms[{i}]", f"must be >= 0, got {v!r}")
            _time_ms(f"{path}.comm_ms[{i}]", v)
        _check_non_decreasing(f"{path}.comm_ms", comm)
        if self.mode not in TIMING_MODES:
            raise ConfigError(f"{path}.mode", f"must be one of {TIMING_MODES}, got {self.mode!r}")
        return dataclasses.replace(
            self,
            batch_sizes=sizes,
            comm_ms=comm,
            t_pre_ms=_time_ms(f"{path}.t_pre_ms", _non_negative(f"{path}.t_pre_ms", self.t_pre_ms)),
            t_post_ms=_time_ms(f"{path}.t_post_ms", _non_negative(f"{path}.t_post_ms", self.t_post_ms)),
        )


@dataclass(frozen=True)
class ArrivalConfig:
    """The arrival process. Every process has a mean rate (:attr:`mean_rate_per_s`).

    :param process: ``"poisson"``, ``"mmpp"``, ``"diurnal"`` or ``"trace"``.
    :param rate_per_s: mean arrival rate (requests/s); for poisson, diurnal and trace.
    :param rates_per_s: mmpp only: arrival rate in each phase (requests/s), >= 2 phases.
    :param switch_rates_per_s: mmpp only: either one leaving rate per phase (1/s; the next phase
        is drawn uniformly among the others) or a full K x K matrix of switching rates (1/s, zero
        diagonal).
    :param amplitude: diurnal only: relative amplitude in [0, 1): rate(t) = r (1 + a sin(2 pi t / P)).
    :param period_s: diurnal only: period P of the rate cycle (s).
    :param phase_rad: diurnal only: phase of the rate cycle at t = 0 (rad).
    :param trace_path: trace only: CSV of arrival timestamps (absolute, or relative to the
        directory of the YAML file loaded, the one that ``extends`` others when it does, not the
        one that sets the field); ``"package:azure_conv_excerpt"`` names the excerpt shipped with
        batchenv.
    :param trace_column: trace only: CSV column with the timestamps (ISO datetimes or seconds).
    :param random_start: trace only: start each episode at a random point of the trace (of its
        window, when ``trace_window`` is set).
    :param trace_window: trace only: ``[start, end]``, the part of the trace to replay, as fractions
        of its duration (0 <= start < end <= 1; arrivals at times in [start, end) x duration, the
        last one included when end = 1); None replays the whole trace. The time axis is rescaled
        for the whole trace, so ``rate_per_s`` is the whole trace's mean rate and a window keeps
        its own level relative to it. A replay longer than the window wraps around within it.
    :param rate_range_per_s: domain randomisation: draw each episode's mean rate from [low, high]
        (requests/s) and rescale the process to it; None keeps the rate fixed.
    :param rate_range_scale: how ``rate_range_per_s`` is drawn: ``"linear"`` (uniform in the rate,
        the default) or ``"log"`` (uniform in log(rate): as many episodes between 1 and 10/s as
        between 100 and 1000/s).
    :param components: mixture only: the processes an episode is drawn from, each a
        :class:`MixtureComponent` (a weight and an arrival section of its own, which may set its
        own ``rate_range_per_s``). Each episode draws one component with probability weight /
        sum of weights, then that component's rate and arrivals, all from the episode's
        generator.
    """

    process: str = "poisson"
    rate_per_s: float | None = 100.0
    rates_per_s: tuple[float, ...] | None = None
    switch_rates_per_s: tuple[Any, ...] | None = None
    amplitude: float = 0.5
    period_s: float = 60.0
    phase_rad: float = 0.0
    trace_path: str | None = None
    trace_column: str = "TIMESTAMP"
    random_start: bool = True
    rate_range_per_s: tuple[float, float] | None = None
    trace_window: tuple[float, float] | None = None
    rate_range_scale: str = "linear"
    components: tuple[MixtureComponent, ...] | None = None

    def validate(self, path: str) -> ArrivalConfig:
        """The arrival settings, checked and normalised; ConfigError naming the field otherwise."""
        if self.process not in ARRIVAL_PROCESSES:
            raise ConfigError(f"{path}.process", f"must be one of {ARRIVAL_PROCESSES}, got {self.process!r}")
        changes: dict[str, Any] = {}
        if self.rate_range_scale not in RATE_RANGE_SCALES:
            raise ConfigError(
                f"{path}.rate_range_scale",
                f"must be one of {RATE_RANGE_SCALES}, got {short_repr(self.rate_range_scale)}",
            )
        if self.process == "mixture":
            return self._validate_mixture(path)
        if self.components is not None:
            raise ConfigError(
                f"{path}.components", f"is only used by process 'mixture', not {self.process!r}"
            )
        if self.process == "mmpp":
            if self.rate_per_s is not None:
                raise ConfigError(
                    f"{path}.rate_per_s",
                    "is not used by process 'mmpp' (its mean follows from rates_per_s and "
                    "switch_rates_per_s); remove it or set it to null",
                )
            rates = _number_list(f"{path}.rates_per_s", self.rates_per_s or (), min_len=2)
            for i, r in enumerate(rates):
                if r < 0:
                    raise ConfigError(f"{path}.rates_per_s[{i}]", f"must be >= 0, got {r!r}")
            if not any(r > 0 for r in rates):
                raise ConfigError(f"{path}.rates_per_s", "at least one rate must be > 0")
            changes["rates_per_s"] = rates
            changes["switch_rates_per_s"] = _switch_matrix(
                f"{path}.switch_rates_per_s", self.switch_rates_per_s, len(rates)
            )
        else:
            if self.rate_per_s is None:
                raise ConfigError(f"{path}.rate_per_s", "is required (a mean rate > 0, requests/s)")
            changes["rate_per_s"] = _positive(f"{path}.rate_per_s", self.rate_per_s)
            if self.rates_per_s is not None or self.switch_rates_per_s is not None:
                raise ConfigError(
                    f"{path}.rates_per_s", f"is only used by process 'mmpp', not {self.process!r}"
                )
        if self.process == "diurnal":
            amplitude = _number(f"{path}.amplitude", self.amplitude)
            if not 0 <= amplitude < 1:
                raise ConfigError(f"{path}.amplitude", f"must be in [0, 1), got {amplitude!r}")
            changes["amplitude"] = amplitude
            changes["period_s"] = _positive(f"{path}.period_s", self.period_s)
            changes["phase_rad"] = _number(f"{path}.phase_rad", self.phase_rad)
        if self.process == "trace":
            if not isinstance(self.trace_path, str) or not self.trace_path:
                raise ConfigError(f"{path}.trace_path", "is required for process 'trace' (a CSV file path)")
            if not isinstance(self.trace_column, str) or not self.trace_column:
                raise ConfigError(f"{path}.trace_column", "must be a non-empty column name")
            if not isinstance(self.random_start, bool):
                raise ConfigError(f"{path}.random_start", f"must be true or false, got {self.random_start!r}")
        if self.trace_window is not None:
            changes["trace_window"] = _trace_window(f"{path}.trace_window", self.trace_window, self.process)
        if self.rate_range_per_s is not None:
            changes["rate_range_per_s"] = _optional_range(
                f"{path}.rate_range_per_s", self.rate_range_per_s, "requests/s", positive=True
            )
        elif self.rate_range_scale != "linear":
            raise ConfigError(f"{path}.rate_range_scale", "applies only with rate_range_per_s [low, high]")
        return dataclasses.replace(self, **changes)

    def _validate_mixture(self, path: str) -> ArrivalConfig:
        """Process ``mixture``: only ``components`` (each validated as an arrival section)."""
        for name in ("rate_per_s", "rates_per_s", "switch_rates_per_s", "rate_range_per_s", "trace_window"):
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"{path}.{name}",
                    "is not used by process 'mixture' (set it in a component's arrivals); "
                    "remove it or set it to null",
                )
        values = self.components
        if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence) or not values:
            raise ConfigError(
                f"{path}.components",
                "process 'mixture' needs a non-empty list of {weight: w, arrivals: {...}} entries",
            )
        components = tuple(
            _build(MixtureComponent, c, f"{path}.components[{i}]").validate(f"{path}.components[{i}]")
            for i, c in enumerate(values)
        )
        total = sum(c.weight for c in components)  # as mean_rate_per_s and the draw add them
        if not math.isfinite(total):
            raise ConfigError(
                f"{path}.components",
                f"the weights must have a finite sum (at most {MAX_FLOAT:.4g}; only their ratios "
                f"matter), got {total!r}",
            )
        return dataclasses.replace(self, components=components)

    @property
    def mean_rate_per_s(self) -> float:
        """Long-run mean arrival rate (requests/s) of the configured process (a mixture: the
        weighted mean of its components' configured means)."""
        if self.process == "mixture":
            total = sum(c.weight for c in self.components or ())
            return float(sum(c.weight * c.arrivals.mean_rate_per_s for c in self.components or ()) / total)
        if self.process != "mmpp":
            assert self.rate_per_s is not None
            return float(self.rate_per_s)
        pi = mmpp_stationary(self.switch_rates_per_s)
        return float(sum(p * r for p, r in zip(pi, self.rates_per_s or (), strict=True)))

    def scaled_to(self, mean_rate_per_s: float) -> ArrivalConfig:
        """The same process shape with its mean rate set to ``mean_rate_per_s`` (requests/s); a
        mixture scales every component by the same factor."""
        mean_rate_per_s = _positive("arrivals.rate_per_s", mean_rate_per_s)
        factor = mean_rate_per_s / self.mean_rate_per_s
        if self.process == "mixture":
            components = tuple(
                dataclasses.replace(c, arrivals=c.arrivals.scaled_to(c.arrivals.mean_rate_per_s * factor))
                for c in self.components or ()
            )
            return dataclasses.replace(self, components=components)
        if self.process != "mmpp":
            return dataclasses.replace(self, rate_per_s=mean_rate_per_s)
        return dataclasses.replace(self, rates_per_s=tuple(r * factor for r in self.rates_per_s or ()))

    def without_rate_ranges(self) -> ArrivalConfig:
        """The same process with no domain randomisation of the rate (nor in any component)."""
        components = self.components
        if components is not None:
            components = tuple(
                dataclasses.replace(c, arrivals=c.arrivals.without_rate_ranges()) for c in components
            )
        return dataclasses.replace(
            self, rate_range_per_s=None, rate_range_scale="linear", components=components
        )


@dataclass(frozen=True)
class MixtureComponent:
    """One component of a ``mixture`` arrival process.

    :param weight: relative probability (> 0) that an episode replays this component.
    :param arrivals: its arrival section (any process but ``mixture``; it may set its own
        ``rate_range_per_s`` and ``rate_range_scale``).
    """

    weight: float = 1.0
    arrivals: ArrivalConfig = field(default_factory=ArrivalConfig)

    def validate(self, path: str) -> MixtureComponent:
        """The component, checked; ConfigError naming the field under ``path`` otherwise."""
        weight = _positive(f"{path}.weight", self.weight)
        arrivals = _build(ArrivalConfig, self.arrivals, f"{path}.arrivals")
        if arrivals.process == "mixture":
            raise ConfigError(f"{path}.arrivals.process", "a mixture cannot contain a mixture")
        return MixtureComponent(weight, arrivals.validate(f"{path}.arrivals"))


def _trace_window(path: str, value: Any, process: str) -> tuple[float, float]:
    """Validate ``[start, end]`` fractions of a trace's duration (0 <= start < end <= 1)."""
    if process != "trace":
        raise ConfigError(path, f"is only used by process 'trace', not {process!r}")
    allowed = "must be [start, end] fractions of the trace's duration with 0 <= start < end <= 1"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(path, f"{allowed}, got {value!r}")
    start, end = _number_list(path, value, min_len=2)
    if not 0 <= start < end <= 1:
        raise ConfigError(path, f"{allowed}, got {[start, end]}")
    return (start, end)


def _switch_matrix(path: str, value: Any, n_phases: int) -> tuple[tuple[float, ...], ...]:
    """Normalise MMPP switching rates to a K x K matrix (1/s) with zero diagonal."""
    if value is None or isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigError(
            path,
            f"must be a list of {n_phases} leaving rates or a {n_phases}x{n_phases} matrix (1/s)",
        )
    if len(value) != n_phases:
        raise ConfigError(path, f"must have {n_phases} entries (one per phase), got {len(value)}")
    if all(not isinstance(v, Sequence) for v in value):
        leave = [_positive(f"{path}[{i}]", v) for i, v in enumerate(value)]
        others = n_phases - 1
        matrix = [[0.0 if i == j else leave[i] / others for j in range(n_phases)] for i in range(n_phases)]
    else:
        matrix = []
        for i, row in enumerate(value):
            row_values = _number_list(f"{path}[{i}]", row)
            if len(row_values) != n_phases:
                raise ConfigError(f"{path}[{i}]", f"must have {n_phases} entries, got {len(row_values)}")
            for j, v in enumerate(row_values):
                if v < 0:
                    raise ConfigError(f"{path}[{i}][{j}]", f"must be >= 0, got {v!r}")
            if row_values[i] != 0:
                raise ConfigError(f"{path}[{i}][{i}]", "diagonal must be 0")
            if sum(row_values) <= 0:
                raise ConfigError(f"{path}[{i}]", "each phase needs a leaving rate > 0")
            matrix.append(list(row_values))
    for i, row in enumerate(matrix):
        _check_leaving_rate(f"{path}[{i}]", sum(row))
    try:
        mmpp_stationary(matrix)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
    return tuple(tuple(row) for row in matrix)


def _check_leaving_rate(path: str, rate_per_s: float) -> None:
    """ConfigError naming ``path`` unless an MMPP phase's leaving rate (1/s) keeps its mean stay
    within :data:`MAX_MMPP_SOJOURN_S` and its switches at most :data:`MAX_MMPP_SWITCH_RATE_PER_S`
    per second (the arrival stream draws each stay and each switch)."""
    lowest = 1.0 / MAX_MMPP_SOJOURN_S
    if not lowest <= rate_per_s <= MAX_MMPP_SWITCH_RATE_PER_S:
        raise ConfigError(
            path,
            f"the phase's leaving rate must be in [{lowest:.4g}, {MAX_MMPP_SWITCH_RATE_PER_S:g}] per s "
            f"(a mean stay of at most {MAX_MMPP_SOJOURN_S:g} s), got {rate_per_s!r}",
        )


def _check_mmpp_stay(arrivals: ArrivalConfig, peak_rate_per_s: float) -> None:
    """ConfigError naming ``arrivals.switch_rates_per_s`` when a stay in the busiest phase holds
    more than :data:`MAX_EPISODE_REQUESTS` arrivals on average (the arrival stream draws a stay's
    arrivals at once: memory), at the peak mean rate ``peak_rate_per_s`` the rates may be scaled to."""
    assert arrivals.rates_per_s is not None and arrivals.switch_rates_per_s is not None
    busiest_per_s = max(arrivals.rates_per_s) * peak_rate_per_s / arrivals.mean_rate_per_s
    longest_stay_s = 1.0 / min(sum(row) for row in arrivals.switch_rates_per_s)
    if busiest_per_s * longest_stay_s > MAX_EPISODE_REQUESTS:
        raise ConfigError(
            "arrivals.switch_rates_per_s",
            f"a mean stay of {longest_stay_s:g} s in a phase of up to {busiest_per_s:g} requests/s holds "
            f"more than {MAX_EPISODE_REQUESTS:g} arrivals (each stay is drawn at once: memory); use "
            "shorter stays or lower rates",
        )


def mmpp_stationary(switch_rates: Any) -> list[float]:
    """Stationary distribution of the phase process with switching-rate matrix ``switch_rates``."""
    rates = np.asarray(switch_rates, dtype=float)
    generator = rates - np.diag(rates.sum(axis=1))
    n = len(rates)
    a = np.vstack([generator.T, np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    pi, *_ = np.linalg.lstsq(a, b, rcond=None)
    if np.any(pi < -1e-12) or not np.allclose(a @ pi, b, atol=1e-9):
        raise ValueError("the phase process must be irreducible (every phase reachable)")
    return [float(max(p, 0.0)) for p in pi]


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights. Per request: ``quality - w_latency_per_s * latency_s``, minus ``w_slo`` if it
    misses its SLO; a dropped request scores ``-w_drop``.

    Training across objectives: with ``slo_probability`` > 0, each episode draws (from the
    episode's generator, before its arrivals) whether it has an SLO objective of its own; if so,
    its SLO bound (ms) and penalty are drawn uniformly from ``slo_ms_range`` and
    ``w_slo_range`` and replace the system's ``slo_ms`` and ``w_slo`` for that episode: the
    reward, the per-request scores and the count of late requests use them, and
    ``env.observe_slo`` shows them to the agent. A training option: a score per request computed
    from the totals (``EpisodeMetrics.score_per_request``) weighs the late requests with the
    system's ``w_slo``, so evaluate on scenarios without drawn objectives.

    :param w_latency_per_s: cost of one second of latency (default 1).
    :param w_slo: penalty per request that misses ``slo_ms`` (default 0).
    :param w_drop: penalty per dropped request (default 1).
    :param slo_probability: share of episodes with a drawn SLO objective, in [0, 1] (default 0:
        every episode has the system's own).
    :param slo_ms_range: [low, high] of the drawn SLO bound (ms), 0 < low <= high; required
        with ``slo_probability`` > 0.
    :param w_slo_range: [low, high] of the drawn penalty per late request (score units),
        0 <= low <= high; required with ``slo_probability`` > 0.
    """

    w_latency_per_s: float = 1.0
    w_slo: float = 0.0
    w_drop: float = 1.0
    slo_probability: float = 0.0
    slo_ms_range: tuple[float, float] | None = None
    w_slo_range: tuple[float, float] | None = None

    def validate(self, path: str) -> RewardConfig:
        """The weights, checked; ConfigError naming the field under ``path`` otherwise."""
        probability = _non_negative(f"{path}.slo_probability", self.slo_probability)
        if probability > 1:
            raise ConfigError(f"{path}.slo_probability", f"must be in [0, 1], got {probability!r}")
        slo_ms_range = _optional_range(f"{path}.slo_ms_range", self.slo_ms_range, "ms", positive=True)
        w_slo_range = _optional_range(f"{path}.w_slo_range", self.w_slo_range, "score units")
        if probability > 0:
            for name, value in (("slo_ms_range", slo_ms_range), ("w_slo_range", w_slo_range)):
                if value is None:
                    raise ConfigError(f"{path}.{name}", "is required with slo_probability > 0 ([low, high])")
        return RewardConfig(
            w_latency_per_s=_non_negative(f"{path}.w_latency_per_s", self.w_latency_per_s),
            w_slo=_non_negative(f"{path}.w_slo", self.w_slo),
            w_drop=_non_negative(f"{path}.w_drop", self.w_drop),
            slo_probability=probability,
            slo_ms_range=slo_ms_range,
            w_slo_range=w_slo_range,
        )


def _optional_range(
    path: str, value: Any, unit: str, *, positive: bool = False
) -> tuple[float, float] | None:
    """``[low, high]`` as a pair with ``0 <= low <= high`` (``0 < low`` if ``positive``), or None."""
    if value is None:
        return None
    bounds = _number_list(path, value, min_len=2)
    lowest_ok = bounds[0] > 0 if positive else bounds[0] >= 0
    if len(bounds) != 2 or not lowest_ok or bounds[0] > bounds[1]:
        relation = "0 < low <= high" if positive else "0 <= low <= high"
        raise ConfigError(path, f"must be [low, high] with {relation} ({unit}), got {list(bounds)}")
    return (bounds[0], bounds[1])


_TARGET_TEXT = re.compile(
    r"^\s*(?:p(?P<pct>[0-9]*\.?[0-9]+)|(?P<att>[0-9]*\.?[0-9]+)\s*%)\s*"
    r"(?:<=\s*(?P<bound>[0-9]*\.?[0-9]+)\s*(?:ms)?)?\s*$"
)


@dataclass(frozen=True)
class LatencyTarget:
    """A latency objective as an operator states it, on top of the score: either a percentile
    and a bound (``percentile: 99, bound_ms: 100``: p99 <= 100 ms) or an attainment of a bound
    (``attainment: 0.95``: 95% of the requests within ``bound_ms``, by default the system's
    ``slo_ms``).

    Both forms are one requirement: at least a fraction :attr:`quantile` of the requests
    finishes within the bound, dropped requests counting as late (the definition of
    ``slo_attainment`` in :mod:`batchenv.metrics`). Exactly one of ``percentile`` and
    ``attainment`` is given.

    :param percentile: the percentile of the latency that must stay within ``bound_ms``, in
        (0, 100) (99 = p99).
    :param bound_ms: the latency bound (ms) > 0; required with ``percentile``; with
        ``attainment`` it defaults to the system's ``slo_ms``.
    :param attainment: the fraction of requests that must finish within the bound, in (0, 1).
    """

    percentile: float | None = None
    bound_ms: float | None = None
    attainment: float | None = None

    def validate(self, path: str) -> LatencyTarget:
        """The target, checked; ConfigError naming the field under ``path`` otherwise."""
        if (self.percentile is None) == (self.attainment is None):
            raise ConfigError(
                path,
                "give exactly one of percentile (with bound_ms, e.g. 99 and 100 for p99 <= 100 ms) "
                "or attainment (a fraction in (0, 1) of requests within bound_ms or slo_ms)",
            )
        percentile = attainment = bound = None
        if self.percentile is not None:
            percentile = _number(f"{path}.percentile", self.percentile)
            if not 0 < percentile < 100:
                raise ConfigError(f"{path}.percentile", f"must be in (0, 100), got {percentile!r}")
            if self.bound_ms is None:
                raise ConfigError(
                    f"{path}.bound_ms", "is required with percentile (a latency bound in ms > 0)"
                )
        if self.attainment is not None:
            attainment = _number(f"{path}.attainment", self.attainment)
            if not 0 < attainment < 1:
                raise ConfigError(f"{path}.attainment", f"must be in (0, 1), got {attainment!r}")
        if self.bound_ms is not None:
            bound = _positive(f"{path}.bound_ms", self.bound_ms)
        return LatencyTarget(percentile=percentile, bound_ms=bound, attainment=attainment)

    @classmethod
    def parse(cls, text: str, path: str = "latency_target") -> LatencyTarget:
        """A target from its short form: ``p99<=100ms`` (a percentile and a bound),
        ``95%<=250ms`` (an attainment and a bound) or ``95%`` (an attainment of ``slo_ms``);
        ConfigError naming ``path`` otherwise."""
        match = _TARGET_TEXT.match(text) if isinstance(text, str) and len(text) <= 64 else None
        if match is None:
            raise ConfigError(
                path,
                f"cannot read latency target {short_repr(text)}; expected e.g. p99<=100ms (a "
                "percentile and a bound), 95%<=250ms or 95% (of requests within slo_ms)",
            )
        bound = float(match["bound"]) if match["bound"] else None
        if match["pct"] is not None:
            return cls(percentile=float(match["pct"]), bound_ms=bound).validate(path)
        return cls(attainment=float(match["att"]) / 100.0, bound_ms=bound).validate(path)

    @property
    def quantile(self) -> float:
        """The fraction of requests that must finish within the bound, in (0, 1)."""
        return self.percentile / 100.0 if self.percentile is not None else float(self.attainment or 0.0)

    def bound_for(self, slo_ms: float) -> float:
        """The latency bound (ms): ``bound_ms``, or the system's ``slo_ms`` when not given."""
        return self.bound_ms if self.bound_ms is not None else float(slo_ms)

    def describe(self, slo_ms: float) -> str:
        """``p99 <= 100 ms`` or ``95% within 250 ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g} <= {bound:g} ms"
        return f"{100 * self.quantile:g}% within {bound:g} ms"

    def short(self, slo_ms: float) -> str:
        """The short form :meth:`parse` reads: ``p99<=100ms``, ``95%<=250ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g}<={bound:g}ms"
        return f"{100 * self.quantile:g}%<={bound:g}ms"

    def slug(self, slo_ms: float) -> str:
        """A short name for files: ``p99-100ms``, ``att95-250ms``."""
        bound = self.bound_for(slo_ms)
        if self.percentile is not None:
            return f"p{self.percentile:g}-{bound:g}ms"
        return f"att{100 * self.quantile:g}-{bound:g}ms"


@dataclass(frozen=True)
class EnvConfig:
    """Options of the Gymnasium environment that are not part of the served system.

    :param batch_choice: if true the agent also chooses the batch size from the table sizes.
    :param rate_ewma_tau_s: time constant (s) of the arrival-rate and utilisation estimates.
    :param rate_scale: how the observation reports arrival rates: ``"linear"`` (rate / max
        throughput, the default) or ``"log"`` (log(1 + rate x 1 s) / log(1 + 2 x max throughput x
        1 s)), which resolves 1/s from 10/s as well as 100/s from 1000/s.
    :param extra_rate_taus_s: more arrival-rate estimates with these time constants (s), each one
        more observation entry after the workers' (e.g. ``[0.05, 10]``: a fast one that sees a
        burst, a slow one that sees the level of a low rate); empty by default.
    :param rate_ewma_unbiased: start the rate and utilisation estimates without their bias to 0:
        before ``t >> tau`` an estimate is the average since the episode began
        (:class:`~batchenv.estimators.EwmaRate`), not an average with zero; default false.
    :param observe_slo: two more observation entries, last: the episode's SLO penalty as a
        share of itself plus the latency cost of ``max_wait_ms``, and the oldest wait relative
        to the episode's SLO bound (for agents trained across objectives,
        ``reward.slo_probability``); default false.
    :param observe_slo_wait: with ``observe_slo``, when the second entry reads the oldest wait
        over the episode's bound: ``"always"`` (the default) or ``"penalised"`` (only in episodes
        with an SLO penalty, ``w_slo > 0``; 0 in the others, where the bound costs nothing).
    """

    batch_choice: bool = False
    rate_ewma_tau_s: float = 1.0
    rate_scale: str = "linear"
    extra_rate_taus_s: tuple[float, ...] = ()
    rate_ewma_unbiased: bool = False
    observe_slo: bool = False
    observe_slo_wait: str = "always"

    def validate(self, path: str) -> EnvConfig:
        """The env options, checked; ConfigError naming the field under ``path`` otherwise."""
        if not isinstance(self.batch_choice, bool):
            raise ConfigError(f"{path}.batch_choice", f"must be true or false, got {self.batch_choice!r}")
        if self.rate_scale not in RATE_SCALES:
            raise ConfigError(
                f"{path}.rate_scale", f"must be one of {RATE_SCALES}, got {short_repr(self.rate_scale)}"
            )
        if self.observe_slo_wait not in SLO_WAIT_MODES:
            raise ConfigError(
                f"{path}.observe_slo_wait",
                f"must be one of {SLO_WAIT_MODES}, got {short_repr(self.observe_slo_wait)}",
            )
        for name in ("rate_ewma_unbiased", "observe_slo"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{path}.{name}", f"must be true or false, got {short_repr(getattr(self, name))}"
                )
        taus = _number_list(f"{path}.extra_rate_taus_s", self.extra_rate_taus_s, min_len=0)
        if len(taus) > 8:
            raise ConfigError(f"{path}.extra_rate_taus_s", f"at most 8 time constants, got {len(taus)}")
        for i, tau in enumerate(taus):
            _positive(f"{path}.extra_rate_taus_s[{i}]", tau)
        return EnvConfig(
            batch_choice=self.batch_choice,
            rate_ewma_tau_s=_positive(f"{path}.rate_ewma_tau_s", self.rate_ewma_tau_s),
            rate_scale=self.rate_scale,
            extra_rate_taus_s=taus,
            rate_ewma_unbiased=self.rate_ewma_unbiased,
            observe_slo=self.observe_slo,
            observe_slo_wait=self.observe_slo_wait,
        )


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
            raise ConfigError("<root>", f"must be a mapping of fields, got {type(data).__name__}")
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


_LEFT_OUT_AT_DEFAULT: dict[str, dict[str, Any]] = {
    "arrivals": {"trace_window": None, "rate_range_scale": "linear", "components": None},
    "env": {
        "rate_scale": "linear",
        "extra_rate_taus_s": (),
        "rate_ewma_unbiased": False,
        "observe_slo": False,
        "observe_slo_wait": "always",
    },
    "reward": {"slo_probability": 0.0, "slo_ms_range": None, "w_slo_range": None},
}
"""Optional fields that :meth:`SystemConfig.to_dict` leaves out while at their default, so that
a config written before they existed keeps its YAML form (and the fingerprint of its tuned files)."""


def _leave_out_defaults(section: dict[str, Any], defaults: dict[str, Any]) -> None:
    for name, default in defaults.items():
        value = section.get(name)
        if name in section and (value == default or (isinstance(value, list) and tuple(value) == default)):
            del section[name]


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


MAX_EXTENDS = 16
"""Longest chain of ``extends`` between scenario files."""


def _read_yaml_tree(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping of a YAML config with its ``extends`` chain merged in."""
    if not path.is_file():
        raise ConfigError("<file>", f"config file not found: {path}")
    if path in seen:
        raise ConfigError("extends", f"cycle of extends: {' -> '.join(map(str, (*seen, path)))}")
    if len(seen) >= MAX_EXTENDS:
        raise ConfigError("extends", f"a chain of more than {MAX_EXTENDS} files (from {seen[0]})")
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise ConfigError("<file>", f"{path}: {exc}") from None
    if data is None:
        raise ConfigError("<root>", f"{path} is empty: a scenario file needs at least one field (e.g. name)")
    if not isinstance(data, Mapping):
        raise ConfigError("<root>", f"{path} must hold a mapping of fields, got {type(data).__name__}")
    data = dict(data)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError("extends", f"must be a scenario name or a YAML path, got {parent!r}")
    if parent.endswith((".yaml", ".yml")):
        parent_path = (path.parent / parent).resolve()
    else:
        parent_path = Path(__file__).resolve().parent / "configs" / f"{parent}.yaml"
        if not parent_path.is_file():
            raise ConfigError("extends", f"unknown scenario {parent!r} in {path}")
    merged = _read_yaml_tree(parent_path, (*seen, path))
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _build(cls: type, value: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys with a clear error."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {value!r}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}", f"unknown field; allowed: {sorted(allowed)}")
    kwargs = {}
    for key, item in value.items():
        if isinstance(item, list):
            item = tuple(tuple(x) if isinstance(x, list) else x for x in item)
        kwargs[key] = item
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
