"""Saving and restoring an off-policy agent's replay buffer without pickle.

SB3's ``save_replay_buffer`` pickles the whole buffer object; loading such a file can run code.
Here the buffer's arrays go into a NumPy ``.npz`` (read back with ``allow_pickle=False``), next to
the checkpoint: ``final_model.zip`` -> ``final_model.replay.npz``. A resumed DQN run then starts
from the transitions (and, with the semi-Markov buffer, their discounts) the interrupted run had
collected, instead of an empty buffer. Files are written atomically and checked on load, whole,
before anything is copied into the buffer: the arrays must have exactly the shapes and dtypes of
the model's own buffer (read from each array's header before its data), floating-point values
must be finite and actions inside the model's action space; any other file is a ValueError naming
the file and the array.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from batchenv.fileio import write_atomic

__all__ = ["BUFFER_ARRAYS", "load_replay_buffer", "replay_buffer_path", "save_replay_buffer"]

BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "discounts")
"""Arrays of an SB3 ReplayBuffer (``discounts``: the semi-Markov buffer's) that are saved."""

_HEADER_BYTES = 4096
"""Room for an ``.npy`` member's header beyond its array's bytes."""

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
"""Header readers of the ``.npy`` format versions ``np.savez`` writes."""


def replay_buffer_path(checkpoint: str | Path) -> Path:
    """Where the replay buffer of ``checkpoint`` (a ``.zip``) is kept."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.replay.npz")


def save_replay_buffer(model: Any, checkpoint: str | Path) -> Path | None:
    """Save ``model.replay_buffer`` next to ``checkpoint``; None if the model has no replay buffer."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return None
    position = np.array([buffer.pos, int(buffer.full)], dtype=np.int64)
    arrays: dict[str, Any] = {**_buffer_arrays(buffer), "position": position}
    data = io.BytesIO()
    np.savez(data, **arrays)
    path = replay_buffer_path(checkpoint)
    write_atomic(path, data.getvalue())
    return path


def load_replay_buffer(model: Any, checkpoint: str | Path) -> bool:
    """Fill ``model.replay_buffer`` from the file saved next to ``checkpoint``.

    Nothing is copied into the buffer unless the whole file passes: every array of the model's
    buffer and ``position`` present with exactly its shape and dtype (checked in each array's
    header, before its data is read), floating-point arrays finite, actions inside the model's
    discrete action space and the position inside the buffer.

    :returns: False if there is no such file (the buffer stays as it is).
    :raises ValueError: naming the file and the array, if the file is not a readable ``.npz`` or
        does not fit the model's buffer.
    """
    path = replay_buffer_path(checkpoint)
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None or not path.is_file():
        return False
    expected = {**_buffer_arrays(buffer), "position": np.zeros(2, dtype=np.int64)}
    saved = _read_arrays(path, expected)
    _check_values(path, saved, getattr(model, "action_space", None))
    pos, full = (int(x) for x in saved.pop("position"))
    if not 0 <= pos < buffer.buffer_size or full not in (0, 1):
        raise ValueError(
            f"{path}: array 'position' ({pos}, {full}) is outside the buffer of {buffer.buffer_size}"
        )
    for name, target in _buffer_arrays(buffer).items():
        target[...] = saved[name]
    buffer.pos, buffer.full = pos, bool(full)
    return True


def _read_arrays(path: Path, expected: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path``, each with the name, shape and dtype of its
    counterpart in ``expected``; no other member is allowed, none is unpickled.

    :raises ValueError: naming the file (and the array) for a file that is not a zip archive, a
        member too large, unknown, missing or damaged, or an array of another shape or dtype.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name not in expected or info.file_size > expected[name].nbytes + _HEADER_BYTES:
                    raise ValueError(f"{path}: unexpected member {info.filename!r} ({info.file_size} bytes)")
            missing = sorted(set(expected) - set(members))
            if missing:
                raise ValueError(f"{path}: no array {missing[0]!r}")
            return {
                name: _read_array(path, archive, members[name], target) for name, target in expected.items()
            }
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable .npz archive ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None


def _read_array(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: np.ndarray
) -> np.ndarray:
    """One ``.npy`` member, read only if its header gives ``target``'s shape and dtype."""
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            if version not in _HEADER_READERS:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = _HEADER_READERS[version](handle)
        if shape != target.shape or dtype != target.dtype:
            raise ValueError(f"shape {shape} {dtype}, the model's buffer {target.shape} {target.dtype}")
        with archive.open(info) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: array {name!r}: {str(exc)[:200]}") from None


def _check_values(path: Path, arrays: dict[str, np.ndarray], action_space: Any) -> None:
    """Every floating-point array finite, and the actions inside a discrete ``action_space``.

    :raises ValueError: naming the file and the first array that fails.
    """
    for name, values in arrays.items():
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise ValueError(f"{path}: array {name!r} holds values that are not finite (NaN or infinite)")
    if isinstance(action_space, spaces.Discrete) and "actions" in arrays:
        low, high = int(action_space.start), int(action_space.start + action_space.n)
        actions = arrays["actions"]
        outside = actions[(actions < low) | (actions >= high)]
        if outside.size:
            raise ValueError(
                f"{path}: array 'actions' holds {outside.size} actions outside the model's [{low}, {high}) "
                f"(e.g. {outside[0]})"
            )


def _buffer_arrays(buffer: Any) -> dict[str, np.ndarray]:
    """The buffer's arrays among :data:`BUFFER_ARRAYS`, by name."""
    return {name: getattr(buffer, name) for name in BUFFER_ARRAYS if getattr(buffer, name, None) is not None}
