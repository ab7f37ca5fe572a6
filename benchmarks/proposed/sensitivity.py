"""*sensitivity* part: the exact extra cost (SMDP policy evaluation, no simulation) of using the
table row of a wrong rate: the one-worker optimal policy for ``f * rate`` run at ``rate``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from agents import smdp
from batchenv.scenarios import load_scenario
from execution.backends import Backend


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Exact extra cost of the optimal policy for a wrong rate (one worker, Poisson)."""
    config = load_scenario("default")
    rates = (50.0, 100.0, 144.14, 200.0, 288.29, 400.0, 432.43, 547.75)
    factors = (0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 2.0)
    lines = [
        "## Sensitivity of the optimal policy to the rate",
        "",
        "Extra cost per request, relative to the optimum, of running the optimal one-worker policy "
        "solved for rate f x r when the true Poisson rate is r (exact policy evaluation of the SMDP).",
        "",
        "| true rate r (1/s) | " + " | ".join(f"f = {f:g}" for f in factors) + " |",
        "|---|" + "---|" * len(factors),
    ]
    data = {}
    for rate in rates:
        best = smdp.solve_optimal(config, rate)
        model = smdp.build_smdp(config, rate, best.queue_cap, "any")
        cells = []
        for factor in factors:
            other = smdp.solve_optimal(config, factor * rate)
            gain = smdp.evaluate_policy(model, _actions_on(other, best.queue_cap)).gain_per_s
            extra = (best.gain_per_s - gain) / rate / best.cost_per_request
            cells.append(extra)
        data[f"{rate:g}"] = dict(zip(map(str, factors), cells, strict=True))
        lines.append(f"| {rate:g} | " + " | ".join(f"{100 * c:+.2f}%" for c in cells) + " |")
    return [*lines, ""], data


def _actions_on(solution: Any, cap: int) -> np.ndarray:
    """The solution's policy as SMDP action indices on states 0..cap (beyond its own cap: its
    last model with the whole queue)."""
    batch_max = solution.max_batch_size
    model = np.asarray(solution.model)
    batch = np.asarray(solution.batch)
    actions = np.where(model < 0, 0, 1 + model * batch_max + batch - 1)
    out = np.empty(cap + 1, dtype=int)
    n = min(cap + 1, len(actions))
    out[:n] = actions[:n]
    if cap + 1 > n:
        q = np.arange(n, cap + 1)
        out[n:] = 1 + model[-1] * batch_max + np.minimum(q, batch_max) - 1
    return out
