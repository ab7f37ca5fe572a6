"""The benchmark scripts on tiny settings: they run, write what they name, and use the gap of
evaluation.stats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from batchenv.scenarios import load_scenario
from batchenv.timing import ServiceTable
from benchmarks import scaling
from benchmarks.proposed.common import gap, run_grid
from evaluation.stats import paired_gap
from execution.backends import LocalBackend


def test_scaling_benchmark_on_a_tiny_grid(tmp_path: Path) -> None:
    out, markdown = tmp_path / "scaling.json", tmp_path / "scaling.md"
    argv = ["--no-ray", "--seeds", "1", "--horizon-s", "2", "--out", str(out), "--markdown", str(markdown)]
    assert scaling.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["identical_results"] is True
    assert set(result["runs"]) == {"local_1", "local_2"}
    assert result["grid"]["episodes"] == len(scaling.AGENTS) * len(scaling.SCENARIOS)
    assert result["per_episode_s"] > 0 and result["task_overhead_s"]["local"] > 0
    text = markdown.read_text()
    assert "python benchmarks/scaling.py --no-ray" in text
    quiet = result["load_average_before"][0] < scaling.QUIET_LOAD  # the scope follows the load
    assert ("no other work on the machine" in text) == quiet and ("preliminary" in text) == (not quiet)


def test_proposed_benchmark_grid_and_gap() -> None:
    with LocalBackend(1) as backend:
        rows = run_grid(backend, ["greedy", "timeout(B=8,T=20)"], "poisson_50", [0, 1, 2], 3.0)
    assert [len(r) for r in rows.values()] == [3, 3]
    greedy, timeout = rows["greedy"], rows["timeout(B=8,T=20)"]
    assert math.isnan(greedy[0]["p99_ms"])  # running totals only
    value, half = gap(timeout, greedy)
    assert (value, half) == paired_gap([r["cost"] for r in timeout], [r["cost"] for r in greedy])
    mean_cost = sum(r["cost"] for r in timeout) / 3
    reference = sum(r["cost"] for r in greedy) / 3
    assert value == (mean_cost - reference) / reference or math.isclose(
        value, (mean_cost - reference) / reference
    )


def test_robust_benchmark_on_tiny_settings(tmp_path: Path) -> None:
    from benchmarks import robust_eval

    out = tmp_path / "robust.md"
    argv = ["--parts", "poisson", "--seeds", "2", "--horizon-s", "2", "--jobs", "1", "--out", str(out)]
    assert robust_eval.main(argv) == 0
    text = out.read_text()
    assert "python benchmarks/robust_eval.py --parts poisson" in text.splitlines()[2]
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["poisson"]) == set(robust_eval.parts.POISSON)
    assert data["poisson"]["poisson_05"]["gap_vs_optimal"]["robust"][0] == 0.0


def test_guard_test_part_reads_the_grid_and_measures_the_held_out_halves(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import robust_eval
    from benchmarks.robust import guard

    monkeypatch.setattr(guard, "CANDIDATES", guard.CANDIDATES[:1])
    out = tmp_path / "guard_test.md"
    argv = ["--parts", "guard_test", "--seeds", "2", "--horizon-s", "2", "--jobs", "1", "--out", str(out)]
    assert robust_eval.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())["guard_test"]
    grid = json.loads(guard.GUARD_RESULTS.read_text())["guard"]["candidates"]
    assert set(data["candidates"]) == {guard.OFF, guard.CANDIDATES[0]}
    for spec, row in data["candidates"].items():
        assert row["max_poisson_gap"] == grid[spec]["max_poisson_gap"]
        assert row["within_goal"] == (row["max_poisson_gap"] <= guard.GOAL_POISSON_GAP)
        assert set(row["tests"]) == set(guard.GUARD_TRACES)
    assert set(data["within_goal_and_matching"]) <= set(data["candidates"])
    monkeypatch.setattr(guard, "GUARD_RESULTS", tmp_path / "missing.json")
    with pytest.raises(SystemExit, match="run --parts guard first"):
        robust_eval.main(argv)


def test_hindsight_room_with_two_workers_brackets_the_least_cost(tmp_path: Path) -> None:
    """benchmarks/hindsight_room.py on a two-worker scenario: the report gives the lower bound and
    the best schedule found above it, and every agent (robust with its shadows on two workers
    included) costs at least the bound."""
    from benchmarks import hindsight_room

    argv = [
        "--scenarios",
        "multi_gpu",
        "--agents",
        "greedy,timeout,robust",
        "--seeds",
        "0-1",
        "--horizon-s",
        "0.5",
    ]
    assert hindsight_room.main([*argv, "--beam", "64", "--out-dir", str(tmp_path), "--name", "room"]) == 0
    data = json.loads((tmp_path / "room.json").read_text())
    (result,) = data["results"]
    assert result["n_workers"] == 2 and result["beam"] == 64
    for row in result["bound"]:
        assert 0 < row["cost_per_request"] < row["upper_cost_per_request"] < math.inf
        assert row["search_s"] > 0 and row["search_mean_front"] >= 1
    bounds = {row["seed"]: row["cost_per_request"] for row in result["bound"]}
    # no request finishes sooner than one served alone on the fastest model
    fastest_ms = 1e3 * min(row[1] for row in ServiceTable(load_scenario("multi_gpu")).service_s)
    for spec, rows in result["per_seed"].items():
        assert all(row["cost_per_request"] >= bounds[row["seed"]] for row in rows), spec
        assert all(fastest_ms <= row["p99_ms"] < math.inf for row in rows), spec
    report = (tmp_path / "room.md").read_text()
    lower, found = result["bound_mean"][0], result["found_mean"][0]
    assert f"Best schedule found: {found:.5f}" in report
    assert f"{100 * (found - lower) / lower:+.2f}% above the bound (its search: beam 64," in report
    with pytest.raises(SystemExit):
        hindsight_room.main([*argv, "--beam", "0", "--out-dir", str(tmp_path)])


@pytest.mark.parametrize("seeds", ["5-1", "0,0", "x", "-1", ""])
def test_hindsight_room_refuses_bad_seeds_naming_the_flag(seeds: str, capsys) -> None:
    from benchmarks import hindsight_room

    with pytest.raises(SystemExit):
        hindsight_room.main(["--seeds", seeds, "--out-dir", "/nonexistent"])
    assert "--seeds:" in capsys.readouterr().err


def test_window_part_runs_its_grid_and_applies_its_rule(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import robust_eval
    from benchmarks.robust import window

    monkeypatch.setattr(window, "CANDIDATES", window.CANDIDATES[:1])
    out = tmp_path / "window.md"
    argv = ["--parts", "window", "--horizon-s", "1", "--jobs", "2", "--out", str(out)]
    assert robust_eval.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())["window"]
    assert set(data["candidates"]) == {window.DEFAULT, window.CANDIDATES[0]}
    assert data["pick"] == window.select(data["candidates"])
    text = out.read_text()
    assert "## Burst meter window grid (training data only)" in text and f"Pick: {data['pick']}." in text


def test_the_recorded_surrogate_replays_the_half_exactly_and_a_surrogate_keeps_its_size() -> None:
    from benchmarks.robust.common import episode
    from benchmarks.robust.surrogate import half_process, parse_surrogate, surrogate_name, surrogate_process

    half = "azure_trace_30_test"
    task = ("traces", half, "timeout(B=4,T=2)", 3, None, 2.0)
    recorded = ("replay", surrogate_name(half, "recorded"), "timeout(B=4,T=2)", 3, None, 2.0)
    # the same start from the same seed and the same gaps (up to rounding: the replay rescales them)
    assert episode(recorded) == pytest.approx(episode(task), rel=1e-9)
    replay = half_process(load_scenario(half))
    _, first = surrogate_process(surrogate_name(half, 0))
    _, again = surrogate_process(surrogate_name(half, 0))
    _, second = surrogate_process(surrogate_name(half, 1))
    assert len(first.unit_gaps) == len(replay.unit_gaps)
    assert math.isclose(first.window_rate_per_s, replay.window_rate_per_s)
    assert math.isclose(float(first.one_pass_s()[-1]), float(replay.one_pass_s()[-1]))  # same span
    assert np.array_equal(first.unit_gaps, again.unit_gaps)
    assert not np.array_equal(first.unit_gaps, second.unit_gaps)
    assert 0.8 < float(np.var(first.unit_gaps) / np.mean(first.unit_gaps) ** 2) < 1.2  # exponential gaps
    assert parse_surrogate(surrogate_name(half, 7)) == (half, 7)
    config, fresh = surrogate_process(surrogate_name(half, "poisson"))  # no replay: Poisson at the rate
    assert config.name == half and math.isclose(fresh.mean_rate_per_s, replay.window_rate_per_s)
    assert parse_surrogate(surrogate_name(half, "poisson")) == (half, "poisson")
    for bad in ("azure_trace_30_test", "surrogate@azure_trace_30_test#x", "surrogate@azure_trace_30_test#-1"):
        with pytest.raises(ValueError, match="surrogate"):
            parse_surrogate(bad)


def test_replay_part_places_the_recorded_half_among_its_surrogates(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import robust_eval
    from benchmarks.robust import replay

    monkeypatch.setattr(replay, "TRACES", ("azure_trace_30", "azure_trace_slo"))
    monkeypatch.setattr(replay, "N_SURROGATES", 3)
    monkeypatch.setattr(replay, "REPLAY_SEEDS", (0, 1))
    monkeypatch.setattr(replay, "POISSON_SEEDS", (0, 1))
    out = tmp_path / "replay.md"
    assert robust_eval.main(["--parts", "replay", "--horizon-s", "1", "--jobs", "1", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())["replay"]
    assert set(data["traces"]) == {"azure_trace_30", "azure_trace_slo"}
    goal = data["traces"]["azure_trace_30"]
    assert goal["half"] == "azure_trace_30_test" and goal["tuned_timeout"]["model"] == "LLM-2"
    assert len(goal["timeout_p99_ms"]["surrogates"]) == 3
    for trace in data["traces"].values():
        assert set(trace["candidates"]) == set(replay.CANDIDATES)
        for c in trace["candidates"].values():
            assert len(c["surrogates"]) == 3
            p99s = [s["p99"][0] for s in c["surrogates"]]
            assert c["surrogates_above_recorded"] == sum(p > c["recorded"]["p99"][0] for p in p99s)
            assert sum(c["p99_verdicts"].values()) == 3 and 0 <= c["matches"] <= 3
            assert c["p99_spread_ms"]["min"] == min(p99s) and c["p99_spread_ms"]["max"] == max(p99s)
    text = out.read_text()
    assert (
        "## One realization or the scheduler?" in text and "### azure_trace_30_test: every surrogate" in text
    )
    assert "| azure_trace_30_test | 170.27 | robust |" in text and "| azure_trace_slo_test |" in text


def test_guard_rates_summary_picks_within_the_goal_and_the_cheapest_reaching_the_timeout(monkeypatch) -> None:
    from benchmarks.robust import guard_rates

    monkeypatch.setattr(guard_rates, "SPECS", ("a", "b", "c"))
    figures = {
        "a": {"p99_vs_timeout": (-3.0, 1.0), "p99_verdict": "beats"},  # short tail, too costly
        "b": {"p99_vs_timeout": (0.5, 1.0), "p99_verdict": "ties"},
        "c": {"p99_vs_timeout": (2.0, 1.0), "p99_verdict": "loses"},
    }
    largest = {"a": 0.009, "b": 0.004, "c": 0.001}
    assert guard_rates.rate_summary(figures, largest) == {
        "shortest_within_goal": "b",
        "cheapest_reaching_timeout": "b",
    }
    largest["b"] = 0.006  # now only c is within the goal, and it loses
    assert guard_rates.rate_summary(figures, largest) == {
        "shortest_within_goal": "c",
        "cheapest_reaching_timeout": "b",
    }
    figures["a"]["p99_verdict"] = figures["b"]["p99_verdict"] = "loses"
    assert guard_rates.rate_summary(figures, largest)["cheapest_reaching_timeout"] is None


def test_guard_rates_part_runs_the_grid_at_the_halves_rates(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import robust_eval
    from benchmarks.robust import guard_rates

    specs = (guard_rates.OFF, guard_rates.CANDIDATES[0])
    monkeypatch.setattr(guard_rates, "TRACES", ("azure_trace_30",))
    monkeypatch.setattr(guard_rates, "SPECS", specs)
    monkeypatch.setattr(guard_rates, "GUARD_SEEDS", (1000, 1001))
    out = tmp_path / "rates.md"
    argv = ["--parts", "guard_rates", "--horizon-s", "1", "--jobs", "1", "--out", str(out)]
    assert robust_eval.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())["guard_rates"]
    assert data["rates_per_s"]["azure_trace_30"] == pytest.approx(170.27, abs=0.01)
    assert data["timeout"]["azure_trace_30"]["params"]["model"] == "LLM-2"
    grid = json.loads(guard_rates.GUARD_RESULTS.read_text())["guard"]["candidates"]
    for spec in specs:
        c = data["candidates"][spec]
        here = c["rates"]["azure_trace_30"]["gap_to_optimal"][0]
        assert c["largest_poisson_gap"] == max(grid[spec]["max_poisson_gap"], here)
    assert "| azure_trace_30_test, 170.27/s |" in out.read_text()
