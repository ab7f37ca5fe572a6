"""The sim-to-real benchmark (benchmarks/sim_to_real.py and benchmarks/sim_to_real_parts/): the
validity gate, saturated cells, the flags, the recorded-arrivals simulation, the exit code on
server errors, the command line's up-front checks, the committed report rendered from its JSON,
and a clean stop on SIGTERM."""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.registry import make_agent
from batchenv.fileio import json_safe
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate
from benchmarks import sim_to_real
from benchmarks.sim_to_real_parts import checks, prepare, report, tables
from benchmarks.sim_to_real_parts.checks import MAX_SEND_LAG_P99_MS, assess, failures, nan_for_none
from benchmarks.sim_to_real_parts.runs import simulate_recorded
from serving.process import child_environment
from serving.workload import episode_arrivals_s

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "docs" / "results" / "sim_to_real.json"


# ---------------------------------------------------------------------------- synthetic results
def _metrics(mean: float, p99: float, drop_rate: float = 0.0) -> dict[str, Any]:
    return {
        "latency_mean_ms": mean,
        "latency_p50_ms": mean,
        "latency_p99_ms": p99,
        "throughput_per_s": 100.0,
        "cost_per_request": 0.1,
        "mean_batch_size": 4.0,
        "utilisation": 0.5,
        "drop_rate": drop_rate,
        "model_mix": {"LLM-1": 0.0, "LLM-2": 0.0, "LLM-3": 1.0},
    }


def _run(seed: int, repeat: int, lag_ms: float, mean: float, p99: float, **extra: Any) -> dict[str, Any]:
    client = {
        "n_sent": 1000,
        "n_429": 0,
        "n_503": 0,
        "n_other_status": 0,
        "n_unanswered": 0,
        "n_after_horizon": extra.pop("after", 0),
        "send_lag_ms_p99": lag_ms,
        "http_overhead_ms_mean": 1.0,
        "http_overhead_ms_p99": 2.0,
    }
    return {
        "seed": seed,
        "repeat": repeat,
        "metrics": _metrics(mean, p99, extra.pop("drop_rate", 0.0)),
        "client": client,
        **extra,
    }


def _cell(
    scenario: str, agent: str, runs: list[dict[str, Any]], sim: dict[int, tuple[float, ...]], **kw: Any
):
    """A cell in its JSON form; ``sim``: per seed (mean, p99) or (mean, p99, drop rate)."""
    from serving.fidelity import compare_cell

    simulated = {
        s: _metrics(v[0], v[1], v[2] if len(v) > 2 else kw.get("sim_drop", 0.0)) for s, v in sim.items()
    }
    return {
        "scenario": scenario,
        "agent": agent,
        "spec": agent,
        "comparison": compare_cell(simulated, runs),
        "simulated_per_seed": {str(s): m for s, m in simulated.items()},
        "measured_runs": runs,
        "service_check": kw.get("service", []),
    }


def _data(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cells": cells}


def test_the_gate_keeps_invalid_runs_out_of_the_headline() -> None:
    # seed 0's runs sent on time and agree; seed 1's runs stalled and are 5x off in the p99
    runs = [
        _run(0, 0, 1.0, 10.0, 20.0),
        _run(0, 1, 2.0, 10.2, 20.5),
        _run(1, 0, 150.0, 30.0, 200.0),
        _run(1, 1, 4.9, 12.0, 24.0),
    ]
    cell = _cell("poisson_60pct", "proposed", runs, {0: (10.0, 20.0), 1: (12.0, 24.0)})
    result = assess(_data([cell]), MAX_SEND_LAG_P99_MS)
    check = result["cells"][0]
    assert check["valid"] == [True, True, False, True]
    assert check["valid_runs"] == 3
    valid = check["comparison_valid"]
    # the valid runs against the seeds they replayed: seed 0 twice, seed 1 once, each seed weighing
    # the same on both sides (per run, seed 0 would count twice: (20 + 20.5 + 24) / 3)
    assert valid["metrics"]["latency_p99_ms"]["measured"] == pytest.approx(((20.0 + 20.5) / 2 + 24.0) / 2)
    assert valid["metrics"]["latency_p99_ms"]["simulated"] == pytest.approx((20.0 + 24.0) / 2)
    assert valid["metrics"]["latency_p99_ms"]["paired_error"]["n"] == 3  # paired run by run
    assert valid["within_goal"] and not cell["comparison"]["within_goal"]  # the stalled run spoils all-runs
    summary = result["summary"]
    assert summary["unsaturated"]["cells_within_goal_valid_runs"] == 1
    assert summary["unsaturated"]["cells_within_goal_all_runs"] == 0
    assert summary["valid_runs"] == 3 and summary["runs"] == 4
    # a stricter gate leaves the cell without a valid run
    strict = assess(_data([cell]), 0.5)
    assert strict["cells"][0]["comparison_valid"] is None
    assert strict["summary"]["unsaturated"]["cells_without_valid_run"] == ["poisson_60pct / proposed"]


def test_saturated_cells_are_counted_apart() -> None:
    full = [_run(0, 0, 1.0, 5000.0, 9000.0, drop_rate=0.4)]
    cells = [
        _cell("poisson_90pct", "greedy", full, {0: (5000.0, 9000.0)}, sim_drop=0.4),
        _cell("poisson_90pct", "timeout", [_run(0, 0, 1.0, 10.0, 30.0)], {0: (10.0, 20.0)}),
        # just above the threshold, measured only
        _cell("poisson_90pct", "edge", [_run(0, 0, 1.0, 10.0, 20.0, drop_rate=0.051)], {0: (10.0, 20.0)}),
    ]
    summary = assess(_data(cells))["summary"]
    assert summary["saturated"]["cells"] == 2 and summary["unsaturated"]["cells"] == 1
    assert summary["saturated"]["cells_within_goal_valid_runs"] == 2
    assert summary["unsaturated"]["cells_within_goal_valid_runs"] == 0  # timeout: p99 +50%


def test_saturation_is_judged_on_the_valid_runs() -> None:
    # seed 1's run stalled (invalid) and met a full queue; seed 0's valid run did not
    runs = [_run(0, 0, 1.0, 10.0, 20.0), _run(1, 0, 90.0, 3000.0, 6000.0, drop_rate=0.4)]
    cell = _cell("poisson_60pct", "proposed", runs, {0: (10.0, 20.0, 0.0), 1: (3000.0, 6000.0, 0.4)})
    assert cell["comparison"]["metrics"]["drop_rate"]["measured"] == pytest.approx(0.2)  # every run: 20%
    result = assess(_data([cell]))
    check = result["cells"][0]
    assert not check["saturated"] and check["rejected_share"] == 0.0
    assert check["saturation_judged_on"] == "valid runs"
    assert result["summary"]["unsaturated"]["cells"] == 1 and result["summary"]["saturated"]["cells"] == 0
    # without a valid run, every run decides (and the checks say so)
    strict = assess(_data([cell]), 0.5)["cells"][0]
    assert strict["saturated"] and strict["rejected_share"] == pytest.approx(0.2)
    assert strict["saturation_judged_on"] == "every run"
    assert "saturated (20% rejected) on every run" in "\n".join(tables.fidelity_table([cell], [strict]))


def test_ranks_compare_agents_on_the_seeds_they_all_have_a_valid_run_of() -> None:
    # the PPO-at-90%-load case: one agent's only valid run is of seed 1
    cells = [
        _cell(
            "s",
            "a",
            [_run(0, 0, 1.0, 10.0, 20.0), _run(1, 0, 1.0, 40.0, 80.0)],
            {0: (10.0, 20.0), 1: (40.0, 80.0)},
        ),
        _cell(
            "s",
            "b",
            [_run(0, 0, 50.0, 6.0, 12.0), _run(1, 0, 1.0, 30.0, 60.0)],
            {0: (5.0, 9.0), 1: (30.0, 60.0)},
        ),
    ]
    checks = assess(_data(cells))["cells"]
    # over their own valid seeds a (25 ms, seeds 0-1) would beat b (30 ms, seed 1); on seed 1 b is faster
    lines, records = tables.rank_table(tables.rank_inputs(cells, checks), ["s"], "latency_mean_ms")
    assert [r["seeds"] for r in records] == [[1]]
    assert records[0]["simulated"] == records[0]["measured"] == ["b", "a"]
    assert lines[-1].endswith("| yes | 1.00 | 1 |")
    # every run: both seeds
    _, every = tables.rank_table(tables.rank_inputs(cells), ["s"], "latency_mean_ms")
    assert every[0]["seeds"] == [0, 1]
    # no seed with a valid run of both: not ranked, and the table says why
    cells[0]["measured_runs"][1]["client"]["send_lag_ms_p99"] = 70.0  # a: seed 0 only, b: seed 1 only
    checks = assess(_data(cells))["cells"]
    lines, records = tables.rank_table(tables.rank_inputs(cells, checks), ["s"], "latency_mean_ms")
    assert records == [] and "not ranked: no seed with a valid run of every agent" in lines[-1]


def test_flags_for_service_times_late_arrivals_and_server_errors() -> None:
    service = [{"LLM-3": {"batches": 10, "measured_mean_ms": 8.0, "table_mean_ms": 10.0, "ratio": 0.8}}]
    runs = [_run(0, 0, 1.0, 10.0, 20.0, after=2, server_stats={"n_scheduler_errors": 1, "n_failed": 0})]
    cell = _cell("poisson_30pct", "proposed", runs, {0: (10.0, 20.0)}, service=service)
    result = assess(_data([cell]))
    check = result["cells"][0]
    assert check["service_flagged"] == ["LLM-3"]
    assert check["after_horizon_share"] == pytest.approx(0.002) and check["after_horizon_flagged"]
    assert check["server_counts"]["n_scheduler_errors"] == 1
    problems = failures(result)
    assert len(problems) == 1 and "1 scheduler errors" in problems[0]
    # a results file without the server's counters: none invented, nothing fails
    del runs[0]["server_stats"]
    assert assess(_data([cell]))["cells"][0]["server_counts"] is None
    assert failures(assess(_data([cell]))) == []
    runs[0]["client"]["n_other_status"] = 3
    assert "3 answers with another error status" in failures(assess(_data([cell])))[0]


def test_the_recorded_arrivals_split_distortion_from_model_error() -> None:
    runs = [_run(0, 0, 80.0, 30.0, 200.0, simulated_recorded=_metrics(29.0, 190.0))]
    cell = _cell("poisson_60pct", "proposed", runs, {0: (10.0, 20.0)})
    rec = assess(_data([cell]))["cells"][0]["recorded_all_runs"]
    p99 = rec["latency_p99_ms"]
    assert p99["arrival_distortion"] == pytest.approx(190.0 / 20.0 - 1)
    assert p99["model_error"] == pytest.approx(200.0 / 190.0 - 1)
    assert rec["within_goal"]  # the simulator is right about the server on what it received


@pytest.mark.parametrize("spec", ["greedy", "timeout", "proposed"])
def test_the_simulator_on_the_scheduled_arrivals_as_recorded_is_the_simulator(spec: str) -> None:
    """No distortion: simulating the recorded arrivals gives the seed's own episode."""
    config = load_scenario("default").replace(horizon_s=3.0)
    arrivals = episode_arrivals_s(config, 4, 3.0)
    expected = compute_metrics(simulate(config, make_agent(spec, config, tuned=False), 4)).to_dict()
    got = simulate_recorded(config, make_agent(spec, config, tuned=False), arrivals, 3.0, 100.0)
    assert got == expected


def test_the_capacity_point_is_derived_from_the_table() -> None:
    config = load_scenario("default")
    assert report.capacity_point(config) == ("LLM-3", config.max_batch_size)
    models = list(config.to_dict()["models"])
    fast = copy.deepcopy(models)
    fast[0]["inference_ms"], fast[2]["inference_ms"] = models[2]["inference_ms"], models[0]["inference_ms"]
    swapped = type(config).from_dict({**config.to_dict(), "models": fast})
    assert report.capacity_point(swapped)[0] == "LLM-1"


def test_a_child_keeps_one_thread_whatever_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("MKL_NUM_THREADS", "8")
    env = child_environment()
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert child_environment({"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"  # asked for on purpose


# ---------------------------------------------------------------------------- the committed report
def _committed() -> dict[str, Any]:
    if not RESULTS_JSON.is_file():
        pytest.skip("docs/results/sim_to_real.json is not in this checkout")
    return json.loads(RESULTS_JSON.read_text(encoding="utf-8"))


def test_the_committed_report_is_rendered_from_its_json_with_the_current_checks() -> None:
    data = _committed()
    data["cells"] = nan_for_none(data["cells"])
    # the gate of the checks (the run's own, unless rendered again with another --max-send-lag-ms)
    gate = data["checks"]["max_send_lag_p99_ms"]
    data["settings"]["max_send_lag_ms"] = gate
    committed = RESULTS_JSON.with_suffix(".md").read_text(encoding="utf-8")
    # written by the full run, or rendered again from the JSON (which then says so)
    again = data.get("rendered_by") if "Rendered again" in committed else None
    markdown, assessment = report.render_markdown(
        data, figure_dir="sim_to_real_figures", figure_names=list(report.FIGURES), rendered_by=again
    )
    assert committed == markdown, "rerun: python benchmarks/sim_to_real.py --render-only"
    valid = sum(run["client"]["send_lag_ms_p99"] <= gate for c in data["cells"] for run in c["measured_runs"])
    assert f"{valid} of {sum(len(c['measured_runs']) for c in data['cells'])} runs pass" in markdown
    assert assessment["summary"]["valid_runs"] == valid
    # what the JSON derives from its measurements (the report's macros read its checks) is current
    fresh = copy.deepcopy(data)
    report.derive(fresh, gate)
    stored = json.loads(json.dumps(json_safe(data)))
    assert json.loads(json.dumps(json_safe(fresh))) == stored, (
        "rerun: python benchmarks/sim_to_real.py --render-only"
    )


def test_render_only_writes_the_derived_fields_again_and_keeps_the_measurements(tmp_path: Path) -> None:
    data = _committed()
    stale = copy.deepcopy(data)
    for key in report.DERIVED:
        stale.pop(key, None)
    for cell in stale["cells"]:
        for key in report.DERIVED_PER_CELL:
            cell.pop(key, None)
        cell["comparison"] = {"stale": True}  # a comparison computed by older code
    out = tmp_path / "s2r.md"
    out.with_suffix(".json").write_text(json.dumps(stale), encoding="utf-8")
    assert sim_to_real.main(["--render-only", "--out", str(out)]) == 0
    written = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert written["rendered_by"] == f"python benchmarks/sim_to_real.py --render-only --out {out}"
    # the measurements as they were, the derived fields computed again
    for key in set(data) - {"cells", *report.DERIVED}:
        assert written[key] == data[key], key
    for before, after in zip(data["cells"], written["cells"], strict=True):
        assert {k: v for k, v in after.items() if k not in report.DERIVED_PER_CELL} == {
            k: v for k, v in before.items() if k not in report.DERIVED_PER_CELL
        }
        assert "stale" not in after["comparison"] and "saturation_judged_on" in after["checks"]
    assert written["checks"]["valid_runs"] == sum(c["checks"]["valid_runs"] for c in written["cells"])
    assert {r["runs"] for r in written["ranks"]} == {"valid", "every"}
    assert all(r["seeds"] for r in written["ranks"])
    # at another gate: the checks name it, the run's settings stay its own
    assert sim_to_real.main(["--render-only", "--out", str(out), "--max-send-lag-ms", "2.5"]) == 0
    again = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert again["settings"] == data["settings"] and again["checks"]["max_send_lag_p99_ms"] == 2.5
    assert "at most 2.5 ms late" in out.read_text(encoding="utf-8")
    text = out.read_text(encoding="utf-8")
    runs = [run for cell in data["cells"] for run in cell["measured_runs"]]
    if not all("simulated_recorded" in run for run in runs):
        assert "predates the recorded-arrivals simulation" in text
    if not all("server_stats" in run for run in runs):
        assert "not in this results file (it predates them)" in text.lower()
    record = checks.read_calibration_record(REPO / data["calibration"])
    busy = data.get("calibration_load") or checks.calibration_load(
        record if record and record.get("command") == data["command"] else None
    )
    assert ("Calibrated on a busy machine" in text) is bool(busy["busy"])


# ---------------------------------------------------------------------------- the command line
def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        sim_to_real.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--calibration", "{tmp}/missing.yaml"], "--calibration: no such file"),
        (["--calibration", "{tmp}/name_only.yaml"], "does not state a measured timing table"),
        (["--calibration", "{tmp}/broken.yaml"], "--calibration:"),
        (["--checkpoint", "checkpoints/ppo_defualt.zip"], "--checkpoint: no such file"),
        (["--checkpoint", "optimal"], "optimal needs each scenario's true rate"),
        (["--out", "{tmp}/file/s2r.md"], "is not a folder"),
        (["--out", "{tmp}/s2r.txt"], "--out must be a Markdown file"),
        (["--preliminary"], "would replace the committed results"),
        (["--calibration", "{tmp}/busy.yaml"], "busy machine"),
        (["--max-send-lag-ms", "0"], "--max-send-lag-ms must be in"),
        (["--render-only", "--out", "{tmp}/none.md"], "no results file"),
    ],
)
def test_bad_command_lines_are_one_line_before_any_work(
    flags: list[str],
    words: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    (tmp_path / "file").write_text("x")
    (tmp_path / "name_only.yaml").write_text("name: calibrated\n")
    (tmp_path / "broken.yaml").write_text("timing: [\n")
    _busy_calibration(tmp_path)
    argv = [flag.format(tmp=tmp_path) for flag in flags]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", ""]
    if "--out" not in argv and "--preliminary" not in argv:
        argv += ["--out", str(tmp_path / "out" / "s2r.md")]
    line = _error_line(capsys, argv)
    assert words in line, line


def _busy_calibration(folder: Path) -> Path:
    """A calibrated scenario whose record says it was measured at a load average of 6.4 on 2 CPUs."""
    path = folder / "busy.yaml"
    path.write_text(load_scenario("default").replace(name="calibrated").to_yaml())
    record = {
        "machine": {"cpus": 2, "load_average_1_5_15": [6.4, 7.7, 9.1]},
        "load_average_after": [3.6, 6, 8],
    }
    path.with_suffix(".json").write_text(json.dumps(record))
    return path


def test_a_busy_calibration_is_accepted_when_asked_and_a_preliminary_run_kept_out_of_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    calibration = ["--calibration", str(_busy_calibration(tmp_path)), "--allow-busy-calibration"]
    args = sim_to_real._parse([*calibration, "--checkpoint", "", "--out", str(tmp_path / "s2r.md")])
    assert args.allow_busy_calibration
    args = sim_to_real._parse(["--preliminary", "--allow-docs-results", "--checkpoint", ""])
    assert args.preliminary


def _calibration_args(tmp_path: Path, **kw: Any) -> argparse.Namespace:
    values = {
        "calibration": None,
        "allow_busy_calibration": False,
        "calibration_reps": 2,
        "calibration_statistic": "mean",
    }
    return argparse.Namespace(**{**values, **kw})


def test_no_calibration_starts_on_a_busy_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = os.cpu_count() or 1
    monkeypatch.setattr(prepare.os, "getloadavg", lambda: (cpus * 2.0, 1.0, 1.0))
    import serving.calibrate

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("calibrated on a busy machine")

    monkeypatch.setattr(serving.calibrate, "calibrate", never)
    with pytest.raises(prepare.SetupError, match="busy"):
        prepare.calibrated_system(_calibration_args(tmp_path), "cmd", tmp_path / "s2r.md")


def test_a_calibration_is_written_as_a_yaml_and_json_pair_with_its_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.calibrate

    monkeypatch.setattr(prepare.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    base = load_scenario("default")
    record = {
        "machine": {
            "cpus": 2,
            "load_average_1_5_15": [0.2, 0.2, 0.2],
            "platform": "p",
            "torch": "t",
            "torch_threads": 1,
        },
        "load_average_after": [1.1, 0.5, 0.3],
        "reps": 2,
        "warmup_reps": 3,
        "models": {"LLM-1": "1x8", "LLM-2": "1x8", "LLM-3": "1x8"},
        "derivation": {"statistic": "mean"},
        "capacity_per_s": 1.0,
    }
    monkeypatch.setattr(
        serving.calibrate, "calibrate", lambda *a, **k: (base.replace(name="calibrated"), record)
    )
    config, path, written = prepare.calibrated_system(_calibration_args(tmp_path), "cmd", tmp_path / "s2r.md")
    assert path == tmp_path / "s2r_calibrated.yaml" and path.is_file()
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk["command"] == written["command"] == "cmd"
    assert not checks.calibration_load(on_disk)["busy"]  # 1.1 after, one busy thread of its own
    assert config.name == "calibrated"


# ---------------------------------------------------------------------------- the exit code
def test_scheduler_errors_make_the_benchmark_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole main with the real server and the tuning replaced: a run with a scheduler error
    is recorded, rendered and fails the run."""
    pytest.importorskip("aiohttp", reason="the server's [serve] extra is not installed")
    from benchmarks.sim_to_real_parts import runs

    calibration = tmp_path / "cal.yaml"
    calibration.write_text(load_scenario("default").replace(name="calibrated").to_yaml())

    def specs(scenarios: dict[str, Any], args: Any, notes: list[str]) -> dict[str, dict[str, str]]:
        return {"greedy": dict.fromkeys(scenarios, "greedy(model=LLM-3)")}

    def measure(cells: Any, scenarios: Any, label: str, spec: str, names: list[str], *rest: Any) -> int:
        for name in names:
            cell = cells[(name, label)]
            for seed, simulated in cell.simulated.items():
                run = _run(seed, 0, 1.0, simulated["latency_mean_ms"], simulated["latency_p99_ms"])
                run["metrics"] = dict(simulated)
                run["server_stats"] = {"n_scheduler_errors": 2, "n_failed": 0, "n_refused": 0, "n_forced": 0}
                cell.measured.append(run)
                cell.real_latency_ms.append(np.array([1.0, 2.0]))
                cell.service_check.append({})
        return 0

    monkeypatch.setattr(sim_to_real, "agent_specs", specs)
    monkeypatch.setattr(sim_to_real, "measure_group", measure)
    monkeypatch.setattr(runs, "measure_group", measure)
    out = tmp_path / "s2r.md"
    argv = ["--calibration", str(calibration), "--checkpoint", "", "--loads", "0.3", "--trace-load", "0"]
    argv += ["--seeds", "0", "--horizon-s", "1", "--out", str(out)]
    assert sim_to_real.main(argv) == 1
    err = capsys.readouterr().err
    assert "the benchmark failed" in err and "2 scheduler errors" in err
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["cells"][0]["measured_runs"][0]["server_stats"]["n_scheduler_errors"] == 2
    assert data["checks"]["server_counts"]["n_scheduler_errors"] == 2
    assert "| poisson_30pct | greedy | 2 | 0 | 0 | 0 |" in out.read_text()
    assert data["summary"]["cells"] == 1  # the report's keys are still there


# ---------------------------------------------------------------------------- SIGTERM
STOPPED_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {repo!r})
    from benchmarks.sim_to_real_parts.lifecycle import guarded
    from serving.process import ServerProcess

    def body(work):
        args = ["--scenario", "default", "--agent", "greedy", "--models", "2x64,2x64,2x64"]
        args += ["--warmup-reps", "0"]
        with ServerProcess(args, log_dir=work, start_timeout_s=120) as server:
            print(json.dumps({{"pid": server.process.pid, "work": str(work)}}), flush=True)
            time.sleep(300)
        return 0

    sys.exit(guarded(body))
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: a closed terminal
def test_a_stop_signal_stops_the_servers_and_removes_the_work_folder(tmp_path: Path, stop: int) -> None:
    pytest.importorskip("aiohttp", reason="the server's [serve] extra is not installed")
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_SCRIPT.format(repo=str(REPO)))
    child = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        started = json.loads(line)
        server_pid, work = started["pid"], Path(started["work"])
        assert _alive(server_pid) and work.is_dir()
        child.send_signal(stop)
        assert child.wait(timeout=60) == 128 + stop
        deadline = time.monotonic() + 10
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server_pid), "the server outlived the benchmark"
        assert not work.exists(), "the work folder was left behind"
        assert f"stopped by {signal.Signals(stop).name}" in (child.stderr.read() if child.stderr else "")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
