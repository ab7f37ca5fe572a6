"""The timed-automata model of the batching system, built from a ``SystemConfig`` as a
:class:`formal.ta.ir.Network`.

Processes (in this order, which fixes the order of updates in a synchronised step):

``Arrival``
    A token bucket: ``burst`` tokens at time 0, one more every ``period`` time units (at most
    ``burst``); each arrival takes a token, so at most ``burst + ceil(t / period)`` requests arrive
    in any window of length t (the arrival curve; ``period`` = the mean inter-arrival time).
    Arrivals are never forced: every stream below the curve is a behaviour, including one that
    stops. Optionally at most ``n_arrivals`` in all (finitely many arrivals): the last one moves
    the generator to ``Stopped``, which has no invariant and no edge (no more refills), so a run
    in which every request has been served can stop. An arrival that finds ``q == queue_cap`` is
    dropped (edge ``drop``).
``Scheduler``
    The queue ``q``, the clock ``age`` of the oldest waiting request (reset when a request
    arrives at an empty queue; after a partial dispatch it keeps the age of the request that left,
    an upper bound of the new oldest age, as in the discrete model) and the decision table
    (:class:`formal.ta.schedulers.DecisionTable`). Locations: ``Empty``; ``Wait`` (requests
    wait, a worker is idle, invariant ``age <= deadline``: the table's next breakpoint);
    ``WaitForever`` (a row that waits with no breakpoint ahead); ``Blocked`` (every worker
    busy); the committed ``Decide``, which looks the table up at (q, age) and either waits or
    starts ``min(q, batch)`` requests on the lowest idle worker (``start_w``), then decides again
    while requests wait and a worker is idle. It decides at every arrival, every completion
    (``done_w``) and every breakpoint (``expire``). The scheduler owns ``busy_w`` and ``nbusy``.
``Worker0..n-1``
    ``start_w``: busy for ``svc_w`` time units, the service time of the batch from the config's
    timing table (set by the scheduler, rounded up to the time unit); then ``done_w``.
Observers, added for the property being checked (:class:`Observers`):
``Tag``
    Follows one arbitrary admitted request (any arrival may be the tagged one) through the FIFO
    queue with clock ``z``: ``Waiting`` (position ``tpos``), ``InService_w``, ``Done``. Error
    locations: ``LateIdle`` (label ``late_idle``: it has waited longer than a bound while a
    worker was idle), ``Late`` (label ``late``: latency beyond a bound). The tag is used once, so
    a cycle of the zone graph through ``Waiting`` (label ``waiting`` for the liveness check)
    keeps that request waiting forever. With unbounded arrivals every cycle of the network
    contains a refill of the arrival bucket (guard ``y >= period``, reset of ``y``): the network
    is strongly non-Zeno, so such a cycle is a run in which time diverges.
``QueueWatch``
    Label ``queue_exceeded`` when an arrival makes ``q > queue_bound``.
``Watchdog``
    Clock ``wd``, reset by every arrival, completion and timer expiry; label ``stalled`` when
    requests are pending (waiting or in service) and no event has happened for more than
    ``stall_units``: with finitely many arrivals, a deadlock that leaves work undone.

Mutations (deliberately broken models, for the tests): ``timer_removed`` (waits end only at an
event), ``guard_flipped`` (the scheduler's "every worker busy" test negated), ``lost_wakeup`` (a
completion while every worker is busy does not wake the scheduler),
``age_reset_on_arrival`` (the age clock measures the newest request), ``slow_worker`` (worker 0
takes ``slow_units`` longer than the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from batchenv.config import ConfigError, SystemConfig
from batchenv.timing import ServiceTable
from formal.ta.ir import Network, Process
from formal.ta.schedulers import ChoiceTable, DecisionTable

__all__ = [
    "MUTATIONS",
    "ArrivalCurve",
    "Observers",
    "TAModel",
    "build_network",
    "service_units",
    "used_service_units",
]

MUTATIONS = ("timer_removed", "guard_flipped", "lost_wakeup", "age_reset_on_arrival", "slow_worker")


def service_units(config: SystemConfig, unit_ms: float) -> list[list[int]]:
    """``[m][b]``: service time of a batch of ``b`` (1..max_batch; entry 0 is 0) on model ``m``, in
    time units, rounded up (the model's batches are never faster than the table)."""
    table = ServiceTable(config).service_ms
    return [
        [0] + [math.ceil(table[m, b] / unit_ms - 1e-9) for b in range(1, config.max_batch_size + 1)]
        for m in range(config.n_models)
    ]


@dataclass(frozen=True)
class ArrivalCurve:
    """Token bucket: ``burst`` requests at once at most, one token back every ``period``
    time units; ``n_arrivals`` (None: unbounded) in all. ``period=None``: no curve at all, any
    number of arrivals at any time (then the network is not non-Zeno: for reachability only)."""

    burst: int
    period: int | None
    n_arrivals: int | None = None

    @classmethod
    def unconstrained(cls) -> ArrivalCurve:
        return cls(1, None)

    def __post_init__(self) -> None:
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigError("burst", f"must be an integer >= 1 (requests), got {self.burst!r}")
        if self.period is not None and (not isinstance(self.period, int) or self.period < 1):
            raise ConfigError("period", f"must be an integer >= 1 (time units), got {self.period!r}")

    def describe(self, unit_ms: float) -> str:
        if self.period is None:
            return "any arrivals"
        total = f", {self.n_arrivals} in all" if self.n_arrivals else ""
        return f"token bucket b={self.burst}, 1 per {self.period * unit_ms:g} ms{total}"
        if self.n_arrivals is not None and (not isinstance(self.n_arrivals, int) or self.n_arrivals < 1):
            raise ConfigError("n_arrivals", f"must be an integer >= 1 or None, got {self.n_arrivals!r}")


@dataclass(frozen=True)
class Observers:
    """Which observers to add, with their bounds (time units / requests).

    :param tag: add ``Tag``.
    :param wait_bound: ``late_idle`` when the tagged request has waited ``wait_op`` this while a
        worker is idle (None: no such edge).
    :param latency_bound: ``late`` when its latency is ``latency_op`` this (None: no edge).
    :param liveness: label the tag's ``Waiting`` location ``waiting``, for an accepting-cycle
        search (a cycle through it keeps the tagged request waiting forever).
    :param measure_z: make the checker keep the tag's clock ``z`` exact up to this value (a
        guard ``z > measure_z`` to the location ``Beyond`` and one ``z < measure_z`` on a
        self-loop of ``Done``), so that its upper bounds can be read off the zone graph.
    :param queue_bound: add ``QueueWatch`` with this bound (None: none).
    :param stall_units: add ``Watchdog`` with this limit (None: none).
    """

    tag: bool = False
    wait_bound: int | None = None
    wait_op: str = ">"
    latency_bound: int | None = None
    latency_op: str = ">"
    liveness: bool = False
    measure_z: int | None = None
    queue_bound: int | None = None
    stall_units: int | None = None


@dataclass(frozen=True)
class TAModel:
    """Everything that fixes one timed-automata model.

    :param config: the system (timing table, workers, max_wait_ms).
    :param table: the scheduler (apply :meth:`DecisionTable.shielded` for the shield).
    :param arrivals: the arrival curve.
    :param unit_ms: the time unit (ms).
    :param mutations: names from :data:`MUTATIONS`.
    :param slow_units: extra service time of worker 0 under ``slow_worker``.
    """

    config: SystemConfig
    table: DecisionTable | ChoiceTable
    arrivals: ArrivalCurve
    unit_ms: float = 0.5
    mutations: frozenset[str] = field(default_factory=frozenset)
    slow_units: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.mutations) - set(MUTATIONS)
        if unknown:
            raise ValueError(f"unknown mutations {sorted(unknown)}; known: {MUTATIONS}")

    @property
    def queue_cap(self) -> int:
        return self.table.queue_cap

    @property
    def max_wait(self) -> int:
        """max_wait_ms in time units (rounded down)."""
        return math.floor(self.config.max_wait_ms / self.unit_ms + 1e-9)

    @property
    def svc(self) -> list[list[int]]:
        return service_units(self.config, self.unit_ms)


def _comparison(clock: str, op: str, bound: int) -> str:
    if op not in (">", ">="):
        raise ValueError(f"op must be '>' or '>=', got {op!r}")
    return f"{clock} {op} {bound}"


def build_network(model: TAModel, observers: Observers = Observers(), name: str = "batching") -> Network:
    """The network of ``model`` with ``observers`` (see the module docstring)."""
    config, table = model.config, model.table
    n_workers, cap = config.n_workers, model.queue_cap
    svc_max = max(used_service_units(model)) + model.slow_units
    mutated = model.mutations
    net = Network(name, model.unit_ms)
    net.comments += [
        f"Dynamic batching system '{config.name}' generated by formal/ta/model.py.",
        f"Time unit {model.unit_ms:g} ms. Scheduler: {table.name}. "
        f"Arrivals: {model.arrivals.describe(model.unit_ms)}.",
    ]
    if mutated:
        net.comments.append("MUTANT: " + ", ".join(sorted(mutated)))

    # ---- variables
    arrivals = model.arrivals
    if arrivals.period is not None:
        net.int("tok", 0, arrivals.burst, arrivals.burst, "tokens of the arrival bucket")
    if arrivals.n_arrivals:
        net.int("narr", 0, arrivals.n_arrivals, 0, "arrivals so far")
    net.int("q", 0, cap, 0, "waiting requests")
    net.int("nbusy", 0, n_workers, 0, "busy workers")
    for w in range(n_workers):
        net.int(f"busy_{w}", 0, 1, 0, f"worker {w} runs a batch")
        net.int(f"svc_{w}", 0, svc_max, 0, f"service time of worker {w}'s batch (time units)")
    deadlines = table.breakpoints()
    if deadlines:
        net.int("deadline", 0, max(deadlines), 0, "age at which the current wait ends (time units)")
        if isinstance(table, ChoiceTable) and _ranged(table):
            net.int("fire", 0, max(deadlines), 0, "earliest age at which the current wait's timer fires")
            net.int("expired", 0, 1, 0, "the last wait ended by its timer: dispatch, do not wait again")
    if observers.tag:
        net.int("last_b", 0, config.max_batch_size, 0, "size of the batch just started (0 otherwise)")
        net.int("last_w", 0, n_workers - 1, 0, "its worker (0 otherwise)")
        net.int("tpos", 0, cap, 0, "position of the tagged request in the queue (1 = oldest)")
    if arrivals.period is not None:
        net.clock("y", "time since the last token")
    net.clock("age", "age of the oldest waiting request")
    for w in range(n_workers):
        net.clock(f"x_{w}", f"time in worker {w}'s batch")
    if observers.tag:
        net.clock("z", "the tagged request's time since arrival")
    if observers.stall_units is not None:
        net.clock("wd", "time since the last arrival, completion or timer expiry")

    # ---- processes
    _arrival(net, model)
    _scheduler(net, model, observers.tag)
    for w in range(n_workers):
        _worker(net, w, model.slow_units if "slow_worker" in mutated and w == 0 else 0)
    parties: dict[str, list[str]] = {"arrive": [], "expire": []}
    for w in range(n_workers):
        parties[f"done_{w}"] = []
    if observers.tag:
        _tag(net, model, observers)
        for event in parties:
            if event != "expire":
                parties[event].append("Tag")
        parties["dispatched"] = ["Tag"]
    if observers.queue_bound is not None:
        watch = net.process("QueueWatch", "observer: the queue never exceeds the bound")
        watch.location("Ok", initial=True)
        watch.location("Exceeded", labels=("queue_exceeded",))
        # Guards read the state before the arrival: q >= bound means q > bound after it.
        watch.edge("Ok", "Ok", "arrive", guard=(f"q < {observers.queue_bound}",))
        watch.edge("Ok", "Exceeded", "arrive", guard=(f"q >= {observers.queue_bound}",))
        watch.edge("Exceeded", "Exceeded", "arrive")
        parties["arrive"].append("QueueWatch")
    if observers.stall_units is not None:
        dog = net.process("Watchdog", "observer: pending work never goes without an event too long")
        dog.location("Ok", initial=True)
        dog.location("Stalled", labels=("stalled",))
        for event in parties:
            if event != "dispatched":
                dog.edge("Ok", "Ok", event, updates=("wd = 0",))
                dog.edge("Stalled", "Stalled", event)
                parties[event].append("Watchdog")
        dog.edge("Ok", "Stalled", guard=(f"wd > {observers.stall_units}", "q + nbusy > 0"))

    # ---- synchronisations
    # Observers are strong parties that can always take part (TChecker allows no guard on a
    # weakly synchronised edge); so UPPAAL's broadcast channels mean the same.
    net.sync(("Arrival", "arrive"), ("Scheduler", "arrive"), *((p, "arrive") for p in parties["arrive"]))
    for w in range(n_workers):
        start, done = f"start_{w}", f"done_{w}"
        net.sync(("Scheduler", start), (f"Worker{w}", start))
        net.sync((f"Worker{w}", done), ("Scheduler", done), *((p, done) for p in parties[done]))
    if parties["expire"] and "expire" in net.get("Scheduler").events():
        net.sync(("Scheduler", "expire"), *((p, "expire") for p in parties["expire"]))
    if observers.tag:
        net.sync(("Scheduler", "dispatched"), ("Tag", "dispatched"))
    return net.validate()


def used_service_units(model: TAModel) -> set[int]:
    """Service times (time units) of every batch the table can start."""
    svc, cap = model.svc, model.config.max_batch_size
    return {
        svc[p.decision[0]][min(q, p.decision[1], cap)]
        for q, row in enumerate(model.table.rows, start=1)
        for p in row
        if p.decision is not None
    } or {0}


def _arrival(net: Network, model: TAModel) -> None:
    arrivals, cap = model.arrivals, model.queue_cap
    if arrivals.period is None:
        proc = net.process("Arrival", "arrivals at any time")
        proc.location("Gen", initial=True)
        if arrivals.n_arrivals:
            proc.location("Stopped")
        token_guard: tuple[str, ...] = ()
        token_update: tuple[str, ...] = ()
    else:
        proc = net.process("Arrival", "token-bucket arrival curve")
        proc.location("Gen", initial=True, invariant=(f"y <= {arrivals.period}",))
        if arrivals.n_arrivals:
            proc.location("Stopped")
        refill = f"y >= {arrivals.period}"
        proc.edge(
            "Gen",
            "Gen",
            "refill",
            guard=(refill, f"tok < {arrivals.burst}"),
            updates=("tok = tok + 1", "y = 0"),
        )
        proc.edge("Gen", "Gen", "refill", guard=(refill, f"tok == {arrivals.burst}"), updates=("y = 0",))
        token_guard, token_update = ("tok > 0",), ("tok = tok - 1",)
    n = arrivals.n_arrivals
    for event, room, comment in (
        ("arrive", f"q < {cap}", ""),
        ("drop", f"q == {cap}", "the queue is full: the arrival is dropped"),
    ):
        if not n:
            guard = (*token_guard, room)
            proc.edge("Gen", "Gen", event, guard=guard, updates=token_update, comment=comment)
            continue
        # the last arrival stops the generator: no refill (and no invariant) afterwards, so that
        # a run whose requests are all served can stop (UPPAAL's deadlock is then reachable)
        counted = (*token_update, "narr = narr + 1")
        if n > 1:
            guard = (*token_guard, room, f"narr < {n - 1}")
            proc.edge("Gen", "Gen", event, guard=guard, updates=counted, comment=comment)
        last = (*token_guard, room, f"narr == {n - 1}")
        proc.edge("Gen", "Stopped", event, guard=last, updates=counted, comment=comment or "the last arrival")


def _lowest_idle(n_workers: int, w: int) -> tuple[str, ...]:
    return (*(f"busy_{v} == 1" for v in range(w)), f"busy_{w} == 0")


def _scheduler(net: Network, model: TAModel, tag: bool) -> None:
    config, table, mutated = model.config, model.table, model.mutations
    n = config.n_workers
    proc = net.process("Scheduler", f"queue and scheduler: {table.name}")
    proc.location("Empty", initial=True)
    timers = bool(table.breakpoints()) and "timer_removed" not in mutated
    if timers:
        proc.location("Wait", invariant=("age <= deadline",))
    if isinstance(table, ChoiceTable):
        forever = any(o.decision is None and (o.until is None or not timers) for r in table.rows for o in r)
    else:
        forever = any(
            p.decision is None and (i + 1 == len(row) or not timers)
            for row in table.rows
            for i, p in enumerate(row)
        )
    if forever:
        proc.location("WaitForever")
    proc.location("Blocked")
    proc.location("Decide", committed=True)
    if tag:
        # A second, committed step tells the tag which batch left (guards read the state before
        # a step, so the tag cannot see last_b in the step that sets it).
        proc.location("Notify", committed=True)
        proc.edge("Notify", "Decide", "dispatched", guard=("q > 0",))
        proc.edge("Notify", "Empty", "dispatched", guard=("q == 0",))
    reset_age = ("age = 0",) if "age_reset_on_arrival" in mutated else ()
    # Values that no longer matter are reset (deadline when a wait ends, svc_w when worker w
    # finishes), so that states differing only in them are one state.
    leave = {"Wait": ("deadline = 0",), "WaitForever": (), "Blocked": (), "Empty": ()}
    ranged = isinstance(table, ChoiceTable) and timers and _ranged(table)
    if ranged:
        leave["Wait"] = ("deadline = 0", "fire = 0")
    proc.edge("Empty", "Decide", "arrive", updates=("q = q + 1", "age = 0"))
    waits = (*(("Wait",) if timers else ()), *(("WaitForever",) if forever else ()))
    for loc in waits:
        proc.edge(loc, "Decide", "arrive", updates=("q = q + 1", *reset_age, *leave[loc]))
    proc.edge("Blocked", "Blocked", "arrive", updates=("q = q + 1", *reset_age))
    for w in range(n):
        freed = (f"busy_{w} = 0", "nbusy = nbusy - 1", f"svc_{w} = 0")
        proc.edge("Empty", "Empty", f"done_{w}", updates=freed)
        for loc in (*waits, "Blocked"):
            wake = "Blocked" if loc == "Blocked" and "lost_wakeup" in mutated else "Decide"
            proc.edge(loc, wake, f"done_{w}", updates=(*freed, *leave[loc]))
    if ranged:
        proc.edge("Wait", "Decide", "expire", guard=("age >= fire",), updates=(*leave["Wait"], "expired = 1"))
    elif timers:
        proc.edge("Wait", "Decide", "expire", guard=("age >= deadline",), updates=leave["Wait"])
    all_busy = f"nbusy == {n}" if "guard_flipped" not in mutated else f"nbusy < {n}"
    proc.edge("Decide", "Blocked", guard=(all_busy,))
    idle = f"nbusy < {n}"
    if isinstance(table, ChoiceTable):
        _choice_edges(proc, model, table, tag, timers)
        return
    for k, row in enumerate(table.rows, start=1):
        for i, piece in enumerate(row):
            guard = [f"q == {k}", idle]
            if piece.from_age > 0:
                guard.append(f"age >= {piece.from_age}")
            end = row[i + 1].from_age if i + 1 < len(row) else None
            if end is not None:
                guard.append(f"age < {end}")
            if piece.decision is None:
                if end is None or not timers:
                    proc.edge("Decide", "WaitForever", guard=tuple(guard))
                else:
                    proc.edge("Decide", "Wait", guard=tuple(guard), updates=(f"deadline = {end}",))
                continue
            _dispatch_edges(proc, model, k, piece.decision, tuple(guard), tag)


def _dispatch_edges(
    proc: Process,
    model: TAModel,
    k: int,
    decision: tuple[int, int],
    guard: tuple[str, ...],
    tag: bool,
    extra: tuple[str, ...] = (),
) -> None:
    """Decide -> start of ``decision`` at queue length ``k`` on the lowest idle worker."""
    config, svc, n = model.config, model.svc, model.config.n_workers
    m, batch = decision
    b = min(k, batch, config.max_batch_size)
    left = k - b
    for w in range(n):
        updates = [f"q = {left}", f"busy_{w} = 1", "nbusy = nbusy + 1", f"svc_{w} = {svc[m][b]}", *extra]
        if tag:
            updates += [f"last_b = {b}", f"last_w = {w}"]
        proc.edge(
            "Decide",
            "Notify" if tag else ("Decide" if left else "Empty"),
            f"start_{w}",
            guard=(*guard, *_lowest_idle(n, w)),
            updates=tuple(updates),
            comment=f"q={k}: {b} on model {m} ({config.models[m].name})",
        )


def _ranged(table: ChoiceTable) -> bool:
    """Some wait of ``table`` may fire before its end (a timer range): the ``expired`` flag."""
    return any(
        o.decision is None and o.fires_at is not None and o.fires_at < (o.until or 0)
        for r in table.rows
        for o in r
    )


def _choice_edges(proc: Process, model: TAModel, table: ChoiceTable, tag: bool, timers: bool) -> None:
    """Decide's edges for a :class:`ChoiceTable`: one per option (overlapping guards: the
    adversary picks). A wait sets ``deadline`` (its end) and ``fire`` (the earliest age its
    timer may fire); once it fired (``expired = 1``) the scheduler dispatches, it does not wait
    again before an arrival or a completion (a renewed wait without an event would let no time
    pass)."""
    idle = f"nbusy < {model.config.n_workers}"
    ranged = _ranged(table) and timers
    for k, options in enumerate(table.rows, start=1):
        for o in options:
            guard = [f"q == {k}", idle]
            if o.from_age > 0:
                guard.append(f"age >= {o.from_age}")
            if o.until is not None:
                guard.append(f"age < {o.until}")
            if o.decision is None:
                if ranged:
                    guard.append("expired == 0")
                if o.until is None or not timers:
                    proc.edge("Decide", "WaitForever", guard=tuple(guard))
                else:
                    updates = [f"deadline = {o.until}"]
                    if ranged:
                        updates.append(f"fire = {o.fires_at}")
                    proc.edge("Decide", "Wait", guard=tuple(guard), updates=tuple(updates))
                continue
            _dispatch_edges(proc, model, k, o.decision, tuple(guard), tag, ("expired = 0",) if ranged else ())


def _worker(net: Network, w: int, slow: int) -> None:
    proc = net.process(f"Worker{w}", f"GPU {w}")
    busy_for = f"svc_{w} + {slow}" if slow else f"svc_{w}"
    proc.location("Idle", initial=True)
    proc.location("Busy", invariant=(f"x_{w} <= {busy_for}",))
    proc.edge("Idle", "Busy", f"start_{w}", updates=(f"x_{w} = 0",))
    proc.edge("Busy", "Idle", f"done_{w}", guard=(f"x_{w} >= {busy_for}",))


def _tag(net: Network, model: TAModel, obs: Observers) -> Process:
    n = model.config.n_workers
    proc = net.process("Tag", "observer: follows one arbitrary admitted request")
    serving = [f"InService_{w}" for w in range(n)]
    proc.location("Idle", initial=True)
    proc.location("Waiting", labels=("waiting",) if obs.liveness else ())
    for loc in serving:
        proc.location(loc)
    proc.location("Done")
    errors = []
    if obs.wait_bound is not None:
        errors.append(proc.location("LateIdle", labels=("late_idle",)))
    if obs.latency_bound is not None:
        errors.append(proc.location("Late", labels=("late",)))
    if obs.measure_z is not None:
        errors.append(proc.location("Beyond"))
    # Every location takes part in every event (the synchronisations are strong): self-loops
    # where nothing happens to the tagged request.
    proc.edge("Idle", "Waiting", "arrive", updates=("tpos = q", "z = 0"))
    for loc in ("Idle", "Waiting", *serving, "Done", *errors):
        proc.edge(loc, loc, "arrive")
    consume = ("last_b = 0", "last_w = 0")
    proc.edge(
        "Waiting",
        "Waiting",
        "dispatched",
        guard=("tpos > last_b",),
        updates=("tpos = tpos - last_b", *consume),
    )
    for w in range(n):
        proc.edge(
            "Waiting",
            serving[w],
            "dispatched",
            guard=("tpos <= last_b", f"last_w == {w}"),
            updates=("tpos = 0", *consume),
        )
    for loc in ("Idle", *serving, "Done", *errors):
        proc.edge(loc, loc, "dispatched", updates=consume)
    for w in range(n):
        done = f"done_{w}"
        proc.edge(serving[w], "Done", done)
        for loc in ("Idle", "Waiting", *serving, "Done", *errors):
            if loc != serving[w]:
                proc.edge(loc, loc, done)
    if obs.wait_bound is not None:
        proc.edge(
            "Waiting",
            "LateIdle",
            guard=(_comparison("z", obs.wait_op, obs.wait_bound), f"nbusy < {n}"),
        )
    if obs.latency_bound is not None:
        late = _comparison("z", obs.latency_op, obs.latency_bound)
        for loc in ("Waiting", *serving):
            proc.edge(loc, "Late", guard=(late,))
    if obs.measure_z is not None:
        for loc in ("Waiting", *serving):
            proc.edge(loc, "Beyond", guard=(f"z > {obs.measure_z}",))
        proc.edge("Done", "Done", guard=(f"z < {obs.measure_z}",))
    return proc
