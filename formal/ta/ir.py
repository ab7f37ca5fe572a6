"""A small intermediate representation of a network of timed automata, printed as UPPAAL XML
(:mod:`formal.ta.uppaal_format`) and in TChecker's input format (:mod:`formal.ta.tchecker_format`).

The IR keeps to what both tools share:

- global bounded integers (``IntVar``) and clocks (``Clock``); every constant is an integer of the
  network's time unit;
- processes (one per automaton instance, no templates), each with locations (invariant,
  committed or urgent, initial, labels) and edges (guard, updates, event);
- synchronisations (``Sync``): a vector of (process, event, weak) parties. The first party
  initiates (UPPAAL's sender); a *strong* party must take part, a *weak* one takes part when it
  has an enabled edge on the event (TChecker's ``p@e?``). UPPAAL has no strong multi-party
  synchronisation: a vector with one strong receiver and no weak one becomes a binary channel,
  any other a broadcast channel, which is equivalent only when every strong receiver can always
  receive; :meth:`Network.validate` cannot check that, the model builders guarantee it.
- expressions are strings in the syntax common to both tools: integer terms with ``+ - * /``,
  comparisons ``== != < <= > >=`` and conjunctions ``&&`` (TChecker has no ``||``); clock atoms
  ``x <= e``, ``x >= e``, ``x < e``, ``x > e``, ``x == e`` with ``e`` an integer term. A guard
  is a tuple of atoms (their conjunction), the updates a tuple of ``lhs = term`` assignments
  applied in order.

The updates of a synchronised step run in the order of the vector's parties (TChecker) or sender
first, then receivers in process order (UPPAAL); :meth:`Network.validate` therefore requires the
parties after the first to be listed in process order, so that both tools agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "TAU",
    "Clock",
    "Edge",
    "IntVar",
    "Location",
    "Network",
    "Party",
    "Process",
    "Sync",
]

TAU = "tau"
"""Event of an edge that synchronises with no one."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"if", "then", "else", "end", "nop"}


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} is not an identifier")
    return name


@dataclass(frozen=True)
class IntVar:
    """A bounded integer ``lo <= v <= hi`` with initial value ``init``."""

    name: str
    lo: int
    hi: int
    init: int = 0
    comment: str = ""

    def __post_init__(self) -> None:
        _check_name("variable", self.name)
        if not self.lo <= self.init <= self.hi:
            raise ValueError(f"{self.name}: init {self.init} outside [{self.lo}, {self.hi}]")


@dataclass(frozen=True)
class Clock:
    """A clock (starts at 0)."""

    name: str
    comment: str = ""

    def __post_init__(self) -> None:
        _check_name("clock", self.name)


@dataclass(frozen=True)
class Location:
    """A location of one process.

    :param invariant: atoms that must hold while the process stays here.
    :param committed: time cannot pass and the next step must involve this process.
    :param urgent: time cannot pass.
    :param labels: names for reachability and liveness queries (TChecker's ``labels``).
    """

    name: str
    invariant: tuple[str, ...] = ()
    committed: bool = False
    urgent: bool = False
    initial: bool = False
    labels: tuple[str, ...] = ()
    comment: str = ""

    def __post_init__(self) -> None:
        _check_name("location", self.name)
        for label in self.labels:
            _check_name("label", label)


@dataclass(frozen=True)
class Edge:
    """An edge ``source -> target`` on ``event`` (``TAU``: no synchronisation)."""

    source: str
    target: str
    event: str = TAU
    guard: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()
    comment: str = ""


@dataclass
class Process:
    """One automaton: its locations (the first initial one is where it starts) and edges."""

    name: str
    locations: list[Location] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    comment: str = ""

    def location(self, name: str, **kwargs: object) -> str:
        """Add a location; returns its name."""
        self.locations.append(Location(name, **kwargs))  # type: ignore[arg-type]
        return name

    def edge(self, source: str, target: str, event: str = TAU, **kwargs: object) -> None:
        self.edges.append(Edge(source, target, event, **kwargs))  # type: ignore[arg-type]

    @property
    def initial(self) -> Location:
        return next(loc for loc in self.locations if loc.initial)

    def events(self) -> set[str]:
        return {edge.event for edge in self.edges}


@dataclass(frozen=True)
class Party:
    process: str
    event: str
    weak: bool = False


@dataclass(frozen=True)
class Sync:
    """A synchronisation vector; the first party initiates (it must be strong)."""

    parties: tuple[Party, ...]
    comment: str = ""


@dataclass
class Network:
    """A network of timed automata.

    :param time_unit_ms: what one time unit of every clock constant is, in ms.
    """

    name: str
    time_unit_ms: float
    ints: list[IntVar] = field(default_factory=list)
    clocks: list[Clock] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    syncs: list[Sync] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def int(self, name: str, lo: int, hi: int, init: int = 0, comment: str = "") -> str:
        self.ints.append(IntVar(name, lo, hi, init, comment))
        return name

    def clock(self, name: str, comment: str = "") -> str:
        self.clocks.append(Clock(name, comment))
        return name

    def process(self, name: str, comment: str = "") -> Process:
        proc = Process(_check_name("process", name), comment=comment)
        self.processes.append(proc)
        return proc

    def sync(self, *parties: tuple[str, str] | tuple[str, str, bool], comment: str = "") -> None:
        self.syncs.append(Sync(tuple(Party(*p) for p in parties), comment))

    def get(self, name: str) -> Process:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def labelled(self, label: str) -> Iterator[tuple[Process, Location]]:
        """Every (process, location) that carries ``label``."""
        for proc in self.processes:
            for loc in proc.locations:
                if label in loc.labels:
                    yield proc, loc

    def labels(self) -> set[str]:
        return {label for proc in self.processes for loc in proc.locations for label in loc.labels}

    def synchronised_events(self) -> dict[str, set[str]]:
        """Per process, the events it takes only in synchronisation."""
        out: dict[str, set[str]] = {proc.name: set() for proc in self.processes}
        for sync in self.syncs:
            for party in sync.parties:
                out[party.process].add(party.event)
        return out

    def events(self) -> list[str]:
        seen: dict[str, None] = {TAU: None}
        for proc in self.processes:
            for edge in proc.edges:
                seen.setdefault(edge.event, None)
        for sync in self.syncs:
            for party in sync.parties:
                seen.setdefault(party.event, None)
        return list(seen)

    # ------------------------------------------------------------------ checks
    def validate(self) -> Network:
        """Raise ValueError on a malformed network: duplicate or undeclared names, edges to unknown
        locations, a process without exactly one initial location, a synchronisation whose first
        party is weak, whose parties are out of process order, or that names an event a party has
        no edge for, a ``tau`` edge that is synchronised."""
        names = [v.name for v in self.ints] + [c.name for c in self.clocks]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"declared twice: {sorted(dupes)}")
        declared = set(names)
        order = {proc.name: i for i, proc in enumerate(self.processes)}
        if len(order) != len(self.processes):
            raise ValueError("two processes share a name")
        for proc in self.processes:
            locs = [loc.name for loc in proc.locations]
            if len(set(locs)) != len(locs):
                raise ValueError(f"{proc.name}: two locations share a name")
            if sum(loc.initial for loc in proc.locations) != 1:
                raise ValueError(f"{proc.name}: needs exactly one initial location")
            for loc in proc.locations:
                _check_names(f"{proc.name}.{loc.name} invariant", loc.invariant, declared)
            for edge in proc.edges:
                where = f"{proc.name}: edge {edge.source} -> {edge.target}"
                if edge.source not in locs or edge.target not in locs:
                    raise ValueError(f"{where}: unknown location")
                _check_name("event", edge.event)
                _check_names(f"{where} guard", edge.guard, declared)
                _check_names(f"{where} updates", edge.updates, declared)
                for update in edge.updates:
                    if not re.match(r"\s*[A-Za-z_]\w*\s*=[^=]", update):
                        raise ValueError(f"{where}: update {update!r} is not an assignment")
        for sync in self.syncs:
            if len(sync.parties) < 2 or sync.parties[0].weak:
                raise ValueError(f"sync {sync}: needs a strong first party and at least two parties")
            rest = [order.get(p.process, -1) for p in sync.parties[1:]]
            if -1 in rest or order.get(sync.parties[0].process) is None:
                raise ValueError(f"sync {sync}: unknown process")
            if rest != sorted(rest) or len(set(rest)) != len(rest):
                raise ValueError(f"sync {sync}: parties after the first must follow process order")
            for party in sync.parties:
                if party.event == TAU:
                    raise ValueError(f"sync {sync}: {TAU!r} cannot be synchronised")
                if party.event not in self.get(party.process).events():
                    raise ValueError(f"sync {sync}: {party.process} has no edge on {party.event!r}")
        return self


def _check_names(where: str, atoms: Iterable[str], declared: set[str]) -> None:
    for atom in atoms:
        for name in _IDENT.findall(atom):
            if name not in declared and name not in _KEYWORDS:
                raise ValueError(f"{where}: {atom!r} uses undeclared {name!r}")
