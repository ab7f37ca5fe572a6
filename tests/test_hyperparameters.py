"""agents/hyperparameters.py: every hyperparameter SB3's PPO, A2C, DQN and MaskablePPO (and their
policies) take is checked before a model is built, and the committed hyperparameter files pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_runs import TINY_PPO_HYPERPARAMS, tiny_ppo_argv

from agents.checkpoint import load_checkpoint
from agents.checkpoint_safety import SHIPPED_DIR
from agents.hyperparameters import (
    HYPERPARAMS_DIR,
    load_hyperparams,
    read_hyperparams_file,
    validate_hyperparams,
)
from agents.rl import ALGORITHMS
from apps import train
from apps.search import load_search_space
from batchenv.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # SB3's algorithm arguments
        ({"target_kl": "abc"}, "hyperparams.target_kl: must be a number or null, got 'abc'"),
        ({"target_kl": 0}, "hyperparams.target_kl: must be in (0, inf) or null, got 0"),
        ({"target_kl": float("nan")}, "hyperparams.target_kl: must be in (0, inf) or null, got nan"),
        ({"stats_window_size": "abc"}, "hyperparams.stats_window_size: must be an integer, got 'abc'"),
        ({"stats_window_size": 0}, "hyperparams.stats_window_size: must be in [1, 1e+06], got 0"),
        ({"stats_window_size": 2.5}, "hyperparams.stats_window_size: must be an integer, got 2.5"),
        ({"sde_sample_freq": -2}, "hyperparams.sde_sample_freq: must be in [-1, 1e+10], got -2"),
        ({"sde_sample_freq": "often"}, "hyperparams.sde_sample_freq: must be an integer, got 'often'"),
        ({"use_sde": 1}, "hyperparams.use_sde: must be true or false, got 1"),
        ({"use_sde": "maybe"}, "hyperparams.use_sde: must be true or false, got 'maybe'"),
        ({"optimize_memory_usage": "maybe"}, "hyperparams.optimize_memory_usage: must be true or false"),
        (
            {"optimize_memory_usage": True, "discount_horizon_s": 1.0},
            "hyperparams.optimize_memory_usage: must be false with discount_horizon_s",
        ),
        ({"rollout_buffer_class": "RolloutBuffer"}, "hyperparams.rollout_buffer_class: needs a Python class"),
        ({"replay_buffer_class": None}, "hyperparams.replay_buffer_class: needs a Python class"),
        ({"rollout_buffer_kwargs": [1]}, "hyperparams.rollout_buffer_kwargs: must be a mapping of arguments"),
        ({"replay_buffer_kwargs": "abc"}, "hyperparams.replay_buffer_kwargs: must be a mapping of arguments"),
        (
            {"replay_buffer_kwargs": {"handle_timeout_termination": "maybe"}},
            "hyperparams.replay_buffer_kwargs.handle_timeout_termination: must be true or false",
        ),
        # set by train.py, never hyperparameters
        ({"seed": 3}, "hyperparams.seed: is not a hyperparameter: train.py sets it (with --seed)"),
        ({"device": "cuda"}, "hyperparams.device: is not a hyperparameter: train.py sets it (with --device)"),
        ({"verbose": 2}, "hyperparams.verbose: is not a hyperparameter: train.py sets it (with --verbose)"),
        ({"tensorboard_log": "tb"}, "hyperparams.tensorboard_log: is not a hyperparameter"),
        ({"env": "default"}, "hyperparams.env: is not a hyperparameter: train.py sets it (with --env)"),
        ({"_init_setup_model": False}, "hyperparams._init_setup_model: is not a hyperparameter"),
        # the policy's arguments
        *(
            (
                {"policy_kwargs": {key: "maybe"}},
                f"hyperparams.policy_kwargs.{key}: must be true or false, got 'maybe'",
            )
            for key in (
                "ortho_init",
                "share_features_extractor",
                "normalize_images",
                "full_std",
                "use_expln",
                "squash_output",
            )
        ),
        ({"policy_kwargs": {"ortho_init": 0}}, "hyperparams.policy_kwargs.ortho_init: must be true or false"),
        (
            {"policy_kwargs": {"log_std_init": "abc"}},
            "hyperparams.policy_kwargs.log_std_init: must be a number, got 'abc'",
        ),
        (
            {"policy_kwargs": {"log_std_init": 100}},
            "hyperparams.policy_kwargs.log_std_init: must be in [-20, 20], got 100",
        ),
        (
            {"policy_kwargs": {"log_std_init": float("-inf")}},
            "hyperparams.policy_kwargs.log_std_init: must be in [-20, 20], got -inf",
        ),
        (
            {"policy_kwargs": {"use_sde": True}},
            "hyperparams.policy_kwargs.use_sde: is set by SB3 from hyperparams.use_sde",
        ),
        (
            {"policy_kwargs": {"lr_schedule": 0.1}},
            "hyperparams.policy_kwargs.lr_schedule: is set by SB3 from hyperparams.learning_rate",
        ),
        (
            {"policy_kwargs": {"observation_space": 3}},
            "hyperparams.policy_kwargs.observation_space: is set by SB3 from the env",
        ),
        (
            {"policy_kwargs": {"action_space": 3}},
            "hyperparams.policy_kwargs.action_space: is set by SB3 from the env",
        ),
        (
            {"policy_kwargs": {"features_extractor_kwargs": [1]}},
            "hyperparams.policy_kwargs.features_extractor_kwargs: must be a mapping of arguments or null",
        ),
        (
            {"policy_kwargs": {"optimizer_kwargs": "adam"}},
            "hyperparams.policy_kwargs.optimizer_kwargs: must be a mapping of arguments or null",
        ),
        # the optimizer's (torch's Adam)
        (
            {"policy_kwargs": {"optimizer_kwargs": {"lr": 0.1}}},
            "hyperparams.policy_kwargs.optimizer_kwargs.lr: is set by SB3 from hyperparams.learning_rate",
        ),
        (
            {"policy_kwargs": {"optimizer_kwargs": {"eps": 0}}},
            "hyperparams.policy_kwargs.optimizer_kwargs.eps: must be in (0, inf), got 0",
        ),
        (
            {"policy_kwargs": {"optimizer_kwargs": {"weight_decay": -1}}},
            "hyperparams.policy_kwargs.optimizer_kwargs.weight_decay: must be in [0, inf), got -1",
        ),
        (
            {"policy_kwargs": {"optimizer_kwargs": {"betas": [0.9]}}},
            "hyperparams.policy_kwargs.optimizer_kwargs.betas: must be two numbers in [0, 1)",
        ),
        (
            {"policy_kwargs": {"optimizer_kwargs": {"betas": [0.9, 1.0]}}},
            "hyperparams.policy_kwargs.optimizer_kwargs.betas: must be two numbers in [0, 1)",
        ),
        *(
            (
                {"policy_kwargs": {"optimizer_kwargs": {key: "maybe"}}},
                f"hyperparams.policy_kwargs.optimizer_kwargs.{key}: must be true or false, got 'maybe'",
            )
            for key in ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
        ),
        *(
            (
                {"policy_kwargs": {"optimizer_kwargs": {key: 1}}},
                f"hyperparams.policy_kwargs.optimizer_kwargs.{key}: must be true, false or null, got 1",
            )
            for key in ("foreach", "fused")
        ),
    ],
)
def test_a_bad_value_names_the_key_and_what_it_allows(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_hyperparams(params)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_good_values_pass() -> None:
    validate_hyperparams(
        {
            "target_kl": None,
            "stats_window_size": 1,
            "sde_sample_freq": -1,
            "use_sde": False,
            "optimize_memory_usage": True,  # without discount_horizon_s
            "rollout_buffer_kwargs": None,
            "replay_buffer_kwargs": {"handle_timeout_termination": False},
            "policy_kwargs": {
                "net_arch": {"pi": [64], "vf": [64]},
                "ortho_init": False,
                "share_features_extractor": False,
                "normalize_images": True,
                "full_std": True,
                "use_expln": False,
                "squash_output": False,
                "log_std_init": -20,
                "features_extractor_kwargs": {},
                "optimizer_kwargs": {
                    "eps": 1e-5,
                    "weight_decay": 0,
                    "betas": [0.9, 0.999],
                    "amsgrad": True,
                    "foreach": None,
                    "fused": False,
                },
            },
        }
    )
    validate_hyperparams({"target_kl": 0.02, "sde_sample_freq": 4, "stats_window_size": 1_000_000})
    validate_hyperparams({"optimize_memory_usage": True, "discount_horizon_s": None})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("target_kl:abc", "hyperparams.target_kl: must be a number or null, got 'abc'"),
        ("stats_window_size:abc", "hyperparams.stats_window_size: must be an integer, got 'abc'"),
        ("policy_kwargs:{ortho_init: maybe}", "hyperparams.policy_kwargs.ortho_init: must be true or false"),
        ("sde_sample_freq:-5", "hyperparams.sde_sample_freq: must be in [-1, 1e+10], got -5"),
        ("_init_setup_model:false", "hyperparams._init_setup_model: is not a hyperparameter"),
    ],
)
def test_train_refuses_a_bad_value_before_making_a_run_folder(
    item: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """These trained first and then crashed with a TypeError (target_kl, stats_window_size),
    leaving a half-made run folder, or were silently accepted (ortho_init: maybe)."""
    runs = tmp_path / "runs"
    argv = tiny_ppo_argv(runs, "--eval-freq", "0", *TINY_PPO_HYPERPARAMS, item)
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train.py: error: ") and "\n" not in err  # one line
    assert message in err
    assert not runs.exists() or not list(runs.iterdir())


def test_train_takes_the_newly_checked_keys(tmp_path: Path) -> None:
    """Values in range are what SB3 builds and trains with."""
    runs = tmp_path / "runs"
    argv = tiny_ppo_argv(
        runs,
        "--eval-freq",
        "0",
        *TINY_PPO_HYPERPARAMS,
        "target_kl:0.05",
        "stats_window_size:10",
        "sde_sample_freq:-1",
        "use_sde:false",
        "rollout_buffer_kwargs:{}",
        "policy_kwargs:{net_arch: [16], ortho_init: false, share_features_extractor: false, "
        "normalize_images: false, log_std_init: -1.0, features_extractor_kwargs: {}, "
        "optimizer_kwargs: {eps: 1.0e-6, weight_decay: 0.0, betas: [0.8, 0.99], amsgrad: true}}",
    )
    assert train.main(argv) == 0
    (run,) = runs.iterdir()
    assert yaml.safe_load((run / "hyperparams.yml").read_text())["target_kl"] == 0.05


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_committed_hyperparameter_entry_validates(algo: str) -> None:
    for entry in yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text()):
        validate_hyperparams(load_hyperparams(algo, entry))


def test_committed_best_files_and_search_spaces_validate() -> None:
    best_files = sorted((REPO / "benchmarks" / "results").glob("*best*.yml"))
    assert best_files
    for path in best_files:
        algo = next(
            a for a in sorted(ALGORITHMS, key=len, reverse=True) if path.name.startswith(f"search_{a}_")
        )
        validate_hyperparams({**load_hyperparams(algo, "default"), **read_hyperparams_file(path)})
    spaces = sorted((HYPERPARAMS_DIR / "search").glob("*.yml"))
    assert spaces
    for path in spaces:
        load_search_space(path)  # every end of every range through validate_hyperparams


def test_shipped_checkpoints_hyperparameters_validate() -> None:
    for path in sorted(SHIPPED_DIR.glob("*.zip")):
        hyperparams = load_checkpoint(path).meta["hyperparams"]  # validated on load
        validate_hyperparams(hyperparams)
