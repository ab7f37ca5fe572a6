"""What the objective studies share (``benchmarks/slo_targets.py``, ``benchmarks/frontiers.py``,
``benchmarks/sensitivity.py``): the scenarios, the memoised candidate episodes of the tuned
baselines, episodes of other agents with their score terms, and formatting.

Candidate episodes (:class:`evaluation.candidates.CandidateRuns`) are kept in
``.cache/objectives/<scenario>__<seeds>.jsonl`` (not committed): a study run after another reuses
the episodes both need (the timeout grid on the training seeds serves the three studies), and an
entry is ignored as soon as the scenario, the horizon, the seeds' episode or the simulator's or
the baselines' code differ (:func:`evaluation.candidates.code_version`).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchenv.config import ConfigError, LatencyTarget, SystemConfig
from batchenv.fileio import json_safe, write_atomic
from batchenv.metrics import ScoreTerms
from batchenv.scenarios import SUITE, eval_split_of, scenario_config, trace_scenarios, train_split_of
from batchenv.seeds import TRAINING_SEEDS
from evaluation.candidates import CandidateRuns
from evaluation.stats import mean_ci95, paired_gap
from execution.backends import Backend, BackendSpec
from execution.cli import add_execution_arguments, backend_spec_or_exit
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.run import run_tasks

__all__ = [
    "BOUNDS_MS",
    "CACHE_DIR",
    "REPO",
    "AgentRun",
    "Cell",
    "StudyArgs",
    "add_checkpoints_argument",
    "add_study_arguments",
    "check_study_arguments",
    "checkpoint_paths",
    "display_path",
    "pct",
    "run_cells",
    "scenario_names",
    "scope_cuts",
    "scope_note",
    "suite_and_traces",
    "tuning_runs",
    "write_results",
]

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "objectives"
BOUNDS_MS = (50.0, 80.0, 100.0, 150.0, 250.0)
"""Latency bounds (ms) whose attainment every candidate episode records: the studies' targets
and every scenario's ``slo_ms`` (250 ms; 80 ms for azure_trace_slo)."""


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def pct(value: float, digits: int = 2, sign: bool = True) -> str:
    """``value`` (a fraction) as a percentage; ``n/a`` when not finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.{digits}f}%" if sign else f"{100 * value:.{digits}f}%"


def suite_and_traces(traces: bool = True) -> list[tuple[str, str, str]]:
    """(label, tuning scenario, evaluation scenario) of the suite's scenarios (tuned and evaluated
    on the same scenario, on disjoint seeds) and, with ``traces``, of every trace scenario not
    in the suite (tuned on its ``_train`` half, evaluated on its ``_test`` half)."""
    rows = [(name, name, name) for name in SUITE]
    if traces:
        rows += [(name, train_split_of(name), eval_split_of(name)) for name in trace_scenarios()]
    return rows


def tuning_runs(
    config: SystemConfig, backend: Backend | None, seeds: Sequence[int] = TRAINING_SEEDS
) -> CandidateRuns:
    """The memoised candidate episodes of ``config`` on ``seeds`` (by default the training seeds),
    recording :data:`BOUNDS_MS`."""
    label = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return CandidateRuns(config, seeds, BOUNDS_MS, backend, CACHE_DIR / f"{config.name}__{label}.jsonl")


class AgentRun:
    """One agent's episodes on one scenario: per seed, the metrics, the score terms and the
    within-bound counts of :data:`BOUNDS_MS`.

    :ivar results: the episode results in seed order.
    """

    def __init__(self, results: list[EpisodeResult]) -> None:
        self.results = results

    def terms(self) -> list[ScoreTerms]:
        return [ScoreTerms.from_dict(r.terms or {}) for r in self.results]

    def costs(self, qualities: Sequence[float], reward: Any) -> list[float]:
        """Per seed, the cost per request under ``qualities`` and ``reward``."""
        return [t.cost_per_request(qualities, reward) for t in self.terms()]

    def metric(self, name: str) -> tuple[float, float]:
        """Mean and 95% half-width over seeds of metric ``name``."""
        return mean_ci95([r.metrics[name] for r in self.results])

    def values(self, name: str) -> list[float]:
        return [r.metrics[name] for r in self.results]

    def attainment(self, bound_ms: float) -> tuple[float, float]:
        """Mean and 95% half-width over seeds of the fraction within ``bound_ms``."""
        index = BOUNDS_MS.index(bound_ms)
        values = []
        for r in self.results:
            terms = ScoreTerms.from_dict(r.terms or {})
            judged = sum(terms.served_per_model) + terms.n_dropped
            values.append((r.within or [])[index] / judged if judged else math.nan)
        return mean_ci95(values)


@dataclass(frozen=True)
class Cell:
    """One agent on one scenario over seeds, as a study asks for it.

    :param key: the study's name for the cell (any hashable).
    :param spec: the agent spec.
    :param scenario: a scenario name or config.
    :param seeds: evaluation seeds.
    :param params: constructor keywords that override the spec's (e.g. parameters a study tuned;
        tuned files are then not read).
    :param latency_target: the latency target stated for the episodes.
    :param horizon_s: None = the scenario's.
    """

    key: Any
    spec: str
    scenario: str | SystemConfig
    seeds: tuple[int, ...]
    params: dict[str, Any] | None = None
    latency_target: LatencyTarget | None = None
    horizon_s: float | None = None


def run_cells(backend: Backend, cells: Sequence[Cell], console: Any = None) -> dict[Any, AgentRun | str]:
    """Per cell key: its :class:`AgentRun` (episodes with score terms and the within-bound counts
    of :data:`BOUNDS_MS`), or the reason the agent does not apply. Every episode of every cell is
    one task on ``backend`` (results identical for any backend and number of jobs)."""
    tasks = [
        (
            cell.key,
            EpisodeTask(
                cell.spec,
                cell.scenario,
                seed,
                cell.horizon_s,
                tuned=cell.params is None,
                params=cell.params,
                record="requests",
                latency_target=cell.latency_target,
                terms=True,
                bounds_ms=BOUNDS_MS,
            ),
        )
        for cell in cells
        for seed in cell.seeds
    ]
    outcomes = run_tasks(
        backend, run_episode_task, [(task,) for _, task in tasks], description="episodes", console=console
    )
    grouped: dict[Any, list[EpisodeResult]] = {}
    for (key, _), outcome in zip(tasks, outcomes, strict=True):
        grouped.setdefault(key, []).append(outcome.unwrap())
    out: dict[Any, AgentRun | str] = {}
    for key, results in grouped.items():
        bad = [r for r in results if r.status != "ok"]
        out[key] = bad[0].reason if bad else AgentRun(results)
    return out


def gap_of(costs: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The gap (:func:`evaluation.stats.paired_gap`) of seed-paired costs."""
    return paired_gap(list(costs), list(reference))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def config_of(name: str, horizon_s: float | None = None) -> SystemConfig:
    return scenario_config(name, horizon_s)


# ------------------------------------------------------------------------------ command lines


def add_study_arguments(parser: argparse.ArgumentParser, default_out: Path, n_seeds: int) -> None:
    """``--n-seeds``, ``--horizon-s``, ``--out`` and the execution flags of every study."""
    parser.add_argument(
        "--n-seeds", type=int, default=n_seeds, help=f"evaluation seeds 0..N-1 (default: {n_seeds})"
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="simulated seconds of every episode, tuning included (default: each scenario's horizon; "
        "a shorter one makes a shortened run, labelled as such in the results)",
    )
    parser.add_argument("--out", type=Path, default=default_out, help="the Markdown file (JSON next to it)")
    add_execution_arguments(parser)


def add_checkpoints_argument(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints``: the learned agents a study runs (default ``checkpoints/*.zip``)."""
    parser.add_argument(
        "--checkpoints",
        default=",".join(sorted(str(p.relative_to(REPO)) for p in (REPO / "checkpoints").glob("*.zip"))),
        help="comma-separated checkpoints of learned agents (default: checkpoints/*.zip)",
    )


def checkpoint_paths(parser: argparse.ArgumentParser, text: str) -> list[Path]:
    """The checkpoints of ``--checkpoints`` (paths relative to the repository), each an existing
    file (``parser.error`` otherwise)."""
    paths = [REPO / c.strip() for c in text.split(",") if c.strip()]
    missing = [c for c in paths if not c.is_file()]
    if missing:
        parser.error(f"--checkpoints: {missing[0]} does not exist")
    return paths


def scenario_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The scenarios of ``--scenarios`` ('suite' = the scenario suite), each one that loads
    (``parser.error`` naming the first that does not)."""
    names = list(SUITE) if text == "suite" else [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        parser.error("--scenarios: no scenario given")
    for name in names:
        try:
            scenario_config(name)
        except ConfigError as exc:
            parser.error(f"--scenarios: {exc}")
    return names


def scope_cuts(args: argparse.Namespace, n_seeds: int) -> list[str]:
    """What ``--n-seeds`` (below the default ``n_seeds``) and ``--horizon-s`` cut from a study."""
    cuts = []
    if args.n_seeds < n_seeds:
        cuts.append(f"{args.n_seeds} evaluation seeds instead of {n_seeds}")
    if args.horizon_s is not None:
        cuts.append(f"every episode {args.horizon_s:g} s long instead of each scenario's horizon")
    return cuts


@dataclass(frozen=True)
class StudyArgs:
    """The checked common flags: evaluation seeds, horizon (s; None = each scenario's) and backend."""

    seeds: list[int]
    horizon_s: float | None
    backend: BackendSpec


def check_study_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> StudyArgs:
    """Check the flags of :func:`add_study_arguments` (``parser.error``, exit 2, on bad ones);
    prints the backend's warnings."""
    if not 2 <= args.n_seeds <= 1000:
        parser.error(f"--n-seeds must be in [2, 1000] (confidence intervals), got {args.n_seeds}")
    if args.horizon_s is not None and not (math.isfinite(args.horizon_s) and 0 < args.horizon_s <= 86_400):
        parser.error(f"--horizon-s must be in (0, 86400] seconds, got {args.horizon_s}")
    if args.out.is_dir() or not args.out.parent.is_dir() or args.out.suffix != ".md":
        parser.error(f"--out: {args.out} must be a .md file name in an existing folder")
    spec = backend_spec_or_exit(parser, args)
    return StudyArgs(list(range(args.n_seeds)), args.horizon_s, spec)


def scope_note(prog: str, argv: Sequence[str], shortened: Sequence[str]) -> str:
    """A Markdown paragraph for a shortened run (``shortened``: what was cut, e.g. "3 seeds
    instead of 10"), naming the full command; empty when nothing was cut."""
    if not shortened:
        return ""
    keep = []
    flags = list(argv)
    for i, flag in enumerate(flags):  # the execution flags stay; the scope flags go
        if flag in ("--jobs", "--backend", "--address") and i + 1 < len(flags):
            keep += [flag, flags[i + 1]]
    full = f"{prog} {shlex.join(keep)}".strip()
    return (
        f"**Shortened run**: {'; '.join(shortened)}. The full study is `nice -n 10 {full}`; "
        "the figures below are of the shortened run only.\n"
    )


def write_results(out: Path, markdown: str, data: dict[str, Any]) -> None:
    """Write ``out`` (Markdown) and the JSON next to it atomically, and say where."""
    write_atomic(out, markdown)
    write_atomic(out.with_suffix(".json"), json.dumps(json_safe(data), indent=1) + "\n")
    print(f"wrote {display_path(out)} and {display_path(out.with_suffix('.json'))}")
