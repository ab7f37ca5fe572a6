"""evaluate.py's reports say what their numbers are: empty episodes (NaN, the seeds each mean
uses, one warning, no ranking without a cost), the end of the horizon, the column definitions,
the reference rule, the hindsight bound per seed, results.json's schema, the --report set and
the figures."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

import batchenv
from apps import evaluate as evaluate_app
from evaluation.cells import PER_SEED_RATIO, collect, hindsight_bounds
from evaluation.outputs import SCHEMA_VERSION
from evaluation.plan import REFERENCE_RULE, build_parser, make_plan
from evaluation.runner import make_bound_tasks, make_tasks, run_plan
from evaluation.tables import to_markdown
from execution.hindsight_task import run_bound_task
from execution.outcome import Outcome, TaskError


def _main(argv: list[str]) -> tuple[int, str]:
    """Run evaluate.py's main; its exit code and what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = evaluate_app.main(argv)
    return code, buffer.getvalue()


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


EMPTY_ARGS = ["--agents", "greedy,static(B=8),timeout", "--scenarios", "poisson_rate_10,poisson_rate_1"]
EMPTY_ARGS += ["--seeds", "0-4", "--horizon-s", "0.09", "--jobs", "1", "--no-plots"]
"""0.09 s episodes: on poisson_rate_10 seeds 1 and 4 have no arrival, the others one to three
(static(B=8) dispatches nothing on them); on poisson_rate_1 no seed has an arrival."""


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("empty")
    (root / "docs").mkdir()
    code, out = _main([*EMPTY_ARGS, "--out", str(root / "results"), "--report", str(root / "docs" / "r.md")])
    assert code == 0, out
    (run_dir,) = (root / "results").iterdir()
    data = json.loads((run_dir / "results.json").read_text())
    cells = {(c["scenario"], c["agent"]): c for c in data["cells"]}
    return {
        "out": out,
        "run": run_dir,
        "data": data,
        "cells": cells,
        "report": (root / "docs" / "r.md").read_text(),
    }


def test_undefined_ratios_are_nan_and_each_mean_uses_the_seeds_that_define_it(empty) -> None:
    greedy = empty["cells"][("poisson_rate_10", "greedy")]
    rows = {row["seed"]: row for row in greedy["per_seed"]}
    for seed in (1, 4):  # no arrival: no cost, score, drop rate, batch size or model mix (was 0)
        assert rows[seed]["n_arrived"] == 0
        for key in ("cost_per_request", "score_per_request", "drop_rate", "mean_batch_size", "mix_LLM-1"):
            assert rows[seed][key] is None, key
    summary = {k: v["mean"] for k, v in greedy["summary"].items()}
    assert summary["score_per_request"] == pytest.approx(1.0 - summary["cost_per_request"])  # same seeds
    assert summary["mix_LLM-1"] + summary["mix_LLM-2"] + summary["mix_LLM-3"] == pytest.approx(1.0)
    assert summary["mean_batch_size"] >= 1.0
    assert (
        greedy["seeds_per_mean"]["cost_per_request"] == 3
        and "throughput_per_s" not in greedy["seeds_per_mean"]
    )
    static = empty["cells"][("poisson_rate_10", "static(B=8)")]
    assert (
        static["seeds_per_mean"]["mean_batch_size"] == 0
        and static["summary"]["mean_batch_size"]["mean"] is None
    )
    assert "cost/req, gap, vs bound, score/req" in empty["report"] and "over 3 of 5 seeds" in empty["report"]
    assert "2 of 5 episodes had no arrival" in empty["report"]
    summary_csv = {(r["scenario"], r["agent"]): r for r in _csv(empty["run"] / "summary.csv")}
    assert "cost_per_request=3" in summary_csv[("poisson_rate_10", "greedy")]["fewer_seeds"]


def test_empty_episodes_are_warned_once(empty) -> None:
    out = " ".join(empty["out"].split())
    assert out.count("poisson_rate_10: 2 of 5 episodes had no arrival (seeds 1,4)") == 1
    assert out.count("static(B=8) on poisson_rate_10: 3 of 5 episodes had arrivals but no batch") == 1
    assert out.count("poisson_rate_1: 5 of 5 episodes had no arrival") == 1
    assert "greedy on poisson_rate_10" not in out  # the arrivals are every agent's: one warning


def test_an_agent_without_a_cost_is_not_ranked(empty) -> None:
    out = " ".join(empty["out"].split())
    assert "poisson_rate_1 vs timeout: no agent has a cost" in out
    assert "no cost (no arrival on any seed), not ranked: greedy, static(B=8), timeout" in out
    assert "**poisson_rate_1**: vs timeout: no agent has a cost; no cost" in empty["report"]


def test_the_legend_defines_the_end_of_the_horizon_and_every_column(empty) -> None:
    report = empty["report"]
    legend = report.split("## Summary")[0]
    for text in (
        "start empty (no warm-up)",
        "a request still queued at the horizon is charged best quality + w_latency_per_s x its wait",
        "queued at end = the fraction of the arrivals still queued at the horizon",
        "SLO = fraction of the served and dropped requests within slo_ms",
        "p99 ms = the mean over seeds of each episode's 99th percentile",
        "the latency CDF figure pools the requests of all seeds",
        "thr/s = requests dispatched per second of horizon",
        "util = busy time within the horizon",
        "vs bound = the same gap to the hindsight bound of each episode: the least cost of any schedule",
        f"The reference (--reference auto) is {REFERENCE_RULE}.",
    ):
        assert text in legend, text
    assert legend.index("Seeds 0-4") > 0  # benchmarks/checkpoint_card.py cuts the report there
    static = next(line for line in report.splitlines() if line.startswith("| static(B=8) |"))
    header = next(line for line in report.splitlines() if line.startswith("| agent | cost/req"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert [c.strip() for c in static.strip("|").split("|")][columns.index("queued at end")] == "100.00%"
    # the all-n/a "vs bound" column of poisson_rate_1 (no arrival, no bound) is left out, with why
    section = report.split("## poisson_rate_1 (")[1]
    assert (
        "vs bound |" not in section.split("\n\n")[1]
        and "No hindsight bound: seeds 0-4: no arrival." in section
    )


def test_per_seed_ratio_is_not_called_a_gap_and_counts_are_ints(empty) -> None:
    rows = _csv(empty["run"] / "per_seed.csv")
    assert PER_SEED_RATIO in rows[0] and "gap" not in rows[0]
    row = next(
        r
        for r in rows
        if r["scenario"] == "poisson_rate_10" and r["agent"] == "static(B=8)" and r["seed"] == "0"
    )
    ref = next(
        r for r in rows if r["scenario"] == "poisson_rate_10" and r["agent"] == "timeout" and r["seed"] == "0"
    )
    ratio = float(row["cost_per_request"]) / float(ref["cost_per_request"]) - 1
    assert float(row[PER_SEED_RATIO]) == pytest.approx(ratio)
    assert row["n_arrived"] == "1" and row["n_waiting"] == "1"  # ints, not 1.0
    data = empty["data"]
    assert data["schema_version"] == SCHEMA_VERSION == 2 and data["batchenv_version"] == batchenv.__version__
    for cell in data["cells"]:
        for seed_row in cell["per_seed"]:
            assert all(type(seed_row[k]) is int for k in ("n_arrived", "n_served", "n_batches", "n_forced"))
            assert PER_SEED_RATIO in seed_row and "gap" not in seed_row
        assert isinstance(cell["summary"]["n_arrived"]["mean"], float)


def test_auto_reference_prefers_the_bare_timeout_and_no_hindsight_drops_its_column(tmp_path: Path) -> None:
    argv = ["--agents", "timeout(B=64,T=90),timeout", "--scenarios", "bursty", "--seeds", "0-1"]
    argv += ["--horizon-s", "1", "--jobs", "1", "--no-plots", "--no-hindsight", "--out", str(tmp_path / "r")]
    code, out = _main([*argv, "--report", str(tmp_path / "r.md")])
    assert code == 0, out
    (run_dir,) = (tmp_path / "r").iterdir()
    assert {r["reference"] for r in _csv(run_dir / "summary.csv")} == {"timeout"}
    report = (tmp_path / "r.md").read_text()
    assert "gap vs timeout)" in report and "| vs bound |" not in report and "vs bound =" not in report


def test_an_untuned_reference_is_marked_and_warned_about(tmp_path: Path) -> None:
    """With --target, timeout has no tuned parameters for the target: as the gap reference it
    is marked untuned in the tables, the summary and the overview, with a warning; tuned (no
    target), it is not. The legend says optimal is a long-run optimum a short episode can beat."""
    argv = ["--agents", "timeout,proposed,optimal", "--reference", "timeout", "--scenarios", "default"]
    argv += ["--seeds", "0-1", "--horizon-s", "1", "--jobs", "1", "--no-plots", "--no-hindsight"]
    code, out = _main(
        [*argv, "--target", "p99<=100ms", "--out", str(tmp_path / "r"), "--report", str(tmp_path / "r.md")]
    )
    assert code == 0, out
    text = " ".join(out.split())
    assert (
        "warning: default: the gap reference, timeout, is untuned: it ran with its defaults (tuned "
        "parameters for 'default with p99 <= 100 ms': none; run python -m apps.tune --scenarios "
        "default --target 'p99<=100ms')" in text
    )
    assert "default vs timeout (untuned): " in text and "gap vs timeout, untuned)" in text
    report = (tmp_path / "r.md").read_text()
    assert "| default | timeout (untuned) |" in report and "**default**: vs timeout (untuned): " in report
    assert "- The gap reference, timeout, is untuned: it ran with its defaults" in report
    assert "optimal minimises the long-run average cost per request" in report
    code, out = _main([*argv, "--out", str(tmp_path / "r"), "--report", str(tmp_path / "tuned.md")])
    report = (tmp_path / "tuned.md").read_text()
    assert code == 0 and "is untuned" not in out and "(untuned)" not in out + report
    assert "timeout | default | preferred_batch_size" in report  # tuned, as the parameters say


def test_the_bound_is_kept_on_the_seeds_that_have_one(tmp_path: Path) -> None:
    """A seed whose bound failed is left out of the gap to the bound, not the whole scenario
    (the rule of benchmarks/trace_results.py), and the report says over how many seeds."""
    args = ["--agents", "greedy,timeout", "--scenarios", "default", "--seeds", "0-1", "--horizon-s", "1"]
    args += ["--jobs", "1", "--no-plots", "--out", str(tmp_path)]
    plan = make_plan(build_parser().parse_args(args), args)
    tasks, bound_tasks = make_tasks(plan), make_bound_tasks(plan)
    outcomes, _ = run_plan(plan, tasks, None, [])
    failed = Outcome(error=TaskError("MemoryError", "out of memory"))
    bound_outcomes = [Outcome(value=run_bound_task(bound_tasks[0])), failed]
    hindsight = hindsight_bounds(plan, bound_tasks, bound_outcomes)
    assert list(hindsight.lower["default"]) == [0]
    assert hindsight.missing["default"] == "seed 1: MemoryError: out of memory"
    cells = collect(plan, tasks, outcomes, hindsight.lower)
    greedy = cells[("greedy", "default")]
    assert greedy.n_used["gap_hindsight"] == 1 and greedy.value("gap_hindsight") >= 0
    bound = hindsight.lower["default"][0]
    cost = next(r["cost_per_request"] for r in greedy.per_seed if r["seed"] == 0)
    assert greedy.value("gap_hindsight") == pytest.approx((cost - bound) / bound)
    report = to_markdown(plan, cells, None, hindsight)
    assert "over the 1 of 2 seeds that have a bound (seed 1: MemoryError: out of memory)" in report


def test_the_report_explains_the_bound_and_the_cells_that_did_not_run(tmp_path: Path) -> None:
    argv = ["--agents", "greedy,optimal", "--scenarios", "default,multi_gpu", "--seeds", "0-1"]
    argv += ["--horizon-s", "1", "--jobs", "1", "--no-plots", "--out", str(tmp_path / "r")]
    code, out = _main([*argv, "--report", str(tmp_path / "r.md")])
    assert code == 0, out
    report = (tmp_path / "r.md").read_text()
    default, multi = report.split("## default (")[1].split("## multi_gpu (")
    assert "- vs bound: exact" in default or "- vs bound: a lower bound" in default
    assert "- No hindsight bound: 2 workers: their bound is slow to compute, --hindsight-several" in multi
    assert "- optimal n/a: optimal does not apply to scenario 'multi_gpu'" in multi
    assert "| vs bound |" not in multi.split("\n\n")[1]  # no bound there: no all-n/a column
    summary = report.split("## Summary")[1].split("## Overview")[0]
    assert "**default**: vs optimal:" in summary and "above the hindsight bound" in summary


def test_the_report_set_is_written_together_and_the_figures_say_what_they_show(
    tmp_path: Path, monkeypatch
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from evaluation import plots

    written: list[list[Path]] = []
    real = evaluate_app.write_files_atomic

    def spy(files: dict[Path, str | bytes]) -> None:
        written.append(sorted(files))
        real(files)

    monkeypatch.setattr(evaluate_app, "write_files_atomic", spy)
    argv = ["--agents", "greedy,timeout(B=1,T=1,model=LLM-1),static(B=2)", "--scenarios", "default,bursty"]
    argv += [
        "--seeds",
        "0-1",
        "--horizon-s",
        "2",
        "--jobs",
        "1",
        "--no-hindsight",
        "--out",
        str(tmp_path / "r"),
    ]
    code, out = _main([*argv, "--report", str(tmp_path / "r.md")])
    assert code == 0, out
    figures = tmp_path / "r_figures"
    assert written == [
        sorted([tmp_path / "r.md", tmp_path / "r.json", *(figures / n for n in plots.FIGURES)])
    ]
    assert {p.name for p in figures.iterdir()} == set(plots.FIGURES)

    args = [*argv[:-2], "--out", str(tmp_path / "again")]
    plan = make_plan(build_parser().parse_args(args), args)
    tasks = make_tasks(plan)
    outcomes, _ = run_plan(plan, tasks, None, [])
    cells = collect(plan, tasks, outcomes)
    color = {a.label: f"C{i}" for i, a in enumerate(plan.agents)}
    # latency CDF: the SLO line inside every panel; agents alike (greedy and the 1 ms timeout on
    # LLM-1) drawn in different line styles
    fig = plots._latency_cdf(plan, cells, color)
    for ax, scenario in zip(fig.axes, plan.scenarios, strict=False):
        low, high = ax.get_xlim()
        assert low < scenario.config.slo_ms < high
        assert len({line.get_linestyle() for line in ax.get_lines()[:3]}) == 3
    plt.close(fig)
    # Pareto: the axis says which p99; one marker shape per agent; plain tick labels, none minor
    fig = plots._pareto_quality_p99(plan, cells, color)
    ax = fig.axes[1]
    assert "mean of per-episode p99" in ax.get_xlabel()
    assert len({tuple(map(tuple, c.get_paths()[0].vertices)) for c in ax.collections}) == len(ax.collections)
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
    fig.canvas.draw()
    assert all("times" not in t.get_text() and "^" not in t.get_text() for t in ax.get_xticklabels())
    plt.close(fig)
    # cost and p99 against the rate, no score panel; log axes whose bars stay above 0
    fig = plots._score_vs_rate(plan, cells, color)
    assert [a.get_ylabel() for a in fig.axes] == [
        "cost per request (log)",
        "p99 latency, ms (log; mean of per-episode p99)",
    ]
    for ax in fig.axes:
        assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0
    plt.close(fig)


def test_error_bars_reaching_zero_are_cut_on_a_log_axis() -> None:
    from evaluation.plots import _error_bars

    bars, bottom = _error_bars([0.1, 0.5], [0.02, 0.9], log=True)
    assert bottom is not None and 0 < bottom < 0.08
    assert bars[0][0] == pytest.approx(0.02) and bars[1][1] == pytest.approx(0.9)
    assert 0.5 - bars[0][1] > 0 and 0.5 - bars[0][1] < bottom  # past the axis bottom, never <= 0
    linear, none = _error_bars([0.1, float("nan")], [0.02, float("nan")], log=False)
    assert none is None and linear[0][0] == pytest.approx(0.02) and math.isfinite(linear[0][1])


def test_a_scenario_that_draws_its_objective_says_so(tmp_path: Path) -> None:
    """benchmarks/configs/default_mixture_slo.yaml: each episode draws its SLO objective, and its
    cost, SLO attainment and hindsight bound use it; the legend says so (not for the others)."""
    scenario = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "default_mixture_slo.yaml"
    argv = ["--agents", "greedy", "--scenarios", f"default,{scenario}", "--seeds", "0-1", "--horizon-s", "1"]
    argv += ["--jobs", "1", "--no-plots", "--out", str(tmp_path / "r")]
    code, out = _main([*argv, "--report", str(tmp_path / "r.md")])
    assert code == 0, out
    legend = (tmp_path / "r.md").read_text().split("## Summary")[0]
    assert (
        "On default_mixture_slo each episode draws its own SLO objective (reward.slo_probability): its "
        "cost/req, SLO and hindsight bound use the episode's drawn SLO bound and penalty." in legend
    )
