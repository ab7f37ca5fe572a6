"""Decision rows: the explicit form of a table-driven scheduler, for the formal models.

A table-driven scheduler (the proposed scheduler of :mod:`agents.proposed`, a timeout, an expert
of a portfolio) follows, at any moment, one *row* of its table: per queue length, dispatch now or
wait, and for a wait the age of the oldest request at which the wait ends and the dispatch sent
then. Which row it follows depends on an internal estimate (the arrival rate for the proposed
scheduler) that the formal models do not track. A scheduler exposes its rows through one method,

    decision_rows(rate_lo_per_s, rate_hi_per_s) -> list[DecisionRow]

"every row this scheduler can follow while its arrival-rate estimate is anywhere in [lo, hi]
requests/s", each with the range of its timers over those estimates. The Storm model of
:mod:`formal.band` lets an adversary choose among these rows (and within the timer ranges) at
every decision: its worst and best cases are the scheduler's guaranteed bounds under any
estimation error within the band. A scheduler that does not estimate a rate returns its one row
whatever the band; a portfolio returns the rows of every expert its selection rule may follow.

Units: rates in requests/s, ages and timers in ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DecisionRow",
    "Dispatch",
    "RowSource",
    "SloGuard",
    "rows_of",
]

Dispatch = tuple[int, int]
"""(model index, batch size): dispatch the ``min(q, batch)`` oldest requests on that model."""


@runtime_checkable
class SloGuard(Protocol):
    """A guard that may change a row's dispatch when the oldest request would miss its latency
    objective. Its choice depends on how the waiting requests arrived, which the formal models do
    not track, so it reports every dispatch it may choose."""

    def choices(self, queue: int, decision: Dispatch, age_ms: float) -> frozenset[Dispatch]:
        """Every dispatch the guard may send instead of ``decision`` (itself included when it may
        keep it) at queue length ``queue`` with the oldest request ``age_ms`` old, over every
        arrival pattern of the other waiting requests consistent with that age."""
        ...


@dataclass(frozen=True)
class DecisionRow:
    """One row of a table-driven scheduler: what it does at every queue length.

    :param label: name for reports, e.g. ``"rate row 37 (96.9/s)"``.
    :param decisions: ``decisions[k]`` at queue length ``k + 1``, the last entry for longer
        queues: ``None`` (wait) or a :data:`Dispatch`.
    :param timers_ms: per queue length, for a wait, ``(shortest, longest)`` age (ms) of the oldest
        request at which the wait ends, over the estimates the row was asked for; ``None`` (or an
        infinite bound) for a wait that never ends on its own. Ignored for dispatches.
    :param fallbacks: per queue length, the dispatch that ends a wait (None where the row never
        waits).
    :param guard: the scheduler's SLO guard, applied to every dispatch of the row, or None.
    """

    label: str
    decisions: tuple[Dispatch | None, ...]
    timers_ms: tuple[tuple[float, float] | None, ...]
    fallbacks: tuple[Dispatch | None, ...]
    guard: SloGuard | None = None

    def __post_init__(self) -> None:
        n = len(self.decisions)
        if not n or len(self.timers_ms) != n or len(self.fallbacks) != n:
            raise ValueError(
                f"{self.label}: decisions, timers_ms and fallbacks must be non-empty and of equal "
                f"length, got {n}, {len(self.timers_ms)}, {len(self.fallbacks)}"
            )
        for k, (decision, timer, fallback) in enumerate(
            zip(self.decisions, self.timers_ms, self.fallbacks, strict=True)
        ):
            if decision is not None:
                continue
            if timer is not None:
                lo, hi = timer
                if not 0 <= lo <= hi:
                    raise ValueError(
                        f"{self.label}: timers_ms[{k}] must be 0 <= shortest <= longest, got {timer}"
                    )
                if math.isfinite(lo) and fallback is None:
                    raise ValueError(
                        f"{self.label}: queue length {k + 1} waits with a timer but has no fallback"
                    )

    def at(self, queue: int) -> int:
        """Index of queue length ``queue`` (>= 1) in the row's sequences."""
        return min(queue, len(self.decisions)) - 1


class RowSource(Protocol):
    """A scheduler that exposes its decision rows (module docstring)."""

    def decision_rows(self, rate_lo_per_s: float, rate_hi_per_s: float) -> Sequence[DecisionRow]:
        """Every row the scheduler may follow with its estimate in ``[lo, hi]`` (requests/s)."""
        ...


def rows_of(scheduler: object, rate_lo_per_s: float, rate_hi_per_s: float) -> list[DecisionRow]:
    """The decision rows of ``scheduler`` for estimates in ``[rate_lo_per_s, rate_hi_per_s]``;
    TypeError naming the scheduler when it has no ``decision_rows`` method or returns no row."""
    if not 0 < rate_lo_per_s <= rate_hi_per_s or not math.isfinite(rate_hi_per_s):
        raise ValueError(
            f"the estimate band must satisfy 0 < lo <= hi < inf (requests/s), got [{rate_lo_per_s!r}, "
            f"{rate_hi_per_s!r}]"
        )
    method = getattr(scheduler, "decision_rows", None)
    name = getattr(scheduler, "name", type(scheduler).__name__)
    if not callable(method):
        raise TypeError(
            f"{name}: has no decision_rows(rate_lo_per_s, rate_hi_per_s) method (batchenv.decision_rows)"
        )
    rows = list(method(rate_lo_per_s, rate_hi_per_s))
    if not rows or not all(isinstance(r, DecisionRow) for r in rows):
        raise TypeError(f"{name}: decision_rows must return a non-empty list of DecisionRow")
    return rows
