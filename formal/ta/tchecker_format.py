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
            pairs: list[tuple[str, str]] = []
            if loc.initial:
                pairs.append(("initial", ""))
            if loc.committed:
                pairs.append(("committed", ""))
            if loc.urgent:
                pairs.append(("urgent", ""))
            if loc.invariant:
                pairs.append(("invariant", " && ".join(loc.invariant)))
            if loc.labels:
                pairs.append(("labels", ",".join(loc.labels)))
            lines += _comment(loc.comment)
            lines.append(f"location:{proc.name}:{loc.name}{_attributes(pairs)}")
        for edge in proc.edges:
            pairs = []
            if edge.guard:
                pairs.append(("provided", " && ".join(edge.guard)))
            if edge.updates:
                pairs.append(("do", "; ".join(edge.updates)))
            lines += _comment(edge.comment)
            lines.append(f"edge:{proc.name}:{edge.source}:{edge.target}:{edge.event}{_attributes(pairs)}")
    if network.syncs:
        lines.append("")
    for sync in network.syncs:
        lines += _comment(sync.comment)
        parties = ":".join(f"{p.process}@{p.event}{'?' if p.weak else ''}" for p in sync.parties)
        lines.append(f"sync:{parties}")
    return "\n".join(lines) + "\n"
