"""Machine-readable outputs of an evaluation: the run folder, ``summary.csv``, ``per_seed.csv``
and ``results.json``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import batchenv
from batchenv.fileio import json_safe
from evaluation.cells import Bounds, Cell, HindsightBounds
from evaluation.plan import Plan
from execution.episode import SCALAR_METRICS

__all__ = [
    "SCHEMA_VERSION",
    "StagedRun",
    "make_run_dir",
    "params_text",
    "per_seed_rows",
    "staged_run_dir",
    "summary_rows",
    "to_csv",
    "to_json",
]


SCHEMA_VERSION = 2
"""Version of ``results.json``'s layout (the field ``schema_version``; a file without it is
version 1). Version 2: per-seed rows carry the counts (``n_arrived`` ...) as ints,
``queued_at_end`` (the fraction of the arrivals still queued at the horizon) and
``cost_ratio_to_reference_minus_1`` (version 1 called it ``gap``, which is the ratio of the mean
costs everywhere else); a ratio an episode cannot define is null (version 1 wrote 0 for some);
each cell has ``seeds_per_mean`` (the means over fewer seeds than the cell ran) and the file
``batchenv_version``."""


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


@dataclass
class StagedRun:
    """A run folder being written: ``path`` is a hidden ``.partial`` folder until the block of
    :func:`staged_run_dir` ends, then the final ``eval_<time>_<n>`` folder."""

    path: Path


@contextmanager
def staged_run_dir(parent: Path, prefix: str = "eval") -> Iterator[StagedRun]:
    """Write a run folder completely or not at all: files go into a hidden staging folder
    under ``parent``, renamed to a new ``<prefix>_<YYYYmmdd-HHMMSS>_<n>`` (never an existing
    one) when the block ends. If the block fails (a full disk, Ctrl-C), the staging folder is
    removed, so a results folder that exists is always complete."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix}_", suffix=".partial", dir=parent))
    run = StagedRun(staging)
    try:
        yield run
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        final = parent / f"{prefix}_{stamp}_{n}"
        if final.exists():
            continue
        try:
            staging.rename(final)  # atomic on one file system
        except OSError:
            if final.exists():  # taken meanwhile by another run
                continue
            raise
        run.path = final
        return


def params_text(params: dict[str, Any]) -> str:
    """``key=value, ...`` of an agent's parameters, in their order."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def summary_rows(plan: Plan, cells: dict[tuple[str, str], Cell]) -> list[dict[str, Any]]:
    metrics = [*SCALAR_METRICS, "queued_at_end", "gap", "gap_hindsight"]
    rows = []
    for scenario in plan.scenarios:
        mixes = [f"mix_{m}" for m in scenario.config.model_names]
        for agent in plan.agents:
            cell = cells[(agent.label, scenario.name)]
            row: dict[str, Any] = {
                "scenario": scenario.name,
                "agent": agent.label,
                "spec": agent.text,
                "params": params_text(cell.params),
                "params_source": cell.params_source,
                "reference": cell.reference or "",
                "n_seeds": len(cell.per_seed),
                "status": "n/a" if cell.not_applicable else ("error" if cell.error else "ok"),
                "fewer_seeds": ";".join(f"{k}={n}" for k, n in cell.fewer_seeds().items()),
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


def _by_seed(bounds: Bounds, scenario: str) -> dict[str, float]:
    """One scenario's costs per request by seed, with the seeds as JSON keys."""
    return {str(seed): value for seed, value in bounds.get(scenario, {}).items()}


def to_json(
    plan: Plan,
    cells: dict[tuple[str, str], Cell],
    hindsight: HindsightBounds | None = None,
) -> str:
    """``results.json`` (also written next to ``--report X.md`` as ``X.json``): the command, seeds,
    horizon (s), each scenario (name, its seeds: ``--min-requests`` extends a quiet one's, arrival
    process, mean rate and rate range in requests/s, workers, latency target, the full config, the
    hindsight bound per seed, the cost per request of the best schedule found with the arrivals
    known, or why there is none) and one entry per (scenario, agent) cell with
    every metric's mean and 95% half-width under ``summary`` (``gap_hindsight``: the relative gap
    to the bound), whether it met the scenario's latency target (``target_met``; None without a
    target), ``seeds_per_mean`` (the metrics whose mean uses fewer seeds than the cell ran: the
    others had no arrival, batch or served request to define them) and the per-seed values under
    ``per_seed`` (:data:`SCHEMA_VERSION` lists what changed from version 1)."""
    data = {
        "schema_version": SCHEMA_VERSION,
        "batchenv_version": batchenv.__version__,
        "command": plan.command,
        "seeds": plan.seeds,
        "horizon_s": plan.horizon_s,
        "tuned": plan.tuned,
        "reference": plan.reference,
        "common_random_numbers": True,
        "scenarios": [
            {
                "name": s.name,
                "spec": s.spec,
                "seeds": plan.seeds_of(s),
                "description": s.describe(),
                "process": s.config.arrivals.process,
                "mean_rate_per_s": s.config.arrivals.mean_rate_per_s,
                "rate_range_per_s": s.config.arrivals.rate_range_per_s,
                "n_workers": s.config.n_workers,
                "latency_target": None
                if s.target is None
                else {
                    "describe": s.target.describe(s.config.slo_ms),
                    "quantile": s.target.quantile,
                    "bound_ms": s.target.bound_for(s.config.slo_ms),
                },
                "config": s.config.to_dict(),
                "hindsight_cost_per_request": _by_seed(hindsight.lower if hindsight else {}, s.name),
                "hindsight_found_cost_per_request": _by_seed(hindsight.found if hindsight else {}, s.name),
                "no_hindsight": hindsight.missing.get(s.name) if hindsight else None,
            }
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
                "seeds_per_mean": cell.fewer_seeds(),
                "target_met": None if scenario.target is None else cell.target_met(scenario.target),
                "per_seed": cell.per_seed,
            }
            for scenario in plan.scenarios
            for agent in plan.agents
            for cell in [cells[(agent.label, scenario.name)]]
        ],
    }
    return json.dumps(json_safe(data), indent=1) + "\n"
