"""The learning benchmark's figure: the training evaluations' learning curves across seeds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.fileio import write_atomic
from benchmarks.learning_parts.tables import _seeds


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, experiment in result["experiments"].items():
        curve = experiment.get("curve") or []
        if not curve:
            continue
        steps = np.array([c["timesteps"] for c in curve])
        mean = np.array([c["mean"] for c in curve]) * 100
        half = np.nan_to_num(np.array([c["ci95"] for c in curve]) * 100)
        ax.plot(steps, mean, marker="o", ms=3, label=f"{name} ({_seeds(curve[0]['n'])})")
        ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean gap to the reference (%)")
    ax.set_title("Training evaluations (mean, 95% CI across seeds)")
    ax.set_yscale("symlog", linthresh=5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    write_atomic(path, buffer.getvalue())
