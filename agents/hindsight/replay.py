"""Play a schedule in the simulator: a policy that issues exactly its dispatches.

Every dispatch time of a schedule found by :mod:`agents.hindsight.frontier` is an event of the
simulator: the batch leaves as early as possible, at ``max(worker free, arrival of its last
request)``, so the worker becoming free or that arrival is the decision epoch. The policy
therefore never needs a timer: it waits for the next event (``None``) until the clock reaches the
next planned dispatch time, where it dispatches ``(model, size)``. Times are compared as the
floats the simulator computes (the same sums), so the replay is exact, not approximately timed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from agents.hindsight.schedule import Schedule
from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["ReplayError", "ScheduleReplay", "arrival_stream", "replay_schedule"]


class ReplayError(RuntimeError):
    """The simulator left the schedule (a missed dispatch time, a drop, a forced dispatch): the
    schedule does not obey the simulator's rules (see ``schedule_violations``)."""


class ScheduleReplay:
    """A :data:`batchenv.sim.Policy` that plays ``schedule`` and checks at every dispatch that the
    simulator is where the schedule says (clock, requests served, queue length, no drop).

    :param schedule: a realisable schedule (no drops; an empty ``schedule_violations`` list).
    """

    name = "hindsight_replay"

    def __init__(self, schedule: Schedule) -> None:
        if schedule.dropped:
            raise ValueError("a schedule that drops requests cannot be replayed (only the queue drops)")
        self.schedule = schedule
        self._batches = schedule.batches
        self._next = 0

    def reset(self, sim: Simulator) -> None:
        """Start of an episode."""
        self._next = 0

    def __call__(self, sim: Simulator) -> Decision:
        """The schedule's next batch once its dispatch time has come, else a wait."""
        k = self._next
        if k == len(self._batches):
            return None
        batch = self._batches[k]
        if sim.now_s < batch.dispatch_s:
            return None
        if (
            sim.now_s != batch.dispatch_s
            or sim.n_served != batch.first_request
            or sim.queue_len < batch.size
            or sim.n_dropped
            or sim.n_forced
        ):
            raise ReplayError(
                f"batch {k}: planned at {batch.dispatch_s!r} s after {batch.first_request} requests "
                f"(size {batch.size}); the simulator is at {sim.now_s!r} s with {sim.n_served} served, "
                f"{sim.queue_len} waiting, {sim.n_dropped} dropped, {sim.n_forced} forced dispatches"
            )
        self._next = k + 1
        return (batch.model, batch.size)

    @property
    def finished(self) -> bool:
        """True once every batch of the schedule has been dispatched."""
        return self._next == len(self._batches)


def arrival_stream(arrivals_s: np.ndarray) -> Iterator[np.ndarray]:
    """The endless chunk iterator the simulator reads (``Simulator.reset(arrivals=...)``):
    ``arrivals_s`` (s, sorted) and then no more arrivals."""
    return itertools.chain([np.asarray(arrivals_s, dtype=float)], itertools.repeat(np.array([np.inf])))


def replay_schedule(
    config: SystemConfig, arrivals_s: np.ndarray, schedule: Schedule, horizon_s: float | None = None
) -> Simulator:
    """Run the simulator on ``arrivals_s`` with :class:`ScheduleReplay`; returns the finished
    simulator (``best quality * n_arrived - sim.total_reward`` is the schedule's cost).

    :raises ReplayError: if the simulator does not follow the schedule to its end.
    """
    policy = ScheduleReplay(schedule)
    sim = Simulator(config, record=True)
    sim.reset(arrivals=arrival_stream(arrivals_s), horizon_s=horizon_s)
    policy.reset(sim)
    sim.run(policy)
    if not policy.finished:
        raise ReplayError(
            f"the episode ended after {policy._next} of {len(schedule.batches)} batches "
            f"({sim.n_forced} forced dispatches, {sim.n_dropped} drops)"
        )
    if sim.n_dropped or sim.n_forced or sim.n_served != schedule.n_served:
        raise ReplayError(
            f"the simulator served {sim.n_served} requests ({schedule.n_served} planned) with "
            f"{sim.n_dropped} drops and {sim.n_forced} forced dispatches"
        )
    return sim
