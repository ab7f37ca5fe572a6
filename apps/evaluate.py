"""``python evaluate.py`` (console script ``batchenv-evaluate``): plan, run, summarise, print and
write; the steps live in the modules of :mod:`evaluation`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.hindsight.cache import BoundCache
from batchenv.fileio import write_atomic, write_files_atomic
from evaluation.cells import Cell, HindsightBounds, collect, hindsight_bounds
from evaluation.outputs import params_text, per_seed_rows, staged_run_dir, summary_rows, to_csv, to_json
from evaluation.plan import Plan, UsageError, build_parser, make_plan
from evaluation.plots import plot_all
from evaluation.runner import make_bound_tasks, make_tasks, open_bound_cache, run_plan
from evaluation.tables import (
    empty_episode_warnings,
    print_tables,
    summary_lines,
    to_markdown,
    untuned_reference_warnings,
)

__all__ = ["cache_line", "main"]

REPO = Path(__file__).resolve().parents[1]
STUDY = ("docs/results/proposed.md", "docs/report/report.pdf", "docs/slides/slides.pdf")
"""Where a demo run points to next: the suite's results, the report and the slides."""


def print_scenarios() -> None:
    """``--list-scenarios``: one line per scenario, its name and its description."""
    from batchenv.scenarios import scenario_summaries

    summaries = scenario_summaries()
    width = max((len(name) for name, _ in summaries), default=0)
    text = "".join(f"{name:<{width}}  {description}".rstrip() + "\n" for name, description in summaries)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation the command line ``argv`` (default ``sys.argv[1:]``) asks for; returns
    the exit code: 0, 1 if an episode failed, 2 for a bad command line, 130 if interrupted."""
    from rich.console import Console
    from rich.markup import escape

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_scenarios:
        print_scenarios()
        return 0
    console = Console()
    if not console.is_terminal:  # a log file or pipe: wide enough for the whole table
        console = Console(width=160)
    try:
        plan = make_plan(args, argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    tasks = make_tasks(plan)
    bound_tasks = make_bound_tasks(plan)
    extended = sum(len(plan.seeds_of(scenario)) > len(plan.seeds) for scenario in plan.scenarios)
    more = f" (more on {extended} quiet scenario{'s' * (extended > 1)}, --min-requests)" if extended else ""
    console.print(
        f"{len(plan.agents)} agents x {len(plan.scenarios)} scenarios x {len(plan.seeds)} seeds{more} "
        f"= {len(tasks)} episodes (+ {len(bound_tasks)} hindsight bounds) on {plan.backend.describe()}",
        markup=False,
    )
    cache = open_bound_cache(plan) if bound_tasks else None
    start = time.perf_counter()
    try:
        outcomes, bound_outcomes = run_plan(plan, tasks, console, bound_tasks, cache)
    except KeyboardInterrupt:
        kept = ""
        if cache is not None and cache.stored:
            n, folder = cache.stored, escape(str(cache.directory))
            kept = f"; the {n} hindsight bound{'s' * (n > 1)} computed are kept in {folder}/"
        console.print(f"[red]interrupted[/]: tasks cancelled, no results written{kept}", highlight=False)
        return 130
    hindsight = hindsight_bounds(plan, bound_tasks, bound_outcomes)
    cells = collect(plan, tasks, outcomes, hindsight.lower)
    elapsed = time.perf_counter() - start

    print_tables(plan, cells, console)
    for agent in plan.agents:
        for scenario in plan.scenarios:
            cell = cells[(agent.label, scenario.name)]
            if cell.per_seed and agent.name in ("timeout", "util_switch"):
                console.print(
                    f"{agent.label} on {scenario.name}: {cell.params_source}: {params_text(cell.params)}",
                    markup=False,
                )
    errors = [c for c in cells.values() if c.error]
    for cell in errors:
        console.print(f"[red]error[/] {escape(f'{cell.agent} on {cell.scenario}: {cell.error}')}")
    skipped = {c.not_applicable for c in cells.values() if c.not_applicable}
    for reason in sorted(skipped):
        console.print(f"[dim]n/a: {escape(reason)}[/]")
    for name, reason in hindsight.missing.items():
        seeds = next(len(plan.seeds_of(s)) for s in plan.scenarios if s.name == name)
        bounded = len(hindsight.lower.get(name, {}))
        some = f" on {seeds - bounded} of {seeds} seeds (the gap to it uses the others)" if bounded else ""
        console.print(f"[dim]{escape(f'no hindsight bound on {name}{some}: {reason}')}[/]")
    for warning in [*untuned_reference_warnings(plan, cells), *empty_episode_warnings(plan, cells)]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    for warning in cache.warnings if cache is not None else []:
        console.print(f"[yellow]warning:[/] {escape(warning)}")

    results_json = to_json(plan, cells, hindsight)
    try:
        run_dir, figures = _write_outputs(plan, cells, results_json, hindsight)
    except OSError as exc:
        console.print(
            f"[red]error[/]: cannot write the results ({escape(str(exc))}); no results folder was left behind"
        )
        return 1
    console.print()
    for line in summary_lines(plan, cells, hindsight):
        console.print(line, highlight=False, markup=False)
    console.print(
        f"results: {run_dir}/ (summary.csv, per_seed.csv, results.json; {elapsed:.1f} s of episodes)",
        highlight=False,
        markup=False,
    )
    if cache is not None:
        console.print(cache_line(len(bound_tasks), cache), highlight=False, markup=False)
    if figures:
        console.print(f"plots: {', '.join(figures)} in {run_dir}/", highlight=False, markup=False)
    console.print(f"report: {plan.report or run_dir / 'report.md'}", highlight=False, markup=False)
    if plan.report is not None:
        console.print(f"its data: {plan.report.with_suffix('.json')}", highlight=False, markup=False)
    study = [p for p in STUDY if (REPO / p).is_file()]
    if plan.demo and study:
        console.print(f"the whole study: {', '.join(study)}", highlight=False, markup=False)
    return 1 if errors else 0


def cache_line(n_bounds: int, cache: BoundCache) -> str:
    """What the cache of hindsight bounds did, in one line: ``140 hindsight bounds: 140 from the
    cache results/.hindsight_cache/ (2,412 s of computing saved), 0 computed``."""
    computed = n_bounds - cache.hits
    seconds = f"{cache.saved_s:,.0f}" if cache.saved_s >= 10 else f"{cache.saved_s:.1f}"
    saved = f" ({seconds} s of computing saved)" if cache.hits else ""
    stored = f", {cache.stored} stored there" if cache.stored else ""
    return (
        f"{n_bounds} hindsight bound{'s' * (n_bounds != 1)}: {cache.hits} from the cache "
        f"{cache.directory}/{saved}, {computed} computed{stored}"
    )


def _write_outputs(
    plan: Plan, cells: dict[tuple[str, str], Cell], results_json: str, hindsight: HindsightBounds
) -> tuple[Path, list[str]]:
    """Write the run folder (all files or no folder: a full disk or Ctrl-C leaves nothing that
    looks complete) and the ``--report`` set (the Markdown, its JSON and its figures, written
    together: each file is complete, and a failure leaves none of them half-written); returns
    the run folder and its figures' names."""
    with staged_run_dir(plan.out) as run:
        write_atomic(run.path / "summary.csv", to_csv(summary_rows(plan, cells)))
        write_atomic(run.path / "per_seed.csv", to_csv(per_seed_rows(plan, cells)))
        write_atomic(run.path / "results.json", results_json)
        figures = plot_all(plan, cells, run.path) if plan.plots else []
        write_atomic(run.path / "report.md", to_markdown(plan, cells, "" if figures else None, hindsight))
        if plan.report is not None:
            figure_dir = plan.report.parent / f"{plan.report.stem}_figures"
            prefix = f"{figure_dir.name}/" if figures else None
            report: dict[Path, str | bytes] = {
                plan.report: to_markdown(plan, cells, prefix, hindsight),
                plan.report.with_suffix(".json"): results_json,
            }
            report.update({figure_dir / path.name: path.read_bytes() for path in figures})
            write_files_atomic(report)
    return run.path, [path.name for path in figures]
