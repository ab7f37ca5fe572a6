"""A Ray cluster's address, checked without Ray: its form, whether its head answers, and what a
refused token needs.

``ray.init`` retries an address that does not answer for many minutes (about 14 with Ray 2.60)
before it gives up, so :func:`execution.ray_backend.start_or_join` first tries a plain TCP
connection to the head's port for a few seconds (:func:`unreachable_reason`).
"""

from __future__ import annotations

import os
import socket

__all__ = [
    "ADDRESS_HELP",
    "AUTH_HINT",
    "CONNECT_TIMEOUT_S",
    "address_error",
    "causes",
    "head_endpoint",
    "is_auth_failure",
    "unreachable_reason",
]

CONNECT_TIMEOUT_S = 3.0
"""How long the head's port may take to accept a connection before the address is refused."""

ADDRESS_HELP = "give auto or HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379)"

AUTH_HINT = (
    "the cluster uses Ray's token authentication: set RAY_AUTH_MODE=token and give this machine "
    "the cluster's token (copy the head's ~/.ray/auth_token to the same place here, or point "
    "RAY_AUTH_TOKEN_PATH at a copy; `ray get-auth-token` prints it on the head); see docs/scaling.md"
)
"""What a client needs when a cluster refuses it for a missing or wrong token."""

_CLIENT_SCHEME = "ray://"


def head_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` (or ``ray://HOST:PORT``, ``[IPv6]:PORT``) address; None
    for ``auto`` and for text of another form (:func:`address_error` says what is wrong)."""
    text = address.strip()
    text = text.removeprefix(_CLIENT_SCHEME)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() or c in "/@" for c in host):
        return None
    return host, int(port)


def address_error(address: str) -> str | None:
    """Why ``address`` is no Ray cluster address (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``),
    or None."""
    if address.strip() == "auto" or head_endpoint(address) is not None:
        return None
    return f"{ADDRESS_HELP}, got {address!r}"


def unreachable_reason(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the head of the cluster at ``address`` does not answer, after one TCP connection
    attempt of at most ``timeout_s`` seconds to its port; None if it accepts the connection.
    ``auto`` is checked through ``RAY_ADDRESS`` when that holds a ``HOST:PORT`` (otherwise Ray
    finds the cluster of this machine itself, quickly)."""
    target = address.strip()
    if target == "auto":
        target = os.environ.get("RAY_ADDRESS", "").strip()
    endpoint = head_endpoint(target)
    if endpoint is None:
        return None
    host, port = endpoint
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        why = f"no answer within {timeout_s:g} s"
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
    named = f"{target} (RAY_ADDRESS)" if address.strip() == "auto" else target
    return (
        f"cannot reach a Ray cluster at {named}: {why}; is `ray start --head` running there, with "
        "that port open to this machine?"
    )


def causes(exc: BaseException, depth: int = 6) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (``ray.init`` wraps the cause of a failed
    connection, e.g. a refused token, in a ``ConnectionError`` of its own)."""
    chain = [exc]
    while len(chain) < depth:
        cause = chain[-1].__cause__ or chain[-1].__context__
        if cause is None or cause in chain:
            break
        chain.append(cause)
    return chain


def is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (from ``ray.init``) or its cause says the cluster refused this client's
    token (Ray 2.60: ``AuthenticationError``, ``Unauthenticated``, ``InvalidAuthToken``)."""
    for error in causes(exc):
        text = f"{type(error).__name__} {error}".lower()
        if "authentication" in text or "authtoken" in text or "unauthenticated" in text:
            return True
    return False
