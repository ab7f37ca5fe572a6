"""How many connections the server holds open: a cap, and the open-files limit behind it.

Every open connection costs the server a file descriptor and some memory (a stalled body until
its time-out). Beyond the cap, a new connection is answered with a 503 and closed, instead of
being accepted until the process runs out of file descriptors (where the event loop stops
accepting for a second at a time and logs an error) or memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Any

from aiohttp import web

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_LINGERING",
    "RESERVED_FILES",
    "CappedTCPSite",
    "connection_cap",
    "raise_open_files_limit",
]

log = logging.getLogger("serving.server")

DEFAULT_MAX_CONNECTIONS = 8192
"""Default cap on open connections (twice the load generator's default connection pool)."""

MAX_LINGERING = 64
"""Refused connections that may linger at once; beyond, a refusal closes at once."""

RESERVED_FILES = 64 + MAX_LINGERING
"""File descriptors kept for everything but open client connections: the listening socket,
models, logs, and up to :data:`MAX_LINGERING` refused connections while they close."""


def raise_open_files_limit(wanted: int | None = None) -> int:
    """Raise this process's soft open-files limit to ``wanted`` (default: the hard limit) or as
    far as the hard limit allows; returns the soft limit then in force (one socket per open
    request)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and target > soft):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def connection_cap(requested: int | None) -> int:
    """The cap on open connections: ``requested`` or, if None, :data:`DEFAULT_MAX_CONNECTIONS`
    lowered to what the open-files limit allows; raises the soft open-files limit to fit it.

    :raises ValueError: ``requested`` is below 1 or needs more file descriptors than the hard
        limit allows (the message names ``--max-connections`` and the largest value allowed).
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    largest = 10**6 if hard == resource.RLIM_INFINITY else max(1, hard - RESERVED_FILES)
    if requested is None:
        cap = min(DEFAULT_MAX_CONNECTIONS, largest)
    elif 1 <= requested <= largest:
        cap = requested
    else:
        raise ValueError(
            f"--max-connections must be in [1, {largest}] (the open-files hard limit {hard} less "
            f"{RESERVED_FILES} reserved; raise it with ulimit -Hn), got {requested}"
        )
    raise_open_files_limit(cap + RESERVED_FILES)
    return cap


def _refusal_bytes() -> bytes:
    body = json.dumps({"error": "too many open connections; retry later"}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal_bytes()

LINGER_S = 0.5
"""How long a refused connection is read and drained before it is closed (s)."""


class _Refusal(asyncio.Protocol):
    """A connection beyond the cap: answered 503 at once, whatever it sends discarded.

    The answer is followed by a lingering close: the write side is shut, what the client still
    sends is read and dropped for up to :data:`LINGER_S`, then the connection is closed. Closing at
    once with the client's request unread would reset the connection, and the client could lose
    the answer. At most :data:`MAX_LINGERING` refusals linger; beyond, they close at once.
    """

    lingering = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        if _Refusal.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        _Refusal.lingering += 1
        self._counted = True
        transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        """Dropped: the request is not read."""

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_counted", False):
            _Refusal.lingering -= 1
            self._counted = False


class CappedTCPSite(web.TCPSite):
    """A TCP site of ``runner`` that holds at most ``max_connections`` connections open.

    A connection arriving while ``max_connections`` are open gets a 503 (JSON body,
    ``Retry-After: 1``) and is closed. A connection counts from the moment its handler starts, so
    a burst of new connections accepted in one go can overshoot the cap by up to the listen
    backlog (128).
    """

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int, **kwargs: Any):
        super().__init__(runner, host, port, **kwargs)
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.max_connections = max_connections
        self.refused = 0
        """Connections refused so far."""

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            if self.refused == 0:
                log.warning("%d connections open: refusing new ones with 503", self.max_connections)
            self.refused += 1
            return _Refusal()
        return server()

    async def start(self) -> None:
        """Listen (as :meth:`aiohttp.web.TCPSite.start`, through the cap)."""
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
