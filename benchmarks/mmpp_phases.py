"""Markov-modulated Poisson arrivals with their phase path recorded, and the rate-aware oracle
that knows the phase: the yardstick of the bursty benchmarks (proposed_eval.py, robust_eval.py).

The oracle is the proposed scheduler's table (:class:`agents.proposed.Proposed`, rate estimation
off) looked up at the true rate of the current phase: the SMDP optimum for Poisson arrivals at
that rate, switched the moment the phase changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.proposed import Proposed
from batchenv.config import ArrivalConfig
from batchenv.sim import Decision, Simulator

__all__ = ["PhaseRateOracle", "mmpp_with_phases"]


def mmpp_with_phases(
    arrivals: ArrivalConfig, seed: int, horizon_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times (s), phase start times (s) and phase rates (requests/s) of a two-phase MMPP
    (``arrivals.rates_per_s``, leaving rates ``arrivals.switch_rates_per_s``), started in its
    stationary law, up to at least ``horizon_s``."""
    rates = np.asarray(arrivals.rates_per_s, dtype=float)
    switch = np.asarray(arrivals.switch_rates_per_s, dtype=float)
    leave = switch.sum(axis=1) if switch.ndim == 2 else switch
    if len(rates) != 2:
        raise ValueError(f"mmpp_with_phases needs two phases, got {len(rates)}")
    rng = np.random.default_rng(seed)
    stationary = (1.0 / leave) / (1.0 / leave).sum()
    phase = int(rng.choice(2, p=stationary))
    t, times, starts, phase_rates = 0.0, [], [], []
    while t < horizon_s:
        end = t + rng.exponential(1.0 / leave[phase])
        times.append(np.sort(rng.uniform(t, end, rng.poisson(rates[phase] * (end - t)))))
        starts.append(t)
        phase_rates.append(rates[phase])
        t, phase = end, 1 - phase
    return np.concatenate(times), np.asarray(starts), np.asarray(phase_rates)


class PhaseRateOracle:
    """The proposed scheduler's table driven by the true rate of the current phase.

    :ivar starts: phase start times (s), set before each episode.
    :ivar rates: phase rates (requests/s), set before each episode.
    """

    def __init__(self, config: Any) -> None:
        self.inner = Proposed(config, rate_estimation=False)
        self.starts = np.zeros(1)
        self.rates = np.ones(1)

    def reset(self, sim: Simulator) -> None:
        self.inner.reset(sim)

    def __call__(self, sim: Simulator) -> Decision:
        index = int(np.searchsorted(self.starts, sim.now_s, side="right")) - 1
        self.inner.nominal_rate_per_s = float(self.rates[index])
        return self.inner.decide(sim)
