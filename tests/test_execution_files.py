"""What a task needs from the machine it runs on, for a worker that runs elsewhere (a Ray worker
starts in the folder of its Ray session, not the user's): the files a task names are made
absolute where the task is made, the scenario search path travels with absolute directories, a
cluster address is checked before Ray is asked to join it, and every worker runs one thread.

No Ray here: tests/test_execution_ray.py and tests/test_ray_cluster.py run these on Ray."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import socket
from pathlib import Path

import pytest

from agents.tuned_params import config_fingerprint, write_tuned
from batchenv import scenarios
from batchenv.config import ConfigError
from batchenv.scenarios import load_scenario
from execution import cluster
from execution.backends import WORKER_THREAD_VARIABLES, LocalBackend
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task
from execution.hindsight_task import BoundTask, run_bound_task
from execution.paths import TaskFiles
from execution.run import run_tasks

REPO = Path(__file__).resolve().parents[1]

TRACE_SCENARIO = """\
extends: default
name: own_trace
arrivals:
  process: trace
  rate_per_s: 150.0
  trace_path: trace.csv
  random_start: true
"""


def _own_files(root: Path) -> None:
    """``root/own/own_trace.yaml`` (its trace file beside it, named relative to it) and
    ``root/tuned/own_trace.yaml``, tuned parameters of timeout for it."""
    (root / "own").mkdir()
    (root / "own" / "own_trace.yaml").write_text(TRACE_SCENARIO)
    shutil.copy(REPO / "batchenv" / "data" / "azure_conv_excerpt.csv", root / "own" / "trace.csv")
    config = load_scenario(root / "own" / "own_trace.yaml")
    (root / "tuned").mkdir()
    write_tuned(
        root / "tuned" / "own_trace.yaml",
        {
            "scenario": "own_trace",
            "config_fingerprint": config_fingerprint(config),
            "command": "a test",
            "training_seeds": [1000],
            "agents": {"timeout": {"params": {"preferred_batch_size": 4, "max_queue_delay_ms": 5.0}}},
        },
    )


def _same(a: EpisodeResult, b: EpisodeResult) -> None:
    assert (a.status, a.reason, a.metrics, a.params, a.params_source, a.describe) == (
        b.status,
        b.reason,
        b.metrics,
        b.params,
        b.params_source,
        b.describe,
    )


def test_a_task_reads_the_files_the_driver_named_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    """A relative scenario file (with a trace named relative to it) and a relative tuned_dir,
    made into a task in the user's folder, are read as the same files by a worker that runs in
    another folder (a Ray worker runs where `ray start` ran); the task's fields keep the paths as
    typed. The tuned file is used, not silently the defaults."""
    _own_files(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    task = EpisodeTask("timeout", "own/own_trace.yaml", 0, horizon_s=2.0, tuned_dir="tuned")
    bound = BoundTask("own/own_trace.yaml", 0, horizon_s=2.0)
    assert task.files == TaskFiles(str(tmp_path / "own/own_trace.yaml"), None, str(tmp_path / "tuned"))
    assert (task.scenario, task.tuned_dir) == ("own/own_trace.yaml", "tuned")
    assert bound.scenario_file == str(tmp_path / "own/own_trace.yaml")
    here = run_episode_task(task)
    assert here.params_source == "tuned (own_trace.yaml)"
    here_bound = run_bound_task(bound)
    shipped, shipped_bound = pickle.loads(pickle.dumps((task, bound)))  # as a worker gets them
    monkeypatch.chdir(elsewhere)
    _same(run_episode_task(shipped), here)
    there_bound = run_bound_task(shipped_bound)
    assert dataclasses.replace(there_bound, compute_s=0.0) == dataclasses.replace(here_bound, compute_s=0.0)


def test_a_checkpoint_path_is_read_from_the_driver_folder_and_reported_as_typed(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(REPO)
    tasks = [
        EpisodeTask("checkpoints/ppo_default.zip", scenario, 0, horizon_s=1.0)
        for scenario in ("default", "multi_gpu")
    ]
    assert tasks[0].files.checkpoint == str(REPO / "checkpoints/ppo_default.zip")
    here = [run_episode_task(task) for task in tasks]
    monkeypatch.chdir(tmp_path)
    there = [run_episode_task(pickle.loads(pickle.dumps(task))) for task in tasks]
    for a, b in zip(here, there, strict=True):
        _same(a, b)
    assert there[0].status == "ok" and there[0].params_source == "checkpoint ppo_default.zip"
    # why it does not apply is part of the results: the path as the user typed it, from any folder
    assert there[1].status == "not_applicable"
    assert "checkpoint checkpoints/ppo_default.zip:" in there[1].reason and str(REPO) not in there[1].reason


def test_an_explicit_tuned_dir_that_is_not_there_is_an_error(tmp_path: Path, monkeypatch) -> None:
    """It used to fall back to the default parameters silently (a benchmark then reported the
    defaults as tuned); agents without tuned parameters do not look at it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"tuned_dir: no such folder: {tmp_path / 'nowhere'}"):
        run_episode_task(EpisodeTask("timeout", "default", 0, horizon_s=1.0, tuned_dir="nowhere"))
    assert (
        run_episode_task(EpisodeTask("greedy", "default", 0, horizon_s=1.0, tuned_dir="nowhere")).status
        == "ok"
    )
    untuned = EpisodeTask("timeout", "default", 0, horizon_s=1.0, tuned=False, tuned_dir="nowhere")
    assert run_episode_task(untuned).status == "ok"


def test_scenario_names_and_configs_are_left_as_they_are(tmp_path: Path, monkeypatch) -> None:
    """Packaged names are on every node; a name of $BATCHENV_SCENARIO_PATH travels with the
    search path (Ray's workers get it from the session: execution.ray_backend)."""
    monkeypatch.chdir(tmp_path)
    assert EpisodeTask("greedy", "default", 0).files == TaskFiles()
    assert EpisodeTask("greedy", load_scenario("default"), 0).files == TaskFiles()
    assert BoundTask(load_scenario("default"), 0).scenario_file is None
    assert EpisodeTask("greedy", "missing.yaml", 0).files.scenario == str(tmp_path / "missing.yaml")


def test_the_scenario_search_path_for_workers_is_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(scenarios.SCENARIO_PATH_ENV, os.pathsep.join(["mine", "", "/abs/theirs"]))
    assert scenarios.scenario_path_for_workers() == os.pathsep.join([str(tmp_path / "mine"), "/abs/theirs"])
    monkeypatch.setenv(scenarios.SCENARIO_PATH_ENV, "")
    assert scenarios.scenario_path_for_workers() is None


def worker_threads() -> dict[str, object]:
    """Run in a worker: its thread-count variables and the threads of numpy's BLAS."""
    import numpy  # noqa: F401  (loads OpenBLAS, if not loaded yet)
    from threadpoolctl import threadpool_info

    return {
        "env": {name: os.environ.get(name) for name in WORKER_THREAD_VARIABLES},
        "threads": sorted({pool["num_threads"] for pool in threadpool_info()}),
        "nice": os.nice(0),
    }


def test_local_workers_run_one_thread_each_as_ray_workers_do(monkeypatch) -> None:
    for name in WORKER_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with LocalBackend(2) as backend:
        seen = [o.unwrap() for o in run_tasks(backend, worker_threads, [()] * 2)]
    for worker in seen:
        assert worker["env"] == dict.fromkeys(WORKER_THREAD_VARIABLES, "1")
        assert worker["threads"] == [1]
        assert worker["nice"] == os.nice(0)


def test_cluster_addresses_are_checked_without_ray() -> None:
    assert cluster.head_endpoint("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert cluster.head_endpoint("ray://head.example:10001") == ("head.example", 10001)
    assert cluster.head_endpoint("[::1]:6379") == ("::1", 6379)
    for bad in ("auto", "head", "head:", ":6379", "head:99999", "head:port", "a b:1"):
        assert cluster.head_endpoint(bad) is None, bad
    assert cluster.address_error("auto") is None and cluster.address_error(" 10.0.0.5:6379 ") is None
    assert "auto or HOST:PORT" in (cluster.address_error("head") or "")


def test_an_address_that_does_not_answer_is_refused_in_seconds(monkeypatch) -> None:
    """ray.init retries such an address for about 14 minutes before it gives up."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert cluster.unreachable_reason(f"127.0.0.1:{port}") is None
    reason = cluster.unreachable_reason(f"127.0.0.1:{port}")  # closed now
    assert reason is not None and reason.startswith(f"cannot reach a Ray cluster at 127.0.0.1:{port}")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert "(RAY_ADDRESS)" in (cluster.unreachable_reason("auto") or "")
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster.unreachable_reason("auto") is None  # Ray looks for this machine's cluster itself

    def black_hole(*args: object, **kwargs: object) -> None:
        raise TimeoutError

    monkeypatch.setattr(cluster.socket, "create_connection", black_hole)
    assert "no answer within 3 s" in (cluster.unreachable_reason("10.0.0.5:6379") or "")


def test_a_refused_token_is_recognised_through_the_exception_chain() -> None:
    try:
        try:
            raise RuntimeError(
                "Failed to connect to GCS. Last connection error: ... RPC error: InvalidAuthToken"
            )
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from inner
    except ConnectionError as exc:
        assert cluster.is_auth_failure(exc)
    assert not cluster.is_auth_failure(ConnectionError("Could not find any running Ray instance."))
