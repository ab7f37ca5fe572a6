"""*workers* part: several workers: the staggered-workers table against the one-worker table at
the per-worker rate (``worker_model="share"``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.proposed.common import gap, pct, run_grid
from execution.backends import Backend


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Staggered-workers table against the one-worker table at the per-worker rate."""
    specs = ("timeout", "util_switch", "proposed", "proposed(worker_model=share)")
    seeds = list(range(args.slo_seeds))
    lines = [
        "## Several workers",
        "",
        f"Seeds 0-{seeds[-1]}, 60 s each; gap vs the tuned timeout ± 95% CI (seed-paired).",
        "",
        "| scenario | " + " | ".join(specs[1:]) + " |",
        "|---|" + "---|" * (len(specs) - 1),
    ]
    data = {}
    for scenario in ("multi_gpu", "multi_gpu_4"):
        res = run_grid(backend, specs, scenario, seeds, None, record=True)
        gaps = {spec: gap(res[spec], res["timeout"]) for spec in specs[1:]}
        p99 = {spec: np.mean([r["p99_ms"] for r in res[spec]]) for spec in specs}
        cells = [f"{pct(gaps[s], 2)} (p99 {p99[s]:.0f} ms)" for s in specs[1:]]
        lines.append(f"| {scenario} (timeout p99 {p99['timeout']:.0f} ms) | " + " | ".join(cells) + " |")
        data[scenario] = {"gaps": gaps, "p99_ms": p99}
    return [*lines, ""], data
