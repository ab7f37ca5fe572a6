#!/usr/bin/env python
"""Compare schedulers on scenarios: every agent x scenario x seed, with common random numbers.

Every agent meets the same arrivals for the same (scenario, seed). Per agent and scenario it
reports the mean over seeds with a 95% confidence interval (t distribution) of every metric of
:class:`batchenv.metrics.EpisodeMetrics`, the cost per request (best quality - score) and the
relative gap of the mean cost to a reference agent, with a confidence interval from the
seed-paired cost differences (DESIGN.md, "Measuring gaps").

It prints a table per scenario and writes, into a new folder ``<out>/eval_<time>_<n>/`` (never
an existing one; every file written to a temporary name, then renamed):

- ``summary.csv``: one row per agent and scenario, ``<metric>_mean`` and ``<metric>_ci95``;
- ``per_seed.csv``: one row per agent, scenario and seed;
- ``results.json``: both, with the command, the seeds and each agent's parameters and their source;
- ``report.md``: the tables in Markdown;
- ``latency_cdf.png``, ``score_vs_rate.png``, ``pareto_quality_p99.png``.

Episodes run in ``--jobs`` worker processes; each episode is a pure function of (agent, scenario,
seed), so the results do not depend on ``--jobs``.

Run ``python evaluate.py --help``; ``python evaluate.py`` alone evaluates the baselines on the
default scenario.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import itertools
import json
import math
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import (
    EXTERNAL,
    AgentSpec,
    AgentSpecError,
    NotApplicableError,
    agent_available,
    make_agent,
    parse_agent_spec,
    run_episode,
    split_specs,
)
from agents.tuning import SUITE, TRAINING_SEEDS, parse_seeds
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.metrics import EpisodeMetrics, compute_metrics, request_table
from batchenv.scenarios import list_scenarios, load_scenario

BASELINE_AGENTS = ("greedy", "static", "timeout", "aimd", "util_switch")
LATENCY_EDGES_MS = np.logspace(-1, 6, 701)
"""Bins of the pooled latency histograms (ms): 0.1 ms to 1000 s, 100 per decade."""

SCALAR_METRICS = tuple(
    f.name for f in fields(EpisodeMetrics) if f.name not in ("utilisation_per_worker", "model_mix")
)
"""Per-episode numbers summarised over seeds (besides the model mix and the gap)."""

TABLE_COLUMNS = (  # (metric, header, format) of the terminal and Markdown tables
    ("cost_per_request", "cost/req", "{:.4f}"),
    ("gap", "gap", "{:+.2%}"),
    ("score_per_request", "score/req", "{:.4f}"),
    ("latency_mean_ms", "mean ms", "{:.1f}"),
    ("latency_p99_ms", "p99 ms", "{:.1f}"),
    ("slo_attainment", "SLO", "{:.3f}"),
    ("throughput_per_s", "thr/s", "{:.1f}"),
    ("mean_quality", "quality", "{:.4f}"),
    ("mean_batch_size", "batch", "{:.1f}"),
    ("utilisation", "util", "{:.2f}"),
    ("drop_rate", "drops", "{:.3f}"),
    ("n_forced", "forced", "{:.1f}"),
)
CI_COLUMNS = ("cost_per_request", "gap", "score_per_request")
TERMINAL_COLUMNS = (
    "cost_per_request",
    "gap",
    "latency_mean_ms",
    "latency_p99_ms",
    "slo_attainment",
    "mean_quality",
    "mean_batch_size",
    "utilisation",
    "drop_rate",
    "n_forced",
)
"""The columns of TABLE_COLUMNS printed in the terminal (the files hold them all)."""


class UsageError(Exception):
    """A bad command line; reported as ``evaluate.py: error: ...`` with exit code 2."""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

HELP_EPILOG = """\
agents (--agents, comma-separated):
  greedy                      dispatch everything at once on LLM-1
  static(B=8)                 wait for exactly B requests (or max_wait_ms)
  timeout(B=16,T=30,model=LLM-2)
                              Triton-like: dispatch at B queued or after T ms; tuned per
                              scenario by default (agents/tuned/<scenario>.yaml)
  aimd                        Clipper-like AIMD batch cap
  util_switch                 timeout that steps LLM-1 -> LLM-2 -> LLM-3 under load; tuned
  optimal                     the exact SMDP optimum (one worker, Poisson arrivals; other
                              scenarios are reported as n/a)
  proposed                    the project's own scheduler (agents/proposed.py)
  path/to/agent.zip           a checkpoint saved by train.py
  Parameters in a spec override tuned values; quote specs with brackets in the shell.

examples:
  python evaluate.py                                  baselines on the default scenario
  python evaluate.py --agents timeout,optimal --scenarios poisson_25,poisson_75 --n-seeds 20
  python evaluate.py --scenarios suite --jobs 2 --report docs/results/baselines.md
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description=(
            "Evaluate schedulers on scenarios with common random numbers (the same arrivals for "
            "every agent), report every metric with 95% confidence intervals across seeds, and "
            "write CSV, JSON, Markdown and plots to a new results folder."
        ),
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--agents",
        default=None,
        help="comma-separated agent specs, names or checkpoint paths (default: the baselines "
        f"{','.join(BASELINE_AGENTS)}, plus optimal when agents/optimal.py is available)",
    )
    parser.add_argument(
        "--scenarios",
        default="default",
        help="comma-separated scenario names (see batchenv/configs/) or YAML paths; 'suite' = "
        f"{','.join(SUITE)} (default: default)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        default=None,
        help="evaluation seeds, e.g. 0-9, 0,3,7 or 0-4,10-12 (ranges inclusive); keep them "
        f"below {TRAINING_SEEDS[0]}, which are tuning seeds",
    )
    seeds.add_argument(
        "--n-seeds",
        type=int,
        default=None,
        help="use seeds 0..N-1 (default 10; 5 with --quick)",
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="simulated seconds per episode (default: each scenario's horizon_s; 30 with --quick)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes running episodes in parallel; results are identical for every "
        "value (default: the number of CPUs, at most 8)",
    )
    parser.add_argument(
        "--reference",
        default="auto",
        help="agent (as given in --agents) that gaps are measured against; 'auto' = optimal where "
        "it applies, else the tuned timeout, else none; 'none' = no gap (default: auto)",
    )
    parser.add_argument(
        "--no-tuned",
        action="store_true",
        help="use the default parameters of timeout and util_switch instead of the tuned ones",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="parent folder of the run folder eval_<time>_<n>/ (default: results)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the Markdown report to this file, with its figures in "
        "<file stem>_figures/ next to it (e.g. docs/results/baselines.md)",
    )
    parser.add_argument(
        "--title",
        default="Evaluation results",
        help="title of the Markdown report (default: Evaluation results)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 5 seeds and 30 s episodes unless --seeds/--n-seeds/--horizon-s say otherwise",
    )
    return parser


@dataclass(frozen=True)
class ScenarioEntry:
    """One scenario of the run. ``spec`` is what the user typed (a name or a YAML path)."""

    spec: str
    config: SystemConfig

    @property
    def name(self) -> str:
        return self.config.name

    def describe(self) -> str:
        arrivals = self.config.arrivals
        workers = self.config.n_workers
        rate = f"{arrivals.mean_rate_per_s:.4g}/s"
        if arrivals.rate_range_per_s is not None:
            low, high = arrivals.rate_range_per_s
            rate = f"{low:g}-{high:g}/s per episode"
        return f"{arrivals.process}, {rate}, {workers} worker{'s' if workers > 1 else ''}"


@dataclass
class Plan:
    """Everything a run needs, validated."""

    agents: list[AgentSpec]
    scenarios: list[ScenarioEntry]
    seeds: list[int]
    horizon_s: float | None
    tuned: bool
    reference: str
    jobs: int
    out: Path
    report: Path | None
    title: str
    plots: bool
    command: str
    warnings: list[str] = field(default_factory=list)


def _scenario_config(spec: str, horizon_s: float | None) -> SystemConfig:
    config = load_scenario(spec)
    return config if horizon_s is None else config.replace(horizon_s=horizon_s)


def make_plan(args: argparse.Namespace, argv: Sequence[str]) -> Plan:
    """Validate the arguments; raises :class:`UsageError` with a clear message."""
    warnings: list[str] = []
    if args.agents is None:
        agent_specs = list(BASELINE_AGENTS) + (["optimal"] if agent_available("optimal") else [])
    else:
        try:
            agent_specs = split_specs(args.agents)
        except AgentSpecError as exc:
            raise UsageError(f"--agents: {exc}") from None
    if not agent_specs:
        raise UsageError("--agents: no agent given")
    try:
        agents = [parse_agent_spec(spec) for spec in agent_specs]
    except AgentSpecError as exc:
        raise UsageError(f"--agents: {exc}") from None
    labels = [a.label for a in agents]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UsageError(f"--agents: {duplicates[0]!r} given twice")

    if args.quick:
        if args.seeds is None and args.n_seeds is None:
            args.n_seeds = 5
        if args.horizon_s is None:
            args.horizon_s = 30.0
    if args.seeds is not None:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as exc:
            raise UsageError(f"--seeds: {exc}") from None
    else:
        n_seeds = 10 if args.n_seeds is None else args.n_seeds
        if n_seeds < 1:
            raise UsageError(f"--n-seeds must be >= 1, got {n_seeds}")
        seeds = list(range(n_seeds))
    overlap = sorted(set(seeds) & set(TRAINING_SEEDS))
    if overlap:
        warnings.append(f"seeds {overlap} are also tuning seeds: tuned baselines are favoured on them")
    if len(seeds) < 2:
        warnings.append("one seed: no confidence intervals")
    if args.horizon_s is not None and not (math.isfinite(args.horizon_s) and args.horizon_s > 0):
        raise UsageError(f"--horizon-s must be a number > 0, got {args.horizon_s}")

    names = list(SUITE) if args.scenarios.strip() == "suite" else split_specs(args.scenarios)
    if not names:
        raise UsageError("--scenarios: no scenario given")
    scenarios = []
    for spec in names:
        try:
            config = _scenario_config(spec, args.horizon_s)
        except ConfigError as exc:
            known = ", ".join(list_scenarios())
            text = str(exc) if "known:" in str(exc) else f"{exc} (known scenarios: {known})"
            raise UsageError(f"--scenarios: {spec!r}: {text}") from None
        scenarios.append(ScenarioEntry(spec, config))
    scenario_names = [s.name for s in scenarios]
    repeated = sorted({n for n in scenario_names if scenario_names.count(n) > 1})
    if repeated:
        raise UsageError(f"--scenarios: two scenarios are named {repeated[0]!r}")

    for spec in agents:  # build what is cheap to build now: errors before any episode runs
        if spec.name in EXTERNAL:  # may be expensive to build (optimal solves an SMDP): import only
            if not agent_available(spec.name):
                raise UsageError(
                    f"--agents: {spec.name} is not available ({EXTERNAL[spec.name][0]} cannot be imported)"
                )
            continue
        targets = scenarios[:1] if spec.name == "checkpoint" else scenarios
        for scenario in targets:
            try:
                make_agent(spec, scenario.config, tuned=not args.no_tuned)
            except NotApplicableError:
                pass
            except AgentSpecError as exc:
                raise UsageError(f"--agents: {exc}") from None

    reference = args.reference
    if reference not in ("auto", "none") and reference not in labels:
        raise UsageError(f"--reference: {reference!r} is not among the agents {labels} (or auto / none)")
    jobs = args.jobs if args.jobs is not None else min(len(os.sched_getaffinity(0)), 8)
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    return Plan(
        agents=agents,
        scenarios=scenarios,
        seeds=seeds,
        horizon_s=args.horizon_s,
        tuned=not args.no_tuned,
        reference=reference,
        jobs=jobs,
        out=args.out,
        report=args.report,
        title=args.title,
        plots=not args.no_plots,
        command="python evaluate.py" + ("" if not argv else " " + shlex.join(argv)),
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# Episodes (run in worker processes)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One episode: picklable, and everything its result depends on."""

    agent: str
    scenario: str
    seed: int
    horizon_s: float | None
    tuned: bool


_AGENTS: dict[tuple[str, str, float | None, bool], Any] = {}  # per-process cache of built agents


def run_task(task: Task) -> dict[str, Any]:
    """Run one episode; returns its metrics, its latency histogram and the agent's description,
    or ``{"not_applicable": why}`` / ``{"error": why}``."""
    key = (task.agent, task.scenario, task.horizon_s, task.tuned)
    config = _scenario_config(task.scenario, task.horizon_s)
    try:
        if key not in _AGENTS:
            _AGENTS[key] = make_agent(task.agent, config, tuned=task.tuned)
        agent = _AGENTS[key]
    except NotApplicableError as exc:
        return {"not_applicable": str(exc)}
    except AgentSpecError as exc:
        return {"error": str(exc)}
    sim = run_episode(agent, config, task.seed, record=True)
    metrics = compute_metrics(sim)
    values = {name: float(getattr(metrics, name)) for name in SCALAR_METRICS}
    mix = {name: float(share) for name, share in metrics.model_mix.items()}
    latency_ms = request_table(sim).latency_s * 1000.0
    histogram, _ = np.histogram(
        np.clip(latency_ms, LATENCY_EDGES_MS[0], LATENCY_EDGES_MS[-1]), LATENCY_EDGES_MS
    )
    return {
        "metrics": values,
        "model_mix": mix,
        "latency_histogram": histogram.astype(np.int64),
        "describe": agent.describe(),
        "params": agent.params(),
        "params_source": getattr(agent, "params_source", "defaults"),
    }


def run_tasks(tasks: list[Task], jobs: int, console: Any) -> list[dict[str, Any]]:
    """Results of every task, in task order, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    results: list[dict[str, Any] | None] = [None] * len(tasks)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("episodes", total=len(tasks))
        if jobs == 1:
            for i, task in enumerate(tasks):
                results[i] = run_task(task)
                progress.advance(bar)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    progress.advance(bar)
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval (Student t) of the finite values;
    the half-width is NaN with fewer than two values."""
    from scipy import stats

    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan
    half = float(stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return mean, half


@dataclass
class Cell:
    """Results of one agent on one scenario."""

    agent: str
    scenario: str
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    histogram: np.ndarray | None = None
    describe: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    params_source: str = ""
    not_applicable: str | None = None
    error: str | None = None
    reference: str | None = None
    summary: dict[str, tuple[float, float]] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        return self.summary.get(metric, (math.nan, math.nan))[0]


def collect(plan: Plan, tasks: list[Task], results: list[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """Group episode results by (agent label, scenario name) and summarise them."""
    labels = {a.text: a.label for a in plan.agents}
    names = {s.spec: s.name for s in plan.scenarios}
    cells: dict[tuple[str, str], Cell] = {}
    for task, result in zip(tasks, results, strict=True):
        key = (labels[task.agent], names[task.scenario])
        cell = cells.setdefault(key, Cell(*key))
        if "not_applicable" in result:
            cell.not_applicable = result["not_applicable"]
            continue
        if "error" in result:
            cell.error = result["error"]
            continue
        row = {"seed": task.seed, **result["metrics"]}
        row.update({f"mix_{m}": share for m, share in result["model_mix"].items()})
        cell.per_seed.append(row)
        hist = result["latency_histogram"]
        cell.histogram = hist.copy() if cell.histogram is None else cell.histogram + hist
        cell.describe, cell.params, cell.params_source = (
            result["describe"],
            result["params"],
            result["params_source"],
        )
    for scenario in plan.scenarios:
        ref = _reference(plan, cells, scenario.name)
        ref_costs = {}
        if ref is not None:
            ref_costs = {r["seed"]: r["cost_per_request"] for r in cells[(ref, scenario.name)].per_seed}
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            cell.reference = ref
            if not cell.per_seed:
                continue
            for row in cell.per_seed:
                base = ref_costs.get(row["seed"])
                row["gap"] = (row["cost_per_request"] - base) / base if base else math.nan
            keys = [k for k in cell.per_seed[0] if k not in ("seed", "gap")]
            cell.summary = {k: mean_ci95([row[k] for row in cell.per_seed]) for k in keys}
            cell.summary["gap"] = relative_gap(cell.per_seed, ref_costs)
    return cells


def relative_gap(rows: list[dict[str, Any]], ref_costs: dict[int, float]) -> tuple[float, float]:
    """Gap of the mean cost to the reference's, ``(mean cost - mean ref cost) / mean ref cost``,
    over the seeds both have, with the 95% CI of the seed-paired cost differences divided by
    the reference's mean cost. (A mean of per-seed ratios would let low-cost seeds dominate.)"""
    pairs = [(row["cost_per_request"], ref_costs[row["seed"]]) for row in rows if row["seed"] in ref_costs]
    pairs = [(c, r) for c, r in pairs if math.isfinite(c) and math.isfinite(r)]
    if not pairs:
        return math.nan, math.nan
    base = float(np.mean([r for _, r in pairs]))
    if base <= 0:
        return math.nan, math.nan
    mean, half = mean_ci95([c - r for c, r in pairs])
    return mean / base, half / base


def _reference(plan: Plan, cells: dict[tuple[str, str], Cell], scenario: str) -> str | None:
    """Label of the reference agent on ``scenario`` (None: no gap)."""
    labels = [a.label for a in plan.agents]

    def usable(label: str) -> bool:
        return label in labels and bool(cells[(label, scenario)].per_seed)

    if plan.reference == "none":
        return None
    if plan.reference != "auto":
        return plan.reference if usable(plan.reference) else None
    for kind in ("optimal", "timeout"):
        for agent in plan.agents:
            if agent.name == kind and usable(agent.label):
                return agent.label
    return None


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def make_run_dir(parent: Path) -> Path:
    """A new folder ``parent/eval_<YYYYmmdd-HHMMSS>_<n>``; an existing folder is never reused."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        path = parent / f"eval_{stamp}_{n}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else spec.format(value)


def _cell_text(cell: Cell, metric: str, spec: str, with_ci: bool) -> str:
    mean, half = cell.summary.get(metric, (math.nan, math.nan))
    text = _fmt(mean, spec)
    if with_ci and metric in CI_COLUMNS and math.isfinite(half) and math.isfinite(mean):
        text += " ± " + _fmt(half, spec).lstrip("+")
    return text


def _mix_text(cell: Cell, config: SystemConfig) -> str:
    parts = []
    for name in config.model_names:
        share = cell.value(f"mix_{name}")
        if math.isfinite(share) and share >= 0.005:
            parts.append(f"{name.replace('LLM-', 'L')} {share:.0%}")
    return " ".join(parts)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def summary_rows(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[dict[str, Any]]:
    metrics = [*SCALAR_METRICS, "gap"]
    rows = []
    for scenario in plan.scenarios:
        mixes = [f"mix_{m}" for m in scenario.config.model_names]
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            row: dict[str, Any] = {
                "scenario": scenario.name,
                "agent": agent.label,
                "spec": agent.text,
                "params": _params_text(cell.params),
                "params_source": cell.params_source,
                "reference": cell.reference or "",
                "n_seeds": len(cell.per_seed),
                "status": "n/a" if cell.not_applicable else ("error" if cell.error else "ok"),
            }
            for metric in [*metrics, *mixes]:
                mean, half = cell.summary.get(metric, (math.nan, math.nan))
                row[f"{metric}_mean"] = mean
                row[f"{metric}_ci95"] = half
            rows.append(row)
    return rows


def per_seed_rows(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[dict[str, Any]]:
    rows = []
    for scenario in plan.scenarios:
        for agent in plan.agents:
            for row in cells[(agent.label, scenario.name)].per_seed:
                rows.append({"scenario": scenario.name, "agent": agent.label, **row})
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def to_json(plan: Plan, cells: dict[tuple[str, str], Cell]) -> str:
    data = {
        "command": plan.command,
        "seeds": plan.seeds,
        "horizon_s": plan.horizon_s,
        "tuned": plan.tuned,
        "reference": plan.reference,
        "common_random_numbers": True,
        "scenarios": [
            {"name": s.name, "spec": s.spec, "description": s.describe(), "config": s.config.to_dict()}
            for s in plan.scenarios
        ],
        "cells": [
            {
                "scenario": scenario.name,
                "agent": agent.label,
                "spec": agent.text,
                "describe": cell.describe,
                "params": cell.params,
                "params_source": cell.params_source,
                "reference": cell.reference,
                "not_applicable": cell.not_applicable,
                "error": cell.error,
                "summary": {k: {"mean": m, "ci95": h} for k, (m, h) in cell.summary.items()},
                "per_seed": cell.per_seed,
            }
            for scenario in plan.scenarios
            for agent in plan.agents
            for cell in [cells[(agent.label, scenario.name)]]
        ],
    }
    return json.dumps(_json_safe(data), indent=1) + "\n"


def _table_rows(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    scenario: ScenarioEntry,
    columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS,
) -> list[list[str]]:
    rows = []
    for agent in plan.agents:
        cell = cells[(agent.label, scenario.name)]
        if not cell.per_seed:
            status = "n/a" if cell.not_applicable else "error"
            rows.append([agent.label, status] + [""] * len(columns))
            continue
        values = [_cell_text(cell, metric, spec, True) for metric, _, spec in columns]
        rows.append([agent.label, *values, _mix_text(cell, scenario.config)])
    return rows


def _table_title(scenario: ScenarioEntry, cells: dict[tuple[str, str], Cell], plan: Plan) -> str:
    ref = cells[(plan.agents[0].label, scenario.name)].reference
    gap = f"gap vs {ref}" if ref else "no gap reference"
    return f"{scenario.name} ({scenario.describe()}; {gap})"


def to_markdown(plan: Plan, cells: dict[tuple[str, str], Cell], figure_dir: str | None) -> str:
    headers = ["agent", *(h for _, h, _ in TABLE_COLUMNS), "model mix"]
    seeds = _seed_text(plan.seeds)
    horizon = f"{plan.horizon_s:g} s" if plan.horizon_s else "each scenario's horizon_s"
    lines = [
        f"# {plan.title}",
        "",
        "Produced by:",
        "",
        f"```\n{plan.command}\n```",
        "",
        f"Seeds {seeds} ({len(plan.seeds)} per cell), episodes of {horizon}, common random numbers "
        "(every agent meets the same arrivals for the same scenario and seed). Each number is the "
        "mean over seeds; ± is the half-width of the 95% confidence interval (Student t). "
        "cost/req = best quality - score per request (lower is better); gap = (mean cost - mean "
        "cost of the reference) / mean cost of the reference, its CI from the seed-paired cost "
        "differences. Latencies in ms; SLO = fraction "
        "of requests within slo_ms; thr/s = served requests per second; forced = dispatches forced "
        "by the max_wait_ms shield per episode. Each agent's parameters and where they come from "
        "are listed under Parameters"
        + (
            f"; tuned ones come from agents/tuned/<scenario>.yaml (grid search on seeds "
            f"{_seed_text(list(TRAINING_SEEDS))}, never used here)."
            if plan.tuned
            else "."
        ),
        "",
    ]
    lines += _overview(plan, cells)
    for scenario in plan.scenarios:
        lines += [f"## {_table_title(scenario, cells, plan)}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for row in _table_rows(plan, cells, scenario):
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Parameters", "", "| agent | scenarios | parameters | source |", "|---|---|---|---|"]
    for agent in plan.agents:
        groups: dict[tuple[str, str], list[str]] = {}
        for scenario in plan.scenarios:
            cell = cells[(agent.label, scenario.name)]
            if cell.not_applicable:
                key = ("not applicable", "")
            else:
                key = (_params_text(cell.params), cell.params_source)
            groups.setdefault(key, []).append(scenario.name)
        for (params, source), names in groups.items():
            where = "all" if len(names) == len(plan.scenarios) and len(names) > 1 else ", ".join(names)
            lines.append(f"| {agent.label} | {where} | {params} | {source} |")
    lines.append("")
    if figure_dir is not None:
        lines += [
            "## Figures",
            "",
            f"![Latency CDF per scenario]({figure_dir}latency_cdf.png)",
            "",
            f"![Score and cost per request vs mean arrival rate]({figure_dir}score_vs_rate.png)",
            "",
            f"![Mean quality vs p99 latency, Pareto front]({figure_dir}pareto_quality_p99.png)",
            "",
        ]
    return "\n".join(lines)


def _overview(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[str]:
    """Markdown overview: cost per request (and gap) of every agent on every scenario."""
    labels = [a.label for a in plan.agents]
    lines = [
        "## Overview: cost per request (gap to the reference)",
        "",
        "| scenario | reference | " + " | ".join(labels) + " |",
        "|---|---|" + "|".join("---" for _ in labels) + "|",
    ]
    for scenario in plan.scenarios:
        row = [scenario.name, cells[(labels[0], scenario.name)].reference or "-"]
        for label in labels:
            cell = cells[(label, scenario.name)]
            if not cell.per_seed:
                row.append("n/a" if cell.not_applicable else "error")
                continue
            text = _fmt(cell.value("cost_per_request"), "{:.4f}")
            gap = cell.value("gap")
            if math.isfinite(gap) and label != cell.reference:
                text += f" ({gap:+.2%})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _seed_text(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def print_tables(plan: Plan, cells: dict[tuple[str, str], Cell], console: Any) -> None:
    from rich.table import Table

    columns = [c for c in TABLE_COLUMNS if c[0] in TERMINAL_COLUMNS]
    for scenario in plan.scenarios:
        table = Table(title=_table_title(scenario, cells, plan), title_justify="left")
        table.add_column("agent", style="bold", no_wrap=True)
        for metric, header, _ in columns:
            table.add_column(header, justify="right", no_wrap=metric in CI_COLUMNS)
        table.add_column("model mix")
        for row in _table_rows(plan, cells, scenario, columns):
            table.add_row(*row)
        console.print(table)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def _save(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_atomic(path, buffer.getvalue())


def plot_all(plan: Plan, cells: dict[tuple[str, str], Cell], folder: Path) -> list[Path]:
    """Write the three figures into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    color = {a.label: colors(i % 10) for i, a in enumerate(plan.agents)}
    paths = []

    rows, cols = _grid(len(plan.scenarios))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, plan.scenarios, strict=False):
        used = [len(LATENCY_EDGES_MS), 0]  # range of non-empty bins, for the x limits
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            if cell.histogram is None or cell.histogram.sum() == 0:
                continue
            nonzero = np.flatnonzero(cell.histogram)
            used = [min(used[0], nonzero[0]), max(used[1], nonzero[-1] + 1)]
            cdf = np.cumsum(cell.histogram) / cell.histogram.sum()
            ax.step(LATENCY_EDGES_MS[1:], cdf, where="post", color=color[agent.label], label=agent.label)
        ax.axvline(scenario.config.slo_ms, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        if used[1] > used[0]:
            ax.set_xlim(LATENCY_EDGES_MS[used[0]] / 1.5, LATENCY_EDGES_MS[used[1]] * 1.5)
        ax.set_title(scenario.name, fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("CDF")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(plan.scenarios) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Latency CDF (all seeds pooled; dotted: SLO)")
    fig.tight_layout()
    paths.append(folder / "latency_cdf.png")
    _save(fig, paths[-1])
    plt.close(fig)

    fig, (ax_score, ax_cost) = plt.subplots(1, 2, figsize=(11, 4))
    families: dict[tuple, list[ScenarioEntry]] = {}
    for scenario in plan.scenarios:
        cfg = scenario.config
        key = (cfg.arrivals.process, cfg.n_workers, cfg.arrivals.trace_path, cfg.arrivals.rate_range_per_s)
        families.setdefault(key, []).append(scenario)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for f, members in enumerate(families.values()):
        members = sorted(members, key=lambda s: s.config.arrivals.mean_rate_per_s)
        for agent in plan.agents:
            points = [(s.config.arrivals.mean_rate_per_s, cells[(agent.label, s.name)]) for s in members]
            points = [(x, c) for x, c in points if c.per_seed]
            if not points:
                continue
            x = [p[0] for p in points]
            for ax, metric in ((ax_score, "score_per_request"), (ax_cost, "cost_per_request")):
                y = [c.summary[metric][0] for _, c in points]
                err = [np.nan_to_num(c.summary[metric][1]) for _, c in points]
                ax.errorbar(
                    x,
                    y,
                    yerr=err,
                    color=color[agent.label],
                    linestyle=styles[f % len(styles)] if len(points) > 1 else "none",
                    marker=markers[f % len(markers)],
                    markersize=4,
                    capsize=2,
                    label=agent.label if f == 0 else None,
                )
    for ax, label in ((ax_score, "score per request"), (ax_cost, "cost per request (log)")):
        ax.set_xlabel("mean arrival rate (requests/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_cost.set_yscale("log")
    legend = [f"{m}: {k[0]}, {k[1]} worker(s)" for m, k in zip(markers, families, strict=False)]
    ax_score.legend(fontsize=7)
    ax_cost.set_title("markers: " + "; ".join(legend[:4]), fontsize=7)
    fig.suptitle("Score and cost per request vs load (mean ± 95% CI)")
    fig.tight_layout()
    paths.append(folder / "score_vs_rate.png")
    _save(fig, paths[-1])
    plt.close(fig)

    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, plan.scenarios, strict=False):
        points = []
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            if not cell.per_seed:
                continue
            p99, quality = cell.value("latency_p99_ms"), cell.value("mean_quality")
            if math.isfinite(p99) and math.isfinite(quality):
                points.append((p99, quality, agent.label))
                ax.scatter(p99, quality, color=color[agent.label], label=agent.label, zorder=3)
        front = []
        for p99, quality, _ in sorted(points):
            if not front or quality > front[-1][1]:
                front.append((p99, quality))
        if len(front) > 1:
            ax.step([p for p, _ in front], [q for _, q in front], where="post", color="black", alpha=0.4)
        ax.set_xscale("log")
        ax.set_title(scenario.name, fontsize=9)
        ax.set_xlabel("p99 latency (ms)")
        ax.set_ylabel("mean quality")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(plan.scenarios) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Quality vs p99 latency (line: Pareto front, up and left is better)")
    fig.tight_layout()
    paths.append(folder / "pareto_quality_p99.png")
    _save(fig, paths[-1])
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a log file or pipe: wide enough for the whole table
        console = Console(width=160)
    try:
        plan = make_plan(args, argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    tasks = [
        Task(agent.text, scenario.spec, seed, plan.horizon_s, plan.tuned)
        for scenario in plan.scenarios
        for agent in plan.agents
        for seed in plan.seeds
    ]
    console.print(
        f"{len(plan.agents)} agents x {len(plan.scenarios)} scenarios x {len(plan.seeds)} seeds "
        f"= {len(tasks)} episodes on {plan.jobs} process{'es' if plan.jobs > 1 else ''}"
    )
    start = time.perf_counter()
    try:
        results = run_tasks(tasks, plan.jobs, console)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: nothing written")
        return 130
    cells = collect(plan, tasks, results)
    elapsed = time.perf_counter() - start

    print_tables(plan, cells, console)
    for agent in plan.agents:
        for scenario in plan.scenarios:
            cell = cells[(agent.label, scenario.name)]
            if cell.per_seed and agent.name in ("timeout", "util_switch"):
                console.print(
                    f"{agent.label} on {scenario.name}: {cell.params_source}: {_params_text(cell.params)}"
                )
    errors = [c for c in cells.values() if c.error]
    for cell in errors:
        console.print(f"[red]error[/] {cell.agent} on {cell.scenario}: {cell.error}")
    skipped = {c.not_applicable for c in cells.values() if c.not_applicable}
    for reason in sorted(skipped):
        console.print(f"[dim]n/a: {reason}[/]")

    run_dir = make_run_dir(plan.out)
    write_atomic(run_dir / "summary.csv", to_csv(summary_rows(plan, cells)))
    write_atomic(run_dir / "per_seed.csv", to_csv(per_seed_rows(plan, cells)))
    write_atomic(run_dir / "results.json", to_json(plan, cells))
    figures = plot_all(plan, cells, run_dir) if plan.plots else []
    write_atomic(run_dir / "report.md", to_markdown(plan, cells, "" if figures else None))
    if plan.report is not None:
        figure_dir = plan.report.parent / f"{plan.report.stem}_figures"
        for path in figures:
            write_atomic(figure_dir / path.name, path.read_bytes())
        prefix = f"{figure_dir.name}/" if figures else None
        write_atomic(plan.report, to_markdown(plan, cells, prefix))
        console.print(f"report: {plan.report}")
    console.print(f"results: {run_dir}/ ({elapsed:.1f} s of episodes)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
