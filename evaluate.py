#!/usr/bin/env python
"""Compare schedulers on scenarios: every agent x scenario x seed, with common random numbers.

Per agent and scenario: every metric as a mean over seeds with a 95% confidence interval, the
cost per request and its gap to a reference agent; a table per scenario in the terminal, and
``summary.csv``, ``per_seed.csv``, ``results.json``, ``report.md`` and three figures in a new
folder ``<out>/eval_<time>_<n>/``. The work is done by the package :mod:`evaluation` (its
docstring lists the outputs and the module of each step); this file is the command line and
re-exports the package's main names.

Run ``python evaluate.py --help``; ``python evaluate.py`` alone evaluates the baselines on the
default scenario.
"""

from __future__ import annotations

import sys

from agents.registry import run_episode
from evaluation.cli import main
from evaluation.outputs import make_run_dir, per_seed_rows, summary_rows, to_csv, to_json
from evaluation.plan import BASELINE_AGENTS, Plan, ScenarioEntry, UsageError, build_parser, make_plan
from evaluation.plots import plot_all
from evaluation.runner import LATENCY_EDGES_MS, SCALAR_METRICS, Task, make_tasks, run_task, run_tasks
from evaluation.stats import Cell, collect, mean_ci95, relative_gap
from evaluation.tables import TABLE_COLUMNS, print_tables, to_markdown

__all__ = [
    "BASELINE_AGENTS",
    "LATENCY_EDGES_MS",
    "SCALAR_METRICS",
    "TABLE_COLUMNS",
    "Cell",
    "Plan",
    "ScenarioEntry",
    "Task",
    "UsageError",
    "build_parser",
    "collect",
    "main",
    "make_plan",
    "make_run_dir",
    "make_tasks",
    "mean_ci95",
    "per_seed_rows",
    "plot_all",
    "print_tables",
    "relative_gap",
    "run_episode",
    "run_task",
    "run_tasks",
    "summary_rows",
    "to_csv",
    "to_json",
    "to_markdown",
]

if __name__ == "__main__":
    sys.exit(main())
