"""``python -m apps.optimal`` (console script ``batchenv-optimal``): solve the one-worker, Poisson
SMDP of a scenario exactly for several arrival rates and print the table of docs/optimal.md."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.optimal import OptimalScheduler
from agents.smdp import ACTION_SETS, OptimalSolution, control_limits, solve_optimal
from batchenv.config import SystemConfig
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate

__all__ = ["build_parser", "format_table", "main", "parse_rates"]


def _simulated_cost(
    config: SystemConfig, solution: OptimalSolution, n_requests: int, seeds: int
) -> tuple[float, float, int]:
    """Mean and standard error of the simulator's cost per request of the solution's policy over
    ``seeds`` episodes (seeds 0, 1, ...) of about ``n_requests / seeds`` arrivals each, and the
    number of forced dispatches."""
    arrivals = {"process": "poisson", "rate_per_s": solution.rate_per_s, "rate_range_per_s": None}
    system = config.replace(arrivals=arrivals)
    scheduler = OptimalScheduler(system, solution=solution)
    horizon_s = n_requests / seeds / solution.rate_per_s
    best = max(config.qualities)
    costs, forced = [], 0
    for seed in range(seeds):
        sim = simulate(system, scheduler, seed, record=False, horizon_s=horizon_s)
        costs.append(best - sim.total_reward / sim.n_arrived)
        forced += sim.n_forced
    values = np.asarray(costs)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(seeds)), forced


def format_table(
    config: SystemConfig,
    rates_per_s: list[float],
    *,
    action_set: str = "any",
    simulate_requests: int = 0,
    seeds: int = 4,
) -> str:
    """Return the Markdown table of :func:`main`: one row per rate, then the policy runs per rate.

    The column "whole queue" is the extra cost of the optimum restricted to dispatching the whole
    queue (``action_set="whole"``, the env's default actions), relative to this optimum.

    :param config: the system (one worker, Poisson arrivals, ``reward.w_slo = 0``).
    :param rates_per_s: the arrival rates (requests/s), one row each.
    :param action_set: the batch sizes a dispatch may use (:data:`agents.smdp.ACTION_SETS`).
    :param simulate_requests: also simulate each policy for about this many requests (0: no).
    :param seeds: episodes per rate when simulating (>= 2).
    """
    header = (
        "| rate (1/s) | q* | control limit | score / request | cost / request | gain (1/s) "
        "| mean batch | model mix | whole queue | PI iter. | solve (ms) |"
    )
    sep = "|" + "---|" * (header.count("|") - 1)
    if simulate_requests:
        header += " sim cost +- s.e. | sim vs solver | forced |"
        sep += "---|---|---|"
    lines = [header, sep]
    runs = []
    for rate in rates_per_s:
        sol = solve_optimal(config, rate, action_set=action_set)
        whole = solve_optimal(config, rate, action_set="whole")
        extra = (whole.cost_per_request - sol.cost_per_request) / sol.cost_per_request
        limits = control_limits(sol)
        mix = " / ".join(f"{x:.3f}" for x in sol.model_mix)
        row = (
            f"| {rate:g} | {sol.dispatch_threshold} | {'yes' if limits.is_control_limit else 'no'} "
            f"| {sol.score_per_request:.6f} | {sol.cost_per_request:.6f} | {sol.gain_per_s:.4f} "
            f"| {sol.mean_batch_size:.2f} | {mix} | {100 * extra:+.3f}% | {sol.iterations} "
            f"| {1000 * sol.solve_time_s:.0f} |"
        )
        if simulate_requests:
            mean, err, forced = _simulated_cost(config, sol, simulate_requests, seeds)
            gap = (mean - sol.cost_per_request) / sol.cost_per_request
            row += f" {mean:.6f} +- {err:.6f} | {100 * gap:+.2f}% | {forced} |"
        lines.append(row)
        runs.append(f"- {rate:g}/s (q <= {limits.q_max}): {limits.describe()}")
    mix_names = " / ".join(config.model_names)
    return "\n".join(
        [
            *lines,
            "",
            f"Model mix: fraction of requests served by {mix_names}. Whole queue: extra cost of the "
            "best policy that always dispatches min(q, max_batch_size).",
            "",
            "Policy by queue length q at a decision epoch (up to the 99.99th percentile of q; "
            "b=q: the whole queue):",
            *runs,
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (``--help`` explains every flag)."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.optimal",
        description=(
            "Solve the one-worker, Poisson SMDP of a scenario exactly for several arrival rates and "
            "print, per rate, the optimal score and cost per request, the control limit q* and the "
            "policy by queue length (a Markdown table; docs/optimal.md shows its output)."
        ),
    )
    parser.add_argument(
        "--rates",
        default="20,50,100,200,300,400",
        help="comma-separated arrival rates, requests/s (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario",
        default="default",
        help="packaged scenario name or YAML path; needs one worker and Poisson arrivals "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--timing", choices=("interp", "pad"), default=None, help="override timing.mode of the scenario"
    )
    parser.add_argument(
        "--action-set",
        choices=ACTION_SETS,
        default="any",
        help="batch sizes a dispatch may use: any b <= q, the whole queue, or the env's table sizes "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="also simulate each policy for N requests (seeds 0.., common to all rates) and print "
        "the simulator's cost next to the solver's (default: 0, no simulation)",
    )
    parser.add_argument("--seeds", type=int, default=4, help="episodes per rate with --simulate (>= 2)")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    return parser


def parse_rates(text: str) -> list[float]:
    """The rates (requests/s) of ``--rates``; ValueError naming the flag unless each is a number > 0."""
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--rates: expected comma-separated numbers (requests/s), got {text!r}") from None
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"--rates: every rate must be a finite number > 0 (requests/s), got {text!r}")
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Solve the SMDP for the rates of the command line ``argv`` and print the table.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :returns: the exit code (0; a bad command line exits 2 with one line).
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.simulate < 0:
        parser.error(f"--simulate must be >= 0 (requests), got {args.simulate}")
    if args.simulate and args.seeds < 2:
        parser.error(f"--seeds must be >= 2 with --simulate (a standard error needs two), got {args.seeds}")
    try:
        rates = parse_rates(args.rates)
        config = load_scenario(args.scenario)
        if args.timing:
            config = config.replace(timing={"mode": args.timing})
        table = format_table(
            config,
            rates,
            action_set=args.action_set,
            simulate_requests=args.simulate,
            seeds=args.seeds,
        )
    except ValueError as exc:  # ConfigError included: it names the field
        parser.error(str(exc))
    print(table)
    if args.out:
        path = write_atomic(args.out, table + "\n")
        print(f"\nwrote {Path(path).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
