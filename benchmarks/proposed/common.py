"""What the parts of the proposed scheduler's benchmarks share: the episode grid on the execution
layer, the gap, and figure and number formatting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.stats import paired_gap
from execution.backends import Backend
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.run import run_tasks

REPO = Path(__file__).resolve().parents[2]


def pct(mean_half: tuple[float, float], digits: int = 3) -> str:
    mean, half = mean_half
    return f"{100 * mean:+.{digits}f}% ± {100 * half:.{digits}f}%"


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def episode_row(result: EpisodeResult) -> dict[str, float]:
    """The numbers the parts use from one episode: cost, p99 and mean latency (ms), SLO
    attainment, quality, forced dispatches, CUSUM alarms (NaN for agents without an estimator)
    and the model mix."""
    m = result.metrics
    return {
        "alarms": result.diagnostics.get("estimator_alarms", math.nan),
        "cost": m["cost_per_request"],
        "p99_ms": m["latency_p99_ms"],
        "mean_ms": m["latency_mean_ms"],
        "slo": m["slo_attainment"],
        "quality": m["mean_quality"],
        "forced": int(m["n_forced"]),
        **{f"mix_{k}": v for k, v in result.model_mix.items()},
    }


def run_grid(
    backend: Backend,
    specs: Sequence[str],
    scenario: str,
    seeds: Sequence[int],
    horizon_s: float | None,
    tuned_dir: str | None = None,
    record: bool = False,
) -> dict[str, list[dict]]:
    """Per agent spec, the rows (:func:`episode_row`) of its episodes on ``scenario``, in seed
    order, run on ``backend``.

    :param record: keep every request (latency percentiles); otherwise they are NaN.
    """
    tasks = [
        EpisodeTask(
            spec, scenario, seed, horizon_s, tuned_dir=tuned_dir, record="requests" if record else "totals"
        )
        for spec in specs
        for seed in seeds
    ]
    outcomes = run_tasks(backend, run_episode_task, [(task,) for task in tasks])
    out: dict[str, list[dict]] = {s: [] for s in specs}
    for task, outcome in zip(tasks, outcomes, strict=True):
        result = outcome.unwrap()
        if result.status != "ok":
            raise ValueError(f"{task.agent} on {scenario}: {result.reason}")
        out[task.agent].append(episode_row(result))
    return out


def gap(rows: Sequence[dict], reference: Sequence[dict]) -> tuple[float, float]:
    """The gap (:func:`evaluation.stats.paired_gap`) of the rows' costs to the reference rows'
    costs, paired by seed: relative difference of mean costs and its 95% confidence interval."""
    return paired_gap([r["cost"] for r in rows], [r["cost"] for r in reference])


def save_figure(fig: Any, figures: Path, name: str, caption: str) -> list[str]:
    """Save ``fig`` (tight layout, 110 dpi) as ``figures/name`` and close it; returns the Markdown
    lines that show it under ``caption``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = figures / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ["", f"![{caption}]({path.parent.name}/{path.name})", ""]
