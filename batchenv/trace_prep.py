"""Preparing a public request trace for replay: read the source file, spread the timestamps that
were recorded at a coarse granularity, and write the compact CSV that batchenv ships.

Some public traces record arrival times on a coarse grid (the Mooncake traces on a 3 s grid, so
that about ten requests share each timestamp). Replaying such ties literally turns every grid
tick into one batch arrival, a burstiness that the recording created; spreading them evenly over
the tick makes the traffic smoother than any real one. batchenv ships the recorded times and a
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

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchenv.config import ConfigError

__all__ = [
    "TraceRecords",
    "excerpt_csv",
    "read_mooncake_jsonl",
    "recording_granularity_s",
    "spread_ties_evenly",
    "spread_ties_uniformly",
]

_FIELD = "source"


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


def _count(path: Path, line: int, record: dict, key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(_FIELD, f"{path} line {line}: {key!r} must be an integer >= 0, got {value!r}")
    return value


def read_mooncake_jsonl(path: str | Path) -> TraceRecords:
    """Read a Mooncake trace (JSON lines with ``timestamp`` in ms, ``input_length``,
    ``output_length``; other keys such as ``hash_ids`` are ignored).

    :raises ConfigError: on a missing file, a line that is not a JSON object with these keys as
        integers >= 0, timestamps out of order, or fewer than 2 requests.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_FIELD, f"trace file not found: {path}")
    times_ms: list[int] = []
    inputs: list[int] = []
    outputs: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(_FIELD, f"{path} line {line_number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ConfigError(_FIELD, f"{path} line {line_number}: must be a JSON object")
            stamp = _count(path, line_number, record, "timestamp")
            if times_ms and stamp < times_ms[-1]:
                raise ConfigError(
                    _FIELD,
                    f"{path} line {line_number}: timestamps must be non-decreasing "
                    f"({stamp} after {times_ms[-1]})",
                )
            times_ms.append(stamp)
            inputs.append(_count(path, line_number, record, "input_length"))
            outputs.append(_count(path, line_number, record, "output_length"))
    if len(times_ms) < 2:
        raise ConfigError(_FIELD, f"{path} needs at least 2 requests, found {len(times_ms)}")
    return TraceRecords(
        times_s=np.asarray(times_ms, dtype=np.float64) / 1000.0,
        input_tokens=np.asarray(inputs, dtype=np.int64),
        output_tokens=np.asarray(outputs, dtype=np.int64),
    )


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
