#!/usr/bin/env python3
"""Build the batchenv report and slides from the project's committed results files.

    python docs/report/build.py               # numbers, tables, figures, report.pdf and slides.pdf
    python docs/report/build.py --no-pdf      # only docs/report/generated/ (no LaTeX needed)
    python docs/report/build.py --check       # exit 1 if generated/*.tex differ from the results

Nothing here runs an evaluation: every number is read from a results file that one of the repo's
commands writes (the command is named next to each source below), and every number quoted in
``report.tex`` or ``slides/slides.tex`` is a macro of ``generated/numbers.tex`` whose comment names
the file and the key it was read from. ``tests/test_report.py`` checks that the generated files
are what this script computes from the results files now, and that the .tex sources quote no
other number than a short list of the brief's constants.

Outputs:
  docs/report/generated/numbers.tex     one \\newcommand per quoted number (+ source comment)
  docs/report/generated/tab_*.tex       tables
  docs/report/generated/fig_*.pdf       figures (matplotlib, Agg)
  docs/report/report.pdf                latexmk -pdf report.tex (build files in docs/report/build/)
  docs/slides/slides.pdf                latexmk -pdf slides.tex (build files in docs/slides/build/)

Optional sources: when ``benchmarks/results/learning.json`` (RL learning curves) or
``docs/results/verification.md`` is missing or not yet committed (``git ls-files``), the macros
that would come from it are defined as a visible "[pending]" marker, ``\\ifhaveRL`` /
``\\ifhaveVerification`` are false, and the text says so; the next build picks the file up.
``--include-untracked`` previews a results file that is not committed yet.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
REPORT_DIR = REPO / "docs" / "report"
GENERATED = REPORT_DIR / "generated"
SLIDES_DIR = REPO / "docs" / "slides"
TEX_SOURCES = (REPORT_DIR / "report.tex", SLIDES_DIR / "slides.tex")
BUILD_COMMAND = "python docs/report/build.py"

# Results files (repo-relative) and the commands that write them.
SUITE = "docs/results/proposed.md"
BENCH_JSON = "docs/results/proposed_benchmarks.json"
BENCH_MD = "docs/results/proposed_benchmarks.md"
DESIGN_JSON = "docs/results/proposed_design.json"
VERIFICATION = "docs/results/verification.md"
ENV_SPEED = "benchmarks/results/env_speed.json"
LEARNING = "benchmarks/results/learning.json"
CONFIG = "batchenv/configs/default.yaml"
UPPAAL_XML = "formal/models/batching.xml"
UPPAAL_Q = "formal/models/batching.q"
UPPAAL_FINITE_XML = "formal/models/batching_finite.xml"
UPPAAL_FINITE_Q = "formal/models/batching_finite.q"
TA_JSON = "docs/results/verification_ta.json"

SOURCES = {
    SUITE: "python evaluate.py --scenarios suite --agents '...' --n-seeds 10 --jobs 2 "
    "--report docs/results/proposed.md",
    BENCH_JSON: "python benchmarks/proposed_eval.py",
    BENCH_MD: "python benchmarks/proposed_eval.py",
    DESIGN_JSON: "python benchmarks/proposed_eval.py --parts design --out docs/results/proposed_design.md",
    VERIFICATION: "python verify.py",
    ENV_SPEED: "python benchmarks/env_speed.py",
    LEARNING: "python benchmarks/learning.py",
    CONFIG: "(input: the brief's system)",
    UPPAAL_XML: "python verify.py --uppaal (formal/ta/, formal/uppaal.py)",
    UPPAAL_Q: "python verify.py --uppaal (formal/ta/, formal/uppaal.py)",
    UPPAAL_FINITE_XML: "python verify.py --uppaal (formal/ta/, formal/uppaal.py)",
    UPPAAL_FINITE_Q: "python verify.py --uppaal (formal/ta/, formal/uppaal.py)",
    TA_JSON: "python verify.py (timed-automata stage, TChecker)",
}
OPTIONAL = {LEARNING: "RL", VERIFICATION: "Verification"}
PENDING = r"\textbf{[pending]}"

# Scenario and agent names -> the letters-only tokens of macro names (LaTeX names have no digits).
SCENARIOS = {
    "default": "Default",
    "poisson_05": "PoisFive",
    "poisson_25": "PoisTwentyFive",
    "poisson_50": "PoisFifty",
    "poisson_75": "PoisSeventyFive",
    "poisson_95": "PoisNinetyFive",
    "high_load": "HighLoad",
    "default_randomised": "Randomised",
    "bursty": "Bursty",
    "diurnal": "Diurnal",
    "azure_trace": "Trace",
    "azure_trace_low": "TraceLow",
    "azure_trace_medium": "TraceMedium",
    "azure_trace_high": "TraceHigh",
    "multi_gpu": "MultiGpu",
    "multi_gpu_4": "MultiGpuFour",
}
AGENTS = {
    "greedy": "Greedy",
    "static": "Static",
    "timeout": "Timeout",
    "aimd": "Aimd",
    "util_switch": "Switch",
    "optimal": "Opt",
    "proposed": "Prop",
    "proposed(rate_estimation=false)": "PropNoRate",
    "proposed(model_switching=false)": "PropNoSwitch",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "PropGuard",
    "proposed(slo_guard=false)": "PropNoGuard",
    "ppo_default": "Ppo",
    "dqn_default": "Dqn",
}
AGENT_LABELS = {
    "greedy": "greedy",
    "static": "static",
    "timeout": "timeout (tuned)",
    "aimd": "AIMD",
    "util_switch": "util\\_switch (tuned)",
    "optimal": "optimum",
    "proposed": "proposed",
    "proposed(rate_estimation=false)": "no rate estimation",
    "proposed(model_switching=false)": "no model switching",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "tail guard",
    "proposed(slo_guard=false)": "no SLO guard",
    "ppo_default": "PPO (shipped)",
    "dqn_default": "DQN (shipped)",
}
POISSON_ONE_WORKER = [
    "poisson_05",
    "default",
    "poisson_25",
    "poisson_50",
    "high_load",
    "poisson_75",
    "poisson_95",
]
NON_POISSON = [
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "azure_trace_medium",
    "azure_trace_high",
    "multi_gpu",
    "multi_gpu_4",
]
ABLATION_SCENARIOS = [
    "poisson_25",
    "poisson_50",
    "default_randomised",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "multi_gpu",
    "multi_gpu_4",
]
ABLATION_AGENTS = [
    "proposed",
    "proposed(rate_estimation=false)",
    "proposed(model_switching=false)",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)",
]
SUITE_METRICS = {  # column of the suite tables -> macro metric token
    "cost/req": "Cost",
    "gap": "Gap",
    "score/req": "Score",
    "mean ms": "Mean",
    "p99 ms": "Tail",
    "SLO": "Slo",
    "thr/s": "Thr",
    "quality": "Qual",
    "batch": "Batch",
    "util": "Util",
    "drops": "Drops",
    "forced": "Forced",
}
DESIGN_VARIANTS = {
    "defaults": "Defaults",
    "z = 2": "ZTwo",
    "z = 4": "ZFour",
    "drops restart too": "DropRestart",
    "no CUSUM": "NoCusum",
    "h = 7": "HSeven",
    "h = 14": "HFourteen",
    "r = 2": "RTwo",
    "no timer (patience inf)": "NoTimer",
    "patience 1": "PatienceOne",
    "whole-queue batches": "WholeQueue",
}
ALGO_NAMES = {"ppo": "PPO", "dqn": "DQN", "a2c": "A2C", "maskable_ppo": "MaskablePPO"}


class BuildError(RuntimeError):
    """A results file is missing or does not have the expected content; the message names it."""


# ------------------------------------------------------------------------------------ formatting


def _minus(s: str) -> str:
    return r"\ensuremath{-}" + s[1:] if s.startswith("-") else s


def fnum(x: float, digits: int = 2, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals, a LaTeX minus, and a + when ``sign`` and not negative."""
    s = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return _minus(s)


def fpct(x: float, digits: int = 2, sign: bool = False) -> str:
    """A fraction as per cent (without the % sign)."""
    return fnum(100 * x, digits, sign)


def fint(x: float) -> str:
    """An integer with thin-space thousands separators."""
    return f"{round(x):,}".replace(",", r"\,")


def fkilo(x: float) -> str:
    """Thousands, rounded: 59280 -> 59k."""
    return f"{x / 1000:.0f}k"


@dataclass(frozen=True)
class Val:
    """A number read from a Markdown table, with the decimals it was printed with."""

    x: float
    digits: int
    ci: float | None = None

    def tex(self, sign: bool = False) -> str:
        return fnum(self.x, self.digits, sign)

    def ci_tex(self) -> str:
        return fnum(self.ci if self.ci is not None else 0.0, self.digits)


_NUM = r"[+-]?\d+(?:\.\d+)?"


def parse_val(text: str) -> Val | None:
    """``'-13.98% ± 4.80%'``, ``'0.1030 ± 0.0104'``, ``'102.0'`` -> Val; ``n/a`` or empty -> None."""
    text = text.strip().replace("−", "-")
    m = re.fullmatch(rf"({_NUM})%?(?:\s*±\s*({_NUM})%?)?", text)
    if not m:
        return None
    digits = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
    return Val(float(m.group(1)), digits, float(m.group(2)) if m.group(2) else None)


def md_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every pipe table of a Markdown text: (the last heading above it, header cells, rows)."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    lines = text.splitlines()
    heading, i = "", 0

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if (
            line.startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|[\s\-|:]+\|", lines[i + 1].strip())
        ):
            header, rows = cells(line), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            out.append((heading, header, rows))
            continue
        i += 1
    return out


def short(scen: str) -> str:
    """Scenario name without the ``azure_`` / ``default_`` prefixes (for narrow tables)."""
    return scen.replace("azure_", "").replace("default_", "")


def tt(name: str) -> str:
    """A scenario or agent name in typewriter type, underscores escaped."""
    return r"\texttt{" + name.replace("_", r"\_") + "}"


# ------------------------------------------------------------------------------------ the results


@dataclass
class Result:
    """One quoted number: its macro name (without backslash), LaTeX value, source file and key."""

    name: str
    value: str
    source: str
    key: str


@dataclass
class Build:
    """Everything computed from the results files: macros, tables (file -> text), figure data."""

    root: Path
    results: dict[str, Result] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    present: dict[str, bool] = field(default_factory=dict)
    suite: dict[str, dict] = field(default_factory=dict)
    bench: dict = field(default_factory=dict)
    learning: dict | None = None
    config: dict = field(default_factory=dict)

    def add(self, name: str, value: str, source: str, key: str) -> None:
        if not re.fullmatch(r"res[A-Z][A-Za-z]*", name):
            raise BuildError(f"bad macro name {name!r} (letters only, starting with 'res')")
        if name in self.results:
            raise BuildError(f"macro {name} defined twice ({self.results[name].key!r} and {key!r})")
        self.results[name] = Result(name, value, source, key)

    tracked: set[str] | None = None

    def available(self, rel: str) -> bool:
        """The file exists (and, with ``--only-committed``, is tracked by git)."""
        return (self.root / rel).is_file() and (self.tracked is None or rel in self.tracked)

    def read(self, rel: str) -> str:
        path = self.root / rel
        if not path.is_file():
            raise BuildError(f"{rel} is missing; it is written by: {SOURCES.get(rel, '?')}")
        return path.read_text(encoding="utf-8")


# -- the system (an input: derived constants of the brief's timing table)


def service_ms(cfg: dict, b_index: int, model: dict) -> float:
    t = cfg["timing"]
    return t["t_pre_ms"] + t["comm_ms"][b_index] + model["inference_ms"][b_index] + t["t_post_ms"]


def add_config(bd: Build) -> None:
    cfg = yaml.safe_load(bd.read(CONFIG))
    bd.config = cfg
    sizes = cfg["timing"]["batch_sizes"]
    letters = "ABC"
    for mi, model in enumerate(cfg["models"]):
        thr = max(b / service_ms(cfg, i, model) * 1000 for i, b in enumerate(sizes))
        bd.add(f"resCap{letters[mi]}", f"{thr:.0f}", CONFIG, f"max_b b / service(b, {model['name']}) (1/s)")
    rows = []
    for i, b in enumerate(sizes):
        inf = " & ".join(f"{m['inference_ms'][i]:g}" for m in cfg["models"])
        svc = " & ".join(f"{service_ms(cfg, i, m):g}" for m in cfg["models"])
        rows.append(f"{b} & {inf} & {cfg['timing']['comm_ms'][i]:g} & {svc} \\\\")
    bd.tables["tab_timing.tex"] = (
        _table_header(CONFIG, "the brief's timing table; service = T_pre + T_comm + T_inf + T_post")
        + "\\begin{tabular}{@{}r rrr r rrr@{}}\n\\toprule\n"
        "& \\multicolumn{3}{c}{$T_{\\mathrm{inf}}(m, b)$} & & \\multicolumn{3}{c}{service$(b, m)$} \\\\\n"
        "\\cmidrule(lr){2-4}\\cmidrule(l){6-8}\n"
        "$b$ & LLM-1 & LLM-2 & LLM-3 & $T_{\\mathrm{comm}}(b)$ & LLM-1 & LLM-2 & LLM-3 \\\\\n\\midrule\n"
        + "\n".join(rows)
        + "\n\\bottomrule\n\\end{tabular}\n"
    )


def _table_header(source: str, what: str) -> str:
    return f"% Generated by {BUILD_COMMAND} from {source}: {what}. Do not edit.\n"


# -- the scenario suite (evaluate.py --report)


def parse_suite(text: str) -> dict[str, dict]:
    """Scenario -> {'meta': {...}, 'agents': {agent: {column: cell}}} from an evaluate.py report."""
    suite: dict[str, dict] = {}
    pattern = re.compile(r"(\S+) \((\w+), (.+?)/s(?: per episode)?, (\d+) workers?; gap vs (\w+)\)")
    for heading, header, rows in md_tables(text):
        m = pattern.fullmatch(heading)
        if not m or header[0] != "agent":
            continue
        agents = {row[0]: dict(zip(header, row, strict=False)) for row in rows}
        suite[m.group(1)] = {
            "meta": {
                "process": m.group(2),
                "rate": m.group(3),
                "workers": int(m.group(4)),
                "ref": m.group(5),
            },
            "agents": agents,
        }
    return suite


def mix(cell: str) -> dict[str, int]:
    """``'L1 28% L2 1% L3 72%'`` -> {'L1': 28, 'L2': 1, 'L3': 72} (missing models 0)."""
    out = {"L1": 0, "L2": 0, "L3": 0}
    for model, pct in re.findall(r"(L\d) (\d+)%", cell):
        out[model] = int(pct)
    return out


def add_suite(bd: Build) -> None:
    suite = parse_suite(bd.read(SUITE))
    missing = [s for s in SCENARIOS if s not in suite]
    if missing:
        raise BuildError(f"{SUITE}: no table for scenario(s) {', '.join(missing)}")
    bd.suite = suite
    for scen, data in suite.items():
        stok = SCENARIOS.get(scen)
        if stok is None:
            continue
        meta = data["meta"]
        rate = meta["rate"]
        bd.add(f"resRate{stok}", rate.replace("-", "--"), SUITE, f"{scen}: heading, rate")
        for agent, row in data["agents"].items():
            atok = AGENTS.get(agent)
            if atok is None:
                continue
            key = f"{scen} / {agent}"
            for column, mtok in SUITE_METRICS.items():
                v = parse_val(row.get(column, ""))
                if v is None:
                    continue
                bd.add(f"res{mtok}{atok}{stok}", v.tex(sign=(mtok == "Gap")), SUITE, f"{key} / {column}")
                if v.ci is not None and mtok in ("Cost", "Gap"):
                    bd.add(f"res{mtok}Ci{atok}{stok}", v.ci_tex(), SUITE, f"{key} / {column} (95% CI)")
                if mtok == "Gap":
                    bd.add(f"resRed{atok}{stok}", fnum(-v.x, v.digits), SUITE, f"{key} / -{column}")
            if row.get("model mix"):
                for model, pct in mix(row["model mix"]).items():
                    letter = "ABC"[int(model[1]) - 1]
                    bd.add(f"resMix{letter}{atok}{stok}", str(pct), SUITE, f"{key} / model mix {model}")
    # aggregates quoted in the text
    gaps = [parse_val(suite[s]["agents"]["proposed"]["gap"]).x for s in POISSON_ONE_WORKER]
    bd.add(
        "resSuiteMaxGapPropPoisson",
        fnum(max(gaps), 2),
        SUITE,
        "max over the one-worker Poisson scenarios of proposed / gap",
    )
    wins = [s for s in NON_POISSON if _gap(suite, s, "proposed") < _gap(suite, s, "util_switch")]
    bd.add(
        "resSuiteWinsVsSwitch",
        str(len(wins)),
        SUITE,
        "non-Poisson scenarios where proposed gap < util_switch gap",
    )
    bd.add("resSuiteNonPoisson", str(len(NON_POISSON)), SUITE, "number of non-Poisson scenarios compared")
    tail_losses = [
        s
        for s in [*NON_POISSON, *POISSON_ONE_WORKER]
        if _p99(suite, s, "proposed") > _p99(suite, s, "timeout")
    ]
    bd.add(
        "resSuiteTailLosses",
        str(len(tail_losses)),
        SUITE,
        "scenarios (Poisson one-worker + non-Poisson) where proposed p99 > timeout p99",
    )
    bd.add(
        "resSuiteScenarios",
        str(len(NON_POISSON) + len(POISSON_ONE_WORKER) + 1),
        SUITE,
        "scenarios of the suite (incl. default_randomised)",
    )
    loads = [s for s in NON_POISSON if not s.startswith("multi_gpu")]
    gpus = [s for s in NON_POISSON if s.startswith("multi_gpu")]
    bd.add(
        "resSuiteBestRedLoad",
        fnum(max(-_gap(suite, s, "proposed") for s in loads), 1),
        SUITE,
        "max over bursty, diurnal, azure_trace* of -(proposed / gap)",
    )
    bd.add(
        "resSuiteBestRedGpu",
        fnum(max(-_gap(suite, s, "proposed") for s in gpus), 1),
        SUITE,
        "max over multi_gpu* of -(proposed / gap)",
    )
    forced = [
        parse_val(a["forced"]).x
        for s in suite.values()
        for name, a in s["agents"].items()
        if name.startswith("proposed") and parse_val(a.get("forced", "")) is not None
    ]
    bd.add("resSuiteForcedProp", fnum(max(forced), 0), SUITE, "max over scenarios of proposed* / forced")
    bd.tables["tab_suite.tex"] = suite_table(suite)
    bd.tables["tab_ablation.tex"] = ablation_table(suite)


def _gap(suite: dict, scen: str, agent: str) -> float:
    v = parse_val(suite[scen]["agents"][agent]["gap"])
    if v is None:
        raise BuildError(f"{SUITE}: {scen} / {agent} has no gap")
    return v.x


def _p99(suite: dict, scen: str, agent: str) -> float:
    v = parse_val(suite[scen]["agents"][agent]["p99 ms"])
    if v is None:
        raise BuildError(f"{SUITE}: {scen} / {agent} has no p99")
    return v.x


def _gap_cell(cell: str, bold: bool = False) -> str:
    v = parse_val(cell)
    if v is None:
        return "--"
    s = f"{v.tex(sign=True)}\\,$\\pm$\\,{v.ci_tex()}"
    return f"\\textbf{{{s}}}" if bold else s


def suite_table(suite: dict) -> str:
    rows = []
    for scen in [*NON_POISSON, "default_randomised"]:
        a = suite[scen]["agents"]
        ref = suite[scen]["meta"]["ref"]
        g_sw, g_pr = _gap(suite, scen, "util_switch"), _gap(suite, scen, "proposed")
        p99 = "/".join(parse_val(a[x]["p99 ms"]).tex() for x in ("timeout", "util_switch", "proposed"))
        rows.append(
            f"{tt(short(scen))} & {parse_val(a[ref]['cost/req']).tex()} & "
            f"{_gap_cell(a['util_switch']['gap'], g_sw < g_pr)} & "
            f"{_gap_cell(a['proposed']['gap'], g_pr <= g_sw)} & {p99} \\\\"
        )
    return (
        _table_header(
            SUITE, "non-Poisson scenarios, gap to the reference (timeout; optimum for default_randomised)"
        )
        + "\\begin{tabular}{@{}l r r r r@{}}\n\\toprule\n"
        "scenario & ref.\\ cost & util\\_switch (\\%) & proposed (\\%) & p99 (ms) \\\\\n"
        "\\midrule\n" + "\n".join(rows) + "\n\\bottomrule\n\\end{tabular}\n"
    )


def ablation_table(suite: dict) -> str:
    rows = []
    for scen in ABLATION_SCENARIOS:
        a = suite[scen]["agents"]
        cells = []
        for agent in ABLATION_AGENTS:
            v = parse_val(a[agent]["gap"])
            cells.append(v.tex(sign=True) if v is not None else "--")
        rows.append(f"{tt(short(scen))} & {suite[scen]['meta']['ref'][:3]}. & " + " & ".join(cells) + " \\\\")
    head = " & ".join(
        [
            "proposed",
            "\\makecell{no rate\\\\estim.}",
            "\\makecell{no model\\\\switching}",
            "\\makecell{tail\\\\guard}",
        ]
    )
    return (
        _table_header(SUITE, "ablations: cost gap (%) to each scenario's reference")
        + "\\begin{tabular}{@{}l l r r r r@{}}\n\\toprule\n"
        f"scenario & ref. & {head} \\\\\n\\midrule\n" + "\n".join(rows) + "\n\\bottomrule\n\\end{tabular}\n"
    )


# -- benchmarks/proposed_eval.py


def add_bench(bd: Build) -> None:
    data = json.loads(bd.read(BENCH_JSON))
    bd.bench = data
    for part in ("gap", "sensitivity", "tracking", "oracle", "table", "workers", "speed", "slo"):
        if part not in data:
            raise BuildError(f"{BENCH_JSON}: no '{part}' part")
    gap_agents = {
        "proposed": "Prop",
        "proposed(rate_estimation=false)": "PropNoRate",
        "timeout": "Timeout",
        "util_switch": "Switch",
    }
    rows, worst, upper = [], 0.0, 0.0
    for scen in POISSON_ONE_WORKER:
        entry = data["gap"][scen]
        stok = SCENARIOS[scen]
        cost = entry["optimal_cost"][0]
        bd.add(f"resBenchOptCost{stok}", fnum(cost, 4), BENCH_JSON, f"gap.{scen}.optimal_cost[0]")
        cells = []
        for agent, atok in gap_agents.items():
            g, ci = entry["gaps"][agent]
            bd.add(
                f"resBenchGap{atok}{stok}", fpct(g, 2, sign=True), BENCH_JSON, f"gap.{scen}.gaps.{agent}[0]"
            )
            bd.add(f"resBenchGapCi{atok}{stok}", fpct(ci, 2), BENCH_JSON, f"gap.{scen}.gaps.{agent}[1]")
            if agent == "proposed":
                worst = max(worst, abs(g))
                upper = max(upper, g + ci)
            if agent != "proposed(rate_estimation=false)":
                cells.append(f"{fpct(g, 2, sign=True)}\\,$\\pm$\\,{fpct(ci, 2)}")
        rate = bd.suite[scen]["meta"]["rate"]
        rows.append(f"{rate} & {fnum(cost, 4)} & " + " & ".join(cells) + f" & {entry['forced']} \\\\")
    bd.add("resBenchMaxAbsGapProp", fpct(worst, 2), BENCH_JSON, "max over gap.* of |gaps.proposed[0]|")
    bd.add("resBenchMaxUpperGapProp", fpct(upper, 2), BENCH_JSON, "max over gap.* of gaps.proposed[0] + [1]")
    forced = max(int(e["forced"]) for e in data["gap"].values())
    bd.add("resBenchForcedProp", str(forced), BENCH_JSON, "max over gap.* of forced")
    bd.tables["tab_poisson.tex"] = (
        _table_header(BENCH_JSON, "gap to the exact optimum on stationary Poisson loads (gap part)")
        + "\\begin{tabular}{@{}r r r r r r@{}}\n\\toprule\n"
        "$\\lambda$ (1/s) & opt.\\ cost & proposed (\\%) & timeout (\\%) & util\\_switch (\\%) & "
        "forced \\\\\n"
        "\\midrule\n" + "\n".join(rows) + "\n\\bottomrule\n\\end{tabular}\n"
    )

    sens = data["sensitivity"]
    near = max(abs(v[f]) for v in sens.values() for f in ("0.95", "1.05"))
    half = max(v["0.5"] for v in sens.values())
    double = max(v["2.0"] for v in sens.values())
    bd.add("resSensNear", fpct(near, 2), BENCH_JSON, "max over sensitivity.* of |f = 0.95|, |f = 1.05|")
    bd.add("resSensHalf", fpct(half, 0), BENCH_JSON, "max over sensitivity.* of f = 0.5")
    bd.add("resSensDouble", fpct(double, 0), BENCH_JSON, "max over sensitivity.* of f = 2.0")
    half_rate = max(sens, key=lambda r: sens[r]["0.5"])
    double_rate = max(sens, key=lambda r: sens[r]["2.0"])
    bd.add(
        "resSensHalfRate", f"{float(half_rate):.4g}", BENCH_JSON, "sensitivity: rate of the max at f = 0.5"
    )
    bd.add(
        "resSensDoubleRate",
        f"{float(double_rate):.4g}",
        BENCH_JSON,
        "sensitivity: rate of the max at f = 2.0",
    )

    track = data["tracking"]
    up = track["50->400"]
    bd.add(
        "resTrackUpTwenty",
        f"{1000 * statistics.median(up['settle20_s']):.0f}",
        BENCH_JSON,
        "tracking.50->400.settle20_s median (ms)",
    )
    bd.add(
        "resTrackUpFifty",
        f"{1000 * statistics.median(up['settle50_s']):.0f}",
        BENCH_JSON,
        "tracking.50->400.settle50_s median (ms)",
    )
    bd.add("resTrackUpRms", fpct(up["rms"], 1), BENCH_JSON, "tracking.50->400.rms")
    bd.add("resTrackDownRms", fpct(track["400->50"]["rms"], 0), BENCH_JSON, "tracking.400->50.rms")

    oracle = data["oracle"]
    for agent, tok in (
        ("timeout (tuned)", "Timeout"),
        ("util_switch (tuned)", "Switch"),
        ("proposed", "Prop"),
        ("proposed, true phase rate (oracle)", "Oracle"),
    ):
        o = oracle[agent]
        bd.add(f"resOracleGap{tok}", fpct(o["gap"][0], 1, sign=True), BENCH_JSON, f"oracle.{agent}.gap[0]")
        bd.add(f"resOracleTail{tok}", fnum(o["p99_ms"], 1), BENCH_JSON, f"oracle.{agent}.p99_ms")

    table = data["table"]["default"]
    bd.add("resTableRows", str(table["rows"]), BENCH_JSON, "table.default.rows")
    bd.add("resTableBuildS", fnum(table["build_s"], 1), BENCH_JSON, "table.default.build_s")
    bd.add("resThresholdMin", str(min(table["thresholds"])), BENCH_JSON, "min of table.default.thresholds")
    bd.add("resThresholdMax", str(max(table["thresholds"])), BENCH_JSON, "max of table.default.thresholds")

    for scen in ("multi_gpu", "multi_gpu_4"):
        w = data["workers"][scen]
        stok = SCENARIOS[scen]
        for agent, tok in (
            ("util_switch", "Switch"),
            ("proposed", "Prop"),
            ("proposed(worker_model=share)", "Share"),
        ):
            bd.add(
                f"resWorkersGap{tok}{stok}",
                fpct(w["gaps"][agent][0], 1, sign=True),
                BENCH_JSON,
                f"workers.{scen}.gaps.{agent}[0]",
            )

    speed = data["speed"]
    prop = [v["decisions_per_s"] for k, v in speed.items() if k.endswith("/proposed")]
    ratios = [
        v["decisions_per_s"] / speed[k.replace("/proposed", "/timeout")]["decisions_per_s"]
        for k, v in speed.items()
        if k.endswith("/proposed")
    ]
    bd.add("resSpeedPropMin", fkilo(min(prop)), BENCH_JSON, "min over speed.*/proposed of decisions_per_s")
    bd.add("resSpeedPropMax", fkilo(max(prop)), BENCH_JSON, "max over speed.*/proposed of decisions_per_s")
    bd.add("resSpeedRatioMin", fnum(min(ratios), 2), BENCH_JSON, "min of proposed / timeout decisions_per_s")
    bd.add("resSpeedRatioMax", fnum(max(ratios), 2), BENCH_JSON, "max of proposed / timeout decisions_per_s")

    slo = data["slo"]
    for agent, tok in (
        ("timeout", "Timeout"),
        ("util_switch", "Switch"),
        ("proposed", "Prop"),
        ("proposed(slo_guard=false)", "PropNoGuard"),
        ("proposed(rate_estimation=false)", "PropNoRate"),
        ("proposed(model_switching=false)", "PropNoSwitch"),
    ):
        bd.add(f"resSloCost{tok}", fnum(slo[agent]["cost"][0], 4), BENCH_JSON, f"slo.{agent}.cost[0]")
        bd.add(f"resSloGap{tok}", fpct(slo[agent]["gap"][0], 1, sign=True), BENCH_JSON, f"slo.{agent}.gap[0]")

    # Only in the Markdown of the same command: the SLO table's p99 and attainment, the trace's
    # index of dispersion.
    md = bd.read(BENCH_MD)
    for heading, header, rows_ in md_tables(md):
        if heading.startswith("SLO scenario") and header[0] == "agent":
            for row in rows_:
                tok = {
                    "timeout": "Timeout",
                    "util_switch": "Switch",
                    "proposed": "Prop",
                    "proposed(slo_guard=false)": "PropNoGuard",
                }.get(row[0])
                if tok:
                    cols = dict(zip(header, row, strict=False))
                    bd.add(f"resSloTail{tok}", cols["p99 ms"], BENCH_MD, f"SLO scenario / {row[0]} / p99 ms")
                    bd.add(
                        f"resSloAttain{tok}",
                        cols["SLO attainment"],
                        BENCH_MD,
                        f"SLO scenario / {row[0]} / SLO attainment",
                    )
        if heading == "Rate estimation" and header[0] == "window (s)":
            cols = dict(zip(header, rows_[0], strict=False))
            bd.add(
                "resDispersionOneSec", cols["1"], BENCH_MD, "Rate estimation / variance / mean at window 1 s"
            )
    for name in ("resSloTailProp", "resDispersionOneSec"):
        if name not in bd.results:
            raise BuildError(f"{BENCH_MD}: could not read {name}")


def add_design(bd: Build) -> None:
    data = json.loads(bd.read(DESIGN_JSON))["design"]
    for key, (gap, _ci) in ((k, v["gap"]) for k, v in data.items()):
        scen, variant = key.split("/", 1)
        stok, vtok = SCENARIOS.get(scen), DESIGN_VARIANTS.get(variant)
        if stok and vtok:
            bd.add(f"resDesign{vtok}{stok}", fpct(gap, 1, sign=True), DESIGN_JSON, f"design.{key}.gap[0]")


def add_env_speed(bd: Build) -> None:
    data = json.loads(bd.read(ENV_SPEED))
    r = data["ratios_to_cartpole"]
    bd.add("resEnvRatio", fnum(r["env_steps_per_s"], 2), ENV_SPEED, "ratios_to_cartpole.env_steps_per_s")
    bd.add(
        "resSimRatio",
        fnum(r["sim_requests_per_s_default"], 1),
        ENV_SPEED,
        "ratios_to_cartpole.sim_requests_per_s_default",
    )
    best = data["best"]
    bd.add("resEnvSteps", fkilo(best["env_steps_per_s"]), ENV_SPEED, "best.env_steps_per_s")
    bd.add(
        "resSimRequests",
        fkilo(best["sim_requests_per_s_default"]),
        ENV_SPEED,
        "best.sim_requests_per_s_default",
    )


# -- verification (verify.py writes Markdown)


def _search(pattern: str, text: str, what: str, source: str = VERIFICATION) -> re.Match:
    m = re.search(pattern, text)
    if not m:
        raise BuildError(f"{source}: cannot find {what} (pattern {pattern!r})")
    return m


def add_verification(bd: Build) -> None:
    names = [
        ("resVerWallS", "total wall time (s)"),
        ("resVerCpuS", "total CPU time (s)"),
        ("resVerTickMs", "tick (ms)"),
        ("resVerRate", "rate (1/s)"),
        ("resVerQueueCap", "queue cap"),
        ("resVerMaxWaitTicks", "max_wait (ticks)"),
        ("resVerShieldStates", "(a) MDP with the shield / states"),
        ("resVerShieldTransitions", "(a) MDP with the shield / transitions"),
        ("resVerShieldBuildS", "(a) MDP with the shield / build s"),
        ("resVerShieldPmax", "(a) MDP with the shield / Pmax"),
        ("resVerNoShieldStates", "(a) MDP without the shield / states"),
        ("resVerNoShieldPmax", "(a) MDP without the shield / Pmax"),
        ("resVerOptCost", "(b) Rmin[LRA] per request"),
        ("resVerOptCheckS", "(b) model checking s"),
        ("resVerSmdpCost", "(b) SMDP optimum per request"),
        ("resVerTickGap", "(b) relative gap of the discrete optimum (%)"),
        ("resVerTickGapAbs", "(b) |relative gap of the discrete optimum| (%)"),
        ("resVerAgreement", "(b) decisions in agreement (%)"),
        ("resVerTickSimDiff", "summary: cross-check, tick simulator (%)"),
        ("resVerTickSimTol", "summary: tick simulator tolerance (%)"),
        ("resVerEventSimDiff", "summary: cross-check, event simulator (%)"),
        ("resVerPolicies", "(c) number of policies checked as DTMCs"),
    ]
    keys = dict(names)
    path = bd.root / VERIFICATION
    if not bd.available(VERIFICATION):
        bd.present[VERIFICATION] = False
        for name, key in names:
            bd.add(name, PENDING, VERIFICATION, f"{key} -- pending: file absent")
        bd.tables["tab_verification.tex"] = (
            _table_header(VERIFICATION, "pending: file absent") + PENDING + "\n"
        )
        return
    bd.present[VERIFICATION] = True
    text = path.read_text(encoding="utf-8")
    s = VERIFICATION
    bd.add(
        "resVerWallS",
        _search(r"([\d.]+) s wall time", text, "the wall time").group(1),
        s,
        keys["resVerWallS"],
    )
    cpu = re.search(r"([\d.]+) s CPU time", text)
    bd.add("resVerCpuS", cpu.group(1) if cpu else PENDING, s, keys["resVerCpuS"])
    m = _search(
        r"Discrete-time model: tick ([\d.]+) ms, rate ([\d.]+)/s .*?queue cap (\d+), max_wait (\d+) ticks",
        text,
        "the model line",
    )
    for name, value in zip(
        ("resVerTickMs", "resVerRate", "resVerQueueCap", "resVerMaxWaitTicks"), m.groups(), strict=True
    ):
        bd.add(name, value, s, keys[name])
    tables = md_tables(text)
    safety = next((t for t in tables if t[0].startswith("(a)")), None)
    if safety is None or len(safety[2]) < 2:
        raise BuildError(f"{s}: no (a) table with two rows")
    header, rows = safety[1], safety[2]
    shield = dict(zip(header, rows[0], strict=False))
    noshield = dict(zip(header, rows[1], strict=False))
    pcol = next(h for h in header if h.startswith("Pmax"))
    bd.add("resVerShieldStates", fint(int(shield["states"])), s, keys["resVerShieldStates"])
    bd.add("resVerShieldTransitions", fint(int(shield["transitions"])), s, keys["resVerShieldTransitions"])
    bd.add("resVerShieldBuildS", shield["build s"], s, keys["resVerShieldBuildS"])
    bd.add("resVerShieldPmax", shield[pcol], s, keys["resVerShieldPmax"])
    bd.add("resVerNoShieldStates", fint(int(noshield["states"])), s, keys["resVerNoShieldStates"])
    bd.add("resVerNoShieldPmax", noshield[pcol], s, keys["resVerNoShieldPmax"])
    bd.add(
        "resVerOptCost",
        _search(r"\*\*([\d.]+) per request\*\*", text, "(b) cost").group(1),
        s,
        keys["resVerOptCost"],
    )
    bd.add(
        "resVerOptCheckS",
        _search(r"model checking ([\d.]+) s", text, "(b) time").group(1),
        s,
        keys["resVerOptCheckS"],
    )
    bd.add(
        "resVerSmdpCost",
        _search(r"SMDP optimum of `agents/optimal.py`[^:]*: ([\d.]+) per request", text, "(b) SMDP").group(1),
        s,
        keys["resVerSmdpCost"],
    )
    bd.add(
        "resVerTickGap",
        _minus(_search(r"Relative gap of the discrete optimum: ([+-][\d.]+)%", text, "(b) gap").group(1)),
        s,
        keys["resVerTickGap"],
    )
    tick_gap = _search(r"Relative gap of the discrete optimum: ([+-][\d.]+)%", text, "(b) gap").group(1)
    bd.add("resVerTickGapAbs", tick_gap.lstrip("+-"), s, keys["resVerTickGapAbs"])
    bd.add(
        "resVerAgreement",
        _search(r"same decision in ([\d.]+)%", text, "(b) agreement").group(1),
        s,
        keys["resVerAgreement"],
    )
    summary = next((t for t in tables if t[0] == "Summary"), None)
    if summary is None:
        raise BuildError(f"{s}: no Summary table")
    rows_by_check = {r[0]: r for r in summary[2]}
    tick = rows_by_check.get("cross-check, tick simulator")
    event = rows_by_check.get("cross-check, event simulator")
    if tick is None or event is None:
        raise BuildError(f"{s}: Summary lacks the cross-check rows")
    m = _search(r"([\d.]+)% \(tolerance ([\d.]+)%\)", tick[2], "the tick-simulator difference")
    bd.add("resVerTickSimDiff", m.group(1), s, keys["resVerTickSimDiff"])
    bd.add("resVerTickSimTol", m.group(2), s, keys["resVerTickSimTol"])
    bd.add(
        "resVerEventSimDiff",
        _search(r"([\d.]+)%", event[1], "the event-simulator difference").group(1),
        s,
        keys["resVerEventSimDiff"],
    )

    dtmc = next((t for t in tables if t[0].startswith("(c)") and t[1][0] == "policy"), None)
    if dtmc is None:
        raise BuildError(f"{s}: no (c) table")
    bd.add("resVerPolicies", str(len(dtmc[2])), s, keys["resVerPolicies"])
    bd.tables["tab_verification.tex"] = verification_table(shield, noshield, pcol, dtmc[1], dtmc[2])
    # per-policy figures of the DTMC table, for the text
    for row in dtmc[2]:
        cols = dict(zip(dtmc[1], row, strict=False))
        tok = {
            "greedy": "Greedy",
            "static": "Static",
            "timeout": "Timeout",
            "util_switch": "Switch",
            "smdp_optimum": "Smdp",
            "storm_optimum": "Storm",
            "proposed(rate_estimation=false)": "Prop",
        }.get(row[0])
        if tok:
            bd.add(f"resVerLatency{tok}", cols["latency ms"], s, f"(c) {row[0]} / latency ms")
            bd.add(f"resVerCost{tok}", cols["cost/request"], s, f"(c) {row[0]} / cost/request")
            bd.add(f"resVerUtil{tok}", cols["utilisation"], s, f"(c) {row[0]} / utilisation")


def _policy_label(name: str) -> str:
    return {
        "smdp_optimum": "SMDP optimum",
        "storm_optimum": "Storm optimum",
        "proposed(rate_estimation=false)": "proposed$^\\ast$",
        "util_switch": "util\\_switch",
    }.get(name, name.replace("_", "\\_").replace("%", "\\%").replace("&", "\\&"))


def _count(cell: str) -> str:
    """A state count with thousands separators; other cells ('-', 'skipped') as they are."""
    return fint(int(cell)) if cell.strip().isdigit() else cell.replace("_", "\\_")


def _sci(cell: str) -> str:
    m = re.fullmatch(r"([\d.]+)e([+-]\d+)(\*?)", cell.strip())
    if m:
        return f"${m.group(1)}\\cdot 10^{{{int(m.group(2))}}}{'^{*}' if m.group(3) else ''}$"
    return cell.replace("*", "$^{*}$")


def verification_table(
    shield: dict, noshield: dict, pcol: str, header: list[str], rows: list[list[str]]
) -> str:
    out = [
        _table_header(VERIFICATION, "Storm results: (a) timeout safety, (c) policies as DTMCs"),
        "\\begin{tabular}{@{}l r r r r r@{}}\n\\toprule\n",
        "\\multicolumn{6}{@{}l}{(a) MDP over every scheduler: $P_{\\max}$[F violation]} \\\\\n",
        "model & states & transitions & build (s) & & $P_{\\max}$ \\\\\n\\midrule\n",
        f"with the shield & {fint(int(shield['states']))} & {fint(int(shield['transitions']))} & "
        f"{shield['build s']} & & {shield[pcol]} \\\\\n",
        f"without & {fint(int(noshield['states']))} & {fint(int(noshield['transitions']))} & "
        f"{noshield['build s']} & & {noshield[pcol]} \\\\\n\\midrule\n",
        "\\multicolumn{6}{@{}l}{(c) one policy as a DTMC: long-run figures} \\\\\n",
        "policy & states & util. & latency (ms) & cost/req. & $P$(overflow) \\\\\n\\midrule\n",
    ]
    for row in rows:
        c = dict(zip(header, row, strict=False))
        out.append(
            f"{_policy_label(row[0])} & {_count(c['states'])} & {_sci(c['utilisation'])} & "
            f"{_sci(c['latency ms'])} & {_sci(c['cost/request'])} & {_sci(c['P(overflow)'])} \\\\\n"
        )
    out.append("\\bottomrule\n\\end{tabular}\n")
    return "".join(out)


# -- the UPPAAL models (generated files)


def _queries(text: str) -> int:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("//"))


def add_uppaal(bd: Build) -> None:
    import xml.etree.ElementTree as ET

    sym = bd.read(UPPAAL_XML)
    root = ET.fromstring(sym.split("\n", 2)[2] if sym.startswith("<?xml") else sym)
    templates = {t.findtext("name"): t for t in root.findall("template")}
    bd.add("resUppaalTemplates", str(len(templates)), UPPAAL_XML, "number of <template> elements")
    sched = templates.get("Scheduler")
    if sched is None:
        raise BuildError(f"{UPPAAL_XML}: no Scheduler template")
    bd.add("resUppaalSchedLocations", str(len(sched.findall("location"))), UPPAAL_XML, "Scheduler locations")
    bd.add(
        "resUppaalSchedTransitions",
        str(len(sched.findall("transition"))),
        UPPAAL_XML,
        "Scheduler transitions",
    )
    decl = root.findtext("declaration") or ""
    m = _search(r"Scheduler: timeout\(B=(\d+),T=(\d+)ms", decl, "the scheduler", UPPAAL_XML)
    for name, value in zip(("resUppaalB", "resUppaalT"), m.groups(), strict=True):
        bd.add(name, value, UPPAAL_XML, f"declaration: scheduler comment ({name[9:]})")
    unit = _search(r"Time unit: ([\d.]+) ms", decl, "the time unit", UPPAAL_XML).group(1)
    bd.add("resUppaalUnit", unit, UPPAAL_XML, "declaration: time unit (ms)")
    bd.add("resUppaalQueries", str(_queries(bd.read(UPPAAL_Q))), UPPAAL_Q, "number of queries")
    finite = str(_queries(bd.read(UPPAAL_FINITE_Q)))
    bd.add("resUppaalFiniteQueries", finite, UPPAAL_FINITE_Q, "number of queries")
    bd.read(UPPAAL_FINITE_XML)  # must exist


def add_ta(bd: Build) -> None:
    """Timed-automata checks with TChecker (pending when the JSON is absent)."""
    names = [
        ("resTaSchedulers", "schedulers checked"),
        ("resTaCalls", "TChecker calls in all"),
        ("resTaStageS", "wall time of the stage (s)"),
        ("resTaWaitTriton", "Triton-like timeout: longest wait with a worker idle (ms)"),
        ("resTaBurstMax", "largest burst b"),
        ("resTaLatencyMin", "Triton-like timeout: worst-case latency at b = 1 (ms)"),
        ("resTaLatencyMax", "Triton-like timeout: worst-case latency at the largest b (ms)"),
        ("resTaQueueMax", "Triton-like timeout: queue bound at the largest b"),
    ]
    if not bd.available(TA_JSON):
        for name, key in names:
            bd.add(name, PENDING, TA_JSON, f"{key} -- pending: file absent")
        return
    data = json.loads(bd.read(TA_JSON))
    rows = data["results"]
    triton = [r for r in rows if r["scheduler"].startswith("Triton-like")]
    if not triton:
        raise BuildError(f"{TA_JSON}: no Triton-like timeout rows")
    bursts = data["settings"]["bursts"]
    last = f"b={max(bursts)},"

    def value(prop: str, arrivals: str = "") -> float:
        row = next((r for r in triton if r["property"] == prop and arrivals in r["arrivals"] + ","), None)
        if row is None or row["value"] is None:
            raise BuildError(f"{TA_JSON}: no value for {prop} {arrivals}")
        return row["value"]

    values = [
        str(len(data["schedulers"]) + len(data["same_as"])),
        str(sum(r["tchecker_calls"] for r in rows)),
        f"{data['seconds']:.0f}",
        f"{value('timeout safety'):g}",
        str(max(bursts)),
        f"{value('worst-case latency', 'b=1,'):g}",
        f"{value('worst-case latency', last):g}",
        f"{value('queue bound', last):g}",
    ]
    for (name, key), v in zip(names, values, strict=True):
        bd.add(name, v, TA_JSON, key)


# -- RL learning curves (optional)


def _rate_token(rate: float) -> str:
    return f"{rate:g}"


RL_KEYS = {
    "resRLSteps": "meta.n_timesteps",
    "resRLRuns": "number of runs",
    "resRLRates": "rates of the runs",
    "resRLAlgos": "algorithms of the runs",
    "resRLEvalSeeds": "len(meta.eval_seeds)",
    "resRLEvalHorizon": "meta.eval_horizon_s",
    "resRLEvalEvery": "timesteps between evaluations (first curve point)",
    "resRLSlowestTwo": "max over runs of first_timesteps_within 2%",
    "resRLAssessSeeds": "number of assessment seeds (runs[*].assessment.seeds, first-last)",
    "resRLAssessHorizon": "runs[*].assessment.horizon_s",
    "resRLFinalMin": "min over runs of the final model's gap (%)",
    "resRLWorstFinal": "max over runs of the final model's gap (%)",
    "resRLWorstFinalCi": "95% CI of that gap (%)",
    "resRLWorstAlgo": "algo of that run",
    "resRLWorstRate": "rate of that run",
    "resRLBestModelMax": "max over runs of the best model's gap (%)",
    "resRLWithinOne": "runs whose final model's gap <= 1%",
    "resRLAboveOpt": "runs whose final model's gap - CI > 0 (measurably above the optimum)",
    "resRLNotAbove": "runs whose final model's gap <= the tuned timeout's gap at their rate",
    "resRLTimeoutGapMax": "max over runs of the tuned timeout's gap to the optimum (%)",
}


def _rl_assessment(run: dict, refs: dict) -> dict:
    """Gaps (value, CI) of the final and best models and of the tuned timeout, from the run's
    fresh-seed assessment when learning.py wrote one, else from its last evaluation."""
    a = run.get("assessment")
    if a:
        return {
            "final": tuple(a["final_model_gap"]),
            "best": tuple(a["best_model_gap"]),
            "timeout": tuple(a["timeout_gap"]),
            "optimal_cost": a["optimal_cost_per_request"],
            "seeds": a["seeds"][-1] - a["seeds"][0] + 1,
            "horizon_s": a["horizon_s"],
            "source": "assessment",
        }
    ref = refs[_rate_token(run["rate_per_s"])]
    return {
        "final": (run["final_gap"], 0.0),
        "best": (run["best_gap"], 0.0),
        "timeout": (ref["timeout_cost_per_request"] / ref["optimal_cost_per_request"] - 1, 0.0),
        "optimal_cost": ref["optimal_cost_per_request"],
        "seeds": None,
        "horizon_s": None,
        "source": "curve",
    }


def add_learning(bd: Build) -> None:
    s = LEARNING
    if not bd.available(LEARNING):
        bd.present[LEARNING] = False
        for name, key in RL_KEYS.items():
            bd.add(name, PENDING, s, f"{key} -- pending: file absent")
        bd.tables["tab_rl.tex"] = _table_header(s, "pending: file absent") + PENDING + "\n"
        return
    data = json.loads((bd.root / LEARNING).read_text(encoding="utf-8"))
    runs = data.get("runs") or []
    if not runs:
        raise BuildError(f"{s}: no runs")
    bd.present[LEARNING] = True
    bd.learning = data
    meta = data.get("meta", {})
    runs = sorted(runs, key=lambda r: (r["rate_per_s"], r["algo"]))
    assess = [_rl_assessment(r, data.get("references", {})) for r in runs]
    how = assess[0]["source"]

    def put(name: str, value: str) -> None:
        bd.add(
            name, value, s, RL_KEYS[name] + ("" if how == "assessment" else " [from the evaluation curve]")
        )

    put("resRLSteps", fint(meta.get("n_timesteps") or max(c["timesteps"] for r in runs for c in r["curve"])))
    put("resRLRuns", str(len(runs)))
    put("resRLRates", ", ".join(_rate_token(r) for r in sorted({r["rate_per_s"] for r in runs})))
    put("resRLAlgos", " and ".join(ALGO_NAMES.get(a, a) for a in sorted({r["algo"] for r in runs})))
    put("resRLEvalSeeds", str(len(meta.get("eval_seeds", []))))
    put("resRLEvalHorizon", f"{meta.get('eval_horizon_s', 0):g}")
    put("resRLEvalEvery", fint(min(c["timesteps"] for r in runs for c in r["curve"])))
    firsts = [(r.get("first_timesteps_within") or {}).get("2%") for r in runs]
    put("resRLSlowestTwo", fint(max(firsts)) if all(f is not None for f in firsts) else "--")
    put("resRLAssessSeeds", str(assess[0]["seeds"]) if assess[0]["seeds"] else "--")
    put("resRLAssessHorizon", f"{assess[0]['horizon_s']:g}" if assess[0]["horizon_s"] else "--")
    finals = [a["final"] for a in assess]
    worst = max(range(len(runs)), key=lambda i: finals[i][0])
    put("resRLFinalMin", fpct(min(g for g, _ in finals), 2, sign=True))
    put("resRLWorstFinal", fpct(finals[worst][0], 2, sign=True))
    put("resRLWorstFinalCi", fpct(finals[worst][1], 2))
    put("resRLWorstAlgo", ALGO_NAMES.get(runs[worst]["algo"], runs[worst]["algo"]))
    put("resRLWorstRate", _rate_token(runs[worst]["rate_per_s"]))
    put("resRLBestModelMax", fpct(max(a["best"][0] for a in assess), 2, sign=True))
    put("resRLWithinOne", str(sum(g <= 0.01 for g, _ in finals)))
    put("resRLAboveOpt", str(sum(g - ci > 0 for g, ci in finals)))
    put("resRLNotAbove", str(sum(a["final"][0] <= a["timeout"][0] for a in assess)))
    put("resRLTimeoutGapMax", fpct(max(a["timeout"][0] for a in assess), 2, sign=True))

    def gap(v: tuple) -> str:
        return f"{fpct(v[0], 2, sign=True)}\\,$\\pm$\\,{fpct(v[1], 2)}"

    rows = []
    for r, a in zip(runs, assess, strict=True):
        within = (r.get("first_timesteps_within") or {}).get("2%")
        rows.append(
            f"{ALGO_NAMES.get(r['algo'], r['algo'])} & {_rate_token(r['rate_per_s'])} & "
            f"{fnum(a['optimal_cost'], 4)} & {gap(a['final'])} & {gap(a['best'])} & "
            f"{fint(within) if within is not None else '--'} & {gap(a['timeout'])} \\\\"
        )
    bd.tables["tab_rl.tex"] = (
        _table_header(s, f"RL runs: gap of the cost per request to the optimum (from the {how})")
        + "\\begin{tabular}{@{}l r r r r r r@{}}\n\\toprule\n"
        "algo & $\\lambda$ & opt.\\ cost & final model (\\%) & best model (\\%) & steps to 2\\% & "
        "timeout (\\%) \\\\\n\\midrule\n" + "\n".join(rows) + "\n\\bottomrule\n\\end{tabular}\n"
    )


# ------------------------------------------------------------------------------------ assembling


def compute(root: Path = REPO, only_committed: bool = True) -> Build:
    """Read every results file and compute all macros and tables (no figures, no LaTeX).

    :param only_committed: treat an optional results file that git does not track as absent, so
        that the generated files are those of a clean checkout (ignored outside a git work tree).
    """
    bd = Build(root)
    if only_committed:
        out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
        if out.returncode == 0 and (root / ".git").exists():
            bd.tracked = set(out.stdout.splitlines())
    add_config(bd)
    add_suite(bd)
    add_bench(bd)
    add_design(bd)
    add_env_speed(bd)
    add_verification(bd)
    add_uppaal(bd)
    add_ta(bd)
    add_learning(bd)
    return bd


MACRO_USE = re.compile(r"\\(res[A-Z][A-Za-z]*)")


def used_macros(paths: Iterable[Path] = TEX_SOURCES) -> set[str]:
    """Names of the result macros used in the .tex sources (comments excluded)."""
    names: set[str] = set()
    for path in paths:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                names.update(MACRO_USE.findall(re.sub(r"(?<!\\)%.*", "", line)))
    return names


def render_numbers(bd: Build, used: set[str]) -> str:
    """numbers.tex: the switches for the optional sources, then one macro per quoted number."""
    unknown = sorted(used - set(bd.results))
    if unknown:
        raise BuildError(
            "the .tex sources use undefined result macros: " + ", ".join("\\" + n for n in unknown)
        )
    lines = [
        f"% Generated by {BUILD_COMMAND} from the results files named on each line. Do not edit.",
        "% Each macro is one number quoted in docs/report/report.tex or docs/slides/slides.tex.",
    ]
    for rel, flag in OPTIONAL.items():
        have = bd.present.get(rel, False)
        state = ("true", "present") if have else ("false", "absent")
        lines.append(f"\\newif\\ifhave{flag}\\have{flag}{state[0]} % {rel} {state[1]}")
    for name in sorted(used):
        r = bd.results[name]
        lines.append(f"\\newcommand{{\\{name}}}{{{r.value}}} % {r.source}: {r.key}")
    return "\n".join(lines) + "\n"


def generated_texts(bd: Build, used: set[str] | None = None) -> dict[str, str]:
    """File name in generated/ -> text, for numbers.tex and every table."""
    out = {"numbers.tex": render_numbers(bd, used_macros() if used is None else used)}
    out.update(bd.tables)
    return out


# ------------------------------------------------------------------------------------ figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 7,
            "axes.titlesize": 7,
            "axes.labelsize": 7,
            "legend.fontsize": 6,
            "xtick.labelsize": 6,
            "ytick.labelsize": 6,
            "font.family": "serif",
            "pdf.fonttype": 42,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "lines.linewidth": 1.0,
            "lines.markersize": 3,
        }
    )
    return plt


COLOURS = {
    "greedy": "#999999",
    "static": "#bbbbbb",
    "aimd": "#777777",
    "timeout": "tab:red",
    "util_switch": "tab:orange",
    "optimal": "black",
    "proposed": "tab:blue",
    "proposed(rate_estimation=false)": "tab:cyan",
    "proposed(model_switching=false)": "tab:purple",
    "proposed(guard_slo_ms=80,guard_penalty=0.2)": "tab:green",
}
PLAIN_LABELS = {k: v.replace("\\_", "_") for k, v in AGENT_LABELS.items()}


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="pdf", bbox_inches="tight", metadata={"CreationDate": None, "Creator": None})


def fig_cost_vs_rate(bd: Build, plt, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(3.4, 2.2))
    rates = [float(bd.suite[s]["meta"]["rate"]) for s in POISSON_ONE_WORKER]
    markers = {
        "greedy": "v",
        "static": "s",
        "aimd": "^",
        "timeout": "o",
        "util_switch": "D",
        "optimal": "x",
        "proposed": ".",
    }
    for agent, marker in markers.items():
        ys = [parse_val(bd.suite[s]["agents"][agent]["cost/req"]).x for s in POISSON_ONE_WORKER]
        ax.plot(
            rates,
            ys,
            marker=marker,
            color=COLOURS[agent],
            label=PLAIN_LABELS[agent],
            ls="--" if agent == "optimal" else "-",
            zorder=3 if agent in ("optimal", "proposed") else 2,
        )
    for letter, model in zip("ABC", ("LLM-1", "LLM-2", "LLM-3"), strict=True):
        cap = float(bd.results[f"resCap{letter}"].value)
        ax.axvline(cap, color="k", ls=":", lw=0.6)
        ax.text(cap, 0.0115, f" {model}\n max", fontsize=5, va="bottom")
    ax.set_yscale("log")
    ax.set_ylim(0.01, 8)
    ax.set_xlabel("Poisson arrival rate $\\lambda$ (requests/s), one worker")
    ax.set_ylabel("cost per request")
    ax.legend(ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, columnspacing=1.0)
    _save(fig, path)
    plt.close(fig)


def fig_gaps(bd: Build, plt, path: Path) -> None:
    scen = [*NON_POISSON, "default_randomised"]
    agents = ["util_switch", "proposed", "proposed(rate_estimation=false)"]
    fig, ax = plt.subplots(figsize=(3.4, 2.3))
    width = 0.27
    for k, agent in enumerate(agents):
        vals = [parse_val(bd.suite[s]["agents"][agent]["gap"]) for s in scen]
        xs = [i + (k - 1) * width for i in range(len(scen))]
        ax.bar(
            xs,
            [v.x for v in vals],
            width,
            yerr=[v.ci for v in vals],
            color=COLOURS[agent],
            label=PLAIN_LABELS[agent],
            error_kw={"elinewidth": 0.6, "capsize": 1.2},
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(scen)))
    ax.set_xticklabels([short(s) for s in scen], rotation=35, ha="right")
    ax.set_ylabel("cost gap to the reference (%)")
    ax.set_ylim(-25, 25)
    ax.legend(loc="upper left", ncol=1)
    _save(fig, path)
    plt.close(fig)


def fig_pareto(bd: Build, plt, path: Path) -> None:
    scen = ["bursty", "diurnal", "azure_trace", "multi_gpu_4"]
    agents = [
        "timeout",
        "util_switch",
        "proposed",
        "proposed(rate_estimation=false)",
        "proposed(model_switching=false)",
        "proposed(guard_slo_ms=80,guard_penalty=0.2)",
    ]
    fig, axes = plt.subplots(1, len(scen), figsize=(7.0, 1.55))
    for ax, s in zip(axes, scen, strict=True):
        for agent in agents:
            row = bd.suite[s]["agents"][agent]
            x = parse_val(row["p99 ms"]).x
            y = parse_val(row["quality"]).x
            ax.scatter([x], [y], color=COLOURS[agent], s=14, label=PLAIN_LABELS[agent], zorder=3)
        ax.set_title(s)
        ax.set_xlabel("p99 latency (ms)")
    axes[0].set_ylabel("mean quality")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=6, bbox_to_anchor=(0.5, 1.12), frameon=False)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def fig_sensitivity(bd: Build, plt, path: Path) -> None:
    sens = bd.bench["sensitivity"]
    rates = sorted(sens, key=float)
    factors = ["0.5", "0.8", "0.9", "1.1", "1.25", "2.0"]
    fig, ax = plt.subplots(figsize=(3.4, 1.65))
    for f in factors:
        ax.plot(
            [float(r) for r in rates],
            [max(100 * sens[r][f], 1e-3) for r in rates],
            marker="o",
            label=f"$f = {float(f):g}$",
        )
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 50)
    ax.set_xlabel("true Poisson rate $r$ (requests/s)")
    ax.set_ylabel("extra cost (%)")
    ax.legend(ncol=3, loc="lower center")
    _save(fig, path)
    plt.close(fig)


def fig_learning(bd: Build, plt, path: Path) -> None:
    data = bd.learning
    assert data is not None
    rates = sorted({r["rate_per_s"] for r in data["runs"]})
    colours = dict(zip(rates, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False))
    styles = {"ppo": "-", "dqn": "--", "a2c": "-.", "maskable_ppo": ":"}
    fig, ax = plt.subplots(figsize=(3.4, 2.0))
    for run in sorted(data["runs"], key=lambda r: (r["rate_per_s"], r["algo"])):
        opt = data["references"][_rate_token(run["rate_per_s"])]["optimal_cost_per_request"]
        xs = [c["timesteps"] for c in run["curve"]]
        ax.plot(
            xs,
            [100 * (c["cost_per_request"] / opt - 1) for c in run["curve"]],
            marker="o",
            ms=2,
            color=colours.get(run["rate_per_s"], "k"),
            ls=styles.get(run["algo"], "-"),
            label=f"{ALGO_NAMES.get(run['algo'], run['algo'])}, {run['rate_per_s']:g}/s",
        )
    for rate in rates:
        ref = data["references"][_rate_token(rate)]
        gap = 100 * (ref["timeout_cost_per_request"] / ref["optimal_cost_per_request"] - 1)
        ax.axhline(gap, color=colours.get(rate, "k"), ls=":", lw=0.8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=1, linscale=2)
    top = max(
        100
        * (
            c["cost_per_request"]
            / data["references"][_rate_token(r["rate_per_s"])]["optimal_cost_per_request"]
            - 1
        )
        for r in data["runs"]
        for c in r["curve"]
    )
    ticks = [t for t in (-1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50, 100) if t <= max(top, 1) * 1.5]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}" for t in ticks])
    ax.set_ylim(-1, max(top, 1) * 1.6)
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("gap to the optimum (%)")
    ax.legend(ncol=2, loc="lower left")
    _save(fig, path)
    plt.close(fig)


def make_figures(bd: Build, outdir: Path) -> list[Path]:
    plt = _plt()
    jobs: list[tuple[str, Callable]] = [
        ("fig_cost_vs_rate.pdf", fig_cost_vs_rate),
        ("fig_gaps.pdf", fig_gaps),
        ("fig_pareto.pdf", fig_pareto),
        ("fig_sensitivity.pdf", fig_sensitivity),
    ]
    if bd.learning is not None:
        jobs.append(("fig_learning.pdf", fig_learning))
    else:
        stale = outdir / "fig_learning.pdf"
        if stale.exists():
            stale.unlink()
    written = []
    for name, fn in jobs:
        fn(bd, plt, outdir / name)
        written.append(outdir / name)
    return written


# ------------------------------------------------------------------------------------ LaTeX


def latexmk(directory: Path, main: str) -> int:
    """``latexmk -pdf`` in ``directory`` (build files in ``build/``); copies the PDF next to the
    source and returns its page count (read from the log)."""
    if shutil.which("latexmk") is None:
        raise BuildError("latexmk is not installed; use --no-pdf to write only generated/")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1735689600", FORCE_SOURCE_DATE="1")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build", main]
    proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True)
    stem = Path(main).stem
    log = directory / "build" / f"{stem}.log"
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else proc.stdout[-3000:]
        raise BuildError(f"latexmk failed on {directory / main}:\n{tail}")
    shutil.copyfile(directory / "build" / f"{stem}.pdf", directory / f"{stem}.pdf")
    m = re.search(r"Output written on .*?\((\d+) pages?", log.read_text(errors="replace"))
    return int(m.group(1)) if m else -1


def write_generated(bd: Build, outdir: Path = GENERATED) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated_texts(bd).items():
        path = outdir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(bd: Build, outdir: Path = GENERATED) -> list[str]:
    """Generated files that differ from what the results files give now."""
    stale = []
    for name, text in generated_texts(bd).items():
        path = outdir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(REPO)))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-pdf", action="store_true", help="write generated/ only; do not run LaTeX")
    parser.add_argument("--no-figures", action="store_true", help="do not redraw the figures")
    parser.add_argument("--no-slides", action="store_true", help="build the report only")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if generated/*.tex are stale; write nothing"
    )
    parser.add_argument(
        "--include-untracked",
        action="store_true",
        help="also read optional results files that git does not track yet (a preview; the test "
        "compares the generated files with the committed results only)",
    )
    args = parser.parse_args(argv)
    try:
        bd = compute(only_committed=not args.include_untracked)
        if args.check:
            stale = check(bd)
            for path in stale:
                print(f"stale: {path}")
            print("generated files are up to date" if not stale else f"run: {BUILD_COMMAND}")
            return 1 if stale else 0
        for rel, flag in OPTIONAL.items():
            if not bd.present.get(rel):
                why = "not committed (--include-untracked to preview)" if (REPO / rel).is_file() else "absent"
                print(f"note: {rel} is {why}; its numbers are marked [pending] (\\ifhave{flag} is false)")
        written = write_generated(bd)
        if not args.no_figures:
            written += make_figures(bd, GENERATED)
        print(
            f"wrote {len(written)} files to {GENERATED.relative_to(REPO)}/ "
            f"({len(used_macros())} numbers from {len({r.source for r in bd.results.values()})} files)"
        )
        if args.no_pdf:
            return 0
        pages = latexmk(REPORT_DIR, "report.tex")
        print(f"wrote docs/report/report.pdf ({pages} pages)")
        if not args.no_slides:
            slides = latexmk(SLIDES_DIR, "slides.tex")
            print(f"wrote docs/slides/slides.pdf ({slides} pages)")
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
