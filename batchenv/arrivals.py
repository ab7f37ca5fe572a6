"""Arrival processes: Poisson, MMPP (bursty), diurnal (sinusoidal rate), trace replay, and a
mixture of them drawn per episode.

Each process produces an endless stream of sorted arrival times (s) in chunks (float64 arrays),
drawn from the ``numpy.random.Generator`` it is given and nothing else, so the same seed gives the
same arrivals whatever the scheduler does (common random numbers across agents). Memory is bounded
by the chunk size, whatever the horizon.

Every process has a mean rate; :meth:`ArrivalProcess.stream` can rescale it (domain
randomisation and load sweeps keep the shape and change only the mean rate).
:func:`start_episode` draws one episode: its mean rate (from ``rate_range_per_s`` when set) and
its arrivals; a :class:`MixtureArrivals` first draws which component the episode replays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from batchenv.config import ArrivalConfig, ConfigError, SystemConfig, mmpp_stationary
from batchenv.traces import load_trace_times_s

__all__ = [
    "CHUNK_SIZE",
    "ArrivalProcess",
    "ArrivalStream",
    "DiurnalArrivals",
    "MMPPArrivals",
    "MixtureArrivals",
    "PoissonArrivals",
    "TraceArrivals",
    "episode_rate_per_s",
    "make_arrival_process",
    "start_episode",
    "trace_window_times_s",
]

CHUNK_SIZE = 2048
"""Arrivals generated per chunk."""


class ArrivalStream:
    """Base class of the endless iterators of sorted chunks of arrival times (s, from t = 0) that
    :meth:`ArrivalProcess.stream` returns. A stream is a plain object (its position and its
    generator), not a Python generator, so that a running simulation or environment can be
    copied or pickled; the copy continues with the same arrivals."""

    def __iter__(self) -> ArrivalStream:
        return self

    def __next__(self) -> np.ndarray:
        raise NotImplementedError


class ArrivalProcess:
    """Base class: a stationary-in-shape arrival process with a mean rate (requests/s)."""

    mean_rate_per_s: float

    def stream(self, rng: np.random.Generator, mean_rate_per_s: float | None = None) -> Iterator[np.ndarray]:
        """Endless iterator of sorted chunks of arrival times (s, from t = 0).

        :param rng: the only source of randomness.
        :param mean_rate_per_s: rescale the process to this mean rate; None keeps the configured one.
        """
        raise NotImplementedError

    def _factor(self, mean_rate_per_s: float | None) -> float:
        """Rate multiplier that turns the configured mean into ``mean_rate_per_s``."""
        if mean_rate_per_s is None:
            return 1.0
        if not mean_rate_per_s > 0:
            raise ValueError(f"mean_rate_per_s must be > 0, got {mean_rate_per_s!r}")
        return mean_rate_per_s / self.mean_rate_per_s


class PoissonArrivals(ArrivalProcess):
    """Homogeneous Poisson process: exponential inter-arrival times, CV = 1."""

    def __init__(self, rate_per_s: float) -> None:
        self.mean_rate_per_s = rate_per_s

    def stream(self, rng, mean_rate_per_s=None):
        """Endless sorted chunks of arrival times (s, from 0) drawn with ``rng`` (see the base class)."""
        return _PoissonStream(rng, 1.0 / (self.mean_rate_per_s * self._factor(mean_rate_per_s)))


class _PoissonStream(ArrivalStream):
    def __init__(self, rng: np.random.Generator, scale_s: float) -> None:
        self.rng, self.scale_s, self.t = rng, scale_s, 0.0

    def __next__(self) -> np.ndarray:
        times = np.cumsum(self.rng.exponential(self.scale_s, CHUNK_SIZE))
        times += self.t
        self.t = float(times[-1])
        return times


class MMPPArrivals(ArrivalProcess):
    """Markov-modulated Poisson process: a continuous-time Markov chain over phases with switching
    rates Q (1/s); in phase i arrivals are Poisson(rates_per_s[i]). Starts in the stationary law."""

    def __init__(self, rates_per_s: tuple[float, ...], switch_rates_per_s) -> None:
        self.rates_per_s = np.asarray(rates_per_s, dtype=float)
        self.switch = np.asarray(switch_rates_per_s, dtype=float)
        self.stationary = np.asarray(mmpp_stationary(self.switch))
        self.mean_rate_per_s = float(self.stationary @ self.rates_per_s)
        self._leave = self.switch.sum(axis=1)
        self._jump = self.switch / self._leave[:, None]

    def stream(self, rng, mean_rate_per_s=None):
        """Endless sorted chunks of arrival times (s, from 0) drawn with ``rng`` (see the base class)."""
        return _MMPPStream(self, rng, self.rates_per_s * self._factor(mean_rate_per_s))

    def interarrival_moments(self) -> tuple[float, float]:
        """Exact mean (s) and squared coefficient of variation of the stationary inter-arrival
        time, from the MMPP's phase-type representation (D0 = Q - diag(rates), D1 = diag(rates))."""
        generator = self.switch - np.diag(self._leave)
        d0 = generator - np.diag(self.rates_per_s)
        phi = self.stationary * self.rates_per_s / self.mean_rate_per_s
        inv = np.linalg.inv(-d0)
        ones = np.ones(len(phi))
        m1 = float(phi @ inv @ ones)
        m2 = float(2 * phi @ inv @ inv @ ones)
        return m1, m2 / m1**2 - 1.0


class _MMPPStream(ArrivalStream):
    """The phase's stays, each with its Poisson arrivals, until a chunk holds CHUNK_SIZE. The
    first phase is drawn (from the stationary law) with the first chunk."""

    def __init__(self, process: MMPPArrivals, rng: np.random.Generator, rates_per_s: np.ndarray) -> None:
        self.process, self.rng, self.rates_per_s = process, rng, rates_per_s
        self.phase: int | None = None
        self.t = 0.0

    def __next__(self) -> np.ndarray:
        rng, rates, leave, jump = self.rng, self.rates_per_s, self.process._leave, self.process._jump
        n_phases = len(rates)
        if self.phase is None:
            self.phase = int(rng.choice(n_phases, p=self.process.stationary))
        phase, t = self.phase, self.t
        parts = []
        count = 0
        while count < CHUNK_SIZE:
            end = t + rng.exponential(1.0 / leave[phase])
            n = int(rng.poisson(rates[phase] * (end - t)))
            if n:
                parts.append(np.sort(rng.uniform(t, end, n)))
                count += n
            t = end
            phase = int(rng.choice(n_phases, p=jump[phase]))
        self.phase, self.t = phase, t
        return np.concatenate(parts)


class DiurnalArrivals(ArrivalProcess):
    """Non-homogeneous Poisson process with rate r (1 + a sin(2 pi t / P + phase)), by thinning."""

    def __init__(self, rate_per_s: float, amplitude: float, period_s: float, phase_rad: float = 0.0) -> None:
        self.mean_rate_per_s = rate_per_s
        self.amplitude = amplitude
        self.period_s = period_s
        self.phase_rad = phase_rad

    def rate_at(self, t_s: np.ndarray | float, mean_rate_per_s: float | None = None):
        """Instantaneous rate (requests/s) at time ``t_s`` (s)."""
        r = self.mean_rate_per_s if mean_rate_per_s is None else mean_rate_per_s
        return r * (
            1.0 + self.amplitude * np.sin(2 * math.pi * np.asarray(t_s) / self.period_s + self.phase_rad)
        )

    def stream(self, rng, mean_rate_per_s=None):
        """Endless sorted chunks of arrival times (s, from 0) drawn with ``rng`` (see the base class)."""
        return _DiurnalStream(self, rng, self.mean_rate_per_s * self._factor(mean_rate_per_s))


class _DiurnalStream(ArrivalStream):
    """Candidates at the peak rate, each kept with probability rate(t) / peak (thinning)."""

    def __init__(self, process: DiurnalArrivals, rng: np.random.Generator, rate_per_s: float) -> None:
        self.rng, self.rate_per_s = rng, rate_per_s
        self.amplitude, self.phase_rad = process.amplitude, process.phase_rad
        self.peak_per_s = rate_per_s * (1.0 + process.amplitude)
        self.omega = 2 * math.pi / process.period_s
        self.t = 0.0

    def __next__(self) -> np.ndarray:
        rng, peak = self.rng, self.peak_per_s
        candidates = np.cumsum(rng.exponential(1.0 / peak, CHUNK_SIZE))
        candidates += self.t
        self.t = float(candidates[-1])
        keep = rng.uniform(0.0, peak, CHUNK_SIZE) < self.rate_per_s * (
            1.0 + self.amplitude * np.sin(self.omega * candidates + self.phase_rad)
        )
        return candidates[keep]


class TraceArrivals(ArrivalProcess):
    """Replay of a recorded trace, its time axis rescaled to a target mean rate.

    The inter-arrival gaps of the trace are kept in order (so its burstiness and drift are kept)
    and multiplied by one factor so that the whole trace's mean gap is 1 / rate. With a
    ``window`` (fractions of the trace's duration) only the gaps between arrivals inside it are
    replayed, on the same time axis: a window keeps its own mean rate relative to the trace's
    (:attr:`window_rate_per_s`). The replay wraps around at the end of the trace (of the window);
    with ``random_start`` each episode starts at a gap drawn uniformly from it.

    :param times_s: sorted arrival times of the whole trace (s), at least 2.
    :param rate_per_s: mean rate of the whole trace after rescaling (requests/s).
    :param window: ``(start, end)`` fractions of the trace's duration, or None for all of it.
    """

    def __init__(
        self,
        times_s: np.ndarray,
        rate_per_s: float,
        random_start: bool = True,
        window: tuple[float, float] | None = None,
    ) -> None:
        times = np.asarray(times_s, dtype=float)
        mean_gap_s = _check_gap_s("mean gap", float(np.diff(times).mean()))
        if window is not None:
            times = trace_window_times_s(times, window)
        gaps = np.diff(times)
        self.unit_gaps = gaps / mean_gap_s
        self.mean_rate_per_s = rate_per_s
        self.window_rate_per_s = rate_per_s / _check_gap_s("rescaled mean gap", float(self.unit_gaps.mean()))
        self.random_start = random_start

    def _gaps_s(self, mean_rate_per_s: float | None) -> np.ndarray:
        """The replayed gaps (s) at ``mean_rate_per_s`` (None: the configured rate)."""
        return self.unit_gaps * (1.0 / (self.mean_rate_per_s * self._factor(mean_rate_per_s)))

    def one_pass_s(self, mean_rate_per_s: float | None = None) -> np.ndarray:
        """Arrival times (s, from 0) of one pass through the trace (window) as replayed at
        ``mean_rate_per_s`` (None: the configured rate), without wrapping: for characterising
        what an episode sees."""
        return np.concatenate(([0.0], np.cumsum(self._gaps_s(mean_rate_per_s))))

    def stream(self, rng, mean_rate_per_s=None):
        """Endless sorted chunks of arrival times (s, from 0) drawn with ``rng`` (see the base class)."""
        return _ReplayStream(self._gaps_s(mean_rate_per_s), rng if self.random_start else None)


class _ReplayStream(ArrivalStream):
    """The gaps (s) replayed in order, wrapping around at the end, from a gap drawn uniformly
    with the first chunk (with ``rng``; else from the first gap)."""

    def __init__(self, gaps_s: np.ndarray, rng: np.random.Generator | None) -> None:
        self.gaps_s, self.rng, self.t = gaps_s, rng, 0.0
        self.index: int | None = None if rng is not None else 0

    def __next__(self) -> np.ndarray:
        gaps = self.gaps_s
        if self.index is None:
            assert self.rng is not None
            self.index = int(self.rng.integers(len(gaps)))
        take = np.take(gaps, np.arange(self.index, self.index + CHUNK_SIZE), mode="wrap")
        self.index = (self.index + CHUNK_SIZE) % len(gaps)
        times = np.cumsum(take)
        times += self.t
        self.t = float(times[-1])
        return times


def _check_gap_s(what: str, mean_gap: float) -> float:
    """``mean_gap``, a trace's mean gap between arrivals (s, or in units of the whole trace's mean
    gap); ConfigError (``arrivals.trace_path``) unless it is finite and > 0, which the rescaled
    replay needs (a NaN or infinite gap would be an episode that never ends). A finite mean of
    gaps >= 0 also makes every gap finite."""
    if not (math.isfinite(mean_gap) and mean_gap > 0):
        raise ConfigError(
            "arrivals.trace_path",
            f"the trace cannot be replayed: its {what} between arrivals is {mean_gap!r}; it must be "
            "a finite number > 0",
        )
    return mean_gap


def trace_window_times_s(times_s: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """The arrival times (s) of a sorted trace that fall in ``window``: times in
    [start, end) x duration after the first arrival, the last arrival included when end = 1.
    Consecutive windows ([a, b], [b, c]) therefore share no arrival.

    :raises ConfigError: (``arrivals.trace_window``) if the window holds fewer than 2 arrivals
        or no time (all its arrivals at one instant).
    """
    times = np.asarray(times_s, dtype=float)
    start, end = window
    duration = times[-1] - times[0]
    lo = times[0] + start * duration
    hi = times[0] + end * duration
    keep = (times >= lo) & ((times < hi) | (end >= 1.0))
    inside = times[keep]
    if len(inside) < 2 or inside[-1] <= inside[0]:
        raise ConfigError(
            "arrivals.trace_window",
            f"{list(window)} holds {len(inside)} arrivals at {len(np.unique(inside))} distinct "
            "times; it needs at least 2 arrivals at different times (widen the window)",
        )
    return inside


def make_arrival_process(
    config: ArrivalConfig | SystemConfig, base_dir: str | Path | None = None
) -> ArrivalProcess:
    """Build the arrival process a config describes (a trace file is read and validated here).

    :param base_dir: directory that relative trace paths are relative to; defaults to the
        directory of the config's YAML file, else the working directory.
    """
    if isinstance(config, SystemConfig):
        if base_dir is None and config.source_path:
            base_dir = Path(config.source_path).parent
        config = config.arrivals
    # ArrivalConfig has checked that the fields of its process are set
    if config.process == "poisson":
        assert config.rate_per_s is not None
        return PoissonArrivals(config.rate_per_s)
    if config.process == "mmpp":
        assert config.rates_per_s is not None and config.switch_rates_per_s is not None
        return MMPPArrivals(config.rates_per_s, config.switch_rates_per_s)
    if config.process == "diurnal":
        assert config.rate_per_s is not None
        return DiurnalArrivals(config.rate_per_s, config.amplitude, config.period_s, config.phase_rad)
    if config.process == "trace":
        assert config.trace_path is not None and config.rate_per_s is not None
        times = load_trace_times_s(config.trace_path, config.trace_column, base_dir)
        return TraceArrivals(times, config.rate_per_s, config.random_start, config.trace_window)
    if config.process == "mixture":
        return MixtureArrivals(config, base_dir)
    raise ValueError(f"unknown arrival process {config.process!r}")


class MixtureArrivals(ArrivalProcess):
    """A mixture drawn per episode: each episode replays one component (drawn with probability
    weight / sum of weights), at a mean rate drawn from that component's own
    ``rate_range_per_s`` when it has one (uniformly, or log-uniformly with ``rate_range_scale:
    log``), else at its configured mean. Everything is drawn from the episode's generator, in
    this order: component, rate, arrivals.

    :param config: the ``mixture`` arrival section (validated).
    :param base_dir: where relative trace paths of components are resolved.
    """

    def __init__(self, config: ArrivalConfig, base_dir: str | Path | None = None) -> None:
        components = config.components or ()
        self.configs = [c.arrivals for c in components]
        self.processes = [make_arrival_process(c, base_dir) for c in self.configs]
        weights = np.array([c.weight for c in components], dtype=float)
        self.probabilities = weights / weights.sum()
        self.mean_rate_per_s = config.mean_rate_per_s

    def episode(
        self, rng: np.random.Generator, mean_rate_per_s: float | None = None
    ) -> tuple[int, float, Iterator[np.ndarray]]:
        """Draw one episode: ``(component index, its mean rate (requests/s), arrival stream)``.
        ``mean_rate_per_s`` rescales the whole mixture (every component by the same factor)."""
        factor = self._factor(mean_rate_per_s)
        index = int(rng.choice(len(self.processes), p=self.probabilities))
        rate = _draw_rate(self.configs[index], rng) * factor
        return index, rate, self.processes[index].stream(rng, rate)

    def stream(self, rng, mean_rate_per_s=None):
        """The arrival stream of one episode drawn with ``rng`` (see :meth:`episode`)."""
        return self.episode(rng, mean_rate_per_s)[2]


def _draw_rate(arrivals: ArrivalConfig, rng: np.random.Generator) -> float:
    """An episode's mean rate (requests/s): drawn from ``rate_range_per_s`` when it is set
    (uniformly, or uniformly in log(rate) with ``rate_range_scale: log``), else the configured
    mean. Draws from ``rng`` only when the range is set."""
    bounds = arrivals.rate_range_per_s
    if bounds is None:
        return arrivals.mean_rate_per_s
    if arrivals.rate_range_scale == "log":
        return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))
    return float(rng.uniform(bounds[0], bounds[1]))


def episode_rate_per_s(config: SystemConfig, rng: np.random.Generator) -> float:
    """Mean arrival rate (requests/s) of one episode: drawn from ``arrivals.rate_range_per_s``
    (domain randomisation; uniformly, or log-uniformly with ``rate_range_scale: log``) when it is
    set, else the configured mean. Draws from ``rng`` only when the range is set. (A mixture
    draws its component's rate in :func:`start_episode`.)"""
    return _draw_rate(config.arrivals, rng)


def start_episode(
    process: ArrivalProcess, config: SystemConfig, rng: np.random.Generator
) -> tuple[float, Iterator[np.ndarray]]:
    """Draw one episode's arrivals from ``process`` (built for ``config``): ``(its mean rate
    (requests/s), the stream of sorted arrival-time chunks)``. For a mixture the rate is that of
    the component drawn."""
    rate = episode_rate_per_s(config, rng)
    if isinstance(process, MixtureArrivals):
        _, rate, stream = process.episode(rng, rate)
        return rate, stream
    return rate, process.stream(rng, rate)
