"""The sim-to-real report's figures: measured against simulated mean and p99 latency, and the
latency CDFs per scenario."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.fileio import write_atomic
from benchmarks.sim_to_real_parts.runs import Cell
from serving.fidelity import GOAL


def plot_figures(cells: list[Cell], scenarios: list[str], figures: Path) -> list[str]:
    """Measured against simulated mean and p99 latency; latency CDFs per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(dict.fromkeys(c.agent for c in cells))
    colors = {a: plt.get_cmap("tab10")(i) for i, a in enumerate(agents)}
    markers = dict(zip(scenarios, "osD^vP*X", strict=False))
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, metric, title in (
        (axes[0], "latency_mean_ms", "mean latency (ms)"),
        (axes[1], "latency_p99_ms", "p99 latency (ms)"),
    ):
        values = []
        for cell in cells:
            m = cell.comparison["metrics"][metric]
            ax.scatter(
                m["simulated"], m["measured"], color=colors[cell.agent], marker=markers[cell.scenario], s=40
            )
            values += [m["simulated"], m["measured"]]
        finite = [v for v in values if math.isfinite(v) and v > 0]
        low, high = min(finite) / 1.5, max(finite) * 1.5
        grid = np.geomspace(low, high, 50)
        ax.plot(grid, grid, color="black", lw=1)
        ax.fill_between(grid, grid * (1 - GOAL), grid * (1 + GOAL), color="grey", alpha=0.25, label="±10%")
        ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), title=title)
        ax.set_xlabel("simulated (calibrated table)")
        ax.set_ylabel("measured on the server")
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[a], marker="o", ls="", label=a) for a in agents]
    handles += [plt.Line2D([], [], color="grey", marker=markers[s], ls="", label=s) for s in scenarios]
    axes[1].legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    names.append(_save(fig, figures / "sim_vs_real_latency.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.8), squeeze=False)
    for ax, name in zip(axes[0], scenarios, strict=True):
        for cell in (c for c in cells if c.scenario == name):
            for data, style in ((cell.sim_latency_ms, "--"), (cell.real_latency_ms, "-")):
                pooled = np.sort(np.concatenate(data)) if data else np.zeros(0)
                if pooled.size:
                    ax.plot(
                        pooled, np.arange(1, pooled.size + 1) / pooled.size, style, color=colors[cell.agent]
                    )
        ax.set(xscale="log", title=name, xlabel="latency (ms)", ylabel="fraction of requests")
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[a], label=a) for a in agents]
    handles += [
        plt.Line2D([], [], color="black", ls="--", label="simulated"),
        plt.Line2D([], [], color="black", label="measured"),
    ]
    axes[0][0].legend(handles=handles, fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, figures / "latency_cdf.png"))
    plt.close(fig)
    return names


def _save(fig: Any, path: Path) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_atomic(path, buffer.getvalue())
    return path.name
