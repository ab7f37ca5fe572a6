"""The generated UPPAAL models: XML structure, names, queries, committed files.

UPPAAL cannot be installed here, so its parser is not available. The structure is checked
against the content models of UPPAAL's document type (``-//Uppaal Team//DTD Flat System 1.1//EN``,
flat-1_2.dtd), restated below from its published element rules, and every name used in labels,
the system line and the queries must be declared (``formal.uppaal.lint``).
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from batchenv.config import ConfigError, SystemConfig
from formal.policies import TimeoutPolicy
from formal.uppaal import DOCTYPE, generate, lint, run_verifyta

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "formal" / "models"
DEFAULT_POLICY = TimeoutPolicy(8, 10.0, (0, 1, 2), (32, 48))  # verify.py's --uppaal-policy default

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


@pytest.fixture(scope="module", params=[False, True], ids=["symbolic", "smc"])
def model(request):
    return generate(SystemConfig(), DEFAULT_POLICY, smc=request.param)


def test_document_type_structure(model) -> None:
    assert check_document_type(model.xml) == []


def test_every_name_is_declared(model) -> None:
    assert lint(model.xml) == []


def test_templates_channels_and_clocks(model) -> None:
    root = ET.fromstring(model.xml)
    templates = {t.findtext("name"): t for t in root.iter("template")}
    arrival = "ArrivalPoisson" if model.name.endswith("smc") else "ArrivalBounded"
    expected = {arrival, "Scheduler", "Worker"} | (set() if model.name.endswith("smc") else {"Tag"})
    assert set(templates) == expected
    declaration = root.findtext("declaration")
    for name in ("arrive", "start", "done", "dispatched"):
        assert re.search(rf"chan {name}\b", declaration)
    assert "clock oldest;" in declaration
    assert templates["Worker"].findtext("parameter") == "const wid_t id"
    syncs = [lab.text for lab in root.iter("label") if lab.get("kind") == "synchronisation"]
    assert {"arrive!", "start[w]!", "done[id]!"} <= set(syncs)
    committed = [
        loc.findtext("name")
        for loc in templates["Scheduler"].iter("location")
        if loc.find("committed") is not None
    ]
    assert committed == ["Check", "Dispatch", "Notify"]
    accum = next(loc for loc in templates["Scheduler"].iter("location") if loc.findtext("name") == "Accum")
    assert accum.find("label").text.startswith("oldest <= POLICY_T")
    if model.name.endswith("smc"):
        rate = [lab.text for lab in root.iter("label") if lab.get("kind") == "exponentialrate"]
        assert rate == ["RATE_NUM : RATE_DEN"]


def test_constants_come_from_the_config(model) -> None:
    declaration = ET.fromstring(model.xml).findtext("declaration")
    assert "const int MAX_WAIT = 1000;" in declaration  # 100 ms in 0.1 ms units
    assert "const int POLICY_T = 100;" in declaration  # 10 ms
    assert "const int POLICY_FROM_Q[POLICY_K] = {0, 32, 48};" in declaration
    svc = re.search(r"SVC\[N_MODELS\]\[MAX_BATCH \+ 1\] = \{\s*\{([^}]*)\}", declaration).group(1).split(",")
    assert int(svc[8]) == 470  # b = 8 on LLM-1: 47 ms, the brief's example
    assert int(svc[64]) == 2710
    assert "const int RATE_NUM = 1;" in declaration and "const int RATE_DEN = 100;" in declaration
    assert "const int MIN_IA = 100;" in declaration  # 10 ms at 100/s


def test_queries_are_documented_and_cover_the_brief(model) -> None:
    formulas = [q.formula for q in model.queries]
    assert all(q.comment for q in model.queries)
    assert [f for f in formulas] == [q.findtext("formula") for q in ET.fromstring(model.xml).iter("query")]
    if model.name.endswith("smc"):
        assert any(f.startswith("Pr[") and "QCAP" in f for f in formulas)  # overflow
        assert any("served" in f for f in formulas)  # throughput
        assert any("work" in f for f in formulas)  # utilisation
    else:
        assert "A[] not deadlock" in formulas
        assert "A[] Scheduler.Accum imply oldest <= MAX_WAIT" in formulas  # timeout bound
        assert any(f.startswith("sup{") and "Tag.z" in f for f in formulas)  # worst-case latency
    assert all(f in model.q_text() for f in formulas)


def test_lint_catches_undeclared_names_and_bad_references(model) -> None:
    broken = model.xml.replace("oldest &gt;= POLICY_T", "oldest &gt;= POLICY_TT", 1)
    assert any("POLICY_TT" in p for p in lint(broken))
    assert any("Nowhere" in p for p in lint(model.xml, ["A[] Scheduler.Nowhere"]))
    assert any("Ghost" in p for p in lint(model.xml, ["E<> Ghost.Idle"]))
    dangling = re.sub(r'<init ref="[^"]*"', '<init ref="id_missing"', model.xml, count=1)
    assert any("init" in p for p in lint(dangling))
    assert check_document_type(
        model.xml.replace("<system>", "<systems>", 1).replace("</system>", "</systems>", 1)
    )


def test_committed_models_are_the_generated_defaults() -> None:
    for smc in (False, True):
        generated = generate(SystemConfig(), DEFAULT_POLICY, smc=smc)
        assert (MODELS / f"{generated.name}.xml").read_text() == generated.xml
        assert (MODELS / f"{generated.name}.q").read_text() == generated.q_text()


def test_bad_parameters_name_the_field() -> None:
    for kwargs, field in [
        ({"queue_cap": 0}, "queue_cap"),
        ({"time_unit_ms": 5.0}, "time_unit_ms"),
        ({"min_interarrival_ms": 0.0}, "min_interarrival_ms"),
        ({"rate_per_s": 0.0}, "rate_per_s"),
    ]:
        with pytest.raises(ConfigError) as info:
            generate(SystemConfig(), DEFAULT_POLICY, smc=False, **kwargs)
        assert info.value.field == field
    with pytest.raises(ConfigError, match=r"timeout\.timeout_ms"):
        generate(SystemConfig(), TimeoutPolicy(8, 500.0), smc=True)


def test_verifyta_is_run_only_when_present(tmp_path: Path) -> None:
    model = generate(SystemConfig(), DEFAULT_POLICY, smc=False)
    (tmp_path / "m.xml").write_text(model.xml)
    (tmp_path / "m.q").write_text(model.q_text())
    result = run_verifyta(tmp_path / "m.xml", tmp_path / "m.q")
    if shutil.which("verifyta") is None:
        assert result is None
    else:
        code, output = result
        assert code == 0 and "NOT satisfied" not in output.split("sup")[0]
