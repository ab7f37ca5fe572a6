"""The generated UPPAAL models: XML structure, names, queries, committed files.

UPPAAL cannot be installed here, so its parser is not available. The structure is checked
against the content models of UPPAAL's document type (``-//Uppaal Team//DTD Flat System 1.1//EN``,
flat-1_2.dtd), restated below from its published element rules, and every name used in labels,
the system line and the queries must be declared (``formal.uppaal.lint``). The same networks are
model-checked with TChecker (tests/test_formal_ta.py).
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apps import verify_cli, verify_ta
from formal.ta.properties import TAChecks, uppaal_models
from formal.ta.stage import default_schedulers
from formal.uppaal import DOCTYPE, lint, run_verifyta

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "formal" / "models"

# Content models of the elements (children in order; ? optional, * repeated, + at least one).
CONTENT = {
    "nta": r"(imports )?(declaration )?(template )+(instantiation )?system (queries )?",
    "template": r"name (parameter )?(declaration )?(location )*(branchpoint )*(init )?(transition )*",
    "location": r"(name )?(label )*(urgent )?(committed )?",
    "transition": r"source target (label )*(nail )*",
    "queries": r"(query )*",
    "query": r"formula (comment )?",
}
TEXT_ONLY = {
    "imports",
    "declaration",
    "instantiation",
    "system",
    "name",
    "parameter",
    "label",
    "formula",
    "comment",
}
EMPTY = {"urgent", "committed", "init", "source", "target", "nail", "branchpoint"}
ATTRIBUTES = {  # allowed attributes (required ones in the second set)
    "location": ({"id", "x", "y", "color"}, {"id"}),
    "init": ({"ref"}, {"ref"}),
    "source": ({"ref"}, {"ref"}),
    "target": ({"ref"}, {"ref"}),
    "label": ({"kind", "x", "y"}, {"kind"}),
    "name": ({"x", "y"}, set()),
    "transition": ({"id", "x", "y", "color"}, set()),
}
LOCATION_LABELS = {"invariant", "exponentialrate", "comments", "testcodeEnter", "testcodeExit"}
TRANSITION_LABELS = {
    "select",
    "guard",
    "synchronisation",
    "assignment",
    "comments",
    "probability",
    "testcode",
}


def check_document_type(xml: str) -> list[str]:
    problems = []
    if DOCTYPE not in xml.splitlines()[1]:
        problems.append("missing UPPAAL DOCTYPE on line 2")
    root = ET.fromstring(xml)
    if root.tag != "nta":
        problems.append(f"root is {root.tag}, not nta")
    ids: set[str] = set()
    for element in root.iter():
        children = " ".join(child.tag for child in element)
        children = children + " " if children else ""
        if element.tag in CONTENT and not re.fullmatch(CONTENT[element.tag], children):
            problems.append(
                f"<{element.tag}> children '{children.strip()}' do not match {CONTENT[element.tag]}"
            )
        if element.tag in TEXT_ONLY and len(element):
            problems.append(f"<{element.tag}> must hold text only")
        if element.tag in EMPTY and (len(element) or (element.text or "").strip()):
            problems.append(f"<{element.tag}> must be empty")
        if element.tag not in CONTENT and element.tag not in TEXT_ONLY and element.tag not in EMPTY:
            problems.append(f"unknown element <{element.tag}>")
        allowed, required = ATTRIBUTES.get(element.tag, (set(), set()))
        if set(element.attrib) - allowed or required - set(element.attrib):
            problems.append(f"<{element.tag}> attributes {sorted(element.attrib)}")
        if element.tag == "location":
            if element.get("id") in ids:
                problems.append(f"duplicate id {element.get('id')}")
            ids.add(element.get("id", ""))
    for template in root.iter("template"):
        local = {loc.get("id") for loc in template.iter("location")}
        for ref in [*template.iter("init"), *template.iter("source"), *template.iter("target")]:
            if ref.get("ref") not in local:
                problems.append(f"{ref.tag} ref {ref.get('ref')} not a location of its template")
        for loc in template.iter("location"):
            problems += [
                f"location label {lab.get('kind')}"
                for lab in loc.iter("label")
                if lab.get("kind") not in LOCATION_LABELS
            ]
        for tr in template.iter("transition"):
            problems += [
                f"transition label {lab.get('kind')}"
                for lab in tr.iter("label")
                if lab.get("kind") not in TRANSITION_LABELS
            ]
    return problems


def _default_models():
    """The models ``verify.py --uppaal`` writes for the default scenario (timeout(B=8, T=10 ms))."""
    args = verify_cli.build_parser().parse_args([])
    config = verify_cli.load_config(args)
    settings = verify_ta.build_ta_settings(args, config, config.arrivals.mean_rate_per_s)
    name, table = verify_ta._uppaal_table(args, config, settings)
    return uppaal_models(TAChecks(None, settings), name, table, max(settings.bursts))[0], settings


@pytest.fixture(scope="module", params=[0, 1, 2], ids=["any_arrivals", "token_bucket", "finite"])
def model(request):
    models, _ = _default_models()
    return models[request.param]


def test_document_type_structure(model) -> None:
    assert check_document_type(model.xml) == []


def test_every_name_is_declared(model) -> None:
    assert lint(model.xml) == []


def test_templates_channels_and_clocks(model) -> None:
    root = ET.fromstring(model.xml)
    templates = {t.findtext("name"): t for t in root.iter("template")}
    observers = {"batching": {"Tag", "QueueWatch"}, "batching_any": {"Tag"}}.get(model.name, set())
    assert set(templates) == {"Arrival", "Scheduler", "Worker0"} | observers
    declaration = root.findtext("declaration")
    assert re.search(r"\bchan start_0;", declaration)  # scheduler -> worker: a binary channel
    kind = "broadcast chan" if observers else "chan"  # observers listen in
    assert re.search(rf"\b{kind} arrive;", declaration) and re.search(rf"\b{kind} done_0;", declaration)
    assert "clock age;" in declaration and "clock x_0;" in declaration
    syncs = [lab.text for lab in root.iter("label") if lab.get("kind") == "synchronisation"]
    assert {"arrive!", "arrive?", "start_0!", "start_0?", "done_0!", "done_0?"} <= set(syncs)
    committed = [
        loc.findtext("name")
        for loc in templates["Scheduler"].iter("location")
        if loc.find("committed") is not None
    ]
    assert committed[0] == "Decide"
    wait = next(loc for loc in templates["Scheduler"].iter("location") if loc.findtext("name") == "Wait")
    assert wait.find("label").text == "age <= deadline"


def test_constants_come_from_the_config(model) -> None:
    xml = model.xml
    assert re.search(r"svc_0 = 15\b", xml)  # b = 1 on LLM-1: 15 ms in 1 ms units
    assert "Time unit: 1 ms" in xml
    if model.name != "batching_any":
        assert "y &lt;= 10" in xml  # one token per 10 ms at 100 requests/s
    else:
        assert "tok" not in xml and "clock y;" not in xml  # arrivals at any time: no bucket
    assert "age &gt;= 10 &amp;&amp;" in xml  # timeout(B=8, T=10 ms): the wait ends at 10 ms


def test_queries_are_documented_and_replace_the_vacuous_ones(model) -> None:
    formulas = [q.formula for q in model.queries]
    assert all(q.comment for q in model.queries)
    assert formulas == [q.findtext("formula") for q in ET.fromstring(model.xml).iter("query")]
    assert "A[] not deadlock" not in formulas  # cannot fail while arrivals can always fire
    idle_wait = "sup{Tag.Waiting && nbusy < 1 && !Scheduler.Decide && !Scheduler.Notify}: z"
    if model.name == "batching":
        assert "A[] not Tag.LateIdle" in formulas  # timeout safety by an observer, not an invariant
        assert any(f.startswith("sup{Tag.Waiting ||") and f.endswith(": z") for f in formulas)  # latency
        assert any("-->" in f for f in formulas)  # leads-to
        assert idle_wait in formulas
    elif model.name == "batching_any":  # TChecker's timeout-safety check: arrivals at any time
        assert formulas == ["A[] not Tag.LateIdle", idle_wait]
    else:
        assert "A[] (deadlock imply (q == 0 && nbusy == 0))" in formulas and "E<> deadlock" in formulas
    assert all(f in model.q_text() for f in formulas)


def test_lint_catches_undeclared_names_and_bad_references(model) -> None:
    broken = model.xml.replace("age &lt;= deadline", "age &lt;= deadlines", 1)
    assert any("deadlines" in p for p in lint(broken))
    assert any("Nowhere" in p for p in lint(model.xml, ["A[] Scheduler.Nowhere"]))
    assert any("Ghost" in p for p in lint(model.xml, ["E<> Ghost.Idle"]))
    dangling = re.sub(r'<init ref="[^"]*"', '<init ref="id_missing"', model.xml, count=1)
    assert any("init" in p for p in lint(dangling))
    assert check_document_type(
        model.xml.replace("<system>", "<systems>", 1).replace("</system>", "</systems>", 1)
    )


def test_committed_models_are_the_generated_defaults() -> None:
    models, _ = _default_models()
    assert [m.name for m in models] == ["batching_any", "batching", "batching_finite"]
    for generated in models:
        assert (MODELS / f"{generated.name}.xml").read_text() == generated.xml
        assert (MODELS / f"{generated.name}.q").read_text() == generated.q_text()


def _finite_network(*mutations: str):
    """The network of ``batching_finite.xml`` (the default timeout(B=8, T=10 ms)), optionally with
    mutations of formal/ta/model.py."""
    from formal.ta.model import build_network
    from formal.ta.properties import with_mutation

    args = verify_cli.build_parser().parse_args([])
    config = verify_cli.load_config(args)
    settings = verify_ta.build_ta_settings(args, config, config.arrivals.mean_rate_per_s)
    _, table = verify_ta._uppaal_table(args, config, settings)
    checks = TAChecks(None, settings)
    model = checks.model(table.shielded(checks.max_wait), settings.curve(settings.liveness_burst, 4))
    return build_network(with_mutation(model, *mutations), name="batching_finite")


def _refills_for_ever(network):
    """The old generator (a mutant): the last arrival leaves it in ``Gen``, whose invariant and
    refill edges stay, so some action is always possible and no state is a deadlock."""
    import dataclasses

    arrival = next(p for p in network.processes if p.name == "Arrival")
    arrival.edges[:] = [dataclasses.replace(e, target="Gen") for e in arrival.edges]
    arrival.locations[:] = [loc for loc in arrival.locations if loc.name != "Stopped"]
    return network


def test_the_finite_generator_stops_after_its_last_arrival() -> None:
    """batching_finite.xml: no refill is possible once narr == N. The N-th arrival moves the
    generator to Stopped, which has no invariant (time may pass) and no edge."""
    network = _finite_network()
    arrival = next(p for p in network.processes if p.name == "Arrival")
    stopped = next(loc for loc in arrival.locations if loc.name == "Stopped")
    assert not stopped.invariant and not any(e.source == "Stopped" for e in arrival.edges)
    into = [e for e in arrival.edges if e.target == "Stopped"]
    assert {e.event for e in into} == {"arrive", "drop"} and all("narr == 3" in e.guard for e in into)
    assert all(
        "narr < 3" in e.guard for e in arrival.edges if e.event in ("arrive", "drop") and e not in into
    )
    refills = [e for e in arrival.edges if e.event == "refill"]
    assert refills and all(e.source == "Gen" for e in refills)
    xml = (MODELS / "batching_finite.xml").read_text()
    assert '<name x="180" y="-30">Stopped</name>' in xml


def test_the_deadlock_query_is_not_vacuous_and_fails_on_mutants() -> None:
    """UPPAAL's ``A[] (deadlock imply (q == 0 && nbusy == 0))`` on batching_finite, read on
    TChecker's zone graph of the same network (batching_finite.tck): the nodes without any
    successor are deadlocks (no action now or after any delay). The model has some, all with
    the queue empty and the worker idle (E<> deadlock holds, the query is not vacuous); a lost
    wake-up or a removed timer leaves a deadlock with requests waiting (the query fails); the old
    generator, which refilled its bucket for ever, has none (the query held vacuously)."""
    from formal.ta.tchecker_format import to_tchecker
    from formal.ta.zonegraph import terminal_nodes
    from formal.tchecker import TCheckerMissingError, find_tchecker

    try:
        tck = find_tchecker()
    except TCheckerMissingError as exc:
        pytest.skip(str(exc))

    def deadlocks(network) -> list:
        result = tck.reach(to_tchecker(network), [], timeout_s=120, certificate="graph")
        return terminal_nodes(result.certificate)

    assert to_tchecker(_finite_network()) == (MODELS / "batching_finite.tck").read_text()
    stops = deadlocks(_finite_network())
    assert stops and all(n.ints["q"] == 0 and n.ints["nbusy"] == 0 for n in stops)
    assert all(n.ints["narr"] == 4 for n in stops)
    for mutation in ("lost_wakeup", "timer_removed"):
        assert any(n.ints["q"] > 0 for n in deadlocks(_finite_network(mutation))), mutation
    assert deadlocks(_refills_for_ever(_finite_network())) == []
    assert deadlocks(_refills_for_ever(_finite_network("lost_wakeup"))) == []  # vacuous: holds


def test_the_longest_idle_wait_query_excludes_committed_states() -> None:
    """The UPPAAL query sup{Tag.Waiting && nbusy < 1 && !Scheduler.Decide && !Scheduler.Notify}: z
    is TChecker's exact longest wait with a worker idle (10 ms for timeout(B=8, T=10 ms), arrivals
    at any time): read on the zone graph of batching_any.tck. Over every state, committed ones
    included (right after a completion, before the scheduler decides), z goes much higher."""
    from formal.ta.zonegraph import nodes, upper_bound
    from formal.tchecker import TCheckerMissingError, find_tchecker

    try:
        tck = find_tchecker()
    except TCheckerMissingError as exc:
        pytest.skip(str(exc))
    text = (MODELS / "batching_any.tck").read_text()
    processes = [line.split(":")[1] for line in text.splitlines() if line.startswith("process:")]
    tag, scheduler = processes.index("Tag"), processes.index("Scheduler")
    graph = tck.reach(text, [], timeout_s=300, certificate="graph").certificate
    waiting = [n for n in nodes(graph) if n.locations[tag] == "Waiting" and n.ints["nbusy"] < 1]
    everywhere = max(upper_bound(n.zone, "z") for n in waiting)
    outside = max(
        upper_bound(n.zone, "z") for n in waiting if n.locations[scheduler] not in ("Decide", "Notify")
    )
    assert outside == 10 and everywhere > 30


def test_verifyta_is_run_only_when_present(tmp_path: Path) -> None:
    models, _ = _default_models()
    (tmp_path / "m.xml").write_text(models[0].xml)
    (tmp_path / "m.q").write_text(models[0].q_text())
    result = run_verifyta(tmp_path / "m.xml", tmp_path / "m.q")
    if shutil.which("verifyta") is None:
        assert result is None
    else:
        code, output = result
        assert code == 0 and "NOT satisfied" not in output.split("sup")[0]


def test_schedulers_of_the_stage() -> None:
    _, settings = _default_models()
    schedulers = default_schedulers(settings).schedulers
    names = [name for name, _ in schedulers]
    assert names[0].startswith("timeout tuned") and names[1].startswith("Triton-like timeout(B=8,T=10ms")
    assert names[2].startswith("SMDP optimum at 100/s")
    assert all(t.queue_cap == settings.queue_cap for _, t in schedulers)
