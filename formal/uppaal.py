"""UPPAAL printer of the timed-automata IR, name lint and ``verifyta`` runner.

:func:`to_uppaal` prints a :class:`formal.ta.ir.Network` as one UPPAAL XML document (UPPAAL 4.1 /
5.x, document type ``-//Uppaal Team//DTD Flat System 1.1//EN``) with its queries embedded and
also as a ``.q`` file (:class:`UppaalModel`). The batching model itself is built once, for both
UPPAAL and TChecker, by :mod:`formal.ta.model`; :func:`formal.ta.properties.uppaal_model` gives
the network with the observers and queries of the TChecker checks.

Mapping: each process becomes a template without parameters, instantiated once; bounded
integers ``int[lo,hi]``; a synchronisation vector becomes a channel named after the initiator's
event: a binary ``chan`` when it has exactly one other party, strong; a ``broadcast chan``
otherwise (receivers ``?`` in process order, as the IR requires; the IR's builders make strong
receivers always able to receive, where broadcast and TChecker's strong synchronisation agree).

UPPAAL itself is not needed to generate the files; :func:`run_verifyta` runs ``verifyta`` when it
is on ``PATH``, and :func:`lint` checks that every name used in the XML is declared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchenv.fileio import write_atomic
from formal.ta.ir import Network, Process

__all__ = [
    "DOCTYPE",
    "Query",
    "UppaalModel",
    "lint",
    "run_verifyta",
    "to_uppaal",
    "write_models",
]

DOCTYPE = (
    "<!DOCTYPE nta PUBLIC '-//Uppaal Team//DTD Flat System 1.1//EN' "
    "'http://www.it.uu.se/research/group/darts/uppaal/flat-1_2.dtd'>"
)


@dataclass(frozen=True)
class Query:
    """One UPPAAL query and the comment that explains it (and its expected outcome)."""

    formula: str
    comment: str


@dataclass
class UppaalModel:
    """A generated network: XML text and its queries."""

    name: str
    xml: str
    queries: list[Query] = field(default_factory=list)

    def q_text(self) -> str:
        """The queries as a ``.q`` file (comments as ``/* */`` blocks before each query)."""
        parts = []
        for query in self.queries:
            parts.append(f"/*\n{query.comment}\n*/\n{query.formula}\n")
        return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# Printer
# ------------------------------------------------------------------------------------------------


def _channel_kinds(network: Network) -> dict[str, bool]:
    """Channel name (the initiator's event) -> broadcast?"""
    kinds: dict[str, bool] = {}
    for sync in network.syncs:
        name = sync.parties[0].event
        if name in kinds:
            raise ValueError(f"two synchronisations are initiated by event {name!r}")
        others = sync.parties[1:]
        kinds[name] = not (len(others) == 1 and not others[0].weak)
    return kinds


def _roles(network: Network) -> dict[tuple[str, str], list[str]]:
    """(process, event) -> the sync labels its edges on that event carry (one edge per label)."""
    roles: dict[tuple[str, str], list[str]] = {}
    for sync in network.syncs:
        channel = sync.parties[0].event
        for i, party in enumerate(sync.parties):
            roles.setdefault((party.process, party.event), []).append(channel + ("!" if i == 0 else "?"))
    return roles


def _declaration(network: Network) -> str:
    lines = [f"// {line}" for text in network.comments for line in text.splitlines()]
    lines.append(f"// Time unit: {network.time_unit_ms:g} ms (every clock constant is in time units).")
    lines.append("")
    for var in network.ints:
        comment = f"  // {var.comment}" if var.comment else ""
        lines.append(f"int[{var.lo},{var.hi}] {var.name} = {var.init};{comment}")
    for clock in network.clocks:
        comment = f"  // {clock.comment}" if clock.comment else ""
        lines.append(f"clock {clock.name};{comment}")
    for name, broadcast in _channel_kinds(network).items():
        lines.append(f"{'broadcast ' if broadcast else ''}chan {name};")
    return "\n".join(lines)


def _template(process: Process, roles: dict[tuple[str, str], list[str]]) -> ET.Element:
    tpl = ET.Element("template")
    ET.SubElement(tpl, "name").text = process.name
    ids = {loc.name: f"id_{process.name}_{loc.name}" for loc in process.locations}
    for i, loc in enumerate(process.locations):
        x = 200 * i
        el = ET.SubElement(tpl, "location", id=ids[loc.name], x=str(x), y="0")
        ET.SubElement(el, "name", x=str(x - 20), y="-30").text = loc.name
        if loc.invariant:
            ET.SubElement(el, "label", kind="invariant", x=str(x - 20), y="20").text = " && ".join(
                loc.invariant
            )
        if loc.urgent:
            ET.SubElement(el, "urgent")
        if loc.committed:
            ET.SubElement(el, "committed")
    ET.SubElement(tpl, "init", ref=ids[process.initial.name])
    for edge in process.edges:
        for sync in roles.get((process.name, edge.event), [""]):
            tr = ET.SubElement(tpl, "transition")
            ET.SubElement(tr, "source", ref=ids[edge.source])
            ET.SubElement(tr, "target", ref=ids[edge.target])
            if edge.guard:
                ET.SubElement(tr, "label", kind="guard").text = " && ".join(edge.guard)
            if sync:
                ET.SubElement(tr, "label", kind="synchronisation").text = sync
            if edge.updates:
                ET.SubElement(tr, "label", kind="assignment").text = ", ".join(edge.updates)
            if edge.comment:
                ET.SubElement(tr, "label", kind="comments").text = edge.comment
    return tpl


def to_uppaal(network: Network, queries: Sequence[Query] = (), name: str | None = None) -> UppaalModel:
    """The UPPAAL document of ``network`` (validated first) with ``queries``."""
    network.validate()
    roles = _roles(network)
    nta = ET.Element("nta")
    ET.SubElement(nta, "declaration").text = _declaration(network)
    for process in network.processes:
        nta.append(_template(process, roles))
    ET.SubElement(nta, "system").text = "system " + ", ".join(p.name for p in network.processes) + ";"
    queries_el = ET.SubElement(nta, "queries")
    for query in queries:
        q_el = ET.SubElement(queries_el, "query")
        ET.SubElement(q_el, "formula").text = query.formula
        ET.SubElement(q_el, "comment").text = query.comment
    ET.indent(nta, space="  ")
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + DOCTYPE
        + "\n"
        + ET.tostring(nta, encoding="unicode")
        + "\n"
    )
    return UppaalModel(name or network.name, xml, list(queries))


def write_models(models: Sequence[UppaalModel], directory: str | Path) -> list[Path]:
    """Write each model's ``<name>.xml`` and ``<name>.q`` into ``directory``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in models:
        for suffix, text in ((".xml", model.xml), (".q", model.q_text())):
            paths.append(write_atomic(directory / f"{model.name}{suffix}", text))
    return paths


# ------------------------------------------------------------------------------------------------
# Name checking (a structural lint; UPPAAL's own parser is the authority)
# ------------------------------------------------------------------------------------------------

_KEYWORDS = {
    "A",
    "E",
    "Pr",
    "true",
    "false",
    "not",
    "and",
    "or",
    "imply",
    "deadlock",
    "exists",
    "forall",
    "sum",
    "sup",
    "inf",
    "max",
    "min",
    "simulate",
    "if",
    "else",
    "for",
    "while",
    "do",
    "return",
    "int",
    "bool",
    "clock",
    "chan",
    "const",
    "meta",
    "broadcast",
    "urgent",
    "void",
    "typedef",
    "double",
    "struct",
    "scalar",
}
_IDENT = re.compile(r"[A-Za-z_]\w*")
_DECL = re.compile(r"\b(?:int|bool|clock|chan|double|void|wid_t)\b\s*(?:\[[^\]]*\])?\s+([A-Za-z_]\w*)")
_TYPEDEF = re.compile(r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;")
_BOUND = re.compile(r"\b([A-Za-z_]\w*)\s*:\s*[A-Za-z_]\w*")


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _declared(text: str) -> set[str]:
    text = _strip_comments(text)
    names = set(_DECL.findall(text)) | set(_TYPEDEF.findall(text)) | set(_BOUND.findall(text))
    names |= set(re.findall(r"\b([A-Za-z_]\w*)\s*=\s*[A-Za-z_]\w*\s*\(", text))  # Arrival = T();
    return names


def _used(text: str) -> set[str]:
    text = _strip_comments(text)
    text = re.sub(r"\b[A-Za-z_]\w*\s*\.\s*[A-Za-z_]\w*", " ", text)  # Proc.loc checked apart
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b", " ", text)
    return set(_IDENT.findall(text)) - _KEYWORDS


def lint(xml_text: str, extra_queries: Sequence[str] = ()) -> list[str]:
    """Problems found in a generated network: names used but not declared (in every template
    label, the system declaration and the queries), dangling location references, and
    ``Process.name`` references to unknown processes, locations or local variables.

    A small check written for these models, not a UPPAAL parser: an empty list means every name
    resolves, not that UPPAAL accepts the file.
    """
    problems: list[str] = []
    root = ET.fromstring(xml_text.split("\n", 2)[2] if xml_text.startswith("<?xml") else xml_text)
    global_decl = root.findtext("declaration") or ""
    global_names = _declared(global_decl)
    templates: dict[str, tuple[set[str], set[str]]] = {}
    for tpl in root.findall("template"):
        tname = tpl.findtext("name") or ""
        local = _declared(tpl.findtext("declaration") or "") | _declared(tpl.findtext("parameter") or "")
        locations = {loc.findtext("name") or "" for loc in tpl.findall("location")}
        ids = {loc.get("id") for loc in tpl.findall("location")}
        templates[tname] = (local, locations)
        scope = global_names | local
        init = tpl.find("init")
        if init is None or init.get("ref") not in ids:
            problems.append(f"{tname}: init does not refer to one of its locations")
        for i, tr in enumerate(tpl.findall("transition")):
            for end in ("source", "target"):
                ref = tr.find(end)
                if ref is None or ref.get("ref") not in ids:
                    problems.append(f"{tname}: transition {i} {end} does not refer to a location")
            bound = set()
            for label in tr.findall("label"):
                if label.get("kind") == "select":
                    bound |= set(_BOUND.findall(label.text or ""))
            for label in tr.findall("label"):
                if label.get("kind") == "comments":
                    continue
                for name in _used(label.text or "") - scope - bound:
                    problems.append(f"{tname}: transition {i} {label.get('kind')} uses undeclared {name!r}")
        for loc in tpl.findall("location"):
            for label in loc.findall("label"):
                for name in _used((label.text or "").replace("'", " ")) - scope:
                    problems.append(
                        f"{tname}.{loc.findtext('name')}: {label.get('kind')} uses undeclared {name!r}"
                    )
    for name in _used(global_decl) - global_names - set(templates):
        problems.append(f"declaration uses undeclared {name!r}")
    system = root.findtext("system") or ""
    processes = {}
    for alias, template in re.findall(r"\b([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*\(", _strip_comments(system)):
        processes[alias] = template
    listed = re.search(r"\bsystem\b([^;]*);", _strip_comments(system))
    if not listed:
        problems.append("system declaration has no 'system ...;' line")
    else:
        for proc in (p.strip() for p in listed.group(1).split(",")):
            processes.setdefault(proc, proc)
            if processes[proc] not in templates:
                problems.append(f"system lists {proc!r}, which is not a template or an instance")
    for name, template in processes.items():
        if template not in templates:
            problems.append(f"system: {name!r} instantiates unknown template {template!r}")
    formulas = [q.findtext("formula") or "" for q in root.iter("query")] + list(extra_queries)
    for formula in formulas:
        for proc, member in re.findall(r"\b([A-Za-z_]\w*)(?:\(\d+\))?\s*\.\s*([A-Za-z_]\w*)", formula):
            template = processes.get(proc)
            if template is None:
                problems.append(f"query {formula!r}: unknown process {proc!r}")
                continue
            local, locations = templates[template]
            if member not in locations and member not in local:
                problems.append(f"query {formula!r}: {proc} has no location or variable {member!r}")
        bound = set(_BOUND.findall(formula))
        text = re.sub(r"\b[A-Za-z_]\w*(?:\(\d+\))?\s*\.\s*[A-Za-z_]\w*", " ", formula)
        for name in _used(text) - global_names - bound:
            problems.append(f"query {formula!r}: undeclared {name!r}")
    return problems


def run_verifyta(
    xml_path: str | Path, q_path: str | Path, timeout_s: float = 600.0
) -> tuple[int, str] | None:
    """Run UPPAAL's ``verifyta`` on a model and its queries; None if it is not on PATH.

    :returns: (exit code, combined output).
    """
    exe = shutil.which("verifyta")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, str(xml_path), str(q_path)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr
