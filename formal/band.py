"""A scheduler's own decision table in the discrete model, with its rate estimate as an adversary.

A table-driven scheduler (:mod:`batchenv.decision_rows`) follows one row of its table at a time,
chosen by an estimate of the arrival rate the model does not track. Here the estimate is an
adversary: at every decision it may be any rate within a band ``[rate / f, rate * f]`` around
the true rate of the current arrival phase (``f >= 1``, e.g. 1.25 or 2). The model is an MDP
(:func:`formal.prism.choice_program`) whose nondeterminism, in a decision state ``(phase, q, a)``,
is the set of decisions of every row the scheduler may follow:

- a row that dispatches at ``q`` offers its dispatch (through its SLO guard, which may offer
  several: the guard reads the arrival pattern of the waiting requests, which the model does not
  track either);
- a row that waits at ``q`` with a timer in ``[shortest, longest]`` ms (the range over the
  estimates of the band that select the row) offers *wait* while the age ``a * tick`` is below
  ``longest`` and its *fallback* dispatch (through the guard) once it reaches ``shortest``: the
  scheduler's timed wait, read at tick boundaries as :func:`formal.verification.as_sim_policy`
  reads a policy (its age in whole ticks).

Every scheduler of this MDP is a way the estimate can move within the band (the estimator may
even know the phase: its only constraint is the band), so ``Pmax``/``Rmax`` are the scheduler's
guaranteed worst cases under any estimation error within the band, ``Pmin``/``Rmin`` its best
cases. With ``f = 1`` and one phase the estimate is exact: one row, a DTMC.

The timeout shield (``shield=True``) turns a wait at ``a >= W`` into the row's fallback, as the
scheduler does when the simulator says it is shielded; without it (``shield=False``) the raw
table is checked: a wait there is a violation (``a = W + 1``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchenv.decision_rows import DecisionRow, Dispatch, rows_of
from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.prism import Choices

__all__ = ["EstimateBand", "band_choices", "is_deterministic", "row_choices"]

_EPS = 1e-9


@dataclass(frozen=True)
class EstimateBand:
    """The rate estimate lies within ``[rate / factor, rate * factor]`` of the current phase's
    true rate (requests/s); ``factor = 1``: an exact estimate."""

    factor: float

    def __post_init__(self) -> None:
        f = self.factor
        if isinstance(f, bool) or not isinstance(f, int | float) or not 1.0 <= f <= 100.0:
            raise ValueError(f"band factor must be a number in [1, 100], got {f!r}")

    def around(self, rate_per_s: float) -> tuple[float, float]:
        return rate_per_s / self.factor, rate_per_s * self.factor

    @property
    def label(self) -> str:
        return "exact estimate" if self.factor == 1.0 else f"estimate within x{self.factor:g}"


GuardChoices = Callable[[DecisionRow, int, Dispatch, float], frozenset[Dispatch]]
"""``(row, queue, dispatch, age_ms) -> every dispatch the row's SLO guard may send``."""


def guarded_dispatches(
    row: DecisionRow, queue: int, dispatch: Dispatch, age_ms: float
) -> frozenset[Dispatch]:
    """Every dispatch ``row`` may send for ``dispatch`` (through its SLO guard, if any)."""
    if row.guard is None:
        return frozenset((dispatch,))
    return row.guard.choices(queue, dispatch, age_ms)


def row_choices(
    row: DecisionRow,
    queue: int,
    age_ticks: int,
    tm: TickModel,
    *,
    shield: bool,
    dispatches: GuardChoices = guarded_dispatches,
) -> frozenset[Decision]:
    """The decisions ``row`` allows at queue length ``queue`` and age ``age_ticks`` (a worker idle),
    normalised to the batch dispatched; ``age_ticks`` may be ``W + 1`` (after a violation, where the
    fallback follows as with the shield). ``dispatches`` reads the row's SLO guard (a memo of
    :func:`guarded_dispatches` may be passed)."""
    k = row.at(queue)
    age_ms = age_ticks * tm.tick_ms
    decision = row.decisions[k]
    out: set[Decision] = set()
    if decision is not None:
        out |= dispatches(row, queue, decision, age_ms)
    else:
        shortest, longest = row.timers_ms[k] or (math.inf, math.inf)
        waits = age_ms < longest - _EPS
        ends = age_ms >= shortest - _EPS
        blocked = age_ticks > tm.max_age_ticks or (shield and age_ticks >= tm.max_age_ticks)
        if waits and not blocked:
            out.add(None)
        if ends or (waits and blocked):
            fallback = row.fallbacks[k]
            if fallback is None:  # a wait without a fallback: the shield's dispatch on model 0
                fallback = (0, tm.max_batch)
            out |= dispatches(row, queue, fallback, age_ms)
    return frozenset(None if d is None else (d[0], min(queue, d[1], tm.max_batch)) for d in out)


def band_choices(
    tm: TickModel, scheduler: object, band: EstimateBand, *, shield: bool = True
) -> tuple[Choices, list[list[DecisionRow]]]:
    """The choice sets of ``scheduler``'s rows (:meth:`decision_rows`) with its estimate within
    ``band`` of each phase's rate, in every decision state ``(phase, q, a)`` of ``tm`` (ages up to
    ``W + 1`` without the shield); and the rows of each phase."""
    last_age = tm.max_age_ticks + (0 if shield else 1)
    choices: dict[tuple[int, int, int], frozenset[Decision]] = {}
    phase_rows: list[list[DecisionRow]] = []
    for phase, rate in enumerate(tm.phase_rates_per_s):
        rows = rows_of(scheduler, *band.around(rate))
        phase_rows.append(rows)
        for q in range(1, tm.queue_cap + 1):
            for a in range(last_age + 1):
                allowed: frozenset[Decision] = frozenset().union(
                    *(row_choices(r, q, a, tm, shield=shield) for r in rows)
                )
                choices[(phase, q, a)] = allowed
    return choices, phase_rows


def is_deterministic(choices: Choices) -> bool:
    """One decision in every state: the model is a DTMC."""
    return all(len(c) == 1 for c in choices.values())


def describe_rows(rows: Sequence[DecisionRow]) -> str:
    """``"rows 31-47"``-style summary of the labels (first and last)."""
    if len(rows) == 1:
        return rows[0].label
    return f"{len(rows)} rows, {rows[0].label} to {rows[-1].label}"
