"""Tests of the proposed scheduler (agents/proposed.py, agents/policy_table.py): the table is the
SMDP optimum, decisions need no solve, the gap to the optimum on Poisson loads, the tuned
baselines beaten on bursty and trace loads, rate tracking, ablations, several workers,
determinism and the interfaces."""

from __future__ import annotations

import numpy as np
import pytest

from agents import policy_table, smdp
from agents.optimal import OptimalScheduler
from agents.policy_table import build_policy_table
from agents.proposed import Proposed
from agents.registry import make_agent
from agents.smdp import solution as smdp_solution
from agents.smdp import solve_optimal, staggered_model
from agents.tuned_params import load_tuned
from batchenv.config import SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.estimators import RateEstimator
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate
from evaluation.stats import paired_gap

SEEDS = (0, 1, 2, 3)


def cost(config: SystemConfig, agent, seed: int, record: bool = False) -> float:
    sim = simulate(config, agent, seed, record=record)
    return max(config.qualities) - sim.total_reward / sim.n_arrived


def stepped_arrivals(seed: int, rates: tuple[float, ...], step_s: float) -> np.ndarray:
    """Poisson arrival times (s) whose rate is rates[i] on [i step_s, (i + 1) step_s)."""
    rng = np.random.default_rng(seed)
    parts = [
        np.sort(rng.uniform(i * step_s, (i + 1) * step_s, rng.poisson(rate * step_s)))
        for i, rate in enumerate(rates)
    ]
    return np.concatenate(parts)


def track(times: np.ndarray, grid: np.ndarray, estimator: RateEstimator) -> np.ndarray:
    counts = np.searchsorted(times, grid, side="right")
    return np.array([estimator.update(float(t), float(n)) for t, n in zip(grid, counts, strict=True)])


@pytest.fixture(scope="module")
def default_config() -> SystemConfig:
    return load_scenario("default")


@pytest.fixture(scope="module")
def table(default_config):
    return build_policy_table(default_config)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [20, 55, 66, 72])
def test_table_rows_are_the_optimal_policy(default_config, table, index):
    rate = table.rates_per_s[index]
    solution = solve_optimal(default_config, rate)
    row = table.rows[index]
    assert len(row.decisions) == solution.queue_cap + 1
    for q in range(solution.queue_cap + 1):
        assert row.decisions[q] == solution.decision(q)
    for q in range(1, solution.queue_cap + 1):
        assert row.fallback[q] == (solution.shield_model[q], solution.shield_batch[q])
    assert row.threshold == solution.dispatch_threshold


def test_row_index_is_the_nearest_grid_rate_in_log_scale(table):
    rates = table.rates_per_s
    assert [table.row_index(r) for r in rates] == list(range(len(rates)))
    for i in (0, 30, len(rates) - 2):
        low, high = rates[i], rates[i + 1]
        assert table.row_index(low * (high / low) ** 0.49) == i
        assert table.row_index(low * (high / low) ** 0.51) == i + 1
    assert table.row_index(0.0) == 0
    assert table.row_index(0.01) == 0
    assert table.row_index(1e9) == len(rates) - 1
    assert rates[0] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(1.2 * 64 / 0.111)


def test_decisions_need_no_solve(default_config, monkeypatch):
    scheduler = Proposed(load_scenario("bursty"))

    def forbidden(*args, **kwargs):
        raise AssertionError("the SMDP was solved at decision time")

    for module, name in [
        (smdp_solution, "_solve_cached"),
        (policy_table, "solve_optimal"),
        (policy_table, "policy_iteration"),
        (policy_table, "build_smdp"),
        (policy_table, "staggered_model"),
        (policy_table, "_build_cached"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    for scenario in ("bursty", "poisson_95", "default_randomised"):
        config = load_scenario(scenario).replace(horizon_s=10.0)
        sim = simulate(config, scheduler, 0, record=False)
        assert sim.n_served > 0.9 * sim.n_arrived


def test_staggered_model_with_one_worker_is_the_one_worker_smdp(default_config):
    system = smdp.solver_system(default_config)
    cap = smdp.default_queue_cap(system, 200.0)
    mine = staggered_model(default_config, 200.0, 1)
    theirs = smdp.build_smdp(system, 200.0, cap, "any")
    np.testing.assert_array_equal(mine.reward, theirs.reward)
    np.testing.assert_array_equal(mine.tau, theirs.tau)


# --------------------------------------------------------------------------------------------
# Against the optimum and the baselines
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["poisson_25", "poisson_50", "poisson_75"])
def test_within_half_a_percent_of_the_optimum_on_poisson(scenario):
    """Cost gap (evaluation.stats: relative difference of mean costs, common random numbers)
    below 0.5%; measured about 0.05%."""
    config = load_scenario(scenario).replace(horizon_s=30.0)
    best, mine = OptimalScheduler(config), Proposed(config)
    optimum = [cost(config, best, seed) for seed in SEEDS]
    gap, _ = paired_gap([cost(config, mine, seed) for seed in SEEDS], optimum)
    assert gap < 0.005
    assert simulate(config, mine, 0, record=False).n_forced == 0


def tuned_or_skip(config: SystemConfig) -> None:
    if load_tuned(config) is None:
        pytest.skip(f"no tuned parameters for {config.name} in agents/tuned/")


@pytest.mark.parametrize(
    "scenario", ["bursty", "azure_trace", "azure_trace_low", "azure_trace_medium", "diurnal"]
)
def test_lower_cost_than_the_tuned_timeout(scenario):
    config = load_scenario(scenario)
    tuned_or_skip(config)
    timeout, mine = make_agent("timeout", config), Proposed(config)
    for seed in SEEDS:
        assert cost(config, mine, seed) < cost(config, timeout, seed)


@pytest.mark.parametrize(
    ("scenario", "spec"),
    [
        ("azure_trace_low", "proposed"),
        ("diurnal", "proposed"),
        ("azure_trace", "proposed(guard_slo_ms=80,guard_penalty=0.2)"),
    ],
)
def test_lower_p99_than_the_tuned_timeout(scenario, spec):
    config = load_scenario(scenario)
    tuned_or_skip(config)
    timeout, mine = make_agent("timeout", config), make_agent(spec, config)
    p99 = {
        name: np.mean([compute_metrics(simulate(config, agent, s)).latency_p99_ms for s in SEEDS])
        for name, agent in (("timeout", timeout), ("mine", mine))
    }
    assert p99["mine"] < p99["timeout"]


# --------------------------------------------------------------------------------------------
# Rate estimation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_rate_estimate_tracks_a_step_up_within_a_second(seed):
    times = stepped_arrivals(seed, (50.0, 400.0), 10.0)
    grid = np.arange(0.005, 20.0, 0.005)  # the counter read every 5 ms
    estimator = RateEstimator()
    values = track(times, grid, estimator)

    def at(t_s: float) -> float:
        return values[np.searchsorted(grid, t_s)]

    def realised(t_s: float) -> float:  # the rate the arrivals actually had in the last second
        return float(np.count_nonzero((times > t_s - 1.0) & (times <= t_s)))

    assert at(9.9) == pytest.approx(50.0, rel=0.2)
    assert at(10.3) == pytest.approx(400.0, rel=0.3)
    assert at(11.0) == pytest.approx(realised(11.0), rel=0.1)
    assert at(19.9) == pytest.approx(400.0, rel=0.05)
    assert estimator.alarms >= 1


@pytest.mark.parametrize("rate", [30.0, 150.0, 500.0])
def test_rate_estimate_is_steady_on_a_stationary_load(rate):
    grid = np.arange(0.005, 20.0, 0.005)
    estimator = RateEstimator()
    values = track(stepped_arrivals(7, (rate,), 20.0), grid, estimator)
    assert estimator.alarms == 0
    late = values[grid > 10.0]
    assert np.abs(late / rate - 1.0).max() < 0.12
    assert values[np.searchsorted(grid, 1.0)] == pytest.approx(rate, rel=0.35)  # no prior, no lag


def test_rate_estimator_checks_its_parameters():
    for kwargs in (
        {"taus_s": ()},
        {"taus_s": (2.0, 1.0)},
        {"z": 0.0},
        {"cusum_ratio": 1.0},
        {"cusum_threshold": -1.0},
    ):
        with pytest.raises(ValueError):
            RateEstimator(**kwargs)


# --------------------------------------------------------------------------------------------
# Ablations
# --------------------------------------------------------------------------------------------


def test_without_rate_estimation_it_uses_the_nominal_rate_and_loses_on_bursts():
    config = load_scenario("bursty")
    fixed = Proposed(config, rate_estimation=False)
    assert fixed.nominal_rate_per_s == pytest.approx(config.arrivals.mean_rate_per_s)
    full = Proposed(config)
    assert np.mean([cost(config, full, s) for s in SEEDS]) < np.mean([cost(config, fixed, s) for s in SEEDS])


def test_without_model_switching_each_rate_uses_one_model():
    config = load_scenario("azure_trace")
    single = Proposed(config, model_switching=False, rate_points=16)
    for row in single.table.rows:
        assert len({d[0] for d in row.decisions if d is not None}) == 1
    assert len({d[0] for row in single.table.rows for d in row.decisions if d is not None}) > 1
    full = Proposed(config, rate_points=16)
    assert np.mean([cost(config, full, s) for s in SEEDS[:2]]) < np.mean(
        [cost(config, single, s) for s in SEEDS[:2]]
    )


def test_slo_guard_pays_with_an_slo_penalty_and_is_inert_without(default_config):
    config = load_scenario("azure_trace_slo")
    guarded = Proposed(config, rate_points=24)
    unguarded = Proposed(config, rate_points=24, slo_guard=False)
    misses = {}
    for name, agent in (("guarded", guarded), ("unguarded", unguarded)):
        sims = [simulate(config, agent, s, record=False) for s in SEEDS[:2]]
        misses[name] = sum(s.n_slo_misses for s in sims) / sum(s.n_served for s in sims)
        misses[name + "_cost"] = np.mean([1 - s.total_reward / s.n_arrived for s in sims])
    assert misses["guarded"] < 0.5 * misses["unguarded"]
    assert misses["guarded_cost"] < misses["unguarded_cost"]
    # without an SLO penalty (w_slo = 0) the guard changes nothing
    with_guard = simulate(default_config, Proposed(default_config), 3, record=False)
    without = simulate(default_config, Proposed(default_config, slo_guard=False), 3, record=False)
    assert with_guard.total_reward == without.total_reward


# --------------------------------------------------------------------------------------------
# Several workers, timeouts, determinism, interfaces
# --------------------------------------------------------------------------------------------


def test_several_workers_share_the_load_and_beat_the_tuned_timeout():
    config = load_scenario("multi_gpu")
    tuned_or_skip(config)
    mine, timeout = Proposed(config), make_agent("timeout", config)
    sim = simulate(config, mine, 0)
    metrics = compute_metrics(sim)
    assert metrics.n_forced == 0
    assert min(metrics.utilisation_per_worker) > 0.3
    assert metrics.n_served >= metrics.n_arrived - 100
    for seed in SEEDS[:2]:
        assert cost(config, mine, seed) < cost(config, timeout, seed)


def test_waits_end_before_the_timeout_so_it_never_forces(default_config):
    config = default_config.replace(max_wait_ms=2.0, arrivals={"rate_per_s": 300.0}, horizon_s=20.0)
    sim = simulate(config, Proposed(config, patience=1e6), 0, record=False)
    assert sim.n_forced == 0
    assert sim.n_batches > 0


def test_same_seed_same_episode():
    config = load_scenario("bursty").replace(horizon_s=20.0)
    runs = []
    for agent in (Proposed(config), Proposed(config), None):
        agent = agent or runs[0][2]  # the first scheduler again, after another episode
        sim = simulate(config, agent, 5)
        runs.append((sim.total_reward, [tuple(b) for b in sim.batches], agent))
    assert runs[0][:2] == runs[1][:2] == runs[2][:2]


def test_params_rebuild_the_scheduler_and_specs_reach_it():
    config = load_scenario("default")
    agent = make_agent("proposed(rate_estimation=false,patience=3)", config)
    assert isinstance(agent, Proposed)
    assert agent.params() == {"rate_estimation": False, "patience": 3.0, "nominal_rate_per_s": 100.0}
    assert type(agent)(config, **agent.params()).params() == agent.params()
    assert Proposed(config).params() == {}
    with pytest.raises(ValueError):
        Proposed(config, patience=0.0)
    with pytest.raises(ValueError):
        Proposed(config, nominal_rate_per_s=-1.0)


def test_predict_through_the_environment(default_config, play_episode):
    env = DynamicBatchingEnv(default_config.replace(horizon_s=5.0))
    play_episode(env, Proposed(default_config).bind(env), 0)  # checks every action is valid
    assert env.unwrapped.sim.n_served > 0


def test_the_simulator_is_only_read(default_config):
    """decide() reads the simulator's state and never changes it."""
    sim = Simulator(default_config)
    sim.reset(0)
    agent = Proposed(default_config)
    agent.reset(sim)
    before = (sim.now_s, sim.queue_len, sim.n_served, sim.total_reward)
    agent.decide(sim)
    assert (sim.now_s, sim.queue_len, sim.n_served, sim.total_reward) == before


# --------------------------------------------------------------------------------------------
# Long runs
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    [
        "poisson_05",
        "poisson_25",
        "default",
        "poisson_50",
        "poisson_75",
        "poisson_95",
        "high_load",
        "default_randomised",
    ],
)
def test_within_half_a_percent_of_the_optimum_long(scenario):
    """16 seeds x 120 s: the upper end of the 95% confidence interval of the gap below 0.5%."""
    config = load_scenario(scenario).replace(horizon_s=120.0)
    best, mine = OptimalScheduler(config), Proposed(config)
    optimum = [cost(config, best, seed) for seed in range(16)]
    gap, half = paired_gap([cost(config, mine, seed) for seed in range(16)], optimum)
    print(f"{scenario}: gap {100 * gap:+.3f}% +- {100 * half:.3f}%")
    assert gap + half < 0.005
