"""How much the simulator's latency predictions of the sim-to-real study move when the real
server's timing is a little off the calibrated table: ``docs/results/sim_to_real_sensitivity.md``
and ``.json``.

The sim-to-real study (``benchmarks/sim_to_real.py``, docs/serving.md) compares each (scenario,
agent) cell's simulated latencies with those a real server measured. Its batches run within a
few per cent of the calibrated table (the ``service`` check of its results: ratios of 0.82 to
1.10), and the server is not busy for every millisecond of a batch-to-batch hand-off (measured
utilisation 0.99 where the simulator has 1.00 at 90% load). This script asks what such errors
do to the prediction itself, in simulation only: for every cell of the study's results file
(its calibrated system, scenarios, horizon and agent specs, read from that file), it simulates
the cell again on systems whose

- inference times are all scaled by ``s`` (``--scales``: the server's batches take ``s`` times
  the table's), or
- batches each take ``d`` ms more (``--overheads-ms``, added to the table's per-batch
  communication time: a hand-off the table does not time),

with the agent built for the *calibrated* system (as the server builds it: the scheduler's own
model of the timing is the table, the world is not), on seeds ``--seeds`` (the same arrivals per
seed in every variant). It reports each variant's relative change of the mean and p99 latency,
and the *elasticity* of each, ``(change at s = 1 + e) - (change at s = 1 - e)`` over ``2 e``
for the smallest ``e`` of ``--scales``: the per cent a latency moves per per cent of service
time. Next to it, the cell's measured error from the study's valid runs
(``checks.comparison_valid``) and the range of its runs' service ratios, for reference: a large
elasticity says that the measured error is within what a small timing error explains, not that
it is explained.

Usage::

    python benchmarks/sim_to_real_sensitivity.py     # reads docs/results/sim_to_real.json
    python benchmarks/sim_to_real_sensitivity.py --seeds 0-3 --out /tmp/sensitivity.md
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.registry import make_agent  # noqa: E402
from batchenv.config import ConfigError, SystemConfig  # noqa: E402
from batchenv.fileio import json_safe, write_files_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.seeds import parse_seeds  # noqa: E402
from batchenv.sim import simulate  # noqa: E402
from benchmarks.proposed.common import display_path  # noqa: E402
from benchmarks.sim_to_real_parts.prepare import make_scenarios  # noqa: E402

DEFAULT_RESULTS = REPO / "docs" / "results" / "sim_to_real.json"
DEFAULT_OUT = REPO / "docs" / "results" / "sim_to_real_sensitivity.md"
LATENCIES = ("latency_mean_ms", "latency_p99_ms")


def scaled_timing(config: SystemConfig, scale: float, overhead_ms: float) -> SystemConfig:
    """``config`` with every model's inference times × ``scale`` and ``overhead_ms`` added to
    the per-batch communication time of every batch size."""
    data = config.to_dict()
    data["timing"]["comm_ms"] = [c + overhead_ms for c in data["timing"]["comm_ms"]]
    for model in data["models"]:
        model["inference_ms"] = [t * scale for t in model["inference_ms"]]
    return SystemConfig.from_dict(data)


def variants(scales: list[float], overheads_ms: list[float]) -> list[tuple[str, float, float]]:
    """(label, scale, overhead in ms) of every variant, the calibrated table first."""
    out = [("table", 1.0, 0.0)]
    out += [(f"x{s:g}", s, 0.0) for s in scales]
    out += [(f"+{d:g} ms", 1.0, d) for d in overheads_ms]
    return out


def latency_elasticity(change: dict[str, dict[str, float]], scales: list[float]) -> dict[str, float] | None:
    """Per latency, (change at 1 + e - change at 1 - e) / 2e for the smallest e such that both
    scales are among ``scales`` (``change``: per variant label, per latency, the relative change);
    None when no two scales lie symmetric about 1."""
    pairs = [
        (up, down) for up in scales for down in scales if up > 1.0 and math.isclose(up - 1.0, 1.0 - down)
    ]
    if not pairs:
        return None
    up, down = min(pairs, key=lambda pair: pair[0])
    return {m: (change[f"x{up:g}"][m] - change[f"x{down:g}"][m]) / (up - down) for m in LATENCIES}


def cell_latencies(world: SystemConfig, agent: Any, seeds: list[int]) -> dict[str, float]:
    """Mean over ``seeds`` of each latency of :data:`LATENCIES` (ms) of ``agent`` in ``world``."""
    rows = [compute_metrics(simulate(world, agent, seed)).to_dict() for seed in seeds]
    return {name: float(np.mean([row[name] for row in rows])) for name in LATENCIES}


def measured_reference(cell: dict[str, Any]) -> dict[str, Any]:
    """The study's figures of a cell: the relative error of each latency on its valid runs (NaN
    without one) and the range of its runs' service ratios (all models pooled per run)."""
    checks = cell.get("checks", {})
    comparison = checks.get("comparison_valid")
    errors = {
        name: (comparison["metrics"][name]["error"] if comparison else float("nan")) for name in LATENCIES
    }
    ratios = []
    for run in cell.get("service_check", []):
        measured = sum(m["measured_mean_ms"] * m["batches"] for m in run.values())
        table = sum(m["table_mean_ms"] * m["batches"] for m in run.values())
        if table > 0:
            ratios.append(measured / table)
    return {
        "error": errors,
        "saturated": bool(checks.get("saturated", False)),
        "service_ratio_range": [min(ratios), max(ratios)] if ratios else None,
    }


def run(results: dict[str, Any], seeds: list[int], scales: list[float], overheads_ms: list[float]) -> dict:
    """Every cell of ``results`` (the study's JSON) under every variant."""
    calibrated = SystemConfig.from_dict(results["calibrated_config"])
    settings = results["settings"]
    study = argparse.Namespace(
        loads=settings["loads"], horizon_s=settings["horizon_s"], trace_load=settings["trace_load"]
    )
    scenarios = make_scenarios(calibrated, study)
    chosen = variants(scales, overheads_ms)
    cells = []
    for cell in results["cells"]:
        name, label, spec = cell["scenario"], cell["agent"], cell["spec"]
        if name not in scenarios or cell["server_config"] not in scenarios:
            raise ConfigError(f"{name} / {label}: scenario not rebuilt from the results' settings")
        agent = make_agent(spec, scenarios[cell["server_config"]], tuned=False)
        latencies = {}
        for vlabel, scale, overhead in chosen:
            latencies[vlabel] = cell_latencies(scaled_timing(scenarios[name], scale, overhead), agent, seeds)
        base = latencies["table"]
        change = {
            vlabel: {m: values[m] / base[m] - 1.0 for m in LATENCIES} for vlabel, values in latencies.items()
        }
        elasticity = latency_elasticity(change, scales)
        cells.append(
            {
                "scenario": name,
                "agent": label,
                "spec": spec,
                "latency_ms": latencies,
                "change": change,
                "elasticity": elasticity,
                "measured": measured_reference(cell),
            }
        )
        print(f"{name} / {label}: elasticity {elasticity}", flush=True)
    return {"variants": [v[0] for v in chosen], "cells": cells}


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.1f}%"


def render(data: dict[str, Any]) -> str:
    """The Markdown page of :func:`run`'s output (with the command and settings)."""
    variants_shown = [v for v in data["variants"] if v != "table"]
    lines = [
        "# Sim-to-real: how far a small timing error moves the simulator's latency predictions",
        "",
        f"Produced by `{data['command']}` (simulation only, {data['elapsed_s']:.0f} s), from "
        f"`{data['results']}`: its calibrated system, scenarios, horizon ({data['horizon_s']:g} s) "
        f"and agent specs; seeds {data['seeds_text']} (the same arrivals in every variant). The "
        "agent is built for the calibrated table, the world runs the variant: `xs` scales every "
        "inference time by s, `+d ms` adds d ms to every batch. Figures: relative change of the "
        "mean (and p99) latency against the calibrated table; *elasticity*: per cent of latency "
        "per per cent of service time, from the two scales nearest 1; *measured error*: the study's "
        "error on its valid runs (docs/results/sim_to_real.md); *service ratios*: the range over "
        "the cell's runs of measured / table batch time.",
        "",
        "| scenario | agent | table: mean, p99 (ms) | "
        + " | ".join(f"{v}: mean, p99" for v in variants_shown)
        + " | elasticity: mean, p99 | measured error: mean, p99 | service ratios |",
        "|---|---|---|" + "---|" * len(variants_shown) + "---|---|---|",
    ]
    for cell in data["cells"]:
        base = cell["latency_ms"]["table"]
        changes = [
            f"{_pct(cell['change'][v]['latency_mean_ms'])}, {_pct(cell['change'][v]['latency_p99_ms'])}"
            for v in variants_shown
        ]
        el = cell["elasticity"]
        el_text = f"{el['latency_mean_ms']:.1f}, {el['latency_p99_ms']:.1f}" if el else "n/a"
        meas = cell["measured"]
        err = meas["error"]
        err_text = f"{_pct(err['latency_mean_ms'])}, {_pct(err['latency_p99_ms'])}"
        if meas["saturated"]:
            err_text += " (saturated)"
        ratios = meas["service_ratio_range"]
        ratio_text = f"{ratios[0]:.2f}-{ratios[1]:.2f}" if ratios else "n/a"
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {base['latency_mean_ms']:.1f}, "
            f"{base['latency_p99_ms']:.1f} | "
            + " | ".join(changes)
            + f" | {el_text} | {err_text} | {ratio_text} |"
        )
    return "\n".join(lines) + "\n"


def _float_list(
    parser: argparse.ArgumentParser, flag: str, text: str, low: float, high: float
) -> list[float]:
    """The comma-separated numbers of ``text`` (flag ``flag``), each in [low, high]; else a usage
    error naming the flag and the range."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"{flag}: expected comma-separated numbers, got {text!r}")
    if not values or not all(low <= v <= high for v in values):
        parser.error(f"{flag}: every value must be in [{low:g}, {high:g}], got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results",
        default=str(DEFAULT_RESULTS),
        help=f"the study's JSON (default: {display_path(DEFAULT_RESULTS)})",
    )
    parser.add_argument(
        "--seeds", default="0-9", help="simulation seeds, e.g. 0-9 or 0,3 (default: %(default)s)"
    )
    parser.add_argument(
        "--scales",
        default="0.98,1.02,1.05",
        help="inference-time scales, each in [0.5, 2] (default: %(default)s)",
    )
    parser.add_argument(
        "--overheads-ms",
        default="0.15,0.3",
        help="per-batch overheads (ms), each in [0, 10] (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"Markdown output, its .json next to it (default: {display_path(DEFAULT_OUT)})",
    )
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    scales = _float_list(parser, "--scales", args.scales, 0.5, 2.0)
    overheads = _float_list(parser, "--overheads-ms", args.overheads_ms, 0.0, 10.0)
    results_path = Path(args.results)
    try:
        results = json.loads(results_path.read_text())
        results["calibrated_config"], results["settings"], results["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--results: not a sim_to_real.py results file ({type(exc).__name__}: {exc})")
    start = time.monotonic()
    try:
        data = run(results, seeds, scales, overheads)
    except ConfigError as exc:
        parser.error(f"--results: {exc}")
    data.update(
        command=shlex.join(
            ["python", "benchmarks/sim_to_real_sensitivity.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        results=display_path(results_path),
        horizon_s=results["settings"]["horizon_s"],
        seeds=seeds,
        seeds_text=args.seeds,
        scales=scales,
        overheads_ms=overheads,
        elapsed_s=time.monotonic() - start,
    )
    out = Path(args.out)
    write_files_atomic(
        {out: render(data), out.with_suffix(".json"): json.dumps(json_safe(data), indent=2) + "\n"}
    )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
