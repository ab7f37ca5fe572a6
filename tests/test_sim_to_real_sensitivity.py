"""benchmarks/sim_to_real_sensitivity.py: the timing variants, the elasticity and the script on a
small results file of the sim-to-real study's shape."""

from __future__ import annotations

import json

import pytest

from batchenv.scenarios import load_scenario
from batchenv.timing import ServiceTable
from benchmarks import sim_to_real_sensitivity as sens


def test_scaled_timing_scales_inference_and_adds_the_overhead_to_every_batch() -> None:
    config = load_scenario("default")
    world = sens.scaled_timing(config, 1.05, 0.2)
    base, varied = ServiceTable(config).service_ms, ServiceTable(world).service_ms
    for m, model in enumerate(config.models):
        for i, size in enumerate(config.timing.batch_sizes):
            inference = model.inference_ms[i]
            assert varied[m, size] == pytest.approx(base[m, size] + 0.05 * inference + 0.2)


def test_elasticity_uses_the_nearest_symmetric_pair_and_none_without_one() -> None:
    change = {
        "x0.98": {"latency_mean_ms": -0.1, "latency_p99_ms": -0.2},
        "x1.02": {"latency_mean_ms": 0.1, "latency_p99_ms": 0.3},
        "x0.9": {"latency_mean_ms": -9.0, "latency_p99_ms": -9.0},
        "x1.1": {"latency_mean_ms": 9.0, "latency_p99_ms": 9.0},
    }
    got = sens.latency_elasticity(change, [0.9, 0.98, 1.02, 1.1])
    assert got == pytest.approx({"latency_mean_ms": 5.0, "latency_p99_ms": 12.5})
    assert sens.latency_elasticity(change, [0.98, 1.1]) is None


def _results_file(tmp_path, spec: str, load: float) -> str:
    """A results file of the study's shape: one Poisson cell at ``load`` of the default system."""
    config = load_scenario("default")
    cell = {
        "scenario": f"poisson_{round(100 * load)}pct",
        "agent": "timeout (tuned)",
        "spec": spec,
        "server_config": f"poisson_{round(100 * load)}pct",
        "checks": {
            "saturated": False,
            "comparison_valid": {
                "metrics": {"latency_mean_ms": {"error": 0.3}, "latency_p99_ms": {"error": 0.5}}
            },
        },
        "service_check": [
            {"LLM-3": {"batches": 10, "measured_mean_ms": 10.2, "table_mean_ms": 10.0}},
            {"LLM-3": {"batches": 10, "measured_mean_ms": 10.8, "table_mean_ms": 10.0}},
        ],
    }
    data = {
        "calibrated_config": config.to_dict(),
        "settings": {"loads": [load], "horizon_s": 3.0, "trace_load": 0.0},
        "cells": [cell],
    }
    path = tmp_path / "sim_to_real.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_near_saturation_a_slower_server_lengthens_the_predicted_latencies(tmp_path) -> None:
    results = _results_file(tmp_path, "timeout(B=4,T=2,model=LLM-3)", 0.9)
    out = tmp_path / "sens.md"
    assert sens.main(["--results", results, "--seeds", "0-1", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    (cell,) = data["cells"]
    assert data["variants"] == ["table", "x0.98", "x1.02", "x1.05", "+0.15 ms", "+0.3 ms"]
    assert cell["change"]["x1.05"]["latency_mean_ms"] > cell["change"]["x1.02"]["latency_mean_ms"] > 0
    assert cell["change"]["x0.98"]["latency_mean_ms"] < 0
    assert cell["elasticity"]["latency_mean_ms"] > 1.0
    assert cell["measured"]["service_ratio_range"] == pytest.approx([1.02, 1.08])
    assert cell["measured"]["error"]["latency_p99_ms"] == 0.5
    text = out.read_text()
    assert "| poisson_90pct | timeout (tuned) |" in text
    assert "+30.0%, +50.0%" in text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--scales", "1.02,abc", "--scales: expected comma-separated numbers"),
        ("--scales", "3", "--scales: every value must be in [0.5, 2]"),
        ("--overheads-ms", "-1", "--overheads-ms: every value must be in [0, 10]"),
        ("--seeds", "x", "--seeds:"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(tmp_path, capsys, flag, value, message) -> None:
    results = _results_file(tmp_path, "greedy", 0.3)
    with pytest.raises(SystemExit) as exc:
        sens.main(["--results", results, flag, value, "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"settings": {}})])
def test_a_file_that_is_not_the_study_results_is_refused(tmp_path, capsys, content) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SystemExit):
        sens.main(["--results", str(path), "--out", str(tmp_path / "x.md")])
    assert "--results: not a sim_to_real.py results file" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_the_committed_sensitivity_follows_the_committed_study() -> None:
    """docs/results/sim_to_real_sensitivity.json quotes the study's measured errors and service
    ratios: after a new sim_to_real run, it must be made again (docs/design.md)."""
    from batchenv.fileio import json_safe

    study = json.loads((sens.DEFAULT_RESULTS).read_text())
    committed = json.loads(sens.DEFAULT_OUT.with_suffix(".json").read_text())
    assert [(c["scenario"], c["agent"], c["spec"]) for c in committed["cells"]] == [
        (c["scenario"], c["agent"], c["spec"]) for c in study["cells"]
    ]
    for cell, mine in zip(study["cells"], committed["cells"], strict=True):
        assert json_safe(sens.measured_reference(cell)) == mine["measured"]
