"""The files the report is built from, the commands that write them, and reading them.

Every results file is JSON written by one of the repository's commands next to its Markdown
(``evaluate.py --report X.md`` writes ``X.json``, ``verify.py`` ``verification.json``, the
benchmarks their own JSON); the system's timing table comes from :class:`SystemConfig`, and the
UPPAAL figures from the generator that writes ``formal/models/``. Only files that git tracks are
read (unless asked otherwise), so that the generated files are those of a clean checkout. Every
file is treated as untrusted: a missing file or key is a :class:`BuildError` that names the file,
the key and the command that writes it.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.report.formatting import Shown
from apps.report.names import SUITE_METRICS

__all__ = [
    "AZURE_HOUR",
    "AZURE_LMM",
    "BENCH",
    "BUILD_COMMAND",
    "CONFIG",
    "DESIGN",
    "ENV_SPEED",
    "EXTERNAL_TRACES",
    "FRONTIERS",
    "GENERATED",
    "GUARD_TEST",
    "LEARNING",
    "LEARNING_BANDS",
    "LEARNING_RERUN",
    "OPTIONAL",
    "PENDING",
    "REPLAY",
    "REPO",
    "REPORT_DIR",
    "ROBUST",
    "SENSITIVITY",
    "SIM_TO_REAL",
    "SIM_TO_REAL_CALIBRATION",
    "SIM_TO_REAL_SENSITIVITY",
    "SLIDES_DIR",
    "SOURCES",
    "SUITE",
    "TEX_SOURCES",
    "TRACE_RESULTS",
    "TRACE_RESULTS_ALL",
    "UPPAAL_FILES",
    "VERIFICATION",
    "VERIFICATION_TA",
    "BuildError",
    "Sources",
    "SuiteScenario",
    "load_suite",
    "need",
]

REPO = Path(__file__).resolve().parents[2]
REPORT_DIR = REPO / "docs" / "report"
GENERATED = REPORT_DIR / "generated"
SLIDES_DIR = REPO / "docs" / "slides"
TEX_SOURCES = (REPORT_DIR / "report.tex", SLIDES_DIR / "slides.tex")
BUILD_COMMAND = "python docs/report/build.py"

# Results files (repo-relative) and the commands that write them.
SUITE = "docs/results/proposed.json"
BENCH = "docs/results/proposed_benchmarks.json"
DESIGN = "docs/results/proposed_design.json"
VERIFICATION = "docs/results/verification.json"
VERIFICATION_TA = "docs/results/verification_ta.json"
ENV_SPEED = "benchmarks/results/env_speed.json"
LEARNING = "benchmarks/results/learning.json"
LEARNING_RERUN = "benchmarks/results/learning_rerun.json"
LEARNING_BANDS = "benchmarks/results/learning_bands.json"
ROBUST = "docs/results/robust.json"
GUARD_TEST = "docs/results/robust_guard_test.json"
REPLAY = "docs/results/robust_replay.json"
FRONTIERS = "docs/results/frontiers.json"
SENSITIVITY = "docs/results/sensitivity.json"
TRACE_RESULTS = "docs/results/trace_results.json"
EXTERNAL_TRACES = "docs/results/external_traces.json"
AZURE_HOUR = "docs/results/azure_hour.json"
AZURE_LMM = "docs/results/azure_lmm.json"
TRACE_RESULTS_ALL = "docs/results/trace_results_all.json"
SIM_TO_REAL = "docs/results/sim_to_real.json"
SIM_TO_REAL_CALIBRATION = "docs/results/sim_to_real_calibrated.json"
SIM_TO_REAL_SENSITIVITY = "docs/results/sim_to_real_sensitivity.json"
CONFIG = "batchenv/configs/default.yaml"
UPPAAL_FILES = (
    "formal/models/batching.xml",
    "formal/models/batching.q",
    "formal/models/batching_finite.xml",
    "formal/models/batching_finite.q",
)

SOURCES = {
    SUITE: "python evaluate.py --scenarios suite --agents '...' --n-seeds 10 --jobs 2 "
    "--report docs/results/proposed.md (the command is in the file)",
    BENCH: "python benchmarks/proposed_eval.py",
    DESIGN: "python benchmarks/proposed_eval.py --parts design --out docs/results/proposed_design.md",
    VERIFICATION: "python verify.py --full --jobs 2",
    VERIFICATION_TA: "python verify.py --full --jobs 2 (its timed-automata stage, TChecker)",
    ENV_SPEED: "python benchmarks/env_speed.py --scenarios default,high_load",
    LEARNING: "python benchmarks/learning.py",
    LEARNING_RERUN: "python benchmarks/learning.py --experiments ppo_mixture,dqn_mixture --compare '' "
    "--no-shipped --no-gate --jobs 2 --runs-dir runs/learning_rerun "
    "--out benchmarks/results/learning_rerun.json --plot benchmarks/results/learning_rerun.png "
    "--markdown docs/results/learning_rerun.md --rl-doc none",
    LEARNING_BANDS: "python benchmarks/learning_bands.py (the command in docs/results/learning_bands.md)",
    FRONTIERS: "python benchmarks/frontiers.py",
    SENSITIVITY: "python benchmarks/sensitivity.py",
    ROBUST: "python benchmarks/robust_eval.py --parts traces,mmpp,poisson,design",
    GUARD_TEST: "python benchmarks/robust_eval.py --parts guard_test --jobs 2 "
    "--out docs/results/robust_guard_test.md",
    REPLAY: "python benchmarks/robust_eval.py --parts replay --jobs 2 --out docs/results/robust_replay.md",
    TRACE_RESULTS: "python benchmarks/trace_results.py",
    EXTERNAL_TRACES: "python benchmarks/trace_results.py --scenario-path benchmarks/configs/external "
    "--scenarios fineserve_dense,fineserve_dense_30,fineserve_dense_60,fineserve_dense_30_published "
    "--out docs/results/external_traces.md "
    "--tuned-dir docs/results/external_traces/robust_tuned --jobs 2 "
    "(after make_trace_excerpts.py --fineserve-dense)",
    AZURE_HOUR: "python benchmarks/trace_results.py --scenarios azure_conv_hour,azure_conv_hour_30,"
    "azure_conv_hour_60 --out docs/results/azure_hour.md --tuned-dir docs/results/azure_hour/tuned --jobs 2",
    AZURE_LMM: "python benchmarks/trace_results.py --scenarios azure_lmm,azure_lmm_30,azure_lmm_60 "
    "--out docs/results/azure_lmm.md --tuned-dir docs/results/azure_lmm/tuned --jobs 2",
    TRACE_RESULTS_ALL: "python benchmarks/trace_results.py --traces all "
    "--out docs/results/trace_results_all.md --tuned-dir docs/results/trace_results_all/tuned --jobs 2",
    SIM_TO_REAL: "python benchmarks/sim_to_real.py",
    SIM_TO_REAL_CALIBRATION: "python benchmarks/sim_to_real.py (its calibration step)",
    SIM_TO_REAL_SENSITIVITY: "python benchmarks/sim_to_real_sensitivity.py",
    CONFIG: "(input: the brief's system)",
    **dict.fromkeys(UPPAAL_FILES, "python verify.py --uppaal (formal/ta/, formal/uppaal.py)"),
}
OPTIONAL = {
    LEARNING: "RL",
    LEARNING_RERUN: "RLRerun",
    LEARNING_BANDS: "RLBands",
    VERIFICATION: "Verification",
    SIM_TO_REAL: "SimReal",
    SIM_TO_REAL_SENSITIVITY: "SimRealSens",
    TRACE_RESULTS: "TraceResults",
    EXTERNAL_TRACES: "ExternalTraces",
    AZURE_HOUR: "AzureHour",
    AZURE_LMM: "AzureLmm",
    TRACE_RESULTS_ALL: "TraceResultsAll",
    FRONTIERS: "Frontiers",
    SENSITIVITY: "Sensitivity",
    GUARD_TEST: "GuardTest",
    REPLAY: "Replay",
}
"""Results files the report can do without: file -> the name of its ``\\ifhave...`` switch."""
PENDING = r"\textbf{[pending]}"


class BuildError(RuntimeError):
    """A source is missing or does not have the expected content; the message names it."""


def need(data: Any, *keys: str | int, source: str) -> Any:
    """``data[k1][k2]...``, or a :class:`BuildError` naming ``source`` and the missing key path."""
    value = data
    for depth, key in enumerate(keys):
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            path = ".".join(str(k) for k in keys[: depth + 1])
            raise BuildError(f"{source}: no '{path}'; rewrite it with: {SOURCES.get(source, '?')}") from None
    return value


@dataclass
class Sources:
    """Reads the source files under ``root``.

    :param tracked: repo-relative paths that git tracks; when given, an optional source that is
        not among them counts as absent (None: every file on disk counts).
    """

    root: Path
    tracked: set[str] | None = None

    @classmethod
    def at(cls, root: Path = REPO, only_committed: bool = True) -> Sources:
        """The sources under ``root``; with ``only_committed``, only what git tracks counts for
        the optional ones (ignored outside a git work tree)."""
        tracked = None
        if only_committed and (root / ".git").exists():
            out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=False)
            if out.returncode == 0:
                tracked = set(out.stdout.splitlines())
        return cls(root, tracked)

    def available(self, rel: str) -> bool:
        """The file exists (and, when ``tracked`` is known, git tracks it)."""
        return (self.root / rel).is_file() and (self.tracked is None or rel in self.tracked)

    def path(self, rel: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise BuildError(f"{rel} is missing; it is written by: {SOURCES.get(rel, '?')}")
        return path

    def read_text(self, rel: str) -> str:
        return self.path(rel).read_text(encoding="utf-8")

    def read_json(self, rel: str) -> Any:
        try:
            return json.loads(self.read_text(rel))
        except json.JSONDecodeError as exc:
            raise BuildError(
                f"{rel}: not valid JSON ({exc}); rewrite it with: {SOURCES.get(rel, '?')}"
            ) from None


@dataclass
class SuiteScenario:
    """One scenario of an evaluate.py results file.

    :ivar rate: the mean arrival rate as evaluate.py's tables show it (``100``, ``28.83``; a
        rate range as ``10-500``), requests/s.
    :ivar reference: the agent gaps are measured against (None: no gap).
    :ivar n_seeds: seeds per cell; ``horizon_s``: simulated seconds per episode.
    :ivar cells: agent label -> metric -> (mean, 95% half-width); empty for a cell that did not
        run (not applicable, error).
    """

    name: str
    process: str
    rate: str
    n_workers: int
    reference: str | None
    model_names: list[str]
    n_seeds: int
    horizon_s: float
    cells: dict[str, dict[str, tuple[float | None, float | None]]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def shown(self, agent: str, metric: str) -> Shown | None:
        """``metric`` of ``agent`` as evaluate.py's tables show it (scale and decimals of
        :data:`SUITE_METRICS`), with its interval for cost, gap and score; None when absent."""
        mean, half = self.cells.get(agent, {}).get(metric, (None, None))
        if mean is None or not math.isfinite(mean):
            return None
        _, scale, digits = SUITE_METRICS[metric]
        with_ci = metric in ("cost_per_request", "gap", "score_per_request") and half is not None
        return Shown.of(mean, digits, scale, half if with_ci and math.isfinite(half) else None)

    def value(self, agent: str, metric: str) -> Shown:
        """:meth:`shown`, or a :class:`BuildError` when the cell has no such value."""
        v = self.shown(agent, metric)
        if v is None:
            raise BuildError(f"{SUITE}: {self.name} / {agent} has no {metric}")
        return v

    def mix_percent(self, agent: str) -> dict[str, int] | None:
        """Model -> share of requests in whole per cent, as the tables show it (shares under
        0.5% count as 0); None when the cell did not run."""
        summary = self.cells.get(agent)
        if not summary:
            return None
        out = {}
        for name in self.model_names:
            share = summary.get(f"mix_{name}", (None, None))[0]
            ok = share is not None and math.isfinite(share) and share >= 0.005
            out[name] = int(f"{100 * share:.0f}") if ok else 0
        return out


def load_suite(sources: Sources, rel: str = SUITE) -> dict[str, SuiteScenario]:
    """Scenario name -> :class:`SuiteScenario` from an evaluate.py results file."""
    data = sources.read_json(rel)
    n_seeds = len(need(data, "seeds", source=rel))
    suite: dict[str, SuiteScenario] = {}
    for i, entry in enumerate(need(data, "scenarios", source=rel)):
        name = need(entry, "name", source=rel)
        low_high = entry.get("rate_range_per_s")
        if low_high:
            rate = f"{low_high[0]:g}-{low_high[1]:g}"
        else:
            rate = f"{need(data, 'scenarios', i, 'mean_rate_per_s', source=rel):.4g}"
        suite[name] = SuiteScenario(
            name=name,
            process=need(entry, "process", source=rel),
            rate=rate,
            n_workers=int(need(entry, "n_workers", source=rel)),
            reference=None,
            model_names=[m["name"] for m in need(entry, "config", "models", source=rel)],
            n_seeds=n_seeds,
            horizon_s=float(data.get("horizon_s") or need(entry, "config", "horizon_s", source=rel)),
        )
    for cell in need(data, "cells", source=rel):
        scenario = suite.get(need(cell, "scenario", source=rel))
        if scenario is None:
            raise BuildError(f"{rel}: a cell names scenario {cell['scenario']!r}, which is not listed")
        if not scenario.cells:  # the first agent's reference, as evaluate.py's table titles say
            scenario.reference = cell.get("reference")
        summary = cell.get("summary") or {}
        agent = need(cell, "agent", source=rel)
        scenario.cells[agent] = {
            metric: (stat.get("mean"), stat.get("ci95")) for metric, stat in summary.items()
        }
        scenario.params[agent] = dict(cell.get("params") or {})
    return suite
