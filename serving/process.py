"""Run ``python -m serving.server`` as a child process on a free loopback port: start it, wait
until it serves (its ready file), stop it with SIGTERM and check that it exited cleanly."""

from __future__ import annotations

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

__all__ = ["ServerProcess", "ServerStartError"]

REPO = Path(__file__).resolve().parents[1]


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its output."""


class ServerProcess:
    """A batching server in a child process (a context manager: stopped on exit).

    :param args: command-line arguments of ``serving.server`` besides ``--port`` and
        ``--ready-file`` (e.g. ``["--scenario", "default", "--agent", "greedy"]``).
    :param start_timeout_s: how long to wait for the server to serve (s).
    :param log_dir: where its output goes (default: a new temporary folder).
    :param env: extra environment variables (the thread counts are set to 1 unless given).
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
        environment = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **os.environ, **(env or {})}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        deadline = time.monotonic() + start_timeout_s
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(f"the server did not start ({' '.join(args)}):\n{self.output()}")
            time.sleep(0.05)
        self.url: str = json.loads(ready.read_text())["url"]

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
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.stop()
        else:
            self.kill()
