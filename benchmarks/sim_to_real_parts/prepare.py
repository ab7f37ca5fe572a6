"""Set-up of the sim-to-real study: calibration, scenarios, agents (the calibrated system, the
compared scenarios, and the spec of each scheduler on each scenario), and the checks of the
command line's files before any long work."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from agents.registry import AgentSpecError, make_agent, parse_agent_spec
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import json_safe, write_files_atomic
from batchenv.safe_yaml import YamlError, load_yaml
from batchenv.scenarios import load_scenario
from batchenv.seeds import TRAINING_SEEDS
from batchenv.timing import ServiceTable
from benchmarks.sim_to_real_parts.checks import calibration_load, read_calibration_record
from evaluation.tuning import tune_scenario

__all__ = [
    "SetupError",
    "agent_specs",
    "calibrated_system",
    "check_checkpoint",
    "load_calibration",
    "make_scenarios",
]

TIMING_FIELDS = ("batch_sizes", "comm_ms", "t_pre_ms", "t_post_ms")
"""The timing table's fields a calibration YAML must state itself (with ``inference_ms`` of
every model), not inherit: a file without them would run on another table under its name."""


class SetupError(ValueError):
    """A bad file or setting found before the long work: one line naming the flag."""


def load_calibration(path_text: str) -> tuple[SystemConfig, dict[str, Any] | None]:
    """The calibrated config of ``--calibration`` and the JSON record next to it (None if absent).

    :raises SetupError: the file is missing or not a scenario, or does not state the timing table
        itself (``timing.batch_sizes``, ``comm_ms``, ``t_pre_ms``, ``t_post_ms`` and every
        model's ``inference_ms``).
    """
    path = Path(path_text)
    if not path.is_file():
        raise SetupError(f"--calibration: no such file {path_text!r}")
    try:
        raw = load_yaml(path)
    except (YamlError, OSError) as exc:
        raise SetupError(f"--calibration: {path_text!r}: {exc}") from None
    timing = raw.get("timing") if isinstance(raw, dict) else None
    models = raw.get("models") if isinstance(raw, dict) else None
    missing = [f"timing.{k}" for k in TIMING_FIELDS if not isinstance(timing, dict) or k not in timing]
    if not isinstance(models, list) or not models:
        missing.append("models")
    else:
        missing += [
            f"models[{i}].inference_ms"
            for i, m in enumerate(models)
            if not isinstance(m, dict) or "inference_ms" not in m
        ]
    if missing:
        raise SetupError(
            f"--calibration: {path_text!r} does not state a measured timing table (missing "
            f"{', '.join(missing)}); write one with python -m serving.calibrate"
        )
    try:
        config = load_scenario(path)
    except ConfigError as exc:
        raise SetupError(f"--calibration: {path_text!r}: {exc}") from None
    return config, read_calibration_record(path)


def check_checkpoint(spec: str) -> None:
    """``--checkpoint`` must name an existing ``.zip`` checkpoint (a learned agent).

    :raises SetupError: another agent spec (``optimal`` needs each scenario's true rate, which a
        server configured with the first scenario does not give it; see
        :mod:`benchmarks.sim_to_real_parts.runs`), or no such file.
    """
    try:
        parsed = parse_agent_spec(spec)
    except AgentSpecError as exc:
        raise SetupError(f"--checkpoint: {exc}") from None
    if parsed.name != "checkpoint":
        why = (
            "; optimal needs each scenario's true rate, but one server per agent serves every "
            "scenario with the first scenario's config"
            if parsed.name == "optimal"
            else ""
        )
        raise SetupError(f"--checkpoint: must be a learned agent's .zip checkpoint, got {spec!r}{why}")
    if not Path(spec).is_file():
        raise SetupError(f"--checkpoint: no such file {spec!r}")


def _busy_message(load: dict[str, Any], when: str) -> str:
    return (
        f"the machine is busy {when} (other jobs' load {load['background_load']:.2f} on "
        f"{load['cpus']} CPUs, above {load['limit']:g}): its timing table would time a slower "
        "machine than the replays run on; calibrate on a quiet machine or pass "
        "--allow-busy-calibration (the report then flags it)"
    )


def calibrated_system(
    args: argparse.Namespace, command: str, out: Path
) -> tuple[SystemConfig, Path, dict[str, Any] | None]:
    """The calibrated config, its path and its measurement record: read from ``--calibration``,
    or measured now and written next to the results (YAML and JSON as one pair).

    :raises SetupError: the calibration was (or would be) taken on a busy machine
        (:func:`benchmarks.sim_to_real_parts.checks.calibration_load`), unless
        ``--allow-busy-calibration``.
    """
    if args.calibration is not None:
        config, record = load_calibration(args.calibration)
        load = calibration_load(record)
        if load["busy"] and not args.allow_busy_calibration:
            raise SetupError(f"--calibration: {_busy_message(load, 'in its record')}")
        return config, Path(args.calibration), record
    cpus = os.cpu_count() or 1
    before = calibration_load({"machine": {"cpus": cpus, "load_average_1_5_15": list(os.getloadavg())}})
    if before["busy"] and not args.allow_busy_calibration:
        raise SetupError(f"calibration: {_busy_message(before, 'now')}")
    from serving.calibrate import calibrate, yaml_text  # torch: only when calibrating
    from serving.models import MODEL_SPECS

    path = out.with_name(f"{out.stem}_calibrated.yaml")
    print(f"calibrating ({args.calibration_reps} rounds) ...", flush=True)
    base = load_scenario("default")
    config, record = calibrate(
        base, MODEL_SPECS, reps=args.calibration_reps, warmup_reps=3, statistic=args.calibration_statistic
    )
    record = {"command": command, "base_scenario": "default", **record, "config": config.to_dict()}
    load = calibration_load(record)
    if load["busy"]:
        if not args.allow_busy_calibration:
            raise SetupError(f"calibration: {_busy_message(load, 'during it')}")
        print(
            f"WARNING: calibrated on a busy machine (other jobs' load {load['background_load']:.2f} on "
            f"{load['cpus']} CPUs, above {load['limit']:g}); kept because of --allow-busy-calibration, "
            "flagged in the report",
            flush=True,
        )
    write_files_atomic(
        {
            path: yaml_text(config, record, command + "  (its calibration step)", "default"),
            path.with_suffix(".json"): json.dumps(json_safe(record), indent=2) + "\n",
        }
    )
    return load_scenario(path), path, record


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
    """Per agent label, the spec used on each scenario. The checkpoint (checked up front by
    :func:`check_checkpoint`) is left out, with a note, if it does not apply to the calibrated
    system (another number of workers or models)."""
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
