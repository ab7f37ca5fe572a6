"""How much room each scheduler leaves: its cost per request against the hindsight bound of the
same episodes (agents/hindsight), on trace scenarios by default (any scenario: with several
workers the bound is a lower bound only, docs/hindsight.md).

For every scenario and seed, the bound ``episode_bound(config, seed)`` (the least cost any
policy can reach on that episode's arrivals, known in advance) and each agent's cost per request
on the same arrivals (``agents.registry.run_episode``; timeout and util_switch with their tuned
parameters). The table gives the mean cost per request and the gap to the bound, ``(mean cost -
mean bound) / mean bound`` with the 95% confidence interval of the seed-paired differences (the
gap of evaluate.py, with the bound as reference).

Usage::

    python benchmarks/hindsight_room.py        # writes docs/results/hindsight_room.{md,json}
    python benchmarks/hindsight_room.py --scenarios azure_trace --seeds 0-1 --out-dir /tmp/room
    python benchmarks/hindsight_room.py --scenarios multi_gpu,multi_gpu_4 --seeds 0-2 --horizon-s 10 \
        --name hindsight_workers                # docs/results/hindsight_workers.{md,json}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agents.hindsight import episode_bound
from agents.hindsight.workers import DEFAULT_BEAM, PROJECTIONS, check_beam
from agents.registry import make_agent, run_episode, split_specs
from batchenv.config import ConfigError
from batchenv.fileio import write_atomic
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.seeds import parse_seeds
from evaluation.stats import mean_ci95, relative_gap

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.proposed.common import display_path  # noqa: E402

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"
AGENTS = "greedy,static,timeout,aimd,util_switch,proposed,robust"


def measure(
    scenario: str,
    agents: list[str],
    seeds: list[int],
    horizon_s: float | None = None,
    beam: int = DEFAULT_BEAM,
    projection: str = "sum",
) -> dict:
    """Bound and agents' costs per request, per seed, on one scenario (``horizon_s``: instead of
    the scenario's own, s; ``beam``, ``projection``: the several-worker schedule search's, states
    per index and the fronts they are kept on)."""
    config = load_scenario(scenario)
    if horizon_s is not None:
        config = config.replace(horizon_s=horizon_s)
    built = {spec: make_agent(spec, config) for spec in agents}
    bound_rows, rows = [], {spec: [] for spec in agents}
    for seed in seeds:
        start = time.perf_counter()
        bound = episode_bound(config, seed, beam=beam, projection=projection)
        search = bound.stats.get("workers")
        bound_rows.append(
            {
                "seed": seed,
                "cost_per_request": bound.lower_cost_per_request,
                "upper_cost_per_request": bound.upper_cost_per_request,
                "exact": bound.exact,
                "requests": bound.n_requests,
                "elapsed_s": time.perf_counter() - start,
                "search_s": None if search is None else search.elapsed_s,
                "search_mean_front": None if search is None else search.mean_front,
            }
        )
        for spec, agent in built.items():
            metrics = compute_metrics(run_episode(agent, config, seed))
            rows[spec].append(
                {"seed": seed, "cost_per_request": metrics.cost_per_request, "p99_ms": metrics.latency_p99_ms}
            )
    bound_costs = {row["seed"]: row["cost_per_request"] for row in bound_rows}
    summary = {}
    for spec in agents:
        mean, half = mean_ci95([row["cost_per_request"] for row in rows[spec]])
        gap, gap_half = relative_gap(rows[spec], bound_costs)
        p99, p99_half = mean_ci95([row["p99_ms"] for row in rows[spec]])
        summary[spec] = {
            "cost_per_request": mean,
            "cost_ci95": half,
            "gap_to_bound": gap,
            "gap_ci95": gap_half,
            "p99_ms": p99,
            "p99_ci95": p99_half,
            "describe": built[spec].describe(),
            "params_source": getattr(built[spec], "params_source", ""),
        }
    return {
        "scenario": scenario,
        "rate_per_s": config.arrivals.mean_rate_per_s,
        "horizon_s": config.horizon_s,
        "n_workers": config.n_workers,
        "beam": beam,
        "projection": projection,
        "bound": bound_rows,
        "bound_mean": mean_ci95([row["cost_per_request"] for row in bound_rows]),
        "found_mean": mean_ci95([row["upper_cost_per_request"] for row in bound_rows]),
        "agents": summary,
        "per_seed": rows,
    }


def markdown(results: list[dict], command: str, seeds: list[int], horizon_s: float | None = None) -> str:
    """The report: one table per scenario."""
    several = any(result["n_workers"] > 1 for result in results)
    lines = [
        f"# Room left to the hindsight bound {'with several workers' if several else 'on trace scenarios'}",
        "",
        f"Produced by:\n\n```\n{command}\n```",
        "",
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} per scenario), "
        + ("the horizon given, " if horizon_s is not None else "each scenario's horizon, ")
        + ("the workers of each scenario, " if several else "one worker, ")
        + "the same arrivals for the bound and every agent. The bound is the least cost per request any "
        "policy can reach on the episode's arrivals known in advance (agents/hindsight, docs/hindsight.md); "
        + (
            "with several workers it is a lower bound of that least cost, from a relaxation, and the "
            "best schedule found with the arrivals known (a beam search the simulator replays) is an "
            "upper bound of it: the least cost lies between the two (docs/hindsight.md, 'Several "
            "workers'); "
            if several
            else ""
        )
        + "'exact' counts the seeds where a schedule the simulator plays reaches it. Gap to the bound = "
        "(mean cost - mean bound) / mean bound, with the 95% CI of the seed-paired differences; ± on a "
        "cost is the half-width of its 95% CI (Student t). p99 = the mean over the seeds of each "
        "episode's 99th percentile of latency (ms), which the bound does not constrain: it is the "
        "least *cost*, and an agent may give cost for a shorter tail.",
        "",
    ]
    for result in results:
        exact = sum(row["exact"] for row in result["bound"])
        bound_mean, bound_half = result["bound_mean"]
        slowest = max(row["elapsed_s"] for row in result["bound"])
        workers = result["n_workers"]
        kind = (
            f"exact on {exact} of {len(result['bound'])} seeds"
            if workers == 1
            else f"a lower bound ({workers} workers)"
        )
        lines += [
            f"## {result['scenario']} ({result['rate_per_s']:g} requests/s, {result['horizon_s']:g} s"
            + (f", {workers} workers)" if workers > 1 else ")"),
            "",
            f"Bound: {bound_mean:.5f} ± {bound_half:.5f} per request, {kind} (slowest seed {slowest:.1f} s).",
            "",
        ]
        if workers > 1:
            found_mean, found_half = result["found_mean"]
            search_s = max(row["search_s"] for row in result["bound"])
            front = max(row["search_mean_front"] for row in result["bound"])
            lines += [
                f"Best schedule found: {found_mean:.5f} ± {found_half:.5f} per request, "
                f"{100 * (found_mean - bound_mean) / bound_mean:+.2f}% above the bound (its search: "
                f"beam {result['beam']}"
                + (" on each projection" if result["projection"] == "all" else "")
                + f", slowest seed {search_s:.1f} s, "
                f"mean front up to {front:.1f} states).",
                "",
            ]
        lines += [
            "| agent | cost/req | gap to the bound | p99 (ms) | parameters |",
            "|---|---|---|---|---|",
        ]
        for spec, row in result["agents"].items():
            lines.append(
                f"| {spec} | {row['cost_per_request']:.5f} ± {row['cost_ci95']:.5f} | "
                f"{100 * row['gap_to_bound']:+.2f}% ± {100 * row['gap_ci95']:.2f}% | "
                f"{row['p99_ms']:.1f} ± {row['p99_ci95']:.1f} | "
                f"{row['describe']} ({row['params_source']}) |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios",
        default="azure_trace,azure_trace_medium",
        help="comma-separated scenarios (default: azure_trace,azure_trace_medium)",
    )
    parser.add_argument("--agents", default=AGENTS, help=f"agent specs (default: {AGENTS})")
    parser.add_argument("--seeds", default="0-4", help="FIRST-LAST or a list (default: 0-4)")
    parser.add_argument(
        "--out-dir", type=Path, default=OUT_DIR, help=f"output folder (default: {display_path(OUT_DIR)})"
    )
    parser.add_argument(
        "--name", default="hindsight_room", help="stem of the output files (default: hindsight_room)"
    )
    parser.add_argument(
        "--horizon-s", type=float, default=None, help="episode length (s; default: each scenario's own)"
    )
    parser.add_argument(
        "--beam",
        type=int,
        default=DEFAULT_BEAM,
        help=f"several workers: states the schedule search keeps per request index (default: {DEFAULT_BEAM})",
    )
    parser.add_argument(
        "--projection",
        choices=PROJECTIONS,
        default="sum",
        help="several workers: the fronts the schedule search keeps, on the sum of the free times "
        "(sum) or on it and on each free time (all; slower) (default: sum)",
    )
    args = parser.parse_args(argv)
    try:
        check_beam(args.beam)
    except ValueError as exc:
        parser.error(f"--beam: {exc}")
    if args.horizon_s is not None and not (0 < args.horizon_s < float("inf")):
        parser.error(f"--horizon-s: must be a number > 0 (s), got {args.horizon_s!r}")
    if not args.name or "/" in args.name or args.name.startswith("."):
        parser.error(f"--name: a file stem without '/', got {args.name!r}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    agents = split_specs(args.agents)
    command = " ".join(["python benchmarks/hindsight_room.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        results = [
            measure(scenario, agents, seeds, args.horizon_s, beam=args.beam, projection=args.projection)
            for scenario in scenarios
        ]
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    report = markdown(results, command, seeds, args.horizon_s)
    md = write_atomic(args.out_dir / f"{args.name}.md", report + "\n")
    data = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "results": results}
    js = write_atomic(args.out_dir / f"{args.name}.json", json.dumps(data, indent=2) + "\n")
    print(report)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
