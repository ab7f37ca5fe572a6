"""The ``window`` part of ``python benchmarks/robust_eval.py``: the window of the burst meter of
the burst-aware experts (``burst_window_s`` of :class:`agents.robust.RobustProposed`, the meter
keeping 20 s of windows) on training data only, and a selection rule for the latency tail.

The meter's default window, 0.5 s, sees no clustering below half a second, while the issue that
asked for a robust scheduler counts most requests of a bursty trace in 20 ms windows above the
server's throughput. A shorter window reads sub-second bursts and tilts the tables towards
latency there. Every candidate is ``robust`` with its other defaults, on the data and the
admissibility rule of the ``regime`` part (:func:`benchmarks.robust.regime.grid_rows`); the pick
is the admissible candidate with the lowest mean p99 difference to the tuned timeouts over the
training halves, if it is at least :data:`MIN_TAIL_GAIN_MS` below the default's.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.robust.guard import GUARD_SEEDS
from benchmarks.robust.regime import RULE_ADMISSIBLE, grid_part
from execution.backends import Backend

DEFAULT = "robust"
WINDOWS_S = (0.25, 0.1)
CANDIDATES = tuple(f"robust(burst_window_s={w:g})" for w in WINDOWS_S)
MIN_TAIL_GAIN_MS = 1.0
"""The pick replaces the default window only if its mean p99 difference over the training halves
is lower by at least this (ms)."""


def mean_p99_difference(row: dict[str, Any]) -> float:
    """Mean over the training halves of the p99 difference to the tuned timeout (ms)."""
    values = [h["p99"][0] for h in row["halves"].values()]
    return sum(values) / len(values)


def select(rows: dict[str, dict[str, Any]]) -> str:
    """The admissible candidate with the lowest :func:`mean_p99_difference`, if it gains at least
    :data:`MIN_TAIL_GAIN_MS` on the default; otherwise the default."""
    admissible = [spec for spec in CANDIDATES if rows[spec]["admissible"]]
    if not admissible:
        return DEFAULT
    best = min(admissible, key=lambda spec: mean_p99_difference(rows[spec]))
    gain = mean_p99_difference(rows[DEFAULT]) - mean_p99_difference(rows[best])
    return best if gain >= MIN_TAIL_GAIN_MS else DEFAULT


def _mean_p99_line(rows: dict[str, dict[str, Any]]) -> list[str]:
    return [
        "Mean p99 difference over the training halves (ms): "
        + ", ".join(f"{spec} {mean_p99_difference(row):+.1f}" for spec, row in rows.items())
        + ".",
        "",
    ]


def run_window(args: argparse.Namespace, backend: Backend, command: str) -> tuple[list[str], dict]:
    """The grid (module docstring): its Markdown lines and data."""
    seeds = GUARD_SEEDS
    description = (
        "`robust` with the burst meter of its burst-aware experts on windows of `burst_window_s` "
        "(default 0.5 s), keeping 20 s of windows. Seeds "
        f"{seeds[0]}-{seeds[-1]}, {args.horizon_s:g} s each; the data and columns of the regime grid. "
        f"Rule (docs/algorithm.md): {RULE_ADMISSIBLE}; the pick is the admissible candidate with "
        "the lowest mean p99 difference over the four training halves if it gains at least "
        f"{MIN_TAIL_GAIN_MS:g} ms."
    )
    heading = "## Burst meter window grid (training data only)"
    specs = (DEFAULT, *CANDIDATES)
    return grid_part(args, backend, command, specs, select, heading, description, _mean_p99_line)
