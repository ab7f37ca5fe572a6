"""Ray Core tasks as a :class:`~execution.backends.Backend`: an embedded local Ray, or a cluster
joined by address.

Ray is imported here and only here, when a Ray backend is created: importing it takes about a
second and starting a local Ray several seconds and about 1 GB of memory (docs/scaling.md), which
the default commands (the local process pool) never pay.

Every task is the same remote function, :func:`execution.outcome.call_safely`, with the task's
function and arguments as its arguments: functions travel by reference (module and name), so
every node must have batchenv installed (``pip install -e ".[dist]"`` on each machine, or a Ray
``runtime_env``). Each task asks for one CPU.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import ray  # heavy: this module is imported only when --backend ray is asked for

from execution.backends import Backend
from execution.outcome import Outcome, TaskError, call_safely

__all__ = ["RayBackend", "RayUnavailableError", "start_or_join"]


class RayUnavailableError(RuntimeError):
    """The Ray cluster at the given address cannot be reached (a one-line message)."""


def start_or_join(jobs: int | None = None, address: str | None = None) -> bool:
    """Make sure this process is connected to Ray: join the cluster at ``address`` (``"auto"``
    or ``"host:port"``), or start an embedded local Ray with ``jobs`` CPUs (None: every core)
    when ``address`` is None. A session already open in this process is used as it is.

    :returns: True if this call started or joined Ray (the caller then calls ``ray.shutdown()``
        when done), False if Ray was already initialised.
    :raises RayUnavailableError: no cluster at ``address``.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": True}
    if address is None:
        options["num_cpus"] = jobs
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise RayUnavailableError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    return True


class RayBackend(Backend):
    """Tasks on Ray.

    :param jobs: CPUs of the embedded local Ray (None: every usable core); with ``address``, at
        most that many tasks at once (None: every CPU of the cluster).
    :param address: ``"auto"`` (the cluster of ``RAY_ADDRESS`` or of ``ray start`` on this
        machine) or ``"host:port"`` of a cluster's head; None starts an embedded local Ray, shut
        down by :meth:`close`. If Ray is already initialised in this process (a test fixture, a
        notebook), that session is used and left running.
    """

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None) -> None:
        self.address = address
        # ray.init installs its own SIGTERM handler in this process: put ours back at close()
        self._handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._owned = start_or_join(jobs, address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.jobs = max(1, min(jobs, cpus) if jobs else cpus)
        self._remote = ray.remote(num_cpus=1)(call_safely)
        self._pending: dict[Any, Future[Outcome[Any]]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        where = f"Ray cluster at {self.address}" if self.address else "embedded local Ray"
        return f"{where}, {self.jobs} CPUs"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Outcome[Any]]:
        ref = self._remote.remote(fn, args)
        outer: Future[Outcome[Any]] = Future()
        with self._lock:
            self._pending[ref] = outer
        ref.future().add_done_callback(lambda inner: self._relay(ref, inner))
        return outer

    def _relay(self, ref: Any, inner: Future[Any]) -> None:
        with self._lock:
            outer = self._pending.pop(ref, None)
        if outer is None or not outer.set_running_or_notify_cancel():
            return
        exc = None if inner.cancelled() else inner.exception()
        if inner.cancelled() or exc is not None:  # the worker died, or the task was cancelled
            error = TaskError.from_exception(exc) if exc else TaskError("CancelledError", "cancelled")
            outer.set_result(Outcome(error=error))
        else:
            outer.set_result(inner.result())

    def cancel(self) -> None:
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
        for ref, outer in pending:
            outer.cancel()
            with contextlib.suppress(Exception):  # already finished, or its worker already gone
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owned and ray.is_initialized():
            ray.shutdown()
            for sig, handler in self._handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self._owned = False
