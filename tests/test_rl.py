"""train.py end to end for every algorithm (tiny runs), checkpoints, resume, errors."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from agents.callbacks import DomainEvalCallback
from agents.checkpoint import CheckpointError, RLScheduler, load_checkpoint, save_checkpoint
from agents.optimal import OptimalScheduler
from agents.rl import ALGORITHMS, RegretReward, make_training_env
from agents.semi_markov import DiscountFromInfoCallback, SemiMarkovReplayBuffer, SemiMarkovRolloutBuffer
from apps import train, train_plan, train_run
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate

TINY = {
    "ppo": ["n_steps=128", "batch_size=64", "n_epochs=1"],
    "maskable_ppo": ["n_steps=128", "batch_size=64", "n_epochs=1"],
    "a2c": ["n_steps=8"],
    "dqn": ["learning_starts=64", "buffer_size=1000", "batch_size=32", "target_update_interval=100"],
}


def _tiny_argv(tmp_path: Path, algo: str, *flags: str, resume: Path | None = None) -> list[str]:
    """train.py's command line for a tiny, quiet run of ``algo`` into ``tmp_path/runs``, with
    ``flags`` after ``--algo`` (resuming ``resume``: then with the checkpoint's hyperparameters)."""
    tail = ["--resume", str(resume)] if resume else ["--hyperparams", *TINY[algo]]
    return [
        "--algo",
        algo,
        *flags,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        "--verbose",
        "0",
        *tail,
    ]


def _train(tmp_path: Path, algo: str, *extra: str, n: int = 512, resume: Path | None = None) -> Path:
    argv = _tiny_argv(
        tmp_path,
        algo,
        "-n",
        str(n),
        "--n-envs",
        "2",
        "--eval-freq",
        "256",
        "--save-freq",
        "256",
        "--eval-horizon-s",
        "2",
        "--eval-seeds",
        "1",
        resume=resume,
    )
    assert train.main([*argv, *extra]) == 0
    runs = sorted((tmp_path / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return runs[-1]


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_train_save_resume_load_evaluate(algo: str, tmp_path: Path) -> None:
    run = _train(tmp_path, algo)
    assert run.name == f"{algo}_default_1"
    for name in (
        "config.yml",
        "hyperparams.yml",
        "args.yml",
        "command.txt",
        "final_model.zip",
        "best_model.zip",
        "evaluations.json",
    ):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_256.zip", "step_512.zip"]
    assert not list(run.rglob("*.tmp*")), "temporary files left behind"
    assert list((run / "tb").rglob("events.out.tfevents*"))
    history = json.loads((run / "evaluations.json").read_text())
    assert [h["timesteps"] for h in history] == [256, 512]
    assert "gap_to_optimal" in history[-1]  # Poisson, one worker: the optimum applies

    checkpoint = load_checkpoint(run / "final_model.zip")
    assert checkpoint.algo == algo and checkpoint.meta["timesteps"] == 512
    assert checkpoint.config == load_scenario("default")
    scheduler = RLScheduler(checkpoint)
    metrics = compute_metrics(simulate(checkpoint.config, scheduler, seed=0, horizon_s=3.0))
    assert metrics.n_served > 0

    resumed = _train(tmp_path, algo, n=256, resume=run / "final_model.zip")
    assert resumed.name == f"{algo}_default_2"
    assert load_checkpoint(resumed / "final_model.zip").meta["timesteps"] == 512 + 256
    # checkpoints continue from the resumed count: one at 512 + 256, none for steps before it
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step_768.zip"]


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_training_repeats_bit_for_bit_with_the_same_seed(algo: str, tmp_path: Path) -> None:
    """On one machine, the same command and seed train the same network, weight for weight, and
    another seed trains another (docs/rl.md, "Retrained on another machine")."""

    def weights(seed: int, folder: str) -> list[np.ndarray]:
        run = _train(tmp_path / folder, algo, "--seed", str(seed), n=256)
        policy = load_checkpoint(run / "final_model.zip").model.policy
        return [p.detach().numpy().copy() for p in policy.parameters()]

    first, again, other = weights(3, "a"), weights(3, "b"), weights(4, "c")
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))


def test_scheduler_sees_the_env_observations(tmp_path: Path) -> None:
    run = _train(tmp_path, "ppo", "normalize_obs=true")
    checkpoint = load_checkpoint(run / "final_model.zip")
    assert checkpoint.meta["observation_normalization"] is not None
    scheduler = RLScheduler(checkpoint)
    config = checkpoint.config.replace(horizon_s=3.0)
    via_sim = compute_metrics(simulate(config, scheduler, seed=5))
    env = DynamicBatchingEnv(config)
    obs, _ = env.reset(seed=5)
    norm = checkpoint.meta["observation_normalization"]
    mean, std = np.array(norm["mean"]), np.sqrt(np.array(norm["var"]) + norm["epsilon"])
    while True:
        normalised = np.clip((obs - mean) / std, -norm["clip"], norm["clip"]).astype(np.float32)
        action, _ = checkpoint.model.predict(normalised, deterministic=True)
        obs, _, _, truncated, _ = env.step(int(action))
        if truncated:
            break
    assert env.metrics() == via_sim


@pytest.mark.parametrize("algo", ["ppo", "dqn", "maskable_ppo"])
def test_fast_greedy_action_equals_predict(algo: str, tmp_path: Path) -> None:
    run = _train(tmp_path, algo, n=256)
    checkpoint = load_checkpoint(run / "final_model.zip")
    scheduler = RLScheduler(checkpoint)
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs = rng.uniform(0, 2, size=8).astype(np.float32)
        masks = rng.random(4) < 0.7
        masks[1] = True
        if algo == "maskable_ppo":
            expected, _ = checkpoint.model.predict(obs, deterministic=True, action_masks=masks)
            assert scheduler._greedy_action(obs, masks) == int(expected)
        else:
            expected, _ = checkpoint.model.predict(obs, deterministic=True)
            assert scheduler._greedy_action(obs, None) == int(expected)


def test_interrupt_saves_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents import callbacks

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.DomainEvalCallback, "evaluate", interrupt)
    argv = _tiny_argv(tmp_path, "ppo", "-n", "1024", "--eval-freq", "128")
    assert train.main(argv) == 130
    saved = tmp_path / "runs" / "ppo_default_1" / "interrupted.zip"
    assert load_checkpoint(saved).meta["timesteps"] >= 128


def test_sigterm_stops_training_and_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first SIGTERM (or Ctrl-C) ends learn() at the next step, the normal way (callbacks
    closed), saves interrupted.zip and exits with 130."""
    from agents import callbacks

    def terminate(self):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(callbacks.DomainEvalCallback, "evaluate", terminate)
    argv = _tiny_argv(tmp_path, "ppo", "-n", "4096", "--eval-freq", "128")
    assert train.main(argv) == 130
    saved = load_checkpoint(tmp_path / "runs" / "ppo_default_1" / "interrupted.zip")
    assert 128 <= saved.meta["timesteps"] < 4096
    assert not (tmp_path / "runs" / "ppo_default_1" / "final_model.zip").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_failed_or_interrupted_start_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _tiny_argv(tmp_path, "ppo", "-n", "256")
    # SB3 rejects the key when it builds the model (after the run folder was made)
    assert train.main([*argv, "not_a_param=1"]) == 2
    assert "not_a_param" in capsys.readouterr().err
    assert not list((tmp_path / "runs").iterdir())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_run, "make_training_env", interrupted)
    assert train.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("learning_rate=abc", "hyperparams.learning_rate: must be a number or lin_<x>"),
        ("gamma=2", "hyperparams.gamma: must be in (0, 1]"),
        ("n_steps=abc", "hyperparams.n_steps: must be an integer"),
        ("learning_rate=lin_x", "lin_<x> needs a number"),
        ("policy_kwargs={net_arch: [64, -1]}", "hyperparams.policy_kwargs.net_arch"),
        ("reward_center=3", "hyperparams.reward_center: must be true or false"),
        ("clip_range_vf=-1", "hyperparams.clip_range_vf: must be in (0, inf)"),
        ("n_steps=.inf", "hyperparams.n_steps: must be in [1, 1e+06], got inf"),
        (f"policy_kwargs={{net_arch: {[1] * 17}}}", "hyperparams.policy_kwargs.net_arch: at most 16 layers"),
        (
            "policy_kwargs={activation_fn: relu}",
            "hyperparams.policy_kwargs.activation_fn: needs a Python class",
        ),
    ],
)
def test_bad_hyperparameter_values_are_clear_errors(
    item: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _tiny_argv(tmp_path, "ppo", "-n", "256")
    assert train.main([*argv, item]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_the_rollout_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """n_steps x n_envs sizes the rollout buffer SB3 allocates: bounded in a hyperparameter set
    (a file, a checkpoint's data) and for the number of envs that --n-envs gives."""
    from agents.hyperparameters import MAX_ROLLOUT_TRANSITIONS, validate_hyperparams
    from batchenv.config import ConfigError

    validate_hyperparams({"n_steps": MAX_ROLLOUT_TRANSITIONS // 1024, "n_envs": 1024})
    with pytest.raises(ConfigError, match=r"n_steps x n_envs \(the rollout\) must be at most 2,097,152"):
        validate_hyperparams({"n_steps": MAX_ROLLOUT_TRANSITIONS // 1024 + 1, "n_envs": 1024})
    argv = _tiny_argv(tmp_path, "ppo", "-n", "256", "--n-envs", "1024")
    assert train.main([*argv, "n_steps=4096"]) == 2
    assert "4096 x 1024 = 4,194,304" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_the_networks_parameters_are_bounded() -> None:
    """Widths, depth and the total count of weights and biases are bounded (the count for the
    env's own observation and action sizes), so no hyperparameter builds a network of gigabytes."""
    from agents.hyperparameters import MAX_NETWORK_PARAMETERS, network_parameters, validate_hyperparams
    from batchenv.config import ConfigError

    sizes = train_plan.network_sizes(load_scenario("default"))
    assert sizes == {"n_inputs": 8, "n_outputs": 4}
    assert network_parameters([64, 64], **sizes) == 2 * (9 * 64 + 65 * 64 + 65 * 4)  # actor and critic
    assert network_parameters({"pi": [64], "vf": [32]}, 8, 4) == 9 * 64 + 65 * 4 + 9 * 32 + 33 * 4
    validate_hyperparams({"policy_kwargs": {"net_arch": [4096, 4096]}}, **sizes)  # 34M: allowed
    validate_hyperparams({"policy_kwargs": {"net_arch": [256] * 16}})
    for arch, words in (
        ([8192, 8192], f"at most {MAX_NETWORK_PARAMETERS:,} parameters in all (8 inputs, 4 outputs)"),
        ({"pi": [64], "vf": [8192] * 3}, "parameters in all"),
        ([64] * 17, "at most 16 layers per network, got 17"),
        ({"pi": [64] * 17, "vf": [64]}, "at most 16 layers per network"),
        ([8193], "must list layer widths in [1, 8192]"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            validate_hyperparams({"policy_kwargs": {"net_arch": arch}}, **sizes)


def test_n_envs_is_bounded_and_kept_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--n-envs has the limit of hyperparams.n_envs; a resumed run keeps its model's number of
    envs (SB3's set_env failed with an AssertionError on another)."""
    for value in ("100000", "0"):
        with pytest.raises(SystemExit) as exit_info:
            train.parse_command_line(["--n-envs", value])
        assert exit_info.value.code == 2
        assert (
            f"--n-envs must be in [1, 1024] (as hyperparams.n_envs), got {value}" in capsys.readouterr().err
        )
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "ppo_default.zip"  # 4 envs
    argv = _tiny_argv(tmp_path, "ppo", "-n", "64", "--n-envs", "2", "--eval-freq", "0", resume=shipped)
    assert train.main(argv) == 2
    assert "--n-envs: 2, but --resume" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_scenario_name_cannot_leave_the_runs_folder(tmp_path: Path) -> None:
    run = train_run.new_run_dir(tmp_path / "runs", "ppo", "../../escape")
    assert run.parent == tmp_path / "runs" and run.name == "ppo__.._escape_1"
    assert train_run.new_run_dir(tmp_path / "runs", "ppo", "../../escape").name == "ppo__.._escape_2"
    assert train_run.new_run_dir(tmp_path / "runs", "ppo", "a[1]*").name == "ppo_a_1___1"


def test_resume_restores_the_checkpoints_own_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed DQN run keeps the semi-Markov discount and its reward settings (not the
    hyperparameter file's), and starts from the replay buffer the first run collected."""
    run = _train(tmp_path, "dqn", "discount_horizon_s=1.0", "reward_center=true", "reward_scale=3.0", n=256)
    final = run / "final_model.zip"
    buffer_file = final.with_name("final_model.replay.npz")
    assert buffer_file.is_file()
    first = load_checkpoint(final)
    centring = first.meta["reward_centring"]
    assert centring is not None and sum(centring["total_arrivals"]) > 0

    assert train.main([*_tiny_argv(tmp_path, "dqn", resume=final), "--hyperparams", "gamma:0.9"]) == 2
    assert "does not apply with --resume" in capsys.readouterr().err

    plan = train_plan.plan_run(train.parse_args(_tiny_argv(tmp_path, "dqn", resume=final)))
    assert plan.hyperparams == first.meta["hyperparams"]
    venv = make_training_env(plan.config, 2, 0, reward_center=True, normalize_reward=False)
    model = train_run.build_model(
        train.parse_args(_tiny_argv(tmp_path, "dqn", resume=final)), plan, venv, tmp_path
    )
    assert isinstance(model.replay_buffer, SemiMarkovReplayBuffer)
    assert model.replay_buffer.pos == 256 // 2 and not model.replay_buffer.full  # 2 envs
    saved = np.load(buffer_file)
    np.testing.assert_array_equal(model.replay_buffer.discounts, saved["discounts"])
    assert (saved["discounts"][:128] < 1.0).all()  # per-transition exp(-dt / horizon), stored
    assert sum(venv.get_attr("total_arrivals")) == sum(centring["total_arrivals"]) // 2 * 2
    venv.close()

    resumed = _train(tmp_path, "dqn", n=128, resume=final)
    assert yaml.safe_load((resumed / "hyperparams.yml").read_text()) == first.meta["hyperparams"]


def test_resume_takes_the_algorithm_from_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train.py -i run/final_model.zip`` resumes a DQN run without ``--algo dqn`` (it failed:
    ``--algo`` defaulted to ppo); only an ``--algo`` typed against the checkpoint is an error,
    and a new run still defaults to ppo."""
    first = _train(tmp_path, "dqn", n=128)
    argv = [
        "-i",
        str(first / "final_model.zip"),
        *("--runs-dir", str(tmp_path / "runs"), "--no-progress", "--verbose", "0"),
        *("-n", "64", "--eval-freq", "0", "--save-freq", "0"),
    ]
    assert train.parse_args(argv).algo is None
    assert train_plan.plan_run(train.parse_args(argv)).algo == "dqn"
    assert train_plan.plan_run(train.parse_args(["--algo", "dqn", *argv])).algo == "dqn"
    assert train.main(argv) == 0
    resumed = tmp_path / "runs" / "dqn_default_2"
    assert load_checkpoint(resumed / "final_model.zip").algo == "dqn"
    assert yaml.safe_load((resumed / "args.yml").read_text())["algo"] == "dqn"  # what ran

    capsys.readouterr()
    assert train.main(["--algo", "ppo", *argv]) == 2
    assert "--algo: 'ppo' but --resume" in capsys.readouterr().err
    assert train.parse_args([]).algo == "ppo"
    assert train_plan.plan_run(train_plan.TrainArgs()).algo == "ppo"


def test_shipped_checkpoints_match_their_recorded_hashes(tmp_path: Path) -> None:
    from agents.checkpoint_safety import SHIPPED_DIR, sha256_of, verify_shipped

    lines = (SHIPPED_DIR / "SHA256SUMS").read_text().splitlines()
    assert {line.split("  ")[1] for line in lines} == {p.name for p in SHIPPED_DIR.glob("*.zip")}
    for line in lines:
        digest, name = line.split("  ")
        assert sha256_of(SHIPPED_DIR / name) == digest
    fake_dir = tmp_path / "checkpoints"
    fake_dir.mkdir()
    (fake_dir / "SHA256SUMS").write_text("0" * 64 + "  ppo_default.zip\n")
    (fake_dir / "ppo_default.zip").write_bytes((SHIPPED_DIR / "ppo_default.zip").read_bytes())
    with pytest.raises(CheckpointError, match="was modified"):
        verify_shipped(fake_dir / "ppo_default.zip", CheckpointError, directory=fake_dir)


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="file not found"):
        load_checkpoint(tmp_path / "absent.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a zip archive"):
        load_checkpoint(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("data", "{}")
    with pytest.raises(CheckpointError, match="not a batchenv checkpoint"):
        load_checkpoint(tmp_path / "plain.zip")

    run = _train(tmp_path, "a2c", n=256)
    good = run / "final_model.zip"
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"not a zip archive|truncated"):
        load_checkpoint(truncated)
    damaged = bytearray(good.read_bytes())
    middle = len(damaged) // 3
    damaged[middle : middle + 64] = bytes(64)
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match=r"corrupted|not a zip archive|cannot be loaded"):
        load_checkpoint(tmp_path / "damaged.zip")

    def rewrite_meta(name: str, **changes) -> Path:
        target = tmp_path / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.namelist():
                data = src.read(item)
                if item == "batchenv/meta.json":
                    data = json.dumps({**json.loads(data), **changes}).encode()
                dst.writestr(item, data)
        return target

    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(rewrite_meta("future.zip", format_version=99))
    with pytest.raises(CheckpointError, match="unknown algo 'sac'"):
        load_checkpoint(rewrite_meta("sac.zip", algo="sac"))
    with pytest.raises(CheckpointError, match=r"scenario 'multi_gpu' has 9 and 4"):
        RLScheduler(load_checkpoint(good), load_scenario("multi_gpu"))


def test_bad_flags_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in (
        (["--algo", "sac"], "invalid choice"),
        (["-n", "0"], "-n/--n-timesteps must be >= 1"),
        (["--eval-rates", "a,b"], "--eval-rates: expected comma-separated floats"),
        (["--hyperparams", "gamma"], "expected KEY:VALUE"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train.main(argv)
        assert exit_info.value.code == 2
        assert words in capsys.readouterr().err
    assert train.main(["--env", "no_such_scenario", "--no-progress"]) == 2
    assert "unknown scenario 'no_such_scenario'" in capsys.readouterr().err
    assert train.main(["--hyperparams", "not_a_param=1", "--no-progress", "--runs-dir", "/tmp/x"]) == 2


def test_help_examples_read_files_that_exist_and_write_outside_the_package() -> None:
    """The examples of ``train.py --help`` and ``python -m apps.search --help`` (their module
    docstrings): every file they read is in the repository or written by an example before, and
    no example writes into the repository's packages."""
    repo = Path(__file__).resolve().parents[1]
    written: set[str] = set()
    for module in ("search", "train"):  # the search writes the file that training then reads
        doc = ast.get_docstring(ast.parse((repo / "apps" / f"{module}.py").read_text())) or ""
        for flag, value in re.findall(r"(--out|--hyperparams-file|--space) (\S+)", doc):
            if flag == "--out":
                assert value.split("/")[0] not in {"agents", "apps", "batchenv", "evaluation"}, value
                written.add(value)
            else:
                assert value in written or (repo / value).is_file(), f"{module}: {flag} {value}"
    assert written


def test_the_step_count_is_rounded_up_to_whole_rollouts_as_the_help_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-n 100 with 2 envs x 128 steps trains one rollout, 256 steps; resumed with -n 100, one more
    (512 in all, the checkpoint's included); the -n help says so, with ppo's own numbers."""
    first = _train(tmp_path, "ppo", n=100)
    assert "trained 256 steps" in capsys.readouterr().out
    _train(tmp_path, "ppo", n=100, resume=first / "final_model.zip")
    assert "trained 512 steps" in capsys.readouterr().out
    text = " ".join(train.build_parser().format_help().split())
    hyperparams = Path(train.__file__).parents[1] / "agents" / "hyperparams" / "ppo.yml"
    ppo = yaml.safe_load(hyperparams.read_text())["default"]
    rollout = ppo["n_envs"] * ppo["n_steps"]
    assert f"-n 2048 with ppo's {ppo['n_envs']} envs x {ppo['n_steps']} steps trains {rollout}" in text
    assert "rounded up" in text and "with -n, that many steps on top of the checkpoint's" in text
    assert "With --resume: without -n, the steps the checkpoint's run had left" in text


def test_semi_markov_discount_per_transition() -> None:
    """GAE with a discount per transition equals SB3's GAE when every discount is gamma, and
    uses exp(-dt / horizon) per step otherwise."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.buffers import RolloutBuffer

    space_obs, space_act = gym.spaces.Box(0, 1, (2,)), gym.spaces.Discrete(3)
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(16, 2)), rng.normal(size=(16, 2))
    starts = np.zeros((16, 2))
    starts[5, 0] = 1.0
    last = torch.as_tensor(rng.normal(size=2))

    def fill(buffer, discounts=None) -> None:
        buffer.reset()
        for t in range(16):
            if discounts is not None:
                buffer.pending_discounts = discounts[t]
            buffer.add(
                np.zeros((2, 2)),
                np.zeros((2, 1)),
                rewards[t],
                starts[t],
                torch.as_tensor(values[t]),
                torch.zeros(2),
            )
        buffer.compute_returns_and_advantage(last, np.array([False, True]))

    plain = RolloutBuffer(16, space_obs, space_act, gamma=0.9, gae_lambda=0.8, n_envs=2)
    semi = SemiMarkovRolloutBuffer(16, space_obs, space_act, gamma=0.5, gae_lambda=0.8, n_envs=2)
    fill(plain)
    fill(semi, np.full((16, 2), 0.9, dtype=np.float32))
    assert np.allclose(plain.advantages, semi.advantages, atol=1e-6)
    discounts = rng.uniform(0.5, 1.0, size=(16, 2)).astype(np.float32)
    fill(semi, discounts)
    # the last step of env 1 is terminal: its advantage is its one-step TD error
    assert semi.advantages[15, 1] == pytest.approx(rewards[15, 1] - values[15, 1], abs=1e-6)
    expected = rewards[14, 0] + discounts[14, 0] * values[15, 0] - values[14, 0]
    expected += discounts[14, 0] * 0.8 * (rewards[15, 0] + discounts[15, 0] * last[0].item() - values[15, 0])
    assert semi.advantages[14, 0] == pytest.approx(expected, abs=1e-5)


class _StepDurations(BaseCallback):
    """Records each vector step's simulated durations ``info["dt_s"]`` (shape (n_envs,))."""

    def __init__(self) -> None:
        super().__init__()
        self.dt_s: list[np.ndarray] = []

    def _on_step(self) -> bool:
        self.dt_s.append(np.array([info["dt_s"] for info in self.locals["infos"]]))
        return True


def _tiny_semi_markov_ppo(venv, **kwargs: Any) -> PPO:
    """PPO with the semi-Markov rollout buffer: one rollout of 64 steps per env, one epoch."""
    return PPO(
        "MlpPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        rollout_buffer_class=SemiMarkovRolloutBuffer,
        **kwargs,
    )


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_each_stored_transition_carries_its_time_discount(algo: str) -> None:
    """The buffer stores exp(-dt / horizon) with each transition, dt the step's simulated
    duration: PPO's rollout buffer and DQN's replay buffer alike."""
    config = load_scenario("default")
    venv = make_training_env(config, 2, seed=0)
    if algo == "ppo":
        model = _tiny_semi_markov_ppo(venv)
    else:
        model = DQN(
            "MlpPolicy",
            venv,
            learning_starts=1000,
            buffer_size=1000,
            seed=0,
            replay_buffer_class=SemiMarkovReplayBuffer,
        )
    durations = _StepDurations()
    model.learn(128, callback=[DiscountFromInfoCallback(horizon_s=0.1), durations])
    buffer = model.rollout_buffer if algo == "ppo" else model.replay_buffer
    expected = np.exp(-np.array(durations.dt_s) / 0.1).astype(np.float32)  # (64 steps, 2 envs)
    assert expected.shape == (64, 2)
    np.testing.assert_array_equal(buffer.discounts[:64], expected)
    # at 100 requests/s a step lasts about 10 ms: discounts near exp(-0.1), some exactly 1 (dt = 0)
    assert np.all((expected > 0) & (expected <= 1)) and 0.5 < expected.mean() < 0.99


class _TruncationRecorder(BaseCallback):
    """Records each vector step's rewards as the env gave them, before SB3 bootstraps truncated
    episodes, with the step's time discount and the value of each truncated episode's last
    observation (NaN where no episode was truncated)."""

    def __init__(self, horizon_s: float) -> None:
        super().__init__()
        self.horizon_s = horizon_s
        self.rewards: list[np.ndarray] = []
        self.discounts: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def _on_step(self) -> bool:
        import torch

        infos = self.locals["infos"]
        self.rewards.append(np.array(self.locals["rewards"], dtype=np.float64))
        self.discounts.append(np.exp(-np.array([i["dt_s"] for i in infos]) / self.horizon_s))
        values = np.full(len(infos), np.nan)
        for idx, info in enumerate(infos):
            if self.locals["dones"][idx] and info.get("TimeLimit.truncated"):
                obs = self.model.policy.obs_to_tensor(info["terminal_observation"])[0]
                with torch.no_grad():
                    values[idx] = self.model.policy.predict_values(obs)[0].item()
        self.values.append(values)
        return True


def test_a_truncated_episode_is_bootstrapped_with_its_last_steps_time_discount() -> None:
    """PPO's rollout stores, for the last step of a truncated episode, reward + exp(-dt / horizon)
    x V(last observation), not SB3's reward + gamma x V; every other step its reward as it came."""
    config = load_scenario("default").at_rate(10.0).replace(horizon_s=2.0)  # about 20 steps
    venv = make_training_env(config, 2, seed=0)
    model = _tiny_semi_markov_ppo(venv, gamma=0.995)
    recorder = _TruncationRecorder(horizon_s=0.1)
    model.learn(128, callback=[DiscountFromInfoCallback(horizon_s=0.1), recorder])
    rewards, discounts, values = (
        np.array(x) for x in (recorder.rewards, recorder.discounts, recorder.values)
    )
    truncated = ~np.isnan(values)
    assert truncated.sum() >= 4  # several episodes of both envs end in the rollout
    assert discounts[truncated].mean() < 0.9  # far from gamma: the bootstrap differs
    expected = np.where(truncated, rewards + discounts * np.nan_to_num(values), rewards)
    np.testing.assert_allclose(model.rollout_buffer.rewards, expected, rtol=1e-5, atol=1e-6)
    venv.close()


@pytest.mark.parametrize(
    ("algo", "buffer_class"), [("ppo", SemiMarkovRolloutBuffer), ("dqn", SemiMarkovReplayBuffer)]
)
def test_train_with_a_time_discount_uses_the_semi_markov_buffer(
    algo: str, buffer_class: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.py with ``discount_horizon_s`` stores a discount below 1 with every transition."""
    stored: list[np.ndarray] = []
    add = buffer_class.add

    def spy(self, *args: Any, **kwargs: Any) -> None:
        stored.append(self.pending_discounts.copy())
        add(self, *args, **kwargs)

    monkeypatch.setattr(buffer_class, "add", spy)
    _train(tmp_path, algo, "discount_horizon_s=1.0")
    discounts = np.array(stored)
    assert discounts.shape == (512 // 2, 2)  # every transition of both envs
    # 1 s horizon, steps of about 10 ms: near exp(-0.01), never above 1
    assert np.all((discounts > 0) & (discounts <= 1)) and 0.9 < discounts.mean() < 1.0


def test_semi_markov_replay_buffer_samples_carry_their_discount() -> None:
    """Each sampled transition carries the discount stored with it (DQN's TD target uses it in
    place of gamma); terminal transitions keep done = 1."""
    import gymnasium as gym

    buffer = SemiMarkovReplayBuffer(64, gym.spaces.Box(0, 1, (1,)), gym.spaces.Discrete(2), n_envs=2)
    for t in range(40):
        # the observation records which discount (t, env) was stored with the transition
        buffer.pending_discounts = np.array([0.5 + t / 100, 0.25 + t / 200], dtype=np.float32)
        obs = np.array([[t], [1000 + t]], dtype=np.float32)
        buffer.add(obs, obs, np.zeros((2, 1)), np.zeros(2), np.array([t == 39, False]), [{}, {}])
    np.random.seed(0)
    samples = buffer.sample(256)
    assert samples.discounts is not None and samples.discounts.shape == (256, 1)
    for obs, discount, done in zip(
        samples.observations[:, 0].numpy(),
        samples.discounts[:, 0].numpy(),
        samples.dones[:, 0].numpy(),
        strict=True,
    ):
        t, env = (int(obs), 0) if obs < 1000 else (int(obs) - 1000, 1)
        assert discount == pytest.approx([0.5 + t / 100, 0.25 + t / 200][env])
        assert done == float(env == 0 and t == 39)
    assert set(np.round(samples.observations[:, 0].numpy()) >= 1000) == {False, True}


def _regret_episode(config, seed: int, **wrapper: Any) -> tuple[list, list, DynamicBatchingEnv]:
    """Rewards and infos of one episode through :class:`RegretReward` with a fixed policy
    (dispatch on LLM-2 once 4 requests wait, else wait), and the unwrapped env."""
    env = RegretReward(DynamicBatchingEnv(config), **wrapper)
    env.reset(seed=seed)
    rewards, infos = [], []
    done = False
    while not done:
        action = 2 if env.unwrapped.sim.queue_len >= 4 or not env.unwrapped.action_masks()[0] else 0
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    return rewards, infos, env.unwrapped


def test_regret_reward_sums_to_the_episode_score_minus_the_best_quality() -> None:
    """Over an episode the regret rewards add up to the simulator's total score minus the best
    quality for every dispatched and dropped request (scaled by ``scale``)."""
    config = load_scenario("default").replace(horizon_s=5.0)
    best = max(config.qualities)
    rewards, infos, env = _regret_episode(config, 3)
    sim = env.sim
    assert sum(i["dispatched"] for i in infos) == sim.n_served > 0
    assert sum(rewards) == pytest.approx(sim.total_reward - best * (sim.n_served + sim.n_dropped), rel=1e-12)
    # scaled: the same episode, every reward times the scale
    scaled, _, _ = _regret_episode(config, 3, scale=2.5)
    np.testing.assert_allclose(scaled, 2.5 * np.asarray(rewards), rtol=1e-12)


@pytest.mark.parametrize("policy", ["random", "llm1", "llm3"])
def test_regret_return_is_minus_the_evaluated_cost_plus_the_queue_left_at_the_horizon(policy: str) -> None:
    """On an overloaded server that drops most requests, an episode's training return equals
    -(evaluated cost per request x arrivals) + best quality x requests still queued at the
    horizon: a dropped request costs the best quality + w_drop in training as in evaluation
    (a reward that charged it w_drop only could rank two policies the other way round)."""
    for w_drop in (1.0, 0.0):
        config = load_scenario("high_load").at_rate(2000.0).replace(horizon_s=3.0)
        config = config.replace(reward={"w_drop": w_drop})
        env = RegretReward(DynamicBatchingEnv(config))
        env.reset(seed=5)
        rng = np.random.default_rng(0)
        total, done = 0.0, False
        while not done:
            action = {"llm1": 1, "llm3": 3}.get(policy) or int(rng.integers(env.action_space.n))
            _, reward, _, done, _ = env.step(action)
            total += reward
        metrics = env.unwrapped.metrics()
        assert metrics.n_dropped > 1000 and metrics.n_waiting > 0
        expected = -metrics.cost_per_request * metrics.n_arrived + max(config.qualities) * metrics.n_waiting
        assert total == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_regret_reward_centring_adds_the_running_mean_cost_per_arrival() -> None:
    """With ``center``, each step also earns its arrivals times the running mean cost per arrival
    of the steps so far (its own included); over a stationary episode the centred rewards then
    nearly cancel: their sum is a small fraction of the episode's total cost."""
    config = load_scenario("default").replace(horizon_s=30.0)
    plain, infos, _ = _regret_episode(config, 4)
    centred, _, _ = _regret_episode(config, 4, center=True)
    cost, arrivals = 0.0, 0
    for reward, info, got in zip(plain, infos, centred, strict=True):
        cost -= reward
        arrivals += info["arrived"]
        expected = reward + (info["arrived"] * cost / arrivals if arrivals else 0.0)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert cost > 0 and abs(sum(centred)) < 0.02 * cost


def test_resume_continues_the_normalisation_statistics(tmp_path: Path) -> None:
    """--resume puts the checkpoint's observation and return statistics back: the resumed run's
    statistics have seen the first run's observations plus its own."""
    run = _train(tmp_path, "ppo", "normalize_obs=true")
    first = load_checkpoint(run / "final_model.zip").meta
    resumed = _train(tmp_path, "ppo", n=256, resume=run / "final_model.zip")
    after = load_checkpoint(resumed / "final_model.zip").meta
    for key in ("observation_normalization", "reward_normalization"):
        assert first[key]["count"] > 512
        # 256 new steps (2 envs x 128), and at most one reset observation per env
        assert first[key]["count"] + 256 <= after[key]["count"] <= first[key]["count"] + 258, key


def test_gap_to_optimal_is_the_relative_cost_over_the_optimum_on_the_same_arrivals(tmp_path: Path) -> None:
    """The evaluation callback's ``gap_to_optimal``: (cost - optimal cost) / optimal cost, both
    measured on the evaluation seeds (recomputed here from a saved copy of the model)."""
    config = load_scenario("default").at_rate(250.0)  # where the optimum waits and switches models
    model = PPO("MlpPolicy", DynamicBatchingEnv(config), n_steps=32, batch_size=32, seed=0, device="cpu")
    model.set_logger(configure(None, []))
    seeds, horizon_s = [7, 8], 3.0
    callback = DomainEvalCallback(
        1, tmp_path, config, "ppo", targets=[("scenario", config)], seeds=seeds, horizon_s=horizon_s, extra={}
    )
    callback.init_callback(model)
    record = callback.evaluate()
    summary = record["per_rate"]["scenario"]

    def mean_cost(scheduler: Any) -> float:
        runs = [simulate(config, scheduler, seed, horizon_s=horizon_s) for seed in seeds]
        return float(np.mean([compute_metrics(sim).cost_per_request for sim in runs]))

    saved = save_checkpoint(model, tmp_path / "copy.zip", config, algo="ppo")
    cost = mean_cost(RLScheduler(load_checkpoint(saved), config))
    optimum = mean_cost(OptimalScheduler(config, 250.0))
    assert summary["cost_per_request"] == pytest.approx(cost, rel=1e-12)
    assert summary["optimal_cost_per_request"] == pytest.approx(optimum, rel=1e-12)
    assert summary["gap_to_optimal"] == pytest.approx((cost - optimum) / optimum, rel=1e-9)
    assert record["gap_to_optimal"] == summary["gap_to_optimal"]
    whole = mean_cost(OptimalScheduler(config, 250.0, action_set="whole"))
    assert summary["gap_to_optimal_env_actions"] == pytest.approx((cost - whole) / whole, rel=1e-9)


def test_a_resumed_run_without_n_trains_the_steps_its_run_had_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """So that SB3's schedules (learning rate, exploration), spread over the steps done plus
    those of the call, go on where they stopped; with -n they are spread anew, and it says so."""
    run = _train(tmp_path, "ppo", "--seed", "3", n=512)
    middle = run / "checkpoints" / "step_256.zip"
    assert load_checkpoint(middle).meta["target_timesteps"] == 512
    capsys.readouterr()
    argv = _tiny_argv(tmp_path, "ppo", "--n-envs", "2", "--eval-freq", "0", resume=middle)
    assert train.main(argv) == 0
    assert "resuming at 256 of 512 steps: 256 more" in capsys.readouterr().out
    resumed = load_checkpoint(sorted((tmp_path / "runs").iterdir())[-1] / "final_model.zip")
    assert resumed.meta["timesteps"] == 512 and resumed.meta["target_timesteps"] == 512
    assert resumed.meta["seed"] == 3  # the run's seed, not --seed's default
    assert train.main([*argv, "-n", "256"]) == 0
    assert "now run to 512 steps, not the 512" not in capsys.readouterr().out  # the same total
    assert train.main([*argv, "-n", "128"]) == 0
    assert (
        "schedules (learning rate, exploration) now run to 384 steps, not the 512" in capsys.readouterr().out
    )


def test_a_dqn_checkpoint_without_its_replay_buffer_says_the_buffer_starts_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _train(tmp_path, "dqn", n=512)
    capsys.readouterr()
    flags = ("-n", "64", "--n-envs", "2", "--eval-freq", "0")
    periodic = _tiny_argv(tmp_path, "dqn", *flags, resume=run / "checkpoints" / "step_256.zip")
    assert train.main(periodic) == 0
    assert "no replay buffer next to" in capsys.readouterr().err
    assert train.main(_tiny_argv(tmp_path, "dqn", *flags, resume=run / "final_model.zip")) == 0
    assert "no replay buffer" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--seed", "-1"], "--seed must be in [0, 2**32 - 1], got -1"),
        (["--device", "banana"], "--device: 'banana' is not a torch device"),
        (["--device", "cuda:7"], "--device cuda:7: no such CUDA device"),
        (["--eval-scenarios", "azure_trace_test"], "--eval-scenarios: 'azure_trace_test' is a held-out"),
        (["--eval-scenarios", "nosuch"], "--eval-scenarios: scenario: unknown scenario 'nosuch'"),
        (["--resume", "x.zip", "--env", "high_load"], "--env does not apply with --resume"),
        (["--resume", "x.zip", "--seed", "2"], "--seed does not apply with --resume"),
        (["--eval-horizon-s", "inf"], "--eval-horizon-s must be in [1, 3600] (simulated s), got inf"),
        (["--eval-horizon-s", "1e300"], "--eval-horizon-s must be in [1, 3600] (simulated s), got 1e+300"),
        (["--eval-horizon-s", "0.001"], "--eval-horizon-s must be in [1, 3600] (simulated s), got 0.001"),
        (["--eval-horizon-s", "nan"], "--eval-horizon-s must be in [1, 3600] (simulated s), got nan"),
        (["--eval-seeds", "-1"], "--eval-seeds: every seed must be in [0, 2**32 - 1], got -1"),
        (
            ["--eval-seeds", "1,4294967296"],
            "--eval-seeds: every seed must be in [0, 2**32 - 1], got 4294967296",
        ),
        (["--eval-rates", "50,inf"], "--eval-rates: every rate must be a finite number > 0"),
        (["--rate", "inf"], "--rate must be a finite number > 0 (requests/s; at most 1e7 requests"),
    ],
)
def test_bad_training_flags_are_one_line(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        train.parse_args(flags)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"train.py: error: {expected}")


def test_the_run_records_the_envs_and_steps_that_ran(tmp_path: Path) -> None:
    run = _train(tmp_path, "ppo", n=512)  # --n-envs 2 over the file's n_envs
    recorded = yaml.safe_load((run / "hyperparams.yml").read_text())
    assert (recorded["n_envs"], recorded["n_timesteps"]) == (2, 512)
    assert load_checkpoint(run / "final_model.zip").meta["hyperparams"] == recorded


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--env", "nosuch"], "--env: unknown scenario 'nosuch'"),
        (
            ["--rate", "1e12"],
            "--rate: must be in (0, 166667] requests/s on 'default' (at most 1e+07 requests",
        ),
        (["--eval-rates", "1e6"], "--eval-rates: horizon_s: 60 s at up to 1e+06 requests/s"),
        (
            ["--rate", "100000", "--eval-horizon-s", "3600"],
            "--eval-horizon-s: 3600 s at up to 100000 requests/s (scenario) is more than 1e+07",
        ),
    ],
)
def test_flags_refused_once_the_scenario_is_known_name_the_flag(
    flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown --env or a --rate out of the scenario's range is one line naming the flag
    (they named the config fields "scenario" and "arrivals.rate_per_s"), before any run folder."""
    argv = ["--algo", "ppo", "-n", "64", "-f", str(tmp_path / "runs"), "--no-progress", *flags]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train.py: error: {expected}"), err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_resuming_a_complete_run_without_n_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-i runs/x/final_model.zip`` without -n trained a whole n_timesteps more, saying "leave out
    -n to continue them" with -n left out: it is refused, and -n still trains further."""
    run = _train(tmp_path, "ppo", n=256)
    capsys.readouterr()
    argv = _tiny_argv(tmp_path, "ppo", "--n-envs", "2", "--eval-freq", "0", resume=run / "final_model.zip")
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"train.py: error: checkpoint {run / 'final_model.zip'}: the run is complete (256 steps trained, "
        "its target 256); pass -n to train further"
    ]
    assert len(list((tmp_path / "runs").iterdir())) == 1  # no run folder for it
    assert train.main([*argv, "-n", "128"]) == 0
    out = capsys.readouterr().out
    assert "resuming a complete run at 256 steps: 128 more" in out and "leave out -n" not in out


def test_a_resumed_run_draws_new_episodes_from_the_seed_and_the_steps_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run replayed the episodes its run began with (the envs got the run's seed
    again). Its envs and model are now seeded from SeedSequence([seed, steps done]): other
    episodes than the run's first ones, and the same ones on every resume of that checkpoint."""
    seeds: list[int] = []
    make = train_run.make_training_env

    def spy(config: Any, n_envs: int, seed: int, **kwargs: Any) -> Any:
        seeds.append(seed)
        return make(config, n_envs, seed, **kwargs)

    monkeypatch.setattr(train_run, "make_training_env", spy)
    run = _train(tmp_path, "ppo", "--seed", "3", n=512)
    middle = run / "checkpoints" / "step_256.zip"
    derived = int(np.random.SeedSequence([3, 256]).generate_state(1)[0])
    plan = train_plan.plan_run(train.parse_args(_tiny_argv(tmp_path, "ppo", resume=middle)))
    assert train_plan.training_seed(plan, 256) == derived != 3
    assert train_plan.training_seed(plan, 0) == 3
    assert train_plan.training_seed(plan, 512) not in (3, derived)

    def resumed_weights() -> list[np.ndarray]:
        argv = _tiny_argv(tmp_path, "ppo", "--n-envs", "2", "--eval-freq", "0", resume=middle)
        assert train.main(argv) == 0
        latest = max((tmp_path / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        checkpoint = load_checkpoint(latest / "final_model.zip")
        assert checkpoint.meta["seed"] == 3  # the run's own seed stays recorded
        return [p.detach().numpy().copy() for p in checkpoint.model.policy.parameters()]

    first, again = resumed_weights(), resumed_weights()
    assert seeds == [3, derived, derived]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


def test_tensorboard_shows_a_run_as_one_run(tmp_path: Path) -> None:
    """The hyperparameter table went to tb/<run>/hyperparameters and SB3's curves to tb/<run>_1
    (a resumed run's to tb/<run>_0): two runs in TensorBoard. Now both, and the evaluation
    metrics, are in tb/<run>, for a new and a resumed run alike."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = _train(tmp_path, "ppo", n=512)  # SB3 writes a rollout's train/ values at the next one
    resumed = _train(tmp_path, "ppo", n=512, resume=first / "final_model.zip")
    for run in (first, resumed):
        (folder,) = (run / "tb").iterdir()
        assert folder.name == run.name and not [p for p in folder.iterdir() if p.is_dir()]
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = events.Tags()
        assert "hyperparameters/text_summary" in tags["tensors"]
        assert "train/value_loss" in tags["scalars"] and "eval/gap_to_reference" in tags["scalars"]
