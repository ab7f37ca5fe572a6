"""Aggregate of training runs that differ only in their seed: the final evaluation of each run
(the last record of its ``evaluations.json``, :class:`~agents.callbacks.DomainEvalCallback`) and,
per evaluation target, the mean and 95% confidence interval (Student t) across the runs.

A claim about a learning setup is a claim about the distribution over training seeds; this is
the summary that ``train.py --seeds`` writes (``aggregate.json``, ``aggregate.md``) and that
``benchmarks/learning.py`` reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from evaluation.stats import mean_ci95

__all__ = ["AGGREGATED_METRICS", "aggregate_markdown", "aggregate_runs", "final_evaluation"]

AGGREGATED_METRICS = (
    "gap_to_reference",
    "gap_to_optimal",
    "cost_per_request",
    "latency_mean_ms",
    "latency_p99_ms",
    "slo_attainment",
    "mean_quality",
)
"""Per-target metrics of the final evaluation that are aggregated across seeds."""


def final_evaluation(run_dir: Path) -> dict[str, Any]:
    """The run's seed, timesteps and last evaluation record.

    :raises ValueError: when the run has no evaluation (trained with ``--eval-freq 0``, or
        stopped before its first evaluation).
    """
    run_dir = Path(run_dir)
    path = run_dir / "evaluations.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no evaluations.json (train with --eval-freq > 0)")
    history = json.loads(path.read_text())
    if not isinstance(history, list) or not history:
        raise ValueError(f"{path}: no evaluation record")
    args = yaml.safe_load((run_dir / "args.yml").read_text()) if (run_dir / "args.yml").is_file() else {}
    last = history[-1]
    return {
        "run": run_dir.name,
        "seed": (args or {}).get("seed"),
        "timesteps": last["timesteps"],
        "gap_to_reference": last.get("gap_to_reference"),
        "worst_gap_to_reference": last.get("worst_gap_to_reference"),
        "per_target": last["per_rate"],
    }


def _summary(values: Sequence[float | None]) -> dict[str, float | int]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    mean, half = mean_ci95(finite)
    return {"mean": mean, "ci95": half, "n": len(finite)}


def aggregate_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """Mean and 95% CI across ``run_dirs`` of each run's final evaluation, per target and overall.

    :returns: ``{"runs": [...], "targets": {label: {metric: {mean, ci95, n}}}, "overall": {...}}``.
    """
    runs = [final_evaluation(Path(d)) for d in run_dirs]
    labels: list[str] = []
    for run in runs:
        labels += [label for label in run["per_target"] if label not in labels]
    targets = {
        label: {
            metric: _summary([run["per_target"].get(label, {}).get(metric) for run in runs])
            for metric in AGGREGATED_METRICS
        }
        for label in labels
    }
    overall = {
        key: _summary([run[key] for run in runs]) for key in ("gap_to_reference", "worst_gap_to_reference")
    }
    return {"runs": runs, "targets": targets, "overall": overall}


def _pct(summary: dict[str, float | int]) -> str:
    if summary["n"] == 0 or not math.isfinite(summary["mean"]):
        return "n/a"
    ci = "" if not math.isfinite(summary["ci95"]) else f" ± {summary['ci95']:.2%}"
    return f"{summary['mean']:+.2%}{ci}"


def _num(summary: dict[str, float | int], digits: int) -> str:
    if summary["n"] == 0 or not math.isfinite(summary["mean"]):
        return "n/a"
    ci = "" if not math.isfinite(summary["ci95"]) else f" ± {summary['ci95']:.{digits}f}"
    return f"{summary['mean']:.{digits}f}{ci}"


def aggregate_markdown(aggregate: dict[str, Any], title: str, command: str) -> str:
    """The aggregate as Markdown: one row per evaluation target, then the runs."""
    runs = aggregate["runs"]
    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = [
        f"# {title}",
        "",
        f"Produced by `{command}`. Final evaluation of each of {len(runs)} training runs (seeds "
        f"{seeds}); each cell is the mean across the runs ± the half-width of its 95% confidence "
        "interval (Student t, across training seeds). Gap to reference = (cost - reference cost) / "
        "reference cost per request, the reference being the best of greedy, the timeout and the "
        "proposed scheduler on the same evaluation seeds (agents/callbacks.py); gap to optimum "
        "where the exact optimum applies.",
        "",
        "| target | gap to reference | gap to optimum | cost/req | mean ms | p99 ms | SLO | quality |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, m in aggregate["targets"].items():
        lines.append(
            f"| {label} | {_pct(m['gap_to_reference'])} | {_pct(m['gap_to_optimal'])} | "
            f"{_num(m['cost_per_request'], 4)} | {_num(m['latency_mean_ms'], 1)} | "
            f"{_num(m['latency_p99_ms'], 1)} | {_num(m['slo_attainment'], 3)} | "
            f"{_num(m['mean_quality'], 4)} |"
        )
    overall = aggregate["overall"]
    lines += [
        f"| **mean over targets** | {_pct(overall['gap_to_reference'])} | | | | | | |",
        f"| **worst target** | {_pct(overall['worst_gap_to_reference'])} | | | | | | |",
        "",
        "| run | seed | timesteps | mean gap to reference | worst gap to reference |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        mean = run["gap_to_reference"]
        worst = run["worst_gap_to_reference"]
        lines.append(
            f"| {run['run']} | {run['seed']} | {run['timesteps']} | "
            f"{'n/a' if mean is None else f'{mean:+.2%}'} | {'n/a' if worst is None else f'{worst:+.2%}'} |"
        )
    return "\n".join(lines) + "\n"
