"""Print a :class:`formal.ta.ir.Network` in TChecker's input format (``doc/file-format.md`` of
TChecker): one ``system``, then events, integers, clocks, processes with their locations and
edges, and ``sync`` vectors. Attribute values may not contain ``:``, ``@``, ``#`` or line breaks;
comments start with ``#``."""

from __future__ import annotations

import re

from formal.ta.ir import Network

__all__ = ["to_tchecker"]

_RESERVED = re.compile(r"[:@#\n]")


def _value(text: str) -> str:
    if _RESERVED.search(text):
        raise ValueError(f"TChecker attribute value may not contain ':', '@', '#': {text!r}")
    return text


def _attributes(pairs: list[tuple[str, str]]) -> str:
    return "{" + ":".join(f"{key}:{_value(value)}" for key, value in pairs) + "}"


def _present(*items: tuple[str, str, bool]) -> list[tuple[str, str]]:
    """The (key, value) attributes whose flag is set."""
    return [(key, value) for key, value, present in items if present]


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()] if text else []


def to_tchecker(network: Network) -> str:
    """The TChecker text of ``network`` (validated first)."""
    network.validate()
    lines = [f"system:{network.name}"]
    for text in network.comments:
        lines += _comment(text)
    lines.append("")
    lines += [f"event:{event}" for event in network.events()]
    lines.append("")
    for var in network.ints:
        lines += _comment(var.comment)
        lines.append(f"int:1:{var.lo}:{var.hi}:{var.init}:{var.name}")
    for clock in network.clocks:
        lines += _comment(clock.comment)
        lines.append(f"clock:1:{clock.name}")
    for proc in network.processes:
        lines.append("")
        lines += _comment(proc.comment)
        lines.append(f"process:{proc.name}")
        for loc in proc.locations:
            pairs = _present(
                ("initial", "", loc.initial),
                ("committed", "", loc.committed),
                ("urgent", "", loc.urgent),
                ("invariant", " && ".join(loc.invariant), bool(loc.invariant)),
                ("labels", ",".join(loc.labels), bool(loc.labels)),
            )
            lines += [*_comment(loc.comment), f"location:{proc.name}:{loc.name}{_attributes(pairs)}"]
        for edge in proc.edges:
            pairs = _present(
                ("provided", " && ".join(edge.guard), bool(edge.guard)),
                ("do", "; ".join(edge.updates), bool(edge.updates)),
            )
            head = f"edge:{proc.name}:{edge.source}:{edge.target}:{edge.event}"
            lines += [*_comment(edge.comment), head + _attributes(pairs)]
    if network.syncs:
        lines.append("")
    for sync in network.syncs:
        lines += _comment(sync.comment)
        parties = ":".join(f"{p.process}@{p.event}{'?' if p.weak else ''}" for p in sync.parties)
        lines.append(f"sync:{parties}")
    return "\n".join(lines) + "\n"
