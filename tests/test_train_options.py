"""train.py's options for generalising agents and for sweeps, without Ray: evaluation on named
scenarios against a reference, a hyperparameter file, a fixed run name, the reward per request,
the command line that reproduces a run, and ``--seeds`` without the dist extra."""

from __future__ import annotations

import builtins
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_runs import TINY_PPO_HYPERPARAMS, tiny_ppo_argv

from agents.rl import make_training_env
from apps import train
from batchenv.scenarios import load_scenario

TINY_PPO = TINY_PPO_HYPERPARAMS


def _argv(tmp_path: Path, *flags: str) -> list[str]:
    return tiny_ppo_argv(tmp_path / "runs", *flags)


def test_evaluation_on_named_scenarios_against_the_reference(tmp_path: Path) -> None:
    argv = _argv(
        tmp_path,
        "--eval-freq",
        "128",
        "--eval-scenarios",
        "poisson_rate_1,bursty",
        "--run-name",
        "mine",
        *TINY_PPO,
    )
    assert train.main(argv) == 0
    run = tmp_path / "runs" / "mine"
    history = json.loads((run / "evaluations.json").read_text())
    last = history[-1]
    assert set(last["per_rate"]) == {"poisson_rate_1", "bursty"}
    for label, summary in last["per_rate"].items():
        reference = summary["reference_cost_per_request"]
        assert summary["gap_to_reference"] == pytest.approx(summary["cost_per_request"] / reference - 1)
        assert ("gap_to_optimal" in summary) == (label == "poisson_rate_1")  # Poisson only
    gaps = [s["gap_to_reference"] for s in last["per_rate"].values()]
    assert last["gap_to_reference"] == pytest.approx(np.mean(gaps))
    assert last["worst_gap_to_reference"] == pytest.approx(max(gaps))
    assert (run / "best_model.zip").is_file()
    # a run folder is never reused
    assert train.main(argv) == 2


def test_hyperparameter_file_overrides_the_algorithm_file(tmp_path: Path) -> None:
    best = tmp_path / "best.yml"
    best.write_text("# found by a search\nn_steps: 64\nbatch_size: 32\nlearning_rate: 1.0e-3\n")
    argv = _argv(tmp_path, "--eval-freq", "0", "--hyperparams-file", str(best), "--hyperparams", "n_epochs:1")
    assert train.main(argv) == 0
    (run,) = (tmp_path / "runs").iterdir()
    used = yaml.safe_load((run / "hyperparams.yml").read_text())
    assert (used["n_steps"], used["batch_size"], used["learning_rate"], used["n_epochs"]) == (64, 32, 1e-3, 1)
    assert used["gamma"] == 0.995  # the rest from agents/hyperparams/ppo.yml


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "no such file"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("a: [1\n", "not valid YAML"),
        ("1: 2\n", "is not a hyperparameter name"),
        ("gamma: 3\n", "hyperparams.gamma: must be in (0, 1]"),
        ("x" * 70_000, "larger than"),
    ],
)
def test_bad_hyperparameter_files_are_clear_errors(
    text: str | None, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hp.yml"
    if text is not None:
        path.write_text(text)
    assert train.main(_argv(tmp_path, "--hyperparams-file", str(path))) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_the_command_line_of_a_run_reproduces_its_arguments() -> None:
    args = train.parse_args(
        [
            "--algo",
            "dqn",
            "--env",
            "default_mixture",
            "-n",
            "1000",
            "--eval-scenarios",
            "bursty,default",
            "--hyperparams",
            "learning_rate:1e-4",
            "policy_kwargs:{net_arch: [32, 32]}",
            "--no-progress",
            "--run-name",
            "x",
        ]
    )
    again = train.parse_args(shlex.split(shlex.join(train.command_line_of(args))))
    assert again == args


def test_reward_per_request_divides_by_the_episode_rate() -> None:
    config = load_scenario("default_mixture")
    plain = make_training_env(config, 1, 3, normalize_reward=False)
    scaled = make_training_env(config, 1, 3, normalize_reward=False, reward_per_request=True)
    plain.reset()
    scaled.reset()
    rate = plain.env_method("get_wrapper_attr", "sim")[0].episode_rate_per_s
    for _ in range(50):
        _, r1, _, _ = plain.step(np.array([1]))
        _, r2, _, _ = scaled.step(np.array([1]))
        assert r2[0] == pytest.approx(r1[0] / rate)


def test_seeds_without_ray_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert train.main(_argv(tmp_path, "--seeds", "0-1")) == 2
    assert "pip install -e '.[dist]'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--seeds", "0-1", "--seed", "3"], "--seed does not apply with --seeds"),
        (["--seeds", "2-1"], "--seeds: bad seed range"),
        (["--seeds", "0-1", "--jobs", "0"], "--jobs must be >= 1"),
        (["--address", "auto"], "--address applies only with --seeds"),
        (["--run-name", "../x"], "--run-name"),
        (["--eval-rates", "50", "--eval-scenarios", "bursty"], "exclude each other"),
    ],
)
def test_bad_sweep_flags_exit_with_a_message(
    flags: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.main(_argv(tmp_path, *flags))
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
