"""Set-up of the sim-to-real study: calibration, scenarios, agents (the calibrated system, the
compared scenarios, and the spec of each scheduler on each scenario)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.registry import AgentSpecError, make_agent
from batchenv.config import SystemConfig
from batchenv.fileio import json_safe, write_atomic, write_json_atomic
from batchenv.scenarios import load_scenario
from batchenv.seeds import TRAINING_SEEDS
from batchenv.timing import ServiceTable
from evaluation.tuning import tune_scenario
from serving.calibrate import calibrate, yaml_text
from serving.models import MODEL_SPECS


def calibrated_system(args: argparse.Namespace, command: str, out: Path) -> tuple[SystemConfig, Path]:
    """The calibrated config: read from ``--calibration``, or measured now and written next to
    the results."""
    if args.calibration is not None:
        return load_scenario(args.calibration), Path(args.calibration)
    path = out.with_name(f"{out.stem}_calibrated.yaml")
    print(f"calibrating ({args.calibration_reps} rounds) ...", flush=True)
    base = load_scenario("default")
    config, record = calibrate(
        base, MODEL_SPECS, reps=args.calibration_reps, warmup_reps=3, statistic=args.calibration_statistic
    )
    record = {"command": command, "base_scenario": "default", **record, "config": config.to_dict()}
    write_atomic(path, yaml_text(config, record, command + "  (its calibration step)", "default"))
    write_json_atomic(path.with_suffix(".json"), json_safe(record))
    return load_scenario(path), path


def make_scenarios(calibrated: SystemConfig, args: argparse.Namespace) -> dict[str, SystemConfig]:
    """The compared scenarios by name: Poisson at each load, the trace at its load."""
    capacity = ServiceTable(calibrated).max_throughput_per_s(calibrated.n_workers)
    base = calibrated.replace(horizon_s=args.horizon_s)
    scenarios = {}
    for load in args.loads:
        name = f"poisson_{round(100 * load)}pct"
        scenarios[name] = base.replace(name=name).at_rate(load * capacity)
    if args.trace_load > 0:
        trace = load_scenario("azure_trace").arrivals
        name = f"azure_trace_{round(100 * args.trace_load)}pct"
        scenarios[name] = base.replace(name=name, arrivals=trace).at_rate(args.trace_load * capacity)
    return scenarios


def tuned_timeout_spec(config: SystemConfig, tune_horizon_s: float) -> str:
    """The timeout baseline tuned in simulation on ``config`` (the grid of evaluation.tuning, on the
    training seeds), as an agent spec with every parameter given."""
    tuned = tune_scenario(config.replace(horizon_s=tune_horizon_s), agents=["timeout"], seeds=TRAINING_SEEDS)
    p = tuned["timeout"]["params"]
    return f"timeout(B={p['preferred_batch_size']},T={p['max_queue_delay_ms']:g},model={p['model']})"


def agent_specs(
    scenarios: dict[str, SystemConfig], args: argparse.Namespace, notes: list[str]
) -> dict[str, dict[str, str]]:
    """Per agent label, the spec used on each scenario."""
    specs: dict[str, dict[str, str]] = {"greedy": dict.fromkeys(scenarios, "greedy")}
    specs["timeout (tuned)"] = {}
    for name, config in scenarios.items():
        print(f"tuning timeout on {name} in simulation ...", flush=True)
        specs["timeout (tuned)"][name] = tuned_timeout_spec(config, args.tune_horizon_s)
    specs["proposed"] = dict.fromkeys(scenarios, "proposed")
    if args.checkpoint:
        first = next(iter(scenarios.values()))
        try:
            make_agent(args.checkpoint, first)
        except AgentSpecError as exc:
            notes.append(f"{args.checkpoint} is not compared: {exc}")
        else:
            specs[Path(args.checkpoint).stem] = dict.fromkeys(scenarios, args.checkpoint)
    return specs
