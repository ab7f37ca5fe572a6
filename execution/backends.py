"""Where tasks run: the :class:`Backend` interface, the local process pool and the choice of
backend (:class:`BackendSpec`).

A task is a picklable top-level function and picklable arguments. :meth:`Backend.submit` returns
a :class:`concurrent.futures.Future` of an :class:`~execution.outcome.Outcome` on every backend,
so callers wait with :func:`concurrent.futures.wait` / :func:`~concurrent.futures.as_completed`
and may submit new tasks as earlier results arrive (dependent submissions). Failures inside a
task come back as :class:`~execution.outcome.TaskError` values, never as exceptions.

- :class:`LocalBackend`: ``jobs`` worker processes on this machine (the default); ``jobs=1``
  runs each task in this process at submission.
- :class:`execution.ray_backend.RayBackend`: Ray Core tasks, on an embedded local Ray or on a
  cluster. Ray is imported only there, so the default commands never import or start it.

Every worker process runs one thread (:func:`limit_worker_threads`, as Ray's do). A backend that
cannot start (:class:`BackendUnavailableError`) ends a command line with one line and exit status
2 (:meth:`BackendSpec.create`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from execution.outcome import Outcome, TaskError, call_safely

__all__ = [
    "BACKENDS",
    "WORKER_THREAD_VARIABLES",
    "Backend",
    "BackendSpec",
    "BackendUnavailableError",
    "LocalBackend",
    "limit_worker_threads",
    "usable_cores",
]

BACKENDS = ("local", "ray")


class BackendUnavailableError(RuntimeError):
    """A backend that cannot be started or joined: Ray cannot start, or no Ray cluster at the
    address lets this process in. Its message is one line that starts with the flag to fix
    (``--address: ...``, ``--backend ray: ...``)."""


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one (Linux), else
    ``os.cpu_count()`` (macOS, Windows)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


class Backend(ABC):
    """Runs independent tasks; see the module docstring. Use it as a context manager: leaving
    the block normally waits for running tasks and frees the workers; leaving it by an exception
    (Ctrl-C) cancels queued tasks and stops running ones first."""

    name: str = ""
    jobs: int = 1
    """Tasks that run at once."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Outcome[Any]]:
        """Start ``fn(*args)``; its future never raises for an error of the task itself."""

    @abstractmethod
    def cancel(self) -> None:
        """Cancel every task not yet finished: drop queued ones, stop running ones."""

    @abstractmethod
    def close(self) -> None:
        """Free the workers (after the submitted tasks have finished or been cancelled)."""

    def describe(self) -> str:
        """For messages: ``"2 processes"``, ``"Ray, 2 CPUs"``, ..."""
        return f"{self.name}, {self.jobs} jobs"

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.cancel()
        self.close()


WORKER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread counts of the numerical libraries, set to 1 in a worker process (unless set already)."""


def limit_worker_threads() -> None:
    """One thread per worker process, as a Ray worker has (Ray sets ``OMP_NUM_THREADS=1`` for a
    one-CPU task): the workers are the parallelism, and more threads each would only share the
    same cores. Sets :data:`WORKER_THREAD_VARIABLES` (unless set already) for the libraries
    loaded from now on (torch, when a checkpoint agent is built), limits those already loaded
    (numpy's BLAS: the spawned worker has imported the command's modules before this runs) to
    one thread with ``threadpoolctl``, and torch's threads when torch is loaded already."""
    for name in WORKER_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _init_worker() -> None:
    """Worker initializer. Ctrl-C reaches the whole process group; only the parent handles it
    (it cancels the queue and stops the workers), so a worker ignores it rather than swallow it
    and go on with the next queued task. And one thread per worker (:func:`limit_worker_threads`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_worker_threads()


class LocalBackend(Backend):
    """Worker processes on this machine.

    :param jobs: worker processes; 1 runs every task in this process, at submission.
    :param start_method: ``"spawn"`` (default: fresh interpreters, safe with threads) or
        ``"fork"`` (cheaper start, the parent's memory shared; Linux only).
    """

    name = "local"

    def __init__(self, jobs: int = 1, start_method: str = "spawn") -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None  # started at the first submission
        self._unfinished: set[Future[Outcome[Any]]] = set()  # the pool's futures not done yet

    def describe(self) -> str:
        return "this process" if self.jobs == 1 else f"{self.jobs} local processes"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Outcome[Any]]:
        if self.jobs == 1:
            future: Future[Outcome[Any]] = Future()
            future.set_result(call_safely(fn, args))
            return future
        if self._pool is None:
            context = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker)
        inner = self._pool.submit(call_safely, fn, args)
        self._unfinished.add(inner)
        inner.add_done_callback(self._unfinished.discard)
        return _errors_as_outcomes(inner)

    def cancel(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        processes = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
        # Cancel the queued tasks here and now: shutdown's cancel_futures is carried out later by
        # the pool's manager thread, which may first see the terminated workers below and fail
        # every queued task as a broken pool instead of cancelling it.
        for future in list(self._unfinished):
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _errors_as_outcomes(inner: Future[Outcome[Any]]) -> Future[Outcome[Any]]:
    """A future that holds an :class:`Outcome` whatever happens to ``inner``: a failure of the
    pool itself (a worker killed, a result that cannot be pickled) becomes a task error too.
    Cancelling it cancels ``inner``."""
    outer: Future[Outcome[Any]] = Future()

    def relay(done: Future[Outcome[Any]]) -> None:
        if done.cancelled():
            outer.cancel()
            return
        if not outer.set_running_or_notify_cancel():
            return
        exc = done.exception()
        if exc is None:
            outer.set_result(done.result())
        else:
            outer.set_result(Outcome(error=TaskError.from_exception(exc)))

    inner.add_done_callback(relay)
    outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
    return outer


@dataclass(frozen=True)
class BackendSpec:
    """A choice of backend, made while planning and cheap to carry around; :meth:`create`
    starts it (for Ray: imports it and starts or joins a cluster).

    :param name: ``"local"`` or ``"ray"``.
    :param jobs: tasks at once (local processes, CPUs of an embedded Ray, or at most that many
        tasks on a Ray cluster); None with a Ray cluster address = every CPU of the cluster.
    :param address: Ray cluster to join (``"auto"`` or ``"host:port"``); None = start an
        embedded local Ray (``name="ray"``) or no Ray at all (``name="local"``).
    :param start_method: of the local worker processes (``"spawn"`` or ``"fork"``).
    """

    name: Literal["local", "ray"] = "local"
    jobs: int | None = 1
    address: str | None = None
    start_method: str = "spawn"

    def start(self) -> Backend:
        """The backend, started (for Ray: imported, and a local Ray started or a cluster joined).

        :raises BackendUnavailableError: Ray is not installed or cannot start, or the cluster at
            :attr:`address` cannot be reached or refuses this process (its token).
        """
        if self.name == "ray":
            try:
                from execution.ray_backend import RayBackend  # imports Ray: only when asked for
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"--backend ray: Ray is not installed ({exc}); pip install -e '.[dist]'"
                ) from None
            return RayBackend(jobs=self.jobs, address=self.address)
        return LocalBackend(self.jobs or 1, start_method=self.start_method)

    def create(self) -> Backend:
        """:meth:`start` for a command line: a backend that cannot start ends the program as a
        bad flag does, with its one-line reason (``error: --address: ...``) on stderr and exit
        status 2, so that every command (``evaluate.py``, ``python -m apps.tune``,
        ``verify.py``, the benchmarks) says so instead of a traceback.

        :raises SystemExit: (status 2) see :meth:`start`.
        """
        try:
            return self.start()
        except BackendUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    def describe(self) -> str:
        if self.name == "ray" and self.address:
            where = f"Ray cluster at {self.address}"
            if self.jobs:
                return f"{where}, at most {self.jobs} task{'s' * (self.jobs > 1)} at once"
            return f"{where}, all CPUs"
        if self.name == "ray":
            jobs = self.jobs or "all"
            return f"an embedded local Ray, {jobs} CPU{'' if jobs == 1 else 's'}"
        jobs = self.jobs or 1
        return f"{jobs} process{'es' if jobs > 1 else ''}"
