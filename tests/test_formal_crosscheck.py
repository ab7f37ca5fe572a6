"""Storm's figures against simulations of the same policies.

- The tick simulator samples the chain the DTMC encodes (same discretisation): agreement within
  2% on throughput, utilisation, mean queue and mean latency, for two policies at two loads.
  With stratified arrivals its statistical error is about 0.2% at 200k ticks.
- The event-driven simulator of batchenv runs in continuous time: decisions at any instant,
  exact service times. At a 2 ms tick the figures differ by about 1% (tolerance 3%).
- Storm's optimal scheduler against the SMDP optimum of agents/optimal.py.
"""

from __future__ import annotations

import pytest

from batchenv.config import SystemConfig
from formal.check import check_optimum, check_policy
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, GreedyPolicy, TimeoutPolicy
from formal.ticksim import simulate_ticks
from formal.verification import CROSS_CHECK_FIELDS, compare_with_smdp, simulate_continuous, smdp_policy

POLICIES = [GreedyPolicy(1), TimeoutPolicy(16, 20.0, (1, 2), (24,))]


@pytest.mark.parametrize("rate_per_s", [100.0, 200.0])
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_storm_agrees_with_the_tick_simulator_within_2_percent(
    policy: DiscretePolicy, rate_per_s: float
) -> None:
    tm = TickModel(SystemConfig(), rate_per_s=rate_per_s, tick_ms=4.0, queue_cap=48)
    storm = check_policy(tm, policy)
    sim = simulate_ticks(tm, policy, ticks=200_000, seed=7)
    for name in CROSS_CHECK_FIELDS:
        assert getattr(sim, name) == pytest.approx(getattr(storm, name), rel=0.02), name
    # the measured per-request latency, not Little's law, and its statistical error is small
    assert sim.latency_sem_ms < 0.005 * storm.latency_ms
    assert storm.throughput_per_s == pytest.approx(rate_per_s, rel=1e-6)


def test_tick_simulator_is_deterministic_and_reacts_to_the_policy() -> None:
    tm = TickModel(SystemConfig(), tick_ms=4.0, queue_cap=48)
    a = simulate_ticks(tm, GreedyPolicy(0), ticks=20_000, seed=3)
    assert a == simulate_ticks(tm, GreedyPolicy(0), ticks=20_000, seed=3)
    slow = simulate_ticks(tm, TimeoutPolicy(32, 100.0, (0,)), ticks=20_000, seed=3)
    assert slow.latency_ms > a.latency_ms and slow.mean_batch > a.mean_batch
    with pytest.raises(ValueError, match="ticks"):
        simulate_ticks(tm, GreedyPolicy(0), ticks=10, seed=0)


def test_storm_agrees_with_the_event_simulator_at_a_2_ms_tick() -> None:
    tm = TickModel(SystemConfig(), tick_ms=2.0, queue_cap=32)
    policy = TimeoutPolicy(8, 10.0, (0,))
    storm = check_policy(tm, policy)
    sim = simulate_continuous(tm, policy, horizon_s=600.0, seed=11)
    for name in CROSS_CHECK_FIELDS:
        assert getattr(sim, name) == pytest.approx(getattr(storm, name), rel=0.03), name


def test_storm_optimum_matches_the_smdp_optimum() -> None:
    tm = TickModel(SystemConfig(), tick_ms=2.0, queue_cap=32)
    optimum = check_optimum(tm)
    smdp, whole = smdp_policy(tm, "whole")
    _, any_batch = smdp_policy(tm, "any")
    # deciding every 2 ms costs a little: within 1% above the continuous-time optimum
    assert whole.cost_per_request <= optimum.cost_per_request <= 1.01 * whole.cost_per_request
    # the SMDP policy evaluated in the discrete model is optimal there too (to 0.1%)
    assert check_policy(tm, smdp).cost_per_request <= 1.001 * optimum.cost_per_request
    visits = simulate_ticks(tm, optimum.policy, ticks=100_000, seed=5).decision_visits
    comparison = compare_with_smdp(tm, optimum.policy, smdp, visits, whole, any_batch)
    assert comparison.agreement >= 0.95
    assert comparison.storm_policy.split(";")[0] == comparison.smdp_policy.split(";")[0]


def test_the_slo_penalty_is_refused_not_dropped() -> None:
    """The model keeps one age, so it cannot count a batch's SLO misses: a scenario with
    ``w_slo > 0`` is refused with the field's name. Without the penalty (w_slo = 0), Storm's greedy
    agrees with the event simulator; with it, the simulator's cost is well above Storm's figure
    (what a silent drop would have hidden)."""
    import dataclasses

    from batchenv.config import ConfigError
    from batchenv.scenarios import load_scenario
    from formal.prism import check_costs_modelled
    from formal.verification import Settings

    config = load_scenario("azure_trace_slo")
    with_slo = Settings(config=config, tick_ms=2.0, queue_cap=32).tick_model()
    with pytest.raises(ConfigError, match=r"reward\.w_slo"):
        check_costs_modelled(with_slo)
    plain = config.replace(reward=dataclasses.replace(config.reward, w_slo=0.0))
    tm = Settings(config=plain, tick_ms=2.0, queue_cap=32).tick_model()
    check_costs_modelled(tm)
    policy = GreedyPolicy(0)
    storm = check_policy(tm, policy)
    sim = simulate_continuous(tm, policy, horizon_s=300.0, seed=5)
    assert sim.cost_per_request == pytest.approx(storm.cost_per_request, rel=0.03)
    penalised = simulate_continuous(with_slo, policy, horizon_s=300.0, seed=5)
    assert penalised.cost_per_request > 1.2 * storm.cost_per_request


def test_the_event_simulator_cross_check_catches_a_wrong_discretisation() -> None:
    """A model whose service times are rounded up to whole ticks (about +1 ms per batch, a
    plausible discretisation error) puts greedy's mean queue about 7% above the event simulator's:
    the cross-check fails it (verify.py then exits non-zero), while the right model passes. The
    tick simulator samples the model's own chain, so only the event simulator can see this."""
    from formal.discrete import ServiceTicks
    from formal.report import EVENT_SIM_TOLERANCE, cross_check_failures
    from formal.results import PolicyRow, VerificationReport
    from formal.settings import Settings

    config = SystemConfig()
    right = TickModel(config, tick_ms=2.0, queue_cap=32)
    wrong = TickModel(config, tick_ms=2.0, queue_cap=32)
    rounded_up = tuple(tuple(ServiceTicks(s.service_ms, s.hi, 1.0) for s in row) for row in wrong.service)
    object.__setattr__(wrong, "service", rounded_up)
    policy = GreedyPolicy(0)
    sim = simulate_continuous(right, policy, horizon_s=300.0, seed=0)
    for tm, fails in ((right, False), (wrong, True)):
        storm = check_policy(tm, policy)
        row = PolicyRow("greedy", policy.name, "test", figures=storm, continuous=sim)
        failures = cross_check_failures(VerificationReport(Settings(config=config), tm, rows=[row]))
        assert (row.deviation(sim) > EVENT_SIM_TOLERANCE) == fails
        assert len(failures) == fails
        if fails:
            assert "event simulator" in failures[0] and "tolerance 3%" in failures[0]
            assert (storm.mean_queue - sim.mean_queue) / storm.mean_queue > 0.05
