"""Figures of an evaluation: latency CDF per scenario, cost per request and p99 latency against
the mean arrival rate, and mean quality against p99 latency with the Pareto front.

Agents that behave alike draw on top of each other; each agent therefore has its own line style
(CDF) or marker, drawn smaller than the agents before it (the others), so that identical results
stay visible. Log axes carry plain numbers (``100``, ``200``, ``500``), a few per decade."""

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

__all__ = ["FIGURES", "compact_png", "plain_log_axis", "plot_all", "save_png"]

FIGURES = ("latency_cdf.png", "score_vs_rate.png", "pareto_quality_p99.png")
"""The file names of the figures, in the order :func:`plot_all` writes them."""

LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def plain_log_axis(axis: Any) -> None:
    """A log ``axis`` (``ax.xaxis`` or ``ax.yaxis``) labelled with a few plain numbers and no
    minor-tick labels (the default labels, ``2 x 10^2``, overlap on a short range): about four
    evenly spaced ones within a decade, 1, 2 and 5 times the powers of ten over a few decades,
    the powers of ten beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    low, high = sorted(axis.get_view_interval())
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    if decades < 1:
        axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
    else:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _size(index: int) -> float:
    """Marker area of the ``index``-th agent: each smaller than the one before, so that agents
    on the same spot show as nested markers."""
    return max(14.0, 90.0 - 14.0 * index)


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
    for name, draw in zip(FIGURES, (_latency_cdf, _score_vs_rate, _pareto_quality_p99), strict=True):
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
    """Latency CDF per scenario, every agent's seeds pooled (unlike the tables' p99, a mean of
    per-episode percentiles); the SLO as a dotted line, inside the x range."""

    def draw(ax: Any, scenario: ScenarioEntry) -> None:
        used = [len(LATENCY_EDGES_MS), 0]  # range of non-empty bins, for the x limits
        for i, agent in enumerate(plan.agents):
            cell = cells[(agent.label, scenario.name)]
            if cell.histogram is None or cell.histogram.sum() == 0:
                continue
            nonzero = np.flatnonzero(cell.histogram)
            used = [min(used[0], nonzero[0]), max(used[1], nonzero[-1] + 1)]
            cdf = np.cumsum(cell.histogram) / cell.histogram.sum()
            ax.step(
                LATENCY_EDGES_MS[1:],
                cdf,
                where="post",
                color=color[agent.label],
                label=agent.label,
                linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                linewidth=max(0.8, 2.2 - 0.35 * i),
            )
        slo = scenario.config.slo_ms
        ax.axvline(slo, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        if used[1] > used[0]:
            low, high = LATENCY_EDGES_MS[used[0]] / 1.5, LATENCY_EDGES_MS[used[1]] * 1.5
            ax.set_xlim(min(low, slo / 1.5), max(high, slo * 1.5))
        plain_log_axis(ax.xaxis)

    return _scenario_panels(
        plan,
        "Latency CDF of the served requests (all seeds pooled; dotted: SLO)",
        "latency (ms)",
        "CDF",
        draw,
    )


def _error_bars(y: list[float], half: list[float], log: bool) -> tuple[np.ndarray, float | None]:
    """Asymmetric error bars (2, n) for means ``y`` with half-widths ``half`` (NaN: none); on a
    log axis a bar whose lower end is not above 0 is clipped: it runs to below the axis bottom
    (returned; None when the axis is linear or nothing is finite), which marks it as open."""
    mean, err = np.asarray(y, dtype=float), np.nan_to_num(np.asarray(half, dtype=float))
    lower, upper = err.copy(), err.copy()
    if not log:
        return np.vstack([lower, upper]), None
    ends = np.concatenate([mean, mean - err])
    positive = ends[np.isfinite(ends) & (ends > 0)]
    if not len(positive):
        return np.vstack([lower, upper]), None
    bottom = float(positive.min()) / 1.5
    open_ended = mean - err <= 0
    lower[open_ended] = mean[open_ended] - bottom / 2  # past the bottom, cut by the axes
    return np.vstack([lower, upper]), bottom


def _score_vs_rate(plan: Plan, cells: dict[tuple[str, str], Cell], color: dict[str, Any]) -> Any:
    """Cost per request and p99 latency (the mean of per-episode p99) against the mean arrival
    rate, one line per agent and family of scenarios (same arrival process, workers, trace and
    rate range); both on log axes, an interval reaching 0 clipped at the bottom."""
    import matplotlib.pyplot as plt

    fig, (ax_cost, ax_p99) = plt.subplots(1, 2, figsize=(11, 4))
    families: dict[tuple, list[ScenarioEntry]] = {}
    for scenario in plan.scenarios:
        cfg = scenario.config
        key = (cfg.arrivals.process, cfg.n_workers, cfg.arrivals.trace_path, cfg.arrivals.rate_range_per_s)
        families.setdefault(key, []).append(scenario)
    bottoms: dict[Any, list[float]] = {ax_cost: [], ax_p99: []}
    for f, members in enumerate(families.values()):
        members = sorted(members, key=lambda s: s.config.arrivals.mean_rate_per_s)
        for i, agent in enumerate(plan.agents):
            points = [(s.config.arrivals.mean_rate_per_s, cells[(agent.label, s.name)]) for s in members]
            points = [(x, c) for x, c in points if c.per_seed]
            if not points:
                continue
            x = [p[0] for p in points]
            for ax, metric in ((ax_cost, "cost_per_request"), (ax_p99, "latency_p99_ms")):
                y = [c.value(metric) for _, c in points]
                yerr, bottom = _error_bars(
                    y, [c.summary.get(metric, (np.nan, np.nan))[1] for _, c in points], True
                )
                if bottom is not None:
                    bottoms[ax].append(bottom)
                ax.errorbar(
                    x,
                    y,
                    yerr=yerr,
                    color=color[agent.label],
                    linestyle=LINE_STYLES[f % len(LINE_STYLES)] if len(points) > 1 else "none",
                    marker=MARKERS[f % len(MARKERS)],
                    markersize=max(2.5, 6.0 - 0.8 * i),
                    capsize=2,
                    label=agent.label if f == 0 else None,
                )
    for ax, label in (
        (ax_cost, "cost per request (log)"),
        (ax_p99, "p99 latency, ms (log; mean of per-episode p99)"),
    ):
        ax.set_xlabel("mean arrival rate (requests/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_yscale("log")
        if bottoms[ax]:
            ax.set_ylim(bottom=min(bottoms[ax]))
        plain_log_axis(ax.yaxis)
    legend = [f"{m}: {k[0]}, {k[1]} worker(s)" for m, k in zip(MARKERS, families, strict=False)]
    ax_cost.legend(fontsize=7)
    ax_p99.set_title("markers: " + "; ".join(legend[:4]), fontsize=7)
    fig.suptitle("Cost per request and p99 latency vs load (mean ± 95% CI; an interval reaching 0 is cut)")
    return fig


def _pareto_quality_p99(plan: Plan, cells: dict[tuple[str, str], Cell], color: dict[str, Any]) -> Any:
    """Mean quality against p99 latency (the mean over seeds of each episode's p99) per scenario,
    one marker per agent, and the Pareto front."""

    def draw(ax: Any, scenario: ScenarioEntry) -> None:
        points = []
        for i, agent in enumerate(plan.agents):
            cell = cells[(agent.label, scenario.name)]
            if not cell.per_seed:
                continue
            p99, quality = cell.value("latency_p99_ms"), cell.value("mean_quality")
            if math.isfinite(p99) and math.isfinite(quality):
                points.append((p99, quality, agent.label))
                ax.scatter(
                    p99,
                    quality,
                    color=color[agent.label],
                    label=agent.label,
                    marker=MARKERS[i % len(MARKERS)],
                    s=_size(i),
                    edgecolors="white",
                    linewidths=0.5,
                    zorder=3 + i,
                )
        front: list[tuple[float, float]] = []
        for p99, quality, _ in sorted(points):
            if not front or quality > front[-1][1]:
                front.append((p99, quality))
        if len(front) > 1:
            ax.step([p for p, _ in front], [q for _, q in front], where="post", color="black", alpha=0.4)
        ax.set_xscale("log")
        if points:
            low, high = min(p for p, _, _ in points), max(p for p, _, _ in points)
            ax.set_xlim(low / 1.25, high * 1.25)
        plain_log_axis(ax.xaxis)

    return _scenario_panels(
        plan,
        "Quality vs p99 latency (line: Pareto front, up and left is better)",
        "p99 latency, ms (mean of per-episode p99)",
        "mean quality",
        draw,
    )
