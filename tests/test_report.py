"""The report and the slides quote no number that is not read from a source, and the committed
PDFs and figures are those of the current sources.

``python docs/report/build.py`` (the package ``apps/report``) reads the committed JSON results
files, the system's config and the UPPAAL generator, and writes ``docs/report/generated/``:
``numbers.tex`` (one macro per quoted number, with its source file and key), the tables, the
figures and ``hashes.json`` (what each figure and PDF was built from). These tests (no LaTeX
needed) check that

- every numeric literal left in the .tex sources, once macros, comments, labels, citations and
  lengths are removed, is one of the brief's constants in the place where the text quotes it as
  such, or a constant of a formula (``ALLOWED``): every other number is a macro;
- every result macro used is defined in ``numbers.tex``, with a comment naming its source;
- ``numbers.tex`` and the tables are exactly what the builder computes from the sources now;
- the figures draw from the committed JSON, and the committed figures and PDFs were built from
  the current inputs (their input hashes are the ones recorded in ``hashes.json``).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from apps.report import build as report_build
from apps.report import sources as src
from apps.report.figures import draw, inputs_hash
from apps.report.macros import render_numbers, used_macros
from apps.report.manifest import DOCUMENTS, MANIFEST, Manifest, file_sha256, inputs_sha256
from apps.report.names import SUITE_METRICS
from evaluation.tables import TABLE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
GENERATED = REPO / "docs" / "report" / "generated"
SOURCES = [
    REPO / "docs" / "report" / "report.tex",
    REPO / "docs" / "report" / "system_diagram.tex",
    REPO / "docs" / "slides" / "slides.tex",
]

# The numbers the text may write literally, each only in the context that quotes it (a regular
# expression over the stripped text, see strip_tex): the brief's own constants where the text
# quotes the brief, and constants of formulas. Everything else (parameters of the system, the
# scenarios, the scheduler, the study) is a macro read from its source.
ALLOWED = {
    # the brief: T_pre = 2 ms and T_post = 1 ms per batch
    r"\{pre\}\} = 2\b": "the brief's T_pre (ms)",
    r"\{post\}\} = 1\b": "the brief's T_post (ms)",
    # the brief's worked example: b = 8 on LLM-1, 2 + 4 + 40 + 1 = 47 ms of service, 80 ms of
    # accumulation, 127 ms of latency
    r"\bb = 8\$ on\b": "the batch size of the brief's example",
    r"\b2 \+ 4 \+ 40 \+ 1 = 47\b": "T_pre + T_comm(8) + T_inf(LLM-1, 8) + T_post of the brief",
    r"\b80\$~ms (?:of )?accumulation": "the accumulation time of the brief's example",
    r"\b127\$~ms": "the latency of the brief's example",
    # the brief's arrival rate, where the text names it as the brief's
    r"brief's \$100\$ requests/s": "the brief's lambda = 100 requests/s",
    # formulas: the SMDP's transition q -> q + 1, the wait integral s^2 / 2, one worker (n = 1),
    # the diurnal rate's (1 + a sin(2 pi t / T)), the name of a 95% confidence interval
    r"\bq \+ 1\$": "a wait ends with one more request",
    r"s\^2/2\b": "integral of the arrivals' wait during a service",
    r"\$n = 1\$": "the single-worker case",
    r"\(1 \+ ": "the diurnal rate's 1 + a sin(...)",
    r"\(2\s+t\b": "the diurnal rate's 2 pi t",
    r"\$95\$\\%\s*(?:confidence|CI)": "the name of the interval (Student t, 95%)",
    # the system figure's label of the first worker (worker 1 ... worker n)
    r"\bworker 1\b": "a label of the system figure",
}

LENGTH_UNITS = r"(?:pt|mm|cm|in|em|ex|bp|sp|pc)"
NON_TEXT_COMMANDS = (
    "label",
    "ref",
    "eqref",
    "cite",
    "input",
    "include",
    "includegraphics",
    "usepackage",
    "documentclass",
    "usetikzlibrary",
    "graphicspath",
    "bibliography",
    "bibliographystyle",
    "setlength",
    "usetheme",
    "usecolortheme",
    "setbeamertemplate",
    "column",
    "resizebox",
)


@pytest.fixture(scope="module")
def computed() -> report_build.Build:
    return report_build.compute()


def strip_tex(text: str) -> str:
    """The text without comments, non-text command arguments, lengths and control sequences."""
    text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())
    text = re.sub(r"\\(?:begin|end)\{[^}]*\}(?:\[[^\]]*\])?(?:\{[^}]*\})?", " ", text)
    text = re.sub(r"\\newcommand\{[^}]*\}(?:\[\d\])?", " ", text)  # a macro's name and arity
    text = re.sub(r"#\d", " ", text)  # its arguments
    for cmd in NON_TEXT_COMMANDS:
        text = re.sub(rf"\\{cmd}(?![A-Za-z])\*?(?:\[[^\]]*\])*(?:\{{[^{{}}]*\}})*", " ", text)
    text = re.sub(rf"-?\d*\.?\d+\s*{LENGTH_UNITS}\b", " ", text)
    text = re.sub(r"-?\d*\.?\d+\s*\\(?:linewidth|columnwidth|textwidth|textheight)", " ", text)
    text = re.sub(r"\[-?\d*\.?\d+\s*" + LENGTH_UNITS + r"\]", " ", text)
    text = re.sub(r"\b[a-z]+!\d+\b", " ", text)  # TikZ colour mixes (black!6)
    text = re.sub(r"LLM-\d", " ", text)
    text = re.sub(r"\\[A-Za-z@]+\*?", " ", text)
    return text


NUMBER = re.compile(r"(?<![A-Za-z0-9._])\d+(?:\.\d+)?")
"""A numeric literal not glued to a name (p99, SB3, L1, LLM-1, poisson\\_50 are names)."""


def numbers_in(text: str) -> list[str]:
    """The numeric literals of ``text`` that no ALLOWED context covers."""
    stripped = strip_tex(text)
    covered = [m.span() for pattern in ALLOWED for m in re.finditer(pattern, stripped)]
    return [
        m.group()
        for m in NUMBER.finditer(stripped)
        if not any(start <= m.start() and m.end() <= end for start, end in covered)
    ]


def test_stripping_keeps_numbers_in_text_and_drops_the_rest() -> None:
    text = (
        r"costs 12.5\% more % a comment 99"
        "\n"
        r"\includegraphics[width=0.48\linewidth]{fig_2.pdf} \cite{little1961proof} \label{sec:3}"
        r" \setlength{\tabcolsep}{3pt} LLM-3 p99 SB3 \resGapPropBursty\% \vspace{2mm} 1.5em"
        r" \sname{poisson\_50} \newcommand{\sname}[1]{\texttt{#1}} fill=black!6"
    )
    assert numbers_in(text) == ["12.5"]


def test_allowed_numbers_only_in_their_context() -> None:
    # the brief's example is allowed where it is quoted, the same numbers elsewhere are not
    assert numbers_in(r"$b = 8$ on LLM-1 takes $2 + 4 + 40 + 1 = 47$~ms, $80$~ms of accumulation") == []
    assert numbers_in(r"a timeout of $80$~ms and batches of $8$") == ["80", "8"]
    assert numbers_in(r"at the brief's $100$ requests/s") == []
    assert numbers_in(r"at $100$ requests/s, $95$\% of the capacity") == ["100", "95"]
    assert numbers_in(r"mean $\pm$ $95$\% CI") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_number_is_a_macro_or_an_allowed_constant(path: Path) -> None:
    stray = numbers_in(path.read_text(encoding="utf-8"))
    assert not stray, (
        f"{path.relative_to(REPO)} quotes numbers that are neither macros of numbers.tex nor the "
        f"brief's constants in context: {stray}; quote them through docs/report/build.py"
    )


def test_every_allowed_context_is_used() -> None:
    """An allowed context that the text no longer uses is a loophole: remove it."""
    text = "\n".join(strip_tex(p.read_text(encoding="utf-8")) for p in SOURCES)
    unused = [pattern for pattern in ALLOWED if not re.search(pattern, text)]
    assert not unused, f"ALLOWED contexts not found in the sources: {unused}"


def defined_macros() -> dict[str, str]:
    """Macro name -> the comment of its line in numbers.tex."""
    out = {}
    for line in (GENERATED / "numbers.tex").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\\newcommand\{\\(res[A-Za-z]+)\}\{.*\} % (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_every_result_macro_used_is_defined() -> None:
    used = used_macros([p for p in SOURCES if p.suffix == ".tex"])
    assert used, "no result macro found in the .tex sources"
    missing = sorted(used - set(defined_macros()))
    assert not missing, f"used but not defined in generated/numbers.tex: {missing}"


def test_every_macro_names_an_existing_source_and_a_key() -> None:
    for name, comment in defined_macros().items():
        m = re.fullmatch(r"(\S+): (.+)", comment)
        assert m, f"\\{name}: comment {comment!r} does not name 'file: key'"
        assert (REPO / m.group(1)).is_file() or "pending" in m.group(2), f"\\{name}: {m.group(1)} missing"


def test_generated_files_match_the_sources(computed: report_build.Build) -> None:
    stale = report_build.stale_generated(computed)
    assert not stale, (
        f"docs/report/generated/{', '.join(stale)} differ from what the sources give now; "
        "run: python docs/report/build.py (and commit generated/ and the PDFs)"
    )


def test_suite_metrics_are_shown_as_evaluate_shows_them() -> None:
    """The report rounds each metric of evaluate.py's results as evaluate.py's tables do."""
    specs = {metric: spec for metric, _, spec in TABLE_COLUMNS}
    assert set(SUITE_METRICS) == set(specs)
    for metric, (_, scale, digits) in SUITE_METRICS.items():
        for value in (0.123456789, -0.0004999, 1234.56789, 0.5, 2.25):
            shown = specs[metric].format(value).rstrip("%").lstrip("+")
            assert shown == f"{scale * value:.{digits}f}", metric


def test_the_quoted_cross_check_tolerances_are_the_ones_verify_applies(computed: report_build.Build) -> None:
    """The report quotes the tolerances of the formal cross-checks from verification.json, which
    verify.py writes from formal.report_tables' constants: a constant changed without rerunning
    verify.py --full (or the JSON edited by hand) fails here."""
    from formal.report_tables import EVENT_SIM_TOLERANCE, TICK_SIM_TOLERANCE

    if not computed.macros.present.get(src.VERIFICATION):
        pytest.skip(f"{src.VERIFICATION} is not committed")
    assert computed.macros.value("resVerTickSimTol") == f"{100 * TICK_SIM_TOLERANCE:g}"
    assert computed.macros.value("resVerEventSimTol") == f"{100 * EVENT_SIM_TOLERANCE:g}"


def test_committed_pdfs_were_built_from_the_current_sources() -> None:
    """Each PDF is the one recorded in hashes.json, built from today's .tex sources, generated
    tables, macros and figures (rebuild with python docs/report/build.py when this fails)."""
    manifest = Manifest.load()
    for rel, doc in DOCUMENTS.items():
        record = manifest.documents.get(rel)
        assert record is not None, f"{rel} has no record in {MANIFEST.relative_to(REPO)}"
        assert doc.pdf.read_bytes()[:5] == b"%PDF-", f"{rel} is not a PDF"
        assert file_sha256(doc.pdf) == record["output"], f"{rel} is not the PDF the build recorded"
        assert inputs_sha256(doc.inputs()) == record["inputs"], (
            f"{rel} was built from other sources than today's; run: python docs/report/build.py"
        )


def test_a_report_over_its_page_limit_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The IEEE report may have at most 8 pages: a ninth is a build error, and the PDF is not
    recorded as up to date (so --check keeps failing until the text is shortened)."""
    from apps.report import cli

    assert DOCUMENTS["docs/report/report.pdf"].max_pages == 8
    monkeypatch.setattr(cli, "latexmk", lambda directory, main: 9)
    manifest = Manifest()
    with pytest.raises(src.BuildError, match=r"report\.pdf has 9 pages, more than its limit of 8"):
        cli._documents(manifest, slides=False, force=True)
    assert "docs/report/report.pdf" not in manifest.documents
    monkeypatch.setattr(cli, "latexmk", lambda directory, main: 8)
    cli._documents(manifest, slides=False, force=True)
    assert "docs/report/report.pdf" in manifest.documents


def test_figures_draw_from_the_committed_results(tmp_path: Path, computed: report_build.Build) -> None:
    """Every figure draws (matplotlib, Agg) from the committed JSON into a scratch folder, and
    the committed figure was drawn from the same inputs."""
    manifest = Manifest.load()
    assert set(computed.figures) == {p.name for p in GENERATED.glob("fig_*.pdf")}
    for name, data in computed.figures.items():
        path = tmp_path / name
        draw(name, data, path)
        assert path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 5_000, name
        digest = inputs_hash(name, data)
        assert manifest.figures[name]["inputs"] == digest, f"{name} was drawn from other data"
        assert manifest.figures[name]["output"] == file_sha256(GENERATED / name), f"{name} changed by hand"
    # the data are the shown values of the results: the optimum is the cheapest on Poisson loads
    costs = computed.figures["fig_cost_vs_rate.pdf"]["cost_per_request"]
    for i in range(len(costs["optimal"])):
        assert costs["optimal"][i] <= min(c[i] for c in costs.values()) + 1e-4


def _results_root(tmp_path: Path) -> Path:
    """A copy of the sources the build reads (symlinks), without the optional ones."""
    for rel in (src.SUITE, src.BENCH, src.DESIGN, src.ENV_SPEED, src.ROBUST, src.CONFIG, *src.UPPAAL_FILES):
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO / rel)
    return tmp_path


def test_optional_sources_are_marked_pending_when_absent(tmp_path: Path) -> None:
    bd = report_build.compute(_results_root(tmp_path))
    assert bd.present == {
        src.VERIFICATION: False,
        src.LEARNING: False,
        src.LEARNING_RERUN: False,
        src.LEARNING_BANDS: False,
        src.SIM_TO_REAL: False,
        src.SIM_TO_REAL_SENSITIVITY: False,
        src.TRACE_RESULTS: False,
        src.EXTERNAL_TRACES: False,
        src.AZURE_HOUR: False,
        src.AZURE_LMM: False,
        src.TRACE_RESULTS_ALL: False,
        src.FRONTIERS: False,
        src.SENSITIVITY: False,
        src.GUARD_TEST: False,
        src.REPLAY: False,
    }
    for name in (
        "resRLWorstBasePpoMix",
        "resVerOptCost",
        "resSrCellsWithin",
        "resSrSensMeanTwoMax",
        "resTrBoundMaxRobust",
        "resGtClosestMs",
        "resRpPoisMs",
        "resRLBandsRefBusy",
    ):
        assert bd.macros.value(name) == src.PENDING, name
    assert "fig_learning.pdf" not in bd.figures
    numbers = render_numbers(bd.macros, {"resRLWorstBasePpoMix", "resVerOptCost"})
    assert "\\haveRLfalse" in numbers and "\\haveVerificationfalse" in numbers
    assert "\\haveSimRealfalse" in numbers and "\\simRealPreliminaryfalse" in numbers
    guard_test = render_numbers(bd.macros, {"resGtClosestMs"})
    assert "\\haveGuardTestfalse" in guard_test and "\\guardTestNoneMatchesfalse" in guard_test
    # without trace_results.json, the trace table comes from robust.json (no hindsight column)
    assert "robust.json" in bd.tables["tab_traces.tex"] and "bound" not in bd.tables["tab_traces.tex"]


def test_a_damaged_results_file_is_a_clear_error(tmp_path: Path) -> None:
    root = _results_root(tmp_path)
    bench = root / src.BENCH
    data = json.loads(bench.read_text())
    bench.unlink()
    bench.write_text("{not json")
    with pytest.raises(src.BuildError, match=r"proposed_benchmarks\.json: not valid JSON"):
        report_build.compute(root)
    del data["tracking"]["settings"]
    bench.write_text(json.dumps(data))
    with pytest.raises(src.BuildError, match=r"proposed_benchmarks\.json: unexpected content.*settings"):
        report_build.compute(root)


def test_learning_results_are_picked_up_when_present(tmp_path: Path) -> None:
    root = _results_root(tmp_path)

    def summary(gap: float, n: int, optimal: float | None = None) -> dict:
        out = {"gap_to_baselines": {"mean": gap, "ci95": 0.01, "worst": gap, "n": n}}
        if optimal is not None:
            out["gap_to_optimal"] = {"mean": optimal, "ci95": 0.01, "worst": optimal, "n": n}
        return out

    def scenario(ppo: float, dqn: float, optimal: float | None = None) -> dict:
        return {
            "agents": {
                "ppo_mixture": {"models": [], "summary": summary(ppo, 3, optimal)},
                "dqn_default": {"models": [], "summary": summary(dqn, 1)},
            }
        }

    data = {
        "experiments": {
            "ppo_mixture": {
                "steps": [1_000_000, 1_007_616],
                "curve": [
                    {"timesteps": 100_000, "mean": 0.3, "ci95": 0.2, "n": 3},
                    {"timesteps": 200_000, "mean": 0.01, "ci95": 0.005, "n": 3},
                ],
            },
            "ablation": {"steps": [300_000], "assessed": False, "curve": []},  # not its steps
        },
        "assessment": {
            "default": scenario(0.001, 0.03, optimal=0.004),
            "bursty": scenario(0.05, -0.2),
            "azure_trace_30_test": scenario(-0.01, 0.025),
        },
        "meta": {"assess_seeds": [30000, 30001, 30002], "assess_horizon_s": 30.0},
    }
    learning = root / src.LEARNING
    learning.parent.mkdir(parents=True, exist_ok=True)
    learning.write_text(json.dumps({"experiments": {}}))
    with pytest.raises(src.BuildError, match="no experiments"):
        report_build.compute(root)
    learning.unlink()
    learning.write_text(json.dumps(data))
    bd = report_build.compute(root)
    assert bd.present[src.LEARNING] is True
    values = {k: v.value for k, v in bd.macros.results.items() if k.startswith("resRL")}
    assert values["resRLSteps"] == "1\\,000\\,000"
    assert values["resRLAssessSeeds"] == "3" and values["resRLScenarios"] == "3"
    assert values["resRLSeedsPpoMix"] == "3"
    assert values["resRLWorstBasePpoMix"] == "+5.0"
    assert values["resRLWorstBaseScenPpoMix"] == "\\sname{bursty}"
    assert values["resRLOverTolPpoMix"] == "1"
    assert values["resRLOverTolDqnShip"] == "2"
    assert values["resRLOptMaxPpoMix"] == "+0.4"
    assert values["resRLOptMaxDqnShip"] == src.PENDING  # no Poisson scenario with an optimum
    assert values["resRLWorstBaseDqnMix"] == src.PENDING  # not assessed
    assert "PPO (mixture) & 3 & +0.4 & +5.0 & \\texttt{bursty} & 1 of 3" in bd.tables["tab_rl.tex"]
    assert bd.figures["fig_learning.pdf"] == {"ppo_mixture": [[100_000, 30.0, 20.0], [200_000, 1.0, 0.5]]}
    assert "\\haveRLtrue" in render_numbers(bd.macros, {"resRLSteps"})


def test_the_retrained_experiments_and_the_seed_each_training_evaluation_picks(tmp_path: Path) -> None:
    root = _results_root(tmp_path)
    models = ["m0", "m1", "m2"]
    per_scenario = {"a": [0.0, 0.01, 0.04], "b": [0.025, -0.01, 0.03], "c": [0.0, 0.015, -0.02]}

    def entry(gaps: list[float]) -> dict:
        mean = sum(gaps) / len(gaps)
        rows = [{"model": m, "gap_to_baselines": g} for m, g in zip(models, gaps, strict=True)]
        summary = {"gap_to_baselines": {"mean": mean, "ci95": 0.01, "worst": max(gaps), "n": 3}}
        return {"agents": {"ppo_mixture": {"models": rows, "summary": summary}}}

    data = {
        "experiments": {"ppo_mixture": {"models": models, "kept_gap": [0.014, 0.012, 0.032]}},
        "assessment": {name: entry(gaps) for name, gaps in per_scenario.items()},
    }
    rerun = root / src.LEARNING_RERUN
    rerun.parent.mkdir(parents=True, exist_ok=True)

    def values_of(data: dict) -> dict[str, str]:
        rerun.write_text(json.dumps(data))
        bd = report_build.compute(root, only_committed=False)
        assert bd.present[src.LEARNING_RERUN] is True
        return {k: v.value for k, v in bd.macros.results.items() if k.startswith("resRLRerun")}

    values = values_of(data)
    # means: a +1.7%, b +1.5%, c -0.2%: none over 2%; m0 (b) and m2 (a, b) fail somewhere
    assert values["resRLRerunOverTolPpo"] == "0" and values["resRLRerunScenarios"] == "3"
    assert values["resRLRerunWorstBasePpo"] == "+1.7" and values["resRLRerunSeedsPpo"] == "3"
    assert values["resRLRerunSeedsOverTolPpo"] == "2"
    # m1 has the lowest training-evaluation gap: within 2% everywhere, worst +1.5%
    assert values["resRLRerunPickOverTolPpo"] == "0" and values["resRLRerunPickWorstPpo"] == "+1.5"
    assert values["resRLRerunPickOverTolDqn"] == src.PENDING  # DQN was not retrained
    data["experiments"]["ppo_mixture"]["kept_gap"] = [0.014, 0.02, 0.001]  # now m2
    values = values_of(data)
    assert values["resRLRerunPickOverTolPpo"] == "2" and values["resRLRerunPickWorstPpo"] == "+4.0"
    data["experiments"]["ppo_mixture"]["kept_gap"] = [0.01]
    rerun.write_text(json.dumps(data))
    with pytest.raises(src.BuildError, match="3 models and 1 kept_gap"):
        report_build.compute(root, only_committed=False)
    rerun.write_text(json.dumps({"experiments": {}, "assessment": {"a": {"agents": {}}}}))
    with pytest.raises(src.BuildError, match="none of ppo_mixture, dqn_mixture is assessed"):
        report_build.compute(root, only_committed=False)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_only_committed_results_files_are_read(tmp_path: Path) -> None:
    root = _results_root(tmp_path)
    learning = root / src.LEARNING
    learning.parent.mkdir(parents=True, exist_ok=True)
    learning.write_text(json.dumps({"experiments": {}}))  # would be an error if it were read
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "docs", "batchenv", "formal", src.ENV_SPEED], cwd=root, check=True)
    assert report_build.compute(root).present[src.LEARNING] is False
    with pytest.raises(src.BuildError, match="no experiments"):
        report_build.compute(root, only_committed=False)


def test_shown_values_round_like_the_tables() -> None:
    from apps.report.formatting import Shown

    v = Shown.of(-0.13979, 2, 100.0, 0.04801)
    assert (v.tex(sign=True), v.ci_tex()) == (r"\ensuremath{-}13.98", "4.80")
    assert Shown.of(-0.000001, 2, 100.0).tex(sign=True) == r"\ensuremath{-}0.00"
    assert math.isclose(Shown.of(2.51, 1).x, 2.5)


def test_bands_macros_count_the_reference_seeds_and_the_smallest_p_of_the_changes(tmp_path: Path) -> None:
    root = _results_root(tmp_path)
    bands = root / src.LEARNING_BANDS
    bands.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": {"reference": "ref"},
        "experiments": {
            "ref": {
                "seeds": 20,
                "failing": {"busy": ["1", "4"], "moderate": ["2"], "slo": []},
                "clean": ["0"],
            },
            "a": {
                "seeds": 10,
                "failing": {"busy": [], "moderate": ["3"], "slo": []},
                "clean": ["0", "1"],
                "p_vs_reference": {"busy": 0.54, "moderate": 1.0, "slo": 1.0, "clean": 0.25},
            },
            "b": {
                "seeds": 8,
                "failing": {"busy": ["5"], "moderate": [], "slo": []},
                "clean": ["0"],
                "p_vs_reference": {"busy": 1.0, "moderate": 0.456, "slo": 1.0, "clean": 1.0},
            },
        },
    }
    bands.write_text(json.dumps(data))
    bd = report_build.compute(root, only_committed=False)
    assert bd.macros.flags["rlBandsPick"][0] is False  # no pick table: its macros are pending
    # b's pick is the more surely clean (a higher lower end), though a's chance is higher
    for name, chance, low in (("a", 0.95, 0.5), ("b", 0.9349, 0.695)):
        data["experiments"][name]["pick"] = {
            "chance_clean": {
                "1": {"chance": 0.5 if name == "b" else 0.6, "ci95": [0.2, 0.8]},
                "5": {"chance": chance, "ci95": [low, 1.0]},
            }
        }
    bands.write_text(json.dumps(data))
    bd = report_build.compute(root, only_committed=False)
    assert bd.macros.flags["rlBandsPick"][0] is True
    assert bd.present[src.LEARNING_BANDS] is True
    values = {k: v.value for k, v in bd.macros.results.items() if k.startswith("resRLBands")}
    assert values == {
        "resRLBandsRefSeeds": "20",
        "resRLBandsRefBusy": "2",
        "resRLBandsRefModerate": "1",
        "resRLBandsRefClean": "1",
        "resRLBandsChanges": "2",
        "resRLBandsChangeSeeds": "8",
        "resRLBandsMinBusyP": "0.54",
        "resRLBandsMinModerateP": "0.46",
        "resRLBandsPickFive": "0.93",
        "resRLBandsPickFiveLow": "0.69",
        "resRLBandsPickFiveHigh": "1.00",
        "resRLBandsPickOne": "0.50",
    }
    assert bd.macros.flags["rlBandsNoneSignificant"][0] is True
    data["experiments"]["b"]["p_vs_reference"]["moderate"] = 0.04
    bands.write_text(json.dumps(data))
    assert report_build.compute(root, only_committed=False).macros.flags["rlBandsNoneSignificant"][0] is False
    data["meta"]["reference"] = "c"
    bands.write_text(json.dumps(data))
    with pytest.raises(src.BuildError, match=r"meta\.reference 'c' is not among its experiments"):
        report_build.compute(root, only_committed=False)
    data["meta"]["reference"] = "ref"
    del data["experiments"]["a"]["p_vs_reference"]
    bands.write_text(json.dumps(data))
    with pytest.raises(src.BuildError, match=r"no 'experiments\.a\.p_vs_reference'"):
        report_build.compute(root, only_committed=False)
