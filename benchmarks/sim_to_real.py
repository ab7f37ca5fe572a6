"""Sim-to-real fidelity: does the simulator, run on a timing table measured on this machine,
predict a real batching server's latency, and does each scheduler's rank hold?

Steps:

1. Calibrate (``serving.calibrate``, unless ``--calibration`` names a calibrated YAML): the three
   stand-in models' stage times -> a scenario with the measured timing table.
2. Scenarios: Poisson arrivals at ``--loads`` (fractions of the calibrated capacity, the largest
   sustainable throughput) and the Azure trace scaled to ``--trace-load``, all on the calibrated
   system, ``--horizon-s`` long.
3. Schedulers: greedy, the timeout baseline tuned in simulation on each scenario (grid search on
   the training seeds, as ``python -m apps.tune`` does), proposed, and ``--checkpoint``
   (skipped with its reason if it does not apply to the calibrated system).
4. For each scheduler a real server (``python -m serving.server``, one PyTorch thread) is started
   once per distinct agent, warmed up (model warm-up at start, then a discarded replay of
   ``--warmup-s`` s), and each scenario's seeds are replayed ``--repeats`` times open-loop on
   loopback; the same seeds are simulated with the same scheduler built for the same config.
5. Compare (``serving.fidelity``): mean and p99 latency, throughput, cost, model mix; goal
   |error| <= 10% for the mean and p99; scheduler ranks by cost per request and by mean latency.

Writes ``docs/results/sim_to_real.md``, ``.json`` next to it, the figures in
``docs/results/sim_to_real_figures/`` and the calibration in
``docs/results/sim_to_real_calibrated.yaml`` (+ ``.json``). The default settings take about
20 minutes on the 2-core machine; ``--preliminary`` labels a short run as such.

Usage::

    python benchmarks/sim_to_real.py                     # the full run (quiet machine)
    python benchmarks/sim_to_real.py --preliminary --horizon-s 6 --seeds 0 --repeats 1 \\
        --calibration-reps 5
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.*

from batchenv.seeds import parse_seeds
from batchenv.timing import ServiceTable
from benchmarks.sim_to_real_parts import RESULTS
from benchmarks.sim_to_real_parts.prepare import agent_specs, calibrated_system, make_scenarios
from benchmarks.sim_to_real_parts.report import write_report
from benchmarks.sim_to_real_parts.runs import Cell, measure_group, server_groups, simulate_group
from serving.connections import raise_open_files_limit
from serving.fidelity import compare_cell

DEFAULT_OUT = RESULTS / "sim_to_real.md"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/sim_to_real.py",
        description="Simulated (calibrated timing table) against measured (real server) latency of "
        "greedy, the tuned timeout, proposed and a learned checkpoint (see the module docstring).",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        help="use this calibrated scenario YAML instead of calibrating (default: calibrate first, written "
        "next to --out as <stem>_calibrated.yaml)",
    )
    parser.add_argument(
        "--calibration-reps", type=int, default=20, help="measured calibration rounds (default: 20)"
    )
    parser.add_argument(
        "--calibration-statistic",
        choices=("mean", "median"),
        default="mean",
        help="table entry of a cell (default: mean)",
    )
    parser.add_argument(
        "--loads",
        default="0.3,0.6,0.9",
        help="Poisson loads, fractions of the calibrated capacity (default: 0.3,0.6,0.9)",
    )
    parser.add_argument(
        "--trace-load",
        type=float,
        default=0.6,
        help="load of the Azure trace scenario (0: none) (default: 0.6)",
    )
    parser.add_argument(
        "--seeds", default="0-1", help="evaluation seeds (arrivals), e.g. 0-3 or 0,2 (default: 0-1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="measured runs of each seed (noise estimate) (default: 2)"
    )
    parser.add_argument(
        "--horizon-s", type=float, default=12.0, help="seconds of arrivals per run (default: 12)"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=3.0, help="discarded warm-up replay per server (s) (default: 3)"
    )
    parser.add_argument(
        "--tune-horizon-s",
        type=float,
        default=30.0,
        help="episode length of the timeout tuning (s) (default: 30)",
    )
    parser.add_argument(
        "--checkpoint",
        default="checkpoints/ppo_default.zip",
        help="learned agent compared ('' for none) (default: checkpoints/ppo_default.zip)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Markdown file to write, with its .json and <stem>_figures/ next to it "
        "(default: docs/results/sim_to_real.md)",
    )
    parser.add_argument("--preliminary", action="store_true", help="label the results as preliminary")
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.loads = [float(x) for x in args.loads.split(",") if x.strip()]
        args.seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--loads/--seeds: {exc}")
    if not args.loads or not all(0 < x <= 1.5 for x in args.loads):
        parser.error(f"--loads must be fractions of the capacity in (0, 1.5], got {args.loads}")
    if not 0 <= args.trace_load <= 1.5:
        parser.error(f"--trace-load must be in [0, 1.5], got {args.trace_load}")
    if not 1 <= args.repeats <= 20:
        parser.error(f"--repeats must be in [1, 20], got {args.repeats}")
    if not 1 <= args.horizon_s <= 600:
        parser.error(f"--horizon-s must be in [1, 600] s, got {args.horizon_s}")
    if not 2 <= args.calibration_reps <= 1000:
        parser.error(f"--calibration-reps must be in [2, 1000], got {args.calibration_reps}")
    if not 0.5 <= args.warmup_s <= 60:
        parser.error(f"--warmup-s must be in [0.5, 60] s, got {args.warmup_s}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    command = "python benchmarks/sim_to_real.py" + (" " + shlex.join(argv) if argv else "")
    start = time.monotonic()
    raise_open_files_limit()
    out = Path(args.out)
    figures = out.with_name(out.stem + "_figures")
    work = Path(tempfile.mkdtemp(prefix="sim_to_real-"))  # the servers' configs and logs
    notes: list[str] = []
    calibrated, calibration_path = calibrated_system(args, command, out)
    capacity = ServiceTable(calibrated).max_throughput_per_s(calibrated.n_workers)
    scenarios = make_scenarios(calibrated, args)
    specs = agent_specs(scenarios, args, notes)
    cells = {
        (name, label): Cell(name, label, by_scenario[name])
        for label, by_scenario in specs.items()
        for name in scenarios
    }
    loads: list[float] = []
    exit_codes = {}
    for label, spec, names in server_groups(specs):
        server_config = scenarios[names[0]]
        print(f"{label} = {spec} on {', '.join(names)} (server config {server_config.name})", flush=True)
        simulate_group(cells, scenarios, label, spec, names, server_config, args.seeds)
        exit_codes[f"{label}: {spec}"] = measure_group(
            cells, scenarios, label, spec, names, server_config, args, work, loads
        )
    ordered = [cells[(name, label)] for name in scenarios for label in specs]
    for cell in ordered:
        cell.comparison = compare_cell(cell.simulated, cell.measured)
    elapsed = time.monotonic() - start
    write_report(
        args, command, out, figures, calibrated, calibration_path, capacity, scenarios, specs, ordered,
        loads, exit_codes, notes, elapsed,
    )  # fmt: skip
    print(f"wrote {out}, {out.with_suffix('.json')} and {figures}/ in {elapsed / 60:.1f} min")
    return 0 if all(code == 0 for code in exit_codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
