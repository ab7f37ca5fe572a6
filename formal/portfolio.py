"""A portfolio scheduler (the ``robust`` scheduler of :mod:`agents.robust`) as an adversarial
switch among its experts, in the discrete model and in the timed automata.

The robust scheduler follows one expert of its portfolio at a time and switches at coupling
epochs, by a rule that reads every expert's shadow cost and latency tail. Its experts are table
schedulers (the burst-aware table, whose table tilt follows a burst meter and whose rate estimate
a backlog test may raise; the plain table; the agile table) and timeouts. None of the rule's
inputs (shadow costs, the burst meter, the rate estimators, the arrival pattern the SLO guard
reads) is part of the models' state, so each becomes an adversarial choice: at every decision,
the model may follow **any** expert, and for a table expert

- any rate estimate within the band ``[r / f, r x f]`` of the true rate (:mod:`formal.band`),
- any of its tilted tables (the burst meter may read anything),
- any rate the backlog test may raise the estimate to in that state (:func:`backlog_rates`),
- any dispatch its SLO guard may send (over every arrival pattern consistent with the state).

Every switching pattern the portfolio can produce (and more) is then a scheduler of the MDP:
``Pmax``/``Rmax`` are sound upper bounds for the robust scheduler under any switching and any
estimate within the band, ``Pmin``/``Rmin`` lower bounds. Every expert is given by its
:class:`batchenv.decision_rows.DecisionRow` s: a timeout ``(B, T)`` is the row that dispatches
at ``q >= B`` and otherwise waits with a timer of exactly ``T`` (:func:`timeout_row`).

Units: rates in requests/s, ages and timers in ms unless a name says ticks or time units.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchenv.decision_rows import DecisionRow, Dispatch, rows_of
from batchenv.sim import Decision
from formal.band import EstimateBand, guarded_dispatches, row_choices, tick_ages
from formal.discrete import TickModel
from formal.prism import Choices

__all__ = [
    "RATE_CEILING_PER_S",
    "Expert",
    "backlog_rates",
    "distinct_experts",
    "expert_of",
    "experts_of",
    "portfolio_choice_pair",
    "portfolio_choices",
    "snapped",
    "timeout_row",
]

RATE_CEILING_PER_S = 1e7
"""Stands for an unbounded rate estimate (requests/s): the backlog test at an age near 0 raises the
estimate without bound; every table's last row covers every rate above its grid, and a timer at
this rate is below 1 microsecond."""


@dataclass(frozen=True)
class Expert:
    """One expert of a portfolio, as the models see it.

    :param label: the portfolio's name for it.
    :param rows: ``rows(lo, hi)``: every :class:`DecisionRow` the expert may follow while its rate
        estimate is anywhere in ``[lo, hi]`` requests/s (of every tilted table it keeps).
    :param backlog_llr: the threshold of its backlog test (log-likelihood units; 0: no test).
    """

    label: str
    rows: Callable[[float, float], list[DecisionRow]]
    backlog_llr: float = 0.0
    key: str | None = None
    """Experts with the same key have the same rows and backlog test (None: unique)."""


def timeout_row(label: str, batch: int, timeout_ms: float, model: int, max_batch: int) -> DecisionRow:
    """Triton's timeout(B, T) as a decision row: dispatch ``min(q, max_batch)`` on ``model`` once
    ``q >= batch``, else wait until the oldest request has waited ``timeout_ms`` and dispatch the
    same (:class:`agents.baselines.Timeout`)."""
    dispatch = (model, max_batch)
    waits = batch - 1
    return DecisionRow(
        label=label,
        decisions=(None,) * waits + (dispatch,),
        timers_ms=((timeout_ms, timeout_ms),) * waits + (None,),
        fallbacks=(dispatch,) * waits + (None,),
    )


def expert_of(label: str, scheduler: object) -> Expert:
    """An :class:`Expert` from a scheduler object: a timeout (``preferred_batch_size``,
    ``max_queue_delay_ms``, ``model``, ``max_batch_size``), a burst-aware table (every tilt, its
    ``backlog_llr``) or any scheduler with ``decision_rows``."""
    if hasattr(scheduler, "max_queue_delay_ms") and hasattr(scheduler, "preferred_batch_size"):
        row = timeout_row(
            label,
            int(scheduler.preferred_batch_size),  # type: ignore[attr-defined]
            float(scheduler.max_queue_delay_ms),  # type: ignore[attr-defined]
            int(scheduler.model),  # type: ignore[attr-defined]
            int(scheduler.max_batch_size),  # type: ignore[attr-defined]
        )
        return Expert(label, lambda lo, hi: [row])
    backlog = float(getattr(scheduler, "backlog_llr", 0.0) or 0.0)
    key = _model_key(scheduler)
    return Expert(label, lambda lo, hi: rows_of(scheduler, lo, hi), backlog, key)


def _model_key(scheduler: object) -> str | None:
    """The scheduler's class and parameters without its rate estimator's settings (the models
    take any estimate within the band, whatever the estimator): equal keys, equal rows."""
    params = getattr(scheduler, "params", None)
    if not callable(params):
        return None
    kept = {k: v for k, v in sorted(params().items()) if k != "estimator"}
    return f"{type(scheduler).__qualname__}{kept!r}"


def experts_of(scheduler: object) -> list[Expert]:
    """The experts of a portfolio (``experts`` and ``labels`` of
    :class:`agents.robust.portfolio.ExpertPortfolio`); a scheduler without a portfolio is its own
    only expert."""
    experts = getattr(scheduler, "experts", None)
    if experts is None:
        return [expert_of(getattr(scheduler, "name", type(scheduler).__name__), scheduler)]
    labels = getattr(scheduler, "labels", None) or [f"expert{i}" for i in range(len(experts))]
    return [expert_of(label, e) for label, e in zip(labels, experts, strict=True)]


# ---------------------------------------------------------------------------------- backlog test
def _llr(k: int, mu: float) -> float:
    """Poisson log-likelihood ratio of ``k`` arrivals at rate ``k`` against mean ``mu`` (0 < mu)."""
    return k * math.log(k / mu) - (k - mu)


@functools.cache
def _threshold_mean(k: int, llr: float) -> float:
    """The mean ``mu`` in (0, k) at which :func:`_llr` equals ``llr`` (it decreases in mu there):
    the backlog test fires for ``mu`` below it."""
    low, high = 0.0, float(k)
    for _ in range(80):
        mid = 0.5 * (low + high)
        if mid <= 0.0 or _llr(k, mid) > llr:
            low = mid
        else:
            high = mid
    return high


def backlog_rates(
    queue: int, age_lo_ms: float, age_hi_ms: float, estimate_lo_per_s: float, llr: float
) -> tuple[float, float] | None:
    """Every rate (requests/s) the backlog test of :meth:`agents.robust.burst.BurstAwareProposed.
    _estimate_rate` may raise the estimate to, with ``queue`` requests waiting, the oldest of age
    in ``[age_lo_ms, age_hi_ms)``, and an estimate of at least ``estimate_lo_per_s``; None when it
    cannot fire there. The test fires when ``k = queue - 1`` arrivals in ``age`` exceed the
    estimate's mean ``mu = estimate x age`` by a log-likelihood ratio above ``llr``, and raises
    the estimate to ``k / age``; the ratio decreases with ``mu``, so the lowest estimate fires
    first. An unbounded rate (ages near 0) is :data:`RATE_CEILING_PER_S`."""
    k = queue - 1
    if llr <= 0.0 or k < 1:
        return None
    age_max_s = _threshold_mean(k, llr) / estimate_lo_per_s  # fires at ages below this
    lo_s, hi_s = age_lo_ms / 1000.0, min(age_hi_ms / 1000.0, age_max_s)
    if not hi_s > lo_s:
        return None
    top = RATE_CEILING_PER_S if lo_s <= 0.0 else min(k / lo_s, RATE_CEILING_PER_S)
    return min(k / hi_s, top), top


# ---------------------------------------------------------------------------------- choice sets
class _GuardMemo:
    """:func:`formal.band.guarded_dispatches`, remembered per guard, queue, dispatch and age
    interval: the
    rows of every expert, band and backlog interval share a few guards (one per table row)."""

    def __init__(self) -> None:
        self._memo: dict[tuple, frozenset[Dispatch]] = {}
        self._alive: dict[int, object] = {}  # keeps the guards (and the ids in the keys) alive

    def key(self, row: DecisionRow) -> tuple[int, int] | None:
        guard = row.guard
        if guard is None:
            return None
        self._alive[id(guard)] = guard
        return id(getattr(guard, "scheduler", guard)), id(getattr(guard, "row", guard))

    def __call__(
        self, row: DecisionRow, queue: int, dispatch: Dispatch, lo_ms: float, hi_ms: float
    ) -> frozenset[Dispatch]:
        if row.guard is None:
            return frozenset((dispatch,))
        key = (self.key(row), queue, dispatch, lo_ms, hi_ms)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = guarded_dispatches(row, queue, dispatch, lo_ms, hi_ms)
        return found


def _distinct(rows: Sequence[DecisionRow], memo: _GuardMemo) -> list[DecisionRow]:
    """``rows`` without repetitions (the same decisions, timers, fallbacks and guard)."""
    seen: set[tuple] = set()
    out = []
    for row in rows:
        key = (row.decisions, row.timers_ms, row.fallbacks, memo.key(row))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


_SNAP = 16
"""Backlog rate intervals are widened to powers of 2^(1/16) (at most 4.4% wider: a sound
over-approximation), so that states share their rows."""


def snapped(rates: tuple[float, float]) -> tuple[float, float]:
    """``rates`` widened outwards to powers of 2^(1/16) (:data:`_SNAP`), capped at
    :data:`RATE_CEILING_PER_S`."""
    lo = 2.0 ** (math.floor(math.log2(rates[0]) * _SNAP) / _SNAP)
    hi = min(2.0 ** (math.ceil(math.log2(rates[1]) * _SNAP) / _SNAP), RATE_CEILING_PER_S)
    return lo, max(lo, hi)


def distinct_experts(experts: Sequence[Expert]) -> tuple[list[Expert], dict[str, str]]:
    """The experts that differ for the models, and ``{label: label of an earlier expert with the
    same rows}`` for the others (e.g. the agile table, which differs only in its estimator)."""
    kept: list[Expert] = []
    same: dict[str, str] = {}
    for expert in experts:
        twin = next((e for e in kept if expert.key is not None and e.key == expert.key), None)
        if twin is None:
            kept.append(expert)
        else:
            same[expert.label] = twin.label
    return kept, same


def portfolio_choices(
    tm: TickModel, experts: Sequence[Expert], band: EstimateBand, *, shield: bool = True
) -> tuple[Choices, list[int]]:
    """The choice sets of a portfolio whose rule is an adversary (module docstring), in every
    decision state ``(phase, q, a)`` of ``tm`` (ages up to ``W + 1`` without the shield), and
    the number of distinct rows of the band per phase (of every expert; the backlog's rows come
    on top). A state of age ``a`` ticks stands for every real age of the oldest request in
    ``[a, a + 1)`` ticks (from ``W`` on, every age from ``a`` ticks: :func:`formal.band.tick_ages`):
    the backlog test, the rows' timers and their guards are read over that interval, so the
    choice set holds the decision taken at any of those ages (:func:`formal.band.row_choices`)."""
    return _choices(tm, experts, band, shield, _GuardMemo())


def portfolio_choice_pair(
    tm: TickModel, experts: Sequence[Expert], band: EstimateBand
) -> tuple[Choices, Choices, list[int]]:
    """:func:`portfolio_choices` with the shield and without it (the raw choices), sharing the
    SLO guards' answers."""
    memo = _GuardMemo()
    shielded, counts = _choices(tm, experts, band, True, memo)
    raw, _ = _choices(tm, experts, band, False, memo)
    return shielded, raw, counts


def _choices(
    tm: TickModel, experts: Sequence[Expert], band: EstimateBand, shield: bool, memo: _GuardMemo
) -> tuple[Choices, list[int]]:
    experts, _ = distinct_experts(experts)
    last_age = tm.max_age_ticks + (0 if shield else 1)
    choices: dict[tuple[int, int, int], frozenset[Decision]] = {}
    counts: list[int] = []
    raised_rows: dict[tuple[int, float, float], list[DecisionRow]] = {}

    def union(rows: Sequence[DecisionRow], q: int, a: int) -> set[Decision]:
        out: set[Decision] = set()
        for row in rows:
            out |= row_choices(row, q, a, tm, shield=shield, dispatches=memo)
        return out

    for phase, rate in enumerate(tm.phase_rates_per_s):
        lo, hi = band.around(rate)
        rows = _distinct([row for e in experts for row in e.rows(lo, hi)], memo)
        counts.append(len(rows))
        for q in range(1, tm.queue_cap + 1):
            for a in range(last_age + 1):
                allowed = union(rows, q, a)
                age_lo, age_hi = tick_ages(a, tm)
                for i, expert in enumerate(experts):
                    raised = backlog_rates(q, age_lo, age_hi, lo, expert.backlog_llr)
                    if raised is None:
                        continue
                    key = (i, *snapped(raised))
                    if key not in raised_rows:
                        raised_rows[key] = _distinct(expert.rows(key[1], key[2]), memo)
                    allowed |= union(raised_rows[key], q, a)
                choices[(phase, q, a)] = frozenset(allowed)
    return choices, counts
