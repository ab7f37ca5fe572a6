"""Figures of an evaluation: latency CDF per scenario, score and cost per request against the
mean arrival rate, and mean quality against p99 latency with the Pareto front."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from batchenv.fileio import write_atomic
from evaluation.cells import Cell
from evaluation.plan import Plan, ScenarioEntry
from execution.episode import LATENCY_EDGES_MS

__all__ = ["compact_png", "plot_all", "save_png"]


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def compact_png(png: bytes) -> bytes:
    """``png`` (a rendered figure) as a 256-colour palette PNG, compressed: about a third of the
    bytes of matplotlib's RGBA output for line plots on a white background, the same picture to
    the eye. Deterministic: the same input gives the same bytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` as a compact 256-colour PNG (110 dpi; no software tag)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_atomic(path, compact_png(buffer.getvalue()))


def plot_all(plan: Plan, cells: dict[tuple[str, str], Cell], folder: Path) -> list[Path]:
    """Write the three figures into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    color = {a.label: colors(i % 10) for i, a in enumerate(plan.agents)}
    paths = []
    for name, draw in (
        ("latency_cdf.png", _latency_cdf),
        ("score_vs_rate.png", _score_vs_rate),
        ("pareto_quality_p99.png", _pareto_quality_p99),
    ):
        fig = draw(plan, cells, color)
        fig.tight_layout()
        paths.append(folder / name)
        save_png(fig, paths[-1])
        plt.close(fig)
    return paths


def _scenario_panels(
    plan: Plan, title: str, xlabel: str, ylabel: str, draw: Callable[[Any, ScenarioEntry], None]
) -> Any:
    """A figure with one panel per scenario (at most four per row): ``draw(ax, scenario)``, then
    the scenario's name as the panel title, the axis labels and a grid; spare panels blank, the
    legend in the first panel, ``title`` above all."""
    import matplotlib.pyplot as plt

    rows, cols = _grid(len(plan.scenarios))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, plan.scenarios, strict=False):
        draw(ax, scenario)
        ax.set_title(scenario.name, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(plan.scenarios) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def _latency_cdf(plan: Plan, cells: dict[tuple[str, str], Cell], color: dict[str, Any]) -> Any:
    """Latency CDF per scenario, every agent's seeds pooled; the SLO as a dotted line."""

    def draw(ax: Any, scenario: ScenarioEntry) -> None:
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

    return _scenario_panels(plan, "Latency CDF (all seeds pooled; dotted: SLO)", "latency (ms)", "CDF", draw)


def _score_vs_rate(plan: Plan, cells: dict[tuple[str, str], Cell], color: dict[str, Any]) -> Any:
    """Score and cost per request against the mean arrival rate, one line per agent and family
    of scenarios (same arrival process, workers, trace and rate range)."""
    import matplotlib.pyplot as plt

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
    return fig


def _pareto_quality_p99(plan: Plan, cells: dict[tuple[str, str], Cell], color: dict[str, Any]) -> Any:
    """Mean quality against p99 latency per scenario, one point per agent, and the Pareto front."""

    def draw(ax: Any, scenario: ScenarioEntry) -> None:
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

    return _scenario_panels(
        plan,
        "Quality vs p99 latency (line: Pareto front, up and left is better)",
        "p99 latency (ms)",
        "mean quality",
        draw,
    )
