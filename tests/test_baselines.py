"""Baselines: each does what its definition says, on the fast path and through the env."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from agents.baselines import BASELINES, Aimd, Greedy, Static, Timeout, UtilSwitch
from batchenv.config import SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import request_table
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate


def _arrivals(times: np.ndarray) -> Iterator[np.ndarray]:
    yield np.asarray(times, dtype=float)
    while True:
        yield np.array([1e9])


def _poisson_times(rng: np.random.Generator, rate_per_s: float, start_s: float, end_s: float) -> np.ndarray:
    n = rng.poisson(rate_per_s * (end_s - start_s))
    return np.sort(rng.uniform(start_s, end_s, n))


def _first_arrivals(sim: Simulator) -> np.ndarray:
    """Arrival time (s) of the oldest request of every batch."""
    arrivals = np.asarray(sim.admitted_arrivals_s)
    return arrivals[[b.first_request for b in sim.batches]]


def _recording(policy):
    """Wrap a policy to record (queue length, decision) at every epoch."""
    seen: list[tuple[int, object]] = []

    def wrapped(sim: Simulator):
        decision = policy.decide(sim)
        seen.append((sim.queue_len, decision))
        return decision

    wrapped.reset = policy.reset  # type: ignore[attr-defined]
    return wrapped, seen


# ------------------------------------------------------------------------------------ greedy
def test_greedy_dispatches_the_whole_queue_at_every_epoch(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=20.0, arrivals={"rate_per_s": 300.0})
    policy, seen = _recording(Greedy(config, model="LLM-2"))
    sim = simulate(config, policy, 3)
    assert all(d is not None for _, d in seen)
    sizes = [b.size for b in sim.batches]
    assert sizes == [min(q, config.max_batch_size) for q, _ in seen]
    assert {b.model for b in sim.batches} == {1}
    assert max(sizes) > 1  # at 300/s LLM-2 batches form while the worker is busy


# ------------------------------------------------------------------------------------ static
def test_static_dispatches_exactly_b_when_it_can(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=20.0, arrivals={"rate_per_s": 400.0})
    sim = simulate(config, Static(config, batch_size=8, model="LLM-3"), 0)
    # service(8, LLM-3) = 22 ms: 8 requests arrive faster than a batch runs, so always 8
    assert {b.size for b in sim.batches} == {8}
    assert sim.n_forced == 0


def test_static_dispatches_what_waits_at_the_system_timeout(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=30.0, arrivals={"rate_per_s": 20.0})
    sim = simulate(config, Static(config, batch_size=16), 1)
    waited = np.array([b.dispatch_s for b in sim.batches]) - _first_arrivals(sim)
    small = np.array([b.size < 16 for b in sim.batches])
    assert small.all()  # 16 requests never arrive within 100 ms at 20/s
    assert np.allclose(waited, config.max_wait_ms / 1000.0, atol=1e-12)
    assert sim.n_forced == 0  # static dispatches by itself, before the shield would


# ------------------------------------------------------------------------------------ timeout
@pytest.mark.parametrize("rate_per_s", [20.0, 150.0, 400.0])
def test_timeout_never_lets_the_oldest_wait_beyond_t_while_idle(
    default_config: SystemConfig, rate_per_s: float
) -> None:
    delay_ms = 25.0
    config = default_config.replace(horizon_s=30.0, arrivals={"rate_per_s": rate_per_s})
    sim = simulate(config, Timeout(config, preferred_batch_size=32, max_queue_delay_ms=delay_ms), 2)
    dispatch = np.array([b.dispatch_s for b in sim.batches])
    waited = dispatch - _first_arrivals(sim)
    late = np.flatnonzero(waited > delay_ms / 1000.0 + 1e-12)
    # a batch starts after its deadline only when the (single) worker was busy until then
    previous_end = np.array([sim.batches[i - 1].dispatch_s + sim.batches[i - 1].service_s for i in late])
    assert np.array_equal(dispatch[late], previous_end)
    assert sim.n_forced == 0
    # and it never dispatches before B requests wait or T has passed
    sizes = np.array([b.size for b in sim.batches])
    early = (waited < delay_ms / 1000.0 - 1e-12) & (sizes < 32)
    assert not early.any()


def test_timeout_wakes_exactly_at_its_delay_at_low_load(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=60.0, arrivals={"rate_per_s": 10.0})
    sim = simulate(config, Timeout(config, preferred_batch_size=64, max_queue_delay_ms=30.0), 4)
    waited = np.array([b.dispatch_s for b in sim.batches]) - _first_arrivals(sim)
    assert np.mean(np.abs(waited - 0.030) < 1e-12) > 0.9


# ------------------------------------------------------------------------------------ aimd
def test_aimd_update_rule(default_config: SystemConfig) -> None:
    aimd = Aimd(default_config, batch_slo_ms=50.0, additive_increase=2.0, multiplicative_decrease=0.5)
    assert aimd.cap == 1.0
    aimd.observe(0.050)  # within the objective (<=): additive increase
    aimd.observe(0.010)
    assert aimd.cap == 5.0
    aimd.observe(0.051)  # a miss: multiplicative decrease
    assert aimd.cap == 2.5
    for _ in range(5):
        aimd.observe(1.0)
    assert aimd.cap == 1.0  # never below one request
    for _ in range(100):
        aimd.observe(0.0)
    assert aimd.cap == default_config.max_batch_size  # never above the largest batch


def test_aimd_converges_to_the_largest_batch_within_its_objective(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=10.0, arrivals={"rate_per_s": 400.0})
    aimd = Aimd(config, batch_slo_ms=50.0)  # service(8, LLM-1) = 47 ms, service(9) = 51.5 ms
    sim = simulate(config, aimd, 0)
    sizes = np.array([b.size for b in sim.batches])
    services = np.array([b.service_s for b in sim.batches])
    assert sizes.max() == 9  # probes one above the objective, then backs off
    assert set(sizes[len(sizes) // 2 :]) <= {7, 8, 9}
    assert np.mean(services[len(sizes) // 2 :] <= 0.050) > 0.5
    assert list(sizes[:5]) == [1, 2, 3, 4, 5]  # additive increase from the initial cap


def test_aimd_learns_a_batch_latency_only_when_the_batch_completes() -> None:
    config = load_scenario("multi_gpu").replace(horizon_s=2.0)
    sim = simulate(config, Aimd(config), 0)
    first, second = sim.batches[0], sim.batches[1]
    assert second.dispatch_s < first.dispatch_s + first.service_s  # dispatched while 1st runs
    assert first.size == second.size == 1  # so the cap had not grown yet


# ------------------------------------------------------------------------------------ util_switch
class _StubSim:
    """The three things UtilSwitch.update_level reads."""

    def __init__(self) -> None:
        self.queue_len = 1
        self.now_s = 0.0
        self.busy = 0.0

    def busy_time_s(self) -> float:
        return self.busy


def test_util_switch_levels_with_hysteresis(default_config: SystemConfig) -> None:
    switch = UtilSwitch(default_config, queue_thresholds=[32, 128], hysteresis=0.5)
    sim = _StubSim()
    switch.reset(sim)  # type: ignore[arg-type]
    levels = []
    for q in (10, 40, 20, 10, 130, 70, 60, 15, 500, 1):
        sim.queue_len = q
        levels.append(switch.update_level(sim))  # type: ignore[arg-type]
    #        10 40 20 10 130 70 60 15 500 1
    assert levels == [0, 1, 1, 0, 2, 2, 1, 0, 2, 0]


def test_util_switch_follows_utilisation(default_config: SystemConfig) -> None:
    switch = UtilSwitch(
        default_config, queue_thresholds=[None, None], util_thresholds=[0.5, 0.9], util_tau_s=0.1
    )
    sim = _StubSim()
    switch.reset(sim)  # type: ignore[arg-type]
    for _ in range(20):  # busy all the time: utilisation -> 1
        sim.now_s += 0.1
        sim.busy += 0.1
        switch.update_level(sim)  # type: ignore[arg-type]
    assert switch.utilisation() > 0.9 and switch.level == 2
    for _ in range(40):  # idle: utilisation -> 0, back to the best model
        sim.now_s += 0.1
        switch.update_level(sim)  # type: ignore[arg-type]
    assert switch.utilisation() < 0.25 and switch.level == 0


def test_util_switch_downgrades_in_a_burst_and_upgrades_after(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=6.0)
    rng = np.random.default_rng(0)
    times = np.concatenate(
        [
            _poisson_times(rng, 20.0, 0.0, 2.0),
            _poisson_times(rng, 1000.0, 2.0, 3.0),  # above every model's capacity
            _poisson_times(rng, 20.0, 3.0, 6.0),
        ]
    )
    sim = Simulator(config)
    switch = UtilSwitch(config)
    sim.reset(arrivals=_arrivals(times))
    switch.reset(sim)
    sim.run(switch)
    dispatch = np.array([b.dispatch_s for b in sim.batches])
    models = np.array([b.model for b in sim.batches])
    assert set(models[dispatch < 2.0]) == {0}
    assert 2 in set(models[(dispatch >= 2.0) & (dispatch < 3.5)])
    assert set(models[dispatch > 4.5]) == {0}


def test_util_switch_beats_llm1_timeout_under_overload() -> None:
    config = load_scenario("high_load").replace(horizon_s=20.0)
    plain = simulate(config, Timeout(config), 0, record=False)
    switch = simulate(config, UtilSwitch(config), 0, record=False)
    assert plain.n_dropped > 0 and switch.n_dropped == 0
    assert switch.total_reward > plain.total_reward


# ------------------------------------------------------------------------------------ all
ALL = [
    ("greedy", {}),
    ("static", {"batch_size": 4}),
    ("timeout", {"preferred_batch_size": 16, "max_queue_delay_ms": 100.0, "model": "LLM-2"}),
    ("aimd", {"batch_slo_ms": 80.0}),
    ("util_switch", {"max_queue_delay_ms": 100.0, "queue_thresholds": [4, 12]}),
]


EXPRESSIBLE = [  # decisions the env's actions can express: whole queue, or table sizes
    ("greedy", {}, False),
    ("static", {"batch_size": 4}, True),
    ("timeout", {"preferred_batch_size": 16, "max_queue_delay_ms": 100.0, "model": "LLM-2"}, False),
    ("util_switch", {"max_queue_delay_ms": 100.0, "queue_thresholds": [4, 12]}, False),
]


@pytest.mark.parametrize(("name", "params", "batch_choice"), EXPRESSIBLE)
def test_predict_through_the_env_equals_the_fast_path(
    name: str, params: dict, batch_choice: bool, play_episode
) -> None:
    config = load_scenario("bursty").replace(horizon_s=8.0, env={"batch_choice": batch_choice})
    fast = simulate(config, BASELINES[name](config, **params), 11)

    env = DynamicBatchingEnv(config)
    play_episode(env, BASELINES[name](config, **params).bind(env), 11)
    assert env.sim.batches == fast.batches
    assert env.sim.total_reward == pytest.approx(fast.total_reward, rel=1e-12)


def test_timed_waits_are_plain_waits_through_the_env(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=10.0, arrivals={"rate_per_s": 30.0})
    env = DynamicBatchingEnv(config)
    agent = Timeout(config, preferred_batch_size=64, max_queue_delay_ms=20.0).bind(env)
    obs, _ = env.reset(seed=0)
    agent.reset(env.sim)
    actions, done = set(), False
    while not done:
        action, _ = agent.predict(obs)
        actions.add(int(action))
        obs, _, _, done, _ = env.step(int(action))
    assert actions == {0, 1}
    assert env.sim.n_forced == 0  # it still dispatches by itself, at the first event after T
    table = request_table(env.sim)
    assert (table.dispatch_s - table.arrival_s).max() <= config.max_wait_ms / 1000.0 + 1e-12


@pytest.mark.parametrize("scenario", ["default", "high_load", "bursty", "multi_gpu"])
def test_baselines_are_never_forced_and_rebuild_from_params(scenario: str) -> None:
    config = load_scenario(scenario).replace(horizon_s=5.0)
    for name, params in ALL:
        agent = BASELINES[name](config, **params)
        assert type(agent)(config, **agent.params()).params() == agent.params()
        sim = simulate(config, agent, 0, record=False)
        assert sim.n_forced == 0, name
        again = simulate(config, agent, 0, record=False)  # reset() restores the episode start
        assert again.total_reward == sim.total_reward, name


def test_bad_parameters_are_clear_errors(default_config: SystemConfig) -> None:
    with pytest.raises(ValueError, match="max_wait_ms"):
        Timeout(default_config, max_queue_delay_ms=150.0)
    with pytest.raises(ValueError, match="known: \\['LLM-1', 'LLM-2', 'LLM-3'\\]"):
        Greedy(default_config, model="LLM-9")
    with pytest.raises(ValueError, match="max_batch_size"):
        Static(default_config, batch_size=65)
    with pytest.raises(ValueError, match="non-decreasing"):
        UtilSwitch(default_config, queue_thresholds=[64, 8])
    with pytest.raises(ValueError, match="2 thresholds"):
        UtilSwitch(default_config, util_thresholds=[0.5])
    with pytest.raises(ValueError, match="multiplicative_decrease"):
        Aimd(default_config, multiplicative_decrease=1.5)
