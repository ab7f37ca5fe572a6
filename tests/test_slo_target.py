"""Latency targets: the config field, the per-episode measures, the score terms, the SLO-targeted
scheduler (offline calibration and online controller), tuning for a target or another cost,
and the command lines that take a target."""

from __future__ import annotations

import dataclasses
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
from agents.tuned_params import load_tuned, tuned_file
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
