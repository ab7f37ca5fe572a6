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
