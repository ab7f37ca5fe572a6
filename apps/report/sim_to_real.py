"""The sim-to-real study (``python benchmarks/sim_to_real.py``): the calibrated timing table, the
fidelity of the simulator against the real batching server, and whether the schedulers' ranks
hold. Reads ``docs/results/sim_to_real.json`` and the calibration record next to it."""

from __future__ import annotations

from typing import Any

from apps.report.formatting import fnum, fpct
from apps.report.macros import Macros, add_pending
from apps.report.sources import SIM_TO_REAL, SIM_TO_REAL_CALIBRATION, SIM_TO_REAL_SENSITIVITY, BuildError
from apps.report.tables import table_header
from serving.fidelity import RankedCell, rank_scenario

__all__ = [
    "SIM_TO_REAL_KEYS",
    "calibrated_table",
    "fidelity_table",
    "sensitivity_numbers",
    "sim_to_real_numbers",
]

SIM_TO_REAL_KEYS = {
    "resSrCapacity": "capacity_per_s (1/s)",
    "resSrLoadLow": "settings.loads[0] (%)",
    "resSrLoadMid": "settings.loads[1] (%)",
    "resSrLoadHigh": "settings.loads[2] (%)",
    "resSrTraceLoad": "settings.trace_load (%)",
    "resSrHorizonS": "settings.horizon_s (s)",
    "resSrSeeds": "len(settings.seeds)",
    "resSrRepeats": "settings.repeats",
    "resSrWarmupS": "settings.warmup_s (s)",
    "resSrCpus": "machine.cpus",
    "resSrLoadAvgMin": "min of machine.load_average_per_run",
    "resSrLoadAvgMax": "max of machine.load_average_per_run",
    "resSrGoalPct": "goal_relative_error (%)",
    "resSrCells": "checks.unsaturated.cells_with_valid_runs",
    "resSrCellsWithin": "checks.unsaturated.cells_within_goal_valid_runs",
    "resSrMedErrMean": "checks.unsaturated.median_abs_error_mean_valid_runs (%)",
    "resSrMedErrTail": "checks.unsaturated.median_abs_error_p99_valid_runs (%)",
    "resSrSatCells": "checks.saturated.cells",
    "resSrCellsAll": "len(cells)",
    "resSrRuns": "checks.runs",
    "resSrValidRuns": "checks.valid_runs",
    "resSrMaxLagMs": "checks.max_send_lag_p99_ms (ms)",
    "resSrLagSpearman": "checks.spearman_send_lag_p99_vs_p99_error",
    "resSrServiceOverall": "checks.service_ratio_overall (measured / table)",
    "resSrRecordedWithin": "checks.recorded_arrivals.cells_within_goal",
    "resSrRecordedModelErr": "checks.recorded_arrivals.median_abs_model_error_p99 (%)",
    "resSrRankScenarios": "number of scenarios ranked by cost (every cell with a valid run, on the seeds "
    "every agent has a valid run of)",
    "resSrRanksHold": "scenarios whose cost ranking on the valid runs is the same simulated and measured",
    "resSrTauMin": "min over scenarios of the cost ranking's kendall_tau",
    "resSrAgents": "number of schedulers compared",
    "resSrServiceRatioMin": "min over cells, runs and models of service_check ratio (measured / table)",
    "resSrServiceRatioMax": "max over cells, runs and models of service_check ratio (measured / table)",
    "resSrTPre": "calibrated_config.timing.t_pre_ms (ms)",
    "resSrTPost": "calibrated_config.timing.t_post_ms (ms)",
    "resSrCalibReps": "reps of the calibration",
    "resSrTorchThreads": "machine.torch_threads of the calibration",
    "resSrShapes": "models of the calibration (layers x width)",
}
SENSITIVITY_KEYS = {
    "resSrSensStepPct": "s - 1 for the least of scales above 1 (%)",
    "resSrSensMeanTwoMin": "min over the unsaturated cells at the highest Poisson load of "
    "change['x<s>'].latency_mean_ms (%)",
    "resSrSensMeanTwoMax": "max over the same cells of change['x<s>'].latency_mean_ms (%)",
}
"""Macros of ``docs/results/sim_to_real_sensitivity.json``: how far the simulator's latency
predictions move with batches a little longer than the calibrated table."""

AGENT_NAMES = {"greedy": "greedy", "timeout (tuned)": "timeout (tuned)", "proposed": "proposed"}
CHECKPOINT_NAMES = {"ppo_default": "PPO (shipped)", "dqn_default": "DQN (shipped)"}


def _agent_label(agent: str) -> str:
    return AGENT_NAMES.get(agent) or CHECKPOINT_NAMES.get(agent) or agent.replace("_", "\\_")


def _cost_ranks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scenario whose every cell has a valid run (the load generator's gate, the report's
    fidelity figures), the agents ordered by cost per request, simulated and measured on the valid
    runs of the seeds every agent has a valid run of, and Kendall's tau between the two orders;
    scenarios with a cell without a valid run, or without such a seed, are not ranked (as in the
    "Do the ranks hold?" section of sim_to_real.md: the same :func:`rank_scenario`)."""
    records = []
    for scenario in data["scenarios"]:
        cells: dict[str, RankedCell | None] = {}
        for cell in data["cells"]:
            if cell["scenario"] != scenario:
                continue
            runs = [r for r, ok in zip(cell["measured_runs"], cell["checks"]["valid"], strict=True) if ok]
            simulated = {int(s): m for s, m in cell["simulated_per_seed"].items()}
            cells[cell["agent"]] = (simulated, runs) if runs else None
        record = rank_scenario(cells, scenario, "cost_per_request")
        if record is not None:
            records.append(record)
    return records


def _check_pair(data: dict[str, Any], calibration: dict[str, Any] | None) -> None:
    """The calibration record must come from the same run as the fidelity results."""
    if calibration is not None and calibration.get("command") != data.get("command"):
        raise BuildError(
            f"{SIM_TO_REAL_CALIBRATION} ({calibration.get('command')!r}) and {SIM_TO_REAL} "
            f"({data.get('command')!r}) come from different runs; rerun: python benchmarks/sim_to_real.py"
        )


def _checks(data: dict[str, Any]) -> dict[str, Any]:
    """The checks ``benchmarks/sim_to_real.py`` wrote (``sim_to_real_parts.checks.assess``): the
    validity gate on the load generator, saturated cells apart, the recorded-arrivals comparison."""
    checks = data.get("checks")
    if not isinstance(checks, dict) or "unsaturated" not in checks:
        raise BuildError(
            f"{SIM_TO_REAL} has no 'checks' (it predates the validity gate); "
            "rerun: python benchmarks/sim_to_real.py --render-only (it writes the checks again from the "
            "measurements)"
        )
    return checks


def sim_to_real_numbers(
    macros: Macros, data: dict[str, Any] | None, calibration: dict[str, Any] | None
) -> None:
    """The macros of :data:`SIM_TO_REAL_KEYS` (``[pending]`` when the results are absent) and the
    switch ``\\ifsimRealPreliminary`` (the JSON's ``preliminary`` flag)."""
    if data is None:
        add_pending(macros, SIM_TO_REAL_KEYS, SIM_TO_REAL)
        macros.flags["simRealPreliminary"] = (False, f"{SIM_TO_REAL} absent")
        macros.flags["simRealRanksHold"] = (False, f"{SIM_TO_REAL} absent")
        return
    _check_pair(data, calibration)
    preliminary = bool(data["preliminary"])
    macros.flags["simRealPreliminary"] = (
        preliminary,
        f"{SIM_TO_REAL}: preliminary = {str(preliminary).lower()}",
    )
    settings = data["settings"]
    checks = _checks(data)
    unsaturated = checks["unsaturated"]
    ranked = _cost_ranks(data)
    hold = bool(ranked) and all(r["simulated"] == r["measured"] for r in ranked)  # none: no claim
    macros.flags["simRealRanksHold"] = (
        hold,
        f"{SIM_TO_REAL}: every cost ranking holds = {str(hold).lower()}",
    )
    loads = data["machine"]["load_average_per_run"]
    ranks = _cost_ranks(data)
    ratios = [
        entry["ratio"]
        for cell in data["cells"]
        for run in cell["service_check"]
        for entry in run.values()
        if entry.get("batches")
    ]
    timing = data["calibrated_config"]["timing"]
    low, mid, high = settings["loads"][:3]
    values = {
        "resSrCapacity": fnum(data["capacity_per_s"], 1),
        "resSrLoadLow": f"{100 * low:.0f}",
        "resSrLoadMid": f"{100 * mid:.0f}",
        "resSrLoadHigh": f"{100 * high:.0f}",
        "resSrTraceLoad": f"{100 * settings['trace_load']:.0f}",
        "resSrHorizonS": f"{settings['horizon_s']:g}",
        "resSrSeeds": str(len(settings["seeds"])),
        "resSrRepeats": str(settings["repeats"]),
        "resSrWarmupS": f"{settings['warmup_s']:g}",
        "resSrCpus": str(data["machine"]["cpus"]),
        "resSrLoadAvgMin": fnum(min(loads), 1),
        "resSrLoadAvgMax": fnum(max(loads), 1),
        "resSrGoalPct": f"{100 * data['goal_relative_error']:g}",
        "resSrCells": str(unsaturated["cells_with_valid_runs"]),
        "resSrCellsWithin": str(unsaturated["cells_within_goal_valid_runs"]),
        "resSrMedErrMean": fpct(unsaturated["median_abs_error_mean_valid_runs"], 0),
        "resSrMedErrTail": fpct(unsaturated["median_abs_error_p99_valid_runs"], 0),
        "resSrSatCells": str(checks["saturated"]["cells"]),
        "resSrCellsAll": str(len(data["cells"])),
        "resSrRuns": str(checks["runs"]),
        "resSrValidRuns": str(checks["valid_runs"]),
        "resSrMaxLagMs": f"{checks['max_send_lag_p99_ms']:g}",
        "resSrLagSpearman": fnum(checks["spearman_send_lag_p99_vs_p99_error"], 2),
        "resSrServiceOverall": fnum(checks["service_ratio_overall"], 2),
        "resSrRankScenarios": str(len(ranks)),
        "resSrRanksHold": str(sum(r["simulated"] == r["measured"] for r in ranks)),
        "resSrTauMin": fnum(min(r["kendall_tau"] for r in ranks), 2) if ranks else "n/a",
        "resSrAgents": str(len(data["agents"])),
        "resSrServiceRatioMin": fnum(min(ratios), 2),
        "resSrServiceRatioMax": fnum(max(ratios), 2),
        "resSrTPre": fnum(timing["t_pre_ms"], 1),
        "resSrTPost": fnum(timing["t_post_ms"], 1),
    }
    recorded = checks.get("recorded_arrivals")
    if recorded is not None:
        values["resSrRecordedWithin"] = str(recorded["cells_within_goal"])
        values["resSrRecordedModelErr"] = fpct(recorded["median_abs_model_error_p99"], 0)
    if calibration is not None:
        values["resSrCalibReps"] = str(calibration["reps"])
        values["resSrTorchThreads"] = str(calibration["machine"]["torch_threads"])
        values["resSrShapes"] = ", ".join(s.replace("x", "$\\times$") for s in calibration["models"].values())
    for name, key in SIM_TO_REAL_KEYS.items():
        source = (
            SIM_TO_REAL_CALIBRATION
            if name in ("resSrCalibReps", "resSrTorchThreads", "resSrShapes")
            else SIM_TO_REAL
        )
        if name in values:
            macros.add(name, values[name], source, key)
        else:
            add_pending(macros, {name: key}, source)


def sensitivity_numbers(
    macros: Macros, sensitivity: dict[str, Any] | None, data: dict[str, Any] | None
) -> None:
    """The macros of :data:`SENSITIVITY_KEYS` from ``sensitivity`` (``[pending]`` when it or the
    study's results are absent). Its cells must be those of the study's results (``data``)."""
    if sensitivity is None or data is None:
        add_pending(macros, SENSITIVITY_KEYS, SIM_TO_REAL_SENSITIVITY)
        return
    study = [(c["scenario"], c["agent"], c["spec"]) for c in data["cells"]]
    mine = [(c["scenario"], c["agent"], c["spec"]) for c in sensitivity["cells"]]
    if study != mine:
        raise BuildError(
            f"{SIM_TO_REAL_SENSITIVITY} was made from other sim-to-real results than {SIM_TO_REAL}; "
            "rerun: python benchmarks/sim_to_real_sensitivity.py"
        )
    high = f"poisson_{round(100 * max(data['settings']['loads']))}pct"
    unsaturated = [c for c in sensitivity["cells"] if not c["measured"]["saturated"] and c["elasticity"]]
    at_high = [c for c in unsaturated if c["scenario"] == high]
    longer = [scale for scale in sensitivity["scales"] if scale > 1]
    if not at_high or not longer:
        raise BuildError(f"{SIM_TO_REAL_SENSITIVITY}: no unsaturated cell at {high}, or no scale above 1")
    step = min(longer)
    mean_two = [100 * c["change"][f"x{step:g}"]["latency_mean_ms"] for c in at_high]
    values = {
        "resSrSensStepPct": f"{100 * (step - 1):g}",
        "resSrSensMeanTwoMin": fnum(min(mean_two), 1),
        "resSrSensMeanTwoMax": fnum(max(mean_two), 1),
    }
    for name, key in SENSITIVITY_KEYS.items():
        macros.add(name, values[name], SIM_TO_REAL_SENSITIVITY, key)


def calibrated_table(data: dict[str, Any], calibration: dict[str, Any] | None) -> str:
    """The calibrated timing table: T_inf(m, b) (the table's entry, made non-decreasing) with the
    95% half-width of the raw samples' mean, and T_comm(b), in ms."""
    _check_pair(data, calibration)
    config = data["calibrated_config"]
    timing, models = config["timing"], config["models"]
    stages = (calibration or {}).get("stages", {})
    rows = []
    for i, b in enumerate(timing["batch_sizes"]):
        if b > config["max_batch_size"]:
            break
        cells = []
        for model in models:
            stage = stages.get(f"{model['name']}/b{b}", {}).get("inference")
            ci = f"\\,$\\pm$\\,{stage['ci95_ms']:.1f}" if stage else ""
            cells.append(f"{model['inference_ms'][i]:.1f}{ci}")
        rows.append(f"{b} & " + " & ".join(cells) + f" & {timing['comm_ms'][i]:.1f} \\\\")
    names = " & ".join(m["name"] for m in models)
    return (
        table_header(SIM_TO_REAL, "calibrated timing table (ms)")
        + "\\begin{tabular}{@{}r r r r r@{}}\n\\toprule\n"
        + f"& \\multicolumn{{{len(models)}}}{{c}}{{$T_{{\\mathrm{{inf}}}}(m, b)$ (ms)}} & \\\\\n"
        + f"\\cmidrule(lr){{2-{len(models) + 1}}}\n"
        + f"$b$ & {names} & $T_{{\\mathrm{{comm}}}}(b)$ \\\\\n\\midrule\n"
        + "\n".join(rows)
        + "\n\\bottomrule\n\\end{tabular}\n"
    )


def fidelity_table(data: dict[str, Any]) -> str:
    """Per scheduler (rows) and scenario (columns): the relative error of the simulated mean and
    p99 latency against the measured ones over the valid runs (%; bold: both within the goal;
    ``sat.``: a saturated cell, ``n.v.``: no valid run), and per scenario whether the ranking by
    cost holds (Kendall's tau)."""
    _checks(data)
    scenarios = list(data["scenarios"])
    cells = {(c["scenario"], c["agent"]): c["checks"] for c in data["cells"]}
    rows = []
    for agent in data["agents"]:
        out = []
        for scen in scenarios:
            checks = cells.get((scen, agent))
            if checks is None:
                out.append("--")
                continue
            comp = checks["comparison_valid"]
            if checks["saturated"]:
                out.append("sat.")
                continue
            if comp is None:
                out.append("n.v.")
                continue
            metrics = comp["metrics"]
            text = "/".join(
                fpct(metrics[m]["error"], 0, sign=True) for m in ("latency_mean_ms", "latency_p99_ms")
            )
            out.append(f"\\textbf{{{text}}}" if comp["within_goal"] else text)
        rows.append(f"{_agent_label(agent)} & " + " & ".join(out) + " \\\\")
    taus = {r["scenario"]: r for r in _cost_ranks(data)}
    tau_cells = []
    for scen in scenarios:
        r = taus.get(scen)
        if r is None:
            tau_cells.append("--")
            continue
        mark = "" if r["simulated"] == r["measured"] else "$^\\ast$"
        tau_cells.append(fnum(r["kendall_tau"], 2) + mark)
    heads = []
    for scen in scenarios:
        entry = data["scenarios"][scen]
        process = entry["arrivals"]["process"]
        load = 100 * entry["arrivals"]["rate_per_s"] / data["capacity_per_s"]
        heads.append(f"\\makecell{{{'Poisson' if process == 'poisson' else process}\\\\{load:.0f}\\%}}")
    return (
        table_header(SIM_TO_REAL, "error of the simulated mean/p99 latency against the measured (%)")
        + f"\\begin{{tabular}}{{@{{}}l {' '.join('r' for _ in scenarios)}@{{}}}}\n\\toprule\n"
        + "scheduler & "
        + " & ".join(heads)
        + " \\\\\n\\midrule\n"
        + "\n".join(rows)
        + "\n\\midrule\ncost rank: Kendall $\\tau$ & "
        + " & ".join(tau_cells)
        + " \\\\\n\\bottomrule\n\\end{tabular}\n"
    )
