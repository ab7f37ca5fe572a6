"""Reading arrival traces: a CSV column of timestamps -> validated arrival times (s).

Timestamps may be numbers (seconds) or ISO-8601 datetimes (``2023-11-16 18:15:46.6805900``; digits
beyond microseconds are truncated). The times must be
non-decreasing; every problem is reported as a :class:`~batchenv.config.ConfigError` that names
the field, the file, the row and the offending value.

batchenv ships the Azure LLM inference trace 2023 of the conversation service (CC-BY 4.0), whole
as ``package:azure_conv_hour`` and its first 3,001 requests as ``package:azure_conv_excerpt``, the
Mooncake conversation trace of the FAST'25
release (Apache-2.0; columns ``recorded_s`` on a 3 s grid and the evenly spread ``arrival_s``),
``package:mooncake_conv``, the first 5,000 requests of the Azure LMM inference trace 2025 of a
multimodal model (CC-BY 4.0; times to the millisecond), ``package:azure_lmm_excerpt``, and one
hour of arrivals generated from ServeGen's production statistics of Alibaba Cloud Model Studio
(Apache-2.0; not recorded timestamps, :mod:`batchenv.servegen`), ``package:servegen_m_large``; see
``batchenv/data/ATTRIBUTION.md``.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from batchenv.config_fields import ConfigError

__all__ = ["PACKAGE_TRACES", "csv_rows", "load_trace_times_s", "resolve_trace_path", "utf8_line"]

_DATA_DIR = Path(__file__).resolve().parent / "data"
PACKAGE_TRACES = {
    "azure_conv_excerpt": _DATA_DIR / "azure_conv_excerpt.csv",
    "azure_conv_hour": _DATA_DIR / "azure_conv_hour.csv",
    "azure_lmm_excerpt": _DATA_DIR / "azure_lmm_excerpt.csv",
    "mooncake_conv": _DATA_DIR / "mooncake_conv.csv",
    "servegen_m_large": _DATA_DIR / "servegen_m_large.csv",
}
_FIELD = "arrivals.trace_path"


def resolve_trace_path(trace_path: str, base_dir: str | Path | None = None) -> Path:
    """Absolute path of a trace: ``package:NAME``, an absolute path, or relative to ``base_dir``."""
    if trace_path.startswith("package:"):
        name = trace_path.removeprefix("package:")
        if name not in PACKAGE_TRACES:
            raise ConfigError(_FIELD, f"unknown packaged trace {name!r}; known: {sorted(PACKAGE_TRACES)}")
        return PACKAGE_TRACES[name]
    path = Path(trace_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ConfigError(_FIELD, f"trace file not found: {path}")
    return path.resolve()


def _parse_time(text: str) -> float:
    """Seconds from a number or an ISO datetime (naive datetimes are taken as UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


MAX_TRACE_ROWS = 20_000_000
"""Most timestamps a trace file may hold (a bound on memory, about 8 bytes each)."""


def csv_rows(handle: TextIO, path: str | Path, field: str) -> Iterator[list[str]]:
    """The rows of the CSV file open (as UTF-8 text) as ``handle``, header first. A row the csv
    module cannot read (a field over its size limit, ``csv.field_size_limit()``, 128 KiB by
    default) or a byte that is not UTF-8 is a ConfigError naming ``field``, the file and the line."""
    reader = csv.reader(handle)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(
                field, f"{path} line {reader.line_num}: not a readable CSV row ({exc})"
            ) from None
        except UnicodeDecodeError:
            raise _not_utf8(path, field) from None
        yield row


def utf8_line(raw: bytes, path: str | Path, line_number: int, field: str) -> str:
    """Line ``line_number`` of a file, read as bytes, decoded; ConfigError naming ``field``, the
    file, the line and the byte otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            field, f"{path} line {line_number}: not UTF-8 text (byte {exc.start + 1})"
        ) from None


def _not_utf8(path: str | Path, field: str) -> ConfigError:
    """The error for a file that is not UTF-8 text, naming the line and byte of the first byte
    that is not (text is decoded by blocks, so the decoding error does not tell; only read on
    that error)."""
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                utf8_line(raw, path, line_number, field)
            except ConfigError as exc:
                return exc
    return ConfigError(field, f"{path} is not UTF-8 text")


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, column: str, mtime_ns: int) -> np.ndarray:
    return _read_times(path, column)


def _read_times(path: str, column: str) -> np.ndarray:
    """The timestamps (s) of ``column``, checked, shifted to start at 0 (an Excel-style UTF-8
    byte-order mark before the header is ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv_rows(handle, path, _FIELD)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(_FIELD, f"{path} is empty") from None
        header = [h.strip() for h in header]
        if column not in header:
            raise ConfigError("arrivals.trace_column", f"column {column!r} not in {path}; columns: {header}")
        col = header.index(column)
        times: list[float] = []
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if col >= len(row):
                raise ConfigError(_FIELD, f"{path} row {row_number}: missing column {column!r}")
            cell = row[col]
            try:
                value = _parse_time(cell)
            except (ValueError, OverflowError):
                raise ConfigError(
                    _FIELD,
                    f"{path} row {row_number}: timestamp {cell!r} is neither a number of seconds "
                    "nor an ISO datetime",
                ) from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(_FIELD, f"{path} row {row_number}: timestamp {cell!r} is not finite")
            if times and value < times[-1]:
                raise ConfigError(
                    _FIELD,
                    f"{path} row {row_number}: timestamps must be sorted (non-decreasing); "
                    f"{cell!r} comes before the previous row's time",
                )
            times.append(value)
            if len(times) > MAX_TRACE_ROWS:
                raise ConfigError(_FIELD, f"{path}: more than {MAX_TRACE_ROWS} timestamps")
    if len(times) < 2:
        raise ConfigError(_FIELD, f"{path} needs at least 2 timestamps, found {len(times)}")
    if not math.isfinite(times[-1] - times[0]):  # sorted: every gap is finite when the span is
        raise ConfigError(
            _FIELD,
            f"{path}: the timestamps span from {times[0]!r} to {times[-1]!r} s, more than "
            f"{sys.float_info.max:.4g} s; the trace's duration must be a finite number of seconds",
        )
    arr = np.asarray(times, dtype=np.float64)
    arr -= arr[0]
    if arr[-1] <= 0:
        raise ConfigError(_FIELD, f"{path}: all timestamps are equal; the trace has no duration")
    arr.setflags(write=False)
    return arr


def load_trace_times_s(
    trace_path: str, column: str = "TIMESTAMP", base_dir: str | Path | None = None
) -> np.ndarray:
    """Arrival times (s, float64, read-only) of a trace, shifted so the first arrival is at 0."""
    path = resolve_trace_path(trace_path, base_dir)
    return _load_cached(str(path), column, path.stat().st_mtime_ns)
