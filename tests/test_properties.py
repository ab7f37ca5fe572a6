"""Property tests over random configs and random action sequences (hypothesis)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchenv.arrivals import make_arrival_process
from batchenv.config import SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import request_scores, request_table


@st.composite
def configs(draw) -> SystemConfig:
    process = draw(st.sampled_from(["poisson", "mmpp", "diurnal"]))
    rate = draw(st.floats(1.0, 2500.0))
    if process == "mmpp":
        arrivals = {
            "process": "mmpp",
            "rate_per_s": None,
            "rates_per_s": [rate / 10, rate],
            "switch_rates_per_s": [draw(st.floats(0.5, 20.0)), draw(st.floats(0.5, 20.0))],
        }
    elif process == "diurnal":
        arrivals = {
            "process": "diurnal",
            "rate_per_s": rate,
            "amplitude": draw(st.floats(0.0, 0.95)),
            "period_s": draw(st.floats(0.1, 5.0)),
        }
    else:
        arrivals = {"process": "poisson", "rate_per_s": rate}
    return SystemConfig(
        n_workers=draw(st.integers(1, 3)),
        max_batch_size=draw(st.integers(1, 64)),
        queue_capacity=draw(st.integers(1, 80)),
        max_wait_ms=draw(st.floats(0.5, 200.0)),
        slo_ms=draw(st.floats(5.0, 300.0)),
        horizon_s=draw(st.floats(0.05, 2.0)),
        timing={"mode": draw(st.sampled_from(["interp", "pad"]))},
        arrivals=arrivals,
        reward={"w_slo": draw(st.floats(0.0, 1.0)), "w_drop": draw(st.floats(0.0, 2.0))},
        env={"batch_choice": draw(st.booleans())},
    )


def _arrival_times(config: SystemConfig, seed: int, horizon_s: float) -> np.ndarray:
    """The episode's arrivals, drawn independently of the env from the same seed."""
    stream = make_arrival_process(config).stream(np.random.default_rng(seed), config.arrivals.mean_rate_per_s)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.size and chunk[-1] >= horizon_s:
            break
    times = np.concatenate(chunks)
    return times[times < horizon_s]


def _idle_gaps(sim, worker: int) -> list[tuple[float, float]]:
    """Intervals (s) during which ``worker`` was idle, from the batch records."""
    gaps, free = [], 0.0
    for batch in sim.batches:
        if batch.worker == worker:
            gaps.append((free, batch.dispatch_s))
            free = batch.dispatch_s + batch.service_s
    gaps.append((free, float("inf")))
    return gaps


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=configs(),
    seed=st.integers(0, 2**32 - 1),
    actions=st.lists(st.integers(0, 10_000), min_size=1, max_size=300),
)
def test_invariants_hold_for_any_actions(config: SystemConfig, seed: int, actions: list[int]) -> None:
    env = DynamicBatchingEnv(config)
    arrivals = _arrival_times(config, seed, config.horizon_s)
    env.reset(seed=seed)
    sim = env.sim
    total = 0.0
    n = env.action_space.n
    for action in itertools.cycle(actions):
        # conservation at every step, against an independent count of the arrivals so far
        assert sim.n_arrived == int(np.sum(arrivals <= sim.now_s))
        assert sim.n_arrived == sim.n_completed + sim.n_in_service + sim.queue_len + sim.n_dropped
        assert 0 <= sim.queue_len <= config.queue_capacity
        # at an epoch where the oldest has waited max_wait (or longer, if every worker was busy),
        # wait is masked out and the request leaves now (checked per request below)
        if sim.queue_len and sim.n_idle_workers and sim.now_s >= sim.oldest_arrival_s + sim.max_wait_s:
            assert not env.action_masks()[0]
        obs, reward, _terminated, truncated, _ = env.step(action % n)
        assert env.observation_space.contains(obs)
        total += reward
        if truncated:
            break
    assert sim.n_arrived == len(arrivals)
    # the reward decomposition: the return is the sum of the per-request scores
    assert total == pytest.approx(float(request_scores(sim).sum()), rel=1e-9, abs=1e-9)
    # per request: a wait beyond max_wait only ever happens while every worker is busy
    table = request_table(sim)
    late = table.dispatch_s - table.arrival_s > sim.max_wait_s * (1 + 1e-12)
    for arrival, dispatch in zip(table.arrival_s[late], table.dispatch_s[late], strict=True):
        start = arrival + sim.max_wait_s
        for worker in range(config.n_workers):
            for idle_from, idle_to in _idle_gaps(sim, worker):
                overlap = min(idle_to, dispatch) - max(idle_from, start)
                assert overlap <= 1e-12, (arrival, dispatch, worker, idle_from, idle_to)
