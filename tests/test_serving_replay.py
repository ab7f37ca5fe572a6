"""The load generator in a process of its own (serving.replay_process): what it hands back is
JSON, checked field by field before use; a child that fails is one clear error."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import time
from typing import Any

import pytest

from batchenv.scenarios import load_scenario
from serving import replay_process
from serving.replay_process import (
    SERVER_COUNTS,
    ReplayError,
    _strict_constant,
    run_episode_in_process,
    validate_replay,
)


def _payload() -> dict[str, Any]:
    batch = {
        "id": 0,
        "size": 2,
        "model_index": 2,
        "worker": 0,
        "forced": False,
        "dispatch_s": 0.010,
        "completion_s": 0.020,
    }
    client = {
        "n_sent": 3,
        "n_ok": 2,
        "n_429": 1,
        "n_503": 0,
        "n_other_status": 0,
        "n_unanswered": 0,
        "send_lag_ms_mean": 0.5,
        "send_lag_ms_p99": 1.0,
        "send_lag_ms_max": 1.2,
        "e2e_latency_ms_mean": 12.0,
        "e2e_latency_ms_p99": 13.0,
        "http_overhead_ms_mean": None,  # NaN in the child, null in JSON
        "http_overhead_ms_p99": 1.0,
        "errors": [],
    }
    stats = dict.fromkeys(SERVER_COUNTS, 0)
    return {
        "seed": 3,
        "episode": 1,
        "answers": [
            {"seq": 0, "arrival_s": 0.001, "batch": dict(batch)},
            {"seq": 1, "arrival_s": 0.002, "batch": dict(batch)},
        ],
        "drop_times_s": [0.003],
        "client": client,
        "server_stats": {**stats, "dispatched_per_model": {"LLM-1": 0}},
    }


def test_a_valid_result_is_kept_with_only_the_fields_read() -> None:
    raw = validate_replay(_payload(), seed=3, n_models=3, n_workers=1)
    assert raw["answers"][1] == {"seq": 1, "arrival_s": 0.002, "batch": _payload()["answers"][1]["batch"]}
    assert raw["client"]["http_overhead_ms_mean"] != raw["client"]["http_overhead_ms_mean"]  # NaN
    assert "dispatched_per_model" not in raw["server_stats"]


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("seed",), 4, "seed must be the replayed seed 3"),
        (("answers", 0, "batch", "model_index"), 3, "answers[0].batch.model_index must be < 3"),
        (("answers", 1, "batch", "worker"), 1, "answers[1].batch.worker must be < 1"),
        (("answers", 0, "arrival_s"), "0.1", "answers[0].arrival_s must be a finite number"),
        (("answers", 0, "batch", "forced"), 0, "answers[0].batch.forced must be true or false"),
        (("answers", 0, "batch", "size"), True, "answers[0].batch.size must be a count"),
        (("answers", 0, "batch", "completion_s"), 0.005, "is before its dispatch_s"),
        (("client", "n_ok"), 5, "counts do not match"),
        (("client", "send_lag_ms_p99"), "late", "client.send_lag_ms_p99 must be a finite number"),
        (("server_stats", "n_scheduler_errors"), -1, "server_stats.n_scheduler_errors must be a count"),
        (("drop_times_s",), {"0": 1}, "drop_times_s must be a list"),
        (("answers", 0, "batch", "size"), 65, "answers[0].batch.size must be in [1, 64], got 65"),
    ],
)
def test_a_malformed_result_is_refused_naming_the_field(
    path: tuple[Any, ...], value: Any, words: str
) -> None:
    data = copy.deepcopy(_payload())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ReplayError) as info:
        validate_replay(data, seed=3, n_models=3, n_workers=1, max_batch_size=64)
    assert words in str(info.value)


def test_nan_and_infinity_are_not_json() -> None:
    with pytest.raises(ValueError, match="NaN is not JSON"):
        json.loads('{"x": NaN}', parse_constant=_strict_constant)


def test_a_failing_child_is_one_error_naming_the_seed() -> None:
    pytest.importorskip("aiohttp", reason="the server's [serve] extra is not installed")
    config = load_scenario("default").at_rate(50.0)
    # port 9 (discard): nothing serves there, the child's episode start fails
    with pytest.raises(
        ReplayError, match=r"the load generator \(seed 0\) exited with 1: .*serving.replay_process"
    ):
        run_episode_in_process("http://127.0.0.1:9", config, 0, 0.2, drain_timeout_s=1.0)


def test_a_child_that_does_not_answer_in_time_is_stopped_and_one_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load generator that hangs (its server accepts the connection and never answers) is killed
    with its process group when the time-out expires, and the benchmark gets one line naming it."""
    pytest.importorskip("aiohttp", reason="the server's [serve] extra is not installed")
    children: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            children.append(self)

    monkeypatch.setattr(replay_process.subprocess, "Popen", Recorded)
    monkeypatch.setattr(replay_process, "MARGIN_S", 1.0)  # time-out: 0.2 + 0.3 + 1.0 s
    config = load_scenario("default").at_rate(50.0)
    with socket.socket() as silent:  # the kernel accepts connections into the backlog; no reply
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ReplayError) as info:
            run_episode_in_process(url, config, 0, 0.2, drain_timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert str(info.value) == "the load generator (seed 0) did not finish within 1.5 s; it was stopped"
    assert 1.5 <= elapsed < 5.0
    (child,) = children
    assert child.returncode is not None  # killed and reaped
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)  # nothing is left in its process group
