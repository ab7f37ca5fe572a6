"""Ray Core tasks as a :class:`~execution.backends.Backend`: an embedded local Ray, or a cluster
joined by address.

Ray is imported here and only here, when a Ray backend is created: importing it takes about a
second and starting a local Ray several seconds and about 1 GB of memory (docs/scaling.md), which
the default commands (the local process pool) never pay.

Every task is the same remote function, :func:`execution.outcome.call_safely`, with the task's
function and arguments as its arguments: functions travel by reference (module and name), so
every node must have batchenv installed (``pip install -e ".[dist]"`` on each machine, or a Ray
``runtime_env``). Each task asks for one CPU; on a cluster, ``jobs`` caps the tasks at once.
Files travel as absolute paths (:mod:`execution.paths`): on a cluster they must be at the same
path on every node.

Joining a cluster fails in a few seconds with a one-line :class:`RayUnavailableError` when its
head does not answer (``ray.init`` would retry for minutes) or refuses this process's token
(Ray's token authentication, ``RAY_AUTH_MODE=token``: the message says what to set); the
command lines print it and exit with status 2 (:meth:`execution.backends.BackendSpec.create`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ray  # heavy: this module is imported only when --backend ray is asked for

from batchenv.scenarios import SCENARIO_PATH_ENV, scenario_path_for_workers
from execution.backends import Backend, BackendUnavailableError
from execution.cluster import AUTH_HINT, address_error, is_auth_failure, unreachable_reason
from execution.outcome import Outcome, TaskError, call_safely

__all__ = ["WORKER_NICENESS", "RayBackend", "RayUnavailableError", "start_or_join", "worker_environment"]

WORKER_NICENESS = ("RAY_worker_niceness", "0")
"""The environment variable that makes the workers of a local Ray keep the niceness of the
process that starts it, as the local pool's do (Ray's default adds 15, which leaves the run to
whatever else runs on the machine); a value set in the environment is kept."""


class RayUnavailableError(BackendUnavailableError):
    """Ray cannot be started, or the cluster at the given address cannot be joined (a one-line
    message naming the flag to fix: ``--address: ...`` or ``--backend ray: ...``)."""


def worker_environment() -> dict[str, str]:
    """The environment variables a Ray session hands its workers (``runtime_env``): the scenario
    search path, its directories absolute (:func:`batchenv.scenarios.scenario_path_for_workers`),
    which a cluster's workers would not otherwise see."""
    path = scenario_path_for_workers()
    return {SCENARIO_PATH_ENV: path} if path else {}


@contextlib.contextmanager
def _environment_default(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block unless ``name`` is set already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _failure(address: str | None, exc: BaseException) -> str:
    """The one-line message of a ``ray.init`` that failed with ``exc``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = lines[0] if lines else type(exc).__name__
    if address is None:
        return f"--backend ray: cannot start a local Ray: {cause}"
    if is_auth_failure(exc):
        mode = os.environ.get("RAY_AUTH_MODE")
        here = f"RAY_AUTH_MODE={mode}" if mode else "RAY_AUTH_MODE not set"
        return (
            f"--address: the Ray cluster at {address} refused this process: its authentication "
            f"token is missing or wrong ({here}); {AUTH_HINT}"
        )
    return f"--address: cannot join the Ray cluster at {address}: {cause}"


def start_or_join(jobs: int | None = None, address: str | None = None) -> bool:
    """Make sure this process is connected to Ray: join the cluster at ``address`` (``"auto"``
    or ``"host:port"``), or start an embedded local Ray with ``jobs`` CPUs (None: every core)
    when ``address`` is None, even where a cluster of ``ray start`` runs on this machine
    (``address="local"``); its workers run at this process's priority (:data:`WORKER_NICENESS`).
    Either way the workers get :func:`worker_environment`. A session already open in this
    process is used as it is.

    A ``host:port`` address is first tried with a TCP connection of a few seconds
    (:func:`execution.cluster.unreachable_reason`): ``ray.init`` would retry it for minutes.

    :returns: True if this call started or joined Ray (the caller then calls ``ray.shutdown()``
        when done), False if Ray was already initialised.
    :raises RayUnavailableError: Ray cannot start, or no cluster at ``address`` lets this
        process in (unreachable, or its token refused: the message says what to set).
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": True}
    environment = worker_environment()
    if environment:
        options["runtime_env"] = {"env_vars": environment}
    if address is not None:
        reason = address_error(address) or unreachable_reason(address)
        if reason is not None:
            raise RayUnavailableError(f"--address: {reason}")
    try:
        if address is None:
            with _environment_default(*WORKER_NICENESS):
                ray.init(address="local", num_cpus=jobs, **options)
        else:
            ray.init(address=address.strip(), **options)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError, ValueError, ...
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise RayUnavailableError(_failure(address, exc)) from None
    return True


class RayBackend(Backend):
    """Tasks on Ray.

    :param jobs: CPUs of the embedded local Ray (None: every usable core); with ``address``, at
        most that many tasks run at once (None: every CPU of the cluster): the others wait in
        this process and start as running ones finish.
    :param address: ``"auto"`` (the cluster of ``RAY_ADDRESS`` or of ``ray start`` on this
        machine) or ``"host:port"`` of a cluster's head; None starts an embedded local Ray, shut
        down by :meth:`close`. If Ray is already initialised in this process (a test fixture, a
        notebook), that session is used and left running.
    :raises RayUnavailableError: see :func:`start_or_join`.
    """

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None) -> None:
        self.address = address
        # ray.init installs its own SIGTERM handler in this process: put ours back at close()
        self._handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._owned = start_or_join(jobs, address)
        except RayUnavailableError:
            self._restore_handlers()
            raise
        self.cpus = int(ray.cluster_resources().get("CPU", 1))
        self.jobs = max(1, min(jobs, self.cpus) if jobs else self.cpus)
        # on a cluster, --jobs caps the tasks at once (an embedded Ray has only --jobs CPUs)
        self._cap = self.jobs if address is not None and jobs else None
        self._remote = ray.remote(num_cpus=1)(call_safely)
        self._pending: dict[Any, Future[Outcome[Any]]] = {}
        self._waiting: deque[tuple[Callable[..., Any], tuple[Any, ...], Future[Outcome[Any]]]] = deque()
        self._running = 0
        self._lock = threading.Lock()
        # starts waiting tasks: Ray's completion callbacks run on its own thread, which must not submit
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="ray-launch") if self._cap else None

    def describe(self) -> str:
        where = f"Ray cluster at {self.address}" if self.address else "embedded local Ray"
        if self._cap is not None:
            return f"{where}, at most {self._cap} task{'s' * (self._cap > 1)} at once ({self.cpus} CPUs)"
        return f"{where}, {self.jobs} CPU{'s' * (self.jobs > 1)}"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Outcome[Any]]:
        outer: Future[Outcome[Any]] = Future()
        with self._lock:
            if self._cap is not None and self._running >= self._cap:
                self._waiting.append((fn, args, outer))
                return outer
            self._running += 1
        self._launch(fn, args, outer)
        return outer

    def _launch(self, fn: Callable[..., Any], args: tuple[Any, ...], outer: Future[Outcome[Any]]) -> None:
        ref = self._remote.remote(fn, args)
        with self._lock:
            self._pending[ref] = outer
        ref.future().add_done_callback(lambda inner: self._relay(ref, inner))

    def _relay(self, ref: Any, inner: Future[Any]) -> None:
        with self._lock:
            outer = self._pending.pop(ref, None)
            self._running -= 1
            more = bool(self._waiting)
        if more and self._launcher is not None:
            with contextlib.suppress(RuntimeError):  # closed: nothing more to start
                self._launcher.submit(self._start_waiting)
        if outer is None or not outer.set_running_or_notify_cancel():
            return
        exc = None if inner.cancelled() else inner.exception()
        if inner.cancelled() or exc is not None:  # the worker died, or the task was cancelled
            error = TaskError.from_exception(exc) if exc else TaskError("CancelledError", "cancelled")
            outer.set_result(Outcome(error=error))
        else:
            outer.set_result(inner.result())

    def _start_waiting(self) -> None:
        """Start waiting tasks while fewer than the cap run (on the launcher thread)."""
        while True:
            with self._lock:
                if not self._waiting or (self._cap is not None and self._running >= self._cap):
                    return
                fn, args, outer = self._waiting.popleft()
                if outer.cancelled():
                    continue
                self._running += 1
            self._launch(fn, args, outer)

    def cancel(self) -> None:
        with self._lock:
            waiting = [outer for _, _, outer in self._waiting]
            self._waiting.clear()
            pending = list(self._pending.items())
            self._pending.clear()
        for outer in waiting:
            outer.cancel()
        for ref, outer in pending:
            outer.cancel()
            with contextlib.suppress(Exception):  # already finished, or its worker already gone
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._launcher is not None:
            self._launcher.shutdown(wait=True)
        if self._owned and ray.is_initialized():
            ray.shutdown()
            self._restore_handlers()
        self._owned = False

    def _restore_handlers(self) -> None:
        for sig, handler in self._handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
