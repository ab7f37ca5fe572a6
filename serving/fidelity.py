"""Comparing a simulated and a measured run of the same scheduler on the same arrivals: relative
errors, spreads over seeds and repeated runs, rank agreement between schedulers, and how the
real batches' service times compare with the timing table.

Relative error of a metric: ``(measured - simulated) / simulated``, on the means over seeds
(and, paired, seed by seed). A cell meets the goal when |error| <= :data:`GOAL` for the mean
and the p99 latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from batchenv.config import SystemConfig
from batchenv.timing import ServiceTable

__all__ = [
    "COMPARED_METRICS",
    "GOAL",
    "batch_service_check",
    "compare_cell",
    "kendall_tau",
    "rank_agents",
    "rank_scenario",
    "relative_error",
]

GOAL = 0.10
"""Largest relative error of the mean and p99 latency that counts as a faithful prediction."""

COMPARED_METRICS = (
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "throughput_per_s",
    "cost_per_request",
    "mean_batch_size",
    "utilisation",
    "drop_rate",
)
"""Metrics of :class:`batchenv.metrics.EpisodeMetrics` compared between simulation and server."""


def relative_error(measured: float, simulated: float) -> float:
    """``(measured - simulated) / |simulated|``; NaN when the simulated value is 0 or not finite."""
    if not (math.isfinite(measured) and math.isfinite(simulated)) or simulated == 0.0:
        return math.nan
    return (measured - simulated) / abs(simulated)


def _stats(values: Sequence[float]) -> dict[str, float]:
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if data.size == 0:
        return {"mean": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
        "n": int(data.size),
    }


def compare_cell(
    simulated: Mapping[int, Mapping[str, Any]], measured: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Compare one (scenario, agent) cell.

    :param simulated: per seed, the simulated metrics (``EpisodeMetrics.to_dict()``).
    :param measured: per run, ``{"seed", "repeat", "metrics"}`` (metrics as a dict); several
        runs of a seed are repeats of the same arrivals.
    :returns: per metric: simulated mean over seeds, measured mean over runs, the relative
        error of the means, the seed-paired errors (mean, min, max over runs), the measured
        spread (min, max over runs) and the repeat noise (mean |difference| of repeats of a
        seed relative to their mean; NaN without repeats); the model mix likewise; and
        ``within_goal`` for the mean and p99 latency.
    """
    result: dict[str, Any] = {"metrics": {}}
    for metric in COMPARED_METRICS:
        sim_mean = float(np.mean([simulated[s][metric] for s in simulated]))
        runs = [r for r in measured if r["seed"] in simulated]
        values = [float(r["metrics"][metric]) for r in runs]
        paired = [relative_error(float(r["metrics"][metric]), simulated[r["seed"]][metric]) for r in runs]
        noise = []
        for seed in {r["seed"] for r in runs}:
            repeats = [float(r["metrics"][metric]) for r in runs if r["seed"] == seed]
            if len(repeats) > 1 and np.mean(repeats) != 0:
                noise.append((max(repeats) - min(repeats)) / abs(float(np.mean(repeats))))
        real_mean = float(np.mean(values)) if values else math.nan
        result["metrics"][metric] = {
            "simulated": sim_mean,
            "measured": real_mean,
            "error": relative_error(real_mean, sim_mean),
            "paired_error": _stats(paired),
            "measured_spread": _stats(values),
            "repeat_noise": float(np.mean(noise)) if noise else math.nan,
        }
    models = list(next(iter(simulated.values()))["model_mix"])
    result["model_mix"] = {
        m: {
            "simulated": float(np.mean([simulated[s]["model_mix"][m] for s in simulated])),
            "measured": float(np.mean([r["metrics"]["model_mix"][m] for r in measured]))
            if measured
            else math.nan,
        }
        for m in models
    }
    errors = [abs(result["metrics"][k]["error"]) for k in ("latency_mean_ms", "latency_p99_ms")]
    result["within_goal"] = all(math.isfinite(e) and e <= GOAL for e in errors)
    return result


def rank_agents(values: Mapping[str, float]) -> list[str]:
    """Agents ordered from the lowest to the highest value (ties by name)."""
    return sorted(values, key=lambda a: (values[a], a))


def kendall_tau(order_a: Sequence[str], order_b: Sequence[str]) -> float:
    """Kendall's rank correlation of two orderings of the same agents (1 = the same order)."""
    from scipy import stats

    if sorted(order_a) != sorted(order_b) or len(order_a) < 2:
        return math.nan
    position = {agent: i for i, agent in enumerate(order_b)}
    tau = stats.kendalltau(range(len(order_a)), [position[a] for a in order_a]).statistic
    return float(tau)


def rank_scenario(
    comparisons: Mapping[str, Mapping[str, Any] | None], scenario: str, metric: str
) -> dict[str, Any] | None:
    """The agents of one scenario ordered by ``metric``, simulated and measured, and Kendall's tau
    between the two orders (``comparisons``: per agent a :func:`compare_cell` result, None where
    the agent has none); None when an agent has none: the scenario is not ranked."""
    if any(comp is None for comp in comparisons.values()):
        return None
    values = {a: comp["metrics"][metric] for a, comp in comparisons.items() if comp is not None}
    sim = rank_agents({a: v["simulated"] for a, v in values.items()})
    real = rank_agents({a: v["measured"] for a, v in values.items()})
    return {
        "scenario": scenario,
        "metric": metric,
        "simulated": sim,
        "measured": real,
        "kendall_tau": kendall_tau(sim, real),
    }


def batch_service_check(
    config: SystemConfig, answers: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, float]]:
    """Per model, the real batches' service time against the timing table's: number of batches,
    measured and table mean service (ms) and their ratio (measured / table, summed over the
    batches). A ratio above 1 means the server ran slower than calibrated."""
    table = ServiceTable(config).service_ms
    batches: dict[int, tuple[int, int, float]] = {}
    for answer in answers:
        b = answer["batch"]
        batches.setdefault(
            b["id"], (b["model_index"], b["size"], 1000.0 * (b["completion_s"] - b["dispatch_s"]))
        )
    out = {}
    for m, name in enumerate(config.model_names):
        rows = [(size, service) for model, size, service in batches.values() if model == m]
        if not rows:
            continue
        measured = sum(s for _, s in rows)
        expected = sum(float(table[m, size]) for size, _ in rows)
        out[name] = {
            "batches": len(rows),
            "measured_mean_ms": measured / len(rows),
            "table_mean_ms": expected / len(rows),
            "ratio": measured / expected,
        }
    return out
