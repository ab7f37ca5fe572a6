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


@pytest.fixture(scope="module", params=[0, 1], ids=["token_bucket", "finite"])
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
    expected = {"Arrival", "Scheduler", "Worker0"} | (
        {"Tag", "QueueWatch"} if model.name == "batching" else set()
    )
    assert set(templates) == expected
    declaration = root.findtext("declaration")
    assert re.search(r"\bchan start_0;", declaration)  # scheduler -> worker: a binary channel
    kind = "broadcast chan" if model.name == "batching" else "chan"  # observers listen in
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
    assert "y &lt;= 10" in xml  # one token per 10 ms at 100 requests/s
    assert "age &gt;= 10 &amp;&amp;" in xml  # timeout(B=8, T=10 ms): the wait ends at 10 ms


def test_queries_are_documented_and_replace_the_vacuous_ones(model) -> None:
    formulas = [q.formula for q in model.queries]
    assert all(q.comment for q in model.queries)
    assert formulas == [q.findtext("formula") for q in ET.fromstring(model.xml).iter("query")]
    assert "A[] not deadlock" not in formulas  # cannot fail while arrivals can always fire
    if model.name == "batching":
        assert "A[] not Tag.LateIdle" in formulas  # timeout safety by an observer, not an invariant
        assert any(f.startswith("sup{") and f.endswith(": z") for f in formulas)  # worst-case latency
        assert any("-->" in f for f in formulas)  # leads-to
    else:
        assert "A[] (deadlock imply (q == 0 && nbusy == 0))" in formulas
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
    for generated in models:
        assert (MODELS / f"{generated.name}.xml").read_text() == generated.xml
        assert (MODELS / f"{generated.name}.q").read_text() == generated.q_text()


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
