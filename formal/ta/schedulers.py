"""Schedulers of the timed-automata model as decision tables over (queue length, age).

A :class:`DecisionTable` gives, for every queue length ``q`` in ``1..queue_cap``, the decision as
a piecewise-constant function of the oldest waiting request's age (in time units of the
network): ``rows[q - 1]`` is a tuple of :class:`Piece` ``(from_age, decision)``, the first from
age 0, each holding until the next one starts. A decision is ``None`` (wait) or ``(model,
batch)`` (dispatch the ``min(q, batch)`` oldest requests on that model). The scheduler automaton
asks the table at every arrival and every completion while a worker is idle, and again each time
the age reaches the next piece while it waits: the semantics of the event-driven simulator, where
a policy decides at events and sets timers.

Built here from

- :class:`formal.policies.TimeoutPolicy` (Triton's timeout(B, T), exact T in continuous time),
- any :class:`formal.policies.DiscretePolicy` over ticks (a :class:`formal.policies.TablePolicy`
  such as the SMDP optimum or Storm's optimal scheduler, greedy, static), read as the event
  simulator reads it (:func:`formal.verification.as_sim_policy`): the age in whole ticks,
  ``floor(age / tick)``, so its pieces start at multiples of the tick;
- :func:`timed_rows`, the shape of the proposed scheduler's rate rows: per q a decision, and for
  a wait, the age at which it ends and the dispatch sent then.

The timeout shield (no wait once the oldest request has waited ``max_wait_ms``) is applied by
:meth:`DecisionTable.shielded`; an unshielded table may wait forever (a mutant of the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from batchenv.config import ConfigError, SystemConfig
from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, TimeoutPolicy, policy_table

__all__ = [
    "DecisionTable",
    "Piece",
    "from_tick_policy",
    "from_timeout",
    "timed_rows",
    "units",
]


def units(ms: float, unit_ms: float) -> int:
    """``ms`` in whole time units, rounded to the nearest (timers are exact multiples in practice)."""
    return round(ms / unit_ms)


@dataclass(frozen=True)
class Piece:
    """From ``from_age`` (time units) on, until the next piece: ``decision``."""

    from_age: int
    decision: Decision


@dataclass(frozen=True)
class DecisionTable:
    """A scheduler over (q, age); ``rows[q - 1]`` are the pieces of queue length q.

    :param name: for tables and comments.
    :param forced_model: the model of the shield's dispatch.
    :param max_batch: the batch of the shield's dispatch (``min(q, max_batch)``).
    """

    name: str
    rows: tuple[tuple[Piece, ...], ...]
    forced_model: int = 0
    max_batch: int = 64

    def __post_init__(self) -> None:
        for q, row in enumerate(self.rows, start=1):
            if not row or row[0].from_age != 0:
                raise ValueError(f"{self.name}: row q={q} must start at age 0")
            ages = [p.from_age for p in row]
            if ages != sorted(set(ages)):
                raise ValueError(f"{self.name}: row q={q} ages must increase, got {ages}")

    @property
    def queue_cap(self) -> int:
        return len(self.rows)

    def decision(self, q: int, age: float) -> Decision:
        """The table's decision at queue length ``q`` and age ``age`` (time units)."""
        current = None
        for piece in self.rows[q - 1]:
            if piece.from_age <= age:
                current = piece.decision
        return current

    def shielded(self, max_wait: int) -> DecisionTable:
        """The table with the timeout shield at ``max_wait`` time units: pieces from that age on
        are dropped, and a row that would still be waiting there dispatches ``min(q,
        max_batch)`` on ``forced_model``."""
        forced = (self.forced_model, self.max_batch)
        rows = []
        for row in self.rows:
            kept = [p for p in row if p.from_age < max_wait]
            if kept[-1].decision is None:
                kept.append(Piece(max_wait, forced))
            rows.append(tuple(kept))
        return DecisionTable(f"{self.name}+shield", tuple(rows), self.forced_model, self.max_batch)

    def normalised(self) -> DecisionTable:
        """The same scheduler with every dispatch written as the batch it starts, ``(m, min(q,
        batch, max_batch))``, and equal neighbouring pieces merged: two tables that decide the
        same in every state become equal."""
        rows = []
        for q, row in enumerate(self.rows, start=1):
            pieces = [
                Piece(
                    p.from_age,
                    None if p.decision is None else (p.decision[0], min(q, p.decision[1], self.max_batch)),
                )
                for p in row
            ]
            rows.append(_merge(pieces))
        return DecisionTable(self.name, tuple(rows), self.forced_model, self.max_batch)

    def same_decisions(self, other: DecisionTable) -> bool:
        return self.normalised().rows == other.normalised().rows

    def longest_wait(self) -> int:
        """The latest age (time units) at which some row's wait ends (0 if no row waits; the
        last breakpoint if a row waits forever): the longest a request waits while a worker is
        idle, if nothing else happens."""
        ends = [
            row[i + 1].from_age for row in self.rows for i, p in enumerate(row[:-1]) if p.decision is None
        ]
        return max(ends, default=0)

    def waits_forever(self) -> list[int]:
        """Queue lengths whose last piece is a wait (never dispatch without an event)."""
        return [q for q, row in enumerate(self.rows, start=1) if row[-1].decision is None]

    def breakpoints(self) -> list[int]:
        """Every age (time units) at which some row changes its decision."""
        return sorted({p.from_age for row in self.rows for p in row if p.from_age > 0})


def _merge(pieces: Sequence[Piece]) -> tuple[Piece, ...]:
    out: list[Piece] = []
    for piece in pieces:
        if not out or out[-1].decision != piece.decision:
            out.append(piece)
    return tuple(out)


def from_timeout(
    policy: TimeoutPolicy, config: SystemConfig, *, queue_cap: int, unit_ms: float
) -> DecisionTable:
    """Timeout(B, T) with its model thresholds: dispatch ``min(q, max_batch)`` at once when
    ``q >= B``, else wait until the oldest has waited T (exact, in time units) and dispatch."""
    policy.validate(config)
    cap = policy.max_batch or config.max_batch_size
    timer = units(policy.timeout_ms, unit_ms)
    rows = []
    for q in range(1, queue_cap + 1):
        dispatch = (policy.model_for(q), cap)
        if q >= policy.batch or timer == 0:
            rows.append((Piece(0, dispatch),))
        else:
            rows.append((Piece(0, None), Piece(timer, dispatch)))
    return DecisionTable(policy.name, tuple(rows), policy.forced_model, config.max_batch_size)


def from_tick_policy(policy: DiscretePolicy, tm: TickModel, *, unit_ms: float) -> DecisionTable:
    """A policy over (q, age in ticks) of the discrete model ``tm``, shield included: at age
    ``t`` (time units) it decides what it decides at ``floor(t / tick)`` ticks. Needs a tick that
    is a whole number of time units."""
    tick = tm.tick_ms / unit_ms
    if abs(tick - round(tick)) > 1e-9:
        raise ConfigError("time_unit_ms", f"must divide the tick ({tm.tick_ms:g} ms), got {unit_ms:g}")
    table = policy_table(policy, tm)
    rows = []
    for q in range(1, tm.queue_cap + 1):
        pieces = [Piece(a * round(tick), table[(q, a)]) for a in range(tm.max_age_ticks + 1)]
        rows.append(_merge(pieces))
    return DecisionTable(policy.name, tuple(rows), policy.forced_model, tm.max_batch)


def timed_rows(
    name: str,
    decisions: Sequence[Decision],
    timers_ms: Sequence[float | None],
    fallbacks: Sequence[Decision],
    *,
    queue_cap: int,
    unit_ms: float,
    forced_model: int,
    max_batch: int,
) -> DecisionTable:
    """A table in the form of the proposed scheduler's rate rows: ``decisions[k]`` at queue
    length ``k + 1`` (the last entry for longer queues); a wait (None) ends when the oldest has
    waited ``timers_ms[k]`` (None: never, until an event or the shield) with ``fallbacks[k]``.

    :param timers_ms: per queue length, the wait's end (ms); ignored for dispatches.
    """
    if not decisions or not len(decisions) == len(timers_ms) == len(fallbacks):
        raise ValueError("decisions, timers_ms and fallbacks must be non-empty and of equal length")
    rows = []
    for q in range(1, queue_cap + 1):
        k = min(q, len(decisions)) - 1
        if decisions[k] is not None:
            rows.append((Piece(0, decisions[k]),))
            continue
        timer = timers_ms[k]
        if timer is None or not math.isfinite(timer):
            rows.append((Piece(0, None),))
        else:
            end = max(0, units(timer, unit_ms))
            rows.append((Piece(0, fallbacks[k]),) if end == 0 else (Piece(0, None), Piece(end, fallbacks[k])))
    return DecisionTable(name, tuple(rows), forced_model, max_batch)
