"""The load generator's episode start: a server still busy with the previous episode (409) is
waited for, up to a bound, instead of failing the whole benchmark."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

aiohttp = pytest.importorskip(
    "aiohttp", reason="the server's [serve] extra is not installed (pip install -e '.[serve]')"
)
from aiohttp import web  # noqa: E402

from serving.loadgen import _start_episode  # noqa: E402


async def _with_stub_server(busy_answers: int, idle_timeout_s: float) -> tuple[dict[str, Any], int]:
    """Run a stub ``POST /v1/episode`` that answers 409 ``busy_answers`` times, then 200."""
    calls = 0

    async def episode(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls <= busy_answers:
            return web.json_response({"error": "a new episode needs an idle server"}, status=409)
        return web.json_response({"episode": 7, "origin_monotonic_s": 1.5})

    app = web.Application()
    app.add_routes([web.post("/v1/episode", episode)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            body = await _start_episode(
                session, f"http://127.0.0.1:{port}", 0.1, idle_timeout_s=idle_timeout_s, poll_s=0.01
            )
    finally:
        await runner.cleanup()
    return body, calls


def test_a_busy_server_is_waited_for() -> None:
    body, calls = asyncio.run(_with_stub_server(busy_answers=3, idle_timeout_s=10.0))
    assert body == {"episode": 7, "origin_monotonic_s": 1.5}
    assert calls == 4


def test_a_server_busy_past_the_bound_is_an_error() -> None:
    with pytest.raises(RuntimeError, match=r"still busy after 0\.05 s"):
        asyncio.run(_with_stub_server(busy_answers=10**6, idle_timeout_s=0.05))


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--url", "http://[::1"], "--url: not a URL"),
        (["--url", "http://127.0.0.1:99999"], "--url: not a URL"),
        (["--out", "{tmp}/file"], "is not a folder"),
    ],
)
def test_bad_flags_exit_2_before_replaying(
    flags: list[str], words: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.loadgen import main as loadgen_main

    (tmp_path / "file").write_text("x")
    # port 9 (discard) serves nothing: reaching the server would be a different error
    argv = ["--url", "http://127.0.0.1:9", *[flag.format(tmp=tmp_path) for flag in flags]]
    assert loadgen_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert words in err, err


def test_arrivals_stop_at_the_request_cap_and_every_seed_is_checked_before_replaying(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    import numpy as np

    from batchenv.scenarios import load_scenario
    from serving import loadgen
    from serving.workload import episode_arrivals_s

    config = load_scenario("default")
    under = episode_arrivals_s(config, 2, 1.0)
    np.testing.assert_array_equal(episode_arrivals_s(config, 2, 1.0, max_count=len(under)), under)
    # an hour at 160,000/s would be 576 million arrivals: drawing stops at the cap instead
    start = time.perf_counter()
    with pytest.raises(ValueError, match="episode 0 has more than 10 arrivals in 3600 s"):
        episode_arrivals_s(config.at_rate(1.6e5), 0, 3600.0, max_count=10)
    assert time.perf_counter() - start < 5.0

    # seeds 0-2 at 100/s for 0.5 s: about 50 arrivals each; with a cap of 50 some seed is over it,
    # and the run stops before replaying any seed
    counts = [len(episode_arrivals_s(config, seed, 0.5)) for seed in range(3)]
    cap = min(counts)
    assert max(counts) > cap
    replayed: list[int] = []

    async def server_info(url: str) -> tuple[dict[str, Any], Any]:
        return {}, config

    async def run_episode(url: str, config: Any, seed: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
        replayed.append(seed)
        raise AssertionError("no episode may be replayed")

    monkeypatch.setattr(loadgen, "_server_info", server_info)
    monkeypatch.setattr(loadgen, "run_episode", run_episode)
    argv = ["--url", "http://127.0.0.1:9", "--seeds", "0-2", "--horizon-s", "0.5"]
    argv += ["--max-requests", str(cap), "--out", str(tmp_path / "out"), "--no-plots"]
    assert loadgen.main(argv) == 2
    assert "--max-requests: episode" in capsys.readouterr().err
    assert replayed == [] and not (tmp_path / "out" / "eval_run").exists()
