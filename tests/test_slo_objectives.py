"""Training across objectives: an SLO objective drawn per episode (``reward.slo_probability``)
and shown to the agent (``env.observe_slo``)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from batchenv.config import ConfigError, SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import request_scores
from batchenv.observation import ObservationBuilder
from batchenv.sim import Simulator, simulate

RANGES = {"slo_ms_range": [50.0, 150.0], "w_slo_range": [0.05, 0.4]}


def _drawing(probability: float, **env: object) -> SystemConfig:
    return SystemConfig(
        arrivals={"rate_per_s": 150.0},
        horizon_s=5.0,
        reward={"slo_probability": probability, **RANGES},
        env=env,
    )


@pytest.mark.parametrize(
    ("reward", "field"),
    [
        ({"slo_probability": 1.5, **RANGES}, "reward.slo_probability"),
        ({"slo_probability": -0.1, **RANGES}, "reward.slo_probability"),
        ({"slo_probability": 0.3, "w_slo_range": [0.0, 0.1]}, "reward.slo_ms_range"),
        ({"slo_probability": 0.3, "slo_ms_range": [50.0, 80.0]}, "reward.w_slo_range"),
        ({"slo_ms_range": [0.0, 80.0]}, "reward.slo_ms_range"),
        ({"slo_ms_range": [90.0, 80.0]}, "reward.slo_ms_range"),
        ({"w_slo_range": [-0.1, 0.2]}, "reward.w_slo_range"),
        ({"w_slo_range": [0.1, 0.2, 0.3]}, "reward.w_slo_range"),
        ({"w_slo_range": "0.1-0.2"}, "reward.w_slo_range"),
    ],
)
def test_bad_objective_draws_name_the_field(reward: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        SystemConfig(reward=reward)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("env", "field"),
    [({"observe_slo": "yes"}, "env.observe_slo"), ({"observe_slo_wait": "never"}, "env.observe_slo_wait")],
)
def test_bad_slo_observation_options_name_the_field(env: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        SystemConfig(env=env)
    assert err.value.field == field


def test_new_fields_at_their_defaults_leave_the_yaml_unchanged() -> None:
    text = SystemConfig().to_yaml()
    for name in ("slo_probability", "slo_ms_range", "w_slo_range", "observe_slo"):
        assert name not in text
    for mode in ("always", "penalised"):
        drawn = _drawing(0.3, observe_slo=True, observe_slo_wait=mode)
        assert SystemConfig.from_dict(drawn.to_dict()) == drawn


def test_without_draws_the_episode_keeps_the_system_objective_and_its_arrivals() -> None:
    plain = SystemConfig(arrivals={"rate_per_s": 150.0}, horizon_s=5.0, slo_ms=80.0, reward={"w_slo": 0.2})
    sim = simulate(plain, lambda s: (0, 4) if s.queue_len else None, seed=3)
    assert (sim.slo_s, sim.w_slo) == (0.08, 0.2)
    again = simulate(plain.replace(reward={"w_slo_range": [0.0, 1.0]}), lambda s: None, seed=3)
    assert again.admitted_arrivals_s[:50] == sim.admitted_arrivals_s[:50]  # no draw consumed


def test_drawn_objectives_are_in_their_ranges_deterministic_and_leave_the_arrivals_alone() -> None:
    sometimes, always = _drawing(0.3), _drawing(1.0)
    sims = [Simulator(c) for c in (sometimes, always, sometimes)]
    drawn = 0
    for seed in range(40):
        objectives = []
        for sim in sims:
            sim.reset(seed)
            objectives.append((sim.slo_s, sim.w_slo))
        assert objectives[0] == objectives[2]  # the same seed, the same objective
        slo_s, w_slo = objectives[1]
        assert 0.05 <= slo_s <= 0.15 and 0.05 <= w_slo <= 0.4
        drawn += objectives[0] != (0.25, 0.0)
        # the three draws are taken whatever the outcome: the arrivals do not depend on it
        assert sims[0]._next_arrival_s == sims[1]._next_arrival_s
    assert 5 <= drawn <= 20  # about 30% of 40


def test_the_reward_and_the_scores_use_the_episodes_objective() -> None:
    config = _drawing(1.0)
    sim = simulate(config, lambda s: (0, 8) if s.queue_len >= 8 else 0.02, seed=5)
    assert sim.w_slo != config.reward.w_slo and sim.n_slo_misses > 0
    assert sim.total_reward == pytest.approx(float(np.sum(request_scores(sim))), rel=1e-9)


def test_the_observation_shows_the_episodes_objective() -> None:
    config = _drawing(1.0, observe_slo=True)
    builder = ObservationBuilder(config)
    assert builder.space.shape == (10,)
    assert builder.names[-2:] == ("slo_weight", "oldest_wait_slo")
    sim = Simulator(config)
    sim.reset(7)
    for _ in range(200):
        obs = builder(sim)
        assert builder.space.contains(obs)
        assert obs[-2] == pytest.approx(sim.w_slo / (sim.w_slo + 0.1), rel=1e-6)  # 100 ms at 1/s
        assert obs[-1] == pytest.approx(min(sim.oldest_wait_s / sim.slo_s, 2.0), rel=1e-5)
        sim.step(None if sim.queue_len < 6 else (0, 6))
    plain = ObservationBuilder(SystemConfig(env={"observe_slo": True}))
    sim = Simulator(SystemConfig())
    sim.reset(0)
    assert plain(sim)[-2] == 0.0  # no SLO penalty


def test_the_wait_entry_can_read_only_in_episodes_with_a_penalty() -> None:
    """``observe_slo_wait: penalised``: 0 in an episode without an SLO penalty, the oldest wait
    over the bound in one with it; the rest of the observation as with ``always``."""
    seen = set()
    for seed in range(12):
        readings = []
        for mode in ("always", "penalised"):
            config = _drawing(0.5, observe_slo=True, observe_slo_wait=mode)
            builder, sim = ObservationBuilder(config), Simulator(config)
            sim.reset(seed)
            for _ in range(40):
                sim.step(None if sim.queue_len < 6 else (0, 6))
            readings.append((builder(sim), sim.w_slo, sim.oldest_wait_s / sim.slo_s))
        (always, w_slo, late), (penalised, _, _) = readings
        np.testing.assert_array_equal(always[:-1], penalised[:-1])
        assert always[-1] == pytest.approx(min(late, 2.0), rel=1e-5)
        assert penalised[-1] == (always[-1] if w_slo > 0 else 0.0)
        seen.add((w_slo > 0, always[-1] > 0))
    assert seen == {(True, True), (False, True)}  # both kinds of episode, each with a wait


def test_the_env_with_drawn_objectives_passes_gymnasiums_checker() -> None:
    env = DynamicBatchingEnv(_drawing(0.5, observe_slo=True), record=False)
    check_env(env, skip_render_check=True)
    first = [env.reset(seed=11)[0] for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])


def test_the_slo_entries_read_only_the_scheduler_interface_and_the_server_provides_them() -> None:
    from serving.engine import ServerState
    from tests.test_serving_state import StateView

    config = SystemConfig(slo_ms=80.0, reward={"w_slo": 0.2}, env={"observe_slo": True})
    sim = Simulator(config)
    sim.reset(2)
    sim.step(None)
    through_view = ObservationBuilder(config)(StateView(sim))  # type: ignore[arg-type]
    np.testing.assert_array_equal(through_view, ObservationBuilder(config)(sim))
    served = ObservationBuilder(config)(ServerState(config))  # type: ignore[arg-type]
    assert served[-2] == pytest.approx(0.2 / 0.3) and served[-1] == 0.0  # empty queue
