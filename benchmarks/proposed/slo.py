"""*slo* part: the ``azure_trace_slo`` scenario (80 ms SLO, w_slo = 0.2), with the timeout and
util_switch baselines tuned for it on training seeds (written to ``<out stem>/tuned/``, as
``python -m apps.tune`` would), and the proposed scheduler with and without its SLO guard."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agents.tuned_params import config_fingerprint, load_tuned, write_tuned
from batchenv.scenarios import load_scenario
from batchenv.seeds import TRAINING_SEEDS
from benchmarks.proposed.common import display_path, gap, pct, run_grid
from evaluation.stats import mean_ci95
from evaluation.tuning import tune_scenario
from execution.backends import Backend

SLO_SCENARIO = "azure_trace_slo"
SLO_AGENTS = (
    "greedy",
    "timeout",
    "aimd",
    "util_switch",
    "proposed",
    "proposed(slo_guard=false)",
    "proposed(rate_estimation=false)",
    "proposed(model_switching=false)",
)


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
    """The SLO scenario, with its own tuned baselines."""
    config = load_scenario(SLO_SCENARIO)
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    path = tuned_dir / f"{SLO_SCENARIO}.yaml"
    if load_tuned(config, tuned_dir) is None:
        print(f"  tuning timeout and util_switch for {SLO_SCENARIO} on seeds {list(TRAINING_SEEDS)}")
        agents = tune_scenario(config, backend=backend)
        write_tuned(
            path,
            {
                "scenario": SLO_SCENARIO,
                "config_fingerprint": config_fingerprint(config),
                "command": "python benchmarks/proposed_eval.py --parts slo",
                "training_seeds": list(TRAINING_SEEDS),
                "horizon_s": config.horizon_s,
                "objective": "mean cost per request (best quality - score)",
                "agents": agents,
            },
        )
    seeds = list(range(args.slo_seeds))
    res = run_grid(backend, SLO_AGENTS, SLO_SCENARIO, seeds, None, tuned_dir=str(tuned_dir), record=True)
    ref = res["timeout"]
    lines = [
        f"## SLO scenario `{SLO_SCENARIO}`",
        "",
        f"Azure trace at 150 requests/s, SLO {config.slo_ms:g} ms, w_slo = {config.reward.w_slo:g} per miss. "
        f"timeout and util_switch tuned for this scenario on training seeds ({display_path(path)}); "
        f"seeds 0-{seeds[-1]}, 60 s each; gap vs the tuned timeout ± 95% CI (seed-paired).",
        "",
        "| agent | cost/req | gap vs timeout | p99 ms | SLO attainment | quality | LLM-1 / LLM-2 / LLM-3 |",
        "|---|---|---|---|---|---|---|",
    ]
    data = {}
    names = config.model_names
    for spec in SLO_AGENTS:
        rows = res[spec]
        cost = mean_ci95([r["cost"] for r in rows])
        gap_ci = gap(rows, ref)
        mix = " / ".join(f"{100 * np.mean([r[f'mix_{n}'] for r in rows]):.0f}%" for n in names)
        p99, slo, quality = (np.mean([r[key] for r in rows]) for key in ("p99_ms", "slo", "quality"))
        lines.append(
            f"| {spec} | {cost[0]:.4f} ± {cost[1]:.4f} | {pct(gap_ci, 2)} | {p99:.1f} | {slo:.3f} "
            f"| {quality:.4f} | {mix} |"
        )
        data[spec] = {
            "cost": cost,
            "gap": gap_ci,
            "p99_ms": float(p99),
            "slo_attainment": float(slo),
            "quality": float(quality),
            "model_mix": {n: float(np.mean([r[f"mix_{n}"] for r in rows])) for n in names},
        }
    return [*lines, ""], data
