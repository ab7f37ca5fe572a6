"""*design* part: the design choices of docs/algorithm.md on the *training* seeds 1000-1015 (the
seeds the parameters were chosen on): estimator and timer variants against the defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.seeds import TRAINING_SEEDS
from benchmarks.proposed.common import gap, pct, run_grid
from execution.backends import Backend

DESIGN_SCENARIOS = (
    "default",
    "poisson_50",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_high",
    "multi_gpu",
)
DESIGN_VARIANTS = (
    ("defaults", "proposed"),
    ("z = 2", "proposed(estimator={z: 2})"),
    ("z = 4", "proposed(estimator={z: 4})"),
    ("drops restart too", "proposed(estimator={detect_drops: true})"),
    ("no CUSUM", "proposed(estimator={cusum_threshold: 1.0e+9})"),
    ("h = 7", "proposed(estimator={cusum_threshold: 7})"),
    ("h = 14", "proposed(estimator={cusum_threshold: 14})"),
    ("r = 2", "proposed(estimator={cusum_ratio: 2})"),
    ("no timer (patience inf)", "proposed(patience=.inf)"),
    ("patience 1", "proposed(patience=1)"),
    ("whole-queue batches", "proposed(action_set=whole)"),
)


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Variants of the estimator and the timer on the training seeds."""
    seeds = list(range(TRAINING_SEEDS[0], TRAINING_SEEDS[0] + 16))
    specs = ["timeout", *(spec for _, spec in DESIGN_VARIANTS)]
    lines = [
        "## Design choices (training seeds)",
        "",
        f"Seeds {seeds[0]}-{seeds[-1]} (the training seeds the parameters were chosen on), 60 s each. "
        "Cost gap of each variant to the tuned timeout ± 95% CI (seed-paired); the "
        "defaults' row first. CUSUM alarms per episode in brackets.",
        "",
        "| variant | " + " | ".join(DESIGN_SCENARIOS) + " |",
        "|---|" + "---|" * len(DESIGN_SCENARIOS),
    ]
    table: dict[str, dict[str, str]] = {name: {} for name, _ in DESIGN_VARIANTS}
    data: dict[str, Any] = {}
    for scenario in DESIGN_SCENARIOS:
        res = run_grid(backend, specs, scenario, seeds, None)
        for name, spec in DESIGN_VARIANTS:
            gap_ci = gap(res[spec], res["timeout"])
            alarms = np.mean([r["alarms"] for r in res[spec]])
            table[name][scenario] = f"{pct(gap_ci, 2)} ({alarms:.1f})"
            data[f"{scenario}/{name}"] = {"gap": gap_ci, "alarms": alarms}
        print(f"  design {scenario} done")
    for name, _ in DESIGN_VARIANTS:
        lines.append(f"| {name} | " + " | ".join(table[name][s] for s in DESIGN_SCENARIOS) + " |")
    return [*lines, ""], data
