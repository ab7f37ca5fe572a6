"""benchmarks/learning.py: what it trains and assesses, and its report (no training here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from benchmark_scripts import load_script

from apps import train, train_plan
from batchenv.scenarios import load_scenario, trace_scenarios
from benchmarks.learning_parts import assessment, runs, tables

REPO = Path(__file__).resolve().parents[1]


def _learning():
    return load_script("learning", "learning_benchmark")


def test_experiments_are_valid_train_commands_with_relative_folders() -> None:
    learning = _learning()
    for experiment in learning.EXPERIMENTS.values():
        argv = experiment.command("0-2", "runs/learning", 2)[2:]
        args, sweep = train.parse_command_line(argv)
        assert sweep is not None and sweep.seeds == [0, 1, 2]
        assert args.runs_dir == "runs/learning" and args.run_name == experiment.name
        assert not any(name.endswith("_test") for name in args.eval_scenarios), (
            "model selection must never see a held-out half"
        )
        train_plan.plan_run(args)  # the scenario and hyperparameters resolve
        assert shlex.split(shlex.join(experiment.command("0-2", "runs/learning", 2)))[:2] == [
            "python",
            "train.py",
        ]


def test_assessment_covers_low_rates_and_every_held_out_half() -> None:
    names = _learning().assessment_scenarios()
    assert {"poisson_rate_1", "poisson_rate_3", "poisson_rate_10"} <= set(names)
    assert {f"{t}_test" for t in trace_scenarios()} <= set(names)
    assert all(load_scenario(n).n_workers == 1 for n in names)
    assert not any(n.endswith("_train") for n in names)


def test_report_lists_every_scenario_and_the_worst_gap() -> None:
    learning = _learning()
    summary = {
        "gap_to_baselines": {"mean": 0.01, "ci95": 0.005, "worst": 0.02, "n": 3},
        "gap_to_timeout": {"mean": -0.1, "ci95": 0.01, "worst": -0.05, "n": 3},
        "gap_to_greedy": {"mean": 0.01, "ci95": 0.005, "worst": 0.02, "n": 3},
        "latency_p99_ms": {"mean": 80.0},
        "mean_quality": {"mean": 0.99},
        "latency_mean_ms": {"mean": 30.0},
        "slo_attainment": {"mean": 1.0},
    }
    timeout = {"tuned_on": "x_train", "params": {"preferred_batch_size": 2}, "source": "grid"}
    poisson = {  # where the optimum applies, the tuned timeout's own gap to it is a row too
        "greedy": {"cost_per_request": 0.2, "latency_p99_ms": 90.0},
        "timeout_tuned": {"cost_per_request": 0.102, "latency_p99_ms": 50.0},
        "optimal": {"cost_per_request": 0.1, "latency_p99_ms": 40.0},
    }
    result = {
        "meta": {
            "command": "python benchmarks/learning.py",
            "date": "now",
            "assess_seeds": [1, 2],
            "assess_horizon_s": 60,
            "assess_min_requests": 1000,
            "model": "best",
        },
        "experiments": {
            "ppo_mixture": {
                "description": "d",
                "command": "c",
                "models": ["m0"],
                "steps": [1000],
                "kept_gap": [0.005],
                "curve": [],
            }
        },
        "shipped": [],
        "assessment": {
            name: {
                "seeds": seeds,
                "timeout": timeout,
                "references": references,
                "agents": {
                    "ppo_mixture": {"summary": summary, "models": [{"model": "m0", "gap_to_baselines": gap}]}
                },
            }
            for name, seeds, references, gap in (
                ("a_test", [1, 2], {}, 0.01),
                ("b", [1, 2, 3, 4], poisson, 0.03),
            )
        },
    }
    text = learning.markdown(result)
    assert "`python benchmarks/learning.py`" in text.splitlines()[2]
    assert "(`benchmarks/results/learning.json`, learning curves" in text  # the default names
    result["meta"] |= {"out": "elsewhere/rerun.json", "plot": "elsewhere/rerun.png"}
    assert "(`elsewhere/rerun.json`, learning curves `elsewhere/rerun.png`)" in learning.markdown(result)
    assert "fewer than 1,000 requests on average is assessed on the seeds that follow too" in text
    assert "b 4 episodes." in text and "a_test 2" not in text
    assert "| b | timeout (tuned) | +2.00% | +0.00% | -49.00% | 50.0 | n/a |" in text
    # the summary counts the scenarios within 2% on the mean, and names those where a seed is not
    summary["gap_to_baselines"]["worst"] = 0.025
    rows = "\n".join(learning.summary_lines(result))
    assert (
        "| ppo_mixture | 1 seed, 1,000 steps | 2 of 2 | a_test (+2.50%), b (+2.50%) | "
        "a_test (+1.00% ± 0.50%) |" in rows
    )
    assert "| a_test | timeout (tuned)" not in text
    assert "| `m0` | +0.50% | b (+3.00%) | b (+3.00%) |" in text  # per model
    assert "| a_test | +1.00% ± 0.50% [+2.00%] |" in text
    assert "| **worst** | +2.00% |" in text
    # shipped checkpoints only: no experiment to describe and no training curve to point to
    result |= {"experiments": {}, "shipped": ["checkpoints/x.zip"]}
    result["meta"]["plot"] = None
    intro = learning.markdown(result).splitlines()[2]
    assert "(`elsewhere/rerun.json`; no learning curves)" in intro
    assert "No experiment: the shipped checkpoints (`checkpoints/*.zip`), one model each, are" in intro
    assert "trained once per seed" not in intro


def test_results_name_their_files_relative_to_the_repository(tmp_path: Path) -> None:
    learning = _learning()
    assert learning._shown(learning.REPO / "docs" / "results" / "x.md") == "docs/results/x.md"
    assert learning._shown(tmp_path / "x.json") == str(tmp_path / "x.json")


def test_a_quiet_scenario_gets_more_episodes_up_to_the_least_number_of_requests() -> None:
    seeds = [30000, 30001, 30002, 30003, 30004]
    # busy: five 60 s episodes at 100/s hold 30,000 requests, the seeds are kept
    assert assessment.scenario_seeds("default", seeds, 60.0, 10_000) == seeds
    # 1 request/s: 60 per episode, 167 episodes for 10,000, the following seeds
    quiet = assessment.scenario_seeds("poisson_rate_1", seeds, 60.0, 10_000)
    assert len(quiet) == 167 and quiet[:5] == seeds and quiet == list(range(30000, 30167))
    rate = load_scenario("bursty_low").arrivals.mean_rate_per_s
    spiky = assessment.scenario_seeds("bursty_low", seeds, 30.0, 10_000)
    assert len(spiky) * rate * 30.0 >= 10_000 > (len(spiky) - 1) * rate * 30.0
    assert assessment.scenario_seeds("bursty_low", seeds, 60.0, 0) == seeds


@pytest.mark.parametrize("agent", ["greedy", "timeout", "proposed", "checkpoints/ppo_default_mixture.zip"])
def test_the_assessment_and_evaluate_run_the_same_episodes(agent: str) -> None:
    """The assessment and evaluate.py (hence the checkpoint cards) build the same scenario, tuned
    timeout and agent: on the same seed they give the same cost bit for bit, so where they
    disagree it is the seeds they sample (docs/rl.md, "Spikes on a quiet server")."""
    from execution.episode import EpisodeTask, run_episode_task

    seeds = [0, 30000]
    timeout = {"params": assessment.load_tuned(load_scenario("bursty_low")).agents["timeout"]["params"]}
    spec = "timeout_tuned" if agent == "timeout" else agent
    rows = assessment._episodes(spec, "bursty_low", seeds, 20.0, timeout)["per_seed"]
    evaluated = [run_episode_task(EpisodeTask(agent, "bursty_low", seed, 20.0, True)) for seed in seeds]
    assert [r["cost_per_request"] for r in rows] == [e.metrics["cost_per_request"] for e in evaluated]


def test_a_best_model_is_reported_at_the_step_it_was_kept(tmp_path: Path, monkeypatch) -> None:
    import json

    monkeypatch.setattr(runs, "REPO", tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    gaps = [(100, 0.3), (200, 0.1), (300, 0.2), (400, 0.1), (410, 0.15)]
    history = [{"timesteps": step, "gap_to_reference": gap} for step, gap in gaps]
    (run / "evaluations.json").write_text(json.dumps(history))
    assert runs.kept_at_step("run/best_model.zip") == 200  # the first of the lowest, as kept
    assert runs.kept_at_step("run/final_model.zip") == runs.trained_steps("run/best_model.zip") == 410
    assert tables._steps_text(410, 200) == " (kept at 200 of 410 steps)"
    assert tables._steps_text(410, 410) == " (410 steps)"


@pytest.mark.parametrize(
    "flags",
    [
        ["--runs-dir", "/abs/path"],
        ["--experiments", "nope"],
        ["--assess-min-requests", "-1"],
        ["--assess-horizon-s", "0"],
    ],
)
def test_bad_flags(flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _learning().main(["--collect-only", *flags])
    assert exit_info.value.code == 2


def test_only_the_unfinished_seeds_are_trained_into_a_continuation_sweep(tmp_path: Path, monkeypatch) -> None:
    import argparse
    import json
    import os

    learning = _learning()
    experiment = learning.EXPERIMENTS["dqn_mixture"]
    runs_dir = os.path.relpath(tmp_path, REPO)
    for folder, seed, finished in (("dqn_mixture", 0, True), ("dqn_mixture", 1, False)):
        run = tmp_path / folder / f"dqn_default_mixture_seed{seed}"
        run.mkdir(parents=True)
        (run / "evaluations.json").write_text(json.dumps([{"timesteps": 5}]))
        if finished:
            (run / "final_model.zip").write_bytes(b"")
    calls: list[list[str]] = []
    monkeypatch.setattr(runs.subprocess, "run", lambda command, **_: calls.append(command))
    args = argparse.Namespace(seeds="0-2", runs_dir=runs_dir, jobs=1)
    learning.train_experiment(experiment, args)
    (command,) = calls
    assert command[command.index("--seeds") + 1] == "1,2"
    assert command[command.index("--run-name") + 1] == "dqn_mixture+seeds1_2"
    # the finished seed is the experiment's only model until the continuation finishes
    assert learning.trained_models(experiment, runs_dir, "best") == [
        str(Path(runs_dir) / "dqn_mixture" / "dqn_default_mixture_seed0" / "best_model.zip")
    ]
    # a command that asks for other seeds does not see this one
    assert learning.trained_models(experiment, runs_dir, "best", {1, 2}) == []
    assert learning.trained_models(experiment, runs_dir, "best", {0}) == learning.trained_models(
        experiment, runs_dir, "best"
    )
    (tmp_path / "dqn_mixture+seeds1_2").mkdir()
    with pytest.raises(SystemExit, match="interrupted sweep"):
        learning.train_experiment(experiment, args)
    # the results name the commands of the sweeps whose models they use, not every sweep's
    for folder in ("dqn_mixture", "dqn_mixture+seeds1_2"):
        (tmp_path / folder / "command.txt").write_text(f"train {folder}\n")
    models = learning.trained_models(experiment, runs_dir, "best", {0})
    assert learning.sweep_commands(experiment, runs_dir, models) == ["train dqn_mixture"]
    assert learning.sweep_commands(experiment, runs_dir) == [
        "train dqn_mixture",
        "train dqn_mixture+seeds1_2",
    ]


def _finished_dqn_mixture_runs(tmp_path: Path, histories: dict[int, list[dict]]) -> str:
    """Finished run folders of ``dqn_mixture`` under ``tmp_path``, one per seed with its training
    evaluations; returns the runs directory relative to the repository."""
    import json
    import os

    for seed, history in histories.items():
        run = tmp_path / "dqn_mixture" / f"dqn_default_mixture_seed{seed}"
        run.mkdir(parents=True)
        (run / "evaluations.json").write_text(json.dumps(history))
        (run / "final_model.zip").write_bytes(b"")
    return os.path.relpath(tmp_path, REPO)


def test_a_target_is_tabulated_at_every_step_every_seed_reached(tmp_path: Path) -> None:
    learning = _learning()
    experiment = learning.EXPERIMENTS["dqn_mixture"]

    def record(step: int, gap: float, precise: float) -> dict:
        cell = {"gap_to_reference": gap, "model_mix/LLM-1": precise, "model_mix/LLM-3": 1 - precise}
        return {"timesteps": step, "per_rate": {"poisson_50": cell}}

    histories = {
        0: [record(100, 0.01, 0.0), record(200, 0.03, 0.2), record(300, 0.05, 0.3)],
        1: [record(100, 0.03, 0.1), record(200, 0.05, 0.4)],  # stopped earlier: no step 300
    }
    runs_dir = _finished_dqn_mixture_runs(tmp_path, histories)
    curve = learning.target_curves(experiment, runs_dir, "poisson_50")
    assert [row["timesteps"] for row in curve] == [100, 200]  # 300: only one seed reached it
    assert curve[1]["mean"] == pytest.approx(0.04) and curve[1]["n"] == 2
    assert curve[1]["model_mix"] == pytest.approx({"LLM-1": 0.3, "LLM-3": 0.7})
    assert learning.target_curves(experiment, runs_dir, "high_load") == []
    assert learning.target_curves(experiment, runs_dir, "poisson_50", {0})[-1]["timesteps"] == 300
    result = {
        "meta": {"curve_targets": ["poisson_50", "high_load"]},
        "experiments": {"dqn_mixture": {"target_curves": {"poisson_50": curve, "high_load": []}}},
    }
    lines = tables.target_curve_lines(result)
    assert "## Over training: poisson_50" in lines and "## Over training: high_load" not in lines
    assert "| 200 | +4.00% ± 12.71% [30%] |" in lines
    assert any("share of requests sent to LLM-1" in line for line in lines)
    assert tables.target_curve_lines({"meta": {}, "experiments": {}}) == []


def test_per_seed_the_kept_step_is_set_against_the_targets_lowest(tmp_path: Path) -> None:
    learning = _learning()
    experiment = learning.EXPERIMENTS["dqn_mixture"]

    def record(step: int, mean: float, busy: float) -> dict:
        return {
            "timesteps": step,
            "gap_to_reference": mean,
            "per_rate": {"poisson_50": {"gap_to_reference": busy}},
        }

    histories = {
        # kept at 200k (lowest mean, first of two equal), poisson_50 lowest at 100k
        3: [
            record(100_000, 0.05, 0.01),
            record(200_000, 0.02, 0.04),
            record(300_000, 0.02, 0.03),
            record(400_000, 0.06, 0.09),
        ],
        7: [record(100_000, 0.01, 0.02)],
    }
    runs_dir = _finished_dqn_mixture_runs(tmp_path, histories)
    rows = learning.target_seeds(experiment, runs_dir, "poisson_50")
    assert [row["seed"] for row in rows] == [3, 7]
    assert rows[0] == {
        "seed": 3,
        "kept_step": 200_000,
        "best_step": 100_000,
        "last_step": 400_000,
        "kept_gap": 0.04,
        "best_gap": 0.01,
        "last_gap": 0.09,
    }
    assert learning.target_seeds(experiment, runs_dir, "high_load") == []
    assert [row["seed"] for row in learning.target_seeds(experiment, runs_dir, "poisson_50", {7})] == [7]
    result = {
        "meta": {"curve_targets": ["poisson_50", "high_load"]},
        "experiments": {"dqn_mixture": {"target_seeds": {"poisson_50": rows, "high_load": []}}},
    }
    lines = tables.target_seed_lines(result)
    assert "## Per seed: poisson_50" in lines and "## Per seed: high_load" not in lines
    assert "| 3 | +4.00% (200k) / +1.00% (100k) / +9.00% |" in lines
