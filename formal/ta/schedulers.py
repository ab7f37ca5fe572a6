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

- :func:`from_decision_rows`, a :class:`ChoiceTable`: the rows a table-driven scheduler (the
  proposed one) may follow for any rate estimate within a band, one chosen by an adversary at
  every decision.

The timeout shield (no wait once the oldest request has waited ``max_wait_ms``) is applied by
:meth:`DecisionTable.shielded`; an unshielded table may wait forever (a mutant of the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from batchenv.config import ConfigError, SystemConfig
from batchenv.decision_rows import DecisionRow, Dispatch
from batchenv.sim import Decision
from formal.band import guard_choices_between
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, TimeoutPolicy, policy_table

__all__ = [
    "ChoiceTable",
    "DecisionTable",
    "Option",
    "Piece",
    "Table",
    "from_decision_rows",
    "from_tick_policy",
    "from_timeout",
    "merge_options",
    "option_key",
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

    def describe(self, unit_ms: float) -> str:
        """Runs of queue lengths with the same decisions, e.g. ``q=1..7: wait, from 10 ms m0 b=q``
        (model index m, batch b)."""

        def text(q: int, row: tuple[Piece, ...]) -> str:
            return ", ".join(
                decision_text(q, p.decision)
                if p.from_age == 0
                else f"from {p.from_age * unit_ms:g} ms {decision_text(q, p.decision)}"
                for p in row
            )

        return describe_runs([text(q, row) for q, row in enumerate(self.normalised().rows, start=1)])


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


# ------------------------------------------------------------------------------------------
# Nondeterministic tables: a scheduler whose row is chosen by an adversary at every decision
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One decision a :class:`ChoiceTable` allows at a queue length while the oldest request's
    age is in ``[from_age, until)`` (time units; ``until=None``: for ever). For a wait
    (``decision is None``) the timer may fire at any age in ``[fire_from, until]`` (the range of
    the timer over the estimates of the band): the wait then ends and the scheduler decides
    again, without waiting a second time."""

    decision: Decision
    from_age: int = 0
    until: int | None = None
    fire_from: int | None = None

    def __post_init__(self) -> None:
        if self.from_age < 0 or (self.until is not None and self.until <= self.from_age):
            raise ValueError(f"option {self}: need 0 <= from_age < until")
        ranged = self.decision is None and self.fire_from is not None and self.until is not None
        if ranged and not self.from_age <= (self.fire_from or 0) <= (self.until or 0):
            raise ValueError(f"option {self}: need from_age <= fire_from <= until")

    @property
    def fires_at(self) -> int | None:
        """Earliest age at which the wait's timer may fire (None: never)."""
        if self.until is None:
            return None
        return self.until if self.fire_from is None else self.fire_from


@dataclass(frozen=True)
class ChoiceTable:
    """A scheduler with several decisions per state: ``rows[q - 1]`` are the :class:`Option`
    allowed at queue length q; at every decision any option whose age range holds the current age
    may be taken (an adversary's choice). Every age must be covered by some option.

    The proposed scheduler with its rate estimate anywhere in a band is one
    (:func:`from_decision_rows`): at every decision the estimate may select any of the rows of the
    band, and a wait's timer may fire anywhere in its range over the band.

    :param name: for tables and comments.
    :param forced_model: the model of the shield's dispatch.
    :param max_batch: the batch of the shield's dispatch (``min(q, max_batch)``).
    """

    name: str
    rows: tuple[tuple[Option, ...], ...]
    forced_model: int = 0
    max_batch: int = 64

    def __post_init__(self) -> None:
        for q, options in enumerate(self.rows, start=1):
            ages = sorted({0, *(o.from_age for o in options), *(o.until for o in options if o.until)})
            if any(not self.allowed(q, age) for age in ages):
                raise ValueError(f"{self.name}: some age has no option at q={q}")

    @property
    def queue_cap(self) -> int:
        return len(self.rows)

    def allowed(self, q: int, age: float) -> set[Decision]:
        """Every decision allowed at queue length ``q`` and age ``age`` (time units)."""
        return {
            o.decision for o in self.rows[q - 1] if o.from_age <= age and (o.until is None or age < o.until)
        }

    def shielded(self, max_wait: int) -> ChoiceTable:
        """The table with the timeout shield at ``max_wait`` time units: no wait from that age on
        (waits end there at the latest), and where no dispatch remains the shield's."""
        forced = (self.forced_model, self.max_batch)
        rows = []
        for options in self.rows:
            kept: list[Option] = []
            for o in options:
                if o.from_age >= max_wait and o.decision is None:
                    continue
                if o.decision is None:
                    until = max_wait if o.until is None else min(o.until, max_wait)
                    fire = None if o.fire_from is None else min(o.fire_from, until)
                    kept.append(Option(None, o.from_age, until, fire))
                else:
                    kept.append(o)
            if not any(o.decision is not None and o.from_age <= max_wait and o.until is None for o in kept):
                kept.append(Option(forced, max_wait))
            rows.append(tuple(kept))
        return ChoiceTable(f"{self.name}+shield", tuple(rows), self.forced_model, self.max_batch)

    def normalised(self) -> ChoiceTable:
        """Dispatches written as the batch they start, duplicates removed, options sorted."""
        rows = []
        for q, options in enumerate(self.rows, start=1):
            out = {
                Option(
                    None if o.decision is None else (o.decision[0], min(q, o.decision[1], self.max_batch)),
                    o.from_age,
                    o.until,
                    o.fire_from,
                )
                for o in options
            }
            rows.append(tuple(sorted(out, key=option_key)))
        return ChoiceTable(self.name, tuple(rows), self.forced_model, self.max_batch)

    def same_decisions(self, other: object) -> bool:
        return isinstance(other, ChoiceTable) and self.normalised().rows == other.normalised().rows

    def longest_wait(self) -> int:
        """The latest age (time units) at which some wait ends (0 if no option waits)."""
        return max((o.until for r in self.rows for o in r if o.decision is None and o.until), default=0)

    def waits_forever(self) -> list[int]:
        """Queue lengths with a wait that never ends without an event."""
        return [
            q
            for q, r in enumerate(self.rows, start=1)
            if any(o.decision is None and o.until is None for o in r)
        ]

    def breakpoints(self) -> list[int]:
        """Every age (time units) at which an option starts or ends or a timer may fire."""
        points = {o.from_age for r in self.rows for o in r}
        points |= {o.until for r in self.rows for o in r if o.until is not None}
        points |= {o.fire_from for r in self.rows for o in r if o.fire_from is not None}
        return sorted(p for p in points if p > 0)

    def describe(self, unit_ms: float) -> str:
        """Runs of queue lengths with the same options, e.g. ``q=1..3: m0 b=q | wait (fires
        10-40 ms), from 10 ms m0 b=q``."""

        def text(q: int, options: tuple[Option, ...]) -> str:
            parts = []
            for o in options:
                what = decision_text(q, o.decision)
                if o.decision is None and o.fires_at is not None:
                    what += f" (fires {o.fires_at * unit_ms:g}-{(o.until or 0) * unit_ms:g} ms)"
                parts.append(what if o.from_age == 0 else f"from {o.from_age * unit_ms:g} ms {what}")
            return " | ".join(parts)

        return describe_runs([text(q, r) for q, r in enumerate(self.normalised().rows, start=1)])


def decision_text(q: int, decision: Decision) -> str:
    """``wait`` or ``m<model> b=<batch>`` (``b=q``: the whole queue)."""
    if decision is None:
        return "wait"
    return f"m{decision[0]} b={'q' if decision[1] == q else decision[1]}"


def describe_runs(texts: Sequence[str]) -> str:
    """``texts[q - 1]`` per queue length, runs of equal neighbours joined: ``q=1..7: ...; q=8: ...``."""
    runs: list[tuple[int, int, str]] = []
    for q, t in enumerate(texts, start=1):
        if runs and runs[-1][2] == t:
            runs[-1] = (runs[-1][0], q, t)
        else:
            runs.append((q, q, t))
    return "; ".join(f"q={a}" + (f"..{b}" if b > a else "") + f": {t}" for a, b, t in runs)


Table = DecisionTable | ChoiceTable
"""A scheduler of the timed-automata model: one decision per state, or several."""


def option_key(o: Option) -> tuple:
    """Sort key of an option: its age range (from, until), then its decision and firing age."""
    d = (-1, -1) if o.decision is None else o.decision
    return (o.from_age, -1 if o.until is None else o.until, d, -1 if o.fire_from is None else o.fire_from)


def from_decision_rows(
    name: str,
    rows: Sequence[DecisionRow],
    *,
    queue_cap: int,
    unit_ms: float,
    max_wait: int,
    forced_model: int,
    max_batch: int,
) -> ChoiceTable:
    """The :class:`ChoiceTable` of a scheduler that may follow any of ``rows``
    (:mod:`batchenv.decision_rows`) at every decision: a row that dispatches offers its dispatch
    (and every alternative of its SLO guard); a row that waits with a timer in ``[shortest,
    longest]`` ms offers the wait until ``longest`` and its fallback from ``shortest`` on, the
    timer firing anywhere in between. Timer bounds are widened to whole time units (shortest
    rounded down, longest up), so the table allows at least every behaviour of the rows.

    The SLO guard's alternatives depend on the age; over each time unit ``[u, u + 1)`` up to
    ``max_wait`` they are the guard's exact union over the ages of the unit
    (:func:`formal.band.guard_choices_between`), and from ``max_wait`` on the union over every
    age from there (the age of a request that waited through a busy worker).
    """
    options: list[tuple[Option, ...]] = []
    for q in range(1, queue_cap + 1):
        out: set[Option] = set()
        for row in rows:
            k = row.at(q)
            decision = row.decisions[k]
            if decision is not None:
                out |= _guarded_options(row, q, decision, 0, unit_ms, max_wait)
                continue
            timer = row.timers_ms[k]
            if timer is None or not math.isfinite(timer[0]):
                out.add(Option(None))
                continue
            shortest = max(0, math.floor(timer[0] / unit_ms + 1e-9))
            longest = math.ceil(timer[1] / unit_ms - 1e-9) if math.isfinite(timer[1]) else None
            if longest is not None and longest > 0:
                out.add(Option(None, 0, longest, shortest))
            fallback = row.fallbacks[k]
            assert fallback is not None  # DecisionRow checks it
            out |= _guarded_options(row, q, fallback, shortest, unit_ms, max_wait)
        options.append(tuple(sorted(out, key=option_key)))
    return ChoiceTable(name, tuple(options), forced_model, max_batch)


def _guarded_options(
    row: DecisionRow, q: int, dispatch: Dispatch, start: int, unit_ms: float, max_wait: int
) -> set[Option]:
    """``dispatch`` from age ``start`` on, through the row's SLO guard (docstring of
    :func:`from_decision_rows`)."""
    if row.guard is None:
        return {Option(dispatch, start)}
    out: set[Option] = set()
    last = max(start, max_wait)
    for u in range(start, last + 1):
        until = None if u == last else u + 1
        hi_ms = math.inf if until is None else until * unit_ms
        chosen = guard_choices_between(row.guard, q, dispatch, u * unit_ms, hi_ms)
        out |= {Option(d, u, until) for d in chosen}
    return merge_options(out)


def merge_options(options: set[Option]) -> set[Option]:
    """Adjacent age ranges of the same dispatch joined into one option."""
    by_decision: dict[Decision, list[Option]] = {}
    for o in options:
        by_decision.setdefault(o.decision, []).append(o)
    out: set[Option] = set()
    for decision, group in by_decision.items():
        group.sort(key=lambda o: o.from_age)
        current = group[0]
        for o in group[1:]:
            if current.until is None:  # lasts for ever from an earlier age: o adds nothing
                continue
            if o.from_age <= current.until:
                until = None if o.until is None else max(current.until, o.until)
                current = Option(decision, current.from_age, until)
            else:
                out.add(current)
                current = o
        out.add(current)
    return out
