"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM.

The first signal only sets a flag; :class:`StopTrainingOnRequest` makes SB3 end ``learn()`` at the
next step, the normal way: every callback's ``on_training_end`` runs (the progress bar is closed,
so the interpreter exits instead of hanging on its display thread) and the caller saves the
model. A second Ctrl-C raises :class:`KeyboardInterrupt` at once (the caller still saves what
it has).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["StopRequest", "StopTrainingOnRequest"]


class StopRequest:
    """Set by the first SIGINT or SIGTERM while :meth:`installed` is active.

    :ivar signal_name: ``"SIGINT"`` or ``"SIGTERM"`` once a stop was requested, else None.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        """True once a signal asked the run to stop."""
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        again = "Ctrl-C again" if signum == signal.SIGINT else f"{self.signal_name} again"
        print(
            f"\n{self.signal_name}: stopping after the current step (and the evaluation it ends "
            f"with, if one is due) and saving the model ({again} to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block (previous handlers restored after it); a
        no-op outside the main thread, where Python cannot install signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class StopTrainingOnRequest(BaseCallback):
    """Ends SB3's ``learn()`` at the next step once ``request`` is set.

    :param request: the flag (see :class:`StopRequest`).
    """

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request

    def _on_step(self) -> bool:
        return not self.request.requested
