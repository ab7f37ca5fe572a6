"""Properties of the timed-automata model (:mod:`formal.ta.model`), checked with TChecker.

Each property is the unreachability of a labelled error location of an observer, or the absence
of an accepting cycle, so that a wrong model fails it (the tests check each one against a
mutant):

``timeout safety``
    Under *any* arrival stream (queue capped at ``queue_cap``), no request waits longer than
    ``max_wait_ms`` while a worker is idle: ``late_idle`` with ``z > max_wait`` is unreachable.
    The exact supremum of that wait is reported too.
``queue bound``
    Under the token bucket of burst b, the largest queue length K: ``queue_exceeded`` is
    unreachable with bound K and reachable with K - 1 (so K is exact, not just a bound).
``worst-case latency``
    Under the token bucket of burst b, the largest latency L of any admitted request (arrival
    to completion): ``late`` unreachable with ``z > L``, reachable with ``z > L - 1``.
``deadlock freedom``
    With finitely many arrivals under the token bucket, pending work never goes more than
    ``stall`` time units without an arrival, a completion or a timer (``stalled`` unreachable):
    the system cannot stop with requests left.
``leads-to``
    Every admitted request is eventually served (``Tag.Waiting --> Tag.InService``): no
    accepting cycle through the tag's ``Waiting`` location, a run that keeps it waiting forever
    while time diverges (``tck-liveness``, nested DFS).

Exact suprema: the zone graph of one exploration gives a candidate (:mod:`formal.ta.zonegraph`),
confirmed by two reachability queries (bound c unreachable, c - 1 reachable); when the
confirmation fails, a bisection over the bound finds it from reachability queries alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from batchenv.config import ConfigError, SystemConfig
from formal.ta.ir import Network
from formal.ta.model import ArrivalCurve, Observers, TAModel, build_network, service_units, used_service_units
from formal.ta.schedulers import Table
from formal.ta.tchecker_format import to_tchecker
from formal.ta.zonegraph import Node, max_over, upper_bound
from formal.tchecker import CheckResult, TChecker, TCheckerTimeoutError
from formal.uppaal import Query, UppaalModel, to_uppaal

__all__ = [
    "PROPERTIES",
    "PropertyResult",
    "TAChecks",
    "TASettings",
    "distinct",
    "tight_bound",
    "uppaal_models",
    "with_mutation",
]

PROPERTIES = ("timeout safety", "queue bound", "worst-case latency", "deadlock freedom", "leads-to")


@dataclass(frozen=True)
class TASettings:
    """What the timed-automata stage checks.

    :param config: the system.
    :param rate_per_s: mean rate of the arrival curve (requests/s): one token per mean
        inter-arrival time; default the config's mean rate.
    :param unit_ms: time unit (ms); service times are rounded up to it, in [0.1, 5].
    :param queue_cap: queue capacity of the model (requests), in [2, 64].
    :param bursts: burst sizes b of the token bucket for the queue bound and latency.
    :param liveness_burst: burst of the leads-to and deadlock checks.
    :param finite_arrivals: arrivals in all in the deadlock check.
    :param timeout_s: wall-clock budget of one TChecker call (s).
    :param jobs: TChecker calls at once.
    """

    config: SystemConfig
    rate_per_s: float | None = None
    unit_ms: float = 1.0
    queue_cap: int = 32
    bursts: tuple[int, ...] = (1, 2, 3)
    liveness_burst: int = 1
    finite_arrivals: int = 4
    timeout_s: float = 300.0
    jobs: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.unit_ms, int | float) or not 0.1 <= self.unit_ms <= 5:
            raise ConfigError("ta.unit_ms", f"must be in [0.1, 5] (ms), got {self.unit_ms!r}")
        if (
            isinstance(self.queue_cap, bool)
            or not isinstance(self.queue_cap, int)
            or not 2 <= self.queue_cap <= 64
        ):
            raise ConfigError(
                "ta.queue_cap", f"must be an integer in [2, 64] (requests), got {self.queue_cap!r}"
            )
        if not self.bursts or any(
            not isinstance(b, int) or not 1 <= b <= self.queue_cap for b in self.bursts
        ):
            raise ConfigError("ta.bursts", f"must be integers in [1, {self.queue_cap}], got {self.bursts!r}")
        if not 1 <= self.liveness_burst <= self.queue_cap:
            raise ConfigError(
                "ta.liveness_burst", f"must be in [1, {self.queue_cap}], got {self.liveness_burst!r}"
            )
        if not 1 <= self.finite_arrivals <= 1000:
            raise ConfigError("ta.finite_arrivals", f"must be in [1, 1000], got {self.finite_arrivals!r}")
        rate = self.rate
        if not isinstance(rate, int | float) or not rate > 0 or round(1000.0 / rate / self.unit_ms) < 1:
            raise ConfigError(
                "rate_per_s", f"must be > 0 with a mean gap of at least one time unit, got {rate!r}"
            )

    @property
    def rate(self) -> float:
        return self.config.arrivals.mean_rate_per_s if self.rate_per_s is None else self.rate_per_s

    @property
    def period(self) -> int:
        """Mean inter-arrival time in time units (the token period)."""
        return round(1000.0 / self.rate / self.unit_ms)

    def curve(self, burst: int, n_arrivals: int | None = None) -> ArrivalCurve:
        return ArrivalCurve(burst, self.period, n_arrivals)


@dataclass(frozen=True)
class PropertyResult:
    """One checked property of one scheduler.

    :ivar holds: the property holds (queue bound and latency: the bound found is below the
        queue capacity / finite).
    :ivar value: the bound (ms or requests), exact unless ``value_note`` says otherwise.
    :ivar checks: TChecker calls; ``states``: the most symbolic states one of them visited.
    """

    scheduler: str
    prop: str
    arrivals: str
    holds: bool
    value: float | None = None
    unit: str = ""
    detail: str = ""
    checks: int = 0
    states: int = 0
    seconds: float = 0.0
    decided: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "scheduler": self.scheduler,
            "property": self.prop,
            "arrivals": self.arrivals,
            "holds": self.holds,
            "decided": self.decided,
            "value": self.value,
            "unit": self.unit,
            "detail": self.detail,
            "tchecker_calls": self.checks,
            "max_states": self.states,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Tally:
    """TChecker calls of one property check."""

    checks: int = 0
    states: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, result: CheckResult) -> CheckResult:
        self.checks += 1
        self.states = max(self.states, result.visited_states)
        return result

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def result(self, scheduler: str, prop: str, arrivals: str, holds: bool, **kwargs: Any) -> PropertyResult:
        """A :class:`PropertyResult` with this tally's calls, states and time."""
        return PropertyResult(
            scheduler,
            prop,
            arrivals,
            holds,
            checks=self.checks,
            states=self.states,
            seconds=self.seconds,
            **kwargs,
        )


def tight_bound(reachable_above: Callable[[int], bool], hint: float | None, limit: int) -> int | None:
    """The least integer c in [0, limit] with ``reachable_above(c)`` false (the supremum of an
    integer-bounded quantity), or None if even ``limit`` is exceeded. Tries ``hint`` first (two
    calls when it is right), else bisects."""
    if hint is not None and math.isfinite(hint) and 0 <= hint <= limit:
        c = int(hint)
        if not reachable_above(c) and (c == 0 or reachable_above(c - 1)):
            return c
    if reachable_above(limit):
        return None
    lo, hi = -1, limit  # reachable_above(lo) is true (lo = -1: vacuous), reachable_above(hi) false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reachable_above(mid):
            lo = mid
        else:
            hi = mid
    return hi


class TAChecks:
    """The properties of one system, for any scheduler table.

    :param tck: the TChecker to run.
    :param settings: the system and the sizes.
    """

    def __init__(self, tck: TChecker | None, settings: TASettings) -> None:
        self.tck = tck
        self.settings = settings
        self.config = settings.config
        self.svc = service_units(settings.config, settings.unit_ms)

    # ------------------------------------------------------------------ models
    @property
    def _tag_index(self) -> int:
        """Position of the tag in a state's locations: Arrival, Scheduler, the workers, Tag."""
        return 2 + self.config.n_workers

    @property
    def max_wait(self) -> int:
        return math.floor(self.config.max_wait_ms / self.settings.unit_ms + 1e-9)

    def model(self, table: Table, arrivals: ArrivalCurve, **kwargs: object) -> TAModel:
        return TAModel(self.config, table, arrivals, self.settings.unit_ms, **kwargs)  # type: ignore[arg-type]

    def _latency_limit(self) -> int:
        """A latency no run of a sane model reaches: every queued request served one batch at a
        time on the slowest model, after max_wait."""
        return self.max_wait + self.settings.queue_cap * max(max(row) for row in self.svc)

    def _reach(self, tally: _Tally, model: TAModel, observers: Observers, label: str) -> bool:
        text = to_tchecker(build_network(model, observers))
        return tally.add(self.tck.reach(text, [label], timeout_s=self.settings.timeout_s)).holds

    def _explore(self, tally: _Tally, model: TAModel, observers: Observers) -> str:
        text = to_tchecker(build_network(model, observers))
        return tally.add(
            self.tck.reach(text, [], timeout_s=self.settings.timeout_s, certificate="graph")
        ).certificate

    def _ms(self, units: int | None) -> float | None:
        return None if units is None else units * self.settings.unit_ms

    # ------------------------------------------------------------------ properties
    def timeout_safety(self, name: str, model: TAModel) -> PropertyResult:
        """No request waits longer than max_wait_ms while a worker is idle, under any arrivals
        (``model.arrivals`` should be unconstrained); reports the exact supremum of that wait."""
        tally = _Tally()

        def above(c: int) -> bool:
            return self._reach(tally, model, Observers(tag=True, wait_bound=c), "late_idle")

        arrivals = model.arrivals.describe(self.settings.unit_ms)
        bound_ms = self.max_wait * self.settings.unit_ms
        # Candidate: the table's longest wait; confirmed by two queries, else bisection.
        sup = tight_bound(above, model.table.longest_wait(), self.max_wait)
        if sup is None:
            detail = f"a request waits > {bound_ms:g} ms with a worker idle"
            return tally.result(name, "timeout safety", arrivals, False, unit="ms", detail=detail)
        detail = f"wait with a worker idle <= {bound_ms:g} ms (max_wait); exact supremum {self._ms(sup):g} ms"
        return tally.result(
            name, "timeout safety", arrivals, True, value=self._ms(sup), unit="ms", detail=detail
        )

    def queue_and_latency(self, name: str, model: TAModel) -> tuple[PropertyResult, PropertyResult]:
        """Exact largest queue length and largest latency under ``model.arrivals``."""
        tally = _Tally()
        limit = self._latency_limit()
        try:
            graph = self._explore(tally, model, Observers(tag=True, measure_z=limit))
        except TCheckerTimeoutError:
            graph = ""  # no hints: the bounds come from bisection alone
        cap = model.queue_cap

        q_tally = _Tally()
        q_hint = max_over(graph, lambda node: node.ints.get("q"))
        queue = tight_bound(
            lambda k: self._reach(q_tally, model, Observers(queue_bound=k), "queue_exceeded"), q_hint, cap - 1
        )

        def latency_hint(node: Node) -> float | None:
            tag = node.locations[self._tag_index]
            return upper_bound(node.zone, "z") if tag == "Waiting" or tag.startswith("InService") else None

        l_tally = _Tally()
        latency = tight_bound(
            lambda c: self._reach(l_tally, model, Observers(tag=True, latency_bound=c), "late"),
            max_over(graph, latency_hint),
            limit,
        )
        arrivals = model.arrivals.describe(self.settings.unit_ms)
        # the exploration is shared: counted in both rows, half its time in each
        shared = {"checks": 1, "states": tally.states, "seconds": tally.seconds / 2}
        queue_detail = f"q <= {queue} (exact)" if queue is not None else f"the queue fills ({cap}): drops"
        latency_detail = (
            f"latency <= {self._ms(latency):g} ms (exact)" if latency is not None else "unbounded"
        )
        rows = []
        for prop, tal, value, unit, detail in (
            ("queue bound", q_tally, queue, "requests", queue_detail),
            ("worst-case latency", l_tally, self._ms(latency), "ms", latency_detail),
        ):
            rows.append(
                PropertyResult(
                    name,
                    prop,
                    arrivals,
                    value is not None,
                    value,
                    unit,
                    detail,
                    checks=tal.checks + shared["checks"],
                    states=max(tal.states, shared["states"]),
                    seconds=tal.seconds + shared["seconds"],
                )
            )
        return rows[0], rows[1]

    def stall_limit(self, model: TAModel) -> int:
        """Longest gap between events while work is pending in a correct model: the longest
        batch the table can start, or a wait up to the table's last breakpoint."""
        return max(max(used_service_units(model)), max(model.table.breakpoints() or [0]))

    def deadlock_freedom(self, name: str, model: TAModel) -> PropertyResult:
        """With finitely many arrivals, requests never stay pending without an event for longer
        than :meth:`stall_limit` (``stalled`` unreachable)."""
        tally = _Tally()
        limit = self.stall_limit(model)
        stalled = self._reach(tally, model, Observers(stall_units=limit), "stalled")
        gap = f"{limit * self.settings.unit_ms:g} ms"
        detail = f"work pending with no event for more than {gap}" if stalled else f"no stall beyond {gap}"
        arrivals = model.arrivals.describe(self.settings.unit_ms)
        return tally.result(name, "deadlock freedom", arrivals, not stalled, detail=detail)

    def leads_to(self, name: str, model: TAModel) -> PropertyResult:
        """Every admitted request is eventually served: no accepting cycle through the tag's
        ``Waiting`` (nested DFS on the zone graph)."""
        tally = _Tally()
        text = to_tchecker(build_network(model, Observers(tag=True, liveness=True)))
        cycle = tally.add(self.tck.liveness(text, ["waiting"], timeout_s=self.settings.timeout_s)).holds
        detail = "a run keeps a request waiting forever" if cycle else "Tag.Waiting --> Tag.InService"
        return tally.result(
            name, "leads-to", model.arrivals.describe(self.settings.unit_ms), not cycle, detail=detail
        )

    # ------------------------------------------------------------------ everything
    def tasks(
        self, name: str, table: Table, skip: Sequence[str] = ()
    ) -> list[Callable[[], list[PropertyResult]]]:
        """The checks of one scheduler (shield applied), as independent tasks, without the
        properties named in ``skip``."""
        s = self.settings
        shielded = table.shielded(self.max_wait)
        bounded = self.model(shielded, ArrivalCurve.unconstrained())
        out = [
            (("timeout safety",), bounded, lambda: [self.timeout_safety(name, bounded)]),
        ]
        finite = self.model(shielded, s.curve(s.liveness_burst, s.finite_arrivals))
        out.append((("deadlock freedom",), finite, lambda: [self.deadlock_freedom(name, finite)]))
        live = self.model(shielded, s.curve(s.liveness_burst))
        out.append((("leads-to",), live, lambda: [self.leads_to(name, live)]))
        for burst in s.bursts:
            model = self.model(shielded, s.curve(burst))
            out.append(
                (
                    ("queue bound", "worst-case latency"),
                    model,
                    lambda model=model: list(self.queue_and_latency(name, model)),
                )
            )
        return [
            self._guarded(name, props, model, task)
            for props, model, task in out
            if not set(props) & set(skip)
        ]

    def _guarded(
        self, name: str, props: tuple[str, ...], model: TAModel, task: Callable[[], list[PropertyResult]]
    ) -> Callable[[], list[PropertyResult]]:
        """``task``, or rows saying 'no verdict' when a TChecker call runs out of time."""

        def run() -> list[PropertyResult]:
            start = time.perf_counter()
            try:
                return task()
            except TCheckerTimeoutError as exc:
                arrivals = model.arrivals.describe(self.settings.unit_ms)
                seconds = time.perf_counter() - start
                return [
                    PropertyResult(
                        name,
                        prop,
                        arrivals,
                        False,
                        detail=f"no verdict: {exc}",
                        seconds=seconds,
                        decided=False,
                    )
                    for prop in props
                ]

        return run

    def run(
        self, schedulers: Sequence[tuple[str, Table]], skip: Mapping[str, Sequence[str]] | None = None
    ) -> list[PropertyResult]:
        """Every property of every scheduler (but those ``skip`` names for it),
        ``settings.jobs`` TChecker calls at a time; the results are in a fixed order whatever the
        number of jobs. Pass schedulers that decide differently (:func:`distinct`)."""
        skip = skip or {}
        tasks = [task for name, table in schedulers for task in self.tasks(name, table, skip.get(name, ()))]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.jobs)) as pool:
            futures = [pool.submit(task) for task in tasks]
            results = [row for future in futures for row in future.result()]
        order = {prop: i for i, prop in enumerate(PROPERTIES)}
        names = [name for name, _ in schedulers]
        return sorted(results, key=lambda r: (names.index(r.scheduler), order[r.prop]))


def distinct(
    schedulers: Sequence[tuple[str, Table]],
) -> tuple[list[tuple[str, Table]], dict[str, str]]:
    """The schedulers with a table of their own, and for each other one the name of the first
    scheduler that decides the same in every state."""
    kept: list[tuple[str, Table]] = []
    same: dict[str, str] = {}
    for name, table in schedulers:
        twin = next(
            (k for k, t in kept if t.same_decisions(table) and t.forced_model == table.forced_model), None
        )
        if twin is None:
            kept.append((name, table))
        else:
            same[name] = twin
    return kept, same


def uppaal_models(
    checks: TAChecks, name: str, table: Table, burst: int
) -> tuple[list[UppaalModel], list[Network]]:
    """The UPPAAL counterparts of the checks for one scheduler, each with its queries, and their
    networks (for TChecker, in the same order):

    - ``batching_any.xml``: arrivals at any time (queue capped at ``queue_cap``), the tag
      observer: timeout safety and the longest wait with a worker idle, the arrivals of
      TChecker's timeout-safety check;
    - ``batching.xml``: the token bucket of burst ``burst``, every observer: timeout safety under
      it too, worst-case latency, largest queue, leads-to;
    - ``batching_finite.xml``: finitely many arrivals (the generator stops after the last one),
      for UPPAAL's own deadlock query.

    UPPAAL's ``sup{phi}: z`` ranges over every state satisfying ``phi``, committed ones
    included; the scheduler's committed locations ``Decide`` and ``Notify`` (zero-time steps,
    e.g. right after a completion, before the decision that follows it) are excluded from the
    longest-wait query, as in TChecker, where the tag's ``LateIdle`` edge cannot fire while a
    committed location must move first."""
    s = checks.settings
    shielded = table.shielded(checks.max_wait)
    unit = s.unit_ms
    n = checks.config.n_workers
    serving = " || ".join(f"Tag.InService_{w}" for w in range(n))
    limit = checks._latency_limit()
    idle_wait = f"sup{{Tag.Waiting && nbusy < {n} && !Scheduler.Decide && !Scheduler.Notify}}: z"
    safety = Query(
        "A[] not Tag.LateIdle",
        f"Timeout safety: no request waits longer than max_wait ({checks.max_wait} time units of "
        f"{unit:g} ms) while a worker is idle. Expected: satisfied (TChecker: late_idle unreachable).",
    )
    any_net = build_network(
        checks.model(shielded, ArrivalCurve.unconstrained()),
        Observers(tag=True, wait_bound=checks.max_wait),
        name="batching_any",
    )
    any_queries = [
        Query(
            safety.formula,
            safety.comment.replace("Timeout safety:", "Timeout safety under arrivals at any time:"),
        ),
        Query(
            idle_wait,
            "Longest wait with a worker idle (time units), under arrivals at any time, over the states "
            "where no committed step is pending (as TChecker's); verify.py reports TChecker's exact "
            "value.",
        ),
    ]
    observers = Observers(
        tag=True, wait_bound=checks.max_wait, latency_bound=limit, queue_bound=s.queue_cap - 1
    )
    main = build_network(checks.model(shielded, s.curve(burst)), observers, name="batching")
    queries = [
        Query(safety.formula, safety.comment + f" Here under the token bucket of burst {burst}."),
        Query(
            idle_wait,
            f"Longest wait with a worker idle (time units) under the token bucket of burst {burst}, "
            "over the states where no committed step is pending.",
        ),
        Query(
            f"sup{{Tag.Waiting || {serving}}}: z",
            f"Worst-case latency (time units) under the token bucket of burst {burst}.",
        ),
        Query("sup: q", f"Largest queue length under the token bucket of burst {burst}."),
        Query(
            "A[] not QueueWatch.Exceeded",
            f"The queue never exceeds {s.queue_cap - 1} (no drop). "
            f"Expected: satisfied when sup: q < {s.queue_cap}.",
        ),
        Query(
            f"Tag.Waiting --> ({serving})",
            "Every admitted request is eventually served. "
            "Expected: satisfied (TChecker: no accepting cycle).",
        ),
    ]
    finite = build_network(
        checks.model(shielded, s.curve(s.liveness_burst, s.finite_arrivals)),
        Observers(),
        name="batching_finite",
    )
    finite_queries = [
        Query(
            "A[] (deadlock imply (q == 0 && nbusy == 0))",
            f"With {s.finite_arrivals} arrivals in all (the generator stops after the last: no more "
            "refills), the system only stops once every request is served. Expected: satisfied. "
            "(With unbounded arrivals A[] not deadlock would hold trivially.)",
        ),
        Query(
            f"E<> (narr == {s.finite_arrivals} && q == 0 && nbusy == 0)",
            "Every arrival can be served. Expected: satisfied.",
        ),
        Query(
            "E<> deadlock", "The system can stop (so the first query is not vacuous). Expected: satisfied."
        ),
    ]
    networks = [any_net, main, finite]
    models = [to_uppaal(any_net, any_queries), to_uppaal(main, queries), to_uppaal(finite, finite_queries)]
    return models, networks


def with_mutation(model: TAModel, *mutations: str, slow_units: int = 0) -> TAModel:
    """``model`` with deliberate bugs (:data:`formal.ta.model.MUTATIONS`)."""
    return replace(model, mutations=frozenset(mutations), slow_units=slow_units)
