"""Workload mixtures and log-uniform rates (arrivals.process: mixture, rate_range_scale: log) and
the observation options for them (log-scaled rates, extra time constants, unbiased estimates)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from batchenv.arrivals import MixtureArrivals, episode_rate_per_s, make_arrival_process, start_episode
from batchenv.config import ConfigError, SystemConfig
from batchenv.estimators import EwmaRate
from batchenv.observation import ObservationBuilder
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate

POISSON = {"process": "poisson", "rate_per_s": 10.0}
MIX = {"process": "mixture", "rate_per_s": None}
MMPP = {"process": "mmpp", "rate_per_s": None, "rates_per_s": [5.0, 50.0], "switch_rates_per_s": [1.0, 1.0]}


def _mixture(*components: tuple[float, dict]) -> SystemConfig:
    return SystemConfig(
        arrivals={
            "process": "mixture",
            "rate_per_s": None,
            "components": [{"weight": w, "arrivals": a} for w, a in components],
        }
    )


def test_log_uniform_rates_cover_the_range_evenly_in_log() -> None:
    config = SystemConfig(
        arrivals={"rate_per_s": 100.0, "rate_range_per_s": [1.0, 1000.0], "rate_range_scale": "log"}
    )
    rates = np.array([episode_rate_per_s(config, np.random.default_rng(s)) for s in range(2000)])
    assert rates.min() >= 1.0 and rates.max() <= 1000.0
    decades = np.histogram(np.log10(rates), bins=[0, 1, 2, 3])[0] / len(rates)
    assert np.allclose(decades, 1 / 3, atol=0.05)  # uniform would put 90% in the last decade
    assert np.median(rates) == pytest.approx(math.sqrt(1000.0), rel=0.2)


def test_mixture_draws_components_by_weight_deterministically() -> None:
    config = _mixture((3.0, POISSON), (1.0, MMPP))
    process = make_arrival_process(config)
    assert isinstance(process, MixtureArrivals)
    assert process.mean_rate_per_s == pytest.approx(0.75 * 10.0 + 0.25 * 27.5)
    drawn = [process.episode(np.random.default_rng(s))[0] for s in range(2000)]
    assert np.mean(drawn) == pytest.approx(0.25, abs=0.03)
    a = start_episode(process, config, np.random.default_rng(7))
    b = start_episode(process, config, np.random.default_rng(7))
    assert a[0] == b[0] and np.array_equal(next(a[1]), next(b[1]))


def test_mixture_component_rate_is_the_episode_rate() -> None:
    component = {**POISSON, "rate_range_per_s": [2.0, 400.0], "rate_range_scale": "log"}
    config = _mixture((1.0, component)).replace(horizon_s=30.0)
    sim = Simulator(config, record=True)
    for seed in range(5):
        simulate(config, lambda s: (0, 64), seed, sim=sim)
        assert 2.0 <= sim.episode_rate_per_s <= 400.0
        assert sim.n_arrived / 30.0 == pytest.approx(sim.episode_rate_per_s, rel=0.5)


def test_a_mixture_rescaled_scales_every_component_and_drops_ranges() -> None:
    config = _mixture((1.0, {**POISSON, "rate_range_per_s": [1.0, 100.0]}), (1.0, MMPP))
    fixed = config.at_rate(2 * config.arrivals.mean_rate_per_s)
    rates = [c.arrivals.mean_rate_per_s for c in fixed.arrivals.components]
    assert rates == pytest.approx([20.0, 55.0])
    assert all(c.arrivals.rate_range_per_s is None for c in fixed.arrivals.components)


def test_default_mixture_replays_only_training_halves_of_traces() -> None:
    config = load_scenario("default_mixture")
    traces = [c.arrivals for c in config.arrivals.components if c.arrivals.process == "trace"]
    assert len(traces) >= 2
    assert all(a.trace_window is not None and a.trace_window[1] <= 0.5 for a in traces)
    rates = [c.arrivals.rate_range_per_s for c in config.arrivals.components]
    assert min(r[0] for r in rates) <= 1.0 and max(r[1] for r in rates) >= 500.0


@pytest.mark.parametrize(
    ("arrivals", "field"),
    [
        (MIX, "arrivals.components"),
        ({**MIX, "components": []}, "arrivals.components"),
        ({**MIX, "rate_per_s": 5.0, "components": [{"arrivals": POISSON}]}, "arrivals.rate_per_s"),
        ({**MIX, "components": [{"weight": 0, "arrivals": POISSON}]}, "arrivals.components[0].weight"),
        (
            {**MIX, "components": [{"weight": 1, "arrivals": {"rate_per_s": -1}}]},
            "arrivals.components[0].arrivals.rate_per_s",
        ),
        (
            {**MIX, "components": [{"arrivals": {**MIX, "components": []}}]},
            "arrivals.components[0].arrivals.process",
        ),
        ({**MIX, "components": [{"arrivals": POISSON, "share": 1}]}, "arrivals.components[0].share"),
        ({**POISSON, "components": [{"arrivals": POISSON}]}, "arrivals.components"),
        (
            {"rate_per_s": 5.0, "rate_range_per_s": [1, 9], "rate_range_scale": "exp"},
            "arrivals.rate_range_scale",
        ),
        ({"rate_per_s": 5.0, "rate_range_scale": "log"}, "arrivals.rate_range_scale"),
    ],
)
def test_bad_mixtures_name_the_field(arrivals: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        SystemConfig(arrivals=arrivals)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"rate_scale": "sqrt"}, "env.rate_scale"),
        ({"extra_rate_taus_s": [0.1, -1.0]}, "env.extra_rate_taus_s[1]"),
        ({"extra_rate_taus_s": [1.0] * 9}, "env.extra_rate_taus_s"),
        ({"rate_ewma_unbiased": "yes"}, "env.rate_ewma_unbiased"),
    ],
)
def test_bad_observation_options_name_the_field(env: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        SystemConfig(env=env)
    assert err.value.field == field


def test_new_options_at_their_defaults_leave_the_yaml_unchanged() -> None:
    text = SystemConfig().to_yaml()
    for name in ("rate_range_scale", "components", "rate_scale", "extra_rate_taus_s", "rate_ewma_unbiased"):
        assert name not in text


def test_unbiased_ewma_is_the_mean_rate_from_the_first_interval() -> None:
    plain, unbiased = EwmaRate(10.0), EwmaRate(10.0, unbiased=True)
    for t in (0.5, 1.0, 1.5):
        count = 20.0 * t  # a steady 20/s
        plain.update(t, count)
        assert unbiased.update(t, count) == pytest.approx(20.0)
    assert plain.value < 3.0  # averaged with its initial 0
    unbiased.reset(5.0, 2.0, 0.0, warm=True)  # a warm start is not corrected
    assert unbiased.update(3.0, 5.0) == pytest.approx(5.0)


def test_log_scale_and_extra_time_constants_in_the_observation() -> None:
    base = SystemConfig(arrivals={"rate_per_s": 5.0})
    options = {"rate_scale": "log", "extra_rate_taus_s": [0.05, 10.0], "rate_ewma_unbiased": True}
    config = base.replace(env=options)
    builder = ObservationBuilder(config)
    assert builder.space.shape == (10,)
    assert builder.names[-2:] == ("arrival_rate_tau_0.05s", "arrival_rate_tau_10s")
    sim = Simulator(config)
    sim.reset(0)
    for _ in itertools.count():
        obs = builder(sim)
        assert builder.space.contains(obs)
        if sim.now_s > 20.0:
            break
        sim.step((0, 64))
    expected = math.log1p(5.0) / math.log1p(2 * builder.max_throughput_per_s)
    assert obs[-1] == pytest.approx(expected, rel=0.3)  # the 10 s estimate of 5/s
    linear = ObservationBuilder(base)
    assert linear.space.shape == (8,)
