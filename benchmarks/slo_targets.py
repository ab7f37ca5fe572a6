"""Latency targets on the scenario suite and the real traces: the SLO-targeted scheduler
(``agents/slo_target.py``) against timeout and util_switch tuned to meet the same target.

    nice -n 10 python benchmarks/slo_targets.py --jobs 2          # about 40 minutes on 2 cores

For every scenario of the suite (tuned on the training seeds of the scenario itself; the suite's
full-trace scenarios are replaced by their halves) and every trace scenario (tuned on its
``_train`` half, evaluated on its ``_test`` half), and every target (default ``p99<=50ms``,
``p99<=100ms`` and ``99%`` of the requests within ``slo_ms``): the tuned baselines, the
SLO-targeted proposed scheduler and optimum, and the cost-optimal proposed scheduler on the
evaluation seeds; whether each meets the target, with its quality, throughput and latency;
which targets no evaluated policy meets (:mod:`benchmarks.objectives.slo`).

Writes ``docs/results/slo_targets.md`` and ``.json`` next to it, and prints where.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.config import ConfigError, LatencyTarget  # noqa: E402
from batchenv.scenarios import (  # noqa: E402
    SUITE,
    eval_split_of,
    scenario_config,
    trace_scenarios,
    train_split_of,
)
from batchenv.seeds import TRAINING_SEEDS  # noqa: E402
from benchmarks.objectives.common import (  # noqa: E402
    add_study_arguments,
    check_study_arguments,
    scope_cuts,
    scope_note,
    write_results,
)
from benchmarks.objectives.slo import AGENTS, DEFAULT_TARGETS, LABELS, MARGIN, run_study  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "slo_targets.md"
PROG = "python benchmarks/slo_targets.py"


def default_rows() -> list[tuple[str, str, str]]:
    """(label, tuning scenario, evaluation scenario): the suite without its full-trace scenarios,
    then every trace scenario's halves."""
    traces = trace_scenarios()
    rows = [(name, name, name) for name in SUITE if name not in traces]
    rows += [(f"{name} (test half)", train_split_of(name), eval_split_of(name)) for name in traces]
    return rows


def target_text(target: LatencyTarget) -> str:
    """``p99 <= 100 ms``, or ``99% within slo_ms`` for an attainment of each scenario's slo_ms."""
    if target.bound_ms is None:
        return f"{100 * target.quantile:g}% within slo_ms"
    return target.describe(target.bound_ms)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="comma-separated latency targets (p99<=100ms, 95%%<=250ms, 95%%)",
    )
    parser.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated labels of the default rows to keep (default: all; e.g. bursty,default)",
    )
    add_study_arguments(parser, DEFAULT_OUT, n_seeds=10)
    return parser


def _cell(agent: dict[str, Any]) -> tuple[str, str]:
    """(met and attainment, quality) of one agent's summary as the tables show them."""
    if "not_applicable" in agent:
        return "n/a", ""
    met = "yes" if agent["met"] else "**no**"
    return f"{met} {agent['attainment'][0]:.4f}", f"{agent['mean_quality'][0]:.4f}"


def to_markdown(data: dict[str, Any]) -> str:
    settings = data["settings"]
    lines = [
        "# Latency targets: the SLO-targeted scheduler against baselines tuned to meet them",
        "",
        "Produced by:",
        "",
        f"```\n{data['command']}\n```",
        "",
        data["shortened"],
        f"Evaluation seeds {settings['seeds'][0]}-{settings['seeds'][-1]}, horizon "
        f"{settings['horizons_s']} s (training and evaluation), common random numbers. A target is "
        "**met** when the mean over "
        "the seeds of the attainment (served within the bound / (served + dropped)) is at least its "
        "fraction (p99 <= 100 ms: at least 99% within 100 ms); the tables give it with the mean "
        "quality of the served requests. timeout and util_switch are tuned to meet the target on "
        f"the training seeds {settings['training_seeds']} (the best mean quality among the "
        f"candidates whose attainment there is at least 1 - (1 - {settings['margin']:g})(1 - p), the "
        "reserve the SLO-targeted scheduler keeps too), on the scenario itself for the suite and on "
        "the `_train` half for a trace (evaluated on its `_test` half). SLO-targeted proposed / "
        "optimum: `slo_target` and `slo_target(inner=optimal)` (agents/slo_target.py: the smallest "
        "latency weight, per rate, that meets the target on Poisson arrivals, corrected online from "
        "the measured tail); proposed (w = 1): the cost-optimal scheduler, which states no target. "
        "A target is *feasible* when at least one evaluated agent meets it.",
        "",
        "## Summary",
        "",
    ]
    lines += [f"- {line}" for line in data["summary"]["lines"]]
    lines.append("")
    headers = ["scenario"]
    for agent in AGENTS:
        headers += [f"{LABELS[agent]}: met, attainment", "quality"]
    for t, target in enumerate(settings["targets"]):
        lines += [f"## {target}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for row in data["rows"]:
            entry = row["targets"][t]
            cells = [row["label"] + ("" if entry["feasible"] else " (infeasible)")]
            for agent in AGENTS:
                cells += list(_cell(entry["agents"][agent]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Latency and throughput of the SLO-targeted scheduler",
        "",
        "| scenario | target | latency at the percentile (ms) | mean ms | p99 ms | thr/s "
        "| mean latency scale |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        for entry in row["targets"]:
            a = entry["agents"]["slo_target"]
            if "not_applicable" in a:
                continue
            lines.append(
                f"| {row['label']} | {entry['target']} | {a['target_latency_ms'][0]:.1f} | "
                f"{a['latency_mean_ms'][0]:.1f} | {a['latency_p99_ms'][0]:.1f} | "
                f"{a['throughput_per_s'][0]:.1f} | {a['mean_scale']:.2f} |"
            )
    lines.append("")
    return "\n".join(lines)


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Counts and the sentences of the summary, from the rows."""
    pairs = [(row, entry) for row in data["rows"] for entry in row["targets"]]
    feasible = [(r, e) for r, e in pairs if e["feasible"]]
    met = [(r, e) for r, e in feasible if e["agents"]["slo_target"].get("met")]
    missed = [(r, e) for r, e in feasible if not e["agents"]["slo_target"].get("met")]
    infeasible = [(r, e) for r, e in pairs if not e["feasible"]]
    better = worse = 0
    differences = []
    for _, e in met:
        rivals = [
            e["agents"][k]["mean_quality"][0] for k in ("timeout", "util_switch") if e["agents"][k].get("met")
        ]
        if rivals:
            diff = e["agents"]["slo_target"]["mean_quality"][0] - max(rivals)
            differences.append(diff)
            better += diff > 0
            worse += diff < 0
    lines = [
        f"{len(pairs)} (scenario, target) pairs, {len(feasible)} feasible (met by at least one "
        f"evaluated agent); the SLO-targeted proposed scheduler meets {len(met)} of them.",
    ]
    if missed:
        lines.append(
            "It misses: "
            + "; ".join(
                f"{r['label']} {e['target']} (attainment {e['agents']['slo_target']['attainment'][0]:.4f}, "
                f"met by {', '.join(k for k, v in e['agents'].items() if v.get('met'))})"
                for r, e in missed
            )
            + "."
        )
    if differences:
        lines.append(
            f"Where it and a tuned baseline both meet the target ({len(differences)} pairs), its mean "
            f"quality is higher in {better}, lower in {worse}; the difference to the best tuned "
            f"baseline that meets it ranges from {min(differences):+.4f} to {max(differences):+.4f} "
            f"(median {sorted(differences)[len(differences) // 2]:+.4f})."
        )
    for r, e in infeasible:
        best = e["best_attainment"]
        grid = e["grid_best_training"]
        lines.append(
            f"Infeasible for every policy evaluated: {r['label']} {e['target']} (best attainment "
            f"{best['attainment']:.4f}, {best['agent']}; the most latency-averse of the "
            f"{grid['candidates']} timeout candidates on the training seeds reaches "
            f"{grid['attainment']:.4f})."
        )
    return {
        "pairs": len(pairs),
        "feasible": len(feasible),
        "met_by_slo_target": len(met),
        "missed_by_slo_target": [f"{r['label']} {e['target']}" for r, e in missed],
        "infeasible": [f"{r['label']} {e['target']}" for r, e in infeasible],
        "quality_vs_best_tuned": differences,
        "lines": lines,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        targets = [LatencyTarget.parse(t.strip(), "--targets") for t in args.targets.split(",") if t.strip()]
    except ConfigError as exc:
        parser.error(str(exc))
    if not targets:
        parser.error("--targets: no target given")
    study = check_study_arguments(parser, args)
    rows = default_rows()
    shortened = []
    if args.scenarios:
        known = [r[0].split(" ")[0] for r in rows]
        keep = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [k for k in keep if k not in known]
        if unknown:
            parser.error(f"--scenarios: unknown {unknown[0]!r}; known: {known}")
        rows = [r for r in rows if r[0].split(" ")[0] in keep]
        shortened.append(f"{len(rows)} of the {len(known)} scenarios")
    shortened += scope_cuts(args, 10)
    start = time.perf_counter()
    with study.backend.create() as backend:
        data = run_study(rows, targets, study.seeds, backend, study.horizon_s)
    horizons = sorted({scenario_config(r[2], study.horizon_s).horizon_s for r in rows})
    data["command"] = f"{PROG} {shlex.join(argv)}".strip()
    data["shortened"] = scope_note(PROG, argv, shortened)
    data["settings"] = {
        "seeds": study.seeds,
        "training_seeds": f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}",
        "horizons_s": "/".join(f"{h:g}" for h in horizons),
        "targets": [target_text(t) for t in targets],
        "margin": MARGIN,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    data["summary"] = summarise(data)
    for line in data["summary"]["lines"]:
        print(line)
    write_results(args.out, to_markdown(data), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
