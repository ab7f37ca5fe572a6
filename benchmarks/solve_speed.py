"""Wall time of the exact SMDP solve (:func:`agents.smdp.solve_optimal`) on a scenario, from
scratch (the solution cache cleared before each solve), for several arrival rates.

Each rate is solved ``--repeats`` times (interleaved over the rates); the best time is kept (the
least disturbed by other load on the machine), with every repeat recorded. ``best_solve_s`` and
``all_repeats_solve_s`` are wall times of the call (the queue cap doubled as often as needed);
``all_repeats_last_cap_solve_s`` holds the solution's own ``solve_time_s`` (the solve at the
final cap). Goal: every solve under 5 s on the default system.

Usage::

    python benchmarks/solve_speed.py             # writes benchmarks/results/solve_speed.json
    python benchmarks/solve_speed.py --rates 100 --repeats 1 --out /tmp/solve_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy

from agents.smdp import check_supported, clear_cache, solve_optimal
from apps.optimal import parse_rates
from batchenv.config import SystemConfig
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.proposed.common import display_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "solve_speed.json"
GOAL_S = 5.0


def measure(config: SystemConfig, rates: list[float], repeats: int) -> dict:
    """Per rate: the best and every repeat of the wall time (s) of a solve from scratch."""
    solve_s: dict[str, list[float]] = {f"{r:g}": [] for r in rates}
    last_cap_s: dict[str, list[float]] = {f"{r:g}": [] for r in rates}
    caps: dict[str, int] = {}
    for _ in range(repeats):
        for rate in rates:
            clear_cache()
            start = time.perf_counter()
            solution = solve_optimal(config, rate)
            solve_s[f"{rate:g}"].append(time.perf_counter() - start)
            last_cap_s[f"{rate:g}"].append(solution.solve_time_s)
            caps[f"{rate:g}"] = solution.queue_cap
    best = {key: min(values) for key, values in solve_s.items()}
    return {
        "scenario": config.name,
        "best_solve_s": best,
        "all_repeats_solve_s": solve_s,
        "all_repeats_last_cap_solve_s": last_cap_s,
        "queue_cap": caps,
        "goal_s": GOAL_S,
        "meets_goal": all(value < GOAL_S for value in best.values()),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print a line per rate and write the JSON results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="default", help="packaged scenario or YAML (default: default)")
    parser.add_argument(
        "--rates",
        default="20,50,100,200,300,400,550",
        help="arrival rates, requests/s; 550 is above 90%% of the largest throughput, where the cap is "
        "queue_capacity (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; best kept (default: 5)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON output (default: {display_path(RESULTS)})"
    )
    args = parser.parse_args(argv)
    try:
        rates = parse_rates(args.rates)
    except ValueError as exc:
        parser.error(str(exc))
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        config = load_scenario(args.scenario)
        check_supported(config)
    except ValueError as exc:  # ConfigError names the field
        parser.error(str(exc))
    result = measure(config, rates, args.repeats)
    result["meta"] = {
        "command": "python benchmarks/solve_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "repeats": args.repeats,
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    for key, value in result["best_solve_s"].items():
        print(f"{key:>6s}/s: {1000 * value:8.1f} ms (cap {result['queue_cap'][key]})")
    print(f"goal: every solve under {GOAL_S:g} s: {'met' if result['meets_goal'] else 'NOT met'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
