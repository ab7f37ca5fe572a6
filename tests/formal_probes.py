"""Probe simulators for the formal tests: a scheduler's own ``decide()`` in a state of the
discrete models, at real ages of the oldest request inside the tick that state stands for.

A state of age ``a`` ticks stands for every real age in ``[a x tick, (a + 1) x tick)`` (from
``W`` on, every age from ``a x tick``: the model caps the age while the worker is busy), so the
tests read the scheduler on a grid of ages inside that interval (:func:`tick_grid_ms`), not only
at ``a x tick``.
"""

from __future__ import annotations

import numpy as np

from batchenv.config import SystemConfig
from batchenv.sim import Simulator
from batchenv.timing import ServiceTable

GRID_MS = 0.25
"""Spacing (ms) of the real ages probed inside a tick."""

BEYOND_MS = (5.0, 20.0, 60.0, 150.0)
"""Extra ages (ms past ``W x tick``) probed in the states of age ``W``."""


def tick_grid_ms(age_ticks: int, tick_ms: float, max_age_ticks: int) -> list[float]:
    """Real ages (ms) probed in a state of age ``age_ticks``: every :data:`GRID_MS` from
    ``a x tick`` to the end of the tick; in the states of age ``W`` also :data:`BEYOND_MS` past it."""
    start = age_ticks * tick_ms
    ages = [start + GRID_MS * i for i in range(round(tick_ms / GRID_MS))]
    if age_ticks >= max_age_ticks:
        ages += [start + extra for extra in BEYOND_MS]
    return ages


def probe(config: SystemConfig, q: int, age_s: float, together: float | None = None) -> Simulator:
    """A simulator at a decision epoch with ``q`` requests waiting, the oldest ``age_s`` old, a
    worker idle; the others arrived evenly spread up to now (``together`` None) or all at the
    fraction ``together`` of the age. From ``max_wait_ms`` on (where the simulator's shield
    would dispatch a request that waits that long with a worker idle) the worker is first kept
    busy by a full batch on the slowest model until the epoch, as in a busy period."""
    if q == 1:
        offsets = [0.0]
    elif together is None:
        offsets = [age_s * i / (q - 1) for i in range(q)]
    else:
        offsets = [0.0] + [age_s * together] * (q - 1)
    busy = age_s >= config.max_wait_ms / 1000.0 - 1e-12
    start, blockers = 0.0, []
    if busy:
        model = max(
            range(config.n_models), key=lambda m: ServiceTable(config).service_s[m][config.max_batch_size]
        )
        start = ServiceTable(config).service_s[model][config.max_batch_size] - age_s - 1e-9
        assert start > 0.0, f"age {age_s} s is beyond the longest service time"
        blockers = [0.0] * config.max_batch_size
    times = blockers + [start + x for x in offsets]

    def arrivals():
        yield np.asarray(times, dtype=float)
        while True:
            yield np.array([1e12])

    sim = Simulator(config, record=False)
    sim.reset(arrivals=arrivals(), horizon_s=1e6)
    if busy:
        while sim.queue_len < len(blockers):
            sim.wait()
        sim.dispatch(model, config.max_batch_size)
    else:
        while sim.queue_len < q or sim.now_s < age_s - 1e-12:
            sim.wait(age_s)
    assert sim.queue_len == q and abs(sim.oldest_wait_s - age_s) < 1e-8, (sim.queue_len, sim.oldest_wait_s)
    return sim


def normalised(decision, q: int, max_batch: int):
    """A decision as the models write it: None for a wait (timed or not), else (model, batch sent)."""
    if decision is None or isinstance(decision, float):
        return None
    return (int(decision[0]), min(q, int(decision[1]), max_batch))
