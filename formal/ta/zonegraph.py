"""Read a TChecker zone graph (the ``graph`` certificate of ``tck-reach``, Graphviz text) for the
largest values a run reaches: of an integer variable, and of a clock's upper bound in a set of
locations; and for its nodes without successors (deadlocks).

Each node line looks like::

    12 [intval="q=1,nbusy=0", labels="", vloc="<Gen,Wait,Idle,Waiting>", zone="(0<=z<=10 && ...)"]

The zone is the node's zone after time elapse; a clock with no upper bound in it (or above the
constants the model compares it with) is unbounded there. These values are hints: the checks of
:mod:`formal.ta.properties` confirm every bound with two reachability queries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Node", "max_over", "nodes", "terminal_nodes", "upper_bound"]

_NODE = re.compile(r"^\s*(\d+)\s*\[(.*)\]\s*$")
_EDGE = re.compile(r"^\s*(\d+)\s*->\s*\d+\s*\[")
_ATTR = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Node:
    """One symbolic state: locations (process order), integer values, zone atoms."""

    locations: tuple[str, ...]
    ints: dict[str, int]
    zone: tuple[str, ...]


def nodes(graph: str) -> Iterator[Node]:
    """Every node of a TChecker graph certificate."""
    for line in graph.splitlines():
        match = _NODE.match(line)
        if not match or "vloc=" not in line:
            continue
        attrs = dict(_ATTR.findall(match.group(2)))
        locations = tuple(attrs.get("vloc", "<>").strip("<>").split(","))
        ints = {}
        for item in filter(None, attrs.get("intval", "").split(",")):
            name, _, value = item.partition("=")
            ints[name.strip()] = int(value)
        zone = tuple(a.strip() for a in attrs.get("zone", "").strip("()").split("&&") if a.strip())
        yield Node(locations, ints, zone)


def terminal_nodes(graph: str) -> list[Node]:
    """The nodes of a complete graph certificate without any outgoing edge (actual or
    subsumption): no action is possible from any state of their zone, now or after any delay (the
    zone is closed under time elapse), which is UPPAAL's ``deadlock``."""
    sources = {int(m.group(1)) for line in graph.splitlines() if (m := _EDGE.match(line))}
    out = []
    for line in graph.splitlines():
        match = _NODE.match(line)
        if match and "vloc=" in line and int(match.group(1)) not in sources:
            out.append(next(nodes(line)))
    return out


def upper_bound(zone: tuple[str, ...], clock: str) -> float:
    """The clock's upper bound in a zone (``inf`` if none)."""
    bound = math.inf
    for atom in zone:
        parts = re.split(r"(<=|<|==)", atom.replace(" ", ""))
        # forms: c<=x<=d, x<=d, c<=x, x==d, x-y<=d (diagonal: ignored)
        for i in range(1, len(parts) - 1, 2):
            left, right = parts[i - 1], parts[i + 1]
            if left == clock and re.fullmatch(r"-?\d+", right):
                bound = min(bound, int(right))
    return bound


def max_over(graph: str, value: Callable[[Node], float | None]) -> float | None:
    """The largest ``value(node)`` over the graph's nodes (None where it does not apply)."""
    best = None
    for node in nodes(graph):
        v = value(node)
        if v is not None and (best is None or v > best):
            best = v
    return best
