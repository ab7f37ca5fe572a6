"""The real server (python -m serving.server) on loopback with the smallest stand-in model: every
request answered exactly once, drops counted under overload, a clean shutdown on SIGINT and
SIGTERM with in-flight requests answered or refused. Every wait has a time-out."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip(
    "aiohttp", reason="the server's [serve] extra is not installed (pip install -e '.[serve]')"
)

from batchenv.scenarios import load_scenario  # noqa: E402
from serving.loadgen import run_episode  # noqa: E402
from serving.process import ServerProcess, ServerStartError  # noqa: E402
from serving.server import main as server_main  # noqa: E402

SMALLEST = "2x256,2x256,2x256"  # LLM-3's stand-in for every model: the fastest to start and run


def start_server(log_dir: Path, scenario: str, agent: str, *extra: str) -> ServerProcess:
    args = ["--scenario", scenario, "--agent", agent, "--models", SMALLEST, "--warmup-reps", "0", *extra]
    try:
        return ServerProcess(args, start_timeout_s=60.0, log_dir=log_dir)
    except ServerStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def greedy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not change its scenario: greedy on LLM-3 at 150/s."""
    log_dir = tmp_path_factory.mktemp("greedy")
    server = start_server(log_dir, "default", "greedy(model=LLM-3)", "--rate-per-s", "150")
    yield server
    server.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def start(scenario: str, agent: str, *extra: str) -> ServerProcess:
        servers.append(start_server(tmp_path, scenario, agent, *extra))
        return servers[-1]

    yield start
    for server in servers:
        server.kill()


async def _get(url: str) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url) as r,
    ):
        return await r.json()


async def _burst(url: str, count: int, *, then: Any = None) -> list[tuple[int, Any]]:
    """Send ``count`` requests at once; once the server has received them all, call ``then()``;
    return each (status, body), status 0 for a transport error."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(i: int) -> tuple[int, Any]:
            try:
                async with session.post(f"{url}/v1/infer", json={"text": f"burst request {i}", "id": i}) as r:
                    return r.status, await r.json()
            except aiohttp.ClientError as exc:
                return 0, str(exc)

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        if then is not None:
            deadline = time.monotonic() + 20.0
            while (await _get(f"{url}/v1/stats"))["n_arrived"] < count and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            then()
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


def test_every_request_is_answered_exactly_once(greedy_server: ServerProcess) -> None:
    server = greedy_server
    config = load_scenario("default").at_rate(150.0)
    episode = asyncio.run(
        asyncio.wait_for(run_episode(server.url, config, seed=0, horizon_s=2.0), timeout=60)
    )
    client = episode["client"]
    assert client["n_sent"] > 250
    assert client["n_ok"] == client["n_sent"] and client["n_unanswered"] == 0
    answers = episode["answers"]
    assert sorted(a["id"] for a in answers) == list(range(client["n_sent"]))  # each its own answer
    assert sorted(a["seq"] for a in answers) == list(range(client["n_sent"]))  # each admitted once
    stats = episode["server_stats"]
    assert stats["n_answered"] == stats["n_admitted"] == client["n_sent"] and stats["n_dropped"] == 0
    assert all(a["model"] == "LLM-3" for a in answers)
    metrics = episode["metrics"]
    assert metrics.n_served + metrics.n_waiting + client["n_after_horizon"] == client["n_sent"]
    assert 0 < metrics.latency_mean_ms < 60_000  # bounded by the run (a loaded machine is slow)
    # a second episode on the same server starts from zero
    again = asyncio.run(asyncio.wait_for(run_episode(server.url, config, seed=1, horizon_s=0.5), timeout=60))
    assert again["episode"] == episode["episode"] + 1
    assert again["server_stats"]["n_arrived"] == again["client"]["n_sent"]


def test_overload_answers_429_and_counts_every_drop(server_factory: Any, tmp_path: Path) -> None:
    scenario = tmp_path / "small_queue.yaml"
    scenario.write_text("extends: default\nname: small_queue\nqueue_capacity: 8\n")
    server = server_factory(str(scenario), "greedy(model=LLM-3)")
    replies = asyncio.run(_burst(server.url, 300))
    statuses = [status for status, _ in replies]
    assert set(statuses) <= {200, 429}
    ok = [body for status, body in replies if status == 200]
    assert statuses.count(429) > 0
    assert sorted(body["id"] for body in ok) == sorted({body["id"] for body in ok})
    stats = asyncio.run(_get(f"{server.url}/v1/stats"))
    assert stats["n_dropped"] == statuses.count(429)
    assert stats["n_answered"] == stats["n_admitted"] == len(ok)
    assert stats["n_arrived"] == 300


@pytest.mark.parametrize(
    ("sig", "drain"),
    [(signal.SIGTERM, "0"), (signal.SIGINT, "10")],
    ids=["sigterm-refuse-waiting", "sigint-drain"],
)
def test_a_signal_shuts_the_server_down_cleanly(
    server_factory: Any, tmp_path: Path, sig: int, drain: str
) -> None:
    """A burst waits in the queue (a batch of 64 runs, 56 requests wait for the next 64 or for
    max_wait_ms = 2 s) when the signal comes: with no drain time the waiting requests are
    refused (503), with drain time they are served; every request gets an answer and the
    server exits 0."""
    scenario = tmp_path / "patient.yaml"
    scenario.write_text("extends: default\nname: patient\nmax_wait_ms: 2000\n")
    server = server_factory(str(scenario), "static(B=64,model=LLM-3)", "--drain-timeout-s", drain)
    replies = asyncio.run(_burst(server.url, 120, then=lambda: server.process.send_signal(sig)))
    assert server.process.wait(timeout=30) == 0
    statuses = [status for status, _ in replies]
    assert set(statuses) <= {200, 503}, server.output()
    if drain == "0":
        assert statuses.count(200) == 64 and statuses.count(503) == 56
        assert "64 answered, 0 dropped, 56 refused" in server.output()
    else:
        assert statuses.count(200) == 120
    ok_ids = [body["id"] for status, body in replies if status == 200]
    assert len(ok_ids) == len(set(ok_ids))
    assert "stopped:" in server.output()


def test_bad_requests_get_400_naming_the_field(greedy_server: ServerProcess) -> None:
    server = greedy_server

    async def post(body: Any) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{server.url}/v1/infer", data=json.dumps(body)) as r,
        ):
            return r.status, await r.json()

    assert asyncio.run(post({"text": 3})) == (400, {"error": "text: must be a string"})
    status, body = asyncio.run(post({"text": "x" * 5000}))
    assert status == 400 and body["error"].startswith("text: must have at most 4096")
    assert asyncio.run(post([1, 2]))[0] == 400
    health = asyncio.run(_get(f"{server.url}/v1/health"))
    assert health["agent"] == "greedy(model=LLM-3)" and health["scenario"] == "default"


def test_bad_command_lines_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for args, flag in [
        (["--agent", "nonsense"], "--agent"),
        (["--scenario", "nowhere"], "--scenario"),
        (["--host", "10.0.0.1"], "--host"),
        (["--models", "2x256"], "--models"),
        (["--port", "70000"], "--port"),
        (["--max-connections", "0"], "--max-connections"),
        (["--max-connections", str(10**9)], "--max-connections"),
    ]:
        assert server_main(args) == 2
        assert flag in capsys.readouterr().err.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# Hostile requests, in process: the engine's batches tokenise like the real models do
# --------------------------------------------------------------------------------------------


def _tokenising_runner(model: int, texts: list[str]) -> Any:
    """A batch runner that tokenises every text (as the real models do) and answers at once."""
    from serving.models import BatchResult, tokenise

    start = time.monotonic()
    answers = [{"label": len(tokenise(t)), "score": 1.0} for t in texts]
    end = time.monotonic()
    return BatchResult(answers, start, 0.0, 0.0, end - start, 0.0, end)


async def _in_process(requests: Any, agent: str = "static(B=2,model=LLM-3)") -> Any:
    """Run ``await requests(client)`` against :func:`make_app` on an in-process engine."""
    from aiohttp.test_utils import TestClient, TestServer

    from agents.registry import make_agent
    from serving.engine import BatchingEngine
    from serving.server import make_app

    config = load_scenario("default")
    engine = BatchingEngine(config, make_agent(agent, config), _tokenising_runner)
    engine.start()
    try:
        async with TestClient(TestServer(make_app(engine, {}))) as client:
            return await asyncio.wait_for(requests(client), timeout=20)
    finally:
        await engine.shutdown(drain_timeout_s=1.0)


async def _status_error(response: Any) -> tuple[int, str]:
    async with response as r:
        return r.status, (await r.json()).get("error", "")


def test_a_lone_surrogate_is_refused_and_its_batch_mate_served() -> None:
    async def requests(client: Any) -> Any:
        bad = client.post("/v1/infer", data='{"text": "a \\ud800 b"}')
        good = client.post("/v1/infer", json={"text": "hello"})
        return await asyncio.gather(_status_error(bad), _status_error(good))

    (bad_status, bad_error), (good_status, _) = asyncio.run(_in_process(requests))
    assert bad_status == 400 and bad_error.startswith("text: must be valid Unicode")
    assert good_status == 200


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_huge_start_in_s_is_400_naming_the_field(digits: int) -> None:
    async def requests(client: Any) -> Any:
        return await _status_error(client.post("/v1/episode", data='{"start_in_s": ' + "9" * digits + "}"))

    status, error = asyncio.run(_in_process(requests))
    assert status == 400 and error.startswith("start_in_s: must be a number of seconds in [0, 10]")


@pytest.mark.parametrize(
    ("data", "headers", "expected"),
    [
        ("[" * 30000 + "]" * 30000, {}, "nested less deeply"),
        ('{"text": "hi"}', {"Content-Encoding": "gzip"}, "Content-Encoding"),
        ('{"text": "hi"}', {"Content-Type": "application/json; charset=foo"}, "charset"),
    ],
    ids=["deep-nesting", "bad-gzip", "unknown-charset"],
)
def test_unreadable_bodies_are_400(data: str, headers: dict[str, str], expected: str) -> None:
    async def requests(client: Any) -> Any:
        bad = await _status_error(client.post("/v1/infer", data=data, headers=headers))
        good = await _status_error(client.post("/v1/infer", json={"text": "still serving"}))
        return bad, good

    (status, error), (good_status, _) = asyncio.run(_in_process(requests))
    assert status == 400 and expected in error
    assert good_status == 200


def test_a_stalled_body_times_out_with_400(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.server

    monkeypatch.setattr(serving.server, "BODY_TIMEOUT_S", 0.2)

    async def requests(client: Any) -> Any:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b'POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"te')
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        return status_line, await _status_error(client.post("/v1/infer", json={"text": "still serving"}))

    status_line, (good_status, _) = asyncio.run(_in_process(requests))
    assert status_line.startswith(b"HTTP/1.1 400") and good_status == 200


def test_sigterm_does_not_wait_for_a_stalled_client(server_factory: Any) -> None:
    """A client that never finishes its body holds the shutdown for the drain time plus
    ANSWER_GRACE_S at most, not aiohttp's 60 s (nor the body's time-out)."""
    import socket
    from urllib.parse import urlsplit

    server = server_factory("default", "greedy(model=LLM-3)", "--drain-timeout-s", "0")
    where = urlsplit(server.url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as stalled:
        stalled.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - start < 5.0, server.output()


# --------------------------------------------------------------------------------------------
# The cap on open connections
# --------------------------------------------------------------------------------------------


async def _exchange(reader: Any, writer: Any, path: str = "/v1/health") -> bytes:
    """Send one keep-alive GET on a raw connection; return the answer's status line."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), timeout=5)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(reader.readexactly(length), timeout=5)
    return bytes(status)


def test_a_connection_beyond_the_cap_gets_503_and_a_freed_slot_serves_again() -> None:
    from agents.registry import make_agent
    from serving.connections import CappedTCPSite
    from serving.engine import BatchingEngine
    from serving.server import make_app

    async def scenario() -> tuple[list[bytes], bytes, bytes, bytes, int]:
        config = load_scenario("default")
        engine = BatchingEngine(config, make_agent("greedy", config), _tokenising_runner)
        engine.start()
        runner = aiohttp.web.AppRunner(make_app(engine, {}), handle_signals=False)
        await runner.setup()
        site = CappedTCPSite(runner, "127.0.0.1", 0, max_connections=2)
        await site.start()
        try:
            held = [await asyncio.open_connection("127.0.0.1", site.port) for _ in range(2)]
            first = [await _exchange(r, w) for r, w in held]  # both counted once answered
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(b'POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{"text": "hi"}')
            refusal = await asyncio.wait_for(reader.read(), timeout=5)  # then the server closes
            writer.close()
            held[0][1].close()
            deadline = time.monotonic() + 5
            while len(runner.server.connections) > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            served = await _exchange(reader, writer)
            writer.close()
            still = await _exchange(*held[1])
            held[1][1].close()
            return first, refusal, served, still, site.refused
        finally:
            await runner.cleanup()
            await engine.shutdown(drain_timeout_s=1.0)

    first, refusal, served, still, refused = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert all(line.startswith(b"HTTP/1.1 200") for line in first)
    head, _, body = refusal.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
    assert json.loads(body) == {"error": "too many open connections; retry later"}
    assert served.startswith(b"HTTP/1.1 200") and still.startswith(b"HTTP/1.1 200")
    assert refused == 1


def test_the_default_cap_fits_the_open_files_limit() -> None:
    import resource

    from serving.connections import DEFAULT_MAX_CONNECTIONS, RESERVED_FILES, connection_cap

    cap = connection_cap(None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 1 <= cap <= DEFAULT_MAX_CONNECTIONS
    assert soft == resource.RLIM_INFINITY or soft >= min(cap + RESERVED_FILES, hard)
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(ValueError, match=r"--max-connections must be in \[1, "):
            connection_cap(hard)


def test_the_load_generator_in_its_own_process_replays_as_in_process(greedy_server: ServerProcess) -> None:
    from serving.replay_process import run_episode_in_process

    config = load_scenario("default").at_rate(150.0)
    run = run_episode_in_process(greedy_server.url, config, seed=2, horizon_s=1.0)
    client = run["client"]
    assert client["n_sent"] > 100 and client["n_ok"] == client["n_sent"] == len(run["answers"])
    assert len(run["recorded_arrivals_s"]) == client["n_ok"] + client["n_429"]
    assert list(run["recorded_arrivals_s"]) == sorted(a["arrival_s"] for a in run["answers"])
    stats = run["server_stats"]
    assert stats["n_scheduler_errors"] == 0 and stats["n_failed"] == 0
    assert stats["n_arrived"] == client["n_sent"]
    metrics = run["metrics"]
    assert metrics.n_served + metrics.n_waiting + client["n_after_horizon"] == client["n_sent"]
    assert client["send_lag_ms_p99"] >= 0.0
