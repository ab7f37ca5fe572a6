"""Sim-to-real fidelity: does the simulator, run on a timing table measured on this machine,
predict a real batching server's latency, and does each scheduler's rank hold?

Steps:

1. Calibrate (``serving.calibrate``, unless ``--calibration`` names a calibrated YAML): the three
   stand-in models' stage times -> a scenario with the measured timing table. Refused on a busy
   machine (other jobs' load above half the CPUs, before or during it; a ``--calibration`` whose
   record says so likewise) unless ``--allow-busy-calibration``, and then flagged in the report.
2. Scenarios: Poisson arrivals at ``--loads`` (fractions of the calibrated capacity, the largest
   sustainable throughput) and the Azure trace scaled to ``--trace-load``, all on the calibrated
   system, ``--horizon-s`` long.
3. Schedulers: greedy, the timeout baseline tuned in simulation on each scenario (grid search on
   the training seeds, as ``python -m apps.tune`` does), proposed, and ``--checkpoint``
   (skipped with its reason if it does not apply to the calibrated system).
4. For each scheduler a real server (``python -m serving.server``, one PyTorch thread) is started
   once per distinct agent spec, configured with the first scenario it serves (so proposed's
   nominal rate is that scenario's everywhere; ``optimal``, which needs each scenario's true rate,
   is refused), warmed up (model warm-up at start, then a discarded replay of ``--warmup-s`` s),
   and each scenario's seeds are replayed ``--repeats`` times open-loop on loopback by a load
   generator in a process of its own; the same seeds are simulated with the same scheduler built
   for the same config, and each run again on the arrival times the server recorded.
5. Compare (``serving.fidelity``, ``sim_to_real_parts.checks``): mean and p99 latency,
   throughput, cost, model mix; goal |error| <= 10% for the mean and p99, counted on the valid
   runs (the load generator's send-lag p99 at most ``--max-send-lag-ms``), unsaturated and
   saturated cells apart; scheduler ranks by cost per request and by mean latency.

Writes ``docs/results/sim_to_real.md``, ``.json`` next to it, the figures in
``docs/results/sim_to_real_figures/`` and the calibration in
``docs/results/sim_to_real_calibrated.yaml`` (+ ``.json``). The default settings take about
20 minutes on the 2-core machine. Exit code 0; 1 if a server exited with an error or a run had
scheduler errors, failed, refused or unanswered requests; 2 for a bad command line; 143/130 when
stopped by SIGTERM/SIGINT (servers and load generators are stopped, the work folder removed).
``--preliminary`` labels a short run as such and is refused in ``docs/results/`` (it would
replace the committed results) unless ``--allow-docs-results``.

Usage::

    python benchmarks/sim_to_real.py                     # the full run (quiet machine)
    python benchmarks/sim_to_real.py --preliminary --horizon-s 6 --seeds 0 --repeats 1 \\
        --calibration-reps 5 --out /tmp/sim_to_real_preliminary/sim_to_real.md
    python benchmarks/sim_to_real.py --render-only       # docs/results/sim_to_real.md (and the .json's
                                                         # checks) again from its measurements
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.*

from batchenv.seeds import parse_seeds
from batchenv.timing import ServiceTable
from benchmarks.sim_to_real_parts import RESULTS
from benchmarks.sim_to_real_parts.checks import MAX_SEND_LAG_P99_MS, calibration_load, failures
from benchmarks.sim_to_real_parts.lifecycle import guarded
from benchmarks.sim_to_real_parts.prepare import (
    SetupError,
    agent_specs,
    calibrated_system,
    check_checkpoint,
    load_calibration,
    make_scenarios,
)
from benchmarks.sim_to_real_parts.report import build_data, render_only, write_report
from benchmarks.sim_to_real_parts.runs import Cell, measure_group, server_groups, simulate_group
from serving.cli import UsageError, check_writable
from serving.fidelity import compare_cell
from serving.process import ServerStartError
from serving.replay_process import ReplayError

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
    parser.add_argument(
        "--max-send-lag-ms",
        type=float,
        default=MAX_SEND_LAG_P99_MS,
        help="validity gate: a run whose load generator sent its requests' 99th percentile later than "
        f"this (ms) is invalid, left out of the agreement (default: {MAX_SEND_LAG_P99_MS:g})",
    )
    parser.add_argument(
        "--allow-busy-calibration",
        action="store_true",
        help="calibrate (or use a calibration taken) on a busy machine, other jobs' load above half "
        "the CPUs; refused otherwise, flagged in the report",
    )
    parser.add_argument("--preliminary", action="store_true", help="label the results as preliminary")
    parser.add_argument(
        "--allow-docs-results",
        action="store_true",
        help="let a --preliminary run write into docs/results/ (refused otherwise: it would replace the "
        "committed results)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: render --out again from the .json next to it with the current checks, and "
        "write again what the .json derives from its measurements (comparisons, checks, ranks); the "
        "measurements and the figures are left as they are",
    )
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
    if not 0 < args.max_send_lag_ms <= 10_000:
        parser.error(f"--max-send-lag-ms must be in (0, 10000] ms, got {args.max_send_lag_ms}")
    if args.out.suffix != ".md":
        parser.error(f"--out must be a Markdown file (.md), got {str(args.out)!r}")
    try:
        _check_files(args)
    except (SetupError, UsageError) as exc:
        parser.error(str(exc))
    return args


def _check_files(args: argparse.Namespace) -> None:
    """The files of the command line, before any long work: --out (and what goes next to it)
    writable, a --preliminary run kept out of docs/results/, --calibration and --checkpoint.

    :raises SetupError: (or UsageError) one line naming the flag.
    """
    out = args.out
    if args.render_only:
        if not out.with_suffix(".json").is_file():
            raise SetupError(f"--render-only: no results file {str(out.with_suffix('.json'))!r} to render")
        check_writable("--out", out)
        check_writable("--out", out.with_suffix(".json"))  # its derived fields are written again
        return
    if args.preliminary and not args.allow_docs_results and out.resolve().parent == RESULTS.resolve():
        raise SetupError(
            f"--preliminary: {str(out)!r} is in docs/results/, where it would replace the committed "
            "results; write it elsewhere (--out /tmp/s2r/sim_to_real.md) or pass --allow-docs-results"
        )
    targets = [out, out.with_suffix(".json"), out.with_name(out.stem + "_figures") / "figure.png"]
    if args.calibration is None:
        calibration = out.with_name(f"{out.stem}_calibrated.yaml")
        targets += [calibration, calibration.with_suffix(".json")]
    for path in targets:
        check_writable("--out", path)
    if args.calibration is not None:
        _, record = load_calibration(args.calibration)
        load = calibration_load(record)
        if load["busy"] and not args.allow_busy_calibration:
            raise SetupError(
                f"--calibration: its record says it was taken on a busy machine (other jobs' load "
                f"{load['background_load']:.2f} on {load['cpus']} CPUs, above {load['limit']:g}); "
                "calibrate again on a quiet machine or pass --allow-busy-calibration"
            )
    if args.checkpoint:
        check_checkpoint(args.checkpoint)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    command = "python benchmarks/sim_to_real.py" + (" " + shlex.join(argv) if argv else "")
    if args.render_only:
        try:
            assessment = render_only(args.out, args.max_send_lag_ms, command)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(
                f"python benchmarks/sim_to_real.py: error: --render-only: {args.out.with_suffix('.json')} "
                f"is not a results file of this benchmark ({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
            return 2
        summary = assessment["summary"]
        print(
            f"wrote {args.out} from {args.out.with_suffix('.json')}: {summary['valid_runs']} of "
            f"{summary['runs']} runs valid"
        )
        return 0
    try:
        return guarded(lambda work: _run(args, command, work))
    except SetupError as exc:
        print(f"python benchmarks/sim_to_real.py: error: {exc}", file=sys.stderr)
        return 2
    except (ReplayError, ServerStartError) as exc:  # servers stopped, work folder removed
        print(f"python benchmarks/sim_to_real.py: failed: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, command: str, work: Path) -> int:
    """The study (module docstring); ``work`` holds the servers' configs and logs."""
    from serving.connections import raise_open_files_limit  # aiohttp: only for a real run

    start = time.monotonic()
    raise_open_files_limit()
    out = Path(args.out)
    figures = out.with_name(out.stem + "_figures")
    notes: list[str] = []
    calibrated, calibration_path, record = calibrated_system(args, command, out)
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
    data = build_data(
        args, command, calibrated, calibration_path, record, capacity, scenarios, specs, ordered, loads,
        exit_codes, notes, elapsed,
    )  # fmt: skip
    assessment = write_report(data, ordered, out, figures)
    print(f"wrote {out}, {out.with_suffix('.json')} and {figures}/ in {elapsed / 60:.1f} min")
    problems = failures(assessment)
    problems += [f"server {name} exited with {code}" for name, code in exit_codes.items() if code != 0]
    if problems:
        print("the benchmark failed:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
