"""The event-driven simulator: hand-checked trajectories, queueing theory, overload, shield."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

from batchenv.config import SystemConfig
from batchenv.metrics import compute_metrics, request_scores, request_table
from batchenv.sim import Simulator, simulate
from batchenv.timing import service_ms


def _fixed_arrivals(times: list[float]) -> Iterator[np.ndarray]:
    yield np.asarray(times, dtype=float)
    while True:
        yield np.array([1e9])


def test_hand_computed_trajectory(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=0.5)
    sim = Simulator(config)
    sim.reset(arrivals=_fixed_arrivals([0.0, 0.010, 0.030]))
    assert (sim.now_s, sim.queue_len) == (0.0, 1)
    sim.wait()  # next event: the arrival at 10 ms
    assert (sim.now_s, sim.queue_len) == (0.010, 2)
    sim.dispatch(0, 64)  # b = 2 on LLM-1: 2 + 2.5 + 15 + 1 = 20.5 ms, busy until 30.5 ms
    # the arrival at 30 ms finds the worker busy: next epoch when it frees
    assert sim.now_s == pytest.approx(0.0305) and sim.queue_len == 1
    assert sim.free_at_s == [0.010 + 0.0205]
    assert not sim.shielded
    forced = sim.wait()  # waits until the request at 30 ms has waited max_wait (100 ms)
    assert not forced and sim.now_s == 0.030 + 0.1 and sim.shielded
    assert sim.wait() is True  # the shield turns it into a dispatch on the last model
    assert sim.done and sim.now_s == 0.5 and sim.n_forced == 1
    table = request_table(sim)
    assert table.latency_s.tolist() == pytest.approx([0.0305, 0.0205, 0.1 + 0.015])
    assert table.model.tolist() == [0, 0, 0] and table.batch_size.tolist() == [2, 2, 1]
    expected = 3.0 - (0.0305 + 0.0205 + 0.115)
    assert sim.total_reward == pytest.approx(expected, abs=1e-12)
    assert request_scores(sim).sum() == pytest.approx(expected, abs=1e-12)


def test_dispatch_outside_an_epoch_is_an_error(default_config: SystemConfig) -> None:
    sim = Simulator(default_config)
    sim.reset(arrivals=_fixed_arrivals([0.0, 0.001]))
    sim.dispatch(0, 1)  # worker busy until 15 ms; the arrival at 1 ms waits
    assert sim.now_s == pytest.approx(0.015)
    with pytest.raises(ValueError, match="model must be in"):
        sim.dispatch(5, 1)


def _single_model_config(rate_per_s: float, horizon_s: float) -> SystemConfig:
    base = SystemConfig()
    return base.replace(models=base.models[:1], horizon_s=horizon_s, arrivals={"rate_per_s": rate_per_s})


@pytest.mark.parametrize("rate_per_s", [30.0, 45.0])
def test_md1_latency_matches_pollaczek_khinchine(rate_per_s: float) -> None:
    """Batch size 1, one model: an M/D/1 queue. E[latency] = S + lambda S^2 / (2 (1 - rho))."""
    config = _single_model_config(rate_per_s, horizon_s=6000.0)
    service_s = service_ms(config, 0, 1) / 1000.0
    rho = rate_per_s * service_s
    sim = simulate(config, lambda sim: (0, 1), seed=11, record=False)
    metrics = compute_metrics(sim)
    theory_ms = 1000.0 * (service_s + rate_per_s * service_s**2 / (2 * (1 - rho)))
    assert metrics.latency_mean_ms == pytest.approx(theory_ms, rel=0.02)
    assert metrics.utilisation == pytest.approx(rho, rel=0.01)
    assert metrics.mean_batch_size == 1.0 and metrics.n_dropped == 0


def test_utilisation_is_rate_times_mean_service(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=600.0)
    sim = simulate(config, lambda sim: (2, 8), seed=3)
    table = request_table(sim)
    service = (table.completion_s - table.dispatch_s) / table.batch_size  # per-request share
    metrics = compute_metrics(sim)
    assert metrics.utilisation == pytest.approx(metrics.throughput_per_s * service.mean(), rel=1e-3)


def _overload(config: SystemConfig, n_requests: float, record: bool) -> Simulator:
    """Greedy on LLM-3 at 5x its capacity for about ``n_requests`` arrivals."""
    rate = 5 * 64 / 0.111  # LLM-3 at batch 64 serves 576.6 requests/s
    config = config.replace(horizon_s=n_requests / rate, arrivals={"rate_per_s": rate})
    return simulate(config, lambda s: (2, 64), seed=0, record=record)


def test_overload_drops_are_counted_and_throughput_is_capacity(
    default_config: SystemConfig,
) -> None:
    sim = _overload(default_config, 1e6, record=False)
    assert sim.n_arrived == pytest.approx(1e6, rel=0.01)
    assert sim.n_arrived == sim.n_completed + sim.n_in_service + sim.queue_len + sim.n_dropped
    assert sim.n_dropped == pytest.approx(sim.n_arrived * 0.8, rel=0.01)
    assert sim.queue_len == default_config.queue_capacity
    metrics = compute_metrics(sim)
    assert metrics.throughput_per_s == pytest.approx(64 / 0.111, rel=0.01)
    assert metrics.utilisation == pytest.approx(1.0, abs=1e-3)
    assert sim.total_reward == pytest.approx(
        sim.sum_quality - sim.sum_latency_s - sim.n_dropped - _waiting_area(sim), rel=1e-9
    )
    # nothing grows with the episode: the queue list is compacted, no records are kept
    assert len(sim._queue) <= default_config.queue_capacity + 4096
    assert sim.batches == [] and sim.drop_times_s == []


def test_overload_memory_does_not_grow_with_the_horizon(default_config: SystemConfig) -> None:
    peaks = []
    for n_requests in (5e4, 2e5):
        tracemalloc.start()
        _overload(default_config, n_requests, record=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2 * 2**20, f"peak {peaks[1] / 2**20:.2f} MiB"
    assert peaks[1] < 1.3 * peaks[0], peaks  # 4x the requests, about the same memory
    tracemalloc.start()
    _overload(default_config, 2e5, record=True)  # with records, memory does grow: the check bites
    assert tracemalloc.get_traced_memory()[1] > 2 * peaks[1]
    tracemalloc.stop()


def _waiting_area(sim: Simulator) -> float:
    return sum(sim.now_s - a for a in sim.waiting_arrivals_s())


def test_simulate_is_deterministic_and_common_across_policies(default_config: SystemConfig) -> None:
    a = simulate(default_config, lambda s: (0, 64), seed=5)
    b = simulate(default_config, lambda s: (0, 64), seed=5)
    c = simulate(default_config, lambda s: None if s.queue_len < 10 else (2, 64), seed=5)
    d = simulate(default_config, lambda s: (0, 64), seed=6)
    assert compute_metrics(a) == compute_metrics(b)
    assert a.admitted_arrivals_s == b.admitted_arrivals_s
    assert a.admitted_arrivals_s[:1000] == c.admitted_arrivals_s[:1000]  # common random numbers
    assert a.admitted_arrivals_s[:10] != d.admitted_arrivals_s[:10]


def test_multi_worker_dispatch_uses_the_lowest_idle_worker() -> None:
    config = SystemConfig(n_workers=3, horizon_s=0.1)
    sim = Simulator(config)
    sim.reset(arrivals=_fixed_arrivals([0.0, 0.0, 0.0, 0.001]))
    assert sim.queue_len == 3 and sim.n_idle_workers == 3
    sim.dispatch(0, 1)
    assert sim.now_s == 0.0 and sim.n_idle_workers == 2  # still an epoch: zero-time step
    sim.dispatch(1, 1)
    sim.dispatch(2, 1)
    assert [b.worker for b in sim.batches] == [0, 1, 2]
    assert sim.now_s == pytest.approx(0.009)  # LLM-3 at b = 1: 2 + 2 + 4 + 1 ms frees worker 2
    sim.dispatch(0, 1)
    assert sim.batches[-1].worker == 2


def test_timed_wait_wakes_when_the_oldest_has_waited_the_timer(default_config: SystemConfig) -> None:
    sim = Simulator(default_config.replace(horizon_s=1.0))
    sim.reset(arrivals=_fixed_arrivals([0.0, 0.010, 0.5]))
    sim.step(0.030)  # wait, waking when the request of t = 0 has waited 30 ms
    assert sim.now_s == 0.010 and sim.queue_len == 2  # an arrival came first
    sim.step(0.030)
    assert sim.now_s == 0.0 + 0.030 and sim.now_s >= sim.oldest_arrival_s + 0.030
    sim.step(0.030)  # an expired timer is a plain wait: the next event is max_wait
    assert sim.now_s == 0.0 + 0.1
    assert sim.step(0.5) is True  # timers never extend max_wait: the shield still applies
    sim.step(0.2)  # a timer beyond max_wait is ignored
    assert sim.now_s == 0.5 + 0.1 and sim.n_forced == 1


def test_timeout_policy_dispatches_exactly_at_its_timer(default_config: SystemConfig) -> None:
    timer_s = 0.025

    def timeout_policy(sim: Simulator):
        if sim.queue_len >= 32 or sim.now_s >= sim.oldest_arrival_s + timer_s:
            return (1, 64)
        return timer_s

    sim = simulate(default_config.replace(arrivals={"rate_per_s": 20.0}, horizon_s=200.0), timeout_policy, 1)
    table = request_table(sim)
    first = table.arrival_s[[b.first_request for b in sim.batches]]
    dispatch = np.array([b.dispatch_s for b in sim.batches])
    waited = dispatch - first
    assert sim.n_forced == 0
    # waits beyond the timer only when the worker was busy: such batches start as it frees
    late = np.flatnonzero(waited > timer_s + 1e-12)
    assert late.size and late[0] > 0
    previous_end = np.array([sim.batches[i - 1].dispatch_s + sim.batches[i - 1].service_s for i in late])
    assert np.array_equal(dispatch[late], previous_end)
    # at 20 requests/s most batches are dispatched by the timer, at exactly 25 ms
    assert np.mean(np.abs(waited - timer_s) < 1e-12) > 0.5
