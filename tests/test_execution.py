"""The execution layer on the local backend: task order, errors as data, dependent submissions,
the shared command-line flags, Ctrl-C, and that the default commands never import Ray."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from execution import backends
from execution.backends import BackendSpec, LocalBackend, usable_cores
from execution.cli import (
    ExecutionUsageError,
    add_execution_arguments,
    backend_spec_from_args,
    backend_spec_or_exit,
)
from execution.episode import EpisodeTask, run_episode_task
from execution.outcome import Outcome, TaskError, TaskFailedError, call_safely
from execution.run import run_tasks

REPO = Path(__file__).resolve().parents[1]


class PickyError(Exception):
    """An exception that cannot be unpickled (its constructor takes two arguments): across a
    process pool it used to surface as BrokenProcessPool."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def square_or_fail(x: int) -> int:
    if x == 3:
        raise PickyError("arrivals.trace_path", "trace file not found: nowhere.csv")
    return x * x


GRID = [
    EpisodeTask(agent, scenario, seed, horizon_s=3.0)
    for scenario in ("default", "bursty", "multi_gpu")
    for agent in ("greedy", "timeout", "util_switch", "optimal")
    for seed in (0, 1)
]


def test_outcomes_come_back_in_task_order_with_errors_as_data() -> None:
    for jobs in (1, 2):
        with LocalBackend(jobs) as backend:
            outcomes = run_tasks(backend, square_or_fail, [(x,) for x in range(6)])
        assert [o.value for o in outcomes] == [0, 1, 4, None, 16, 25]
        error = outcomes[3].error
        assert error is not None and error.kind == "PickyError"
        assert str(error) == "PickyError: arrivals.trace_path: trace file not found: nowhere.csv"
        assert "square_or_fail" in error.traceback
        with pytest.raises(TaskFailedError, match="trace file not found"):
            outcomes[3].unwrap()


def sleep_then_return(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def interrupted_at_three(x: int) -> int:
    if x == 3:
        raise KeyboardInterrupt  # Ctrl-C while a task runs in this process (jobs=1)
    return x


def _appender(seen: list[tuple[int, Outcome[int]]]):
    return lambda i, outcome: seen.append((i, outcome))


def test_on_result_sees_each_outcome_as_it_comes_back() -> None:
    """``on_result(i, outcome)`` runs once per task as its outcome arrives (a slow first task's
    after a fast second one's), while the list returned keeps the task order."""
    for jobs in (1, 2):
        seen: list[tuple[int, Outcome[int]]] = []
        with LocalBackend(jobs) as backend:
            outcomes = run_tasks(backend, square_or_fail, [(x,) for x in range(6)], on_result=_appender(seen))
        assert sorted(i for i, _ in seen) == list(range(6))
        assert [o for _, o in sorted(seen, key=lambda pair: pair[0])] == outcomes
    order: list[int] = []
    with LocalBackend(2) as backend:
        outcomes = run_tasks(
            backend, sleep_then_return, [(3.0, 0), (0.0, 1)], on_result=lambda i, o: order.append(i)
        )
    assert order == [1, 0] and [o.value for o in outcomes] == [0, 1]


def test_on_result_keeps_what_finished_before_ctrl_c() -> None:
    """A Ctrl-C stops the run, but every task that finished before it reached ``on_result``
    (with one job the tasks run at submission, ahead of the loop that collects them)."""
    seen: list[tuple[int, int | None]] = []
    with LocalBackend(1) as backend, pytest.raises(KeyboardInterrupt):
        run_tasks(
            backend,
            interrupted_at_three,
            [(x,) for x in range(8)],
            on_result=lambda i, o: seen.append((i, o.value)),
        )
    assert sorted(seen) == [(0, 0), (1, 1), (2, 2)]


def test_call_safely_lets_keyboard_interrupt_through() -> None:
    assert call_safely(int, ("7",)) == Outcome(value=7)
    assert call_safely(int, ("x",)).error.kind == "ValueError"

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_safely(interrupted, ())


def test_episodes_are_identical_for_one_and_two_processes() -> None:
    with LocalBackend(1) as one, LocalBackend(2) as two:
        first = [o.unwrap() for o in run_tasks(one, run_episode_task, [(t,) for t in GRID])]
        second = [o.unwrap() for o in run_tasks(two, run_episode_task, [(t,) for t in GRID])]
    for a, b in zip(first, second, strict=True):
        assert (a.status, a.reason, a.metrics, a.model_mix, a.params) == (
            b.status,
            b.reason,
            b.metrics,
            b.model_mix,
            b.params,
        )
        assert (a.latency_histogram is None) == (b.latency_histogram is None)
        if a.latency_histogram is not None:
            assert (a.latency_histogram == b.latency_histogram).all()
    assert {r.status for r in first} == {"ok", "not_applicable"}  # optimal on two workers: n/a


def test_dependent_submissions() -> None:
    """A task submitted once an earlier result is known (as verification does with Storm's
    optimal scheduler)."""
    with LocalBackend(2) as backend:
        first = backend.submit(square_or_fail, 4)
        other = backend.submit(square_or_fail, 5)
        value = first.result().unwrap()
        second = backend.submit(square_or_fail, value)
        wait([second, other])
        assert second.result().unwrap() == 256 and other.result().unwrap() == 25


def test_cancel_drops_queued_tasks_at_once() -> None:
    backend = LocalBackend(2)
    futures = [backend.submit(time.sleep, 2.0) for _ in range(20)]
    start = time.perf_counter()
    backend.cancel()
    backend.close()
    # without the cancel the 20 sleeps would take 20 s on 2 workers; with it, about 2 s (the
    # bound leaves room for a loaded machine's process start-up)
    assert time.perf_counter() - start < 15.0
    assert sum(f.cancelled() for f in futures) >= 16


def _args(*argv: str, default_jobs: int | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_execution_arguments(parser, default_jobs=default_jobs)
    return parser.parse_args(list(argv))


def test_execution_flags() -> None:
    spec, warnings = backend_spec_from_args(_args("--jobs", "1"))
    assert spec == BackendSpec("local", 1) and not warnings
    spec, _ = backend_spec_from_args(_args())
    assert spec.jobs == min(usable_cores(), 8)
    assert backend_spec_from_args(_args(default_jobs=2))[0].jobs == min(usable_cores(), 2)
    spec, warnings = backend_spec_from_args(_args("--jobs", str(usable_cores() + 1)))
    assert spec.jobs == usable_cores() + 1
    assert warnings and "usable cores" in warnings[0]
    spec, _ = backend_spec_from_args(_args("--backend", "ray", "--address", "auto"))
    assert spec == BackendSpec("ray", None, "auto")
    for argv, message in [
        (("--jobs", "0"), "--jobs must be >= 1, got 0"),
        (("--address", "auto"), "needs --backend ray"),
        (("--backend", "ray", "--address", " "), "auto or HOST:PORT"),
    ]:
        with pytest.raises(ExecutionUsageError, match=message):
            backend_spec_from_args(_args(*argv))


def test_a_command_line_exits_with_the_flags_message_and_passes_on_warnings(capsys) -> None:
    parser = argparse.ArgumentParser(prog="prog")
    add_execution_arguments(parser)
    with pytest.raises(SystemExit) as info:
        backend_spec_or_exit(parser, parser.parse_args(["--jobs", "0"]))
    assert info.value.code == 2
    assert "prog: error: --jobs must be >= 1, got 0" in capsys.readouterr().err
    heard: list[str] = []
    jobs = usable_cores() + 1
    spec = backend_spec_or_exit(parser, parser.parse_args(["--jobs", str(jobs)]), heard.append)
    assert spec == BackendSpec("local", jobs) and len(heard) == 1 and "usable cores" in heard[0]
    backend_spec_or_exit(parser, parser.parse_args(["--jobs", str(jobs)]))
    assert capsys.readouterr().out.startswith("warning: --jobs")


def test_usable_cores_without_sched_getaffinity(monkeypatch) -> None:
    """macOS and Windows have no os.sched_getaffinity: the CPU count is used."""
    monkeypatch.delattr(backends.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(backends.os, "cpu_count", lambda: 6)
    assert usable_cores() == 6
    monkeypatch.setattr(backends.os, "cpu_count", lambda: None)
    assert usable_cores() == 1


def test_task_error_is_plain_data() -> None:
    import pickle

    error = TaskError.from_exception(PickyError("a.b", "bad"))
    assert pickle.loads(pickle.dumps(Outcome(error=error))).error == error


def test_default_commands_do_not_import_ray() -> None:
    code = (
        "import sys; import apps.evaluate, apps.tune, apps.verify, evaluation.runner, execution; "
        "from execution.backends import BackendSpec; BackendSpec('local', 2).create().close(); "
        "print('ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_ctrl_c_cancels_queued_episodes_and_exits_at_once(tmp_path: Path, interrupt_evaluate) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while --jobs 2 runs many episodes: the
    queued ones are cancelled, the running ones stopped, nothing is written."""
    argv = ["--agents", "greedy,timeout,util_switch,proposed", "--scenarios", "default,bursty,azure_trace"]
    argv += ["--n-seeds", "30", "--jobs", "2", "--out", str(tmp_path / "out")]
    code, output, elapsed = interrupt_evaluate(argv, "running on", 3.0)  # episodes run in both workers
    assert code == 130, output
    assert "interrupted" in output
    assert elapsed < 5.0, f"took {elapsed:.1f} s to exit"
    assert not list((tmp_path / "out").iterdir())
