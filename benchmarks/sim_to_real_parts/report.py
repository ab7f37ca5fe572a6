"""The sim-to-real report of a finished study: the JSON (every measurement and the checks), the
Markdown rendered from it, and the figures.

What the JSON derives from its measurements (each cell's comparison, the summary, the checks and
the ranks: :func:`derive`) and the Markdown (:func:`render_markdown`) come from the measurements
alone, so a results file can be rendered again with the current checks
(``python benchmarks/sim_to_real.py --render-only``: the measurements are kept as they are)."""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.config import SystemConfig
from batchenv.fileio import json_safe, write_files_atomic
from batchenv.seeds import TRAINING_SEEDS
from batchenv.timing import ServiceTable
from benchmarks.sim_to_real_parts import REPO
from benchmarks.sim_to_real_parts.checks import (
    MAX_AFTER_HORIZON_SHARE,
    SATURATED_REJECTED_SHARE,
    SERVICE_RATIO_BAND,
    assess,
    calibration_load,
    nan_for_none,
    read_calibration_record,
)
from benchmarks.sim_to_real_parts.figures import plot_figures
from benchmarks.sim_to_real_parts.runs import Cell
from benchmarks.sim_to_real_parts.tables import (
    all_runs_table,
    client_table,
    fidelity_table,
    mix_table,
    rank_inputs,
    rank_table,
    recorded_table,
    runs_table,
    server_table,
    service_table,
    spread_table,
)
from serving.fidelity import GOAL, compare_cell

__all__ = [
    "DERIVED",
    "DERIVED_PER_CELL",
    "build_data",
    "capacity_point",
    "derive",
    "render_markdown",
    "render_only",
    "write_report",
]

DERIVED = ("summary", "checks", "ranks", "rendered_by")
DERIVED_PER_CELL = ("comparison", "checks")
"""The fields of a results file (and of each of its cells) computed from its measurements:
:func:`derive` (and ``--render-only``, which adds ``rendered_by``) writes them again; the rest is
the run's record, never rewritten."""

FIGURES = ("sim_vs_real_latency.png", "latency_cdf.png")

LOADGEN_OWN = "a process of its own per run, started by the benchmark"
LOADGEN_BEFORE = "an asyncio task per request in the benchmark's own process, as in this results file's run"
"""Where the load generator ran: now, and in a results file that predates the own process."""


def _relative(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_absolute() and path.is_relative_to(REPO) else path


def capacity_point(config: SystemConfig) -> tuple[str, int]:
    """The model and batch size at which one worker of ``config`` serves the most requests per
    second (the capacity's operating point)."""
    table = ServiceTable(config).service_ms
    best = (-1.0, 0, 1)
    for m in range(config.n_models):
        for b in range(1, config.max_batch_size + 1):
            rate = b / table[m, b]
            if rate > best[0]:
                best = (rate, m, b)
    return config.model_names[best[1]], best[2]


def build_data(
    args: argparse.Namespace, command: str, calibrated: SystemConfig, calibration_path: Path,
    calibration_record: Mapping[str, Any] | None, capacity: float, scenarios: dict[str, SystemConfig],
    specs: dict[str, dict[str, str]], cells: list[Cell], loads: list[float], exit_codes: dict[str, int],
    notes: list[str], elapsed_s: float,
) -> dict[str, Any]:  # fmt: skip
    """The results as JSON data (NaN where a value is undefined; made strict JSON on writing)."""
    data: dict[str, Any] = {
        "command": command,
        "preliminary": args.preliminary,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_per_run": loads},
        "elapsed_s": elapsed_s,
        "goal_relative_error": GOAL,
        "calibration": str(_relative(calibration_path)),
        "calibration_load": calibration_load(calibration_record),
        "calibrated_config": calibrated.to_dict(),
        "capacity_per_s": capacity,
        "settings": {
            "loads": args.loads,
            "trace_load": args.trace_load,
            "seeds": args.seeds,
            "repeats": args.repeats,
            "horizon_s": args.horizon_s,
            "warmup_s": args.warmup_s,
            "tune_horizon_s": args.tune_horizon_s,
            "max_send_lag_ms": args.max_send_lag_ms,
            "load_generator": LOADGEN_OWN,
        },
        "scenarios": {n: c.to_dict() for n, c in scenarios.items()},
        "agents": specs,
        "notes": notes,
        "server_exit_codes": exit_codes,
        "cells": [
            {
                "scenario": c.scenario,
                "agent": c.agent,
                "spec": c.spec,
                "server_config": c.server_config,
                "comparison": c.comparison,
                "simulated_per_seed": {str(s): m for s, m in c.simulated.items()},
                "measured_runs": c.measured,
                "service_check": c.service_check,
            }
            for c in cells
        ],
    }
    derive(data, args.max_send_lag_ms)
    return data


def derive(data: dict[str, Any], max_send_lag_ms: float) -> dict[str, Any]:
    """Compute, in place, what a results file (JSON form, NaN for undefined values) derives from
    its measurements, with the current code: each cell's ``comparison`` (every run,
    :func:`serving.fidelity.compare_cell`) and ``checks``, the ``summary`` (every cell and run, as
    before the checks), the ``checks`` (:func:`benchmarks.sim_to_real_parts.checks.assess`, which
    the report's macros read) and the ``ranks`` (by cost and by mean latency, on the valid runs and
    on every run); returns the checks. The measurements and settings are left as they are."""
    for cell in data["cells"]:
        simulated = {int(s): m for s, m in cell["simulated_per_seed"].items()}
        cell["comparison"] = compare_cell(simulated, cell["measured_runs"])
    comparisons = [c["comparison"] for c in data["cells"]]
    data["summary"] = {  # every cell and run, as before the checks
        "cells": len(comparisons),
        "cells_within_goal": int(sum(c["within_goal"] for c in comparisons)),
        "median_abs_error_mean": float(
            np.nanmedian([abs(c["metrics"]["latency_mean_ms"]["error"]) for c in comparisons])
        ),
        "median_abs_error_p99": float(
            np.nanmedian([abs(c["metrics"]["latency_p99_ms"]["error"]) for c in comparisons])
        ),
    }
    assessment = assess(data, max_send_lag_ms)
    data["checks"] = assessment["summary"]
    for cell, checks in zip(data["cells"], assessment["cells"], strict=True):
        cell["checks"] = {k: v for k, v in checks.items() if k not in ("scenario", "agent")}
    names = list(data["scenarios"])
    data["ranks"] = [
        {**record, "runs": label}
        for label, inputs in (
            ("valid", rank_inputs(data["cells"], assessment["cells"])),
            ("every", rank_inputs(data["cells"])),
        )
        for metric in ("cost_per_request", "latency_mean_ms")
        for record in rank_table(inputs, names, metric)[1]
    ]
    return assessment


def write_report(data: dict[str, Any], cells: list[Cell], out: Path, figures: Path) -> dict[str, Any]:
    """Write the figures, then the Markdown and the JSON as one pair; returns the checks
    (:func:`benchmarks.sim_to_real_parts.checks.assess`) the Markdown states."""
    figure_names = plot_figures(cells, list(data["scenarios"]), figures)
    markdown, assessment = render_markdown(data, figure_dir=figures.name, figure_names=figure_names)
    write_files_atomic(
        {out: markdown, out.with_suffix(".json"): json.dumps(json_safe(data), indent=2) + "\n"}
    )
    return assessment


def render_only(out: Path, max_send_lag_ms: float, command: str) -> dict[str, Any]:
    """Render ``out`` again from the JSON next to it with the current checks, and write again what
    the JSON derives from its measurements (:func:`derive`; the measurements are kept as they are,
    ``rendered_by`` names ``command``); the figures already there are referenced, not redrawn (the
    latency CDFs need every request's latency, which the JSON does not keep)."""
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    data["cells"] = nan_for_none(data["cells"])
    recorded = copy.deepcopy(data.get("settings"))  # the run's own, written back as they were
    data.setdefault("settings", {})["max_send_lag_ms"] = max_send_lag_ms  # the checks' gate
    derive(data, max_send_lag_ms)  # the checks name the gate they used (max_send_lag_p99_ms)
    data["rendered_by"] = command
    figures = out.with_name(out.stem + "_figures")
    present = [name for name in FIGURES if (figures / name).is_file()]
    markdown, assessment = render_markdown(
        data, figure_dir=figures.name, figure_names=present, rendered_by=command
    )
    if recorded is None:
        del data["settings"]
    else:
        data["settings"] = recorded
    write_files_atomic(
        {out: markdown, out.with_suffix(".json"): json.dumps(json_safe(data), indent=2) + "\n"}
    )
    return assessment


def _calibration_record(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The calibration's own JSON record, for a results file that predates ``calibration_load``:
    only if the record comes from the same run (the same command)."""
    path = Path(data["calibration"])
    record = read_calibration_record(path if path.is_absolute() else REPO / path)
    if record is None or record.get("command") != data.get("command"):
        return None
    return record


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _overall(assessment: Mapping[str, Any]) -> str:
    """How long the real batches took against the table, every cell pooled."""
    ratio = assessment["summary"]["service_ratio_overall"]
    if not math.isfinite(ratio):
        return ""
    return (
        f"Over every run the real batches took {ratio:.2f} of the table's time (the service-time table "
        "below has it per cell), so the simulator's service times are "
        + ("too long." if ratio < 1 else "too short." if ratio > 1 else "right on average.")
    )


def _span(values: Sequence[float], fmt: str) -> str:
    return f"{fmt.format(min(values))} to {fmt.format(max(values))}" if values else "n/a"


def _fmt_range(values: Sequence[float] | None) -> str:
    if not values:
        return "n/a"
    return f"{100 * values[0]:+.0f}% to {100 * values[1]:+.0f}%"


def _median(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _headline(data: Mapping[str, Any], assessment: Mapping[str, Any], load: Mapping[str, Any]) -> list[str]:
    s = assessment["summary"]
    lag = s["max_send_lag_p99_ms"]
    unsat, sat = s["unsaturated"], s["saturated"]
    lines = [
        "## Summary",
        "",
        f"- **Validity gate:** a run counts only if the load generator sent 99% of its requests at most "
        f"{lag:g} ms late (`--max-send-lag-ms`): {s['valid_runs']} of {s['runs']} runs pass. A late send "
        "moves arrivals: requests held back by a stalled client reach the server together, a burst the "
        "simulated arrivals do not have.",
        f"- **Unsaturated cells** (at most {100 * SATURATED_REJECTED_SHARE:g}% of requests rejected, on the "
        "valid runs; on every run for a cell without one): "
        f"{unsat['cells_within_goal_valid_runs']} of the {unsat['cells_with_valid_runs']} with a valid run "
        f"are within {100 * GOAL:g}% for both the mean and the p99 latency (valid runs only; median |error| "
        f"of the mean {_median(unsat['median_abs_error_mean_valid_runs'])}, of the p99 "
        f"{_median(unsat['median_abs_error_p99_valid_runs'])}; per cell the error of the mean is "
        f"{_fmt_range(unsat['mean_error_range_valid_runs'])}, of the p99 "
        f"{_fmt_range(unsat['p99_error_range_valid_runs'])})"
        + (
            f"; {len(unsat['cells_without_valid_run'])} of the {unsat['cells']} "
            f"{'has' if len(unsat['cells_without_valid_run']) == 1 else 'have'} no valid run "
            f"({', '.join(unsat['cells_without_valid_run'])})"
            if unsat["cells_without_valid_run"]
            else f"; every one of the {unsat['cells']} has a valid run"
        )
        + f". Counting every run, gated or not: {unsat['cells_within_goal_all_runs']} of {unsat['cells']}.",
        f"- **Saturated cells** (more than {100 * SATURATED_REJECTED_SHARE:g}% rejected, reported apart: the "
        "queue stays full, so the latency is the full queue's drain time whatever the details, and "
        f"agreement says little): {_count(sat['cells'], 'cell')}, "
        f"{sat['cells_with_valid_runs']} with a valid run"
        + (
            f", {sat['cells_within_goal_valid_runs']} of them within {100 * GOAL:g}%"
            if sat["cells_with_valid_runs"]
            else ""
        )
        + f"; counting every run {sat['cells_within_goal_all_runs']} of {sat['cells']} are within "
        f"{100 * GOAL:g}%.",
    ]
    rho = s["spearman_send_lag_p99_vs_p99_error"]
    if math.isfinite(rho):
        lines.append(
            f"- **Where the p99 errors come from:** over the {s['unsaturated_runs']} runs of unsaturated "
            f"cells, a run's p99 error {'rises' if rho > 0.5 else 'does not clearly rise'} with its send-lag "
            f"p99 (Spearman {rho:.2f}); runs that pass the gate have p99 errors of "
            f"{_fmt_range(s['p99_error_range_valid_runs'])}, runs that fail it "
            f"{_fmt_range(s['p99_error_range_invalid_runs'])} (the table of runs below)."
        )
    recorded = s["recorded_arrivals"]
    if recorded is None:
        lines.append(
            "- **The simulator on the arrivals the server recorded:** not in this results file (it "
            "predates that step); the next full run adds it."
        )
    else:
        lines.append(
            "- **The simulator on the arrivals the server recorded** (what the server saw, stalls "
            f"included): {recorded['cells_within_goal']} of {len(data['cells'])} cells within "
            f"{100 * GOAL:g}% of the server; median |model error| of the p99 "
            f"{_median(recorded['median_abs_model_error_p99'])}, median |change| of the simulated p99 "
            "from the scheduled to the recorded arrivals "
            f"{_median(recorded['median_abs_arrival_distortion_p99'])}."
        )
    low, high = SERVICE_RATIO_BAND
    lines.append(
        f"- **Service times:** {len(s['cells_service_flagged'])} of {len(data['cells'])} cells have a model "
        f"whose real batches took outside [{low:g}, {high:g}] of the calibrated time"
        + (f" ({'; '.join(s['cells_service_flagged'])})" if s["cells_service_flagged"] else "")
        + "."
    )
    if load.get("known"):
        before = load["load_average_1_5_15_before"]
        lines.append(
            f"- **Calibration load:** 1-minute load average {before[0]:.2f} before the calibration and "
            f"{load['load_average_1min_after']:.2f} after, on {load['cpus']} CPUs: "
            + (
                f"**a busy machine** (other jobs' load {load['background_load']:.2f} > {load['limit']:g})"
                if load["busy"]
                else "a quiet machine"
            )
            + "."
        )
    else:
        lines.append("- **Calibration load:** unknown (no calibration record from this run).")
    if s["cells_after_horizon_flagged"]:
        lines.append(
            f"- **Late arrivals:** in {', '.join(s['cells_after_horizon_flagged'])} more than "
            f"{100 * MAX_AFTER_HORIZON_SHARE:g}% of the requests reached the server after the horizon "
            "(left out of the metrics)."
        )
    counts = s["server_counts"]
    failures = s["client_failures"]
    if counts is None:
        lines.append(
            "- **Server counters** (scheduler errors, failed requests): not in this results file (it "
            f"predates them). At the client: {failures['n_503']} answers 503, {failures['n_other_status']} "
            f"other error statuses, {failures['n_unanswered']} unanswered."
        )
    else:
        lines.append(
            f"- **Server counters:** {counts['n_scheduler_errors']} scheduler errors, {counts['n_failed']} "
            f"failed and {counts['n_refused']} refused requests; at the client {failures['n_503']} answers "
            f"503, {failures['n_other_status']} other error statuses, {failures['n_unanswered']} unanswered "
            "(any of these fails the run: exit code 1)."
        )
    return [*lines, ""]


def render_markdown(
    data: Mapping[str, Any], *, figure_dir: str, figure_names: Sequence[str], rendered_by: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The Markdown report of a results file (JSON form, NaN for undefined values) and the checks
    it states."""
    settings = data["settings"]
    max_lag = settings["max_send_lag_ms"]
    assessment = assess(data, max_lag)
    cells, checks = data["cells"], assessment["cells"]
    calibrated = SystemConfig.from_dict(data["calibrated_config"])
    load = data.get("calibration_load") or calibration_load(_calibration_record(data))
    loads = data["machine"]["load_average_per_run"]
    cpus = data["machine"]["cpus"]
    table = ServiceTable(calibrated).service_ms
    sizes = [b for b in calibrated.timing.batch_sizes if b <= calibrated.max_batch_size]
    names = list(data["scenarios"])
    lines = [
        "# Sim-to-real: the simulator against a real batching server",
        "",
        "Produced by:",
        "",
        "```",
        data["command"],
        "```",
        "",
    ]
    if rendered_by is not None:
        lines += [
            "Rendered again from its JSON (the measurements of the run above, unchanged) with the current "
            "checks by:",
            "",
            "```",
            rendered_by,
            "```",
            "",
        ]
    if data["preliminary"]:
        lines += [
            "> **Preliminary.** Measured with short settings on a shared machine while other jobs ran "
            f"(1-minute load average during the runs: {_span(loads, '{:.1f}')} on "
            f"{cpus} CPUs), so the servers' timings are distorted. The final numbers come from "
            "`python benchmarks/sim_to_real.py` (default settings, about 20 minutes) on a quiet machine.",
            "",
        ]
    if load.get("busy"):
        lines += [
            "> **Calibrated on a busy machine.** The timing table was measured while other jobs ran "
            f"(1-minute load average {load['load_average_1_5_15_before'][0]:.1f} before the calibration on "
            f"{load['cpus']} CPUs, above half the CPUs): it times the machine as it was then, not as "
            f"during the replays. {_overall(assessment)} Calibrate again on a quiet machine.",
            "",
        ]
    lines += _headline(data, assessment, load)
    model, batch = capacity_point(calibrated)
    lines += [
        "## Set-up",
        "",
        f"- Calibrated system: `{data['calibration']}` (written by the calibration step; "
        "`python -m serving.calibrate` alone does the same). Service time (ms) = T_pre + T_comm(b) + "
        "T_inf(m, b) + T_post at batch sizes " + ", ".join(map(str, sizes)) + ":",
        "",
        "| model | " + " | ".join(f"b={b}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for m, name in enumerate(calibrated.model_names):
        lines.append(f"| {name} | " + " | ".join(f"{table[m, b]:.1f}" for b in sizes) + " |")
    scenario_text = "; ".join(
        f"{n}: {c['arrivals']['process']} at {c['arrivals']['rate_per_s']:.1f} requests/s"
        for n, c in data["scenarios"].items()
    )
    lines += [
        "",
        f"- Capacity (largest sustainable throughput, {model} at b = {batch}): "
        f"{data['capacity_per_s']:.1f} requests/s. Qualities are the default scenario's (a configuration "
        "choice).",
        f"- Scenarios: {scenario_text}. Each run replays {settings['horizon_s']:g} s of arrivals of one seed "
        f"(seeds {', '.join(map(str, settings['seeds']))}), {settings['repeats']} run(s) per seed; the "
        "simulator runs the same seeds (the same arrival times).",
        "- Schedulers (the timeout tuned in simulation per scenario on the training seeds "
        f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, {settings['tune_horizon_s']:g} s episodes):",
        "",
    ]
    for label, by_scenario in data["agents"].items():
        text = (
            ", ".join(f"{n}: `{s}`" for n, s in by_scenario.items())
            if len(set(by_scenario.values())) > 1
            else f"`{next(iter(by_scenario.values()))}`"
        )
        lines.append(f"  - {label}: {text}")
    lines += [""] + [f"- {note}" for note in data["notes"]]
    lines += [
        "- One server per distinct spec of an agent, configured with the first scenario it serves "
        f"({names[0]}): the other scenarios are replayed against it, so proposed's nominal rate is that "
        "scenario's in every scenario (unused while proposed estimates the rate, its default; only its "
        "no-estimation ablation would decide from it); the simulator builds each agent for the same "
        "config. `optimal`, which needs each scenario's true rate, is not compared.",
        "- Noise control: one PyTorch thread (intra- and inter-op) and OMP/MKL threads 1 in the server; "
        "the calibration's warm-up rounds and random cell order; each server warms every model at every "
        f"table batch size twice, then replays {settings['warmup_s']:g} s of a warm-up seed, discarded; "
        "repeated runs of each seed measure the run-to-run noise. Not pinned with taskset: on 2 CPUs the "
        "server's event loop and its inference thread would then share one CPU.",
        f"- Server exit codes after SIGTERM: {sorted(set(data['server_exit_codes'].values()))}. "
        f"Wall time {data['elapsed_s'] / 60:.1f} min; "
        f"1-minute load average at the start of each run: {_span(loads, '{:.2f}')}.",
        "",
        "## Fidelity",
        "",
        "Simulated = the simulator on the calibrated table; measured = the server's own times (arrival "
        "at the server to the batch's completion, the simulator's definition); err = (measured - "
        "simulated) / simulated of the means over seeds (a seed's measured value is the mean over its runs, "
        "so every seed weighs the same on both sides); cost = best quality - score per request. Only "
        f"the valid runs (send-lag p99 at most {max_lag:g} ms), against the simulator on the seeds they "
        "replayed:",
        "",
        *fidelity_table(cells, checks),
        "",
        "Every run, valid or not (the comparison of earlier versions of this report):",
        "",
        *all_runs_table(cells, checks),
        "",
        "### Runs and the validity gate",
        "",
        "Each run's send lag (how late the load generator sent, 99th percentile), the requests that "
        "reached the server after the horizon, and its seed-paired errors:",
        "",
        *runs_table(cells, checks, max_lag),
        "",
        "### The simulator on the arrivals the server recorded",
        "",
        "Each run simulated again on the arrival times the server recorded (its answered and rejected "
        "requests): the arrival distortion is how much the replay's arrivals moved the simulated p99 "
        "(recorded against scheduled), the model error what is left between the server and the "
        "simulator on the same arrivals (service-time variance, overheads, the timing table). Means "
        "over every run of a cell:",
        "",
        *recorded_table(cells, checks),
        "",
        "### Spreads",
        "",
        "Every run: range over runs of the measured value and of the seed-paired error; repeat noise = "
        "mean over seeds of (max - min) / mean of the repeated runs of one seed (the server's run-to-run "
        "noise on identical arrivals).",
        "",
        *spread_table(cells),
        "",
        "### Model mix and batch size",
        "",
        *mix_table(cells),
        "",
    ]
    lines += [
        "## Do the ranks hold?",
        "",
        "Each scenario's agents are compared on the seeds on which every one of them has a run (a valid "
        "run in the valid-runs tables; the seeds column), so both orders compare them on the same arrivals.",
        "",
    ]
    for title, inputs, runs in (
        ("Valid runs", rank_inputs(cells, checks), "valid run"),
        ("Every run", rank_inputs(cells), "run"),
    ):
        lines += [
            f"{title}, by cost per request (the project's objective):",
            "",
            *rank_table(inputs, names, "cost_per_request", runs)[0],
            "",
            f"{title}, by mean latency:",
            "",
            *rank_table(inputs, names, "latency_mean_ms", runs)[0],
            "",
        ]
    low, high = SERVICE_RATIO_BAND
    lines += [
        "## Why they differ: service times, the client and the server",
        "",
        "The real batches' service time (dispatch to completion, as the event loop sees it) against the "
        f"calibrated table for the same model and batch size, every run's batches pooled; a ratio outside "
        f"[{low:g}, {high:g}] is flagged:",
        "",
        *service_table(cells, checks),
        "",
        f"The load generator ({settings.get('load_generator', LOADGEN_BEFORE)}): its answers, how late "
        "it sent, the requests that "
        f"reached the server after the horizon (flagged above {100 * MAX_AFTER_HORIZON_SHARE:g}%), and "
        "what HTTP adds to the server's latency as the client sees it (its end-to-end time minus the "
        "server's latency, per request):",
        "",
        *client_table(cells, checks),
        "",
        "The server's counters, summed over the runs (any scheduler error or failed request fails the run):",
        "",
        *server_table(cells, checks),
        "",
        "## Figures",
        "",
        "Every run, valid or not.",
        "",
    ]
    lines += [f"![{n}]({figure_dir}/{n})" for n in figure_names]
    lines += ["", "## Scope", "", *_scope(assessment, load), ""]
    return "\n".join(lines), assessment


def _scope(assessment: Mapping[str, Any], load: Mapping[str, Any]) -> list[str]:
    s = assessment["summary"]
    rho = s["spearman_send_lag_p99_vs_p99_error"]
    text = [
        "One machine (2 CPUs, no GPU), stand-in encoders with random weights (real timing, meaningless "
        "outputs), one worker, loopback HTTP, the loads and seeds above.",
        "",
        "What the errors are made of, as far as these runs show:",
        "",
    ]
    if math.isfinite(rho):
        text.append(
            "- The load generator. The replay is open-loop, but a client that does not get the CPU sends "
            "late and then all at once. Over the unsaturated runs the p99 error goes with the send lag "
            f"(Spearman {rho:.2f}); the runs that sent on time have p99 errors of "
            f"{_fmt_range(s['p99_error_range_valid_runs'])}, those that did not "
            f"{_fmt_range(s['p99_error_range_invalid_runs'])}. So the large p99 errors measure the replay, "
            "not the simulator: they are left out of the headline (the validity gate), and the simulator "
            "run on the server's recorded arrivals says how much of a run's error its arrivals explain."
        )
    ratio = s["service_ratio_overall"]
    if load.get("busy") or (
        math.isfinite(ratio) and not SERVICE_RATIO_BAND[0] <= ratio <= SERVICE_RATIO_BAND[1]
    ):
        text.append(
            "- The timing table. "
            + ("It was calibrated on a busy machine. " if load.get("busy") else "")
            + _overall(assessment)
            + (
                " Where the server runs faster than its table, the simulator predicts latencies that are "
                "too long, which is the sign of the valid runs' errors here."
                if ratio < 1 and (s["unsaturated"]["mean_error_range_valid_runs"] or [0, 0])[1] < 0
                else ""
            )
        )
    text += [
        "- Service-time variance. The simulator's service time is deterministic per (model, batch size); a "
        "real batch's varies, and waiting grows with that variance (Pollaczek-Khinchine), which raises the "
        "measured tail above the simulated one where queues form. It is part of the model error (the "
        "server against the simulator on the recorded arrivals), together with what the next two points "
        "add.",
        "- The server's service time, as the scheduler experiences it, includes the scheduler's own decision "
        "time (a learned agent runs a small network in the event loop) and the thread hand-offs; the "
        "calibration measures the hand-offs but not the decision time. Pre- and post-processing hold the "
        "GIL, and so does HTTP handling, so under heavy request rates a batch can take longer than it did "
        "alone during calibration.",
        "- The simulator's latency ends at the batch's completion; a client also waits for the HTTP "
        "exchange, reported separately (HTTP overhead per request).",
    ]
    return text
