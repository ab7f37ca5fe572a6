"""Arrival processes against theory: mean rate and inter-arrival CV within statistical tolerance."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from batchenv.arrivals import (
    DiurnalArrivals,
    MMPPArrivals,
    PoissonArrivals,
    TraceArrivals,
    episode_rate_per_s,
    make_arrival_process,
)
from batchenv.config import ConfigError, SystemConfig
from batchenv.traces import PACKAGE_TRACES, load_trace_times_s


def _take(process, seed: int, n: int, rate: float | None = None) -> np.ndarray:
    stream = process.stream(np.random.default_rng(seed), rate)
    times = np.concatenate(list(itertools.islice(stream, 1 + n // 512)))
    while len(times) < n:
        times = np.concatenate([times, next(stream)])
    return times[:n]


def _rate_and_cv(times: np.ndarray) -> tuple[float, float]:
    gaps = np.diff(times)
    return 1.0 / gaps.mean(), gaps.std() / gaps.mean()


def test_poisson_rate_and_cv() -> None:
    times = _take(PoissonArrivals(120.0), 0, 400_000)
    rate, cv = _rate_and_cv(times)
    # standard errors: rate ~ 120 / sqrt(n) = 0.19; cv ~ 1 / sqrt(n) = 0.0016
    assert rate == pytest.approx(120.0, abs=1.0)
    assert cv == pytest.approx(1.0, abs=0.01)
    assert np.all(np.diff(times) >= 0)


def test_streams_are_deterministic_and_seed_dependent() -> None:
    process = PoissonArrivals(50.0)
    assert np.array_equal(_take(process, 3, 5000), _take(process, 3, 5000))
    assert not np.array_equal(_take(process, 3, 5000), _take(process, 4, 5000))


def test_rescaling_keeps_the_shape() -> None:
    process = PoissonArrivals(50.0)
    base, scaled = _take(process, 9, 1000), _take(process, 9, 1000, rate=200.0)
    assert np.allclose(scaled * 4.0, base)


def test_mmpp_rate_and_cv_match_phase_type_theory() -> None:
    process = MMPPArrivals((50.0, 400.0), [[0.0, 0.2], [0.5, 0.0]])
    assert process.mean_rate_per_s == pytest.approx(50 * 0.5 / 0.7 + 400 * 0.2 / 0.7)
    mean_gap, scv = process.interarrival_moments()
    assert mean_gap == pytest.approx(1 / process.mean_rate_per_s)
    assert scv > 1.5  # bursty: far above Poisson's 1
    # Long run over many phase switches (mean cycle 7 s): ~ 4000 s of arrivals.
    times = _take(process, 1, 600_000)
    rate, cv = _rate_and_cv(times)
    assert rate == pytest.approx(process.mean_rate_per_s, rel=0.03)
    assert cv**2 == pytest.approx(scv, rel=0.05)


def test_mmpp_three_phases_with_matrix_and_uniform_leave_rates() -> None:
    config = SystemConfig(
        arrivals={
            "process": "mmpp",
            "rate_per_s": None,
            "rates_per_s": [10, 100, 300],
            "switch_rates_per_s": [1.0, 2.0, 4.0],
        }
    )
    process = make_arrival_process(config)
    # uniform jumps: Q[i][j] = leave_i / 2; stationary pi proportional to 1 / leave_i
    weights = np.array([1.0, 0.5, 0.25])
    pi = weights / weights.sum()
    assert process.mean_rate_per_s == pytest.approx(float(pi @ [10, 100, 300]))
    times = _take(process, 2, 300_000)
    assert _rate_and_cv(times)[0] == pytest.approx(process.mean_rate_per_s, rel=0.03)


def test_diurnal_rate_cv_and_shape() -> None:
    amplitude, period = 0.5, 20.0
    process = DiurnalArrivals(200.0, amplitude, period)
    times = _take(process, 5, 400_000)  # 2000 s = 100 periods
    rate, cv = _rate_and_cv(times)
    assert rate == pytest.approx(200.0, rel=0.01)
    # slowly varying rate: inter-arrival law is a lambda-weighted mixture of exponentials,
    # CV^2 = 2 / sqrt(1 - a^2) - 1
    assert cv**2 == pytest.approx(2 / math.sqrt(1 - amplitude**2) - 1, rel=0.02)
    # counts per phase bin follow the integral of the rate
    whole = times[times < period * math.floor(times[-1] / period)]
    phase = (whole % period) / period
    counts, edges = np.histogram(phase, bins=8, range=(0, 1))
    n_periods = math.floor(times[-1] / period)
    expected = [
        200.0
        * period
        * n_periods
        * ((b - a) - amplitude / (2 * math.pi) * (math.cos(2 * math.pi * b) - math.cos(2 * math.pi * a)))
        for a, b in itertools.pairwise(edges)
    ]
    assert counts == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("target", [50.0, 400.0])
def test_trace_replay_rescales_to_target_rate_and_keeps_cv(target: float) -> None:
    raw = load_trace_times_s(str(PACKAGE_TRACES["azure_conv_excerpt"]))
    assert len(raw) == 3001
    raw_gaps = np.diff(raw)
    process = TraceArrivals(raw, target, random_start=False)
    times = _take(process, 0, len(raw_gaps))  # exactly one pass through the trace
    rate, cv = _rate_and_cv(np.concatenate([[0.0], times]))
    assert rate == pytest.approx(target, rel=1e-9)
    assert cv == pytest.approx(raw_gaps.std() / raw_gaps.mean(), rel=1e-9)
    assert cv == pytest.approx(1.09, abs=0.02)  # the trace is burstier than Poisson


@pytest.mark.parametrize("times", [[0.0, 5e-324, 5e-324], [0.0, math.nan, 1.0]])
def test_a_trace_that_cannot_be_rescaled_is_a_config_error(times: list[float]) -> None:
    # the mean gap rounds to 0 (or is NaN): the rescaled gaps would be NaN and an episode never end
    with pytest.raises(ConfigError, match=r"^arrivals.trace_path: the trace cannot be replayed"):
        TraceArrivals(np.array(times), 50.0, random_start=False)


def test_packaged_excerpt_is_the_head_of_the_full_trace(shared_trace: Path) -> None:
    """The packaged hour is the full trace, byte for byte; the excerpt its first rows."""
    assert PACKAGE_TRACES["azure_conv_hour"].read_bytes() == shared_trace.read_bytes()
    excerpt = load_trace_times_s(str(PACKAGE_TRACES["azure_conv_excerpt"]))
    full = load_trace_times_s(str(shared_trace))
    assert len(full) == 19366
    np.testing.assert_array_equal(excerpt, full[: len(excerpt)])
    cv_excerpt, cv_full = (np.diff(x).std() / np.diff(x).mean() for x in (excerpt, full))
    assert cv_excerpt == pytest.approx(cv_full, abs=0.01)


def test_trace_wraps_and_random_start_depends_on_seed() -> None:
    config = SystemConfig(
        arrivals={
            "process": "trace",
            "rate_per_s": 100.0,
            "trace_path": "package:azure_conv_excerpt",
        }
    )
    process = make_arrival_process(config)
    n = len(process.unit_gaps)
    config = SystemConfig(arrivals={**config.arrivals.__dict__, "random_start": False})
    process = make_arrival_process(config)
    times = np.concatenate([[0.0], _take(process, 0, 3 * n)])  # three whole passes
    assert np.all(np.diff(times) >= 0)
    assert _rate_and_cv(times)[0] == pytest.approx(100.0, rel=1e-9)
    process = make_arrival_process(SystemConfig(arrivals={**config.arrivals.__dict__, "random_start": True}))
    assert not np.array_equal(_take(process, 0, 100), _take(process, 1, 100))


def test_domain_randomised_rate_is_drawn_from_the_range() -> None:
    config = SystemConfig(arrivals={"rate_per_s": 100.0, "rate_range_per_s": [20.0, 40.0]})
    rates = [episode_rate_per_s(config, np.random.default_rng(s)) for s in range(200)]
    assert min(rates) >= 20.0 and max(rates) <= 40.0
    assert np.std(rates) > 4.0  # uniform on [20, 40]: std 5.8
    fixed = SystemConfig()
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert episode_rate_per_s(fixed, rng) == 100.0
    assert rng.bit_generator.state == state  # a fixed rate draws nothing
