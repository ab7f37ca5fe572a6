"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then
an atomic rename over the target (``os.replace``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_safe", "write_atomic", "write_files_atomic", "write_json_atomic"]


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; creates the parent folder."""
    path = Path(path)
    write_files_atomic({path: data})
    return path


def write_files_atomic(files: dict[Path, str | bytes]) -> None:
    """Write every ``path: data`` (text or bytes) so that a failure leaves none of them
    half-written: all go to temporary files in their folders first (created with their parents;
    a failure removes the temporary files), then each is renamed into place."""
    temporary = {Path(path): Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp") for path in files}
    try:
        for path, data in files.items():
            tmp = temporary[Path(path)]
            tmp.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                tmp.write_text(data)
            else:
                tmp.write_bytes(data)
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically."""
    return write_atomic(path, json.dumps(data, indent=2) + "\n")


def json_safe(value: Any) -> Any:
    """``value`` made strict JSON: NaN and infinities become None, numpy scalars Python numbers,
    tuples lists and mapping keys strings (nested containers included)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
