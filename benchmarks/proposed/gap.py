"""*gap* part: the gap of the proposed scheduler (and of its no-estimation ablation and the tuned
baselines) to the exact optimum on stationary Poisson loads, with common random numbers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from batchenv.scenarios import load_scenario
from benchmarks.proposed.common import gap, pct, run_grid
from evaluation.stats import mean_ci95
from execution.backends import Backend

GAP_SCENARIOS = ("poisson_05", "poisson_25", "default", "poisson_50", "poisson_75", "poisson_95", "high_load")
GAP_AGENTS = ("optimal", "proposed", "proposed(rate_estimation=false)", "timeout", "util_switch")


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """Cost gap to the optimum on stationary Poisson loads (common random numbers)."""
    seeds = list(range(args.seeds))
    lines = [
        "## Gap to the exact optimum on stationary Poisson loads",
        "",
        f"{len(seeds)} seeds (0-{seeds[-1]}) x {args.horizon_s:g} s per scenario, common random numbers; "
        "gap = (mean cost - mean cost of `optimal`) / mean cost of `optimal`, ± the 95% CI of the "
        "seed-paired cost differences (relative to the same mean). "
        "`optimal` solves the SMDP for the scenario's true rate (an oracle); `proposed` estimates "
        "the rate online from the arrivals.",
        "",
        "| scenario | rate (1/s) | optimal cost/req | proposed | proposed, no rate estimation "
        "| timeout (tuned) | util_switch (tuned) | proposed forced |",
        "|---|---|---|---|---|---|---|---|",
    ]
    data = {}
    for scenario in GAP_SCENARIOS:
        start = time.perf_counter()
        res = run_grid(backend, GAP_AGENTS, scenario, seeds, args.horizon_s)
        opt = res["optimal"]
        gaps = {spec: gap(res[spec], opt) for spec in GAP_AGENTS if spec != "optimal"}
        cost = mean_ci95([r["cost"] for r in opt])
        rate = load_scenario(scenario).arrivals.mean_rate_per_s
        forced = sum(r["forced"] for r in res["proposed"])
        lines.append(
            f"| {scenario} | {rate:g} | {cost[0]:.5f} | {pct(gaps['proposed'])} "
            f"| {pct(gaps['proposed(rate_estimation=false)'])} | {pct(gaps['timeout'])} "
            f"| {pct(gaps['util_switch'])} | {forced} |"
        )
        data[scenario] = {"optimal_cost": cost, "gaps": gaps, "forced": forced}
        print(f"  gap {scenario}: proposed {pct(gaps['proposed'])} ({time.perf_counter() - start:.0f} s)")
    return [*lines, ""], data
