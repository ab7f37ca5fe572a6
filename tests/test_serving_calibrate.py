"""Calibration (serving.calibrate) and the sim-to-real comparisons (serving.fidelity)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from batchenv.config import SystemConfig
from batchenv.fileio import write_files_atomic
from batchenv.safe_yaml import comment_block
from batchenv.scenarios import load_scenario
from batchenv.timing import service_ms
from serving.calibrate import STAGES, calibrated_config, non_decreasing
from serving.calibrate import main as calibrate_main
from serving.fidelity import (
    common_seeds,
    compare_cell,
    kendall_tau,
    rank_agents,
    rank_scenario,
    relative_error,
)


def _samples(config: SystemConfig) -> dict[tuple[int, int], dict[str, list[float]]]:
    """Synthetic stage times (s): inference 1 ms * (m + 1) * b, pre 0.1 ms * b, post 0.05 ms * b,
    comm 0.01 ms, hand-offs 0.2 and 0.3 ms; two samples per cell around those means."""
    out = {}
    for m in range(config.n_models):
        for b in config.timing.batch_sizes:
            means = {
                "handoff_in": 0.2e-3,
                "pre": 0.1e-3 * b,
                "comm": 0.01e-3,
                "inference": 1e-3 * (m + 1) * b,
                "post": 0.05e-3 * b,
                "handoff_out": 0.3e-3,
            }
            means["service"] = sum(means.values())
            out[(m, b)] = {s: [0.9 * means[s], 1.1 * means[s]] for s in STAGES}
    return out


def test_the_table_adds_up_to_the_measured_service_time() -> None:
    base = load_scenario("default")
    samples = _samples(base)
    config, derivation = calibrated_config(base, samples, "measured")
    assert config.name == "measured" and config.qualities == base.qualities  # qualities are not measured
    assert config.timing.t_pre_ms == pytest.approx(0.1 + 0.2)
    assert config.timing.t_post_ms == pytest.approx(0.05 + 0.3)
    for m in range(config.n_models):
        for b in config.timing.batch_sizes:
            expected = 1000.0 * sum(samples[(m, b)]["service"]) / 2
            assert service_ms(config, m, b) == pytest.approx(expected, rel=1e-3)
    assert derivation["made_non_decreasing"] == {
        "comm_ms": [],
        "inference_ms": {n: [] for n in base.model_names},
    }


def test_noisy_cells_are_made_non_decreasing_and_listed() -> None:
    base = load_scenario("default")
    samples = _samples(base)
    samples[(0, 4)]["inference"] = [1e-3, 1e-3]  # 1 ms at b = 4, faster than 2 ms at b = 2: noise
    config, derivation = calibrated_config(base, samples, "measured")
    assert config.models[0].inference_ms[1:3] == (1.5, 1.5)  # averaged
    assert derivation["made_non_decreasing"]["inference_ms"]["LLM-1"] == [2, 4]
    median, _ = calibrated_config(base, samples, "measured", statistic="median")
    assert median.models[0].inference_ms[0] == pytest.approx(1.0)


def test_the_calibration_command_writes_a_loadable_scenario(tmp_path: Path) -> None:
    out = tmp_path / "measured.yaml"
    code = calibrate_main(
        ["--models", "1x64,1x64,1x64", "--reps", "2", "--warmup-reps", "0", "--out", str(out), "--name", "m"]
    )
    assert code == 0
    config = SystemConfig.from_yaml(out)
    assert config.name == "m" and config.qualities == load_scenario("default").qualities
    assert "qualities are a configuration choice" in out.read_text()
    record = json.loads(out.with_suffix(".json").read_text())
    cell = record["stages"]["LLM-1/b8"]["inference"]
    assert cell["n"] == 2 and cell["min_ms"] <= cell["mean_ms"] <= cell["max_ms"]
    assert record["capacity_per_s"] > 0


def test_bad_calibration_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate_main(["--reps", "1"]) == 2
    assert "--reps must be in [2, 10000]" in capsys.readouterr().err
    assert calibrate_main(["--out", "table.txt"]) == 2
    assert "--out must end in .yaml" in capsys.readouterr().err


def test_header_comments_cannot_inject_yaml() -> None:
    header = comment_block(
        ["# Produced by: python -m serving.calibrate --name 'cal\nreps: 7'", "bell \x07 \u2028 x"]
    )
    assert all(line.startswith("# ") for line in header.splitlines())
    assert yaml.safe_load(header + "name: m\n") == {"name": "m"}
    assert "'cal\\nreps: 7'" in header


@pytest.mark.parametrize("name", ["cal\nreps: 7", "cal\x1b[2J"])
def test_a_name_with_control_characters_exits_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate_main(["--name", name]) == 2
    assert "--name must be a non-empty name of at most 100 printable characters" in capsys.readouterr().err


def test_a_bad_out_exits_2_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import serving.calibrate

    monkeypatch.setattr(serving.calibrate, "calibrate", lambda *a, **k: pytest.fail("measured first"))
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "json_folder.json").mkdir()
    for out, words in [
        (tmp_path / "folder.yaml", "must be a file path"),
        (tmp_path / "json_folder.yaml", "must be a file path"),
        (tmp_path / "file" / "measured.yaml", "is not a folder"),
    ]:
        assert calibrate_main(["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--out" in err and words in err, err


def test_a_failed_pair_write_leaves_neither_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    yaml_path, json_path = tmp_path / "m.yaml", tmp_path / "file" / "m.json"
    with pytest.raises(OSError):
        write_files_atomic({yaml_path: "name: m\n", json_path: "{}\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def _metrics(mean: float, p99: float, llm3: float = 0.0) -> dict:
    base = dict.fromkeys(
        (
            "latency_p50_ms",
            "throughput_per_s",
            "cost_per_request",
            "mean_batch_size",
            "utilisation",
            "drop_rate",
        ),
        1.0,
    )
    return {
        **base,
        "latency_mean_ms": mean,
        "latency_p99_ms": p99,
        "model_mix": {"LLM-1": 1 - llm3, "LLM-3": llm3},
    }


def test_compare_cell_errors_spreads_and_repeat_noise() -> None:
    simulated = {0: _metrics(10.0, 40.0), 1: _metrics(20.0, 60.0)}
    measured = [
        {"seed": 0, "repeat": 0, "metrics": _metrics(11.0, 44.0)},
        {"seed": 0, "repeat": 1, "metrics": _metrics(13.0, 44.0, llm3=0.5)},
        {"seed": 1, "repeat": 0, "metrics": _metrics(20.0, 60.0)},
    ]
    result = compare_cell(simulated, measured)
    mean = result["metrics"]["latency_mean_ms"]
    # every seed weighs the same: seed 0's two runs count as their mean, 12 (per run: 44/3)
    assert mean["simulated"] == 15.0 and mean["measured"] == pytest.approx((12.0 + 20.0) / 2)
    assert mean["error"] == pytest.approx(16.0 / 15.0 - 1)
    # the paired errors stay per run, each against its own seed
    paired = mean["paired_error"]
    assert paired["n"] == 3 and paired["min"] == pytest.approx(0.0) and paired["max"] == pytest.approx(0.3)
    assert mean["measured_spread"] == {"mean": pytest.approx(44.0 / 3), "min": 11.0, "max": 20.0, "n": 3}
    assert mean["repeat_noise"] == pytest.approx(2.0 / 12.0)
    assert result["metrics"]["latency_p99_ms"]["error"] == pytest.approx(52.0 / 50.0 - 1)
    assert result["within_goal"]  # +6.7% and +4%
    assert result["model_mix"]["LLM-3"] == {"simulated": 0.0, "measured": pytest.approx((0.25 + 0.0) / 2)}
    far = compare_cell(simulated, [{"seed": 0, "repeat": 0, "metrics": _metrics(10.0, 60.0)}])
    assert not far["within_goal"]
    # a seed without a run is on neither side; a run of a seed not simulated is left out
    assert far["metrics"]["latency_mean_ms"]["simulated"] == 10.0
    stray = compare_cell(
        {0: _metrics(10.0, 40.0)}, [*measured, {"seed": 7, "repeat": 0, "metrics": _metrics(1.0, 1.0)}]
    )
    assert stray["metrics"]["latency_mean_ms"]["measured"] == pytest.approx(12.0)


def _cost(values: dict[int, float]) -> dict[int, dict]:
    return {seed: {**_metrics(10.0, 20.0), "cost_per_request": cost} for seed, cost in values.items()}


def _runs(values: dict[int, float]) -> list[dict]:
    return [{"seed": s, "repeat": 0, "metrics": m} for s, m in _cost(values).items()]


def test_a_scenario_is_ranked_on_the_seeds_every_agent_has_a_run_of() -> None:
    # a's runs cover seeds 0 and 1, b's only seed 1: on seed 1 alone b is cheaper, while a's mean
    # over both seeds (0.125) would put a first, an order of different arrivals
    a = (_cost({0: 0.05, 1: 0.20}), _runs({0: 0.05, 1: 0.20}))
    b = (_cost({0: 0.10, 1: 0.15}), _runs({1: 0.16}))
    assert common_seeds({"a": a, "b": b}) == [1]
    record = rank_scenario({"a": a, "b": b}, "s", "cost_per_request")
    assert record is not None and record["seeds"] == [1]
    assert record["simulated"] == ["b", "a"] and record["measured"] == ["b", "a"]
    assert record["kendall_tau"] == pytest.approx(1.0)
    # no seed in common, or an agent without a run: not ranked
    only_zero = (_cost({0: 0.10, 1: 0.15}), _runs({0: 0.10}))
    assert common_seeds({"a": b, "b": only_zero}) == []
    assert rank_scenario({"a": b, "b": only_zero}, "s", "cost_per_request") is None
    assert rank_scenario({"a": a, "b": None}, "s", "cost_per_request") is None
    assert rank_scenario({}, "s", "cost_per_request") is None


def test_ranks_and_errors() -> None:
    assert relative_error(11.0, 10.0) == pytest.approx(0.1)
    assert math.isnan(relative_error(1.0, 0.0))
    assert rank_agents({"a": 2.0, "b": 1.0, "c": 3.0}) == ["b", "a", "c"]
    assert kendall_tau(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    assert kendall_tau(["a", "b", "c"], ["c", "b", "a"]) == pytest.approx(-1.0)


def test_non_decreasing_pools_adjacent_violators() -> None:
    assert non_decreasing([1.0, 2.0, 3.0]) == ([1.0, 2.0, 3.0], [])
    fitted, changed = non_decreasing([1.0, 5.0, 3.0, 4.0])  # 5 then 3: averaged to 4, 4
    assert fitted == [1.0, 4.0, 4.0, 4.0] and changed == [1, 2]
    assert non_decreasing([3.0, 1.0])[0] == [2.0, 2.0]


def test_help_shows_a_single_percent_sign() -> None:
    """argparse formats help strings with ``%`` (so they write ``%%``) but not the description."""
    from serving.calibrate import build_parser

    text = build_parser().format_help()
    assert "95% confidence intervals" in " ".join(text.split()) and "%%" not in text
