"""Episode metrics (batchenv/metrics.py) where a ratio has nothing to divide by: NaN, never 0."""

from __future__ import annotations

import math

import numpy as np

from agents.hindsight.replay import arrival_stream
from agents.registry import make_agent
from batchenv.metrics import ScoreTerms, compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator


def _episode(arrivals_s: list[float], horizon_s: float, agent: str = "greedy"):
    config = load_scenario("default").replace(horizon_s=horizon_s)
    sim = Simulator(config, record=True)
    sim.reset(arrivals=arrival_stream(np.asarray(arrivals_s, dtype=float)), horizon_s=horizon_s)
    sim.run(make_agent(agent, config))
    return config, compute_metrics(sim)


def test_an_episode_without_arrivals_has_no_ratio() -> None:
    _, m = _episode([], 1.0)
    assert m.n_arrived == m.n_served == m.n_batches == 0
    for name in ("score_per_request", "cost_per_request", "drop_rate", "mean_batch_size"):
        assert math.isnan(getattr(m, name)), name
    assert all(math.isnan(share) for share in m.model_mix.values())
    assert math.isnan(m.latency_mean_ms) and math.isnan(m.slo_attainment) and math.isnan(m.mean_quality)
    # rates per second of an episode that ran are defined: nothing happened
    assert m.throughput_per_s == m.arrival_rate_per_s == m.utilisation == 0.0
    assert math.isnan(ScoreTerms(0, 0, 0, (0, 0, 0), 0.0).score_per_request((1.0, 0.97, 0.92), _reward()))


def test_arrivals_without_a_batch_have_a_cost_but_no_batch_size() -> None:
    """static(B=8) waits for eight requests or max_wait_ms; two arrivals in 50 ms: no batch. The
    two requests still queued at the horizon cost best quality + w * their wait each."""
    config, m = _episode([0.010, 0.020], 0.05, "static(B=8)")
    assert m.n_arrived == 2 and m.n_batches == 0 and m.n_waiting == 2
    assert math.isnan(m.mean_batch_size) and all(math.isnan(s) for s in m.model_mix.values())
    assert m.drop_rate == 0.0
    w = config.reward.w_latency_per_s
    expected = max(config.qualities) + w * ((0.05 - 0.010) + (0.05 - 0.020)) / 2
    assert math.isclose(m.cost_per_request, expected, rel_tol=1e-12)
    assert math.isclose(m.score_per_request, max(config.qualities) - m.cost_per_request, rel_tol=1e-12)


def test_a_served_episode_keeps_its_numbers() -> None:
    _, m = _episode([0.010, 0.020, 0.300], 1.0)
    assert m.n_served == 3 and m.mean_batch_size == 3 / m.n_batches and m.drop_rate == 0.0
    assert sum(m.model_mix.values()) == 1.0


def _reward():
    return load_scenario("default").reward
