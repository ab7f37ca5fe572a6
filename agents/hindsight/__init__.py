"""The hindsight bound: the least cost any FIFO scheduler (any policy of this simulator, whose
dispatch takes the oldest requests) can reach on an arrival sequence known in advance, by dynamic
programming over FIFO batches (docs/hindsight.md; with an SLO penalty a non-FIFO order could cost
less, which the simulator cannot play).

    from agents.hindsight import hindsight_bound, hindsight_cost_per_request, replay_schedule

    bound = hindsight_bound(config, arrivals_s)         # one sorted arrival sequence (s)
    bound.lower_cost_per_request, bound.exact           # no policy does better; exact: attained
    sim = replay_schedule(config, arrivals_s, bound.schedule)   # the simulator plays it
    hindsight_cost_per_request(config, seed)            # per evaluation episode (config, seed)

One worker: the least cost (exact, or a lower bound beside the best schedule found). Several
workers: a lower bound from a relaxation (two workers: the pair of free times,
:mod:`~agents.hindsight.pairs`; more: one virtual worker, :attr:`HindsightProblem.credit_s`),
beside the best schedule a beam search finds (:mod:`~agents.hindsight.workers`). Speed: a 60 s
episode at 300 requests/s on one worker takes about 3.5 s of CPU and 70 MB; the time per request
grows with the load, through the size of the fronts: 17 s at 400/s (high_load), about 2 min and
1.1 GB at 548/s (poisson_95) (``benchmarks/hindsight_speed.py``, docs/hindsight.md, which gives
the several-worker figures too).

Modules: :mod:`~agents.hindsight.problem` (the arrays of one problem),
:mod:`~agents.hindsight.frontier` (the programme), :mod:`~agents.hindsight.pairs` (the
two-worker relaxation), :mod:`~agents.hindsight.schedule` (a schedule,
its cost, its rule check), :mod:`~agents.hindsight.workers` (the schedule search for several
workers), :mod:`~agents.hindsight.replay` (the simulator plays a schedule),
:mod:`~agents.hindsight.bound` (lower bound, best schedule, exactness),
:mod:`~agents.hindsight.episode` (an evaluation episode's arrivals from its seed) and
:mod:`~agents.hindsight.cache` (bounds kept on disk between evaluations, keyed by everything
they depend on; :data:`BOUND_VERSION`).
"""

from agents.hindsight.bound import BOUND_VERSION, HindsightBound, hindsight_bound
from agents.hindsight.cache import BoundCache, BoundKey, CachedBound, bound_key
from agents.hindsight.episode import (
    episode_arrivals,
    episode_bound,
    episode_objective,
    hindsight_cost_per_request,
)
from agents.hindsight.problem import HindsightProblem
from agents.hindsight.replay import ReplayError, ScheduleReplay, replay_schedule
from agents.hindsight.schedule import PlannedBatch, Schedule, schedule_cost, schedule_violations

__all__ = [
    "BOUND_VERSION",
    "BoundCache",
    "BoundKey",
    "CachedBound",
    "HindsightBound",
    "HindsightProblem",
    "PlannedBatch",
    "ReplayError",
    "Schedule",
    "ScheduleReplay",
    "bound_key",
    "episode_arrivals",
    "episode_bound",
    "episode_objective",
    "hindsight_bound",
    "hindsight_cost_per_request",
    "replay_schedule",
    "schedule_cost",
    "schedule_violations",
]
