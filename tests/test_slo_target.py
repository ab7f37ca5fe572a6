"""Latency targets: the config field, the per-episode measures, the score terms, the SLO-targeted
scheduler (offline calibration and online controller), tuning for a target or another cost,
and the command lines that take a target."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from agents.baselines import Greedy, Timeout
from agents.proposed import Proposed
from agents.registry import NotApplicableError, make_agent
from agents.slo_target import (
    ScaledOptimal,
    ScaledProposed,
    SloTargeted,
    _attainment,
    _poisson_at,
    calibrate_scale,
    scale_grid,
)
from agents.tuned_params import load_tuned, read_tuned, tuned_file
from batchenv.config import ConfigError, LatencyTarget, SystemConfig
from batchenv.metrics import compute_metrics, latency_within, score_terms, target_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate
from evaluation.candidates import CandidateRuns
from evaluation.tuning import CostObjective, TargetObjective, timeout_grid, tune_for_objective, tune_scenario

SMALL = "proposed(rate_points=12)"
"""A proposed scheduler with a coarse rate grid: its tables solve in a fraction of a second."""
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _config(rate: float = 100.0, horizon_s: float = 20.0, **changes: object) -> SystemConfig:
    return SystemConfig(horizon_s=horizon_s).replace(arrivals={"rate_per_s": rate}, **changes)


# -------------------------------------------------------------------- the target


def test_target_forms_and_their_meaning() -> None:
    p99 = LatencyTarget.parse("p99<=100ms")
    assert (p99.quantile, p99.bound_for(250.0)) == (0.99, 100.0)
    attainment = LatencyTarget.parse("95%")
    assert attainment.quantile == pytest.approx(0.95)
    assert attainment.bound_for(80.0) == 80.0  # the system's slo_ms
    assert LatencyTarget.parse("95%<=250ms") == LatencyTarget(attainment=0.95, bound_ms=250.0)
    assert LatencyTarget.parse(p99.short(250.0)) == p99
    assert p99.describe(250.0) == "p99 <= 100 ms" and attainment.describe(80.0) == "95% within 80 ms"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("p100<=3ms", "percentile"),
        ("p99", "bound_ms"),
        ("soon", "latency_target"),
        ({"attainment": 1.5}, "attainment"),
        ({"attainment": 0.9, "percentile": 90, "bound_ms": 5}, "latency_target"),
        ({"percentile": 99, "bound_ms": -1}, "bound_ms"),
        ({"perc": 99}, "perc"),
    ],
)
def test_bad_targets_name_the_field(value: object, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        SystemConfig(latency_target=value)
    assert field in err.value.field and len(str(err.value)) < 400


def test_a_target_round_trips_and_an_absent_one_leaves_the_yaml_as_before() -> None:
    config = SystemConfig(latency_target="p99<=50ms")
    assert SystemConfig.from_dict(config.to_dict()) == config
    assert "latency_target" not in SystemConfig().to_dict()  # tuned fingerprints unchanged
    assert load_tuned(load_scenario("default")) is not None


# -------------------------------------------------------------------- measures


def test_score_terms_give_the_score_and_the_cost_under_other_weights() -> None:
    config = load_scenario("azure_trace_slo").replace(horizon_s=10.0)  # w_slo > 0: every term used
    for agent in (
        Greedy(config),
        Timeout(config, preferred_batch_size=4, max_queue_delay_ms=20, model="LLM-2"),
    ):
        sim = simulate(config, agent, 3, sim=Simulator(config, record=True))
        terms = score_terms(sim)
        assert terms.score_per_request(config.qualities, config.reward) == pytest.approx(
            sim.total_reward / sim.n_arrived, abs=1e-12
        )
        other = config.replace(reward={"w_latency_per_s": 3.0})  # the baseline does not read it
        rerun = compute_metrics(simulate(other, type(agent)(other, **agent.params()), 3))
        assert terms.cost_per_request(other.qualities, other.reward) == pytest.approx(
            rerun.cost_per_request, abs=1e-12
        )


def test_target_attainment_is_slo_attainment_at_the_slo_bound() -> None:
    config = _config(rate=200.0)
    sim = simulate(config, Greedy(config), 0, sim=Simulator(config, record=True))
    measured = target_metrics(sim, LatencyTarget(attainment=0.9))
    assert measured["target_attainment"] == compute_metrics(sim).slo_attainment
    strict = target_metrics(sim, LatencyTarget(percentile=99, bound_ms=30.0))
    assert strict["target_attainment"] < measured["target_attainment"]
    assert latency_within(sim, [1e9])[0] == sim.n_served


# -------------------------------------------------------------------- the scheduler


def test_the_scaled_proposed_scheduler_at_scale_one_is_the_proposed_scheduler() -> None:
    config = load_scenario("bursty").replace(horizon_s=10.0)
    plain = compute_metrics(simulate(config, Proposed(config, rate_points=12), 1))
    scaled = compute_metrics(simulate(config, ScaledProposed(config, SCALES, rate_points=12), 1))
    assert plain == scaled


def test_calibration_finds_the_smallest_scale_that_meets_the_bound() -> None:
    config = _config(rate=150.0)
    models = [Greedy(config, model=m) for m in ("LLM-1", "LLM-2", "LLM-3")]  # faster and faster
    episode = _poisson_at(config, 150.0, 3000)
    attain = [_attainment(policy, episode, 60.0) for policy in models]
    assert attain == sorted(attain) and attain[0] < 0.99 <= attain[2]
    index = calibrate_scale(lambda i: models[i], config, 150.0, 3, 60.0, 0.99, n_requests=3000)
    assert attain[index] >= 0.99 and all(a < 0.99 for a in attain[:index])
    assert calibrate_scale(lambda i: models[i], config, 150.0, 3, 60.0, 0.999999, n_requests=3000) == 2


def test_slo_target_meets_a_feasible_target_with_more_quality_than_the_fastest_model() -> None:
    target = "p99<=50ms"
    config = _config(rate=100.0, horizon_s=30.0, latency_target=target)
    agent = SloTargeted(config, inner=SMALL, latency_scales=SCALES, calibration_requests=3000)
    sim = simulate(config, agent, 7, sim=Simulator(config, record=True))
    measured = target_metrics(sim, config.latency_target)
    assert measured["target_attainment"] >= 0.99
    assert compute_metrics(sim).mean_quality > 0.93  # LLM-3 alone: 0.92
    plain = simulate(config, Proposed(config, rate_points=12), 7, sim=Simulator(config, record=True))
    assert target_metrics(plain, config.latency_target)["target_attainment"] < 0.99  # w = 1 misses it
    again = SloTargeted(config, inner=SMALL, latency_scales=SCALES, calibration_requests=3000)
    assert compute_metrics(simulate(config, again, 7)) == compute_metrics(sim)  # deterministic
    estimated = agent.diagnostics()["slo_estimated_misses"]
    true = sim.n_served - latency_within(sim, [50.0])[0]
    assert abs(estimated - true) <= 0.35 * true + 5  # the O(1) estimate of the misses


def test_a_loose_target_buys_quality_and_an_infeasible_one_stays_on_the_grid() -> None:
    config = _config(rate=250.0, horizon_s=20.0)
    loose = SloTargeted(
        config, inner=SMALL, target="p99<=400ms", latency_scales=SCALES, calibration_requests=3000
    )
    plain = compute_metrics(simulate(config, Proposed(config, rate_points=12), 2))
    relaxed = compute_metrics(simulate(config, loose, 2))
    assert relaxed.mean_quality > plain.mean_quality and loose.scale < 1.0
    tight = SloTargeted(
        config, inner=SMALL, target="p99<=5ms", latency_scales=SCALES, calibration_requests=3000
    )
    simulate(config, tight, 2)
    assert tight.scale == SCALES[-1]  # nothing meets 5 ms: the most latency-averse tables
    assert math.isfinite(tight.multiplier) and tight.multiplier <= SCALES[-1] / SCALES[0] * 2


def test_slo_target_wraps_the_optimum_and_needs_a_target() -> None:
    config = _config(rate=100.0, horizon_s=10.0, latency_target="p99<=50ms")
    agent = make_agent("slo_target(inner=optimal,calibration_requests=3000)", config)
    assert isinstance(agent.inner, ScaledOptimal)
    sim = simulate(config, agent, 0, sim=Simulator(config, record=True))
    assert target_metrics(sim, config.latency_target)["target_attainment"] >= 0.99
    with pytest.raises(NotApplicableError, match="latency target"):
        make_agent("slo_target", _config())
    with pytest.raises(NotApplicableError):
        make_agent("slo_target(inner=optimal)", load_scenario("multi_gpu").replace(latency_target="99%"))
    for bad in ("slo_target(margin=1.5)", "slo_target(inner=greedy)", "slo_target(target=sometime)"):
        with pytest.raises(Exception, match=r"margin|inner|target"):
            make_agent(bad, config)


def test_scale_grid() -> None:
    grid = scale_grid(0.1, 10.0, 4)
    assert len(grid) == 9 and grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(10.0)
    assert 1.0 in grid


# -------------------------------------------------------------------- tuning


def test_cost_objective_at_the_scenario_weights_is_the_tuning_of_apps_tune(tmp_path: Path) -> None:
    config = _config(rate=150.0, horizon_s=3.0)
    seeds = [1000, 1001]
    runs = CandidateRuns(config, seeds, (50.0,), cache_file=tmp_path / "runs.jsonl")
    ours = tune_for_objective(runs, CostObjective(), ["timeout"])["timeout"]
    reference = tune_scenario(config, ["timeout"], seeds)["timeout"]
    assert ours["params"] == reference["params"]
    assert ours["cost_per_request"] == reference["cost_per_request"]
    heavier = tune_for_objective(
        runs, CostObjective(reward=dataclasses.replace(config.reward, w_latency_per_s=10.0)), ["timeout"]
    )
    assert heavier["timeout"]["params"]["model"] != "LLM-1"  # latency dearer: a faster model
    cached = CandidateRuns(config, seeds, (50.0,), cache_file=tmp_path / "runs.jsonl")
    cached._run = None  # type: ignore[assignment]  # everything must come from the file
    assert cached.episodes("timeout", timeout_grid(config)) == runs.episodes("timeout", timeout_grid(config))


def test_target_objective_prefers_quality_among_the_candidates_that_meet_it() -> None:
    config = _config(rate=150.0, horizon_s=3.0)
    runs = CandidateRuns(config, [1000, 1001], (40.0, 150.0))
    tight = tune_for_objective(runs, TargetObjective(LatencyTarget.parse("p99<=40ms")), ["timeout"])[
        "timeout"
    ]
    loose = tune_for_objective(runs, TargetObjective(LatencyTarget.parse("p99<=150ms")), ["timeout"])[
        "timeout"
    ]
    assert tight["feasible"] and loose["feasible"]
    assert tight["attainment"] >= 1 - 0.8 * 0.01
    assert loose["mean_quality"] > tight["mean_quality"]
    infeasible = CandidateRuns(config.replace(arrivals={"rate_per_s": 700.0}), [1000], (40.0,))
    best = tune_for_objective(infeasible, TargetObjective(LatencyTarget.parse("p99<=40ms")), ["timeout"])
    assert not best["timeout"]["feasible"]  # overload: the most attaining candidate, flagged


def test_tuned_files_for_a_target_live_apart() -> None:
    config = load_scenario("azure_trace").replace(latency_target="p99<=100ms")
    assert tuned_file(config).parts[-2:] == ("targets", "azure_trace__p99-100ms.yaml")
    assert tuned_file(load_scenario("azure_trace")).name == "azure_trace.yaml"


# -------------------------------------------------------------------- command lines


def _exit_code(main: object, argv: list[str]) -> int:
    try:
        return int(main(argv))  # type: ignore[operator]
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def test_evaluate_with_a_target_says_who_met_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from apps import evaluate as evaluate_app

    slo = "slo_target(inner=optimal,calibration_requests=2000)"
    agents = f"greedy(model=LLM-3),greedy(model=LLM-1),{slo}"
    argv = ["--scenarios", "poisson_05", "--agents", agents, "--target", "p99<=20ms", "--n-seeds", "2"]
    argv += ["--horizon-s", "5", "--no-hindsight", "--no-tuned", "--jobs", "1", "--out", str(tmp_path)]
    assert evaluate_app.main(argv) == 0
    out = capsys.readouterr().out
    assert "p99 <= 20 ms: met by" in out
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = json.loads((run / "results.json").read_text())
    assert data["scenarios"][0]["latency_target"]["bound_ms"] == 20.0
    cells = {c["agent"]: c for c in data["cells"]}
    for cell in cells.values():
        attainment = cell["summary"]["target_attainment"]["mean"]
        assert cell["target_met"] is (attainment >= 0.99)
    fast, slow = cells["greedy(model=LLM-3)"], cells["greedy(model=LLM-1)"]
    assert fast["target_met"] and not slow["target_met"]  # 9 ms against 15 ms for one request
    assert cells[slo]["target_met"]
    assert cells[slo]["summary"]["mean_quality"]["mean"] > 0.92  # better than LLM-3 alone
    report = (run / "report.md").read_text()
    assert "## Latency targets" in report and "### poisson_05: p99 <= 20 ms" in report
    capsys.readouterr()
    code = _exit_code(evaluate_app.main, ["--target", "p100<=5ms", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "percentile" in err and "Traceback" not in err


def test_tune_for_a_target_writes_its_own_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from apps import tune

    argv = ["--scenarios", "poisson_05", "--agents", "timeout", "--seeds", "1000", "--horizon-s", "2"]
    argv += ["--target", "p99<=60ms", "--jobs", "1", "--out", str(tmp_path)]
    assert tune.main(argv) == 0
    path = tmp_path / "targets" / "poisson_05__p99-60ms.yaml"
    record = read_tuned(path)
    assert record is not None and record.data["latency_target"] == "p99<=60ms"
    entry = record.agents["timeout"]
    config = load_scenario("poisson_05").replace(horizon_s=2.0)
    runs = CandidateRuns(config, [1000], (60.0,))
    (episodes,) = runs.episodes("timeout", [entry["params"]])
    assert entry["feasible"] and episodes[0].attainment(0) >= 1 - 0.8 * 0.01
    assert not (tmp_path / "poisson_05.yaml").exists()  # the cost-tuned file is another one
    capsys.readouterr()
    for bad in (["--target", "soon"], ["--target", "p99<=60ms", "--margin", "1"]):
        assert _exit_code(tune.main, [*bad, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert ("--target" in err or "--margin" in err) and "Traceback" not in err


# -------------------------------------------------------------------- the studies, tiny


@pytest.mark.slow  # minutes: the proposed scheduler's tables at several weights
def test_slo_target_study_on_tiny_settings(tmp_path: Path) -> None:
    from benchmarks import slo_targets

    out = tmp_path / "slo.md"
    argv = ["--scenarios", "poisson_05", "--targets", "p99<=50ms,99%", "--n-seeds", "2", "--horizon-s", "1"]
    assert slo_targets.main([*argv, "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python benchmarks/slo_targets.py --scenarios poisson_05" in text
    assert "**Shortened run**" in text and "`nice -n 10 python benchmarks/slo_targets.py --jobs 1`" in text
    data = json.loads(out.with_suffix(".json").read_text())
    (row,) = data["rows"]
    assert [t["target"] for t in row["targets"]] == ["p99<=50ms", "99%<=250ms"]  # slo_ms of poisson_05
    for entry in row["targets"]:
        agents = entry["agents"]
        assert set(agents) == set(slo_targets.AGENTS)
        assert entry["feasible"] == any(a.get("met") for a in agents.values())
        for agent in agents.values():
            assert agent["met"] == (agent["attainment"][0] >= (0.99))
    assert data["summary"]["pairs"] == 2


def test_frontier_study_on_tiny_settings(tmp_path: Path) -> None:
    from benchmarks import frontiers

    out = tmp_path / "front.md"
    argv = ["--scenarios", "poisson_05", "--weights", "0.3,3", "--n-seeds", "2", "--horizon-s", "1"]
    argv += ["--checkpoints", "", "--jobs", "1", "--out", str(out)]
    assert frontiers.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    points = data["scenarios"]["poisson_05"]["points"]
    assert {p["family"] for p in points} == {"timeout", "optimal", "proposed"}
    assert [p["param"] for p in points if p["family"] == "proposed"] == [0.3, 3.0]
    for latency in frontiers.LATENCIES:
        on = [p for p in points if p[f"frontier_{latency}"]]
        assert on and all(
            not (o[latency] <= p[latency] and o["mean_quality"] > p["mean_quality"])
            for p in on
            for o in points
        )
    assert (tmp_path / "front_figures" / "poisson_05.png").stat().st_size > 1000
    assert "2 latency weights instead of 9" in out.read_text()


def test_frontier_flags() -> None:
    from benchmarks.objectives.frontier import frontier_flags

    points = [
        {"lat": 10.0, "mean_quality": 0.92},
        {"lat": 20.0, "mean_quality": 0.97},
        {"lat": 30.0, "mean_quality": 0.95},  # dominated by the second
        {"lat": 20.0, "mean_quality": 0.97},  # a tie: both stay
        {"lat": math.nan, "mean_quality": 1.0},
    ]
    assert frontier_flags(points, "lat") == [True, True, False, True, False]


@pytest.mark.slow  # minutes: the proposed scheduler's tables at several weights
def test_sensitivity_study_on_tiny_settings(tmp_path: Path) -> None:
    from benchmarks import sensitivity

    out = tmp_path / "sens.md"
    argv = ["--scenarios", "poisson_05,bursty", "--n-seeds", "2", "--horizon-s", "1", "--checkpoints", ""]
    assert sensitivity.main([*argv, "--jobs", "1", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    labels = [s.label for s in sensitivity.SETTINGS]
    assert set(data["conclusions"]) == set(labels)
    for label in labels:
        poisson = data["scenarios"]["poisson_05"][label]
        assert poisson["reference"] == "optimal" and poisson["agents"]["optimal"]["gap"][0] == 0.0
        assert data["scenarios"]["bursty"][label]["reference"] == "timeout"
        c1 = data["conclusions"][label]["C1"]
        assert c1["max_gap"] == poisson["agents"]["proposed"]["gap"][0]
        assert c1["holds"] == (c1["max_gap"] <= sensitivity.NEAR_OPTIMUM)
        assert data["conclusions"][label]["C5"]["holds"] is None  # no randomised-rate scenario
    heavy = data["scenarios"]["bursty"]["w = 10"]["tuned"]["timeout"]
    light = data["scenarios"]["bursty"]["w = 0.1"]["tuned"]["timeout"]
    assert heavy != light  # retuned for each cost
    assert "**Shortened run**" in out.read_text()


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("slo_targets", ["--targets", "p99"], "bound_ms"),
        ("slo_targets", ["--n-seeds", "1"], "--n-seeds"),
        ("frontiers", ["--weights", "0,1"], "--weights"),
        ("frontiers", ["--horizon-s", "-1"], "--horizon-s"),
        ("sensitivity", ["--scenarios", "nowhere"], "--scenarios"),
        ("sensitivity", ["--out", "/nonexistent/x.md"], "--out"),
    ],
)
def test_study_flags_are_checked(
    script: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    module = importlib.import_module(f"benchmarks.{script}")
    assert _exit_code(module.main, argv) == 2
    err = capsys.readouterr().err
    assert (
        message in err
        and "Traceback" not in err
        and err.strip().splitlines()[-1].startswith(f"python benchmarks/{script}.py: error: ")
    )


def _summary_entry(met: bool, attainment: float, quality: float) -> dict[str, object]:
    return {"met": met, "attainment": [attainment, 0.0], "mean_quality": [quality, 0.0]}


def test_slo_study_summary_counts_what_the_rows_say() -> None:
    from benchmarks import slo_targets

    def entry(slo: tuple[bool, float, float], timeout: tuple[bool, float, float], feasible: bool) -> dict:
        agents = {"slo_target": _summary_entry(*slo), "timeout": _summary_entry(*timeout)}
        agents["util_switch"] = {"not_applicable": "n/a"}
        return {
            "target": "p99<=50ms",
            "feasible": feasible,
            "agents": agents,
            "best_attainment": {"agent": "timeout", "attainment": timeout[1]},
            "grid_best_training": {"attainment": 0.95, "candidates": 246},
        }

    rows = [
        {"label": "a", "targets": [entry((True, 0.995, 0.96), (True, 0.999, 0.93), True)]},
        {"label": "b", "targets": [entry((False, 0.98, 0.97), (True, 0.992, 0.92), True)]},
        {"label": "c", "targets": [entry((False, 0.90, 0.97), (False, 0.93, 0.92), False)]},
    ]
    summary = slo_targets.summarise({"rows": rows})
    assert (summary["pairs"], summary["feasible"], summary["met_by_slo_target"]) == (3, 2, 1)
    assert summary["missed_by_slo_target"] == ["b p99<=50ms"] and summary["infeasible"] == ["c p99<=50ms"]
    assert summary["quality_vs_best_tuned"] == [pytest.approx(0.03)]


def test_sensitivity_verdicts_follow_their_rules() -> None:
    from benchmarks import sensitivity

    def agents(proposed_gap: float, proposed_p99: float, rl_gap: float) -> dict:
        return {
            "optimal": {"gap": [0.0, 0.0], "p99_ms": 50.0},
            "timeout": {"gap": [0.05, 0.01], "p99_ms": 60.0},
            "proposed": {"gap": [proposed_gap, 0.001], "p99_ms": proposed_p99},
            "ppo": {"gap": [rl_gap, 0.001], "p99_ms": 50.0},
        }

    def changing(proposed_gap: float) -> dict:
        return {
            "timeout": {"gap": [0.0, 0.0], "p99_ms": 60.0},
            "proposed": {"gap": [proposed_gap, 0.01], "p99_ms": 70.0},
        }

    scenarios: dict[str, dict] = {"default": {}, "bursty": {}, "azure_trace": {}}
    for setting in sensitivity.SETTINGS:
        heavy = setting.w_latency_per_s > 1
        scenarios["default"][setting.label] = {"agents": agents(0.02 if heavy else 0.002, 40.0, 0.01)}
        for name in ("bursty", "azure_trace"):
            scenarios[name][setting.label] = {
                "agents": changing(0.05 if heavy else -0.05),
                "proposed_vs_util_switch": [-0.02, 0.01],
            }
    verdicts = sensitivity.conclusions({"scenarios": scenarios}, ["ppo"])
    light, heavy = verdicts["w = 1 (reported)"], verdicts["w = 10"]
    assert light["C1"]["holds"] and not heavy["C1"]["holds"] and heavy["C1"]["max_gap"] == 0.02
    assert (light["C2"]["verdict"], heavy["C2"]["verdict"]) == ("holds", "reverses")
    assert sensitivity._c2_verdict(0, 0).startswith("level") and sensitivity._c2_verdict(2, 1) == "partly"
    assert light["C3"]["holds"] and light["C3"]["proposed_lower"] == 2
    assert light["C4"]["holds"] and light["C5"]["holds"] is None
    assert light["C6"] == {"p99_higher_than_timeout": 2, "of": 3, "scenarios": ["bursty", "azure_trace"]}
