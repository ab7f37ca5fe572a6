"""The life of a sim-to-real run: a work folder for the servers' configs and logs, removed at the
end whatever happens, and SIGTERM and SIGINT turned into an exception so that every child process
(servers, load generators) is stopped on the way out instead of being left to PID 1.

The children run in process groups of their own (:class:`serving.process.ServerProcess`,
:func:`serving.replay_process.run_episode_in_process`) and are killed as groups when the
exception passes through the blocks that started them.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

__all__ = ["Interrupted", "guarded"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
"""The signals that stop a run cleanly. The servers run in sessions of their own, so a hang-up
(SIGHUP, a closed terminal) or SIGQUIT reaches only this process: it too must stop them."""


class Interrupted(BaseException):
    """A signal of :data:`STOP_SIGNALS` arrived (a BaseException, as KeyboardInterrupt: no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # the clean-up on the way out is not interrupted again
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def guarded(body: Callable[[Path], int], prefix: str = "sim_to_real-") -> int:
    """Run ``body(work_folder)`` with the signals of :data:`STOP_SIGNALS` raising
    :class:`Interrupted`; remove the work folder at the end. Returns ``body``'s exit code, or 128
    + the signal's number (143 for SIGTERM, 130 for SIGINT, 129 for SIGHUP) with a line on stderr
    when interrupted."""
    previous = {sig: signal.signal(sig, _raise) for sig in STOP_SIGNALS}
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return body(work)
    except Interrupted as exc:
        print(
            f"stopped by {exc}: the servers and load generators were stopped, {work} removed",
            file=sys.stderr,
            flush=True,
        )
        return 128 + exc.signum
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
