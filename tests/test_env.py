"""DynamicBatchingEnv: Gymnasium/SB3 conformance, determinism, reward decomposition, masks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import batchenv
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import compute_metrics, request_scores
from batchenv.sim import simulate

SHORT = {"horizon_s": 5.0}


@pytest.mark.parametrize(
    "overrides",
    [SHORT, {**SHORT, "env": {"batch_choice": True}}, {**SHORT, "n_workers": 3}],
)
def test_passes_gymnasium_and_sb3_checkers(overrides: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(
            gym.make("batchenv/DynamicBatching-v0", overrides=overrides).unwrapped,
            skip_render_check=False,
        )
        sb3_check_env(gym.make("batchenv/DynamicBatching-v0", overrides=overrides).unwrapped)


@pytest.mark.parametrize("scenario", batchenv.list_scenarios())
def test_every_scenario_is_registered(scenario: str) -> None:
    env = gym.make(batchenv.env_id(scenario), overrides=SHORT)
    obs, _info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.config.name == scenario
    env.close()


def _rollout(env: gym.Env, seed: int, action_seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    while True:
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        assert not terminated
        assert isinstance(reward, float) and isinstance(truncated, bool)
        assert obs.dtype == np.float32 and env.observation_space.contains(obs), obs
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if truncated:
            return observations, rewards, infos


def test_same_seed_same_trajectory_different_seed_differs() -> None:
    env = gym.make("batchenv/DynamicBatching-Bursty-v0", overrides=SHORT)
    a = _rollout(env, seed=1, action_seed=0)
    b = _rollout(env, seed=1, action_seed=0)
    c = _rollout(env, seed=2, action_seed=0)
    assert len(a[0]) == len(b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1] and a[2] == b[2]
    assert len(a[0]) != len(c[0]) or a[1] != c[1]


@pytest.mark.parametrize(
    "overrides",
    [
        {"horizon_s": 20.0},
        {
            "horizon_s": 10.0,
            "reward": {"w_slo": 0.5},
            "slo_ms": 60.0,
            "queue_capacity": 40,
            "arrivals": {"rate_per_s": 900.0},
        },
        {
            "horizon_s": 10.0,
            "n_workers": 2,
            "env": {"batch_choice": True},
            "arrivals": {"rate_per_s": 300.0},
        },
    ],
)
def test_return_equals_sum_of_request_scores(overrides: dict) -> None:
    env = DynamicBatchingEnv(overrides=overrides)
    _, rewards, infos = _rollout(env, seed=4, action_seed=1)
    sim = env.sim
    scores = request_scores(sim)
    assert len(scores) == sim.n_arrived
    assert sum(rewards) == pytest.approx(scores.sum(), rel=1e-9, abs=1e-9)
    metrics = env.metrics()
    assert metrics.score_per_request == pytest.approx(scores.mean(), rel=1e-9)
    assert sum(i.get("dispatched", 0) for i in infos) == sim.n_served
    assert sum(i.get("dropped", 0) for i in infos) == sim.n_dropped
    assert sum(i.get("forced_dispatches", 0) for i in infos) == sim.n_forced
    assert infos[-1]["sim_time_s"] == env.config.horizon_s
    if "queue_capacity" in overrides:
        assert sim.n_dropped > 0 and sim.n_slo_misses > 0  # the penalties were exercised


def test_env_and_simulator_see_the_same_arrivals() -> None:
    config = batchenv.load_scenario("azure_trace").replace(horizon_s=10.0)

    def policy(sim):
        return (1, 64) if sim.queue_len >= 6 or sim.oldest_wait_s >= 0.02 else None

    env = DynamicBatchingEnv(config)
    env.reset(seed=9)
    while True:
        *_, truncated, _ = env.step(env.action_of(policy(env.sim)))
        if truncated:
            break
    assert env.metrics() == compute_metrics(simulate(config, policy, seed=9))


def test_wait_is_masked_when_the_oldest_request_reaches_max_wait() -> None:
    env = DynamicBatchingEnv(overrides={"arrivals": {"rate_per_s": 5.0}, "horizon_s": 30.0})
    env.reset(seed=0)
    shielded_seen = 0
    while True:
        mask = env.action_masks()
        sim = env.sim
        if sim.now_s >= sim.oldest_arrival_s + sim.max_wait_s:  # the deadline, as the sim computes it
            assert not mask[0]
            shielded_seen += 1
            _, _, _, truncated, info = env.step(0)  # wait anyway: forced dispatch
            assert info["forced_dispatches"] == 1 and info["dispatched"] >= 1
        else:
            assert mask[0]
            _, _, _, truncated, info = env.step(0)
            assert info["forced_dispatches"] == 0
        if truncated:
            break
    assert shielded_seen > 50
    assert env.sim.n_forced == shielded_seen
    # always waiting: every batch was forced, each request waited exactly up to the oldest's bound
    assert env.sim.n_batches == env.sim.n_forced


def test_batch_choice_actions_and_masks() -> None:
    env = DynamicBatchingEnv(
        overrides={"env": {"batch_choice": True}, "max_batch_size": 48, "horizon_s": 5.0}
    )
    assert env.batch_sizes == (1, 2, 4, 8, 16, 32, 48)
    assert env.action_space.n == 1 + 3 * 7
    assert env.decision(1 + 2 * 7 + 3) == (2, 8)
    assert env.action_of((2, 8)) == 1 + 2 * 7 + 3
    assert env.action_of((1, 5)) == env.action_of((1, 8))
    env.reset(seed=0)
    while env.sim.queue_len < 3:
        env.step(0)
    q = env.sim.queue_len
    mask = env.action_masks()
    valid_sizes = [b for s, b in enumerate(env.batch_sizes) if mask[1 + s]]
    assert valid_sizes == [b for b in env.batch_sizes if b < q] + [min(b for b in env.batch_sizes if b >= q)]
    assert all(np.array_equal(mask[1 + m * 7 : 8 + m * 7], mask[1:8]) for m in range(3))
    _, _, _, _, info = env.step(1 + 0 * 7 + 1)  # size 2 on LLM-1
    assert info["dispatched"] == 2


def test_observation_entries_mean_what_the_docs_say() -> None:
    env = DynamicBatchingEnv(overrides={"n_workers": 2, "horizon_s": 5.0})
    assert env.observation_space.shape == (9,)
    assert env.observation_names[-2:] == ("busy_remaining_0", "busy_remaining_1")
    env.reset(seed=3)
    for _ in range(200):
        obs, *_ = env.step(0)
        sim = env.sim
        assert obs[0] == np.float32(min(sim.queue_len / 64, 1.0))
        assert obs[1] == np.float32(np.log1p(sim.queue_len) / np.log1p(1024))
        assert obs[2] == np.float32(min(sim.oldest_wait_s / 0.1, 2.0))
        for w in range(2):
            remaining = max(sim.free_at_s[w] - sim.now_s, 0.0)
            assert obs[7 + w] == pytest.approx(remaining / sim.service_table.max_service_s, abs=1e-6)


def test_rate_estimate_tracks_the_arrival_rate() -> None:
    env = DynamicBatchingEnv(overrides={"arrivals": {"rate_per_s": 200.0}, "horizon_s": 20.0})
    env.reset(seed=0)
    estimates = []
    while True:
        obs, _, _, truncated, _ = env.step(1)
        if env.sim.now_s > 5.0:
            estimates.append(obs[4] * env.sim.service_table.max_throughput_per_s())
        if truncated:
            break
    assert np.mean(estimates) == pytest.approx(200.0, rel=0.05)


def test_step_after_truncation_stays_truncated() -> None:
    """As the class docstring says: a step after the end changes nothing (reset() is due)."""
    env = DynamicBatchingEnv(overrides={"horizon_s": 0.5})
    _rollout(env, seed=0, action_seed=0)
    last = env.observe(env.sim)
    obs, reward, terminated, truncated, info = env.step(1)
    assert truncated and reward == 0.0 and not terminated and info["dispatched"] == 0
    assert np.array_equal(obs, last) and info["dt_s"] == 0.0 and info["arrived"] == 0


def test_render_ansi() -> None:
    env = DynamicBatchingEnv(overrides=SHORT, render_mode="ansi")
    env.reset(seed=0)
    assert "queue=" in env.render()
    with pytest.raises(ValueError, match="render_mode"):
        DynamicBatchingEnv(render_mode="human")


def test_render_rgb_array_draws_the_queue_and_the_busy_workers() -> None:
    from batchenv.render import FRAME_WIDTH, ROW_HEIGHT

    env = DynamicBatchingEnv(overrides={**SHORT, "n_workers": 2}, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (4 * ROW_HEIGHT, FRAME_WIDTH, 3) and frame.dtype == np.uint8
    idle_worker = frame[2 * ROW_HEIGHT + ROW_HEIGHT // 2]
    env.step(1)  # dispatch on LLM-1: one worker busy
    busy = env.render()
    row = busy[2 * ROW_HEIGHT + ROW_HEIGHT // 2 : 4 * ROW_HEIGHT : ROW_HEIGHT]
    assert not np.array_equal(row[0], idle_worker) or not np.array_equal(row[1], idle_worker)
    assert not np.array_equal(frame, busy)


def test_sb3_make_vec_env_by_id_works() -> None:
    """SB3 asks for render_mode='rgb_array' when given an id (as RL Zoo and CleanRL's video do)."""
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("batchenv/DynamicBatching-v0", n_envs=2, env_kwargs={"overrides": SHORT}, seed=0)
    venv.reset()
    assert venv.render().dtype == np.uint8
    venv.close()


def test_calls_before_reset_and_actions_that_are_not_indices_get_clear_errors() -> None:
    env = DynamicBatchingEnv(overrides=SHORT, render_mode="ansi")
    calls = [(lambda: env.step(0), "step"), (env.action_masks, "action_masks"), (env.render, "render")]
    for call, name in calls:
        with pytest.raises(gym.error.ResetNeeded, match=rf"call reset\(\) before {name}\(\)"):
            call()
    env.reset(seed=0)
    for action in (1.0, np.float32(1), np.array([1]), np.array([1, 2]), "1", 4, -1, True, False, np.True_):
        with pytest.raises(ValueError, match=r"action must be an integer in \[0, 3\]"):
            env.step(action)
    env.step(np.int64(1))
    env.step(np.array(1))


def test_an_unknown_override_is_a_config_error_naming_it() -> None:
    with pytest.raises(batchenv.ConfigError, match=r"n_workerz: unknown field; allowed: \[.*'n_workers'"):
        DynamicBatchingEnv(overrides={"n_workerz": 2})


@pytest.mark.parametrize(
    "scenario", ["default", "bursty", "diurnal", "azure_trace_30_test", "default_mixture"]
)
def test_a_copy_of_a_running_env_continues_exactly_as_the_original(scenario: str) -> None:
    import copy
    import pickle

    env = gym.make(batchenv.env_id(scenario), overrides=SHORT)
    env.reset(seed=3)
    for i in range(100):
        env.step(i % 4)
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env.unwrapped))]
    for i in range(2000):
        action = (i * 7) % 4
        obs, reward, _, truncated, info = env.step(action)
        for twin in copies:
            twin_obs, twin_reward, _, twin_truncated, twin_info = twin.step(action)
            assert np.array_equal(obs, twin_obs) and reward == twin_reward and info == twin_info
            assert twin_truncated == truncated
        if truncated:
            break
    assert truncated


def test_user_scenarios_never_take_a_packaged_id_and_bad_names_do_not_break_import(tmp_path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "multi_gpu4.yaml").write_text("extends: default\nhorizon_s: 5.0\n")  # MultiGpu4's id
    (tmp_path / "my scenario.yaml").write_text("extends: default\n")  # no valid id
    (tmp_path / "mine.yaml").write_text("extends: default\nhorizon_s: 5.0\n")
    code = (
        "import batchenv, gymnasium as gym; "
        "print(gym.make('batchenv/DynamicBatching-MultiGpu4-v0').unwrapped.config.n_workers, "
        "gym.make('batchenv/DynamicBatching-Mine-v0').unwrapped.config.horizon_s)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        env={**os.environ, "BATCHENV_SCENARIO_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "5.0"]
    assert "scenario 'multi_gpu4' has no Gymnasium id" in result.stderr
    assert "scenario 'my scenario' has no Gymnasium id" in result.stderr


def test_domain_randomised_episode_rates_differ() -> None:
    env = gym.make("batchenv/DynamicBatching-DefaultRandomised-v0")
    rates = {env.reset(seed=s)[1]["rate_per_s"] for s in range(5)}
    assert len(rates) == 5 and all(10.0 <= r <= 500.0 for r in rates)


def test_a_timed_wait_is_the_wait_action() -> None:
    env = DynamicBatchingEnv(overrides=SHORT)
    assert env.action_of(0.02) == 0 and env.action_of(None) == 0 and env.action_of((2, 64)) == 3
