"""Characterising an arrival sequence: mean rate, variability of the gaps, burstiness at a time
scale, peak rates over short windows.

All functions take sorted arrival times in seconds (a float array of shape (n,), n >= 2) and are
deterministic. ``docs/results/traces.md`` (``python benchmarks/trace_table.py``) applies them to
the shipped traces and to what each trace scenario replays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "TraceStats",
    "characterise",
    "dispersion_index",
    "gap_cv",
    "peak_rate_per_s",
    "share_in_bins_above",
]


def _times(times_s: np.ndarray) -> np.ndarray:
    times = np.asarray(times_s, dtype=float)
    if times.ndim != 1 or len(times) < 2:
        raise ValueError("times_s must be a 1-d array of at least 2 arrival times (s)")
    if np.any(np.diff(times) < 0):
        raise ValueError("times_s must be sorted (non-decreasing)")
    if times[-1] <= times[0]:
        raise ValueError("times_s must span a positive duration")
    return times


def gap_cv(times_s: np.ndarray) -> float:
    """Coefficient of variation (std / mean) of the inter-arrival gaps; 1 for Poisson."""
    gaps = np.diff(_times(times_s))
    return float(gaps.std() / gaps.mean())


def _bin_counts(times: np.ndarray, bin_s: float) -> np.ndarray:
    """Arrivals per consecutive half-open bin [a, a + bin_s) from the first arrival, whole bins
    only (at least one)."""
    n_bins = max(int((times[-1] - times[0]) // bin_s), 1)
    edges = times[0] + bin_s * np.arange(n_bins + 1)
    return np.diff(np.searchsorted(times, edges, side="left"))


def dispersion_index(times_s: np.ndarray, bin_s: float = 1.0) -> float:
    """Index of dispersion of the counts in consecutive bins of ``bin_s`` seconds (variance /
    mean); 1 for Poisson at any scale, above 1 for bursty arrivals."""
    counts = _bin_counts(_times(times_s), bin_s)
    mean = counts.mean()
    return float(counts.var() / mean) if mean > 0 else 0.0


def peak_rate_per_s(times_s: np.ndarray, window_s: float) -> float:
    """Largest number of arrivals in any window [t_i, t_i + window_s) that starts at an arrival,
    divided by ``window_s`` (requests/s)."""
    times = _times(times_s)
    ends = np.searchsorted(times, times + window_s, side="left")
    return float((ends - np.arange(len(times))).max() / window_s)


def share_in_bins_above(times_s: np.ndarray, bin_s: float, rate_per_s: float) -> float:
    """Share of the arrivals that fall in a consecutive bin of ``bin_s`` seconds whose local rate
    (count / bin_s) exceeds ``rate_per_s``: e.g. the requests that come faster than a server can
    serve them."""
    times = _times(times_s)
    counts = _bin_counts(times, bin_s)
    counted = counts.sum()
    return float(counts[counts / bin_s > rate_per_s].sum() / counted) if counted else 0.0


@dataclass(frozen=True)
class TraceStats:
    """Summary of an arrival sequence.

    :ivar n_requests: number of arrivals.
    :ivar duration_s: last minus first arrival (s).
    :ivar mean_rate_per_s: (n - 1) / duration (requests/s).
    :ivar gap_cv: coefficient of variation of the gaps.
    :ivar tied_share: share of the gaps that are exactly 0 (arrivals recorded at the same time).
    :ivar dispersion_1s: index of dispersion of the counts per 1 s.
    :ivar dispersion_10s: index of dispersion of the counts per 10 s.
    :ivar peak_rate_20ms_per_s: peak rate over 20 ms windows (requests/s).
    :ivar peak_rate_1s_per_s: peak rate over 1 s windows (requests/s).
    """

    n_requests: int
    duration_s: float
    mean_rate_per_s: float
    gap_cv: float
    tied_share: float
    dispersion_1s: float
    dispersion_10s: float
    peak_rate_20ms_per_s: float
    peak_rate_1s_per_s: float

    def to_dict(self) -> dict[str, float | int]:
        """The statistics as a plain dict."""
        return asdict(self)


def characterise(times_s: np.ndarray) -> TraceStats:
    """The :class:`TraceStats` of sorted arrival times (s)."""
    times = _times(times_s)
    gaps = np.diff(times)
    duration = float(times[-1] - times[0])
    return TraceStats(
        n_requests=len(times),
        duration_s=duration,
        mean_rate_per_s=(len(times) - 1) / duration,
        gap_cv=gap_cv(times),
        tied_share=float(np.mean(gaps == 0)),
        dispersion_1s=dispersion_index(times, 1.0),
        dispersion_10s=dispersion_index(times, 10.0),
        peak_rate_20ms_per_s=peak_rate_per_s(times, 0.020),
        peak_rate_1s_per_s=peak_rate_per_s(times, 1.0),
    )
