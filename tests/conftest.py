"""Shared fixtures: paths and small configs."""

from __future__ import annotations

import os

# numpy's BLAS threads oversubscribe 2 cores under pytest -n 2 (small solves got 20x slower)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchenv.config import SystemConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACE = REPO.parent / "shared" / "traces" / "azure_llm_conv_2023.csv"


@pytest.fixture
def default_config() -> SystemConfig:
    return SystemConfig()


def _play_episode(env: Any, agent: Any, seed: int) -> None:
    """Run ``agent`` through ``env`` for one episode from ``env.reset(seed=seed)``, calling
    ``agent.predict(obs, episode_start=...)`` as SB3 does; every action must be in the action
    space."""
    obs, _ = env.reset(seed=seed)
    start = np.array([True])
    done = False
    while not done:
        action, _ = agent.predict(obs, episode_start=start)
        start = np.array([False])
        assert env.action_space.contains(int(action))
        obs, _, terminated, truncated, _ = env.step(int(action))
        done = terminated or truncated


@pytest.fixture
def play_episode() -> Callable[[Any, Any, int], None]:
    """``play_episode(env, agent, seed)``: one episode of an agent through the environment."""
    return _play_episode


@pytest.fixture
def shared_trace() -> Path:
    if not SHARED_TRACE.is_file():
        pytest.skip(f"shared trace not present at {SHARED_TRACE}")
    return SHARED_TRACE
