"""Shared fixtures: paths and small configs."""

from __future__ import annotations

import os

# numpy's BLAS threads oversubscribe 2 cores under pytest -n 2 (small solves got 20x slower)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchenv.config import SystemConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACE = REPO.parent / "shared" / "traces" / "azure_llm_conv_2023.csv"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "default_hindsight_cache: evaluate.py keeps its own default hindsight cache "
        "(.hindsight_cache in its --out folder; the working folder is the test's tmp_path)",
    )


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


@pytest.fixture(scope="session", autouse=True)
def _evaluate_default_hindsight_cache(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[Path], Path]]:
    """For the whole session, evaluate.py run in this process (``apps.evaluate.main``,
    ``make_plan``) keeps its hindsight bounds under pytest's temporary folder by default, not in
    ``.hindsight_cache`` of its ``--out`` (the repository's ``results/`` when a test gives no
    ``--out``): module-scoped fixtures that run evaluate.py too. Yields evaluate.py's own
    default (:func:`evaluation.plan.default_hindsight_cache`)."""
    import evaluation.plan

    default = evaluation.plan.default_hindsight_cache
    session = tmp_path_factory.getbasetemp() / "hindsight_cache" / "session"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation.plan, "default_hindsight_cache", lambda out: session)
        yield default


@pytest.fixture
def hindsight_cache_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hindsight cache folder of this test's own under pytest's temporary folder (not created:
    the cache creates it when it stores a bound)."""
    name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    return tmp_path_factory.getbasetemp() / "hindsight_cache" / name


@pytest.fixture(autouse=True)
def _hindsight_cache_outside_the_repository(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    hindsight_cache_dir: Path,
    _evaluate_default_hindsight_cache: Callable[[Path], Path],
) -> None:
    """Within a test, evaluate.py's default hindsight cache is :func:`hindsight_cache_dir`, whatever
    its ``--out``: a test neither writes into the repository's ``results/.hindsight_cache`` nor
    reads bounds another test or an earlier run left. A test marked ``default_hindsight_cache``
    gets evaluate.py's own default back and runs in its ``tmp_path`` (the default ``--out``,
    ``results``, is relative to the working folder)."""
    import evaluation.plan

    if request.node.get_closest_marker("default_hindsight_cache") is not None:
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))
        monkeypatch.setattr(evaluation.plan, "default_hindsight_cache", _evaluate_default_hindsight_cache)
    else:
        monkeypatch.setattr(evaluation.plan, "default_hindsight_cache", lambda out: hindsight_cache_dir)


def _interrupt_evaluate(
    argv: list[str], ready: str, wait_s: float, hindsight_cache: Path
) -> tuple[int, str, float]:
    """Run ``evaluate.py argv`` in its own process group, wait for an output line containing
    ``ready`` and then ``wait_s`` seconds, send SIGINT to the group (what Ctrl-C in a terminal
    does); returns the exit code, the output and the seconds from SIGINT to exit. Hindsight
    bounds go to ``hindsight_cache`` unless ``argv`` says where."""
    if not {"--hindsight-cache", "--no-hindsight-cache"} & {arg.split("=")[0] for arg in argv}:
        argv = [*argv, "--hindsight-cache", str(hindsight_cache)]
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
def interrupt_evaluate(
    hindsight_cache_dir: Path,
) -> Callable[[list[str], str, float], tuple[int, str, float]]:
    """``interrupt_evaluate(argv, ready, wait_s)``: Ctrl-C of a running ``evaluate.py`` (its
    hindsight bounds in :func:`hindsight_cache_dir`)."""
    return lambda argv, ready, wait_s: _interrupt_evaluate(argv, ready, wait_s, hindsight_cache_dir)
