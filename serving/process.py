"""Run ``python -m serving.server`` as a child process on a free loopback port: start it, wait
until it serves (its ready file), stop it with SIGTERM and check that it exited cleanly.

The child runs in a process group of its own (``start_new_session``): a Ctrl-C in the terminal
reaches only the parent, which stops the child (the context manager kills its whole group when
the parent's block ends with an exception, SIGTERM turned into one included: see
``benchmarks/sim_to_real_parts/lifecycle.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess", "ServerStartError", "child_environment", "kill_group"]

REPO = Path(__file__).resolve().parents[1]

SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Thread counts of a child's numerical libraries: one, as the calibration measured."""


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """A child's environment: this process's, then :data:`SINGLE_THREADED` (so an
    ``OMP_NUM_THREADS`` of the caller's shell does not change the server's timing), then ``env``
    (which may override them on purpose)."""
    return {**os.environ, **SINGLE_THREADED, **(env or {})}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the process group of ``process`` (started with ``start_new_session``), then
    reap it; nothing if it has exited."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its output."""


class ServerProcess:
    """A batching server in a child process (a context manager: stopped on exit).

    :param args: command-line arguments of ``serving.server`` besides ``--port`` and
        ``--ready-file`` (e.g. ``["--scenario", "default", "--agent", "greedy"]``).
    :param start_timeout_s: how long to wait for the server to serve (s).
    :param log_dir: where its output goes (default: a new temporary folder).
    :param env: extra environment variables (the thread counts are 1 unless given here, whatever
        this process's environment says: :func:`child_environment`).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        start_timeout_s: float = 300.0,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        folder = Path(log_dir or tempfile.mkdtemp(prefix="batchenv-server-"))
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.monotonic_ns()
        ready = folder / f"ready-{stamp}.json"
        self.log_path = folder / f"server-{stamp}.log"
        command = [sys.executable, "-m", "serving.server", *args, "--port", "0", "--ready-file", str(ready)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(env),
                start_new_session=True,
            )
        deadline = time.monotonic() + start_timeout_s
        try:
            while not ready.exists():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise ServerStartError(f"the server did not start ({' '.join(args)}):\n{self.output()}")
                time.sleep(0.05)
            self.url: str = json.loads(ready.read_text())["url"]
        except BaseException:  # interrupted while starting: no __exit__ will stop it
            self.kill()
            raise

    def output(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code (killed after the time-out)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the server's process group (the server and anything it started)."""
        kill_group(self.process)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.stop()
        else:
            self.kill()
