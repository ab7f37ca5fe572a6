"""The execution layer on Ray (``--backend ray``): the same results as the local pool bit for bit,
errors as data, dependent submissions, cancellation, and Ctrl-C of ``evaluate.py``.

One local Ray session with 2 CPUs serves every test here (starting Ray takes several seconds),
and they all run in one xdist worker (``xdist_group`` with ``--dist loadgroup``). They are
skipped only when Ray is not installed (``pip install -e ".[dist]"``).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[dist]")')

from apps import evaluate as evaluate_app  # noqa: E402
from execution.backends import BackendSpec, LocalBackend  # noqa: E402
from execution.episode import EpisodeTask, run_episode_task  # noqa: E402
from execution.ray_backend import RayBackend  # noqa: E402
from execution.run import run_tasks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Ray for the rest of this test process; the signal handlers ray.init installs are put back
    at once, so that the tests that run after these in the same process see the usual ones."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    yield
    ray.shutdown()


def test_an_embedded_ray_leaves_the_signal_handlers_as_it_found_them() -> None:
    """A Ray backend in a process that goes on (a notebook, a test) starts its own Ray and, at
    close(), shuts it down and puts back the SIGTERM handler that ray.init replaced. (First in
    this module, before the shared session starts.)"""
    assert not ray.is_initialized(), "this test runs first: the session fixture is not up yet"
    before = signal.getsignal(signal.SIGTERM)
    with RayBackend(jobs=1) as backend:
        assert backend.submit(abs, -3).result().unwrap() == 3
    assert signal.getsignal(signal.SIGTERM) is before


def test_ray_gives_the_local_results_bit_for_bit(ray_session: None) -> None:
    grid = [
        EpisodeTask(agent, scenario, seed, horizon_s=2.0)
        for scenario in ("default", "azure_trace", "multi_gpu")
        for agent in ("greedy", "timeout", "util_switch", "optimal")
        for seed in (0, 1)
    ]
    args = [(task,) for task in grid]
    with LocalBackend(1) as local:
        expected = [o.unwrap() for o in run_tasks(local, run_episode_task, args)]
    with BackendSpec("ray", 2).create() as backend:
        assert isinstance(backend, RayBackend) and backend.jobs == 2
        got = [o.unwrap() for o in run_tasks(backend, run_episode_task, args)]
    assert ray.is_initialized()  # a session it did not start is left running
    for a, b in zip(expected, got, strict=True):
        assert (a.status, a.reason, a.metrics, a.model_mix, a.params, a.params_source) == (
            b.status,
            b.reason,
            b.metrics,
            b.model_mix,
            b.params,
            b.params_source,
        )
        if a.latency_histogram is not None:
            assert (a.latency_histogram == b.latency_histogram).all()


def test_evaluate_with_the_ray_backend_matches_the_local_pool(ray_session: None, tmp_path: Path) -> None:
    argv = ["--agents", "greedy,timeout,optimal", "--scenarios", "default,bursty", "--seeds", "0-1"]
    argv += ["--horizon-s", "2", "--no-plots"]
    results = []
    for extra in (["--jobs", "2"], ["--backend", "ray", "--jobs", "2"]):
        out = tmp_path / extra[1]
        assert evaluate_app.main([*argv, *extra, "--out", str(out)]) == 0
        (run_dir,) = out.iterdir()
        data = json.loads((run_dir / "results.json").read_text())
        data.pop("command")
        results.append(data)
    assert results[0] == results[1]


def test_errors_and_dependent_submissions_on_ray(ray_session: None) -> None:
    """Task functions must be importable on the Ray workers: builtins here (a test module is
    not on their path)."""
    with RayBackend() as backend:
        outcomes = run_tasks(backend, int, [("100",), ("101",), ("three",), ("103",)])
        assert [o.value for o in outcomes] == [100, 101, None, 103]
        assert str(outcomes[2].error) == "ValueError: invalid literal for int() with base 10: 'three'"
        first = backend.submit(pow, 2, 8)
        second = backend.submit(pow, first.result().unwrap(), 2)
        assert second.result().unwrap() == 65536


def test_cancel_on_ray_returns_at_once(ray_session: None) -> None:
    backend = RayBackend()
    futures = [backend.submit(time.sleep, 5.0) for _ in range(8)]
    time.sleep(1.0)
    start = time.perf_counter()
    backend.cancel()
    backend.close()
    assert time.perf_counter() - start < 5.0
    assert all(f.cancelled() for f in futures)


def test_ctrl_c_of_evaluate_on_an_embedded_ray(tmp_path: Path, interrupt_evaluate) -> None:
    """evaluate.py --backend ray starts its own local Ray; Ctrl-C (SIGINT to the process group)
    cancels the episodes, shuts Ray down and exits with 130, writing nothing."""
    argv = ["--agents", "greedy,timeout,util_switch", "--scenarios", "default,bursty,azure_trace"]
    argv += ["--n-seeds", "40", "--backend", "ray", "--jobs", "2", "--out", str(tmp_path / "out")]
    code, output, elapsed = interrupt_evaluate(argv, "running on embedded local Ray", 2.0)
    assert code == 130, output
    assert "interrupted" in output
    assert elapsed < 10.0, f"took {elapsed:.1f} s to exit"
