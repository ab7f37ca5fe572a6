"""evaluate.py and the agent registry: specs, common random numbers, statistics, outputs, CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agents.registry import (
    AgentSpecError,
    CheckpointError,
    agent_names,
    make_agent,
    parse_agent_spec,
    run_episode,
    split_specs,
)
from apps import evaluate as evaluate_app
from batchenv import fileio
from batchenv.scenarios import list_scenarios, load_scenario
from evaluation.cells import collect, hindsight_bounds
from evaluation.outputs import make_run_dir, staged_run_dir
from evaluation.plan import build_parser, make_plan, seeds_for_requests
from evaluation.runner import make_bound_tasks, make_tasks, run_plan
from evaluation.stats import mean_ci95, relative_gap

REPO = Path(__file__).resolve().parents[1]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = evaluate_app.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------ registry
def test_agent_specs() -> None:
    assert split_specs("timeout(B=16,T=30),greedy, util_switch(queue_thresholds=[8,32])") == [
        "timeout(B=16,T=30)",
        "greedy",
        "util_switch(queue_thresholds=[8,32])",
    ]
    spec = parse_agent_spec("timeout(B=16, T=30, model=LLM-2)")
    assert spec.kwargs == {"preferred_batch_size": 16, "max_queue_delay_ms": 30, "model": "LLM-2"}
    assert parse_agent_spec("static(B=4)").kwargs == {"batch_size": 4}
    assert parse_agent_spec("util_switch(queue_thresholds=[8, null])").kwargs == {
        "queue_thresholds": [8, None]
    }
    assert parse_agent_spec("runs/x/ppo_default.zip").label == "ppo_default"
    with pytest.raises(AgentSpecError, match=r"unknown agent 'fifo'; known: \['greedy'"):
        parse_agent_spec("fifo")
    with pytest.raises(AgentSpecError, match="key=value"):
        parse_agent_spec("timeout(16)")
    config = load_scenario("default")
    agent = make_agent("timeout(B=16,T=30,model=LLM-2)", config)
    assert agent.params()["preferred_batch_size"] == 16 and agent.params()["model"] == "LLM-2"
    with pytest.raises(AgentSpecError, match="unknown parameter 'X'; accepted"):
        make_agent("timeout(X=1)", config)


def test_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    config = load_scenario("default")
    with pytest.raises(CheckpointError, match="file not found"):
        make_agent(str(tmp_path / "missing.zip"), config)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a zip archive"):
        make_agent(str(broken), config)


def test_optimal_is_not_applicable_to_two_workers() -> None:
    from agents.registry import NotApplicableError

    with pytest.raises(NotApplicableError, match="optimal does not apply to scenario 'multi_gpu'"):
        make_agent("optimal", load_scenario("multi_gpu"))


# ------------------------------------------------------------------------------------ statistics
def test_mean_ci95_is_the_student_t_interval() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci95([5.0])[1])
    assert mean_ci95([1.0, float("nan"), 3.0])[0] == 2.0


def test_relative_gap_is_of_mean_costs_with_a_paired_interval() -> None:
    rows = [{"seed": s, "cost_per_request": c} for s, c in [(0, 0.2), (1, 1.1), (2, 3.3)]]
    ref = {0: 0.1, 1: 1.0, 2: 3.0, 7: 9.0}
    gap, half = relative_gap(rows, ref)
    assert gap == pytest.approx((0.1 + 0.1 + 0.3) / 3 / (4.1 / 3))  # not the mean of ratios (0.4)
    assert half == pytest.approx(mean_ci95([0.1, 0.1, 0.3])[1] / (4.1 / 3))
    assert relative_gap(rows, {}) == (pytest.approx(math.nan, nan_ok=True),) * 2


# ------------------------------------------------------------------------------------ runs
ARGS = [
    "--agents",
    "greedy,timeout(B=8,T=20),optimal",
    "--scenarios",
    "default,multi_gpu",
    "--seeds",
    "0-2",
    "--horizon-s",
    "5",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same evaluation with --jobs 1 (and a report) and --jobs 2."""
    out = {}
    for jobs in (1, 2):
        root = tmp_path_factory.mktemp(f"jobs{jobs}")
        (root / "docs").mkdir()
        extra = ["--report", str(root / "docs" / "bench.md")] if jobs == 1 else ["--no-plots"]
        assert evaluate_app.main([*ARGS, "--jobs", str(jobs), "--out", str(root / "results"), *extra]) == 0
        (run_dir,) = (root / "results").iterdir()
        out[f"jobs{jobs}"] = run_dir
        out[f"root{jobs}"] = root
    return out


def test_jobs_2_gives_identical_results(runs: dict[str, Path]) -> None:
    one, two = runs["jobs1"], runs["jobs2"]
    for name in ("summary.csv", "per_seed.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    first, second = (json.loads((d / "results.json").read_text()) for d in (one, two))
    # the recorded command leaves out the execution flags, which never change the results
    commands = [data.pop("command") for data in (first, second)]
    assert "--jobs" not in " ".join(commands) and "--report" in commands[0] and "--no-plots" in commands[1]
    assert first == second


def test_the_recorded_command_leaves_out_the_execution_flags() -> None:
    from evaluation.plan import recorded_command

    argv = ["--agents", "greedy", "--backend", "ray", "--address=auto", "--jobs", "2", "--n-seeds", "3"]
    assert recorded_command(argv) == "python evaluate.py --agents greedy --n-seeds 3"
    assert recorded_command(["--job", "2"]) == "python evaluate.py"  # an abbreviation argparse takes
    assert recorded_command([]) == "python evaluate.py"


def test_common_random_numbers(runs: dict[str, Path]) -> None:
    rows = _read_csv(runs["jobs1"] / "per_seed.csv")
    arrived: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        arrived.setdefault((row["scenario"], row["seed"]), set()).add(row["n_arrived"])
    assert len(arrived) == 6  # 2 scenarios x 3 seeds
    assert all(len(values) == 1 for values in arrived.values())  # every agent, the same arrivals
    # and the very same arrival times: compare against the simulator directly
    config = load_scenario("default").replace(horizon_s=5.0)
    times = []
    for spec in ("greedy", "static(B=32)"):
        sim = run_episode(make_agent(spec, config), config, 1)
        times.append(sorted([*sim.admitted_arrivals_s, *sim.drop_times_s]))
    assert times[0] == times[1]


def test_summary_statistics_and_gaps(runs: dict[str, Path]) -> None:
    summary = {(r["scenario"], r["agent"]): r for r in _read_csv(runs["jobs1"] / "summary.csv")}
    per_seed = _read_csv(runs["jobs1"] / "per_seed.csv")
    greedy = summary[("default", "greedy")]
    costs = [
        float(r["cost_per_request"])
        for r in per_seed
        if r["agent"] == "greedy" and r["scenario"] == "default"
    ]
    mean, half = mean_ci95(costs)
    assert float(greedy["cost_per_request_mean"]) == pytest.approx(mean)
    assert float(greedy["cost_per_request_ci95"]) == pytest.approx(half)
    assert float(greedy["cost_per_request_mean"]) == pytest.approx(
        1.0 - float(greedy["score_per_request_mean"])
    )
    assert greedy["n_seeds"] == "3" and greedy["reference"] == "optimal"
    assert float(summary[("default", "optimal")]["gap_mean"]) == 0.0
    assert float(summary[("default", "timeout(B=8,T=20)")]["gap_mean"]) > 0.0  # nothing beats the optimum
    # optimal models one worker: n/a on two, and the gap falls back to the tuned timeout
    assert summary[("multi_gpu", "optimal")]["status"] == "n/a"
    assert summary[("multi_gpu", "greedy")]["reference"] == "timeout(B=8,T=20)"
    assert "given" in summary[("default", "timeout(B=8,T=20)")]["params_source"]
    mix = sum(float(greedy[f"mix_LLM-{k}_mean"]) for k in (1, 2, 3))
    assert mix == pytest.approx(1.0)


def test_outputs_and_report(runs: dict[str, Path]) -> None:
    run_dir = runs["jobs1"]
    names = {p.name for p in run_dir.iterdir()}
    assert names == {
        "summary.csv",
        "per_seed.csv",
        "results.json",
        "report.md",
        "latency_cdf.png",
        "score_vs_rate.png",
        "pareto_quality_p99.png",
    }
    report = (runs["root1"] / "docs" / "bench.md").read_text()
    assert "python evaluate.py --agents" in report and "bench_figures/latency_cdf.png" in report
    figures = runs["root1"] / "docs" / "bench_figures"
    assert sorted(p.name for p in figures.iterdir()) == [
        "latency_cdf.png",
        "pareto_quality_p99.png",
        "score_vs_rate.png",
    ]
    data = json.loads((run_dir / "results.json").read_text())
    # the report's data file holds the same content as the run folder's results.json
    assert (runs["root1"] / "docs" / "bench.json").read_text() == (run_dir / "results.json").read_text()
    assert data["seeds"] == [0, 1, 2]
    multi = next(s for s in data["scenarios"] if s["name"] == "multi_gpu")
    assert multi["n_workers"] == 2 and multi["process"] == "poisson" and multi["mean_rate_per_s"] > 0
    cell = next(c for c in data["cells"] if c["agent"] == "optimal" and c["scenario"] == "multi_gpu")
    assert "one worker" in cell["not_applicable"]


def test_figures_are_compact_palette_pngs(runs: dict[str, Path]) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from evaluation.plots import compact_png

    for path in sorted(runs["jobs1"].glob("*.png")):
        image = Image.open(path)
        assert image.mode == "P" and image.size[0] > 500, path.name
    fig, ax = plt.subplots()
    ax.plot(range(10), [x * x for x in range(10)])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    rgba = buffer.getvalue()
    small = compact_png(rgba)
    assert len(small) < len(rgba) / 2 and compact_png(rgba) == small  # smaller and deterministic
    assert Image.open(io.BytesIO(small)).size == Image.open(io.BytesIO(rgba)).size


def test_a_run_folder_exists_only_when_complete(tmp_path: Path, monkeypatch) -> None:
    """A failure while the results are written (a full disk) leaves no run folder behind; the
    command says so and exits 1."""
    real = fileio.write_atomic
    calls = []

    def disk_full(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr("apps.evaluate.write_atomic", disk_full)
    argv = ["--agents", "greedy", "--seeds", "0", "--horizon-s", "1", "--jobs", "1", "--no-plots"]
    assert evaluate_app.main([*argv, "--no-hindsight", "--out", str(tmp_path)]) == 1
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr("apps.evaluate.write_atomic", real)
    with staged_run_dir(tmp_path) as run:
        staging = run.path
        assert staging.name.startswith(".eval_") and staging.name.endswith(".partial")
        (staging / "a.txt").write_text("x")
    assert not staging.exists() and (run.path / "a.txt").read_text() == "x"
    assert run.path.name.startswith("eval_")


def test_run_folders_are_never_reused_and_writes_are_atomic(tmp_path: Path, monkeypatch) -> None:
    first = make_run_dir(tmp_path)
    (first / "keep.txt").write_text("mine")
    second = make_run_dir(tmp_path)
    assert first != second and (first / "keep.txt").read_text() == "mine"
    assert not list(second.iterdir())

    target = tmp_path / "out.csv"
    fileio.write_atomic(target, "old\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        fileio.write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["out.csv"]  # no temp left


# ------------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agents", "greedy,fifo"], "unknown agent 'fifo'; known: ['greedy'"),
        (["--agents", "timeout(X=1)"], "unknown parameter 'X'"),
        (["--agents", "timeout(T=500)"], "max_wait_ms"),
        (["--agents", "timeout(B=8"], "unbalanced brackets"),
        (["--agents", "greedy,greedy"], "'greedy' given twice"),
        (["--agents", "nowhere/agent.zip"], "file not found"),
        (["--scenarios", "atlantis"], "--scenarios: unknown scenario 'atlantis' ("),
        (["--scenarios", "high_lod"], "--scenarios: unknown scenario 'high_lod'; did you mean 'high_load'?"),
        (
            ["--scenarios", "default", "--horizon-s", "1e9"],
            "--horizon-s: on scenario 'default': 1e+09 s at up to 100 requests/s is more than",
        ),
        (["--scenarios", "missing.yaml"], "config file not found"),
        (["--seeds", "0-x"], "--seeds: bad seed"),
        (["--seeds", "3-1"], "--seeds: bad seed range"),
        (["--n-seeds", "0"], "--n-seeds must be in [1, 100000]"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--horizon-s", "-1"], "--horizon-s must be a number > 0"),
        (["--reference", "best"], "--reference: 'best' is not among the agents"),
        (["--n-seeds", "three"], "invalid int value"),
        (["--seeds", "0", "--n-seeds", "2"], "not allowed with argument"),
        (["--min-requests", "-1"], "--min-requests must be in [0, 10000000], got -1"),
        (
            ["--scenarios", "poisson_rate_1", "--min-requests", "10000000"],
            "--min-requests: scenario 'poisson_rate_1' would need 166,667 episodes (at most 100,000)",
        ),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(
    argv: list[str], message: str, capsys, tmp_path: Path
) -> None:
    code, out, err = _run([*argv, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert not list(tmp_path.iterdir())  # nothing written


def test_scenario_errors_are_short_and_list_names_only_for_an_unknown_one(capsys, tmp_path: Path) -> None:
    """An error inside the user's own scenario file is the field and its range, not followed by
    every scenario name (each error line ran to ~1,500 characters); an unknown name gets the
    close names and the command that lists them all."""
    scenario = tmp_path / "mine.yaml"
    scenario.write_text("extends: default\narrivals:\n  rate_per_s: -1\n")
    code, _, err = _run(["--scenarios", str(scenario), "--out", str(tmp_path / "out")], capsys)
    line = err.strip().splitlines()[-1]
    assert (
        code == 2
        and line
        == f"evaluate.py: error: --scenarios: {str(scenario)!r}: arrivals.rate_per_s: must be > 0, got -1.0"
    )
    code, _, err = _run(["--scenarios", "azure_trace_3", "--out", str(tmp_path / "out")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "did you mean 'azure_trace_30' or " in line
    assert "python evaluate.py --list-scenarios" in line
    assert len(line) < 400 and "poisson_05" not in line


def test_list_scenarios_prints_every_name_with_its_description(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--list-scenarios`` (the command an unknown name's error points to): one line per scenario,
    the packaged ones and those of $BATCHENV_SCENARIO_PATH, with the first sentence of the comment
    that opens the file; a file without one, or one that does not parse, is listed all the same."""
    (tmp_path / "zz_mine.yaml").write_text("# My own scenario. More text.\nextends: default\n")
    (tmp_path / "zz_plain.yaml").write_text("extends: default\n")
    (tmp_path / "zz_broken.yaml").write_text("# Broken on purpose.\narrivals: [\n")
    (tmp_path / "zz_folder.yaml").mkdir()
    (tmp_path / "zz_dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    monkeypatch.setenv("BATCHENV_SCENARIO_PATH", str(tmp_path))
    code, out, err = _run(["--list-scenarios"], capsys)
    assert code == 0 and not err
    rows = {line.split()[0]: line.split(maxsplit=1)[1:] for line in out.splitlines()}
    assert set(rows) == set(list_scenarios()) and len(rows) == len(out.splitlines())
    assert rows["default"] == [
        "The project brief's system: one GPU, three models, Poisson arrivals at 100 requests/s "
        "(the brief's example rate)."
    ]
    assert rows["zz_mine"] == ["My own scenario."]
    assert rows["zz_plain"] == [] and rows["zz_broken"] == ["Broken on purpose."]
    assert rows["zz_folder"] == rows["zz_dangling"] == ["(unreadable: not a file)"]


def test_help_explains_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "evaluate.py", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    text = result.stdout
    for flag in (
        "--agents",
        "--scenarios",
        "--seeds",
        "--n-seeds",
        "--min-requests",
        "--horizon-s",
        "--jobs",
        "--reference",
        "--no-tuned",
        "--out",
        "--report",
        "--no-plots",
        "--quick",
    ):
        assert flag in text
    assert "timeout(B=16,T=30,model=LLM-2)" in text and "examples:" in text
    listed = text.split("agents (--agents")[1].split("examples:")[0]
    for name in agent_names():  # every known agent has its line (robust was missing)
        assert re.search(rf"^  {name}[ (]", listed, re.MULTILINE), name


def test_checkpoint_agent_runs_in_evaluate(tmp_path: Path, capsys) -> None:
    from stable_baselines3 import PPO

    from agents.checkpoint import save_checkpoint
    from batchenv.env import DynamicBatchingEnv

    config = load_scenario("default")
    model = PPO("MlpPolicy", DynamicBatchingEnv(config), n_steps=32, batch_size=32, seed=0, device="cpu")
    path = save_checkpoint(model, tmp_path / "ppo_tiny.zip", config, algo="ppo")
    code, _, err = _run(
        [
            "--agents",
            f"greedy,{path}",
            "--seeds",
            "0-1",
            "--horizon-s",
            "2",
            "--jobs",
            "1",
            "--no-plots",
            "--out",
            str(tmp_path / "results"),
        ],
        capsys,
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "results").iterdir()
    rows = {r["agent"]: r for r in _read_csv(run_dir / "summary.csv")}
    assert (
        rows["ppo_tiny"]["status"] == "ok" and rows["ppo_tiny"]["params_source"] == "checkpoint ppo_tiny.zip"
    )
    assert rows["ppo_tiny"]["n_arrived_mean"] == rows["greedy"]["n_arrived_mean"]
    assert np.isfinite(float(rows["ppo_tiny"]["cost_per_request_mean"]))
    # a checkpoint trained for one worker does not fit two: not applicable there, with the reason
    code, out, err = _run(
        ["--agents", f"greedy,{path}", "--scenarios", "multi_gpu", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 0, err
    assert "n_workers, models and env.batch_choice must match" in out + err
    (run_dir,) = (tmp_path / "x").iterdir()
    rows = {r["agent"]: r for r in _read_csv(run_dir / "summary.csv")}
    assert rows["ppo_tiny"]["status"] == "n/a" and rows["greedy"]["status"] == "ok"


def test_demo_shows_where_decisions_matter_and_says_what_it_shows(tmp_path: Path, capsys) -> None:
    from evaluation.plan import DEMO_AGENTS, DEMO_SCENARIOS

    argv = [
        "--demo",
        "--seeds",
        "0,1",
        "--horizon-s",
        "3",
        "--jobs",
        "1",
        "--no-plots",
        "--out",
        str(tmp_path),
    ]
    code, out, _ = _run(argv, capsys)
    assert code == 0, out
    (run_dir,) = tmp_path.iterdir()
    data = json.loads((run_dir / "results.json").read_text())
    assert [s["name"] for s in data["scenarios"]] == list(DEMO_SCENARIOS)
    agents = {c["agent"] for c in data["cells"]}
    assert set(DEMO_AGENTS) | {"ppo_default_mixture"} == agents  # the shipped checkpoint beside the others
    # the closing lines rank the agents by their measured cost, per scenario, with their gaps
    for scenario in DEMO_SCENARIOS:
        (line,) = [x for x in out.splitlines() if x.startswith(f"  {scenario} ")]
        cells = {c["agent"]: c for c in data["cells"] if c["scenario"] == scenario and c["per_seed"]}
        ranked = sorted(cells, key=lambda a: cells[a]["summary"]["cost_per_request"]["mean"])
        positions = [line.index(f" {agent} ") for agent in ranked]
        assert positions == sorted(positions), line
        ref = cells[ranked[0]]["reference"]
        assert f"vs {ref}:" in line
        for agent in ranked:
            if agent != ref:
                assert f"{agent} {cells[agent]['summary']['gap']['mean']:+.1%}" in line
    assert f"results: {run_dir}/" in out and f"report: {run_dir / 'report.md'}" in out
    # one worker: the bound is exact (found and bound differ by rounding noise only), so no
    # "+0.0% above the bound" line claims a room between the two
    assert all(s["n_workers"] == 1 for s in data["scenarios"])
    assert "the best schedule found with the arrivals known" not in out


def test_seeds_for_requests_extends_only_a_quiet_scenario() -> None:
    assert seeds_for_requests([0, 1, 2], 1000.0, 2000) == [0, 1, 2]  # busy: 3,000 requests already
    assert seeds_for_requests([0, 1, 2], 1000.0, 0) == [0, 1, 2]
    assert seeds_for_requests([5, 6], 100.0, 1000) == list(range(5, 15))  # the seeds that follow
    assert seeds_for_requests([0, 1], 149.0, 1000) == list(range(7))  # ceil(1000 / 149) episodes
    with pytest.raises(ValueError, match="requests_per_episode must be > 0"):
        seeds_for_requests([0], 0.0, 10)


def test_min_requests_gives_a_spiky_scenario_more_seeds_and_says_so(tmp_path: Path, capsys) -> None:
    """--min-requests: bursty_low (2.49 requests/s) gets the seeds that follow until its episodes
    hold the requests asked for; the default scenario (100/s) keeps its seeds; the shared seeds
    give the same episodes as without the flag (common random numbers are kept)."""
    base = ["--agents", "greedy,timeout", "--scenarios", "bursty_low,default", "--seeds", "0,1"]
    base += ["--horizon-s", "5", "--jobs", "1", "--no-plots", "--no-hindsight"]
    code, _, err = _run([*base, "--out", str(tmp_path / "plain")], capsys)
    assert code == 0, err
    report = tmp_path / "more.md"
    code, _, err = _run(
        [*base, "--min-requests", "1000", "--out", str(tmp_path / "more"), "--report", str(report)], capsys
    )
    assert code == 0, err
    plain, more = (
        json.loads(next((tmp_path / d).iterdir()).joinpath("results.json").read_text())
        for d in ("plain", "more")
    )
    per_episode = load_scenario("bursty_low").arrivals.mean_rate_per_s * 5.0
    expected = list(range(math.ceil(1000 / per_episode)))
    assert len(expected) > 50  # 12.4 requests per 5 s episode
    seeds = {s["name"]: s["seeds"] for s in more["scenarios"]}
    assert seeds == {"bursty_low": expected, "default": [0, 1]}
    for cell in more["cells"]:
        assert [row["seed"] for row in cell["per_seed"]] == seeds[cell["scenario"]]
        (same,) = [
            c for c in plain["cells"] if (c["scenario"], c["agent"]) == (cell["scenario"], cell["agent"])
        ]
        assert cell["per_seed"][:2] == same["per_seed"]
    text = report.read_text()
    assert "fewer than 1,000 requests on average" in text
    assert f"bursty_low 0-{expected[-1]} ({len(expected)} per cell)" in text
    assert "default 0-1" not in text


# ------------------------------------------------------------------------------------ failures
def test_output_places_are_checked_before_any_episode(tmp_path: Path, capsys) -> None:
    """A bad --out or --report fails at once (exit 2), not after every episode has run."""
    report_dir = tmp_path / "missing"
    for argv, message in [
        (["--out", "/dev/null/x"], "--out: cannot create folder /dev/null/x"),
        (["--report", str(report_dir / "r.md")], f"--report: folder {report_dir} does not exist"),
        (["--report", str(tmp_path)], "is a folder"),
    ]:
        code, out, err = _run(["--agents", "greedy", "--seeds", "0", "--horizon-s", "1", *argv], capsys)
        assert code == 2, err
        assert message in err and "episodes" not in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_folder_fails_at_once(tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = _run(
        ["--agents", "greedy", "--seeds", "0", "--horizon-s", "1", "--out", str(locked)], capsys
    )
    assert code == 2 and f"--out: cannot write into {locked}" in err


def test_missing_trace_is_an_error_while_planning(tmp_path: Path, capsys) -> None:
    scenario = tmp_path / "lost.yaml"
    scenario.write_text("extends: azure_trace\nname: lost\narrivals:\n  trace_path: nowhere.csv\n")
    code, out, err = _run(["--scenarios", str(scenario), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "trace file not found" in err and "episodes" not in out


def test_a_failing_episode_is_an_error_cell_and_the_rest_is_kept(tmp_path: Path, capsys) -> None:
    """A trace that vanishes after planning: the ConfigError raised in the worker process comes
    back with its message (not BrokenProcessPool); the healthy scenario's results are written."""
    trace = tmp_path / "trace.csv"
    shutil.copy(REPO / "batchenv" / "data" / "azure_conv_excerpt.csv", trace)
    scenario = tmp_path / "fragile.yaml"
    scenario.write_text(f"extends: azure_trace\nname: fragile\narrivals:\n  trace_path: {trace}\n")
    args = [
        "--agents",
        "greedy,timeout(B=8,T=20)",
        "--scenarios",
        f"default,{scenario}",
        "--seeds",
        "0-1",
        "--horizon-s",
        "2",
        "--jobs",
        "2",
        "--no-plots",
        "--out",
        str(tmp_path / "out"),
    ]
    plan = make_plan(build_parser().parse_args(args), args)
    trace.unlink()
    tasks, bound_tasks = make_tasks(plan), make_bound_tasks(plan)
    outcomes, bound_outcomes = run_plan(plan, tasks, None, bound_tasks)
    hindsight = hindsight_bounds(plan, bound_tasks, bound_outcomes)
    assert set(hindsight.lower) == set(hindsight.found) == {"default"}
    assert "trace file not found" in hindsight.missing["fragile"]
    cells = collect(plan, tasks, outcomes, hindsight.lower)
    assert cells[("greedy", "default")].per_seed and not cells[("greedy", "default")].error
    failed = cells[("greedy", "fragile")]
    assert not failed.per_seed
    assert "ConfigError" in failed.error and "trace file not found" in failed.error
    assert "BrokenProcessPool" not in failed.error


def test_every_agent_is_at_or_above_the_hindsight_bound(tmp_path: Path) -> None:
    """The bound is the least cost of any schedule on the episode's arrivals: every agent's gap
    to it is >= 0 seed by seed; results.json records it per seed; two workers get a reason."""
    code = evaluate_app.main(
        [
            "--agents",
            "greedy,timeout,proposed",
            "--scenarios",
            "bursty,multi_gpu",
            "--seeds",
            "0-1",
            "--horizon-s",
            "3",
            "--jobs",
            "1",
            "--no-plots",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    data = json.loads(next(tmp_path.glob("eval_*/results.json")).read_text())
    scenarios = {s["name"]: s for s in data["scenarios"]}
    bounds = {int(k): v for k, v in scenarios["bursty"]["hindsight_cost_per_request"].items()}
    assert sorted(bounds) == [0, 1] and all(v > 0 for v in bounds.values())
    assert "--hindsight-several" in scenarios["multi_gpu"]["no_hindsight"]
    for cell in data["cells"]:
        if cell["scenario"] != "bursty":
            assert "gap_hindsight" not in cell["summary"]
            continue
        assert cell["summary"]["gap_hindsight"]["mean"] >= 0
        for row in cell["per_seed"]:
            assert row["cost_per_request"] >= bounds[row["seed"]] * (1 - 1e-9)


def test_hindsight_several_bounds_the_multi_worker_scenarios(tmp_path: Path, capsys) -> None:
    """With --hindsight-several the two-worker scenario gets its lower bound too, below every
    agent seed by seed, and the schedule found with the arrivals known, above the bound; the
    summary states the gap between the two."""
    argv = ["--agents", "greedy,timeout", "--scenarios", "multi_gpu", "--seeds", "0-1", "--horizon-s", "1"]
    assert (
        evaluate_app.main([*argv, "--jobs", "1", "--no-plots", "--hindsight-several", "--out", str(tmp_path)])
        == 0
    )
    data = json.loads(next(tmp_path.glob("eval_*/results.json")).read_text())
    scenario = data["scenarios"][0]
    bounds = {int(k): v for k, v in scenario["hindsight_cost_per_request"].items()}
    found = {int(k): v for k, v in scenario["hindsight_found_cost_per_request"].items()}
    assert sorted(bounds) == sorted(found) == [0, 1] and all(v > 0 for v in bounds.values())
    assert all(bounds[seed] < found[seed] for seed in bounds)
    for cell in data["cells"]:
        for row in cell["per_seed"]:
            assert row["cost_per_request"] >= bounds[row["seed"]]
    lower = sum(bounds.values()) / 2
    room = (sum(found.values()) / 2 - lower) / lower
    out = " ".join(capsys.readouterr().out.split())
    assert f"the best schedule found with the arrivals known is {room:+.1%} above the bound" in out


def test_checkpoints_of_the_same_file_name_are_labelled_by_their_folder(tmp_path: Path) -> None:
    """Every training run names its model final_model.zip: two runs compare without renaming."""
    from evaluation.plan import distinct_checkpoint_labels

    specs = [parse_agent_spec(s) for s in ("runs/a/final_model.zip", "runs/b/final_model.zip", "x/best.zip")]
    labels = [spec.label for spec in distinct_checkpoint_labels([*specs, parse_agent_spec("greedy")])]
    assert labels == ["a/final_model", "b/final_model", "best", "greedy"]
    same = [parse_agent_spec("runs/a/final_model.zip"), parse_agent_spec("other/a/final_model.zip")]
    clashing = [spec.label for spec in distinct_checkpoint_labels(same)]
    assert clashing == ["a/final_model", "a/final_model"]  # still the same: evaluate.py says so
