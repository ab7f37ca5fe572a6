"""The arrival process: :class:`ArrivalConfig` (the ``arrivals`` section), the components of a
``mixture`` (:class:`MixtureComponent`) and the MMPP helpers (the switching-rate matrix, its
stationary distribution, the limits on a phase's stays), checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchenv.config_fields import (
    MAX_FLOAT,
    ConfigError,
    _build,
    _number,
    _number_list,
    _optional_range,
    _positive,
    short_repr,
)

__all__ = [
    "ARRIVAL_PROCESSES",
    "MAX_EPISODE_REQUESTS",
    "MAX_MMPP_SOJOURN_S",
    "MAX_MMPP_SWITCH_RATE_PER_S",
    "RATE_RANGE_SCALES",
    "ArrivalConfig",
    "MixtureComponent",
    "mmpp_stationary",
]

MAX_EPISODE_REQUESTS = 10_000_000
"""Most arrivals an episode may expect (peak mean rate x horizon): bounds the memory of
evaluation, which records every request (about 200 bytes each)."""
MAX_MMPP_SOJOURN_S = 86_400.0
"""Longest mean stay in an MMPP phase (s; one day): each phase's leaving rate is at least its
inverse."""
MAX_MMPP_SWITCH_RATE_PER_S = 10_000.0
"""Largest leaving rate of an MMPP phase (1/s): the arrival stream draws every phase switch."""
ARRIVAL_PROCESSES = ("poisson", "mmpp", "diurnal", "trace", "mixture")
RATE_RANGE_SCALES = ("linear", "log")


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
            raise ConfigError(
                f"{path}.process", f"must be one of {list(ARRIVAL_PROCESSES)}, got {short_repr(self.process)}"
            )
        changes: dict[str, Any] = {}
        if self.rate_range_scale not in RATE_RANGE_SCALES:
            raise ConfigError(
                f"{path}.rate_range_scale",
                f"must be one of {list(RATE_RANGE_SCALES)}, got {short_repr(self.rate_range_scale)}",
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
                    raise ConfigError(f"{path}.rates_per_s[{i}]", f"must be >= 0, got {short_repr(r)}")
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
                raise ConfigError(f"{path}.amplitude", f"must be in [0, 1), got {short_repr(amplitude)}")
            changes["amplitude"] = amplitude
            changes["period_s"] = _positive(f"{path}.period_s", self.period_s)
            changes["phase_rad"] = _number(f"{path}.phase_rad", self.phase_rad)
        if self.process == "trace":
            if not isinstance(self.trace_path, str) or not self.trace_path:
                raise ConfigError(f"{path}.trace_path", "is required for process 'trace' (a CSV file path)")
            if not isinstance(self.trace_column, str) or not self.trace_column:
                raise ConfigError(f"{path}.trace_column", "must be a non-empty column name")
            if not isinstance(self.random_start, bool):
                raise ConfigError(
                    f"{path}.random_start", f"must be true or false, got {short_repr(self.random_start)}"
                )
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
                f"matter), got {short_repr(total)}",
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
        raise ConfigError(path, f"{allowed}, got {short_repr(value)}")
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
                    raise ConfigError(f"{path}[{i}][{j}]", f"must be >= 0, got {short_repr(v)}")
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
            f"(a mean stay of at most {MAX_MMPP_SOJOURN_S:g} s), got {short_repr(rate_per_s)}",
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
