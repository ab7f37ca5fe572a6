"""The execution layer on Ray (``--backend ray``): the same results as the local pool bit for bit,
errors as data, dependent submissions, cancellation, Ctrl-C of ``evaluate.py``, how a session
starts or joins (a local Ray of its own, the workers' environment and priority, an address that
does not answer or refuses the token: one line and exit status 2 from every command) and
``--jobs`` capping the tasks at once on a cluster. tests/test_ray_cluster.py (slow) runs the
commands against a cluster of ``ray start``.

One local Ray session with 2 CPUs serves every test here (starting Ray takes several seconds),
and they all run in one xdist worker (``xdist_group`` with ``--dist loadgroup``). They are
skipped only when Ray is not installed (``pip install -e ".[dist]"``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[dist]")')

from apps import evaluate as evaluate_app  # noqa: E402
from apps import tune as tune_app  # noqa: E402
from apps import verify as verify_app  # noqa: E402
from batchenv.scenarios import SCENARIO_PATH_ENV  # noqa: E402
from execution import ray_backend  # noqa: E402
from execution.backends import BackendSpec, LocalBackend  # noqa: E402
from execution.episode import EpisodeTask, run_episode_task  # noqa: E402
from execution.ray_backend import RayBackend, RayUnavailableError, start_or_join  # noqa: E402
from execution.run import run_tasks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("ray")
NICENESS = ray_backend.WORKER_NICENESS[0]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Ray for the rest of this test process; the signal handlers ray.init installs are put back
    at once, so that the tests that run after these in the same process see the usual ones."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False
    )
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


def test_on_result_sees_every_outcome_on_ray(ray_session: None) -> None:
    """run_tasks' on_result (what stores each hindsight bound as it comes back) gets every
    outcome once on Ray too, in this process, the error included; the list keeps task order."""
    seen: list[tuple[int, object]] = []
    with RayBackend() as backend:
        outcomes = run_tasks(
            backend, int, [("7",), ("x",), ("9",)], on_result=lambda i, outcome: seen.append((i, outcome))
        )
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    assert [outcome for _, outcome in sorted(seen, key=lambda pair: pair[0])] == outcomes
    assert [o.value for o in outcomes] == [7, None, 9]


def test_jobs_caps_the_tasks_at_once_on_a_cluster(ray_session: None) -> None:
    """With an address, --jobs is at most that many tasks at once (its help says so): the others
    wait in the driver. (Joining the session that is open here, as a notebook would; before the
    test that force-cancels tasks, whose killed workers Ray replaces only after a while.)"""
    with RayBackend(jobs=1, address="auto") as backend:
        assert backend.jobs == 1 and "at most 1 task at once" in backend.describe()
        start = time.perf_counter()
        assert [o.ok for o in run_tasks(backend, time.sleep, [(0.5,)] * 3)] == [True] * 3
        assert time.perf_counter() - start >= 1.5
        futures = [backend.submit(time.sleep, 5.0) for _ in range(3)]
        start = time.perf_counter()
        backend.cancel()
        assert all(f.cancelled() for f in futures) and time.perf_counter() - start < 5.0
    with RayBackend(address="auto") as backend:  # no --jobs: every CPU of the cluster
        assert backend.jobs == 2 and backend._cap is None


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


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Init:
    """A stand-in for ray.init that records its arguments and the environment it ran in."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls: list[dict] = []
        self.error = error

    def __call__(self, **kwargs: object) -> None:
        self.calls.append({**kwargs, "niceness": os.environ.get(NICENESS)})
        if self.error is not None:
            raise self.error


def test_an_embedded_ray_is_a_local_ray_of_its_own_at_the_command_s_priority(
    monkeypatch, tmp_path: Path
) -> None:
    """address="local": without it ray.init joins a cluster that ray start runs on this machine
    (and refuses num_cpus there). Its workers keep this process's niceness, as the local pool's
    do; a cluster's are left alone. The scenario search path reaches the workers, absolute."""
    init = _Init()
    monkeypatch.setattr(ray_backend.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_backend.ray, "init", init)
    monkeypatch.delenv(NICENESS, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SCENARIO_PATH_ENV, "mine")
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    with listening:
        head = f"127.0.0.1:{listening.getsockname()[1]}"
        assert start_or_join(2, None) and start_or_join(None, head)
    monkeypatch.setenv(NICENESS, "5")
    start_or_join(1, None)
    embedded, joined, kept = init.calls
    assert (embedded["address"], embedded["num_cpus"], embedded["niceness"]) == ("local", 2, "0")
    assert (joined["address"], joined["niceness"]) == (head, None) and "num_cpus" not in joined
    assert kept["niceness"] == "5"
    assert os.environ[NICENESS] == "5"
    for call in init.calls:
        assert call["runtime_env"] == {"env_vars": {SCENARIO_PATH_ENV: str(tmp_path / "mine")}}
    monkeypatch.delenv(SCENARIO_PATH_ENV)
    monkeypatch.delenv(NICENESS)
    start_or_join(1, None)
    assert "runtime_env" not in init.calls[-1] and NICENESS not in os.environ


def test_an_address_that_does_not_answer_ends_every_command_with_one_line(
    monkeypatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In seconds (ray.init would retry for about 14 minutes), exit status 2, no traceback."""
    init = _Init()
    monkeypatch.setattr(ray_backend.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_backend.ray, "init", init)
    address = f"127.0.0.1:{_closed_port()}"
    ray_flags = ["--horizon-s", "1", "--backend", "ray", "--address", address]
    commands = [
        lambda: evaluate_app.main(
            ["--agents", "greedy", "--seeds", "0", *ray_flags, "--no-plots", "--out", str(tmp_path / "e")]
        ),
        lambda: tune_app.main(
            [
                "--scenarios",
                "default",
                "--agents",
                "timeout",
                "--seeds",
                "1000",
                *ray_flags,
                "--out",
                str(tmp_path / "t"),
            ]
        ),
        lambda: verify_app.main(["--no-ta", "--agents", "greedy", "--backend", "ray", "--address", address]),
    ]
    for command in commands:
        start = time.perf_counter()
        with pytest.raises(SystemExit) as info:
            command()
        assert info.value.code == 2
        assert time.perf_counter() - start < 30.0
        err = capsys.readouterr().err
        assert (
            f"error: --address: cannot reach a Ray cluster at {address}: " in err and "Traceback" not in err
        )
    assert not init.calls
    with pytest.raises(RayUnavailableError, match="--address: give auto or HOST:PORT"):
        start_or_join(None, "head-without-port")


def test_a_refused_token_says_what_to_set(monkeypatch) -> None:
    """Ray 2.60: a cluster of ray start --head (token authentication on) refuses a client given
    its HOST:PORT unless RAY_AUTH_MODE=token and its token are set; ray.init says only that it
    failed to connect, the cause is under it."""
    try:
        raise RuntimeError("Failed to connect to GCS. Last connection error: ... InvalidAuthToken: missing")
    except RuntimeError as cause:
        refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")
        refused.__cause__ = cause
    monkeypatch.setattr(ray_backend.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_backend.ray, "init", _Init(refused))
    monkeypatch.setattr(ray_backend, "unreachable_reason", lambda address: None)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(RayUnavailableError) as info:
        start_or_join(None, "10.0.0.5:6379")
    message = str(info.value)
    assert "\n" not in message and message.startswith("--address: the Ray cluster at 10.0.0.5:6379 refused")
    for needed in (
        "RAY_AUTH_MODE not set",
        "RAY_AUTH_MODE=token",
        "~/.ray/auth_token",
        "RAY_AUTH_TOKEN_PATH",
    ):
        assert needed in message
    monkeypatch.setattr(
        ray_backend.ray, "init", _Init(ConnectionError("Could not find any running Ray instance."))
    )
    with pytest.raises(
        RayUnavailableError, match=r"^--address: cannot join the Ray cluster at auto: Could not find"
    ):
        start_or_join(None, "auto")
