"""Checkers of configuration fields, and the error they raise.

Every section of a :class:`~batchenv.config.SystemConfig` checks its fields with these helpers, so
that a bad value raises one :class:`ConfigError` whose message names the field (as a dotted path
such as ``arrivals.rate_per_s``) and the allowed range. The helpers with a leading underscore
serve batchenv's configuration modules (:mod:`batchenv.config` and the sections it re-exports).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_FLOAT",
    "MAX_NAME_LENGTH",
    "ConfigError",
    "check_name",
    "short_repr",
]

MAX_NAME_LENGTH = 200
"""Longest scenario name (characters): names become file names, with a suffix."""
MAX_FLOAT = sys.float_info.max


_MAX_MESSAGE = 400


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never print a whole (possibly
    hostile, huge) value; an integer too long to print is described by its number of digits. A
    tuple shows as the list it was in the YAML file (the configs keep lists as tuples)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"an integer of about {math.floor(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(_as_written(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_written(value: object, depth: int = 0) -> object:
    """``value`` with its tuples (nested ones too, a few levels deep) turned back into lists."""
    if isinstance(value, tuple) and depth < 8:
        return [_as_written(item, depth + 1) for item in value[:100]]
    return value


class ConfigError(ValueError):
    """A configuration value is invalid. ``field`` is the dotted path of the offending field, the
    start of the message (``"arrivals.rate_per_s: must be > 0, got -1"``); ``""`` for an error
    of a whole file (not found, not YAML, not a mapping), whose message names the file itself.
    ``message`` is the text after the field."""

    def __init__(self, field_path: str, message: str) -> None:
        if len(message) > _MAX_MESSAGE:  # never print a whole (possibly huge) value
            message = message[: _MAX_MESSAGE - 3] + "..."
        super().__init__(f"{field_path}: {message}" if field_path else message)
        self.field = field_path
        self.message = message  # without the field


# --------------------------------------------------------------------------------------------
# Small validation helpers: each raises ConfigError naming the field.
# --------------------------------------------------------------------------------------------


def _number(path: str, value: Any, allowed: str = "") -> float:
    """``value`` as a finite float; ConfigError naming ``path`` and the range ``allowed`` (e.g.
    ``"> 0"``) otherwise, also for an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be a number, got {short_repr(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        what = f"a finite number {allowed}".rstrip()
        raise ConfigError(path, f"must be {what} (at most {MAX_FLOAT:.4g} in size), got {short_repr(value)}")
    return number


def _positive(path: str, value: Any) -> float:
    value = _number(path, value, "> 0")
    if value <= 0:
        raise ConfigError(path, f"must be > 0, got {short_repr(value)}")
    return value


def _non_negative(path: str, value: Any) -> float:
    value = _number(path, value, ">= 0")
    if value < 0:
        raise ConfigError(path, f"must be >= 0, got {short_repr(value)}")
    return value


def check_name(path: str, value: Any) -> str:
    r"""A scenario name, which names files (``agents/tuned/<name>.yaml``, result folders): a
    non-empty string of at most :data:`MAX_NAME_LENGTH` characters with no path separator
    (``/``, ``\``) nor NUL, and not ``.`` or ``..``; ConfigError naming ``path`` otherwise."""
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"must be a non-empty string, got {short_repr(value)}")
    if len(value) > MAX_NAME_LENGTH or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ConfigError(
            path,
            f"must be usable as a file name: 1 to {MAX_NAME_LENGTH} characters, no '/', '\\' or NUL, "
            f"not '.' or '..'; got {short_repr(value)}",
        )
    return value


def _integer(path: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(path, f"must be an integer, got {short_repr(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(path, f"must be an integer >= {minimum}{upper}, got {short_repr(value)}")
    return value


def _number_list(path: str, values: Any, *, min_len: int = 1) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(path, f"must be a list of numbers, got {short_repr(values)}")
    if len(values) < min_len:
        raise ConfigError(path, f"must have at least {min_len} entries, got {len(values)}")
    return tuple(_number(f"{path}[{i}]", v) for i, v in enumerate(values))


def _optional_range(
    path: str, value: Any, unit: str, *, positive: bool = False
) -> tuple[float, float] | None:
    """``[low, high]`` as a pair with ``0 <= low <= high`` (``0 < low`` if ``positive``), or None."""
    if value is None:
        return None
    bounds = _number_list(path, value, min_len=2)
    lowest_ok = bounds[0] > 0 if positive else bounds[0] >= 0
    if len(bounds) != 2 or not lowest_ok or bounds[0] > bounds[1]:
        relation = "0 < low <= high" if positive else "0 <= low <= high"
        raise ConfigError(path, f"must be [low, high] with {relation} ({unit}), got {list(bounds)}")
    return (bounds[0], bounds[1])


def _build(cls: type, value: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys with a clear error."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {short_repr(value)}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}", f"unknown field; allowed: {sorted(allowed)}")
    kwargs = {}
    for key, item in value.items():
        if isinstance(item, list):
            item = tuple(tuple(x) if isinstance(x, list) else x for x in item)
        kwargs[key] = item
    return cls(**kwargs)
