"""Comparing a simulated and a measured run of the same scheduler on the same arrivals: relative
errors, spreads over seeds and repeated runs, rank agreement between schedulers, and how the
real batches' service times compare with the timing table.

Relative error of a metric: ``(measured - simulated) / simulated``, on the means over seeds
(every seed weighs the same on both sides: the measured value of a seed is the mean over its
runs) and, paired, run by run against the run's own seed. A cell meets the goal when |error| <=
:data:`GOAL` for the mean and the p99 latency.
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
    "RankedCell",
    "batch_service_check",
    "common_seeds",
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


def _value(metrics: Mapping[str, Any], metric: str) -> float:
    """A metric as a float; None (JSON's NaN in a results file) is NaN."""
    value = metrics[metric]
    return math.nan if value is None else float(value)


def _mean_over_seeds(by_seed: Mapping[int, Sequence[float]]) -> float:
    """The mean over seeds of each seed's mean (NaN without a seed): every seed weighs the same,
    however many runs it has."""
    if not by_seed:
        return math.nan
    return float(np.mean([np.mean(values) for values in by_seed.values()]))


def compare_cell(
    simulated: Mapping[int, Mapping[str, Any]], measured: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Compare one (scenario, agent) cell, seed by seed.

    :param simulated: per seed, the simulated metrics (``EpisodeMetrics.to_dict()``).
    :param measured: per run, ``{"seed", "repeat", "metrics"}`` (metrics as a dict); several
        runs of a seed are repeats of the same arrivals. Runs of a seed not in ``simulated`` are
        left out.
    :returns: per metric: the simulated mean and the measured mean over the seeds that have a
        run (all of ``simulated``'s without any run), the measured value of a seed being the mean
        over its runs, so each seed weighs the same on both sides whatever its number of runs;
        the relative error of the two means; the paired errors, each run against its own seed
        (mean, min, max over runs); the measured spread (min, max over runs) and the repeat
        noise (mean over seeds of (max - min) / mean of a seed's repeats; NaN without repeats);
        the model mix's simulated and measured means likewise; and ``within_goal`` for the mean
        and p99 latency. None values (JSON's NaN) count as NaN.
    """
    runs = [r for r in measured if r["seed"] in simulated]
    seeds = sorted({r["seed"] for r in runs}) or sorted(simulated)
    result: dict[str, Any] = {"metrics": {}}
    for metric in COMPARED_METRICS:
        sim_mean = float(np.mean([_value(simulated[s], metric) for s in seeds]))
        values = [_value(r["metrics"], metric) for r in runs]
        by_seed: dict[int, list[float]] = {}
        for run, value in zip(runs, values, strict=True):
            by_seed.setdefault(run["seed"], []).append(value)
        paired = [
            relative_error(v, _value(simulated[r["seed"]], metric)) for r, v in zip(runs, values, strict=True)
        ]
        noise = []
        for repeats in by_seed.values():
            if len(repeats) > 1 and np.mean(repeats) != 0:
                noise.append((max(repeats) - min(repeats)) / abs(float(np.mean(repeats))))
        real_mean = _mean_over_seeds(by_seed)
        result["metrics"][metric] = {
            "simulated": sim_mean,
            "measured": real_mean,
            "error": relative_error(real_mean, sim_mean),
            "paired_error": _stats(paired),
            "measured_spread": _stats(values),
            "repeat_noise": float(np.mean(noise)) if noise else math.nan,
        }
    models = list(simulated[seeds[0]]["model_mix"]) if seeds else []
    result["model_mix"] = {}
    for m in models:
        mix_by_seed: dict[int, list[float]] = {}
        for run in runs:
            mix_by_seed.setdefault(run["seed"], []).append(_value(run["metrics"]["model_mix"], m))
        result["model_mix"][m] = {
            "simulated": float(np.mean([_value(simulated[s]["model_mix"], m) for s in seeds])),
            "measured": _mean_over_seeds(mix_by_seed),
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


RankedCell = tuple[Mapping[int, Mapping[str, Any]], Sequence[Mapping[str, Any]]]
"""What :func:`rank_scenario` ranks an agent on: its simulated metrics per seed and the runs to
compare (:func:`compare_cell`'s arguments), e.g. a cell's valid runs."""


def common_seeds(cells: Mapping[str, RankedCell | None]) -> list[int]:
    """The seeds on which every agent of ``cells`` has a run (and a simulation), in order; none
    when an agent has no run (None or no runs) or there is no agent."""
    present = [cell for cell in cells.values() if cell is not None]
    if not present or len(present) < len(cells):
        return []
    covered = [{r["seed"] for r in runs if r["seed"] in simulated} for simulated, runs in present]
    return sorted(set.intersection(*covered))


def rank_scenario(
    cells: Mapping[str, RankedCell | None], scenario: str, metric: str
) -> dict[str, Any] | None:
    """The agents of one scenario ordered by ``metric``, simulated and measured, and Kendall's tau
    between the two orders.

    ``cells``: per agent, its simulated metrics per seed and the runs to compare (a cell's valid
    runs, say), None where the agent has none. Every agent is compared (:func:`compare_cell`)
    again on the seeds where every agent has a run (:func:`common_seeds`), so both orders compare
    the agents on the same arrivals; the record names them (``seeds``). None when there is no
    such seed (an agent without any run among them): the scenario is not ranked."""
    seeds = common_seeds(cells)
    if not seeds:
        return None
    values = {}
    for agent, cell in cells.items():
        if cell is None:  # not after common_seeds: every agent has runs
            return None
        simulated, runs = cell
        comparison = compare_cell({s: simulated[s] for s in seeds}, [r for r in runs if r["seed"] in seeds])
        values[agent] = comparison["metrics"][metric]
    sim = rank_agents({a: v["simulated"] for a, v in values.items()})
    real = rank_agents({a: v["measured"] for a, v in values.items()})
    return {
        "scenario": scenario,
        "metric": metric,
        "seeds": seeds,
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
