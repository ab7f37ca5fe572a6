"""Quality against mean and p99 latency, per agent family, on the scenario suite: the frontier
each family reaches instead of its one point at the latency weight 1.

    nice -n 10 python benchmarks/frontiers.py --jobs 2          # about 40 minutes on 2 cores

Families (:mod:`benchmarks.objectives.frontier`): the timeout baseline over its whole tuning grid,
the optimum (one worker, Poisson) and the proposed scheduler over a sweep of the latency weight
(0.1 to 10 per second, log-spaced), and the learned agents (``checkpoints/*.zip``) at the weight
they were trained for. Evaluation seeds 0..N-1 (default 5), each scenario's horizon.

Writes ``docs/results/frontiers.md``, ``.json`` next to it and one figure per scenario in
``docs/results/frontiers_figures/``, and prints where.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.objectives.common import (  # noqa: E402
    add_checkpoints_argument,
    add_study_arguments,
    check_study_arguments,
    checkpoint_paths,
    display_path,
    scenario_names,
    scope_cuts,
    scope_note,
    write_results,
)
from benchmarks.objectives.frontier import DEFAULT_WEIGHTS, LATENCIES, run_study  # noqa: E402
from evaluation.plots import save_png  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "frontiers.md"
PROG = "python benchmarks/frontiers.py"
FAMILY_STYLE = {  # colour, marker, line style
    "timeout": ("#999999", ".", ""),
    "optimal": ("black", "x", "--"),
    "proposed": ("tab:blue", "o", "-"),
}
RL_STYLES = (("tab:green", "*", ""), ("tab:purple", "P", ""), ("tab:orange", "X", ""), ("tab:brown", "D", ""))
"""Styles of the learned agents, in the order they appear."""
LATENCY_LABEL = {"latency_mean_ms": "mean latency (ms)", "latency_p99_ms": "p99 latency (ms)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", default="suite", help="comma-separated scenario names; 'suite' = the scenario suite"
    )
    add_checkpoints_argument(parser)
    parser.add_argument(
        "--weights",
        default=",".join(str(w) for w in DEFAULT_WEIGHTS),
        help="comma-separated latency weights (per second) of the optimum's and the proposed "
        "scheduler's sweeps (default: 0.1 to 10, four per decade)",
    )
    add_study_arguments(parser, DEFAULT_OUT, n_seeds=5)
    return parser


def draw(name: str, entry: dict[str, Any], path: Path) -> None:
    """One scenario: quality against mean latency (left) and p99 latency (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = entry["points"]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
    for ax, latency in zip(axes, LATENCIES, strict=True):
        front = sorted((p for p in points if p[f"frontier_{latency}"]), key=lambda p: p[latency])
        ax.step(
            [p[latency] for p in front],
            [p["mean_quality"] for p in front],
            where="post",
            color="tab:red",
            lw=0.8,
            alpha=0.6,
            label="frontier (all families)",
        )
        learned = [f for f in dict.fromkeys(p["family"] for p in points) if f not in FAMILY_STYLE]
        for family in dict.fromkeys(p["family"] for p in points):
            own = [p for p in points if p["family"] == family]
            if family in FAMILY_STYLE:
                colour, marker, line = FAMILY_STYLE[family]
            else:
                colour, marker, line = RL_STYLES[learned.index(family) % len(RL_STYLES)]
            if family in ("optimal", "proposed"):
                own = sorted(own, key=lambda p: p["param"])
            ax.plot(
                [p[latency] for p in own],
                [p["mean_quality"] for p in own],
                marker=marker,
                ls=line or "none",
                color=colour,
                ms=3 if family == "timeout" else 5,
                label=family if family in FAMILY_STYLE else f"{family} ({own[0]['label']})",
                zorder=2 if family == "timeout" else 3,
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(LATENCY_LABEL[latency])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean quality")
    axes[0].set_title(name, loc="left")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.02)
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_png(fig, path)
    plt.close(fig)


def _on_frontier(family: dict[str, Any], latency: str) -> str:
    labels = family[latency]
    if not labels:
        return "none"
    return ", ".join(labels) if len(labels) <= 6 else f"{len(labels)} of {family['points']}"


def to_markdown(data: dict[str, Any], figure_dir: str) -> str:
    settings = data["settings"]
    lines = [
        "# Quality against latency: the frontier of each agent family",
        "",
        "Produced by:",
        "",
        f"```\n{data['command']}\n```",
        "",
        data["shortened"],
        f"Evaluation seeds {settings['seeds'][0]}-{settings['seeds'][-1]}, "
        + (
            "each scenario's horizon"
            if settings["horizon_s"] is None
            else f"horizon {settings['horizon_s']:g} s"
        )
        + ", "
        "common random numbers. Each point is an agent's mean over the seeds of the mean quality of the "
        "served requests and of the episode's mean or p99 latency. Families: the timeout baseline over "
        f"its whole tuning grid ({settings['timeout_candidates']} candidates), the optimum (one "
        "worker, Poisson) and the proposed scheduler solved for each latency weight w in "
        f"{', '.join(f'{w:.3g}' for w in settings['weights'])} per second (the score's exchange rate "
        "between latency and quality; the rest of the project uses w = 1), and the learned agents at "
        "the weight they were trained for. A point is on the frontier when no point of any family has "
        "at most its latency and at least its quality (one strictly): means over the seeds, so points "
        "within each other's noise can trade places.",
        "",
        "## On the frontier",
        "",
        "Per scenario and family, the points on the frontier of quality against mean latency and "
        "against p99 latency (w: latency weights of the sweeps; timeout: grid candidates).",
        "",
        "| scenario | family | on the mean-latency frontier | on the p99 frontier |",
        "|---|---|---|---|",
    ]
    for name, entry in data["scenarios"].items():
        for family, info in entry["families"].items():
            lines.append(
                f"| {name} | {family} | {_on_frontier(info, 'latency_mean_ms')} | "
                f"{_on_frontier(info, 'latency_p99_ms')} |"
            )
    lines += ["", "## Sweeps", ""]
    lines += [
        "The optimum's and the proposed scheduler's points (mean quality; mean and p99 latency, ms). "
        "`*` marks a point on the frontier of that latency.",
        "",
    ]
    for name, entry in data["scenarios"].items():
        lines += [
            f"### {name}",
            "",
            "| family | point | quality | mean ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        for p in entry["points"]:
            if p["family"] == "timeout" and not (
                p["frontier_latency_mean_ms"] or p["frontier_latency_p99_ms"]
            ):
                continue
            mean = f"{p['latency_mean_ms']:.1f}" + ("*" if p["frontier_latency_mean_ms"] else "")
            p99 = f"{p['latency_p99_ms']:.1f}" + ("*" if p["frontier_latency_p99_ms"] else "")
            lines.append(f"| {p['family']} | {p['label']} | {p['mean_quality']:.4f} | {mean} | {p99} |")
        lines += ["", f"![{name}]({figure_dir}/{name}.png)", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    names = scenario_names(parser, args.scenarios)
    checkpoints = checkpoint_paths(parser, args.checkpoints)
    try:
        weights = sorted({float(w) for w in args.weights.split(",") if w.strip()})
    except ValueError:
        parser.error(f"--weights: comma-separated numbers > 0 (per second), got {args.weights!r}")
    if not weights or not all(math.isfinite(w) and 0 < w <= 1000 for w in weights):
        parser.error(f"--weights: comma-separated numbers in (0, 1000] (per second), got {args.weights!r}")
    study = check_study_arguments(parser, args)
    shortened = (
        [] if args.scenarios == "suite" else [f"the scenarios {', '.join(names)} instead of the suite"]
    )
    shortened += scope_cuts(args, 5)
    if len(weights) < len(DEFAULT_WEIGHTS):
        shortened.append(f"{len(weights)} latency weights instead of {len(DEFAULT_WEIGHTS)}")
    start = time.perf_counter()
    with study.backend.create() as backend:
        data = run_study(names, study.seeds, weights, checkpoints, backend, study.horizon_s)
    first = next(iter(data["scenarios"].values()))
    data["command"] = f"{PROG} {shlex.join(argv)}".strip()
    data["shortened"] = scope_note(PROG, argv, shortened)
    data["settings"] = {
        "seeds": study.seeds,
        "horizon_s": study.horizon_s,
        "weights": weights,
        "timeout_candidates": first["families"]["timeout"]["points"],
        "checkpoints": [display_path(c) for c in checkpoints],
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    data["trained_weights"] = {display_path(Path(k)): v for k, v in data["trained_weights"].items()}
    figures = args.out.parent / f"{args.out.stem}_figures"
    figures.mkdir(exist_ok=True)
    for name, entry in data["scenarios"].items():
        draw(name, entry, figures / f"{name}.png")
    write_results(args.out, to_markdown(data, figures.name), data)
    print(f"figures in {display_path(figures)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
