"""The hindsight bound of one arrival sequence: a lower bound on the cost of every policy of the
simulator, the best schedule found that the simulator can play, and whether the two meet.

Procedure (:func:`hindsight_bound`):

1. Solve the *relaxed* programme (:mod:`agents.hindsight.frontier`): its optimum is a lower
   bound, because every episode the simulator can produce is a schedule of the relaxation at no
   lower cost (FIFO batches dispatched when a worker is free and their last request has
   arrived, before the horizon; any drop; requests left waiting at the horizon; the relaxation
   drops the timeout shield and the queue capacity as constraints). A batch that a drop at a
   full queue split (requests before and after the dropped one) counts as the batch of the same
   size ending at its last request, which costs no more (docs/hindsight.md, "Relaxed").
2. If its optimal schedule breaks none of the simulator's rules (:func:`schedule_violations`:
   shield, capacity, no drop, the requests left at the horizon), the simulator can play it: the
   bound is *exact*, the least cost any policy reaches on these arrivals.
3. Otherwise solve the *realisable* programme (shield and capacity enforced, no drop); its
   schedule is the best found, its cost an upper bound on the least cost, and the gap between
   the two is reported.

Several workers: with two, the lower bound is the optimum of a relaxation whose state is the
pair of free times (:mod:`agents.hindsight.pairs`); with more, the relaxed programme runs on one
*virtual* worker that a batch of service s occupies for s / W, with a dispatch allowed up to
:attr:`HindsightProblem.credit_s` before it is free (every schedule of the W workers is one of
this relaxation, at the same cost), and its optimum is the lower bound. The best schedule
found comes from a beam search over the W workers' free times (:mod:`agents.hindsight.workers`):
it obeys every rule of the simulator, which plays it exactly, so its cost is an upper bound, and
the gap between the two is reported (docs/hindsight.md, "Several workers").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.hindsight.frontier import FrontierStats, solve_frontier
from agents.hindsight.pairs import solve_pairs
from agents.hindsight.problem import HindsightProblem
from agents.hindsight.schedule import Schedule, schedule_cost, schedule_violations
from agents.hindsight.workers import DEFAULT_BEAM, check_beam, check_projection, solve_workers
from batchenv.config import SystemConfig

__all__ = ["BOUND_VERSION", "HindsightBound", "hindsight_bound", "solve_problem"]

BOUND_VERSION = 1
"""Version of what the bound computes, part of every key of the bound cache
(:mod:`agents.hindsight.cache`). Bump it when a change outside ``agents/hindsight/`` (whose
sources the key hashes already) changes the bound of some episode, e.g. the simulator's cost
accounting that the programme mirrors; entries of the old version are then never read."""

EXACT_RTOL = 1e-9
"""Relative tolerance under which the lower bound and the schedule found are called equal."""


@dataclass(frozen=True)
class HindsightBound:
    """What is known about the least total cost on one arrival sequence.

    Costs are totals over the arrived requests (best quality x arrived - total reward, the
    simulator's accounting); ``*_per_request`` divide by the arrived requests, as
    ``EpisodeMetrics.cost_per_request`` does.

    :ivar n_requests: arrived requests (arrivals before the horizon).
    :ivar lower_cost: every policy of the simulator costs at least this on these arrivals.
    :ivar upper_cost: cost of :attr:`schedule` (inf if no schedule the simulator plays was found).
    :ivar schedule: the best schedule found that the simulator plays exactly
        (:func:`agents.hindsight.replay.replay_schedule`), or None.
    :ivar relaxed_schedule: the schedule of the lower bound (may break the simulator's rules;
        None with two workers, whose programme keeps no schedule).
    :ivar exact: True when the two costs agree (relative tolerance :data:`EXACT_RTOL`): the
        least cost is known.
    :ivar violations: the rules the relaxed optimum breaks (empty when it is realisable; not
        checked with several workers, where it lives on the virtual worker).
    :ivar stats: per programme run (``"relaxed"``, or ``"pairs"`` with two workers; and
        ``"realisable"`` with one worker or ``"workers"`` with several when it ran), its sizes and
        time.
    """

    n_requests: int
    lower_cost: float
    upper_cost: float
    schedule: Schedule | None
    relaxed_schedule: Schedule | None
    exact: bool
    violations: tuple[str, ...]
    stats: dict[str, FrontierStats]

    @property
    def lower_cost_per_request(self) -> float:
        """The bound per arrived request (NaN without arrivals)."""
        return self.lower_cost / self.n_requests if self.n_requests else float("nan")

    @property
    def upper_cost_per_request(self) -> float:
        """The cost per arrived request of the best schedule found (NaN without arrivals)."""
        return self.upper_cost / self.n_requests if self.n_requests else float("nan")

    @property
    def gap_per_request(self) -> float:
        """``upper - lower`` per arrived request: 0 when exact."""
        return self.upper_cost_per_request - self.lower_cost_per_request

    @property
    def elapsed_s(self) -> float:
        """Wall time of the programme runs (s)."""
        return sum(stats.elapsed_s for stats in self.stats.values())


def _close(lower: float, upper: float, problem: HindsightProblem | None = None) -> bool:
    """Whether the bound and the cost of the schedule found meet: ``|upper - lower|`` within
    :data:`EXACT_RTOL` (relative to the bound, at least 1).

    :raises AssertionError: ``lower`` above ``upper`` beyond that tolerance, which no correct run
        gives (the schedule found is one of the relaxation, so it costs at least its optimum): a
        bug, named with the episode's figures, never a silent "exact".
    """
    tolerance = EXACT_RTOL * max(1.0, abs(lower))
    if lower - upper > tolerance:
        where = ""
        if problem is not None:
            n = problem.n_requests
            where = (
                f" ({lower / max(n, 1):.12g} > {upper / max(n, 1):.12g} per request; {n} requests, "
                f"{problem.n_workers} worker(s), horizon {problem.horizon_s:g} s)"
            )
        raise AssertionError(
            f"the hindsight lower bound {lower!r} is above the cost {upper!r} of a schedule the "
            f"simulator plays{where}: a bug in agents/hindsight, not a bound"
        )
    return bool(abs(upper - lower) <= tolerance)


def solve_problem(
    problem: HindsightProblem, *, beam: int = DEFAULT_BEAM, projection: str = "sum"
) -> HindsightBound:
    """The bound of a built :class:`HindsightProblem` (see the module docstring).

    :param beam: several workers: states the schedule search keeps per request index
        (:func:`agents.hindsight.workers.solve_workers`), checked whatever the workers.
    :param projection: several workers: the search's fronts, ``"sum"`` or ``"all"``
        (:func:`agents.hindsight.workers.solve_workers`), checked whatever the workers.
    :raises ValueError: a bad ``beam`` or ``projection``.
    :raises AssertionError: a bug: the bound above the cost of the schedule found (beyond
        :data:`EXACT_RTOL`), or a schedule found that breaks a rule.
    """
    check_beam(beam)
    check_projection(projection)
    if problem.n_workers == 2:  # the pair of free times: a tighter relaxation, no schedule kept
        pairs = solve_pairs(problem)
        lower, relaxed_schedule, stats = pairs.cost, None, {"pairs": pairs.stats}
    else:
        relaxed = solve_frontier(problem, "relaxed")
        lower, relaxed_schedule, stats = relaxed.cost, relaxed.schedule, {"relaxed": relaxed.stats}
    # several workers: the relaxed schedule's times are the virtual worker's, not the simulator's
    found = relaxed_schedule if problem.n_workers == 1 else None
    violations = tuple(schedule_violations(problem, found)) if found is not None else ()
    schedule, upper = (None, np.inf)
    if found is not None and not violations:
        schedule, upper = found, schedule_cost(problem, found)
    if not _close(lower, upper, problem):
        if problem.n_workers == 1:
            searched, name = solve_frontier(problem, "realisable"), "realisable"
        else:
            searched, name = solve_workers(problem, beam, projection), "workers"
        stats[name] = searched.stats
        if searched.schedule is not None:
            broken = schedule_violations(problem, searched.schedule)
            if broken:
                raise AssertionError(f"the {name} programme broke a rule: {broken}")
            cost = schedule_cost(problem, searched.schedule)
            if cost < upper:
                schedule, upper = searched.schedule, cost
    return HindsightBound(
        n_requests=problem.n_requests,
        lower_cost=lower,
        upper_cost=upper,
        schedule=schedule,
        relaxed_schedule=relaxed_schedule,
        exact=_close(lower, upper, problem),
        violations=violations,
        stats=stats,
    )


def hindsight_bound(
    config: SystemConfig,
    arrivals_s: np.ndarray,
    *,
    horizon_s: float | None = None,
    beam: int = DEFAULT_BEAM,
    projection: str = "sum",
    objective: tuple[float, float] | None = None,
) -> HindsightBound:
    """Least cost any FIFO schedule (any policy of the simulator) reaches on ``arrivals_s``, known
    in advance.

    :param config: the system (models, timing, rewards, queue capacity, shield, workers; with
        several workers a lower bound from a relaxation beside a schedule found, module
        docstring).
    :param arrivals_s: arrival times (s), sorted; those at or after the horizon are ignored.
    :param horizon_s: episode length (s); default ``config.horizon_s``.
    :param beam: several workers: states the schedule search keeps per request index (>= 1).
    :param projection: several workers: the search's fronts, ``"sum"`` or ``"all"``.
    :param objective: the episode's own SLO bound (s) and penalty when it draws them
        (:meth:`HindsightProblem.from_config`); default the config's.
    :raises ConfigError: bad arrivals or horizon.
    :raises ValueError: a bad ``beam`` or ``projection``.
    """
    problem = HindsightProblem.from_config(config, arrivals_s, horizon_s, objective)
    return solve_problem(problem, beam=beam, projection=projection)
