"""*table* part: the precomputed policy table (model and batch by rate and queue length, one and
two workers; figure), its build time and size."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agents import policy_table, smdp
from agents.policy_table import build_policy_table
from batchenv.scenarios import load_scenario
from benchmarks.proposed.common import save_figure
from execution.backends import Backend


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """The precomputed policy: model and batch by rate and queue length; build time and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    lines = [
        "## The precomputed table",
        "",
        "| scenario | workers | rates | queue lengths per rate | build time (s) "
        "| control limits q* (range) |",
        "|---|---|---|---|---|---|",
    ]
    data = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, scenario in zip(axes, ("default", "multi_gpu"), strict=True):
        config = load_scenario(scenario)
        policy_table.clear_cache()  # time a build from scratch, solves included
        smdp.clear_cache()
        start = time.perf_counter()
        table = build_policy_table(config)
        elapsed = time.perf_counter() - start
        sizes = [len(r.decisions) for r in table.rows]
        thresholds = table.thresholds()
        lines.append(
            f"| {scenario} | {config.n_workers} | {len(table.rows)} ({table.rates_per_s[0]:g}-"
            f"{table.rates_per_s[-1]:.0f}/s) | {min(sizes)}-{max(sizes)} | {elapsed:.1f} "
            f"| {min(thresholds)}-{max(thresholds)} |"
        )
        data[scenario] = {"build_s": elapsed, "rows": len(table.rows), "thresholds": thresholds}
        q_max = 64
        image = np.full((q_max, len(table.rows)), np.nan)
        partial = np.zeros_like(image, dtype=bool)
        for j, row in enumerate(table.rows):
            for q in range(1, q_max + 1):
                d = row.decisions[min(q, len(row.decisions) - 1)]
                if d is None:
                    image[q - 1, j] = -1
                else:
                    image[q - 1, j] = d[0]
                    partial[q - 1, j] = d[1] < min(q, config.max_batch_size)
        rates = np.asarray(table.rates_per_s)
        cmap = ListedColormap(["white", "tab:blue", "tab:orange", "tab:green"][: config.n_models + 1])
        ax.pcolormesh(
            rates,
            np.arange(1, q_max + 1),
            image,
            cmap=cmap,
            vmin=-1.5,
            vmax=config.n_models - 0.5,
            shading="nearest",
        )
        qs, js = np.nonzero(partial)
        ax.scatter(rates[js], qs + 1, s=3, c="k", marker=".", label="partial batch")
        ax.set(
            xscale="log",
            title=f"{scenario} ({config.n_workers} worker{'s' if config.n_workers > 1 else ''})",
            xlabel="total arrival rate (requests/s)",
        )
        ax.set_xlim(10, rates[-1])
    axes[0].set_ylabel("queue length q at a decision epoch")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c, ec="0.5")
        for c in ("white", "tab:blue", "tab:orange", "tab:green")
    ]
    names = ["wait", *load_scenario("default").model_names]
    axes[1].legend(handles, names, loc="upper left")
    lines += save_figure(fig, figures, "policy_table.png", "policy table")
    return lines, data
