"""The load generator in a process of its own: one replay (:func:`serving.loadgen.replay_episode`)
per child process, its results handed back as JSON on the child's standard output and validated
field by field before use (never unpickled).

Why: a load generator in the process that also drives a benchmark shares that process's
interpreter (its garbage collector, its other work) and sends late when the process stalls; in
a process of its own it has an interpreter of its own (the machine's CPUs are still shared).
How late it sent is measured either way (``client["send_lag_ms_p99"]``).

The child is ``python -m serving.replay_process`` (no command line: it reads one JSON job on its
standard input and writes one JSON result on its standard output). It runs in a process group of
its own, killed with everything in it if the parent is interrupted.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from batchenv.config import SystemConfig
from batchenv.fileio import json_safe
from serving.process import REPO, child_environment, kill_group
from serving.workload import DEFAULT_DRAIN_TIMEOUT_S, DEFAULT_MAX_REQUESTS

__all__ = ["ReplayError", "run_episode_in_process", "validate_replay"]

MARGIN_S = 120.0
"""Time a child may take beyond the replay's own bound (start-up, episode start, result)."""

CLIENT_COUNTS = ("n_sent", "n_ok", "n_429", "n_503", "n_other_status", "n_unanswered")
CLIENT_TIMES = (
    "send_lag_ms_mean",
    "send_lag_ms_p99",
    "send_lag_ms_max",
    "e2e_latency_ms_mean",
    "e2e_latency_ms_p99",
    "http_overhead_ms_mean",
    "http_overhead_ms_p99",
)
SERVER_COUNTS = (
    "n_arrived",
    "n_admitted",
    "n_dropped",
    "n_dispatched",
    "n_answered",
    "n_failed",
    "n_refused",
    "n_batches",
    "n_forced",
    "n_epochs",
    "n_scheduler_errors",
)
"""The counters of the server's ``GET /v1/stats`` a result must carry."""


class ReplayError(RuntimeError):
    """The load generator's process failed, or what it returned is not a valid result."""


def _fail(field: str, why: str) -> ReplayError:
    return ReplayError(f"the load generator's result: {field} {why}")


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(field, f"must be a count (an integer >= 0), got {value!r}")
    return value


def _number(value: Any, field: str, *, missing_ok: bool = False) -> float:
    """A finite number; ``None`` (JSON's NaN) becomes NaN where ``missing_ok``."""
    if value is None and missing_ok:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(field, f"must be a finite number, got {value!r}")
    return float(value)


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def _batch(
    value: Any, field: str, n_models: int, n_workers: int, max_batch_size: int | None
) -> dict[str, Any]:
    batch = _mapping(value, field)
    out = {
        "id": _count(batch.get("id"), f"{field}.id"),
        "size": _count(batch.get("size"), f"{field}.size"),
        "model_index": _count(batch.get("model_index"), f"{field}.model_index"),
        "worker": _count(batch.get("worker"), f"{field}.worker"),
        "dispatch_s": _number(batch.get("dispatch_s"), f"{field}.dispatch_s"),
        "completion_s": _number(batch.get("completion_s"), f"{field}.completion_s"),
    }
    forced = batch.get("forced")
    if not isinstance(forced, bool):
        raise _fail(f"{field}.forced", f"must be true or false, got {forced!r}")
    out["forced"] = forced
    if out["size"] < 1 or (max_batch_size is not None and out["size"] > max_batch_size):
        raise _fail(f"{field}.size", f"must be in [1, {max_batch_size}], got {out['size']}")
    if out["model_index"] >= n_models:
        raise _fail(f"{field}.model_index", f"must be < {n_models}, got {out['model_index']}")
    if out["worker"] >= n_workers:
        raise _fail(f"{field}.worker", f"must be < {n_workers}, got {out['worker']}")
    if out["completion_s"] < out["dispatch_s"]:
        raise _fail(f"{field}.completion_s", "is before its dispatch_s")
    return out


def validate_replay(
    data: Any, *, seed: int, n_models: int, n_workers: int, max_batch_size: int | None = None
) -> dict[str, Any]:
    """``data`` (parsed JSON from the child) checked and rebuilt with only the fields
    :func:`serving.loadgen.episode_result` and the benchmark read.

    :raises ReplayError: naming the first field that is missing or malformed.
    """
    raw = _mapping(data, "the result")
    if raw.get("seed") != seed:
        raise _fail("seed", f"must be the replayed seed {seed}, got {raw.get('seed')!r}")
    answers_in = raw.get("answers")
    if not isinstance(answers_in, list):
        raise _fail("answers", "must be a list")
    answers = []
    for i, entry in enumerate(answers_in):
        answer = _mapping(entry, f"answers[{i}]")
        answers.append(
            {
                "seq": _count(answer.get("seq"), f"answers[{i}].seq"),
                "arrival_s": _number(answer.get("arrival_s"), f"answers[{i}].arrival_s"),
                "batch": _batch(
                    answer.get("batch"), f"answers[{i}].batch", n_models, n_workers, max_batch_size
                ),
            }
        )
    drops = raw.get("drop_times_s")
    if not isinstance(drops, list):
        raise _fail("drop_times_s", "must be a list")
    client_in = _mapping(raw.get("client"), "client")
    client: dict[str, Any] = {k: _count(client_in.get(k), f"client.{k}") for k in CLIENT_COUNTS}
    client.update({k: _number(client_in.get(k), f"client.{k}", missing_ok=True) for k in CLIENT_TIMES})
    errors = client_in.get("errors")
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        raise _fail("client.errors", "must be a list of strings")
    client["errors"] = [e[:500] for e in errors[:50]]
    if client["n_ok"] != len(answers) or client["n_429"] != len(drops):
        raise _fail("client", "counts do not match the answers and drops it lists")
    stats_in = _mapping(raw.get("server_stats"), "server_stats")
    stats: dict[str, Any] = {k: _count(stats_in.get(k), f"server_stats.{k}") for k in SERVER_COUNTS}
    return {
        "seed": seed,
        "episode": _count(raw.get("episode"), "episode"),
        "answers": answers,
        "drop_times_s": [_number(t, f"drop_times_s[{i}]") for i, t in enumerate(drops)],
        "client": client,
        "server_stats": stats,
    }


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def run_episode_in_process(
    url: str,
    config: SystemConfig,
    seed: int,
    horizon_s: float,
    *,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
) -> dict[str, Any]:
    """:func:`serving.loadgen.run_episode` with the load generator in a child process; the same
    result (metrics computed here from the child's validated answers).

    :raises ReplayError: the child failed or returned an invalid result.
    """
    from serving.loadgen import episode_result  # aiohttp: only where a replay runs

    job = {
        "url": url,
        "config": config.to_dict(),
        "seed": seed,
        "horizon_s": horizon_s,
        "max_requests": max_requests,
        "drain_timeout_s": drain_timeout_s,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "serving.replay_process"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(),
        start_new_session=True,  # its own process group: killed as one if we are interrupted
    )
    try:
        out, err = child.communicate(
            json.dumps(json_safe(job)).encode(), timeout=horizon_s + drain_timeout_s + MARGIN_S
        )
    except subprocess.TimeoutExpired:
        kill_group(child)
        child.communicate()  # reap it and close the pipes
        raise ReplayError(
            f"the load generator (seed {seed}) did not finish within "
            f"{horizon_s + drain_timeout_s + MARGIN_S:g} s; it was stopped"
        ) from None
    except BaseException:  # SIGTERM/SIGINT turned into an exception
        kill_group(child)
        raise
    if child.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise ReplayError(
            f"the load generator (seed {seed}) exited with {child.returncode}: " + " | ".join(tail)
        )
    try:
        data = json.loads(out, parse_constant=_strict_constant)
    except ValueError as exc:
        raise ReplayError(f"the load generator's result (seed {seed}) is not JSON: {exc}") from None
    raw = validate_replay(
        data,
        seed=seed,
        n_models=config.n_models,
        n_workers=config.n_workers,
        max_batch_size=config.max_batch_size,
    )
    return episode_result(config, horizon_s, raw)


def main() -> int:
    """The child: one job (JSON) on stdin -> one result (JSON) on stdout; exit 1 on failure."""
    from serving.loadgen import replay_episode

    try:
        job = json.loads(sys.stdin.buffer.read())
        config = SystemConfig.from_dict(job["config"])
        raw = asyncio.run(
            replay_episode(
                str(job["url"]),
                config,
                int(job["seed"]),
                float(job["horizon_s"]),
                max_requests=int(job["max_requests"]),
                drain_timeout_s=float(job["drain_timeout_s"]),
            )
        )
    except Exception as exc:
        print(f"serving.replay_process: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    # only what the parent reads of each answer (validate_replay): a third of the bytes
    raw["answers"] = [{k: a[k] for k in ("seq", "arrival_s", "batch")} for a in raw["answers"]]
    sys.stdout.write(json.dumps(json_safe(raw), allow_nan=False))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
