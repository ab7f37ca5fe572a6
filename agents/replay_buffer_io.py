"""Saving and restoring an off-policy agent's replay buffer without pickle.

SB3's ``save_replay_buffer`` pickles the whole buffer object; loading such a file can run code.
Here the buffer's arrays go into a NumPy ``.npz`` (read back with ``allow_pickle=False``), next to
the checkpoint: ``final_model.zip`` -> ``final_model.replay.npz``. A resumed DQN run then starts
from the transitions (and, with the semi-Markov buffer, their discounts) the interrupted run had
collected, instead of an empty buffer. Files are written atomically and checked on load: the
arrays must have exactly the shapes and dtypes of the model's own buffer.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from batchenv.fileio import write_atomic

__all__ = ["BUFFER_ARRAYS", "load_replay_buffer", "replay_buffer_path", "save_replay_buffer"]

BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "discounts")
"""Arrays of an SB3 ReplayBuffer (``discounts``: the semi-Markov buffer's) that are saved."""


def replay_buffer_path(checkpoint: str | Path) -> Path:
    """Where the replay buffer of ``checkpoint`` (a ``.zip``) is kept."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.replay.npz")


def save_replay_buffer(model: Any, checkpoint: str | Path) -> Path | None:
    """Save ``model.replay_buffer`` next to ``checkpoint``; None if the model has no replay buffer."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return None
    arrays = {
        name: getattr(buffer, name) for name in BUFFER_ARRAYS if getattr(buffer, name, None) is not None
    }
    arrays["position"] = np.array([buffer.pos, int(buffer.full)], dtype=np.int64)
    data = io.BytesIO()
    np.savez(data, **arrays)
    path = replay_buffer_path(checkpoint)
    write_atomic(path, data.getvalue())
    return path


def load_replay_buffer(model: Any, checkpoint: str | Path) -> bool:
    """Fill ``model.replay_buffer`` from the file saved next to ``checkpoint``.

    :returns: False if there is no such file (the buffer stays as it is).
    :raises ValueError: if the file does not fit the model's buffer (shapes, dtypes, position).
    """
    path = replay_buffer_path(checkpoint)
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None or not path.is_file():
        return False
    expected = {
        name: getattr(buffer, name) for name in BUFFER_ARRAYS if getattr(buffer, name, None) is not None
    }
    with zipfile.ZipFile(path) as archive:  # bound what np.load may read before reading it
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            allowed = expected[name].nbytes if name in expected else 16
            if (name not in expected and name != "position") or info.file_size > allowed + 4096:
                raise ValueError(f"{path}: unexpected member {info.filename!r} ({info.file_size} bytes)")
    with np.load(path, allow_pickle=False) as saved:
        missing = sorted(set(expected) - set(saved.files))
        if missing:
            raise ValueError(f"{path}: no array {missing[0]!r}")
        for name, target in expected.items():
            if saved[name].shape != target.shape or saved[name].dtype != target.dtype:
                raise ValueError(
                    f"{path}: {name} has shape {saved[name].shape} {saved[name].dtype}, the model's buffer "
                    f"{target.shape} {target.dtype}"
                )
        pos, full = (int(x) for x in saved["position"])
        if not 0 <= pos < buffer.buffer_size or full not in (0, 1):
            raise ValueError(f"{path}: position {pos} outside the buffer of {buffer.buffer_size}")
        for name, target in expected.items():
            target[...] = saved[name]
    buffer.pos, buffer.full = pos, bool(full)
    return True


def _buffer_arrays(buffer: Any) -> dict[str, np.ndarray]:
    """The buffer's arrays among :data:`BUFFER_ARRAYS`, by name."""
    return {name: getattr(buffer, name) for name in BUFFER_ARRAYS if getattr(buffer, name, None) is not None}
