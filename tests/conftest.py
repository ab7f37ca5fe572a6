"""Shared fixtures: paths and small configs."""

from __future__ import annotations

import os

# numpy's BLAS threads oversubscribe 2 cores under pytest -n 2 (small solves got 20x slower)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import signal
import subprocess
import sys
import time
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


def _interrupt_evaluate(argv: list[str], ready: str, wait_s: float) -> tuple[int, str, float]:
    """Run ``evaluate.py argv`` in its own process group, wait for an output line containing
    ``ready`` and then ``wait_s`` seconds, send SIGINT to the group (what Ctrl-C in a terminal
    does); returns the exit code, the output and the seconds from SIGINT to exit."""
    process = subprocess.Popen(
        [sys.executable, "evaluate.py", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if ready in line:
            break
    time.sleep(wait_s)
    start = time.perf_counter()
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output, time.perf_counter() - start


@pytest.fixture
def interrupt_evaluate() -> Callable[[list[str], str, float], tuple[int, str, float]]:
    """``interrupt_evaluate(argv, ready, wait_s)``: Ctrl-C of a running ``evaluate.py``."""
    return _interrupt_evaluate
