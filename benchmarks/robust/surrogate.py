"""Poisson surrogates of a recorded trace half, replayed the way the half is replayed.

A trace scenario's half is one recorded realization of its arrival process: the ``_test`` half of
``azure_trace_30`` holds 1,475 arrivals (8.7 s at 30% load), replayed in a loop from a random
start in every 60 s episode, so its p99 rests on a few dozen requests of that one realization and
the seeds of an evaluation only move the start. A *surrogate* has the half's number of gaps and
mean rate, but its gaps are drawn independently from an exponential distribution (the gaps of a
Poisson process), and it is replayed exactly as the half is (:class:`batchenv.arrivals
.TraceArrivals`, random start, wrap-around). Over many surrogates the spread of a verdict shows
how much of it one realization of Poisson-like arrivals of that length can move.

Scenario names (the ``scenario`` field of :func:`benchmarks.robust.common.episode`'s task):
``surrogate@<half>#<k>`` is surrogate ``k`` of the trace half ``<half>`` (its gaps from the seed
``SURROGATE_SEED_BASE + k``), ``surrogate@<half>#recorded`` is the recorded half itself through
the same replay, as a check that the pipeline reproduces the scenario, and
``surrogate@<half>#poisson`` is fresh Poisson arrivals at the half's rate on the half's system
(no replay: every episode its own arrivals).
"""

from __future__ import annotations

import numpy as np

from batchenv.arrivals import ArrivalProcess, PoissonArrivals, TraceArrivals, make_arrival_process
from batchenv.config import SystemConfig
from batchenv.scenarios import load_scenario

SURROGATE_AT = "surrogate@"
RECORDED = "recorded"
FRESH_POISSON = "poisson"
SURROGATE_SEED_BASE = 7000
"""Seed of surrogate 0's gaps (surrogate k: this + k); apart from the evaluation seeds."""


def surrogate_name(half: str, index: int | str) -> str:
    """The scenario name of surrogate ``index`` (or :data:`RECORDED`, :data:`FRESH_POISSON`) of the
    trace half ``half``."""
    return f"{SURROGATE_AT}{half}#{index}"


def parse_surrogate(name: str) -> tuple[str, int | str]:
    """``(half, index)`` of a surrogate name: an integer >= 0, :data:`RECORDED` or
    :data:`FRESH_POISSON`.

    :raises ValueError: not a surrogate name, or another index.
    """
    if not name.startswith(SURROGATE_AT) or "#" not in name:
        raise ValueError(f"not a surrogate scenario name: {name!r} (expected {SURROGATE_AT}<half>#<k>)")
    half, _, index = name[len(SURROGATE_AT) :].rpartition("#")
    if index in (RECORDED, FRESH_POISSON):
        return half, index
    if not index.isdigit():
        raise ValueError(
            f"surrogate index of {name!r} must be an integer >= 0, {RECORDED!r} or {FRESH_POISSON!r}"
        )
    return half, int(index)


def half_process(config: SystemConfig) -> TraceArrivals:
    """The replay of a trace half as its scenario builds it."""
    process = make_arrival_process(config)
    if not isinstance(process, TraceArrivals):
        raise ValueError(f"{config.name} does not replay a trace (arrivals.process must be 'trace')")
    return process


def half_rate(half: str) -> float:
    """The rate (requests/s) at which the scenario ``half`` replays its trace half."""
    return half_process(load_scenario(half)).window_rate_per_s


def surrogate_process(name: str) -> tuple[SystemConfig, ArrivalProcess]:
    """The half's scenario and the arrivals of ``name``: the replay of the surrogate (or of the
    recorded half) at the rate the half is replayed at (requests/s), from a random start,
    wrapping around; or fresh Poisson arrivals at that rate."""
    half, index = parse_surrogate(name)
    config = load_scenario(half)
    recorded = half_process(config)
    if index == FRESH_POISSON:
        return config, PoissonArrivals(recorded.window_rate_per_s)
    times_s = recorded.one_pass_s()
    if isinstance(index, int):
        gaps = np.random.default_rng(SURROGATE_SEED_BASE + index).exponential(1.0, len(times_s) - 1)
        times_s = np.concatenate(([0.0], np.cumsum(gaps)))
    return config, TraceArrivals(times_s, recorded.window_rate_per_s, random_start=True)
