"""What the sim-to-real report may conclude from its runs: the validity gate on the load
generator, saturated cells, the calibration's machine load, the service-time and late-arrival
flags, the recorded-arrivals comparison and the server's error counters.

Everything here reads the results in their JSON form (the ``cells`` of ``sim_to_real.json``), so
the same checks apply to a new run and to a results file rendered again
(``python benchmarks/sim_to_real.py --render-only``). Fields a results file predates (the
recorded-arrivals simulation, the server's counters, the per-run load average) come out as None:
the report says they are absent, it does not invent them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.fidelity import GOAL, compare_cell, relative_error

__all__ = [
    "CALIBRATION_MAX_LOAD_PER_CPU",
    "MAX_AFTER_HORIZON_SHARE",
    "MAX_SEND_LAG_P99_MS",
    "SATURATED_REJECTED_SHARE",
    "SERVICE_RATIO_BAND",
    "assess",
    "calibration_load",
    "failures",
    "nan_for_none",
    "run_is_valid",
]

MAX_SEND_LAG_P99_MS = 5.0
"""A measured run is valid when the load generator sent 99% of its requests at most this late
(ms; ``--max-send-lag-ms``). A late send moves an arrival: requests held back by a stalled client
reach the server together, a burst the simulated arrivals do not have."""

SATURATED_REJECTED_SHARE = 0.05
"""A cell is saturated when more than this share of its requests is rejected (queue full, HTTP
429), simulated or measured, over its valid runs (over every run when it has no valid run). There
the queue stays full and the latency is the queue's length times the batch time, whatever the
scheduler does: agreement is expected, not evidence."""

SERVICE_RATIO_BAND = (0.9, 1.1)
"""Measured / calibrated service time of a cell's batches outside this band is flagged: the
server ran at another speed than the table the simulator used."""

MAX_AFTER_HORIZON_SHARE = 0.001
"""A cell where more than this share of the sent requests reached the server after the horizon
(left out of its metrics, as the simulator has no arrival after it) is flagged."""

CALIBRATION_MAX_LOAD_PER_CPU = 0.5
"""A calibration is taken on a busy machine when the other jobs' load during it (the 1-minute
load average before it, or after it less the calibration's own busy thread) exceeds this many
runnable threads per CPU: its table then times a slower machine than the replays run on."""


def nan_for_none(value: Any) -> Any:
    """``value`` with every None (JSON's NaN, see :func:`batchenv.fileio.json_safe`) made NaN and
    mapping keys of seeds left as they are."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: nan_for_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_for_none(v) for v in value]
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_is_valid(run: Mapping[str, Any], max_send_lag_ms: float) -> bool:
    """The gate: the run's send-lag p99 is known and at most ``max_send_lag_ms``."""
    lag = run["client"].get("send_lag_ms_p99")
    return _finite(lag) and lag <= max_send_lag_ms


def calibration_load(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The machine's load during a calibration (its JSON record): the 1-minute load averages
    before and after, the CPUs, the other jobs' load (``background``: the larger of before and
    after - 1, the calibration keeping one thread busy) and ``busy`` (above
    :data:`CALIBRATION_MAX_LOAD_PER_CPU` per CPU). ``known`` is False without a record."""
    if not record or "machine" not in record:
        return {"known": False, "busy": None}
    machine = record["machine"]
    cpus = int(machine.get("cpus") or 1)
    before = float(machine["load_average_1_5_15"][0])
    after_list = record.get("load_average_after")
    after = float(after_list[0]) if after_list else math.nan
    background = max(before, after - 1.0) if math.isfinite(after) else before
    limit = CALIBRATION_MAX_LOAD_PER_CPU * cpus
    return {
        "known": True,
        "cpus": cpus,
        "load_average_1_5_15_before": list(machine["load_average_1_5_15"]),
        "load_average_1min_after": after,
        "background_load": background,
        "limit": limit,
        "busy": background > limit,
    }


def read_calibration_record(yaml_path: Path) -> dict[str, Any] | None:
    """The JSON record next to a calibrated YAML (None if there is none or it is unreadable)."""
    path = yaml_path.with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pooled_service(runs_checks: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    pooled: dict[str, list[float]] = {}
    for check in runs_checks:
        for model, row in check.items():
            acc = pooled.setdefault(model, [0, 0.0, 0.0])
            acc[0] += row["batches"]
            acc[1] += row["measured_mean_ms"] * row["batches"]
            acc[2] += row["table_mean_ms"] * row["batches"]
    low, high = SERVICE_RATIO_BAND
    out = {}
    for model, (n, measured, expected) in pooled.items():
        ratio = measured / expected if expected > 0 else math.nan
        out[model] = {
            "batches": n,
            "measured_mean_ms": measured / n if n else math.nan,
            "table_mean_ms": expected / n if n else math.nan,
            "ratio": ratio,
            "flagged": not (math.isfinite(ratio) and low <= ratio <= high),
        }
    return out


def _recorded(cell: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Measured against the simulator on the arrivals the server recorded, and those simulated
    runs against the simulator on the scheduled arrivals (the same seeds), over ``runs``; None
    when a run lacks the recorded-arrivals simulation (a results file from before it)."""
    if not runs or any(not isinstance(r.get("simulated_recorded"), dict) for r in runs):
        return None
    scheduled = cell["simulated_per_seed"]
    out: dict[str, Any] = {"runs": len(runs)}
    for metric in ("latency_mean_ms", "latency_p99_ms", "cost_per_request"):
        real = float(np.mean([r["metrics"][metric] for r in runs]))
        recorded = float(np.mean([r["simulated_recorded"][metric] for r in runs]))
        planned = float(np.mean([scheduled[str(r["seed"])][metric] for r in runs]))
        out[metric] = {
            "simulated_scheduled": planned,
            "simulated_recorded": recorded,
            "measured": real,
            "arrival_distortion": relative_error(recorded, planned),
            "model_error": relative_error(real, recorded),
        }
    out["within_goal"] = all(
        math.isfinite(out[m]["model_error"]) and abs(out[m]["model_error"]) <= GOAL
        for m in ("latency_mean_ms", "latency_p99_ms")
    )
    return out


def _server_counts(runs: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """The server's error counters summed over ``runs``; None if a run lacks them."""
    keys = ("n_scheduler_errors", "n_failed", "n_refused", "n_forced")
    if not runs or any(not isinstance(r.get("server_stats"), dict) for r in runs):
        return None
    return {k: int(sum(r["server_stats"].get(k, 0) for r in runs)) for k in keys}


def assess_cell(cell: Mapping[str, Any], max_send_lag_ms: float) -> dict[str, Any]:
    """The checks of one cell (JSON form): its valid runs and their comparison with the
    simulator (the seeds they replayed), whether it is saturated (judged on the valid runs and
    their seeds, or on every run when none is valid: ``saturation_judged_on``), its flags, the
    recorded-arrivals comparison and the server's counters."""
    runs = list(cell["measured_runs"])
    valid = [r for r in runs if run_is_valid(r, max_send_lag_ms)]
    seeds = {r["seed"] for r in valid}
    simulated = {int(s): m for s, m in cell["simulated_per_seed"].items() if int(s) in seeds}
    comparison = compare_cell(simulated, valid) if valid else None
    judged = comparison if comparison is not None else cell["comparison"]
    drops = judged["metrics"]["drop_rate"]
    shares = [v for v in (drops["simulated"], drops["measured"]) if _finite(v)]
    rejected = max(shares) if shares else math.nan
    sent = sum(r["client"]["n_sent"] for r in runs)
    late = sum(r["client"].get("n_after_horizon", 0) for r in runs)
    late_share = late / sent if sent else math.nan
    service = _pooled_service(cell.get("service_check", []))
    clients = [r["client"] for r in runs]
    return {
        "scenario": cell["scenario"],
        "agent": cell["agent"],
        "runs": len(runs),
        "valid_runs": len(valid),
        "valid": [run_is_valid(r, max_send_lag_ms) for r in runs],
        "comparison_valid": comparison,
        "rejected_share": rejected,
        "saturated": _finite(rejected) and rejected > SATURATED_REJECTED_SHARE,
        "saturation_judged_on": "valid runs" if comparison is not None else "every run",
        "after_horizon": late,
        "after_horizon_share": late_share,
        "after_horizon_flagged": _finite(late_share) and late_share > MAX_AFTER_HORIZON_SHARE,
        "service": service,
        "service_flagged": sorted(m for m, row in service.items() if row["flagged"]),
        "recorded_all_runs": _recorded(cell, runs),
        "recorded_valid_runs": _recorded(cell, valid),
        "server_counts": _server_counts(runs),
        "client_failures": {
            "n_503": sum(c.get("n_503", 0) for c in clients),
            "n_other_status": sum(c.get("n_other_status", 0) for c in clients),
            "n_unanswered": sum(c.get("n_unanswered", 0) for c in clients),
        },
    }


def _median_abs(values: Iterable[float]) -> float:
    data = [abs(v) for v in values if _finite(v)]
    return float(np.median(data)) if data else math.nan


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats

    pairs = [(a, b) for a, b in zip(x, y, strict=True) if _finite(a) and _finite(b)]
    if len(pairs) < 3:
        return math.nan
    return float(stats.spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def _range(values: Sequence[float]) -> list[float] | None:
    data = [v for v in values if _finite(v)]
    return [min(data), max(data)] if data else None


def assess(data: Mapping[str, Any], max_send_lag_ms: float = MAX_SEND_LAG_P99_MS) -> dict[str, Any]:
    """Every cell's checks (:func:`assess_cell`) and the headline they allow: agreement over the
    valid runs, unsaturated and saturated cells apart; how the p99 error of each run goes with
    its send lag; and the calibration's machine load."""
    cells = [assess_cell(c, max_send_lag_ms) for c in data["cells"]]
    summary: dict[str, Any] = {"max_send_lag_p99_ms": max_send_lag_ms}
    for group, saturated in (("unsaturated", False), ("saturated", True)):
        members = [(c, a) for c, a in zip(data["cells"], cells, strict=True) if a["saturated"] == saturated]
        with_valid = [a for _, a in members if a["comparison_valid"] is not None]
        summary[group] = {
            "cells": len(members),
            "cells_with_valid_runs": len(with_valid),
            "cells_within_goal_valid_runs": sum(a["comparison_valid"]["within_goal"] for a in with_valid),
            "cells_within_goal_all_runs": sum(c["comparison"]["within_goal"] for c, _ in members),
            "cells_without_valid_run": [
                f"{a['scenario']} / {a['agent']}" for _, a in members if not a["valid_runs"]
            ],
            "median_abs_error_mean_valid_runs": _median_abs(
                a["comparison_valid"]["metrics"]["latency_mean_ms"]["error"] for a in with_valid
            ),
            "median_abs_error_p99_valid_runs": _median_abs(
                a["comparison_valid"]["metrics"]["latency_p99_ms"]["error"] for a in with_valid
            ),
            "mean_error_range_valid_runs": _range(
                [a["comparison_valid"]["metrics"]["latency_mean_ms"]["error"] for a in with_valid]
            ),
            "p99_error_range_valid_runs": _range(
                [a["comparison_valid"]["metrics"]["latency_p99_ms"]["error"] for a in with_valid]
            ),
        }
    lags: list[float] = []
    errors: list[float] = []
    valid_errors: list[float] = []
    invalid_errors: list[float] = []
    for cell, checks in zip(data["cells"], cells, strict=True):
        if checks["saturated"]:
            continue
        for run, ok in zip(cell["measured_runs"], checks["valid"], strict=True):
            sim = cell["simulated_per_seed"][str(run["seed"])]["latency_p99_ms"]
            error = relative_error(run["metrics"]["latency_p99_ms"], sim)
            lags.append(run["client"]["send_lag_ms_p99"])
            errors.append(error)
            (valid_errors if ok else invalid_errors).append(error)
    summary["runs"] = sum(c["runs"] for c in cells)
    summary["valid_runs"] = sum(c["valid_runs"] for c in cells)
    summary["unsaturated_runs"] = len(lags)
    summary["spearman_send_lag_p99_vs_p99_error"] = _spearman(lags, errors)
    summary["p99_error_range_valid_runs"] = _range(valid_errors)
    summary["p99_error_range_invalid_runs"] = _range(invalid_errors)
    summary["service_ratio_band"] = list(SERVICE_RATIO_BAND)
    pooled = [row for c in cells for row in c["service"].values()]
    table_ms = sum(row["table_mean_ms"] * row["batches"] for row in pooled)
    summary["service_ratio_overall"] = (
        sum(row["measured_mean_ms"] * row["batches"] for row in pooled) / table_ms
        if table_ms > 0
        else math.nan
    )
    summary["cells_service_flagged"] = [
        f"{c['scenario']} / {c['agent']} ({', '.join(c['service_flagged'])})"
        for c in cells
        if c["service_flagged"]
    ]
    summary["cells_after_horizon_flagged"] = [
        f"{c['scenario']} / {c['agent']}" for c in cells if c["after_horizon_flagged"]
    ]
    recorded = [c["recorded_all_runs"] for c in cells]
    summary["recorded_arrivals"] = (
        None
        if any(r is None for r in recorded)
        else {
            "cells_within_goal": sum(r["within_goal"] for r in recorded),
            "median_abs_model_error_p99": _median_abs(r["latency_p99_ms"]["model_error"] for r in recorded),
            "median_abs_arrival_distortion_p99": _median_abs(
                r["latency_p99_ms"]["arrival_distortion"] for r in recorded
            ),
        }
    )
    counts = [c["server_counts"] for c in cells]
    summary["server_counts"] = (
        None
        if any(c is None for c in counts)
        else {
            k: sum(c[k] for c in counts if c is not None)
            for k in ("n_scheduler_errors", "n_failed", "n_refused")
        }
    )
    summary["client_failures"] = {
        k: sum(c["client_failures"][k] for c in cells) for k in ("n_503", "n_other_status", "n_unanswered")
    }
    return {"cells": cells, "summary": summary}


def failures(assessment: Mapping[str, Any]) -> list[str]:
    """What makes a run of the benchmark fail (exit code 1): scheduler errors, failed or refused
    requests on the server, 503s, other error statuses or unanswered requests at the client."""
    problems = []
    for cell in assessment["cells"]:
        where = f"{cell['scenario']} / {cell['agent']}"
        counts = cell["server_counts"] or {}
        for key, what in (
            ("n_scheduler_errors", "scheduler errors (a decision that raised or was invalid)"),
            ("n_failed", "requests whose batch failed (HTTP 500)"),
            ("n_refused", "requests refused at shutdown"),
        ):
            if counts.get(key):
                problems.append(f"{where}: {counts[key]} {what}")
        for key, what in (
            ("n_503", "answers 503"),
            ("n_other_status", "answers with another error status"),
            ("n_unanswered", "requests unanswered by the deadline"),
        ):
            if cell["client_failures"][key]:
                problems.append(f"{where}: {cell['client_failures'][key]} {what}")
    return problems
