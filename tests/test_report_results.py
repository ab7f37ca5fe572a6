"""The report's newer sources: the sim-to-real study, the robust scheduler and the trace table,
and the readability of the verification table (no LaTeX needed)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from apps.report import sources as src
from apps.report.formatting import fnum, fpct
from apps.report.macros import Macros
from apps.report.sim_to_real import calibrated_table, fidelity_table, sensitivity_numbers, sim_to_real_numbers
from apps.report.tables import verification_table
from apps.report.traces import (
    all_traces_numbers,
    azure_hour_numbers,
    azure_lmm_numbers,
    guard_test_numbers,
    replay_numbers,
    robust_numbers,
    trace_cells,
    trace_numbers,
    trace_results_numbers,
    trace_table,
)

REPO = Path(__file__).resolve().parents[1]


def _json(rel: str) -> Any:
    path = REPO / rel
    if not path.is_file():
        pytest.skip(f"{rel} is not in this checkout")
    return json.loads(path.read_text(encoding="utf-8"))


def test_sim_to_real_macros_count_what_the_cells_say() -> None:
    data, calibration = _json(src.SIM_TO_REAL), _json(src.SIM_TO_REAL_CALIBRATION)
    if calibration.get("command") != data.get("command"):
        calibration = None
    m = Macros()
    sim_to_real_numbers(m, data, calibration)
    # the headline counts the unsaturated cells over their valid runs (the load generator's gate)
    judged = [
        c["checks"] for c in data["cells"] if not c["checks"]["saturated"] and c["checks"]["valid_runs"]
    ]
    within = sum(c["comparison_valid"]["within_goal"] for c in judged)
    assert m.value("resSrCellsWithin") == str(within)
    assert m.value("resSrCells") == str(len(judged))
    assert m.value("resSrSatCells") == str(sum(c["checks"]["saturated"] for c in data["cells"]))
    assert m.value("resSrValidRuns") == str(sum(c["checks"]["valid_runs"] for c in data["cells"]))
    # ranks on the valid runs: the "Do the ranks hold?" table of sim_to_real.md, scenario by scenario
    markdown = (REPO / src.SIM_TO_REAL).with_suffix(".md").read_text(encoding="utf-8")
    section = markdown.split("Valid runs, by cost per request")[1].split("Valid runs, by mean latency")[0]
    verdicts = re.findall(r"^\| \S+ \| [^|]+ \| [^|]+ \| (yes|no) \|", section, re.M)
    hold = verdicts.count("yes")
    assert m.value("resSrRanksHold") == str(hold)
    assert m.value("resSrRankScenarios") == str(len(verdicts))
    ranks = verdicts
    assert m.flags["simRealPreliminary"][0] is bool(data["preliminary"])
    assert m.flags["simRealRanksHold"][0] is (hold == len(ranks))
    table = fidelity_table(data)
    assert table.count("\\textbf{") == within  # the cells within the goal, and only those
    assert len(re.findall(r"\\\\$", table, re.M)) == len(data["agents"]) + 2  # head, agents, tau
    assert table.count("sat.") == sum(c["checks"]["saturated"] for c in data["cells"])


def _no_valid_run(cell: dict[str, Any], keep: int | None = None) -> None:
    """Make every run of ``cell`` invalid but seed ``keep``'s in its checks (what the report reads)."""
    cell["checks"]["valid"] = [run["seed"] == keep for run in cell["measured_runs"]]
    cell["checks"]["valid_runs"] = sum(cell["checks"]["valid"])
    if keep is None:
        cell["checks"]["comparison_valid"] = None


def test_sim_to_real_claims_no_ranking_when_no_workload_has_a_valid_run_of_every_agent() -> None:
    data = json.loads(json.dumps(_json(src.SIM_TO_REAL)))
    for cell in data["cells"]:
        if cell["agent"] == next(iter(data["agents"])):
            _no_valid_run(cell)  # no valid run of that agent anywhere
    m = Macros()
    sim_to_real_numbers(m, data, None)
    assert m.value("resSrRankScenarios") == "0" and m.value("resSrTauMin") == "n/a"
    assert m.flags["simRealRanksHold"][0] is False


def test_sim_to_real_ranks_a_workload_only_on_seeds_every_agent_has_a_valid_run_of() -> None:
    data = json.loads(json.dumps(_json(src.SIM_TO_REAL)))
    m = Macros()
    sim_to_real_numbers(m, data, None)
    ranked = int(m.value("resSrRankScenarios"))
    unranked = fidelity_table(data).split("Kendall")[1].count("--")
    if not ranked:
        pytest.skip("no workload of the committed results is ranked")
    # in a ranked workload, one agent keeps only seed 0's valid runs and another only seed 1's:
    # each has a valid run, but not on the same arrivals, so the workload is no longer ranked
    scenario = next(
        s
        for s in data["scenarios"]
        if all(c["checks"]["valid_runs"] for c in data["cells"] if c["scenario"] == s)
    )
    first, second = [c for c in data["cells"] if c["scenario"] == scenario][:2]
    seeds = sorted({run["seed"] for run in first["measured_runs"]})
    if len(seeds) < 2:
        pytest.skip("the committed results have one seed")
    _no_valid_run(first, keep=seeds[0])
    _no_valid_run(second, keep=seeds[1])
    m = Macros()
    sim_to_real_numbers(m, data, None)
    assert m.value("resSrRankScenarios") == str(ranked - 1)
    assert fidelity_table(data).split("Kendall")[1].count("--") == unranked + 1  # its tau is not quoted


def test_sensitivity_macros_are_the_high_load_unsaturated_cells_and_follow_the_study() -> None:
    data, sensitivity = _json(src.SIM_TO_REAL), _json(src.SIM_TO_REAL_SENSITIVITY)
    m = Macros()
    sensitivity_numbers(m, sensitivity, data)
    high = f"poisson_{round(100 * max(data['settings']['loads']))}pct"
    changes = [
        100 * c["change"]["x1.02"]["latency_mean_ms"]
        for c in sensitivity["cells"]
        if c["scenario"] == high and not c["measured"]["saturated"]
    ]
    assert changes and m.value("resSrSensStepPct") == "2"
    assert m.value("resSrSensMeanTwoMin") == fnum(min(changes), 1)
    assert m.value("resSrSensMeanTwoMax") == fnum(max(changes), 1)
    other = copy.deepcopy(sensitivity)
    other["cells"][0]["spec"] = "greedy(model=LLM-2)"
    with pytest.raises(src.BuildError, match="other sim-to-real results"):
        sensitivity_numbers(Macros(), other, data)


def test_sim_to_real_refuses_results_without_checks() -> None:
    data = dict(_json(src.SIM_TO_REAL))
    data.pop("checks", None)
    with pytest.raises(src.BuildError, match="predates the validity gate"):
        sim_to_real_numbers(Macros(), data, None)


def test_sim_to_real_refuses_a_calibration_from_another_run() -> None:
    data = _json(src.SIM_TO_REAL)
    other = {"command": "python benchmarks/sim_to_real.py --something-else", "reps": 1, "stages": {}}
    with pytest.raises(src.BuildError, match="different runs"):
        sim_to_real_numbers(Macros(), data, other)
    with pytest.raises(src.BuildError, match="different runs"):
        calibrated_table(data, other)


def test_calibrated_table_has_a_row_per_batch_size_and_the_intervals() -> None:
    data, calibration = _json(src.SIM_TO_REAL), _json(src.SIM_TO_REAL_CALIBRATION)
    if calibration.get("command") != data.get("command"):
        pytest.skip("the committed calibration and fidelity files come from different runs")
    table = calibrated_table(data, calibration)
    config = data["calibrated_config"]
    sizes = [b for b in config["timing"]["batch_sizes"] if b <= config["max_batch_size"]]
    assert table.count("$\\pm$") == len(sizes) * len(config["models"])
    first = config["models"][0]["inference_ms"][0]
    assert f"\n1 & {first:.1f}\\,$\\pm$" in table


def _as_trace_results(robust: dict[str, Any]) -> dict[str, Any]:
    """robust.json's trace part in trace_results.json's shape, with a made-up hindsight gap and a
    checkpoint that loses on cost everywhere."""
    out: dict[str, Any] = {"command": "test", "settings": {"seeds": list(range(10)), "horizon_s": 60.0}}
    for name, entry in robust["traces"].items():
        agents = {}
        for agent, s in entry["agents"].items():
            agents[agent] = {
                **s,
                "gap_vs_timeout": entry["gap_vs_timeout"][agent],
                "p99_minus_timeout_ms": entry["p99_minus_timeout_ms"][agent],
                "gap_vs_hindsight": [0.05, 0.01],
            }
        ppo = copy.deepcopy(agents["timeout"])
        ppo.update(
            gap_vs_timeout=[0.02, 0.005], p99_minus_timeout_ms=[3.0, 1.0], gap_vs_hindsight=[0.07, 0.01]
        )
        agents["ppo_default"] = ppo
        agents["optimal"] = {"not_applicable": "optimal needs Poisson arrivals; this is a trace"}
        out[name] = {"tuned": entry["tuned"], "agents": agents}
    return out


def test_trace_table_prefers_trace_results_and_marks_verdicts() -> None:
    robust = _json(src.ROBUST)
    results = _as_trace_results(robust)
    cells = trace_cells(results, from_trace_results=True)
    assert all("optimal" not in row for row in cells.values())  # not applicable: left out
    table = trace_table(cells, src.TRACE_RESULTS)
    assert "bound" in table and "PPO" in table
    n = len(robust["traces"])
    assert table.count("+2.00$^\\dagger$") == n  # PPO loses on cost on every trace
    m = Macros()
    trace_results_numbers(m, results)
    trace_numbers(m, cells, src.TRACE_RESULTS)
    assert m.value("resRbCostLosesPpo") == str(n)
    assert m.results["resRbCostLosesPpo"].source == src.TRACE_RESULTS
    assert m.value("resTrBoundMaxRobust") == "+5.0"
    # robust.json alone: the same verdicts for robust as computed from its intervals, and the
    # agents it does not have are pending
    m = Macros()
    robust_numbers(m, robust)
    trace_numbers(m, trace_cells(robust, from_trace_results=False), src.ROBUST)
    loses = sum(
        e["gap_vs_timeout"]["robust"][0] - e["gap_vs_timeout"]["robust"][1] > 0
        for e in robust["traces"].values()
    )
    assert m.value("resRbCostLosesRobust") == str(loses)
    assert m.flags["robustNeverCostlier"][0] is (loses == 0)
    assert m.value("resRbCostLosesPpo") == src.PENDING
    closure = robust["mmpp"]["agents"]["robust"]["closure"]
    assert m.value("resRbClosureRobust") == f"{100 * closure:.0f}"
    low, high = robust["mmpp"]["agents"]["robust"]["closure_interval"]
    assert m.value("resRbClosureRobustLow") == f"{100 * low:.0f}"
    assert m.value("resRbClosureRobustHigh") == f"{100 * high:.0f}"
    assert float(m.value("resRbClosureRobustLow")) <= float(m.value("resRbClosureRobust"))


def test_verification_table_is_readable() -> None:
    table = verification_table(_json(src.VERIFICATION))
    rows = [line.split(" & ")[0] for line in table.splitlines() if " & " in line]
    assert not [r for r in rows if "/" in r or ".zip" in r], rows  # no file paths as row names
    labels = re.findall(r"\{\((\w)\)", table)
    assert labels == [chr(ord("a") + i) for i in range(len(labels))]  # (a), (b), ... no letter skipped


def test_frontier_figure_is_drawn_when_the_study_is_committed(tmp_path: Path) -> None:
    from apps.report import build as report_build
    from apps.report.figures import draw

    for rel in (src.SUITE, src.BENCH, src.DESIGN, src.ENV_SPEED, src.ROBUST, src.CONFIG, *src.UPPAAL_FILES):
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO / rel)
    assert "fig_frontiers.pdf" not in report_build.compute(tmp_path).figures

    def point(family: str, p99: float, quality: float, on: bool) -> dict[str, Any]:
        return {
            "family": family,
            "label": "x",
            "param": 1.0,
            "latency_mean_ms": p99 / 2,
            "latency_p99_ms": p99,
            "mean_quality": quality,
            "mean_quality_ci95": 0.001,
            "frontier_latency_mean_ms": on,
            "frontier_latency_p99_ms": on,
        }

    points = [
        point("timeout", 90.0, 0.92, False),
        point("proposed", 80.0, 0.95, True),
        point("optimal", 70.0, 0.93, True),
        point("ppo_default", 120.0, 0.9, False),
    ]
    study = {"scenarios": {"bursty": {"points": points, "families": {}}, "other": {"points": points}}}
    (tmp_path / src.FRONTIERS).write_text(json.dumps(study))
    bd = report_build.compute(tmp_path)
    assert bd.present[src.FRONTIERS] is True
    data = bd.figures["fig_frontiers.pdf"]
    assert list(data) == ["bursty"]  # the preferred scenarios the study ran
    assert data["bursty"]["proposed"] == [[80.0, 0.95, True]]
    draw("fig_frontiers.pdf", data, tmp_path / "f.pdf")
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"


def test_sensitivity_study_counts_the_settings_where_each_conclusion_holds() -> None:
    from apps.report.objectives import sensitivity_numbers

    def setting(gap: float, c1: bool, c2: str, c3: bool, higher: int) -> dict[str, Any]:
        return {
            "C1": {"max_gap": gap, "holds": c1},
            "C2": {"verdict": c2, "higher": higher},
            "C3": {"holds": c3},
            "C4": {"holds": True},
        }

    m = Macros()
    sensitivity_numbers(
        m,
        {
            "settings": {"seeds": [0, 1, 2], "horizon_s": 10.0},
            "conclusions": {
                "w=0.1": setting(0.004, True, "holds", False, 0),
                "w=0.3": setting(0.002, True, "level (no significant difference)", False, 0),
                "w=10": setting(0.03, False, "reverses", True, 2),
            },
        },
    )
    values = {k: r.value for k, r in m.results.items()}
    assert values["resObjSettings"] == "3" and values["resObjCOneHolds"] == "2"
    assert values["resObjCOneWorst"] == "+3.00"
    assert values["resObjCTwoHolds"] == "1" and values["resObjCTwoReverses"] == "1"
    # a level setting is never significantly dearer without the conclusion holding
    assert values["resObjNeverDearer"] == "2"
    assert values["resObjCThreeHolds"] == "1" and values["resObjCFourHolds"] == "3"
    assert values["resObjSeeds"] == "3" and values["resObjHorizonS"] == "10"
    m = Macros()
    sensitivity_numbers(m, None)
    assert m.value("resObjSettings") == src.PENDING


def test_guard_test_macros_pick_the_closest_setting_within_the_goal() -> None:
    data = _json(src.GUARD_TEST)
    m = Macros()
    guard_test_numbers(m, data)
    rows = data["guard_test"]["candidates"].values()
    within = [row for row in rows if row["max_poisson_gap"] <= data["guard_test"]["goal_poisson_gap"]]
    closest = min(row["tests"]["azure_trace_30"]["p99"][0] for row in within)
    assert m.value("resGtClosestMs") == fnum(closest, 1, sign=True)
    assert m.value("resGtGoal") == "0.5"
    assert m.flags["guardTestNoneMatches"][0] == (not data["guard_test"]["within_goal_and_matching"])


def test_replay_macros_read_the_default_robust_on_fresh_poisson_and_the_surrogates() -> None:
    data = _json(src.REPLAY)
    m = Macros()
    replay_numbers(m, data)
    robust = data["replay"]["traces"]["azure_trace_30"]["candidates"]["robust"]
    p99s = [c["p99"][0] for c in robust["surrogates"]]
    assert m.value("resRpPoisMs") == fnum(robust["poisson"]["p99"][0], 1, sign=True)
    assert m.value("resRpSurrogates") == str(len(p99s))
    assert m.value("resRpMinMs") == fnum(min(p99s), 1, sign=True)
    assert m.value("resRpMaxMs") == fnum(max(p99s), 1, sign=True)
    assert m.value("resRpMinMs").startswith(r"\ensuremath{-}")  # a minus sign: the spread reaches below 0
    assert m.value("resRpLoses") == str(sum(c["p99_verdict"] == "loses" for c in robust["surrogates"]))
    fresh = [t["candidates"]["robust"]["poisson"]["p99_verdict"] for t in data["replay"]["traces"].values()]
    assert m.value("resRpTraces") == str(len(fresh)) and m.value("resRpPoisLoses") == str(
        fresh.count("loses")
    )
    m = Macros()
    replay_numbers(m, None)
    assert m.value("resRpPoisMs") == src.PENDING


def test_azure_hour_macros_read_robust_and_count_the_loads_it_does_not_lose() -> None:
    data = _json(src.AZURE_HOUR)
    m = Macros()
    azure_hour_numbers(m, data)
    cells = trace_cells(data, from_trace_results=True)
    robust = cells["azure_conv_hour_30"]["robust"]
    assert m.value("resHourLoadThirty") == "30" and m.value("resHourLoadSixty") == "60"
    assert m.value("resHourGapRobustThirty") == fpct(robust.gap[0], 2, sign=True)
    assert m.value("resHourScenarios") == str(len(cells)) == "3"
    not_losing = [
        name
        for name, row in cells.items()
        if row["robust"].verdict("gap") != "loses" and row["robust"].verdict("d99") != "loses"
    ]
    assert m.value("resHourRobustMatches") == str(len(not_losing))
    # a scenario where robust's p99 interval lies above 0 is no longer counted
    worse = copy.deepcopy(data)
    worse["azure_conv_hour_60"]["agents"]["robust"]["p99_minus_timeout_ms"] = [5.0, 1.0]
    m = Macros()
    azure_hour_numbers(m, worse)
    assert m.value("resHourRobustMatches") == str(len(not_losing) - 1)
    m = Macros()
    azure_hour_numbers(m, None)
    assert m.value("resHourRobustMatches") == src.PENDING


def test_azure_lmm_macros_read_robust_at_both_loads_and_count_its_p99_losses() -> None:
    data = _json(src.AZURE_LMM)
    m = Macros()
    azure_lmm_numbers(m, data)
    cells = trace_cells(data, from_trace_results=True)
    for tok, name in (("Thirty", "azure_lmm_30"), ("Sixty", "azure_lmm_60")):
        robust = cells[name]["robust"]
        assert m.value(f"resLmmGapRobust{tok}") == fpct(robust.gap[0], 2, sign=True)
        assert m.value(f"resLmmDTailRobust{tok}") == fnum(robust.d99[0], 1, sign=True)
    tail_losses = sum(row["robust"].verdict("d99") == "loses" for row in cells.values())
    assert m.value("resLmmTailLosesRobust") == str(tail_losses)
    assert m.value("resLmmScenarios") == str(len(cells)) == "3"
    m = Macros()
    azure_lmm_numbers(m, None)
    assert m.value("resLmmGapRobustThirty") == src.PENDING


def test_all_traces_macros_count_robust_losses_over_every_half() -> None:
    data = _json(src.TRACE_RESULTS_ALL)
    m = Macros()
    all_traces_numbers(m, data)
    robust = [row["robust"] for row in trace_cells(data, from_trace_results=True).values()]
    assert m.value("resAllScenarios") == str(len(robust))
    assert m.value("resAllCostLosesRobust") == str(sum(c.verdict("gap") == "loses" for c in robust))
    assert m.value("resAllTailLosesRobust") == str(sum(c.verdict("d99") == "loses" for c in robust))
    # the goal scenarios are a subset: at least as many p99 losses as in trace_results.json
    goal = [row["robust"] for row in trace_cells(_json(src.TRACE_RESULTS), from_trace_results=True).values()]
    assert int(m.value("resAllTailLosesRobust")) >= sum(c.verdict("d99") == "loses" for c in goal)
