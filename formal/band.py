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
  estimates of the band that select the row) offers *wait* and, once the timer may have fired,
  its *fallback* dispatch (through the guard);

each at **every real age** the state stands for (:func:`tick_ages`): a request arriving within a
tick is counted at its end, so at a state of age ``a`` the oldest request has waited anywhere in
``[a x tick, (a + 1) x tick)``. A timer inside that interval gives both the wait and the
fallback, and the guard is read over the whole interval (:func:`guard_choices_between`, exact for
the proposed scheduler's guard). The choice set therefore holds the decision the scheduler takes
at a tick boundary wherever in its tick the oldest request arrived. (After a dispatch that leaves
requests behind the model's age is an upper bound; :func:`formal.prism.choice_program` then keeps
a lower bound too where the choices depend on the age in between.)

Every scheduler of this MDP is a way the estimate can move within the band (the estimator may
even know the phase: its only constraint is the band), so ``Pmax``/``Rmax`` are the scheduler's
guaranteed worst cases under any estimation error within the band, ``Pmin``/``Rmin`` its best
cases. With ``f = 1``, one phase and no timer inside a tick the estimate is exact: one row, a
DTMC.

The timeout shield (``shield=True``) turns a wait at ``a >= W`` into the row's fallback, as the
scheduler does when the simulator says it is shielded; without it (``shield=False``) the raw
table is checked: a wait there is a violation (``a = W + 1``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from batchenv.decision_rows import DecisionRow, Dispatch, SloGuard, rows_of
from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.prism import Choices

__all__ = [
    "EstimateBand",
    "band_choices",
    "guard_choices_between",
    "guarded_dispatches",
    "is_deterministic",
    "row_choices",
    "tick_ages",
]

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


GuardChoices = Callable[[DecisionRow, int, Dispatch, float, float], frozenset[Dispatch]]
"""``(row, queue, dispatch, age_lo_ms, age_hi_ms) -> every dispatch the row's SLO guard may send
while the oldest request's age is anywhere in [age_lo_ms, age_hi_ms)``."""

GUARD_SAMPLES_PER_MS = 20
"""Ages per ms at which a guard of unknown structure is read (:func:`guard_choices_between`), with
the interval's two ends: a sampled union, used only for a guard that is not the proposed
scheduler's (every guard of the shipped schedulers has exact breakpoints)."""


def tick_ages(age_ticks: int, tm: TickModel) -> tuple[float, float]:
    """The real ages (ms) of the oldest request at a decision in a state of age ``age_ticks``:
    ``[a x tick, (a + 1) x tick)`` (a request arriving within a tick is counted at its end, with
    age 0, :mod:`formal.discrete`); from ``W`` on ``[a x tick, inf)``, since the model caps the
    age at ``W`` while the worker is busy (a request may have waited longer by the time it
    frees)."""
    lo = age_ticks * tm.tick_ms
    return lo, (lo + tm.tick_ms if age_ticks < tm.max_age_ticks else math.inf)


def guarded_dispatches(
    row: DecisionRow, queue: int, dispatch: Dispatch, age_lo_ms: float, age_hi_ms: float | None = None
) -> frozenset[Dispatch]:
    """Every dispatch ``row`` may send for ``dispatch`` (through its SLO guard, if any) while the
    oldest request's age is anywhere in ``[age_lo_ms, age_hi_ms)`` (``None``: at ``age_lo_ms``
    only): :func:`guard_choices_between`."""
    if row.guard is None:
        return frozenset((dispatch,))
    if age_hi_ms is None:
        return frozenset(row.guard.choices(queue, dispatch, age_lo_ms))
    return guard_choices_between(row.guard, queue, dispatch, age_lo_ms, age_hi_ms)


def guard_choices_between(
    guard: SloGuard, queue: int, dispatch: Dispatch, lo_ms: float, hi_ms: float
) -> frozenset[Dispatch]:
    """Every dispatch ``guard`` may send for ``dispatch`` at some age in ``[lo_ms, hi_ms)`` of the
    oldest request (``hi_ms`` may be infinite), exactly.

    :meth:`SloGuard.choices` is exact at one age, over every arrival pattern. For the proposed
    scheduler's guard (:func:`_guard_geometry`) the answer changes only at finitely many ages,
    computed from its service times, SLO and action values; it is read at each of them inside
    the interval, at ``lo_ms`` and at one age strictly between each two (the answer is constant
    there), so the union is exact; where a single model can win anywhere in the interval, the
    answer follows without reading the guard. A guard of another kind is read at
    :data:`GUARD_SAMPLES_PER_MS` ages per ms and at both ends (``hi_ms`` less 1e-9 ms): sampled.
    """
    if not hi_ms > lo_ms:
        raise ValueError(f"need lo_ms < hi_ms, got {lo_ms!r}, {hi_ms!r}")
    geometry = _guard_geometry(guard, queue, dispatch, lo_ms / 1000.0, hi_ms / 1000.0)
    if geometry is None:  # a guard of unknown structure: sampled densely, both ends included
        top = hi_ms if math.isfinite(hi_ms) else lo_ms + 1000.0
        n = max(2, math.ceil((top - lo_ms) * GUARD_SAMPLES_PER_MS) + 1)
        ages = [lo_ms + (top - lo_ms) * i / (n - 1) for i in range(n - 1)] + [top - 1e-9]
    else:
        sure, breakpoints = geometry
        if breakpoints is None:
            return sure
        inside = [1000.0 * x for x in breakpoints if lo_ms < 1000.0 * x < hi_ms]
        points = [lo_ms, *sorted(set(inside))]
        ends = [*points[1:], hi_ms if math.isfinite(hi_ms) else points[-1] + 2000.0]
        ages = points + [0.5 * (x + y) for x, y in zip(points, ends, strict=True)]
    out: set[Dispatch] = set(geometry[0] if geometry is not None else ())
    for age in ages:
        out |= guard.choices(queue, dispatch, age)
    return frozenset(out)


def _guard_geometry(
    guard: object, queue: int, dispatch: Dispatch, lo_s: float, hi_s: float
) -> tuple[frozenset[Dispatch], list[float] | None] | None:
    """For the proposed scheduler's SLO guard (:class:`agents.proposed._RowGuard`, read through
    its scheduler's service times, SLO and penalty and its row's action values) at ``queue`` and
    ``dispatch`` over the ages ``[lo_s, hi_s)``: dispatches it surely sends there, and the ages
    (s) at which its answer may change (None: those dispatches are its whole answer, known from
    the geometry alone); None for a guard of another kind.

    The guard keeps the dispatch while its batch would not be late (``age + service <= slo``);
    otherwise it picks the model m with the best value of the row minus the penalty times the
    batch's misses, ``min(b, ceil(late_m / s))`` with ``late_m = age + service_m(b) - slo`` and
    ``s`` the waiting requests' mean arrival spacing, anywhere in ``[0, 2 age / q]``. In the
    plane (age, s) these counts are constant between the lines ``s = late_m / j`` (j = 1..b),
    the line ``s = 2 age / q`` and the ages where ``late_m = 0``; at a fixed age the guard reads
    every such region (its own exact union over the arrival patterns), so its answer can change
    with the age only where two of these lines cross or a ``late_m`` changes sign. A model that
    cannot win anywhere in the interval (its value less its fewest misses' penalty is below
    another model's value less that model's most misses' penalty) changes nothing: its lines
    are left out, and when one model alone can win the answer is known."""
    scheduler = getattr(guard, "scheduler", None)
    row = getattr(guard, "row", None)
    try:
        service = scheduler._service_s  # type: ignore[union-attr]
        slo, w = float(scheduler._slo_s), float(scheduler._w_slo)  # type: ignore[union-attr]
        decisions = row.decisions  # type: ignore[union-attr]
        values_of = row.model_values  # type: ignore[union-attr]
    except AttributeError:
        return None
    model, b = dispatch
    kept_until = slo - service[model][b]  # the dispatch is kept at ages up to this
    keeps = frozenset((dispatch,)) if lo_s <= kept_until else frozenset()
    if values_of is None or hi_s <= kept_until:
        return frozenset((dispatch,)), None
    k = queue if queue < len(decisions) else len(decisions) - 1
    values = [float(v) for v in values_of[k]]
    models = [m for m, v in enumerate(values) if v != -math.inf]
    if not models:
        return frozenset((dispatch,)), None
    c = {m: service[m][b] - slo for m in models}
    lo_late = max(lo_s, kept_until)  # the ages at which the guard compares the models

    def ratio(m: int, x: float) -> float:
        """late_m / the widest spacing, at age x (q >= 2, x > 0)."""
        return queue * (x + c[m]) / (2.0 * x)

    def misses_range(m: int) -> tuple[int, int]:
        most = b if hi_s + c[m] > 0.0 else 0
        if lo_late + c[m] <= 0.0:
            return 0, most
        if queue < 2:
            return b, most
        # late_m / (2 age / q) is monotone in the age: its least value is at an end (q / 2 at inf)
        ends = [ratio(m, hi_s) if math.isfinite(hi_s) else queue / 2.0]
        if lo_late > 0.0:
            ends.append(ratio(m, lo_late))
        return min(b, max(0, math.ceil(min(ends) - 1e-9))), most

    ranges = {m: misses_range(m) for m in models}
    best_worst = max(values[m] - w * ranges[m][1] for m in models)
    winners = [m for m in models if values[m] - w * ranges[m][0] >= best_worst - 1e-12]
    if len(winners) == 1:
        return keeps | {(winners[0], b)}, None
    out = [kept_until, *(-c[m] for m in models)]
    if queue >= 2:
        # lines s = (x + c_m) / j of the possible winners: crossings with each other and with 2 x / q
        js = np.arange(1, b + 1, dtype=float)
        denominator = 2.0 * js / queue - 1.0
        for m in winners:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = c[m] / denominator
            out += x[np.isfinite(x) & (denominator != 0.0)].tolist()
        j, i = np.meshgrid(js, js, indexing="ij")  # line (m, j) against line (n, i)
        for m, n in itertools.combinations(winners, 2):
            with np.errstate(divide="ignore", invalid="ignore"):
                x = (j * c[n] - i * c[m]) / (i - j)
            out += x[np.isfinite(x) & (i != j)].tolist()
    return keeps, [x for x in out if lo_s < x < hi_s]


def row_choices(
    row: DecisionRow,
    queue: int,
    age_ticks: int,
    tm: TickModel,
    *,
    shield: bool,
    dispatches: GuardChoices = guarded_dispatches,
) -> frozenset[Decision]:
    """The decisions ``row`` allows at queue length ``queue`` in a state of age ``age_ticks`` (a
    worker idle), normalised to the batch dispatched: the union of its decisions over every real
    age of the oldest request in that state, :func:`tick_ages`. ``age_ticks`` may be ``W + 1``
    (after a violation, where the fallback follows as with the shield). ``dispatches`` reads the
    row's SLO guard over an interval of ages (a memo of :func:`guarded_dispatches` may be passed).

    A wait's timer fires once the age reaches it, anywhere in ``[shortest, longest]`` over the
    band: the row waits at some age of ``[lo, hi)`` iff ``lo < longest``, and has sent its
    fallback at some age iff ``shortest < hi``, at ages from ``max(lo, shortest)`` on (so the
    guard is read over those). Both are offered when a timer may fire inside the tick."""
    k = row.at(queue)
    lo, hi = tick_ages(age_ticks, tm)
    decision = row.decisions[k]
    out: set[Decision] = set()
    if decision is not None:
        out |= dispatches(row, queue, decision, lo, hi)
    else:
        shortest, longest = row.timers_ms[k] or (math.inf, math.inf)
        waits = lo < longest - _EPS
        ends = shortest < hi - _EPS
        blocked = age_ticks > tm.max_age_ticks or (shield and age_ticks >= tm.max_age_ticks)
        if waits and not blocked:
            out.add(None)
        if ends or (waits and blocked):
            fallback = row.fallbacks[k]
            if fallback is None:  # a wait without a fallback: the shield's dispatch on model 0
                fallback = (0, tm.max_batch)
            start = lo if (waits and blocked) else max(lo, shortest)
            out |= dispatches(row, queue, fallback, start, hi)
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
