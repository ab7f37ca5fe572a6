"""Everything the report quotes, computed from the sources: macros, tables and figure data
(:func:`compute`), and the generated ``.tex`` files they become."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.report import formal_numbers, numbers, objectives, parameters, sim_to_real, tables, traces
from apps.report.figures import figure_data, frontier_data
from apps.report.learning import bands_numbers, learning_numbers, rerun_numbers
from apps.report.macros import Macros, render_numbers, used_macros
from apps.report.names import MODEL_LETTERS
from apps.report.sources import (
    AZURE_HOUR,
    AZURE_LMM,
    BENCH,
    CONFIG,
    DESIGN,
    ENV_SPEED,
    EXTERNAL_TRACES,
    FRONTIERS,
    GENERATED,
    GUARD_TEST,
    LEARNING,
    LEARNING_BANDS,
    LEARNING_RERUN,
    REPLAY,
    REPO,
    ROBUST,
    SENSITIVITY,
    SIM_TO_REAL,
    SIM_TO_REAL_CALIBRATION,
    SIM_TO_REAL_SENSITIVITY,
    SOURCES,
    SUITE,
    TRACE_RESULTS,
    TRACE_RESULTS_ALL,
    UPPAAL_FILES,
    VERIFICATION,
    VERIFICATION_TA,
    BuildError,
    Sources,
    load_suite,
)
from apps.verify import DEFAULT_TA_UNIT_MS, DEFAULT_UPPAAL_POLICY, uppaal_policy
from batchenv.config import SystemConfig

__all__ = ["Build", "compute", "generated_texts", "stale_generated", "write_generated"]


@dataclass
class Build:
    """What the sources give: the macros (and which optional sources were present), the tables
    (file name in generated/ -> text) and the data of each figure."""

    macros: Macros = field(default_factory=Macros)
    tables: dict[str, str] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def present(self) -> dict[str, bool]:
        return self.macros.present


@contextmanager
def reading(rel: str) -> Iterator[None]:
    """Turn an unexpected shape of ``rel``'s content (a missing key, a wrong type) into a
    :class:`BuildError` that names the file and the command that writes it."""
    try:
        yield
    except BuildError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise BuildError(
            f"{rel}: unexpected content ({type(exc).__name__}: {exc}); "
            f"rewrite it with: {SOURCES.get(rel, '?')}"
        ) from None


def _optional(src: Sources, build: Build, rel: str) -> Any:
    """The JSON of optional source ``rel``, or None (and ``present[rel]`` False) when absent."""
    build.macros.present[rel] = src.available(rel)
    return src.read_json(rel) if build.macros.present[rel] else None


def compute(root: Path = REPO, only_committed: bool = True) -> Build:
    """Read every source and compute all macros, tables and figure data (no drawing, no LaTeX).

    :param only_committed: treat an optional results file that git does not track as absent, so
        that the generated files are those of a clean checkout (ignored outside a git work tree).
    """
    src = Sources.at(root, only_committed)
    build = Build()
    m = build.macros
    with reading(CONFIG):
        config = SystemConfig.from_yaml(src.path(CONFIG))
        parameters.config_numbers(m, config)
        parameters.scenario_numbers(m, config)
    parameters.agent_numbers(m)
    parameters.shipped_numbers(m)
    with reading(CONFIG):
        build.tables["tab_timing.tex"] = tables.timing_table(config)
    with reading(SUITE):
        suite = load_suite(src)
        numbers.suite_numbers(m, suite)
        build.tables["tab_suite.tex"] = tables.suite_table(suite)
        build.tables["tab_ablation.tex"] = tables.ablation_table(suite)
    with reading(BENCH):
        bench = src.read_json(BENCH)
        numbers.bench_numbers(m, bench)
        build.tables["tab_poisson.tex"] = tables.poisson_table(bench["gap"], suite)
    with reading(DESIGN):
        numbers.design_numbers(m, src.read_json(DESIGN))
    with reading(ENV_SPEED):
        numbers.env_speed_numbers(m, src.read_json(ENV_SPEED))
    with reading(VERIFICATION):
        verification = _optional(src, build, VERIFICATION)
        formal_numbers.verification_numbers(m, verification)
        build.tables["tab_verification.tex"] = (
            tables.verification_table(verification) if verification else tables.pending_table(VERIFICATION)
        )
    with reading(UPPAAL_FILES[0]):
        _uppaal(src, m)
    with reading(VERIFICATION_TA):
        ta = src.read_json(VERIFICATION_TA) if src.available(VERIFICATION_TA) else None
        formal_numbers.ta_numbers(m, ta)
    with reading(LEARNING):
        learning = _optional(src, build, LEARNING)
        learning_numbers(m, learning)
        build.tables["tab_rl.tex"] = tables.rl_table(learning) if learning else tables.pending_table(LEARNING)
    with reading(LEARNING_RERUN):
        rerun_numbers(m, _optional(src, build, LEARNING_RERUN))
    with reading(LEARNING_BANDS):
        bands_numbers(m, _optional(src, build, LEARNING_BANDS))
    with reading(ROBUST):
        robust = src.read_json(ROBUST)
        traces.robust_numbers(m, robust)
    with reading(GUARD_TEST):
        traces.guard_test_numbers(m, _optional(src, build, GUARD_TEST))
    with reading(REPLAY):
        traces.replay_numbers(m, _optional(src, build, REPLAY))
    with reading(TRACE_RESULTS):
        trace_results = _optional(src, build, TRACE_RESULTS)
        traces.trace_results_numbers(m, trace_results)
        # the trace table and its verdicts: from trace_results.json when committed, else robust.json
        cells, origin = (
            (traces.trace_cells(trace_results, from_trace_results=True), TRACE_RESULTS)
            if trace_results
            else (traces.trace_cells(robust, from_trace_results=False), ROBUST)
        )
        traces.trace_numbers(m, cells, origin)
        build.tables["tab_traces.tex"] = traces.trace_table(cells, origin)
    with reading(EXTERNAL_TRACES):
        traces.external_trace_numbers(m, _optional(src, build, EXTERNAL_TRACES))
    with reading(AZURE_HOUR):
        traces.azure_hour_numbers(m, _optional(src, build, AZURE_HOUR))
    with reading(AZURE_LMM):
        traces.azure_lmm_numbers(m, _optional(src, build, AZURE_LMM))
    with reading(TRACE_RESULTS_ALL):
        traces.all_traces_numbers(m, _optional(src, build, TRACE_RESULTS_ALL))
    with reading(SIM_TO_REAL):
        real = _optional(src, build, SIM_TO_REAL)
        calibration = (
            src.read_json(SIM_TO_REAL_CALIBRATION)
            if real and src.available(SIM_TO_REAL_CALIBRATION)
            else None
        )
        sim_to_real.sim_to_real_numbers(m, real, calibration)
        build.tables["tab_calibrated.tex"] = (
            sim_to_real.calibrated_table(real, calibration) if real else tables.pending_table(SIM_TO_REAL)
        )
        build.tables["tab_fidelity.tex"] = (
            sim_to_real.fidelity_table(real) if real else tables.pending_table(SIM_TO_REAL)
        )
    with reading(SIM_TO_REAL_SENSITIVITY):
        sim_to_real.sensitivity_numbers(m, _optional(src, build, SIM_TO_REAL_SENSITIVITY), real)
    with reading(SENSITIVITY):
        objectives.sensitivity_numbers(m, _optional(src, build, SENSITIVITY))
    caps = {
        model.name: float(m.value(f"resCap{letter}"))
        for letter, model in zip(MODEL_LETTERS, config.models, strict=False)
    }
    with reading(SUITE):
        build.figures = figure_data(suite, caps, bench["sensitivity"], learning)
    with reading(FRONTIERS):
        frontiers = _optional(src, build, FRONTIERS)
        if frontiers is not None:
            build.figures["fig_frontiers.pdf"] = frontier_data(frontiers)
    return build


def _uppaal(src: Sources, macros: Macros) -> None:
    """The timed-automata models' figures, from the committed files and verify.py's defaults (a
    test checks that the committed files are what ``verify.py --uppaal`` writes with them)."""
    config = SystemConfig.from_yaml(src.path(CONFIG))
    models = {rel: src.read_text(rel) for rel in UPPAAL_FILES}
    policy = uppaal_policy(config, DEFAULT_UPPAAL_POLICY)
    formal_numbers.uppaal_numbers(macros, models, policy, DEFAULT_TA_UNIT_MS)


def generated_texts(build: Build, used: set[str] | None = None) -> dict[str, str]:
    """File name in generated/ -> text, for numbers.tex and every table."""
    out = {"numbers.tex": render_numbers(build.macros, used_macros() if used is None else used)}
    out.update(build.tables)
    return out


def _differs(path: Path, text: str) -> bool:
    return not path.is_file() or path.read_text(encoding="utf-8") != text


def write_generated(build: Build, outdir: Path = GENERATED) -> list[Path]:
    """Write numbers.tex and the tables into ``outdir``, each only if its text changed."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated_texts(build).items():
        path = outdir / name
        if _differs(path, text):
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_generated(
    build: Build, outdir: Path = GENERATED, differs: Callable[[Path, str], bool] = _differs
) -> list[str]:
    """The generated .tex files that differ from what the sources give now."""
    return [name for name, text in generated_texts(build).items() if differs(outdir / name, text)]
