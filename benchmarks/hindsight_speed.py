"""Speed of the hindsight bound (agents/hindsight) on whole episodes: wall time, front sizes and
memory at 50, 150 and 300 requests/s on Poisson arrivals and on the Azure conversation trace
(and, with ``--arrivals servegen``, on the burstier ServeGen hour), one worker, the default
system, 60 s episodes.

For each (arrivals, rate, seed) it computes ``episode_bound(config, seed)`` once and records the
requests, the time of each programme run (the relaxed one always; the realisable one only when
the relaxed optimum breaks a rule), the wall and CPU time of the whole call (CPU time is less
disturbed by other load on the machine), the mean and largest front, the states kept and candidates
generated, the memory of the kept states (34 bytes each), the process's peak resident memory so
far (``peak_rss_mb``: the rows run in the order given, so list the rates from the lightest),
whether the bound is exact, the requests the relaxed optimum drops (``relaxed_drops``: a drop
makes it unplayable, so the bound is then not exact), and the bound per request. Wall times
depend on the machine and on what else runs on it: the file records the load average before and
after.

Usage::

    python benchmarks/hindsight_speed.py              # writes benchmarks/results/hindsight_speed.json
    python benchmarks/hindsight_speed.py --rates 50,150 --seeds 0,1 --horizon-s 30 --out /tmp/h.json
    python benchmarks/hindsight_speed.py --arrivals servegen --rates 150,300,364.73 \
        --out benchmarks/results/hindsight_speed_servegen.json
    python benchmarks/hindsight_speed.py --arrivals poisson --rates 350,400,547.75 \
        --out benchmarks/results/hindsight_speed_high.json    # high_load, poisson_95: 2.5 min, 1.1 GB
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from agents.hindsight import episode_bound
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.proposed.common import display_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "hindsight_speed.json"
ARRIVALS = {"poisson": "default", "trace": "azure_trace", "servegen": "servegen"}
"""Arrival kind -> the scenario whose arrival process (rescaled to each rate) is used."""
STATE_BYTES = 34  # per kept state: f, c (float64), index, parent (int64), model (int8), last (bool)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; ``ru_maxrss`` is in KiB on Linux, in
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def measure_one(kind: str, rate: float, seed: int, horizon_s: float) -> dict:
    """Time the bound of one episode and describe the programme runs."""
    config = load_scenario(ARRIVALS[kind]).at_rate(rate).replace(horizon_s=horizon_s)
    start, cpu_start = time.perf_counter(), time.process_time()
    bound = episode_bound(config, seed)
    total_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    runs = {
        name: {
            "elapsed_s": stats.elapsed_s,
            "mean_front": stats.mean_front,
            "max_front": stats.max_front,
            "states": stats.n_states,
            "candidates": stats.n_candidates,
            "state_memory_mb": stats.n_states * STATE_BYTES / 1e6,
        }
        for name, stats in bound.stats.items()
    }
    return {
        "arrivals": kind,
        "scenario": ARRIVALS[kind],
        "rate_per_s": rate,
        "seed": seed,
        "horizon_s": horizon_s,
        "requests": bound.n_requests,
        "total_s": total_s,
        "cpu_s": cpu_s,
        "cpu_us_per_request": 1e6 * cpu_s / bound.n_requests if bound.n_requests else float("nan"),
        "peak_rss_mb": peak_rss_mb(),
        "exact": bound.exact,
        "relaxed_drops": len(bound.relaxed_schedule.dropped) if bound.relaxed_schedule else None,
        "lower_cost_per_request": bound.lower_cost_per_request,
        "upper_cost_per_request": bound.upper_cost_per_request,
        "runs": runs,
    }


def _numbers(text: str, name: str, cast) -> list:
    try:
        values = [cast(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--{name}: expected a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise SystemExit(f"--{name}: give at least one value")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates", default="50,150,300", help="arrival rates (requests/s) (default: 50,150,300)"
    )
    parser.add_argument("--seeds", default="0", help="episode seeds (default: 0)")
    parser.add_argument("--horizon-s", type=float, default=60.0, help="episode length (s) (default: 60)")
    parser.add_argument(
        "--arrivals",
        default="poisson,trace",
        help="among poisson, trace (the Azure excerpt), servegen (the ServeGen hour) "
        "(default: poisson,trace)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON output (default: {display_path(RESULTS)})"
    )
    args = parser.parse_args(argv)
    rates = _numbers(args.rates, "rates", float)
    seeds = _numbers(args.seeds, "seeds", int)
    kinds = [k.strip() for k in args.arrivals.split(",") if k.strip()]
    if any(rate <= 0 for rate in rates):
        parser.error("--rates must be > 0")
    if not args.horizon_s > 0:
        parser.error("--horizon-s must be > 0")
    unknown = sorted(set(kinds) - set(ARRIVALS))
    if unknown or not kinds:
        parser.error(f"--arrivals: choose from {sorted(ARRIVALS)}, got {args.arrivals!r}")

    load_before = os.getloadavg()
    rows = []
    print(
        f"{'arrivals':8s} {'rate':>6s} {'seed':>4s} {'requests':>8s} {'wall s':>7s} {'CPU s':>6s} "
        f"{'mean front':>10s} {'max':>5s} {'states':>9s} {'MB':>6s} {'RSS MB':>6s} {'exact':>5s} "
        f"{'bound/req':>9s}"
    )
    for kind in kinds:
        for rate in rates:
            for seed in seeds:
                row = measure_one(kind, rate, seed, args.horizon_s)
                rows.append(row)
                relaxed = row["runs"]["relaxed"]
                print(
                    f"{kind:8s} {rate:6g} {seed:4d} {row['requests']:8d} "
                    f"{row['total_s']:7.2f} {row['cpu_s']:6.2f} "
                    f"{relaxed['mean_front']:10.1f} {relaxed['max_front']:5d} {relaxed['states']:9d} "
                    f"{relaxed['state_memory_mb']:6.1f} {row['peak_rss_mb']:6.0f} {row['exact']!s:>5s} "
                    f"{row['lower_cost_per_request']:9.6f}",
                    flush=True,
                )
    result = {
        "meta": {
            "command": " ".join(
                ["python benchmarks/hindsight_speed.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "note": "wall times on a shared 2-core machine; compare with load_average",
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "rows": rows,
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
