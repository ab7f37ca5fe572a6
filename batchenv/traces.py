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
from pathlib import Path

import numpy as np

from batchenv.config import ConfigError

__all__ = ["PACKAGE_TRACES", "load_trace_times_s", "resolve_trace_path"]

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


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, column: str, mtime_ns: int) -> np.ndarray:
    try:
        return _read_times(path, column)
    except UnicodeDecodeError as exc:
        raise ConfigError(_FIELD, f"{path} is not UTF-8 text (byte {exc.start})") from None


def _read_times(path: str, column: str) -> np.ndarray:
    """The timestamps (s) of ``column``, checked, shifted to start at 0 (an Excel-style UTF-8
    byte-order mark before the header is ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
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
