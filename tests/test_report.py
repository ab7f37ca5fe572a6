"""The report and the slides quote no number that is not read from a results file.

``docs/report/build.py`` reads the committed results files and writes ``docs/report/generated/``:
``numbers.tex`` (one macro per quoted number, with its source file and key) and the tables. These
tests parse the .tex sources (no LaTeX needed) and check that

- every numeric literal left after removing macros, comments, labels, citations and lengths is one
  of the brief's constants or parameters listed in ``ALLOWED`` (a result must be a macro);
- every result macro used is defined in ``numbers.tex``, with a comment naming its source;
- ``numbers.tex`` and the tables are exactly what ``build.py`` computes from the results files now,
  so a results file that changes without a rebuild fails here (run ``python docs/report/build.py``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "docs" / "report" / "build.py"
GENERATED = REPO / "docs" / "report" / "generated"
SOURCES = [
    REPO / "docs" / "report" / "report.tex",
    REPO / "docs" / "report" / "system_diagram.tex",
    REPO / "docs" / "slides" / "slides.tex",
]

# Numbers the text may write literally: constants and parameters of the system and the study, not
# results. Each group says where it comes from.
ALLOWED = {
    # the brief's timing table (batch sizes, inference and communication ms) and its worked
    # example: b = 8 on LLM-1 takes 2 + 4 + 40 + 1 = 47 ms, + 80 ms accumulation = 127 ms
    *("1", "2", "4", "8", "64", "40", "47", "80", "127"),
    # the brief's system as configured (batchenv/configs/default.yaml): qualities, w = 1/s,
    # max_wait 100 ms, SLO 250 ms, queue capacity 1024, rate 100/s
    *("1.00", "0.97", "0.92", "100", "250", "1024"),
    # scenario parameters (batchenv/configs/*.yaml): Poisson at 5-95% of LLM-3's capacity, bursty
    # MMPP 50 <-> 400/s (mean 150), diurnal 150 (1 + 0.8 sin(2 pi t / 60 s)), 400 and 800/s on 2 and
    # 4 workers, SLO scenario 80 ms with a penalty of 0.2 per miss
    *("5", "25", "50", "75", "95", "400", "150", "0.8", "60", "800", "0.2"),
    # RL setup (agents/hyperparams/*.yml, default_randomised.yaml): per-step gamma 0.995, training rates
    # drawn from 10-500/s
    *("0.995", "500"),
    # parameters of the proposed scheduler (agents/proposed.py): 6 EWMAs with tau 0.25..8 s, z = 6,
    # CUSUM ratio 4 and threshold 10, patience 2, grid top 1.2 x max throughput; rates within 5%
    *("6", "0.25", "10", "1.2"),
    # evaluation protocol: 10 seeds x 60 s per cell, 20 seeds x 120 s against the optimum, 95% CIs;
    # "within 1% / 2%" thresholds of the RL summary
    *("20", "120"),
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


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("report_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["report_build"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_build()


@pytest.fixture(scope="module")
def computed(build: ModuleType):
    return build.compute()


def strip_tex(text: str) -> str:
    """The text without comments, non-text command arguments, lengths and control sequences."""
    text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())
    text = re.sub(r"\\(?:begin|end)\{[^}]*\}(?:\[[^\]]*\])?(?:\{[^}]*\})?", " ", text)
    for cmd in NON_TEXT_COMMANDS:
        text = re.sub(rf"\\{cmd}(?![A-Za-z])\*?(?:\[[^\]]*\])*(?:\{{[^{{}}]*\}})*", " ", text)
    text = re.sub(rf"-?\d*\.?\d+\s*{LENGTH_UNITS}\b", " ", text)
    text = re.sub(r"-?\d*\.?\d+\s*\\(?:linewidth|columnwidth|textwidth|textheight)", " ", text)
    text = re.sub(r"\[-?\d*\.?\d+\s*" + LENGTH_UNITS + r"\]", " ", text)
    text = re.sub(r"LLM-\d", " ", text)
    text = re.sub(r"\\[A-Za-z@]+\*?", " ", text)
    return text


def numbers_in(text: str) -> list[str]:
    """Numeric literals not glued to a word (p99, SB3, L1 and LLM-1 are names, not numbers)."""
    return re.findall(r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?", strip_tex(text))


def test_stripping_keeps_numbers_in_text_and_drops_the_rest() -> None:
    text = (
        r"costs 12.5\% more % a comment 99"
        "\n"
        r"\includegraphics[width=0.48\linewidth]{fig_2.pdf} \cite{little1961proof} \label{sec:3}"
        r" \setlength{\tabcolsep}{3pt} LLM-3 p99 SB3 \resGapPropBursty\% \vspace{2mm} 1.5em"
    )
    assert numbers_in(text) == ["12.5"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_number_is_a_macro_or_an_allowed_constant(path: Path) -> None:
    found = numbers_in(path.read_text(encoding="utf-8"))
    stray = sorted(set(found) - ALLOWED, key=float)
    assert not stray, (
        f"{path.relative_to(REPO)} quotes numbers that are neither macros of numbers.tex nor allowed "
        f"constants: {stray}; quote a result through docs/report/build.py"
    )


def defined_macros() -> dict[str, str]:
    """Macro name -> the comment of its line in numbers.tex."""
    out = {}
    for line in (GENERATED / "numbers.tex").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\\newcommand\{\\(res[A-Za-z]+)\}\{.*\} % (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_every_result_macro_used_is_defined(build: ModuleType) -> None:
    used = build.used_macros([p for p in SOURCES if p.suffix == ".tex"])
    assert used, "no result macro found in the .tex sources"
    missing = sorted(used - set(defined_macros()))
    assert not missing, f"used but not defined in generated/numbers.tex: {missing}"


def test_every_macro_names_an_existing_source_and_a_key() -> None:
    for name, comment in defined_macros().items():
        m = re.fullmatch(r"(\S+): (.+)", comment)
        assert m, f"\\{name}: comment {comment!r} does not name 'file: key'"
        assert (REPO / m.group(1)).is_file() or "pending" in m.group(2), f"\\{name}: {m.group(1)} missing"


def test_generated_files_match_the_results_files(build: ModuleType, computed) -> None:
    stale = [
        name
        for name, text in build.generated_texts(computed).items()
        if not (GENERATED / name).is_file() or (GENERATED / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"docs/report/generated/{', '.join(stale)} differ from what the results files give now; "
        "run: python docs/report/build.py (and commit the PDFs)"
    )


def test_built_pdfs_are_committed() -> None:
    for pdf in (REPO / "docs" / "report" / "report.pdf", REPO / "docs" / "slides" / "slides.pdf"):
        assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-", f"{pdf.relative_to(REPO)} missing"


def _results_root(tmp_path: Path, build: ModuleType) -> Path:
    """A copy of the results files the build reads (symlinks), without the optional ones."""
    for rel in (
        build.SUITE,
        build.BENCH_JSON,
        build.BENCH_MD,
        build.DESIGN_JSON,
        build.ENV_SPEED,
        build.CONFIG,
        build.UPPAAL_XML,
        build.UPPAAL_Q,
        build.UPPAAL_FINITE_XML,
        build.UPPAAL_FINITE_Q,
    ):
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO / rel)
    return tmp_path


def test_optional_sources_are_marked_pending_when_absent(tmp_path: Path, build: ModuleType) -> None:
    bd = build.compute(_results_root(tmp_path, build))
    assert bd.present == {build.VERIFICATION: False, build.LEARNING: False}
    assert bd.results["resRLWorstFinal"].value == build.PENDING
    assert bd.results["resVerOptCost"].value == build.PENDING
    numbers = build.render_numbers(bd, {"resRLWorstFinal", "resVerOptCost"})
    assert "\\haveRLfalse" in numbers and "\\haveVerificationfalse" in numbers


def test_learning_curves_are_picked_up_when_present(tmp_path: Path, build: ModuleType) -> None:
    root = _results_root(tmp_path, build)

    def curve(costs: list[float]) -> list[dict]:
        return [
            {"timesteps": 50_000 * (i + 1), "cost_per_request": c, "gap_to_optimal": c / 0.1 - 1}
            for i, c in enumerate(costs)
        ]

    runs = [
        {
            "algo": "ppo",
            "rate_per_s": 200.0,
            "curve": curve([0.2, 0.103, 0.1005]),
            "best_gap": 0.005,
            "final_gap": 0.005,
            "first_timesteps_within": {"2%": 100_000},
        },
        {
            "algo": "dqn",
            "rate_per_s": 200.0,
            "curve": curve([0.3, 0.12]),
            "best_gap": 0.2,
            "final_gap": 0.2,
            "first_timesteps_within": {"2%": None},
        },
    ]
    data = {
        "runs": runs,
        "references": {"200": {"optimal_cost_per_request": 0.1, "timeout_cost_per_request": 0.11}},
        "meta": {"n_timesteps": 100_000, "eval_seeds": [1, 2, 3], "eval_horizon_s": 30.0},
    }
    (root / build.LEARNING).parent.mkdir(parents=True, exist_ok=True)
    (root / build.LEARNING).write_text(json.dumps(data))
    bd = build.compute(root)
    assert bd.present[build.LEARNING] is True
    values = {k: v.value for k, v in bd.results.items() if k.startswith("resRL")}
    assert values["resRLFinalMin"] == "+0.50"
    assert values["resRLWorstFinal"] == "+20.00"
    assert values["resRLWorstAlgo"] == "DQN"
    assert values["resRLRuns"] == "2"
    assert values["resRLWithinOne"] == "1"
    assert values["resRLNotAbove"] == "1"
    assert values["resRLTimeoutGapMax"] == "+10.00"
    assert values["resRLEvalEvery"] == "50\\,000"
    assert values["resRLSlowestTwo"] == "--"
    assert "PPO & 200 & 0.1000 & +0.50" in bd.tables["tab_rl.tex"]

    # with learning.py's fresh-seed assessment, the gaps come from it (with their intervals)
    for run, final in zip(runs, ([0.004, 0.002], [0.03, 0.01]), strict=True):
        run["assessment"] = {
            "seeds": [30000, 30009],
            "horizon_s": 60.0,
            "optimal_cost_per_request": 0.1,
            "timeout_gap": [0.02, 0.005],
            "best_model_gap": [0.001, 0.002],
            "final_model_gap": final,
        }
    (root / build.LEARNING).write_text(json.dumps(data))
    bd = build.compute(root)
    values = {k: v.value for k, v in bd.results.items() if k.startswith("resRL")}
    assert values["resRLAssessSeeds"] == "10"
    assert values["resRLFinalMin"] == "+0.40"
    assert values["resRLWorstFinal"] == "+3.00"
    assert values["resRLWorstFinalCi"] == "1.00"
    assert values["resRLAboveOpt"] == "2"
    assert values["resRLNotAbove"] == "1"
    assert "\\haveRLtrue" in build.render_numbers(bd, {"resRLWorstFinal"})


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_only_committed_results_files_are_read(tmp_path: Path, build: ModuleType) -> None:
    root = _results_root(tmp_path, build)
    learning = root / build.LEARNING
    learning.parent.mkdir(parents=True, exist_ok=True)
    learning.write_text(json.dumps({"runs": []}))  # would be an error if it were read
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "docs", "batchenv", "formal", build.ENV_SPEED], cwd=root, check=True)
    assert build.compute(root).present[build.LEARNING] is False
    with pytest.raises(build.BuildError, match="no runs"):
        build.compute(root, only_committed=False)
