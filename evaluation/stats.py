"""The statistics every measurement of batchenv uses, in one place: the mean with its 95%
confidence interval over seeds, and the *gap* of a cost to a reference.

The gap is the relative difference of mean costs, ``(mean cost - mean reference cost) / mean
reference cost``, over the seeds both have (common random numbers: the same arrivals), with the
95% confidence interval of the seed-paired cost differences divided by the reference's mean cost
(docs/design.md, "Metrics"). A mean of per-seed ratios is a different measure (low-cost seeds weigh more)
and is never called a gap. The t quantile comes from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["closure_interval", "mean_ci95", "paired_gap", "relative_gap"]


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval (Student t) of the finite values;
    the half-width is NaN with fewer than two values."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan
    half = float(stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return mean, half


def paired_gap(costs: Sequence[float], reference_costs: Sequence[float]) -> tuple[float, float]:
    """The gap of ``costs`` to ``reference_costs``, paired by position (the same seed), and the
    half-width of its 95% confidence interval; pairs with a non-finite cost are left out. NaN
    when no pair is left or the reference's mean cost is not positive."""
    if len(costs) != len(reference_costs):
        raise ValueError(f"paired_gap: {len(costs)} costs but {len(reference_costs)} reference costs")
    pairs = [
        (c, r) for c, r in zip(costs, reference_costs, strict=True) if math.isfinite(c) and math.isfinite(r)
    ]
    if not pairs:
        return math.nan, math.nan
    base = float(np.mean([r for _, r in pairs]))
    if base <= 0:
        return math.nan, math.nan
    mean, half = mean_ci95([c - r for c, r in pairs])
    return mean / base, half / base


def relative_gap(rows: Sequence[Mapping[str, Any]], ref_costs: Mapping[int, float]) -> tuple[float, float]:
    """:func:`paired_gap` of per-seed rows (``{"seed": s, "cost_per_request": c}``) to the
    reference's costs by seed, over the seeds both have."""
    pairs = [(row["cost_per_request"], ref_costs[row["seed"]]) for row in rows if row["seed"] in ref_costs]
    return paired_gap([c for c, _ in pairs], [r for _, r in pairs])


def closure_interval(
    costs: Sequence[float],
    baseline_costs: Sequence[float],
    ideal_costs: Sequence[float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The share of the baseline's gap to an ideal that ``costs`` close, ``1 - (mean cost - mean
    ideal) / (mean baseline - mean ideal)``, with a 95% interval from a paired bootstrap over the
    positions (the seeds: all three sequences are resampled together, ``n_resamples`` times, with
    ``numpy.random.default_rng(seed)``, so the interval is the same on every run).

    :returns: (closure, 2.5th percentile, 97.5th percentile); NaN where the baseline's mean is not
        above the ideal's (in a resample, that resample is left out).
    :raises ValueError: sequences of different lengths or shorter than 2.
    """
    cost, base, ideal = (np.asarray(x, dtype=float) for x in (costs, baseline_costs, ideal_costs))
    if not len(cost) == len(base) == len(ideal) or len(cost) < 2:
        raise ValueError(
            f"closure_interval: needs three sequences of one length >= 2, got {len(cost)}, {len(base)}, "
            f"{len(ideal)}"
        )

    def closure(rows: np.ndarray) -> np.ndarray:
        agent_gap = cost[rows].mean(axis=-1) - ideal[rows].mean(axis=-1)
        base_gap = base[rows].mean(axis=-1) - ideal[rows].mean(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(base_gap > 0, 1.0 - agent_gap / base_gap, np.nan)

    point = float(closure(np.arange(len(cost))))
    rng = np.random.default_rng(seed)
    samples = closure(rng.integers(0, len(cost), size=(n_resamples, len(cost))))
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return point, math.nan, math.nan
    low, high = np.percentile(samples, [2.5, 97.5])
    return point, float(low), float(high)
