"""A portfolio scheduler (``robust``) in the timed automata: a :class:`ChoiceTable` that may follow
any expert at every decision (:mod:`formal.portfolio` for the over-approximation).

The table is the union of

- the options of every expert's rows for estimates within the band (:func:`from_decision_rows`:
  timed waits whose timer fires anywhere in its range, SLO-guard alternatives; a timeout expert
  is its own row, a wait of exactly T);
- for a table expert with a backlog test, in every time unit ``[u, u + 1)`` of the oldest
  request's age where the test may fire (:func:`formal.portfolio.backlog_rates`), the options of
  the rows of every rate it may raise the estimate to: their dispatches (through the SLO guard,
  its exact union over the ages of the unit) over that unit, their waits (taken there, ending at
  their timer).

Dispatch options of the same decision whose age ranges meet are joined (fewer edges, the same
behaviours). Every wait is offered from age 0 to the end of its timer range: a chain of waits without an event
in between (the portfolio switching experts, or an estimate that moves, at a timer's expiry)
ends at the latest timer of the chain, which the longest of these waits covers, and the model
then dispatches whatever is allowed at that age.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from batchenv.decision_rows import DecisionRow
from formal.band import guard_choices_between
from formal.portfolio import Expert, backlog_rates, distinct_experts, snapped
from formal.ta.schedulers import ChoiceTable, Option, from_decision_rows, merge_options, option_key

__all__ = ["portfolio_table"]


def _unit_options(row: DecisionRow, q: int, u: int, unit_ms: float) -> set[Option]:
    """The options ``row`` gives while the oldest request's age is in ``[u, u + 1)`` time units
    (module docstring): its dispatch (or its wait's fallback, once the timer may have fired)
    through its SLO guard over that unit, and its wait."""
    k = row.at(q)
    decision = row.decisions[k]
    out: set[Option] = set()
    if decision is None:
        timer = row.timers_ms[k]
        if timer is None or not math.isfinite(timer[1]):
            return {Option(None)}
        shortest, longest = timer
        if longest > u * unit_ms:  # the wait is taken at some age of the unit
            end = math.ceil(longest / unit_ms - 1e-9)
            out.add(Option(None, 0, end, min(end, max(0, math.floor(shortest / unit_ms + 1e-9)))))
        if (u + 1) * unit_ms <= shortest:  # the timer cannot have fired within the unit
            return out
        decision = row.fallbacks[k]
        assert decision is not None  # DecisionRow checks it
    if row.guard is None:
        chosen = {decision}
    else:  # over the ages of the unit at which the fallback may have been sent
        start = u * unit_ms if row.decisions[k] is not None else max(u * unit_ms, row.timers_ms[k][0])
        chosen = guard_choices_between(row.guard, q, decision, start, (u + 1) * unit_ms)
    return out | {Option(d, u, u + 1) for d in chosen}


def portfolio_table(
    name: str, experts: Sequence[Expert], rate_lo_per_s: float, rate_hi_per_s: float, **shape: Any
) -> ChoiceTable:
    """The :class:`ChoiceTable` of a portfolio that may follow any of ``experts`` at every
    decision, each table expert with its estimate anywhere in ``[rate_lo_per_s, rate_hi_per_s]``
    (or raised by its backlog test); module docstring.

    :param shape: the keyword arguments of :func:`from_decision_rows` (``queue_cap``,
        ``unit_ms``, ``max_wait`` in time units, ``forced_model``, ``max_batch``)."""
    queue_cap, unit_ms, max_wait, max_batch = (
        shape[k] for k in ("queue_cap", "unit_ms", "max_wait", "max_batch")
    )
    experts, _ = distinct_experts(experts)
    rows = [row for e in experts for row in e.rows(rate_lo_per_s, rate_hi_per_s)]
    base = from_decision_rows(name, rows, **shape)
    raised_rows: dict[tuple[int, float, float], list[DecisionRow]] = {}
    options: list[tuple[Option, ...]] = []
    for q in range(1, queue_cap + 1):
        extra: set[Option] = set()
        for i, expert in enumerate(experts):
            for u in range(max_wait + 1):
                raised = backlog_rates(q, u * unit_ms, (u + 1) * unit_ms, rate_lo_per_s, expert.backlog_llr)
                if raised is None:  # the test fires only below some age
                    break
                key = (i, *snapped(raised))
                if key not in raised_rows:
                    raised_rows[key] = expert.rows(key[1], key[2])
                for row in raised_rows[key]:
                    extra |= _unit_options(row, q, u, unit_ms)
        every = {
            o
            if o.decision is None
            else replace(o, decision=(o.decision[0], min(q, o.decision[1], max_batch)))
            for o in set(base.rows[q - 1]) | extra
        }
        merged = merge_options({o for o in every if o.decision is not None})
        merged |= {o for o in every if o.decision is None}
        options.append(tuple(sorted(merged, key=option_key)))
    return ChoiceTable(name, tuple(options), shape["forced_model"], max_batch)
