"""Open-loop load generator: replay a scenario's arrivals against a batching server on loopback
(``python -m serving.loadgen --help``).

For a seed, the arrival times are the simulator's for that seed (the same arrival process and
generator calls as :meth:`batchenv.sim.Simulator.reset`), up to the horizon; each request is
sent at its arrival time whether or not earlier ones were answered (open loop). The run is
bounded in requests (``max_requests``) and in time (horizon + ``drain_timeout_s``); answers still
missing then are counted as unanswered. Each seed is one episode of the server
(``POST /v1/episode``: its clock starts when the replay's does, both on the machine's monotonic
clock).

Results: per seed, the simulator's metrics (:class:`batchenv.metrics.EpisodeMetrics`, from the
server's own times: see :mod:`serving.episode`) plus the client's view (end-to-end latency
including HTTP, how late requests were sent); written in ``evaluate.py``'s layout (results.json,
summary.csv, per_seed.csv, report.md, plots) so the same tables and plots apply.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from batchenv.config import ConfigError, SystemConfig
from batchenv.metrics import compute_metrics, request_table
from batchenv.scenarios import load_scenario
from batchenv.seeds import parse_seeds
from serving.cli import UsageError, check_range, check_writable, run_cli
from serving.connections import raise_open_files_limit
from serving.episode import MeasuredEpisode
from serving.results import write_run
from serving.workload import (
    DEFAULT_DRAIN_TIMEOUT_S,
    DEFAULT_MAX_REQUESTS,
    episode_arrivals_s,
    request_texts,
)

__all__ = [
    "MAX_HORIZON_S",
    "ReplayResult",
    "check_loopback_url",
    "episode_result",
    "replay",
    "replay_episode",
    "run_episode",
]

MAX_HORIZON_S = 3600.0
"""Longest replay (s)."""


def check_loopback_url(url: str) -> str:
    """``url`` without a trailing slash if it is ``http://`` on a loopback host (127.0.0.0/8,
    ::1, localhost); :class:`serving.cli.UsageError` naming ``--url`` otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"--url: not a URL ({exc}), got {url!r}") from None
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if parts.scheme != "http" or not loopback:
        raise UsageError(
            f"--url: must be http:// on a loopback address (127.0.0.1, ::1, localhost), got {url!r}"
        )
    return url.rstrip("/")


@dataclass
class ReplayResult:
    """What one replay sent and got back. Times in s: ``*_client_s`` on the replay's clock
    (0 = the episode's origin), server times in the answers."""

    scheduled_s: np.ndarray
    sent_client_s: np.ndarray
    received_client_s: np.ndarray
    status: np.ndarray  # HTTP status per request; 0 = no answer (transport error or time-out)
    answers: list[dict[str, Any]] = field(default_factory=list)  # the 200 bodies
    drop_times_s: list[float] = field(default_factory=list)  # server arrival times of the 429s
    errors: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        return int(np.sum(self.status == status))


async def replay(
    session: aiohttp.ClientSession,
    url: str,
    arrivals_s: np.ndarray,
    texts: Sequence[str],
    origin_monotonic_s: float,
    *,
    deadline_s: float,
) -> ReplayResult:
    """Send request ``i`` at ``origin + arrivals_s[i]`` (monotonic clock) and record its answer;
    requests not answered by ``origin + deadline_s`` are cancelled (status 0)."""
    n = len(arrivals_s)
    sent = np.full(n, math.nan)
    received = np.full(n, math.nan)
    status = np.zeros(n, dtype=np.int32)
    bodies: list[Any] = [None] * n
    errors: list[str] = []
    clock = time.monotonic

    async def send(i: int) -> None:
        sent[i] = clock() - origin_monotonic_s
        try:
            async with session.post(f"{url}/v1/infer", json={"text": texts[i], "id": i}) as response:
                bodies[i] = await response.json()
                status[i] = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if len(errors) < 20:
                errors.append(f"request {i}: {type(exc).__name__}: {exc}")
        received[i] = clock() - origin_monotonic_s

    tasks = []
    for i, t in enumerate(arrivals_s):
        delay = origin_monotonic_s + t - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    remaining = origin_monotonic_s + deadline_s - clock()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(remaining, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            errors.append(f"{len(pending)} requests unanswered by the deadline ({deadline_s:g} s)")
    result = ReplayResult(np.asarray(arrivals_s, dtype=float), sent, received, status, errors=errors)
    for i in range(n):
        if status[i] == 200:
            result.answers.append(bodies[i])
        elif status[i] == 429:
            result.drop_times_s.append(float(bodies[i]["arrival_s"]))
    return result


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def _start_episode(
    session: aiohttp.ClientSession,
    url: str,
    start_in_s: float,
    idle_timeout_s: float,
    poll_s: float = 0.25,
) -> dict[str, Any]:
    """Start a server episode; while the server is still busy with the previous one (HTTP 409:
    requests left over from an episode cut at its deadline), retry every ``poll_s`` seconds for
    up to ``idle_timeout_s`` seconds.

    :raises RuntimeError: the server refused, or was still busy after ``idle_timeout_s``.
    """
    deadline = time.monotonic() + idle_timeout_s
    while True:
        async with session.post(f"{url}/v1/episode", json={"start_in_s": start_in_s}) as response:
            body = await response.json()
            status = response.status
        if status == 200:
            return body
        if status != 409 or time.monotonic() >= deadline:
            waited = f" (still busy after {idle_timeout_s:g} s)" if status == 409 else ""
            raise RuntimeError(f"the server refused a new episode{waited}: {body.get('error', status)}")
        await asyncio.sleep(poll_s)


def _arrivals(config: SystemConfig, seed: int, horizon_s: float, max_requests: int) -> np.ndarray:
    """Episode ``seed``'s arrivals (s), drawn no further than ``max_requests``.

    :raises ValueError: naming ``--max-requests`` when the episode holds more.
    """
    try:
        return episode_arrivals_s(config, seed, horizon_s, max_count=max_requests)
    except ValueError as exc:
        raise ValueError(f"--max-requests: {exc}; shorten --horizon-s or raise --max-requests") from None


async def replay_episode(
    url: str,
    config: SystemConfig,
    seed: int,
    horizon_s: float,
    *,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    max_connections: int = 4096,
    start_in_s: float = 0.2,
) -> dict[str, Any]:
    """Replay episode ``seed`` of ``config`` (arrivals in [0, horizon_s)) on the server at ``url``
    as one server episode; returns what the replay saw as plain JSON data (:func:`episode_result`
    turns it into metrics): ``seed``, ``episode``, ``answers`` (the 200 bodies: ``seq``,
    ``arrival_s``, ``batch``, ...), ``drop_times_s`` (the server's arrival times of the 429s),
    ``client`` (what was sent and how late, HTTP overhead, statuses) and ``server_stats``. A
    server still busy with the previous episode (answers cut at its deadline) is waited for, up to
    ``drain_timeout_s`` seconds, before the episode starts.

    :raises ValueError: more than ``max_requests`` arrivals.
    """
    arrivals = _arrivals(config, seed, horizon_s, max_requests)
    texts = request_texts(seed, len(arrivals))
    connector = aiohttp.TCPConnector(limit=max_connections)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = await _start_episode(session, url, start_in_s, idle_timeout_s=drain_timeout_s)
        result = await replay(
            session,
            url,
            arrivals,
            texts,
            started["origin_monotonic_s"],
            deadline_s=horizon_s + drain_timeout_s,
        )
        stats = await _get_json(session, f"{url}/v1/stats")
    answered = result.status == 200
    lag_ms = 1000.0 * (result.sent_client_s - result.scheduled_s)
    e2e_ms = 1000.0 * (result.received_client_s - result.sent_client_s)[answered]
    # what HTTP adds: the client's end-to-end time minus the server's latency, request by request
    http_ms = e2e_ms - np.array([a["timings_ms"]["latency"] for a in result.answers])  # both in request order
    client = {
        "n_sent": len(arrivals),
        "n_ok": int(answered.sum()),
        "n_429": result.count(429),
        "n_503": result.count(503),
        "n_other_status": int(np.sum((result.status != 200) & (result.status != 429) & (result.status != 0))),
        "n_unanswered": result.count(0),
        "send_lag_ms_mean": float(np.nanmean(lag_ms)) if len(lag_ms) else math.nan,
        "send_lag_ms_p99": float(np.nanpercentile(lag_ms, 99)) if len(lag_ms) else math.nan,
        "send_lag_ms_max": float(np.nanmax(lag_ms)) if len(lag_ms) else math.nan,
        "e2e_latency_ms_mean": float(e2e_ms.mean()) if len(e2e_ms) else math.nan,
        "e2e_latency_ms_p99": float(np.percentile(e2e_ms, 99)) if len(e2e_ms) else math.nan,
        "http_overhead_ms_mean": float(http_ms.mean()) if len(http_ms) else math.nan,
        "http_overhead_ms_p99": float(np.percentile(http_ms, 99)) if len(http_ms) else math.nan,
        "errors": result.errors,
    }
    return {
        "seed": seed,
        "episode": started["episode"],
        "answers": result.answers,
        "drop_times_s": result.drop_times_s,
        "client": client,
        "server_stats": stats,
    }


def episode_result(config: SystemConfig, horizon_s: float, raw: dict[str, Any]) -> dict[str, Any]:
    """A replay's metrics (the simulator's, from the server's own times: :mod:`serving.episode`)
    from :func:`replay_episode`'s data; adds ``metrics``, ``latency_ms``, ``recorded_arrivals_s``
    (the server's arrival times of every request it answered or refused with 429, sorted: the
    arrivals the server actually saw) and ``client["n_after_horizon"]``."""
    episode = MeasuredEpisode(config, horizon_s, raw["answers"], raw["drop_times_s"])
    recorded = np.sort(
        np.asarray([a["arrival_s"] for a in raw["answers"]] + list(raw["drop_times_s"]), dtype=float)
    )
    return {
        **raw,
        "metrics": compute_metrics(episode),
        "latency_ms": request_table(episode).latency_s * 1000.0,
        "recorded_arrivals_s": recorded,
        "client": {**raw["client"], "n_after_horizon": episode.n_after_horizon},
    }


async def run_episode(
    url: str,
    config: SystemConfig,
    seed: int,
    horizon_s: float,
    *,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    max_connections: int = 4096,
    start_in_s: float = 0.2,
) -> dict[str, Any]:
    """Replay episode ``seed`` (:func:`replay_episode`, in this process) and compute its metrics
    (:func:`episode_result`). :func:`serving.replay_process.run_episode_in_process` does the same
    with the load generator in a process of its own.

    :raises ValueError: more than ``max_requests`` arrivals.
    """
    raw = await replay_episode(
        url,
        config,
        seed,
        horizon_s,
        max_requests=max_requests,
        drain_timeout_s=drain_timeout_s,
        max_connections=max_connections,
        start_in_s=start_in_s,
    )
    return episode_result(config, horizon_s, raw)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.loadgen",
        description=(
            "Replay a scenario's arrivals (the simulator's, seed by seed) open-loop against a "
            "batching server on loopback, and write the results in evaluate.py's layout."
        ),
        epilog=(
            "example:\n"
            "  python -m serving.server --scenario default --agent proposed --port 8000 &\n"
            "  python -m serving.loadgen --url http://127.0.0.1:8000 --seeds 0-2 --horizon-s 20"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (loopback only)")
    parser.add_argument(
        "--scenario",
        default=None,
        help="scenario name or YAML path whose arrivals are replayed (default: the server's own); "
        "its system (timing, models, queue, rewards) must be the server's",
    )
    parser.add_argument(
        "--rate-per-s", type=float, default=None, help="set the scenario's mean rate (requests/s)"
    )
    parser.add_argument("--seeds", default="0", help="episodes to replay, e.g. 0-2 or 0,5 (default: 0)")
    parser.add_argument(
        "--horizon-s", type=float, default=20.0, help="seconds of arrivals per episode (default: 20)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        help=f"refuse an episode with more arrivals (default: {DEFAULT_MAX_REQUESTS})",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help=f"after the last arrival, wait this long for answers (default: {DEFAULT_DRAIN_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="parent of the run folder (default: results)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Replay and write the results; returns the exit code (2 for bad input, 1 if requests went
    unanswered)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_cli(build_parser(), lambda args: _run(args, argv), argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    url = check_loopback_url(args.url)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UsageError(f"--seeds: {exc}") from None
    check_range("--horizon-s", args.horizon_s, 1e-3, MAX_HORIZON_S, "s")
    check_range("--max-requests", args.max_requests, 1, 10_000_000)
    check_range("--drain-timeout-s", args.drain_timeout_s, 0, 3600, "s")
    check_writable("--out", args.out / "eval_run")  # a folder is made in it after the replay
    if args.rate_per_s is not None:
        check_range("--rate-per-s", args.rate_per_s, 1e-6, 1e6, "requests/s")
    raise_open_files_limit()
    try:
        info, server_config = asyncio.run(_server_info(url))
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise UsageError(f"--url: no batching server answers at {url} ({exc})") from None
    try:
        config = server_config if args.scenario is None else load_scenario(args.scenario)
        if args.rate_per_s is not None:
            config = config.at_rate(args.rate_per_s)
        check_same_system(config, server_config)
    except ConfigError as exc:
        raise UsageError(f"--scenario: {exc}") from None
    try:  # every episode within --max-requests before any is replayed
        for seed in seeds:
            _arrivals(config, seed, args.horizon_s, args.max_requests)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    episodes = []
    for seed in seeds:
        try:
            episode = asyncio.run(
                run_episode(
                    url,
                    config,
                    seed,
                    args.horizon_s,
                    max_requests=args.max_requests,
                    drain_timeout_s=args.drain_timeout_s,
                )
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        m, c = episode["metrics"], episode["client"]
        print(
            f"seed {seed}: {c['n_sent']} sent, {c['n_ok']} answered, {c['n_429']} dropped (429), "
            f"{c['n_unanswered']} unanswered; mean {m.latency_mean_ms:.1f} ms, "
            f"p99 {m.latency_p99_ms:.1f} ms, "
            f"{m.throughput_per_s:.1f} req/s; send lag p99 {c['send_lag_ms_p99']:.2f} ms"
        )
        episodes.append(episode)
    command = "python -m serving.loadgen " + shlex.join(argv)
    run_dir = write_run(args.out, command, info, config, args.horizon_s, episodes, plots=not args.no_plots)
    print(f"results: {run_dir}/")
    return 1 if any(e["client"]["n_unanswered"] for e in episodes) else 0


async def _server_info(url: str) -> tuple[dict[str, Any], SystemConfig]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:
        info = await _get_json(session, f"{url}/v1/health")
        config = SystemConfig.from_dict(await _get_json(session, f"{url}/v1/config"))
    return info, config


def check_same_system(config: SystemConfig, server_config: SystemConfig) -> None:
    """ConfigError naming the first field where ``config`` differs from the server's, besides
    the arrivals, the horizon and the name (which a replay may change)."""
    mine, theirs = config.to_dict(), server_config.to_dict()
    for key in mine:
        if key in ("arrivals", "horizon_s", "name"):
            continue
        if mine[key] != theirs.get(key):
            raise ConfigError(
                key, f"differs from the server's scenario {server_config.name!r}; replay its system"
            )


if __name__ == "__main__":
    sys.exit(main())
