"""evaluation.stats.closure_interval: the share of a baseline's gap closed, with a paired
bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.stats import closure_interval


def test_closure_is_the_share_of_the_gap_closed_and_its_interval_holds_it() -> None:
    rng = np.random.default_rng(3)
    ideal = 1.0 + 0.1 * rng.standard_normal(40)
    baseline = ideal + 0.10 + 0.01 * rng.standard_normal(40)
    agent = ideal + 0.01 + 0.01 * rng.standard_normal(40)
    point, low, high = closure_interval(agent, baseline, ideal)
    expected = 1 - (agent.mean() - ideal.mean()) / (baseline.mean() - ideal.mean())
    assert point == pytest.approx(expected, rel=1e-12)
    assert low < point < high and low > 0.85 and high < 0.95
    # the same interval on every call (its own generator), narrower with more seeds' worth of data
    assert closure_interval(agent, baseline, ideal) == (point, low, high)
    _, low_4, high_4 = closure_interval(np.tile(agent, 4), np.tile(baseline, 4), np.tile(ideal, 4))
    assert high_4 - low_4 < high - low


def test_the_pairing_matters() -> None:
    """Costs that move together seed by seed give a tight interval; shuffling the agent's
    seeds (breaking the pairing) widens it."""
    rng = np.random.default_rng(5)
    ideal = 1.0 + 0.3 * rng.standard_normal(30)
    baseline, agent = ideal + 0.1, ideal + 0.02
    _, low, high = closure_interval(agent, baseline, ideal)
    assert high - low < 1e-9  # every resample has the same gaps
    _, low_s, high_s = closure_interval(rng.permutation(agent), baseline, ideal)
    assert high_s - low_s > 0.1


def test_no_gap_to_close_gives_nan_and_bad_input_is_refused() -> None:
    same = [1.0, 1.1, 0.9]
    point, low, high = closure_interval(same, same, same)
    assert math.isnan(point) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="one length >= 2"):
        closure_interval([1.0, 2.0], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="one length >= 2"):
        closure_interval([1.0], [1.0], [1.0])
