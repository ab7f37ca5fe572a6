"""The report's figures (``generated/fig_*.pdf``, matplotlib with the Agg backend).

Each figure is a pure function of plain data (:func:`figure_data` extracts it from the sources),
so that the data can be hashed: the builder redraws a figure only when its data, this module or
matplotlib's version changed, and the PDF metadata carry no date, so the same data give the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from apps.report.formatting import short
from apps.report.learning import rl_agent_label
from apps.report.names import NON_POISSON, PLAIN_LABELS, POISSON_ONE_WORKER
from apps.report.sources import SuiteScenario

__all__ = ["FIGURES", "draw", "figure_data", "frontier_data", "inputs_hash"]

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "font.family": "serif",
    "pdf.fonttype": 42,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.0,
    "lines.markersize": 3,
}
COLOURS = {
    "greedy": "#999999",
    "static": "#bbbbbb",
    "aimd": "#777777",
    "timeout": "tab:red",
    "util_switch": "tab:orange",
    "optimal": "black",
    "proposed": "tab:blue",
    "proposed(rate_estimation=false)": "tab:cyan",
    "proposed(model_switching=false)": "tab:purple",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "tab:green",
}
COST_MARKERS = {
    "greedy": "v",
    "static": "s",
    "aimd": "^",
    "timeout": "o",
    "util_switch": "D",
    "optimal": "x",
    "proposed": ".",
}
GAP_AGENTS = ["util_switch", "proposed", "proposed(rate_estimation=false)"]
PARETO_SCENARIOS = ["bursty", "diurnal", "azure_trace", "multi_gpu_4"]
PARETO_AGENTS = [
    "timeout",
    "util_switch",
    "proposed",
    "proposed(rate_estimation=false)",
    "proposed(model_switching=false)",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)",
]
SENSITIVITY_FACTORS = ["0.5", "0.8", "0.9", "1.1", "1.25", "2.0"]


FRONTIER_SCENARIOS = ["poisson_50", "bursty", "diurnal", "azure_trace"]
"""The scenarios of the frontier figure, those of them that the frontiers study ran."""
FRONTIER_STYLE = {
    "timeout": {"color": "#aaaaaa", "marker": ".", "ls": "none"},
    "optimal": {"color": "black", "marker": "x", "ls": "--"},
    "proposed": {"color": "tab:blue", "marker": "o", "ls": "-"},
}


def frontier_data(frontiers: dict[str, Any]) -> dict[str, Any]:
    """Per scenario of :data:`FRONTIER_SCENARIOS` (or the study's first four): per family, the
    points (p99 latency in ms, mean quality, on the p99 frontier) sorted by latency."""
    scenarios = frontiers["scenarios"]
    names = [s for s in FRONTIER_SCENARIOS if s in scenarios] or list(scenarios)[:4]
    out: dict[str, Any] = {}
    for name in names:
        families: dict[str, list[list[Any]]] = {}
        for point in scenarios[name]["points"]:
            families.setdefault(point["family"], []).append(
                [point["latency_p99_ms"], point["mean_quality"], bool(point["frontier_latency_p99_ms"])]
            )
        out[name] = {family: sorted(points) for family, points in families.items()}
    return out


def figure_data(
    suite: dict[str, SuiteScenario],
    capacities_per_s: dict[str, float],
    sensitivity: dict[str, dict[str, float]],
    learning: dict[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """File name -> the plain data its figure is drawn from (values as the tables show them)."""
    data: dict[str, dict[str, Any]] = {
        "fig_cost_vs_rate.pdf": {
            "rates_per_s": [float(suite[s].rate) for s in POISSON_ONE_WORKER],
            "cost_per_request": {
                agent: [suite[s].value(agent, "cost_per_request").x for s in POISSON_ONE_WORKER]
                for agent in COST_MARKERS
            },
            "capacities_per_s": capacities_per_s,
        },
        "fig_gaps.pdf": {
            "scenarios": [*NON_POISSON, "default_randomised"],
            "gap_percent": {
                agent: [
                    [v.x, v.ci]
                    for s in [*NON_POISSON, "default_randomised"]
                    for v in [suite[s].value(agent, "gap")]
                ]
                for agent in GAP_AGENTS
            },
        },
        "fig_pareto.pdf": {
            scenario: {
                agent: [
                    suite[scenario].value(agent, "latency_p99_ms").x,
                    suite[scenario].value(agent, "mean_quality").x,
                ]
                for agent in PARETO_AGENTS
            }
            for scenario in PARETO_SCENARIOS
        },
        "fig_sensitivity.pdf": {
            rate: {f: sensitivity[rate][f] for f in SENSITIVITY_FACTORS} for rate in sensitivity
        },
    }
    if learning is not None:
        data["fig_learning.pdf"] = {
            name: [
                [c["timesteps"], 100 * c["mean"], 100 * c["ci95"] if c.get("n", 1) > 1 else 0.0]
                for c in e["curve"]
            ]
            for name, e in learning["experiments"].items()
            if e.get("curve")
        }
    return data


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, format="pdf", bbox_inches="tight", metadata={"CreationDate": None, "Creator": None})
    plt.close(fig)


def cost_vs_rate(data: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(3.4, 2.2))
    rates = data["rates_per_s"]
    for agent, marker in COST_MARKERS.items():
        ax.plot(
            rates,
            data["cost_per_request"][agent],
            marker=marker,
            color=COLOURS[agent],
            label=PLAIN_LABELS[agent],
            ls="--" if agent == "optimal" else "-",
            zorder=3 if agent in ("optimal", "proposed") else 2,
        )
    for model, cap in data["capacities_per_s"].items():
        ax.axvline(cap, color="k", ls=":", lw=0.6)
        ax.text(cap, 0.0115, f" {model}\n max", fontsize=6, va="bottom")
    ax.set_yscale("log")
    ax.set_ylim(0.01, 8)
    ax.set_xlabel("Poisson arrival rate $\\lambda$ (requests/s), one worker")
    ax.set_ylabel("cost per request")
    ax.legend(ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, columnspacing=1.0)
    _save(fig, path)


def gaps(data: dict[str, Any], path: Path) -> None:
    scenarios = data["scenarios"]
    fig, ax = plt.subplots(figsize=(3.4, 2.3))
    width = 0.27
    for k, (agent, values) in enumerate(data["gap_percent"].items()):
        xs = [i + (k - 1) * width for i in range(len(scenarios))]
        ax.bar(
            xs,
            [x for x, _ in values],
            width,
            yerr=[ci for _, ci in values],
            color=COLOURS[agent],
            label=PLAIN_LABELS[agent],
            error_kw={"elinewidth": 0.6, "capsize": 1.2},
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([short(s) for s in scenarios], rotation=35, ha="right")
    ax.set_ylabel("cost gap to the reference (%)")
    ax.set_ylim(-25, 25)
    # above the axes, so that no bar is hidden
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, columnspacing=0.8)
    _save(fig, path)


def pareto(data: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(1, len(data), figsize=(7.0, 1.55))
    for ax, (scenario, points) in zip(axes, data.items(), strict=True):
        for agent, (p99, quality) in points.items():
            ax.scatter([p99], [quality], color=COLOURS[agent], s=14, label=PLAIN_LABELS[agent], zorder=3)
        ax.set_title(scenario)
        ax.set_xlabel("p99 latency (ms)")
    axes[0].set_ylabel("mean quality")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=6, bbox_to_anchor=(0.5, 1.12), frameon=False)
    fig.tight_layout()
    _save(fig, path)


def frontiers(data: dict[str, Any], path: Path) -> None:
    """Quality against p99 latency per family on up to four scenarios; filled markers: points on
    the frontier (no other point of any family has lower p99 and higher quality)."""
    fig, axes = plt.subplots(1, len(data), figsize=(7.0, 1.9), squeeze=False)
    for ax, (scenario, families) in zip(axes[0], data.items(), strict=True):
        for k, (family, points) in enumerate(families.items()):
            style = FRONTIER_STYLE.get(family, {"color": f"C{3 + k}", "marker": "D", "ls": "none"})
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            ax.plot(xs, ys, color=style["color"], ls=style["ls"], lw=0.8, marker=None, label=None)
            ax.scatter(
                xs,
                ys,
                s=[14 if on else 6 for *_, on in points],
                marker=style["marker"],
                color=style["color"],
                label=family.replace("_default", " (shipped)"),
                zorder=3,
            )
        ax.set_title(scenario)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels
        ax.set_xlabel("p99 latency (ms)")
    axes[0][0].set_ylabel("mean quality")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.1), frameon=False
    )
    fig.tight_layout()
    _save(fig, path)


def sensitivity(data: dict[str, Any], path: Path) -> None:
    rates = sorted(data, key=float)
    fig, ax = plt.subplots(figsize=(3.4, 1.65))
    for f in SENSITIVITY_FACTORS:
        ax.plot(
            [float(r) for r in rates],
            [max(100 * data[r][f], 1e-3) for r in rates],
            marker="o",
            label=f"$f = {float(f):g}$",
        )
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 50)
    ax.set_xlabel("true Poisson rate $r$ (requests/s)")
    ax.set_ylabel("extra cost (%)")
    ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, columnspacing=0.8)
    _save(fig, path)


def learning(data: dict[str, Any], path: Path) -> None:
    """Per experiment: the training evaluation's mean gap to its reference (%) across training
    seeds against timesteps, with its 95% interval as a band."""
    fig, ax = plt.subplots(figsize=(3.4, 2.0))
    for k, (name, curve) in enumerate(sorted(data.items())):
        xs = [c[0] for c in curve]
        ys = [c[1] for c in curve]
        ax.plot(xs, ys, marker="o", ms=2, color=f"C{k}", label=rl_agent_label(name))
        ax.fill_between(
            xs,
            [y - c[2] for y, c in zip(ys, curve, strict=True)],
            [y + c[2] for y, c in zip(ys, curve, strict=True)],
            color=f"C{k}",
            alpha=0.2,
            lw=0,
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("gap to the reference (%)")
    ax.legend(ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, columnspacing=0.8)
    _save(fig, path)


FIGURES: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "fig_cost_vs_rate.pdf": cost_vs_rate,
    "fig_gaps.pdf": gaps,
    "fig_pareto.pdf": pareto,
    "fig_sensitivity.pdf": sensitivity,
    "fig_learning.pdf": learning,
    "fig_frontiers.pdf": frontiers,
}


def inputs_hash(name: str, data: dict[str, Any]) -> str:
    """SHA-256 of what figure ``name`` is drawn from: its data, this module's code and
    matplotlib's version."""
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    text = json.dumps(
        {"figure": name, "data": data, "code": code, "matplotlib": matplotlib.__version__}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def draw(name: str, data: dict[str, Any], path: Path) -> None:
    """Draw figure ``name`` from ``data`` into ``path`` (PDF)."""
    with plt.rc_context(STYLE):
        FIGURES[name](data, path)
