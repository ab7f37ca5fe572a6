"""The discrete-time abstraction (formal/discrete.py) and its policies (formal/policies.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import baselines
from batchenv.config import ConfigError, SystemConfig
from batchenv.timing import service_ms
from formal.discrete import TickModel, truncated_poisson
from formal.policies import (
    GreedyPolicy,
    StaticPolicy,
    TablePolicy,
    TimeoutPolicy,
    decision_states,
    distill,
    policy_table,
    shielded_decision,
    steady_state_utilisation,
)


@pytest.fixture(scope="module")
def tm() -> TickModel:
    return TickModel(SystemConfig(), tick_ms=2.0, queue_cap=32)


@given(mean=st.floats(0.01, 8.0), tail=st.sampled_from([1e-3, 1e-6, 1e-9]))
@settings(max_examples=60, deadline=None)
def test_truncated_poisson_is_a_distribution_with_the_poisson_mean(mean: float, tail: float) -> None:
    probs = truncated_poisson(mean, tail)
    assert sum(probs) == pytest.approx(1.0, abs=1e-12)
    assert all(p >= 0 for p in probs)
    k = len(probs) - 1
    beyond = 1.0 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k + 1))
    assert beyond <= tail + 1e-12
    assert sum(i * p for i, p in enumerate(probs)) == pytest.approx(mean, abs=(k + 10) * tail + 1e-9)


def test_service_ticks_keep_the_mean_service_time_exact(tm: TickModel) -> None:
    config = tm.config
    for m in range(config.n_models):
        for b in range(1, config.max_batch_size + 1):
            ticks = tm.service_ticks(m, b)
            assert ticks.service_ms == service_ms(config, m, b)
            assert ticks.mean_ticks * tm.tick_ms == pytest.approx(ticks.service_ms, rel=1e-12)
            assert 0 < ticks.p_hi <= 1 and ticks.lo >= 1
    # b = 8 on LLM-1 is the brief's 47 ms: 23.5 ticks of 2 ms
    assert (tm.service_ticks(0, 8).hi, tm.service_ticks(0, 8).p_hi) == (24, 0.5)


def test_derived_quantities(tm: TickModel) -> None:
    assert tm.max_age_ticks == 50  # 100 ms / 2 ms
    assert tm.mean_arrivals == pytest.approx(0.2, abs=1e-5)
    assert tm.max_busy_ticks == math.ceil(271 / 2) - 1  # LLM-1, b = 64: 271 ms
    assert tm.regret(0) == 0 and tm.regret(2) == pytest.approx(0.08)
    assert tm.ticks_of(20.0) == 10 and tm.ticks_of(21.0) == 11 and tm.ticks_of(0.0) == 0
    assert tm.expected_drops(0) == 0 and tm.expected_drops(tm.queue_cap) == pytest.approx(tm.mean_arrivals)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tick_ms": 0.5}, "tick_ms"),
        ({"tick_ms": 6}, "tick_ms"),
        ({"queue_cap": 0}, "queue_cap"),
        ({"queue_cap": 5000}, "queue_cap"),
        ({"rate_per_s": -1.0}, "rate_per_s"),
        ({"rate_per_s": 20000.0, "tick_ms": 5.0}, "rate_per_s"),
        ({"arrival_tail": 0.5}, "arrival_tail"),
    ],
)
def test_bad_parameters_name_the_field_and_range(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TickModel(SystemConfig(), **kwargs)
    assert info.value.field == field
    assert "must be" in str(info.value)


def test_a_tick_longer_than_a_service_is_rejected() -> None:
    fast = SystemConfig().replace(timing={"t_pre_ms": 0.0, "t_post_ms": 0.0, "comm_ms": [0.5] * 7})
    with pytest.raises(ConfigError, match="shortest service time"):
        TickModel(
            fast.replace(models=[{"name": "X", "quality": 1.0, "inference_ms": [1, 2, 3, 4, 5, 6, 7]}]),
            tick_ms=2.0,
        )


def test_baseline_decisions(tm: TickModel) -> None:
    assert GreedyPolicy(1).decide(1, 0, tm) == (1, 64)
    static = StaticPolicy(8, 0)
    assert static.decide(7, 10, tm) is None
    assert static.decide(8, 0, tm) == (0, 8)
    assert static.decide(3, tm.max_age_ticks, tm) == (0, 8)  # its own timeout dispatch
    timeout = TimeoutPolicy(16, 20.0, (0, 1, 2), (20, 30))
    assert timeout.decide(15, 9, tm) is None
    assert timeout.decide(15, 10, tm) == (0, 64)  # 20 ms = 10 ticks
    assert timeout.decide(16, 0, tm) == (0, 64)
    assert timeout.decide(25, 0, tm) == (1, 64)
    assert timeout.decide(30, 0, tm) == (2, 64)
    assert TimeoutPolicy(4, 10.0, (2,), max_batch=6).decide(9, 0, tm) == (2, 6)


def test_the_shield_turns_a_late_wait_into_a_full_batch(tm: TickModel) -> None:
    table = TablePolicy("waits", {}, forced=2)
    assert shielded_decision(table, 5, tm.max_age_ticks - 1, tm) is None
    assert shielded_decision(table, 5, tm.max_age_ticks, tm) == (2, 5)
    assert shielded_decision(table, 40, tm.max_age_ticks, tm) == (2, 40)
    # decisions are normalised to the batch actually sent
    assert shielded_decision(GreedyPolicy(0), 3, 0, tm) == (0, 3)
    assert all(d is not None or a < tm.max_age_ticks for (q, a), d in policy_table(table, tm).items())


@pytest.mark.parametrize(
    ("policy", "error_field"),
    [
        (TimeoutPolicy(0, 10.0), "timeout.batch"),
        (TimeoutPolicy(8, 150.0), "timeout.timeout_ms"),
        (TimeoutPolicy(8, 10.0, (0, 1)), "timeout.models"),
        (TimeoutPolicy(8, 10.0, (0, 7), (5,)), "timeout.models[1]"),
        (TimeoutPolicy(8, 10.0, (0, 1, 2), (9, 9)), "timeout.thresholds[1]"),
        (TimeoutPolicy(8, 10.0, max_batch=4), "timeout.max_batch"),
    ],
)
def test_timeout_validation(policy: TimeoutPolicy, error_field: str) -> None:
    with pytest.raises(ConfigError) as info:
        policy.validate(SystemConfig())
    assert info.value.field == error_field


def test_decision_states_cover_queue_and_age(tm: TickModel) -> None:
    states = list(decision_states(tm))
    assert len(states) == tm.queue_cap * (tm.max_age_ticks + 1)
    assert min(states) == (1, 0) and max(states) == (tm.queue_cap, tm.max_age_ticks)


def test_distilled_probe_sees_the_intended_state(tm: TickModel) -> None:
    seen = {}

    def spy(sim):
        seen[(sim.queue_len, round(sim.oldest_wait_s * 1000 / tm.tick_ms))] = (
            sim.n_idle_workers,
            sim.shielded,
            sim.n_served,
        )
        return None

    small = TickModel(tm.config, tick_ms=2.0, queue_cap=4)
    table = distill(spy, small, name="spy")
    assert set(seen) == set(decision_states(small))
    assert all(v == (1, a >= small.max_age_ticks, 0) for (q, a), v in seen.items())
    assert all(d is None for d in table.table.values())


def test_distilled_baselines_equal_their_pure_functions(tm: TickModel) -> None:
    config = tm.config
    pairs = [
        (baselines.Greedy(config, model="LLM-2"), GreedyPolicy(1)),
        (baselines.Static(config, batch_size=8, model="LLM-1"), StaticPolicy(8, 0)),
        (
            baselines.Timeout(config, preferred_batch_size=16, max_queue_delay_ms=21.0, model="LLM-3"),
            TimeoutPolicy(16, 21.0, (2,)),
        ),
    ]
    for scheduler, policy in pairs:
        distilled = distill(scheduler, tm)
        assert policy_table(distilled, tm) == policy_table(policy, tm), policy.name


def test_distill_rejects_several_workers() -> None:
    with pytest.raises(ConfigError, match="n_workers"):
        distill(lambda sim: None, TickModel(SystemConfig().replace(n_workers=2), queue_cap=4))


def test_distill_primes_running_estimates_at_the_steady_state(tm: TickModel) -> None:
    """A scheduler observing EWMA estimates is probed with them at the model's rate and at its
    own utilisation at that rate, and the observation reports exactly those values."""
    from agents.baselines import Greedy
    from batchenv.observation import ObservationBuilder

    small = TickModel(tm.config, tick_ms=2.0, queue_cap=4)
    seen = []

    class Observing(Greedy):
        def reset(self, sim) -> None:
            self.observe = ObservationBuilder(sim.config)

        def prime_estimates(self, sim, rate_per_s: float, utilisation: float) -> None:
            self.observe.prime(sim, rate_per_s, utilisation)

        def decide(self, sim):
            if hasattr(self, "observe"):
                seen.append(self.observe(sim))
            return super().decide(sim)

    distill(Observing(tm.config), small)
    # the spy decides as greedy does, so it reaches greedy's utilisation
    utilisation = steady_state_utilisation(Greedy(tm.config), tm.config, small.rate_per_s)
    assert 0.5 < utilisation < 1.0
    probes = seen[-len(list(decision_states(small))) :]
    max_throughput = ObservationBuilder(tm.config).max_throughput_per_s
    for obs in probes:
        assert obs[4] == pytest.approx(small.rate_per_s / max_throughput, rel=1e-6)
        assert obs[5] == pytest.approx(utilisation, rel=1e-6)
