"""What :meth:`batchenv.env.DynamicBatchingEnv.render` shows: a line of text (``ansi``) or a
small picture (``rgb_array``, for video recorders such as Gymnasium's ``RecordVideo``).

The picture has one bar per row, each a fraction of the frame's width:

- the queue: waiting requests over the largest batch (full: a batch of the largest size waits;
  red beyond, when more than a batch waits);
- the oldest request's wait over ``max_wait_ms`` (orange);
- one row per worker: the time until it is free over the longest service time of the timing
  table (green; empty when idle).
"""

from __future__ import annotations

import numpy as np

from batchenv.sim import Simulator

__all__ = ["FRAME_WIDTH", "ROW_HEIGHT", "ansi_line", "rgb_frame"]

FRAME_WIDTH = 256
"""Width of an ``rgb_array`` frame (pixels)."""

ROW_HEIGHT = 16
"""Height of one bar's row (pixels), a 2-pixel gap included."""

_BACKGROUND = (32, 32, 32)
_TRACK = (64, 64, 64)
_QUEUE = (66, 133, 244)
_OVERFLOW = (219, 68, 55)
_WAIT = (244, 160, 0)
_BUSY = (15, 157, 88)

RGB = tuple[int, int, int]


def ansi_line(sim: Simulator) -> str:
    """One line of text describing the state of ``sim``."""
    busy = " ".join(f"{max(0.0, f - sim.now_s) * 1000:6.1f}" for f in sim.free_at_s)
    return (
        f"t={sim.now_s:9.4f}s queue={sim.queue_len:4d} oldest={sim.oldest_wait_s * 1000:7.2f}ms "
        f"busy_ms=[{busy}] served={sim.n_served} dropped={sim.n_dropped}"
    )


def rgb_frame(sim: Simulator) -> np.ndarray:
    """A picture of the state of ``sim``: uint8 array of shape
    ``((2 + n_workers) * ROW_HEIGHT, FRAME_WIDTH, 3)`` (the bars of the module's docstring)."""
    rows = 2 + sim.n_workers
    frame = np.empty((rows * ROW_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    frame[:] = _BACKGROUND
    waiting = sim.queue_len / sim.max_batch_size
    _bar(frame, 0, min(waiting, 1.0), _QUEUE)
    if waiting > 1.0:  # the part beyond one batch, over the rest of the queue's room
        room = max(sim.queue_capacity / sim.max_batch_size - 1.0, 1e-9)
        _bar(frame, 0, min((waiting - 1.0) / room, 1.0), _OVERFLOW, track=False)
    _bar(frame, 1, min(sim.oldest_wait_s / sim.max_wait_s, 1.0), _WAIT)
    longest = sim.service_table.max_service_s
    for worker, free_at_s in enumerate(sim.free_at_s):
        _bar(frame, 2 + worker, min(max(free_at_s - sim.now_s, 0.0) / longest, 1.0), _BUSY)
    return frame


def _bar(frame: np.ndarray, row: int, fraction: float, color: RGB, *, track: bool = True) -> None:
    """Paint ``fraction`` (in [0, 1]) of row ``row``'s width in ``color``, over a grey track."""
    top, bottom = row * ROW_HEIGHT + 1, (row + 1) * ROW_HEIGHT - 1
    if track:
        frame[top:bottom, :] = _TRACK
    frame[top:bottom, : round(fraction * FRAME_WIDTH)] = color
