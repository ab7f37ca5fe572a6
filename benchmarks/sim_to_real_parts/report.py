"""The sim-to-real report of a finished study: the Markdown file, the JSON next to it and the
figures."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

from batchenv.config import SystemConfig
from batchenv.fileio import json_safe, write_atomic, write_json_atomic
from batchenv.seeds import TRAINING_SEEDS
from batchenv.timing import ServiceTable
from benchmarks.sim_to_real_parts import REPO
from benchmarks.sim_to_real_parts.figures import plot_figures
from benchmarks.sim_to_real_parts.runs import Cell
from benchmarks.sim_to_real_parts.tables import (
    client_table,
    fidelity_table,
    mix_table,
    rank_table,
    service_table,
    spread_table,
)
from serving.fidelity import GOAL


def write_report(
    args: argparse.Namespace, command: str, out: Path, figures: Path, calibrated: SystemConfig,
    calibration_path: Path, capacity: float, scenarios: dict[str, SystemConfig],
    specs: dict[str, dict[str, str]], cells: list[Cell], loads: list[float], exit_codes: dict[str, int],
    notes: list[str], elapsed_s: float,
) -> None:  # fmt: skip
    """Write the Markdown report, the JSON and the figures."""
    names = list(scenarios)
    figure_names = plot_figures(cells, names, figures)
    within = [c.comparison["within_goal"] for c in cells]
    mean_err = [abs(c.comparison["metrics"]["latency_mean_ms"]["error"]) for c in cells]
    p99_err = [abs(c.comparison["metrics"]["latency_p99_ms"]["error"]) for c in cells]
    cost_lines, cost_ranks = rank_table(cells, names, "cost_per_request")
    latency_lines, latency_ranks = rank_table(cells, names, "latency_mean_ms")
    table = ServiceTable(calibrated).service_ms
    sizes = [b for b in calibrated.timing.batch_sizes if b <= calibrated.max_batch_size]
    relative = (
        calibration_path.relative_to(REPO) if calibration_path.is_relative_to(REPO) else calibration_path
    )
    lines = [
        "# Sim-to-real: the simulator against a real batching server",
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    if args.preliminary:
        lines += [
            "> **Preliminary.** Measured with short settings on a shared machine while other jobs ran "
            f"(1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} on "
            f"{os.cpu_count()} CPUs), so the servers' timings are distorted. The final numbers come from "
            "`python benchmarks/sim_to_real.py` (default settings, about 20 minutes) on a quiet machine.",
            "",
        ]
    lines += [
        "## Set-up",
        "",
        f"- Calibrated system: `{relative}` (written by the calibration step; "
        "`python -m serving.calibrate` alone does the same). Service time (ms) = T_pre + T_comm(b) + "
        "T_inf(m, b) + T_post at batch sizes " + ", ".join(map(str, sizes)) + ":",
        "",
        "| model | " + " | ".join(f"b={b}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for m, model in enumerate(calibrated.model_names):
        lines.append(f"| {model} | " + " | ".join(f"{table[m, b]:.1f}" for b in sizes) + " |")
    lines += [
        "",
        f"- Capacity (largest sustainable throughput, LLM-3 at b = {calibrated.max_batch_size}): "
        f"{capacity:.1f} requests/s. Qualities are the default scenario's (a configuration choice).",
        "- Scenarios: "
        + "; ".join(
            f"{n}: {c.arrivals.process} at {c.arrivals.mean_rate_per_s:.1f} requests/s"
            for n, c in scenarios.items()
        )
        + f". Each run replays {args.horizon_s:g} s of arrivals of one seed "
        f"(seeds {', '.join(map(str, args.seeds))}), "
        f"{args.repeats} run(s) per seed; the simulator runs the same seeds (the same arrival times).",
        "- Schedulers (the timeout tuned in simulation per scenario on the training seeds "
        f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, {args.tune_horizon_s:g} s episodes):",
        "",
    ]
    for label, by_scenario in specs.items():
        text = (
            ", ".join(f"{n}: `{s}`" for n, s in by_scenario.items())
            if len(set(by_scenario.values())) > 1
            else f"`{next(iter(by_scenario.values()))}`"
        )
        lines.append(f"  - {label}: {text}")
    lines += [""] + [f"- {note}" for note in notes]
    lines += [
        "- Noise control: one PyTorch thread (intra- and inter-op) and OMP/MKL threads 1 in the server; "
        "the calibration's warm-up rounds and random cell order; each server warms every model at every "
        f"table batch size twice, then replays {args.warmup_s:g} s of a warm-up seed, discarded; repeated "
        "runs of each seed measure the run-to-run noise. Not pinned with taskset: on 2 CPUs the server's "
        "event loop and its inference thread would then share one CPU.",
        f"- Server exit codes after SIGTERM: {sorted(set(exit_codes.values()))}. "
        f"Wall time {elapsed_s / 60:.1f} min; "
        f"1-minute load average at the start of each run: {min(loads):.2f} to {max(loads):.2f}.",
        "",
        "## Fidelity",
        "",
        "Simulated = the simulator on the calibrated table; measured = the server's own times (arrival "
        "at the server to the batch's completion, the simulator's definition); err = (measured - "
        "simulated) / simulated of the means over runs; cost = best quality - score per request.",
        "",
        *fidelity_table(cells),
        "",
        f"Within 10% for both the mean and the p99: {sum(within)} of {len(within)} cells; median |error| "
        f"of the mean {100 * float(np.nanmedian(mean_err)):.1f}%, "
        f"of the p99 {100 * float(np.nanmedian(p99_err)):.1f}%.",
        "",
        "### Spreads",
        "",
        "Range over runs of the measured value and of the seed-paired error; repeat noise = mean over seeds "
        "of (max - min) / mean of the repeated runs of one seed (the server's run-to-run noise on identical "
        "arrivals).",
        "",
        *spread_table(cells),
        "",
        "### Model mix and batch size",
        "",
        *mix_table(cells),
        "",
        "## Do the ranks hold?",
        "",
        "By cost per request (the project's objective):",
        "",
        *cost_lines,
        "",
        "By mean latency:",
        "",
        *latency_lines,
        "",
        "## Why they differ: service times and the client",
        "",
        "The real batches' service time (dispatch to completion, as the event loop sees it) against the "
        "calibrated table for the same model and batch size:",
        "",
        *service_table(cells),
        "",
        "The load generator: how late requests were sent (send lag), and what HTTP adds to the "
        "server's latency as the client sees it (its end-to-end time minus the server's latency, per "
        "request):",
        "",
        *client_table(cells),
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{n}]({figures.name}/{n})" for n in figure_names]
    lines += [
        "",
        "## Scope",
        "",
        "One machine (2 CPUs, no GPU), stand-in encoders with random weights (real timing, meaningless "
        "outputs), one worker, loopback HTTP, the loads and seeds above. The simulator assumes a "
        "deterministic service time per (model, batch size); a real batch's time varies, and waiting "
        "grows with that variance (Pollaczek-Khinchine), so the measured tail is expected above the "
        "simulated one where queues form.",
        "",
    ]
    write_atomic(out, "\n".join(lines))
    data = {
        "command": command,
        "preliminary": args.preliminary,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_per_run": loads},
        "elapsed_s": elapsed_s,
        "goal_relative_error": GOAL,
        "calibration": str(relative),
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
        },
        "scenarios": {n: c.to_dict() for n, c in scenarios.items()},
        "agents": specs,
        "notes": notes,
        "server_exit_codes": exit_codes,
        "summary": {
            "cells": len(within),
            "cells_within_goal": int(sum(within)),
            "median_abs_error_mean": float(np.nanmedian(mean_err)),
            "median_abs_error_p99": float(np.nanmedian(p99_err)),
        },
        "ranks": cost_ranks + latency_ranks,
        "cells": [
            {
                "scenario": c.scenario,
                "agent": c.agent,
                "spec": c.spec,
                "comparison": c.comparison,
                "simulated_per_seed": {str(s): m for s, m in c.simulated.items()},
                "measured_runs": c.measured,
                "service_check": c.service_check,
            }
            for c in cells
        ],
    }
    write_json_atomic(out.with_suffix(".json"), json_safe(data))
