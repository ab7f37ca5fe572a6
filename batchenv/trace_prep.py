"""Preparing a public request trace for replay: read the source file, spread the timestamps that
were recorded at a coarse granularity, and write the compact CSV that batchenv ships.

Some public traces record arrival times on a coarse grid (the Mooncake traces on a 3 s grid, so
that about ten requests share each timestamp; FineServe's replay traces to the second, written in
microseconds with a jitter of a few tenths of a second around each whole second, which
:func:`snap_to_grid` removes). Replaying such ties literally turns every grid tick into one batch
arrival, a burstiness that the recording created; spreading them evenly over the tick makes the
traffic smoother than any real one. batchenv ships the recorded times and a
random spread that is fixed once and for all (seeded, so the shipped file is deterministic): each
request recorded at time t gets an independent uniform time in its recording interval
[t, t + g), where g is the time to the next recorded timestamp, at most the grid, and the
requests keep their order. This is what a Poisson process with the recorded counts per interval
would give; the counts per interval, and so the trace's burstiness at the grid's time scale and
above, are kept exactly. ``docs/results/traces.md`` measures all three treatments.

Every problem with a source file is a :class:`~batchenv.config.ConfigError` naming the file, the
line and the value.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batchenv.config_fields import ConfigError, short_repr
from batchenv.traces import MAX_TRACE_ROWS, csv_rows, utf8_line

__all__ = [
    "TraceRecords",
    "excerpt_csv",
    "read_azure_multimodal_csv",
    "read_fineserve_csv",
    "read_mooncake_jsonl",
    "recording_granularity_s",
    "snap_to_grid",
    "spread_ties_evenly",
    "spread_ties_uniformly",
]

_FIELD = "source"
MAX_COUNT = 2**53
"""Largest count or time (ms) read from a source file: every integer up to it is exact as a float64
(and fits an int64)."""


@dataclass(frozen=True)
class TraceRecords:
    """Requests of a trace in arrival order.

    :ivar times_s: arrival times as recorded (s, float64, shape (n,), non-decreasing).
    :ivar input_tokens: prompt tokens per request (int64, shape (n,)).
    :ivar output_tokens: generated tokens per request (int64, shape (n,)).
    """

    times_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def _checked_count(path: Path, line: int, key: str, value: object, shown: str) -> int:
    """``value`` if it is an integer in [0, :data:`MAX_COUNT`]; ConfigError naming the line, the
    key and the value as ``shown`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(_FIELD, f"{path} line {line}: {key!r} must be an integer >= 0, got {shown}")
    if value > MAX_COUNT:
        raise ConfigError(
            _FIELD, f"{path} line {line}: {key!r} must be an integer >= 0 and <= {MAX_COUNT}, got {shown}"
        )
    return value


def _source(path: str | Path) -> Path:
    """``path`` as a Path; ConfigError if it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_FIELD, f"trace file not found: {path}")
    return path


@dataclass
class _Requests:
    """The requests a reader has taken so far, in file order: times in the source's unit, token
    counts. :meth:`add` checks the order and the row limit, :meth:`records` the count."""

    path: Path
    what: str = "requests"
    """How errors name the requests (e.g. "timestamped requests")."""
    times: list[float] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    last_shown: str = ""
    """The last time taken, as the file writes it."""

    def add(self, line: int, time: float, shown: str, n_in: int, n_out: int) -> None:
        """One request, recorded at ``time`` (written ``shown`` in the file, at ``line``)."""
        if self.times and time < self.times[-1]:
            raise ConfigError(
                _FIELD,
                f"{self.path} line {line}: timestamps must be non-decreasing "
                f"({shown} after {self.last_shown})",
            )
        if len(self.times) == MAX_TRACE_ROWS:
            raise ConfigError(_FIELD, f"{self.path}: more than {MAX_TRACE_ROWS} {self.what}")
        self.times.append(time)
        self.last_shown = shown
        self.inputs.append(n_in)
        self.outputs.append(n_out)

    def records(self, units_per_s: float, from_first: bool = False) -> TraceRecords:
        """The requests, at least 2 of them, times in seconds (the source's times divided by
        ``units_per_s``, e.g. 1000 for ms); ``from_first``: relative to the first request (the
        difference taken in the source's unit, exact for integers)."""
        if len(self.times) < 2:
            raise ConfigError(_FIELD, f"{self.path} needs at least 2 {self.what}, found {len(self.times)}")
        times = np.asarray(self.times)
        if from_first:
            times = times - times[0]
        return TraceRecords(
            times_s=times.astype(np.float64) / units_per_s,
            input_tokens=np.asarray(self.inputs, dtype=np.int64),
            output_tokens=np.asarray(self.outputs, dtype=np.int64),
        )


def _count(path: Path, line: int, record: dict, key: str) -> int:
    """``record[key]``, a count (an integer in [0, :data:`MAX_COUNT`])."""
    value = record.get(key)
    return _checked_count(path, line, key, value, short_repr(value))


def _json_object(path: Path, line_number: int, raw: bytes) -> dict | None:
    """One line of a JSON-lines file as an object (None for a blank line); ConfigError naming the
    line when it is not UTF-8, not JSON (also a number with more digits than Python converts, or
    nesting too deep to parse) or not an object."""
    line = utf8_line(raw, path, line_number, _FIELD)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(_FIELD, f"{path} line {line_number}: not JSON ({exc.msg})") from None
    except ValueError:  # an integer beyond sys.get_int_max_str_digits()
        raise ConfigError(
            _FIELD,
            f"{path} line {line_number}: a number of more than {sys.get_int_max_str_digits()} digits",
        ) from None
    except RecursionError:
        raise ConfigError(_FIELD, f"{path} line {line_number}: not JSON (nested too deep)") from None
    if not isinstance(record, dict):
        raise ConfigError(_FIELD, f"{path} line {line_number}: must be a JSON object")
    return record


def read_mooncake_jsonl(path: str | Path) -> TraceRecords:
    """Read a Mooncake trace (JSON lines with ``timestamp`` in ms, ``input_length``,
    ``output_length``; other keys such as ``hash_ids`` are ignored).

    :raises ConfigError: on a missing file, a line that is not UTF-8 or not a JSON object with
        these keys as integers in [0, :data:`MAX_COUNT`], timestamps out of order, fewer than 2
        or more than :data:`~batchenv.traces.MAX_TRACE_ROWS` requests.
    """
    path = _source(path)
    requests = _Requests(path)
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            record = _json_object(path, line_number, raw)
            if record is None:
                continue
            stamp = _count(path, line_number, record, "timestamp")
            n_in = _count(path, line_number, record, "input_length")
            requests.add(
                line_number, stamp, str(stamp), n_in, _count(path, line_number, record, "output_length")
            )
    return requests.records(units_per_s=1000.0)


FINESERVE_COLUMNS = ("input_length", "output_length", "timestamp")
"""Columns of a FineServe replay trace that batchenv reads (``timestamp`` in microseconds)."""


def _count_cell(path: Path, line: int, key: str, cell: str) -> int:
    """A CSV cell holding a count (an integer in [0, :data:`MAX_COUNT`])."""
    try:
        value: int | None = int(cell)
    except ValueError:  # also more digits than Python converts
        value = None
    return _checked_count(path, line, key, value, short_repr(cell))


def read_fineserve_csv(path: str | Path) -> tuple[TraceRecords, int]:
    """Read a FineServe replay trace (CSV with ``input_length``, ``output_length`` and
    ``timestamp`` in microseconds since the first request; other columns are ignored).

    Some released files end with rows that have no timestamp; those rows, which must all come
    after the last timestamped one, are dropped and counted.

    :returns: the timestamped requests (times in s) and the number of trailing rows dropped.
    :raises ConfigError: on a missing file or column, a count that is not an integer >= 0, a
        timestamp that is not a finite number >= 0, timestamps out of order, a timestamped row
        after an untimed one, or fewer than 2 timestamped requests.
    """
    path = _source(path)
    requests = _Requests(path, what="timestamped requests")
    untimed = 0
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv_rows(handle, path, _FIELD)
        header = [cell.strip() for cell in next(reader, [])]
        missing = [c for c in FINESERVE_COLUMNS if c not in header]
        if missing:
            raise ConfigError(_FIELD, f"{path}: column {missing[0]!r} missing; columns: {header}")
        i_in, i_out, i_t = (header.index(c) for c in FINESERVE_COLUMNS)
        width = max(i_in, i_out, i_t) + 1
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise ConfigError(_FIELD, f"{path} line {line}: {len(row)} fields, expected {len(header)}")
            stamp = row[i_t].strip()
            if not stamp:
                untimed += 1
                continue
            if untimed:
                raise ConfigError(_FIELD, f"{path} line {line}: a timestamp after {untimed} rows without one")
            try:
                value = float(stamp)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    _FIELD,
                    f"{path} line {line}: 'timestamp' must be a finite number >= 0 (us), got {stamp!r}",
                )
            n_in = _count_cell(path, line, "input_length", row[i_in].strip())
            requests.add(
                line, value, stamp, n_in, _count_cell(path, line, "output_length", row[i_out].strip())
            )
    return requests.records(units_per_s=1e6), untimed


def recording_granularity_s(times_s: np.ndarray) -> float:
    """The grid a trace was recorded on (s): the median gap between its distinct timestamps."""
    distinct = np.unique(np.asarray(times_s, dtype=float))
    if len(distinct) < 2:
        raise ValueError("a trace needs at least 2 distinct timestamps")
    return float(np.median(np.diff(distinct)))


def _tie_groups(times_s: np.ndarray, granularity_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each request: its rank among the requests recorded at its time, their number, and
    the length of its recording interval (s): the time to the next recorded time, at most
    ``granularity_s``."""
    if not granularity_s > 0 or not math.isfinite(granularity_s):
        raise ValueError(f"granularity_s must be a finite number > 0, got {granularity_s!r}")
    times = np.asarray(times_s, dtype=float)
    if np.any(np.diff(times) < 0):
        raise ValueError("times_s must be sorted (non-decreasing)")
    distinct, first, counts = np.unique(times, return_index=True, return_counts=True)
    interval = np.minimum(np.append(np.diff(distinct), granularity_s), granularity_s)
    ranks = np.arange(len(times)) - np.repeat(first, counts)
    return ranks, np.repeat(counts, counts), np.repeat(interval, counts)


def snap_to_grid(times_s: np.ndarray, grid_s: float) -> tuple[np.ndarray, float]:
    """Times recorded on a grid but published with a jitter, put back on it: each time is moved
    to the nearest multiple of ``grid_s`` (order kept, as rounding is monotone).

    :param times_s: sorted published times (s), shape (n,).
    :param grid_s: the recording grid (s), > 0.
    :returns: the snapped times (s, shape (n,)) and the largest move (s); a move near
        ``grid_s / 2`` means the times are not bunched around the grid.
    """
    if not grid_s > 0 or not math.isfinite(grid_s):
        raise ValueError(f"grid_s must be a finite number > 0, got {grid_s!r}")
    times = np.asarray(times_s, dtype=float)
    snapped = np.round(times / grid_s) * grid_s
    return snapped, float(np.max(np.abs(times - snapped)))


def spread_ties_evenly(times_s: np.ndarray, granularity_s: float) -> np.ndarray:
    """Even spread: the n requests recorded at time t, with recording interval g (see
    :func:`spread_ties_uniformly`), arrive at t + (i + 1/2) g / n, i = 0..n-1 (s, sorted).

    :param times_s: sorted recorded times (s), shape (n,).
    :param granularity_s: the recording grid (s), > 0.
    """
    times = np.asarray(times_s, dtype=float)
    ranks, sizes, interval = _tie_groups(times, granularity_s)
    return times + (ranks + 0.5) * interval / sizes


def spread_ties_uniformly(times_s: np.ndarray, granularity_s: float, rng: np.random.Generator) -> np.ndarray:
    """Random spread: each request recorded at time t arrives at an independent uniform time in
    its recording interval [t, t + g), g = the time to the next recorded time, at most
    ``granularity_s``; the requests recorded at one time keep their order (s, sorted).

    :param times_s: sorted recorded times (s), shape (n,).
    :param granularity_s: the recording grid (s), > 0.
    :param rng: the only source of randomness.
    """
    times = np.asarray(times_s, dtype=float)
    ranks, _, interval = _tie_groups(times, granularity_s)
    offsets = rng.uniform(0.0, 1.0, len(times))
    group = np.cumsum(ranks == 0)
    offsets = offsets[np.lexsort((offsets, group))]  # sorted within each group, groups in order
    return times + offsets * interval


def excerpt_csv(records: TraceRecords, arrival_s: np.ndarray) -> str:
    """The shipped CSV: ``recorded_s,arrival_s,input_tokens,output_tokens``, times relative to
    the first recorded time (s), the recorded ones to the millisecond of the sources, the replayed
    ones to 0.1 ms.

    :param arrival_s: the replayed arrival times (s), shape (n,), e.g. the even spread.
    """
    arrival = np.asarray(arrival_s, dtype=float)
    if arrival.shape != records.times_s.shape:
        raise ValueError(f"arrival_s has shape {arrival.shape}, the records {records.times_s.shape}")
    origin = records.times_s[0]
    out = io.StringIO()
    out.write("recorded_s,arrival_s,input_tokens,output_tokens\n")
    for recorded, replayed, n_in, n_out in zip(
        records.times_s - origin, arrival - origin, records.input_tokens, records.output_tokens, strict=True
    ):
        out.write(f"{recorded:.3f},{replayed:.4f},{n_in},{n_out}\n")
    return out.getvalue()


AZURE_MULTIMODAL_SCHEMAS = {
    ("TIMESTAMP", "ContextTokens", "GeneratedTokens"): "iso",
    ("arrival_time", "input_tokens", "output_tokens"): "seconds",
}
"""The two layouts :func:`read_azure_multimodal_csv` reads: the released file's (an ISO-8601
``TIMESTAMP`` per request) and that of a copy of its first rows with the times in seconds from the
first request (``arrival_time``); other columns are ignored."""


def _milliseconds(path: Path, line: int, column: str, cell: str, kind: str) -> int:
    """A time cell to whole milliseconds: since the epoch (``iso``) or as written (``seconds``)."""
    try:
        if kind == "iso":
            stamp = dt.datetime.fromisoformat(cell)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            return (stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
        value = float(cell) * 1000
        if math.isfinite(value) and 0 <= value <= MAX_COUNT:
            return round(value)
    except ValueError:
        pass
    what = "an ISO-8601 time" if kind == "iso" else f"a number of seconds in [0, {MAX_COUNT / 1000:g}]"
    raise ConfigError(_FIELD, f"{path} line {line}: {column!r} must be {what}, got {cell!r}")


def read_azure_multimodal_csv(path: str | Path, max_requests: int) -> TraceRecords:
    """Read the first ``max_requests`` requests of the Azure LMM inference trace 2025 (a
    multimodal model's requests; either layout of :data:`AZURE_MULTIMODAL_SCHEMAS`). The release
    records times to the millisecond; they are kept to the millisecond, relative to the first
    request (ties, about 2% of the gaps, stay ties).

    :raises ConfigError: on a missing file or column, a time or count that does not parse, times
        out of order, or fewer than ``max_requests`` requests.
    """
    path = _source(path)
    requests = _Requests(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv_rows(handle, path, _FIELD)
        header = [cell.strip() for cell in next(reader, [])]
        layout = next((cols for cols in AZURE_MULTIMODAL_SCHEMAS if set(cols) <= set(header)), None)
        if layout is None:
            known = " or ".join(", ".join(cols) for cols in AZURE_MULTIMODAL_SCHEMAS)
            raise ConfigError(_FIELD, f"{path}: expected the columns {known}; columns: {header}")
        kind = AZURE_MULTIMODAL_SCHEMAS[layout]
        i_t, i_in, i_out = (header.index(c) for c in layout)
        width = max(i_t, i_in, i_out) + 1
        for line, row in enumerate(reader, start=2):
            if len(requests.times) == max_requests:
                break
            if not row:
                continue
            if len(row) < width:
                raise ConfigError(_FIELD, f"{path} line {line}: {len(row)} fields, expected {len(header)}")
            stamp = row[i_t].strip()
            n_in = _count_cell(path, line, layout[1], row[i_in].strip())
            requests.add(
                line,
                _milliseconds(path, line, layout[0], stamp, kind),
                stamp,
                n_in,
                _count_cell(path, line, layout[2], row[i_out].strip()),
            )
    if len(requests.times) < max_requests:
        raise ConfigError(_FIELD, f"{path} has {len(requests.times)} requests, fewer than {max_requests}")
    return requests.records(units_per_s=1000.0, from_first=True)
