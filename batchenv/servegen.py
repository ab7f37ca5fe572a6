"""Arrivals from ServeGen's production statistics (Alibaba Cloud Model Studio, ServeGen release).

ServeGen (Xiang et al., "ServeGen: Workload Characterization and Generation of Large Language Model
Serving in Production", arXiv:2505.09999, 2025; github.com/alibaba/ServeGen, Apache-2.0) publishes,
for each client of a production model and each 10-minute window of two weeks, the client's request
rate and the distribution fitted to its inter-arrival gaps (Gamma or Weibull, shape and scale), in
one ``chunk-<client>-trace.csv`` per client with rows ``window_start_s,rate_per_s,cv,pattern,
shape,scale`` (a window with no requests has rate 0 and no pattern). It publishes no request
timestamps: arrivals are *generated* from these statistics, which is what this module does, with
ServeGen's own method:

- the aggregate rate of a window is set to a target, and every client keeps its share of it;
- within a window of length L, a client with target rate r draws ``ceil(r L)`` gaps from its fitted
  distribution, scales them to sum to exactly L, and arrives at the window's start plus their
  running sums, the last one (at the window's end) excluded.

So the burstiness of each client within a window (shape of its gaps, up to coefficients of
variation above 10), the mix of clients and the shifts of the rate between windows come from
production; the individual timestamps are draws. ``batchenv/data/ATTRIBUTION.md`` says how the
shipped excerpt was cut and ``docs/results/traces.md`` measures it.

Every problem with a source file is a :class:`~batchenv.config.ConfigError` naming the file, the
line and the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchenv.config_fields import ConfigError

__all__ = ["ServeGenClients", "client_files", "read_servegen_clients", "servegen_arrivals"]

_FIELD = "source"
_PATTERNS = ("Gamma", "Weibull")
_CHUNK = re.compile(r"chunk-(\d+)-trace\.csv")
WINDOW_S = 600.0
"""Length of a ServeGen statistics window (s)."""
MAX_WINDOWS = 100_000
"""Most windows a client's file may hold (ServeGen's hold 2,016: two weeks); a bound on memory."""
MAX_CLIENTS = 10_000
"""Most client files a model folder may hold (ServeGen's m-large: 162); a bound on memory."""


@dataclass(frozen=True)
class ServeGenClients:
    """Per-client statistics of consecutive windows (C clients, T windows).

    :ivar client_ids: the clients' ids (from the file names), shape (C,).
    :ivar rate_per_s: rate of each client in each window (requests/s), shape (C, T).
    :ivar pattern: 0 Gamma, 1 Weibull, -1 none (a window without requests), shape (C, T).
    :ivar shape: shape parameter of the fitted gap distribution, shape (C, T).
    :ivar scale: scale parameter (s), shape (C, T).
    """

    client_ids: np.ndarray
    rate_per_s: np.ndarray
    pattern: np.ndarray
    shape: np.ndarray
    scale: np.ndarray

    @property
    def n_windows(self) -> int:
        """Number of windows T."""
        return int(self.rate_per_s.shape[1])

    def aggregate_rate_per_s(self) -> np.ndarray:
        """Sum of the clients' rates per window (requests/s), shape (T,)."""
        return self.rate_per_s.sum(axis=0)


def _number(path: Path, line: int, name: str, text: str, low: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(_FIELD, f"{path} line {line}: {name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < low:
        raise ConfigError(
            _FIELD, f"{path} line {line}: {name} must be a finite number >= {low}, got {text!r}"
        )
    return value


def _read_client(path: Path) -> list[tuple[float, int, float, float]]:
    """Rows ``(rate, pattern, shape, scale)`` of one client's file, windows in order."""
    rows: list[tuple[float, int, float, float]] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if len(rows) >= MAX_WINDOWS:
                raise ConfigError(_FIELD, f"{path}: more than {MAX_WINDOWS:,} windows")
            cells = line.rstrip("\n").split(",")
            if len(cells) != 6:
                raise ConfigError(_FIELD, f"{path} line {line_number}: expected 6 columns, got {len(cells)}")
            start = _number(path, line_number, "window start", cells[0])
            if start != WINDOW_S * len(rows):
                raise ConfigError(
                    _FIELD,
                    f"{path} line {line_number}: window start must be {WINDOW_S * len(rows):g} s, "
                    f"got {start:g}",
                )
            rate = _number(path, line_number, "rate", cells[1])
            if rate == 0:
                rows.append((0.0, -1, 0.0, 0.0))
                continue
            if cells[3] not in _PATTERNS:
                raise ConfigError(
                    _FIELD, f"{path} line {line_number}: pattern must be one of {_PATTERNS}, got {cells[3]!r}"
                )
            shape = _number(path, line_number, "shape", cells[4])
            scale = _number(path, line_number, "scale", cells[5])
            if shape <= 0 or scale <= 0:
                raise ConfigError(_FIELD, f"{path} line {line_number}: shape and scale must be > 0")
            rows.append((rate, _PATTERNS.index(cells[3]), shape, scale))
    return rows


def client_files(directory: str | Path) -> list[tuple[int, Path]]:
    """The ``chunk-<id>-trace.csv`` files of a ServeGen model folder with their client ids, by id.

    :raises ConfigError: no such folder, no client file, or more than :data:`MAX_CLIENTS`.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(_FIELD, f"ServeGen model folder not found: {folder}")
    files = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHUNK.fullmatch(p.name))),
        key=lambda item: item[0],
    )
    if not files:
        raise ConfigError(_FIELD, f"{folder} holds no chunk-<id>-trace.csv file")
    if len(files) > MAX_CLIENTS:
        raise ConfigError(_FIELD, f"{folder} holds {len(files):,} client files, more than {MAX_CLIENTS:,}")
    return files


def read_servegen_clients(directory: str | Path) -> ServeGenClients:
    """Read every ``chunk-<id>-trace.csv`` of a ServeGen model folder (e.g.
    ``data/language/m-large``), clients in the order of their ids.

    :raises ConfigError: no such folder, no client file, a malformed row, or clients whose
        windows differ in number.
    """
    folder = Path(directory)
    files = client_files(folder)
    tables = [_read_client(path) for _, path in files]
    lengths = {len(rows) for rows in tables}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigError(
            _FIELD, f"{folder}: the clients' files hold different numbers of windows {sorted(lengths)}"
        )
    data = np.asarray(tables, dtype=float)  # (C, T, 4)
    return ServeGenClients(
        client_ids=np.asarray([cid for cid, _ in files], dtype=np.int64),
        rate_per_s=data[:, :, 0],
        pattern=data[:, :, 1].astype(np.int64),
        shape=data[:, :, 2],
        scale=data[:, :, 3],
    )


def servegen_arrivals(
    clients: ServeGenClients,
    first_window: int,
    n_windows: int,
    mean_rate_per_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals of ``n_windows`` windows from ``first_window`` (module docstring), the aggregate
    rate of each window scaled by one factor so that the span's mean rate is ``mean_rate_per_s``
    (the windows keep their ratios).

    :returns: arrival times (s from the span's start, sorted, shape (N,)) and each arrival's
        client id (shape (N,)).
    :raises ValueError: windows outside the data, a rate <= 0, or a span without requests.
    """
    if not (first_window >= 0 and n_windows >= 1 and first_window + n_windows <= clients.n_windows):
        raise ValueError(
            f"windows {first_window}..{first_window + n_windows - 1} are outside 0..{clients.n_windows - 1}"
        )
    if not mean_rate_per_s > 0 or not math.isfinite(mean_rate_per_s):
        raise ValueError(f"mean_rate_per_s must be a finite number > 0, got {mean_rate_per_s!r}")
    span = slice(first_window, first_window + n_windows)
    aggregate = clients.aggregate_rate_per_s()[span]
    if not aggregate.sum() > 0:
        raise ValueError("the span holds no requests")
    factor = mean_rate_per_s / aggregate.mean()
    times: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for j in range(n_windows):
        w = first_window + j
        for c in np.flatnonzero(clients.rate_per_s[:, w] > 0):
            n = math.ceil(clients.rate_per_s[c, w] * factor * WINDOW_S)
            k, theta = clients.shape[c, w], clients.scale[c, w]
            gaps = rng.gamma(k, theta, n) if clients.pattern[c, w] == 0 else theta * rng.weibull(k, n)
            total = gaps.sum()
            if not total > 0:  # every gap underflowed to 0: spread the requests evenly instead
                gaps = np.full(n, 1.0)
                total = float(n)
            offsets = np.cumsum(gaps * (WINDOW_S / total))[:-1]
            arrivals = j * WINDOW_S + offsets[offsets < WINDOW_S]
            times.append(arrivals)
            owners.append(np.full(len(arrivals), clients.client_ids[c]))
    all_times = np.concatenate(times)
    order = np.argsort(all_times, kind="stable")
    return all_times[order], np.concatenate(owners)[order]
