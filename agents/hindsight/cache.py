"""A cache of hindsight bounds on disk: an episode's bound depends on its arrivals and its system
only, never on the agents, so a bound computed once is read back by every later evaluation of
the same episode (docs/hindsight.md, "Complexity and measured speed").

    key = bound_key(config, seed)           # what the bound of (config, seed) depends on, hashed
    cache = BoundCache("results/.hindsight_cache")
    entry = cache.get(key)                  # a CachedBound, or None (absent, or unreadable: a warning)
    cache.put(key, CachedBound(...))        # one small JSON file per key, written atomically

**The key** (:func:`bound_key`) is the SHA-256 of a canonical JSON document holding everything
the value depends on: :data:`~agents.hindsight.bound.BOUND_VERSION`, a hash of the sources of
``agents/hindsight/`` (every module but this one: an edit there starts afresh by itself), the
numpy version, the full config (``SystemConfig.to_dict``: horizon, workers and the rest), the
content hash of every trace file it replays (not only its path), the seed, the horizon, the
objective the episode draws (:func:`~agents.hindsight.episode.episode_objective`), the bound's
options (beam, projection) and constants (exactness tolerance, grids), and a hash of the
problem itself (:class:`~agents.hindsight.problem.HindsightProblem`: the arrivals, the service
table and the weights, exactly as the programme reads them), so a change of the arrival or
timing code is a new key even where the config is the same.

**The value** is what an evaluation uses: the bound and the cost of the best schedule found,
per request, whether they meet, the number of requests and the seconds the bound took. Files may
come from anywhere, so they are read with care (:meth:`BoundCache.get`): at most
:data:`MAX_ENTRY_BYTES`, a regular file, strict JSON (no NaN), exactly the expected fields with
their types, the key and request count of the episode, and costs in range (0 <= bound <= best
quality + w_drop, which dropping every request costs; the schedule found at or above it and at
most :data:`MAX_COST_PER_REQUEST`; ``compute_s`` at most :data:`MAX_COMPUTE_S`). Any
other file is ignored with a warning (:attr:`BoundCache.warnings`) and the bound is computed
again; nothing here raises on a bad file. Writes are atomic (a temporary file renamed over the
target): two processes storing the same key leave one whole file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.hindsight.bound import BOUND_VERSION, EXACT_RTOL
from agents.hindsight.episode import episode_arrivals, episode_objective
from agents.hindsight.frontier import GRID_S
from agents.hindsight.pairs import PAIR_GRID_S
from agents.hindsight.problem import HindsightProblem
from agents.hindsight.workers import DEFAULT_BEAM
from batchenv.arrival_config import ArrivalConfig
from batchenv.arrivals import ArrivalProcess, make_arrival_process
from batchenv.config import SystemConfig
from batchenv.fileio import write_atomic
from batchenv.traces import resolve_trace_path

__all__ = [
    "ENTRY_FORMAT",
    "MAX_COMPUTE_S",
    "MAX_COST_PER_REQUEST",
    "MAX_ENTRY_BYTES",
    "BoundCache",
    "BoundKey",
    "CachedBound",
    "InvalidEntryError",
    "bound_key",
    "code_digest",
    "entry_text",
    "parse_entry",
]

ENTRY_FORMAT = "batchenv hindsight bound"
"""The ``format`` field of every key document and cache file."""

MAX_ENTRY_BYTES = 16_384
"""Largest cache file read (an entry is about 400 bytes); a larger one is ignored, unread."""

MAX_COST_PER_REQUEST = 1e9
"""Largest cost per request (bound or schedule found) a cache entry may hold. A schedule the
simulator plays costs per request at most best quality (<= 1) + ``w_latency_per_s`` x (horizon +
longest batch) + ``w_slo``: about 61 in this project's scenarios (1 per s of latency, horizons
of at most 60 s), under 1e6 for a day's horizon at 10 per s, far below the cap. Without it a
file could hold a finite cost near the float range (1e308) that overflows the sums an evaluation
takes over seeds (``OverflowError`` in ``math.fsum``). The bound of a config whose weights make
it larger is computed each time, never read back (:meth:`BoundCache.put` warns that it is not
stored). A schedule not found is stored as null (inf), which is not capped."""

MAX_COMPUTE_S = 1e6
"""Largest ``compute_s`` a cache entry may hold (s, 11.6 days). The heaviest one-worker bound of
the suite takes about 2 minutes (poisson_95, a 60 s episode: 128 s unloaded in
benchmarks/results/hindsight_speed_high.json, docs/hindsight.md; a few times that on a busy
machine); the cap only keeps a file from claiming an absurd saving (1e308 s was printed as "inf
s of computing saved"). A longer computation is stored as this much (:func:`entry_text`)."""

_TOLERANCE = 1e-8
"""Relative slack of the range checks on a cached cost (the costs are float sums)."""


@dataclass(frozen=True)
class BoundKey:
    """The cache key of one episode's bound, and what a cached value must agree with.

    :ivar digest: SHA-256 (hex) of the key document (module docstring).
    :ivar n_requests: the episode's arrived requests.
    :ivar max_cost_per_request: best quality + ``w_drop``: what dropping every request costs per
        request, so no bound is above it.
    :ivar episode: the episode in words (scenario, seed, horizon), for messages and files.
    """

    digest: str
    n_requests: int
    max_cost_per_request: float
    episode: str


@dataclass(frozen=True)
class CachedBound:
    """A bound as an evaluation uses it (:class:`execution.hindsight_task.BoundResult`).

    :ivar n_requests: arrived requests of the episode.
    :ivar lower_cost_per_request: the bound (NaN without arrivals).
    :ivar upper_cost_per_request: the cost of the best schedule found (inf if none was found,
        NaN without arrivals).
    :ivar exact: the two meet.
    :ivar compute_s: seconds the bound took to compute (what reading it saves).
    """

    n_requests: int
    lower_cost_per_request: float
    upper_cost_per_request: float
    exact: bool
    compute_s: float


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex) of the sources of ``agents/hindsight/`` but this module: the code a bound
    runs (a cache entry of other sources is never read)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        if path.name != Path(__file__).name:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _trace_digests(arrivals: ArrivalConfig, base_dir: Path | None) -> list[str]:
    """SHA-256 of every trace file ``arrivals`` replays (a mixture's components in order),
    resolved as :func:`batchenv.arrivals.make_arrival_process` resolves them."""
    if arrivals.process == "trace" and arrivals.trace_path is not None:
        path = resolve_trace_path(arrivals.trace_path, base_dir)
        info = path.stat()
        return [_file_digest(str(path), info.st_mtime_ns, info.st_size)]
    return [d for c in arrivals.components or () for d in _trace_digests(c.arrivals, base_dir)]


def _problem_digest(problem: HindsightProblem) -> str:
    """SHA-256 of every field of ``problem`` (arrays with their dtype and shape; scalars by
    ``repr``, which round-trips floats)."""
    digest = hashlib.sha256()
    for field in dataclasses.fields(problem):
        value = getattr(problem, field.name)
        digest.update(field.name.encode() + b"=")
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            digest.update(f"{array.dtype.str}{array.shape}:".encode() + array.tobytes())
        else:
            digest.update(repr(value).encode())
        digest.update(b";")
    return digest.hexdigest()


def bound_key(
    config: SystemConfig,
    seed: int,
    *,
    horizon_s: float | None = None,
    beam: int = DEFAULT_BEAM,
    projection: str = "sum",
    arrival_process: ArrivalProcess | None = None,
) -> BoundKey:
    """The key of ``episode_bound(config, seed, horizon_s=..., beam=..., projection=...)``
    (module docstring). Costs what drawing the episode's arrivals costs (milliseconds).

    :param arrival_process: reuse an already built process (a loaded trace).
    :raises ConfigError: as :func:`~agents.hindsight.episode.episode_bound` (a trace file that
        is gone, bad arrivals).
    :raises OSError: a trace file that cannot be read.
    """
    horizon = config.horizon_s if horizon_s is None else horizon_s
    base_dir = Path(config.source_path).parent if config.source_path else None
    process = arrival_process or make_arrival_process(config)
    arrivals = episode_arrivals(config, seed, horizon_s=horizon_s, arrival_process=process)
    objective = episode_objective(config, seed, horizon_s=horizon_s, arrival_process=process)
    problem = HindsightProblem.from_config(config, arrivals, horizon_s, objective)
    document = {
        "format": ENTRY_FORMAT,
        "bound_version": BOUND_VERSION,
        "code_sha256": code_digest(),
        "numpy": np.__version__,
        "config": config.to_dict(),
        "trace_sha256": _trace_digests(config.arrivals, base_dir),
        "seed": int(seed),
        "horizon_s": float(horizon),
        "objective": None if objective is None else [float(v) for v in objective],
        "n_workers": config.n_workers,
        "beam": int(beam),
        "projection": str(projection),
        "constants": {"exact_rtol": EXACT_RTOL, "grid_s": GRID_S, "pair_grid_s": PAIR_GRID_S},
        "problem_sha256": _problem_digest(problem),
        "n_requests": problem.n_requests,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return BoundKey(
        digest=hashlib.sha256(text.encode()).hexdigest(),
        n_requests=problem.n_requests,
        max_cost_per_request=problem.drop_cost,
        episode=f"{config.name}, seed {int(seed)}, {float(horizon):g} s",
    )


class InvalidEntryError(ValueError):
    """A cache file that is not a valid entry for its key (the message says why)."""


_FIELDS = {
    "format",
    "bound_version",
    "key",
    "episode",
    "n_requests",
    "lower_cost_per_request",
    "upper_cost_per_request",
    "exact",
    "compute_s",
}


def _reject_constant(name: str) -> Any:
    raise InvalidEntryError(f"{name} is not strict JSON")


def _number(data: dict[str, Any], name: str) -> float | None:
    """Field ``name``: a finite number as a float, or None (null)."""
    value = data[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEntryError(f"{name} is {type(value).__name__}, not a number")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidEntryError(f"{name} is not finite")
    return value


def parse_entry(raw: bytes, key: BoundKey) -> CachedBound:
    """The cached bound in the file contents ``raw``, checked against ``key``.

    :raises InvalidEntryError: naming what is wrong.
    """
    if len(raw) > MAX_ENTRY_BYTES:
        raise InvalidEntryError(f"larger than {MAX_ENTRY_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except InvalidEntryError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEntryError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InvalidEntryError(f"a JSON {type(data).__name__}, not an object")
    if set(data) != _FIELDS:
        odd = [name[:40] for name in sorted(set(data) ^ _FIELDS)[:5]]  # repr: no control characters
        raise InvalidEntryError(f"fields {odd} missing or unexpected")
    if data["format"] != ENTRY_FORMAT:
        raise InvalidEntryError("format is not a hindsight bound's")
    if type(data["bound_version"]) is not int or data["bound_version"] != BOUND_VERSION:
        raise InvalidEntryError(f"bound_version is not {BOUND_VERSION}")
    if data["key"] != key.digest:
        raise InvalidEntryError("written for another key")
    if not isinstance(data["episode"], str):
        raise InvalidEntryError("episode is not a string")
    n = data["n_requests"]
    if type(n) is not int or n != key.n_requests:
        raise InvalidEntryError(f"n_requests is not the episode's {key.n_requests}")
    exact = data["exact"]
    if type(exact) is not bool:
        raise InvalidEntryError("exact is not true or false")
    compute_s = _number(data, "compute_s")
    if compute_s is None or not 0 <= compute_s <= MAX_COMPUTE_S:
        raise InvalidEntryError(f"compute_s is not a number of seconds in [0, {MAX_COMPUTE_S:g}]")
    lower = _number(data, "lower_cost_per_request")
    upper = _number(data, "upper_cost_per_request")
    for name, value in (("lower_cost_per_request", lower), ("upper_cost_per_request", upper)):
        if value is not None and value > MAX_COST_PER_REQUEST:  # null: inf, no schedule found
            raise InvalidEntryError(f"{name} is above {MAX_COST_PER_REQUEST:g}")
    if n == 0:  # nothing arrived: no cost per request
        if lower is not None or upper is not None:
            raise InvalidEntryError("costs per request of an episode without arrivals")
        return CachedBound(0, math.nan, math.nan, exact, compute_s)
    slack = _TOLERANCE * max(1.0, key.max_cost_per_request)
    if lower is None or not -slack <= lower <= key.max_cost_per_request + slack:
        raise InvalidEntryError(f"lower_cost_per_request is not in [0, {key.max_cost_per_request:g}]")
    if upper is None:  # no schedule found: inf, never exact
        if exact:
            raise InvalidEntryError("exact without a schedule found")
        upper = math.inf
    elif upper < lower - slack or (exact and upper > lower + slack):
        raise InvalidEntryError("upper_cost_per_request does not fit the bound and exact")
    return CachedBound(n, lower, upper, exact, compute_s)


def entry_text(key: BoundKey, bound: CachedBound) -> str:
    """The cache file of ``bound`` under ``key`` (strict JSON: NaN and inf as null)."""

    def number(value: float) -> float | None:
        return value if math.isfinite(value) else None

    data = {
        "format": ENTRY_FORMAT,
        "bound_version": BOUND_VERSION,
        "key": key.digest,
        "episode": key.episode,
        "n_requests": int(bound.n_requests),
        "lower_cost_per_request": number(float(bound.lower_cost_per_request)),
        "upper_cost_per_request": number(float(bound.upper_cost_per_request)),
        "exact": bool(bound.exact),
        "compute_s": min(max(0.0, float(bound.compute_s)), MAX_COMPUTE_S)
        if math.isfinite(bound.compute_s)
        else 0.0,
    }
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


class BoundCache:
    """Hindsight bounds kept in ``directory``, one file ``<key digest>.json`` per episode.

    :param directory: created at the first write.
    :ivar hits: entries read back. :ivar stored: entries written.
    :ivar saved_s: the compute time of the entries read back.
    :ivar warnings: one line per file ignored or not written (the run goes on).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.stored = 0
        self.saved_s = 0.0
        self.warnings: list[str] = []
        self._unwritable = False

    def path(self, key: BoundKey) -> Path:
        """The file of ``key``."""
        return self.directory / f"{key.digest}.json"

    def get(self, key: BoundKey) -> CachedBound | None:
        """The bound cached under ``key``; None when there is none or the file is not a valid
        entry for it (then with a line in :attr:`warnings`)."""
        path = self.path(key)
        try:
            raw = _read_small_file(path)
        except FileNotFoundError:
            return None
        except (OSError, InvalidEntryError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._ignored(path, reason)
            return None
        try:
            entry = parse_entry(raw, key)
        except InvalidEntryError as exc:
            self._ignored(path, str(exc))
            return None
        self.hits += 1
        self.saved_s += entry.compute_s
        return entry

    def put(self, key: BoundKey, bound: CachedBound) -> bool:
        """Store ``bound`` under ``key`` (atomically: a temporary file renamed over the target);
        False if it could not be written (a warning the first time; later writes are skipped) or
        is not what :meth:`get` would read back (another request count, a cost out of range: a
        warning)."""
        if self._unwritable:
            return False
        text = entry_text(key, bound)
        try:  # what get would refuse is not stored
            parse_entry(text.encode(), key)
        except InvalidEntryError as exc:
            self.warnings.append(f"hindsight cache: the bound of {key.episode} is not stored: {exc}")
            return False
        try:
            write_atomic(self.path(key), text)
        except (OSError, ValueError) as exc:
            self._unwritable = True
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.warnings.append(
                f"hindsight cache: cannot write into {self.directory} ({reason}); the bounds of this "
                "run are not kept"
            )
            return False
        self.stored += 1
        return True

    def _ignored(self, path: Path, reason: str) -> None:
        self.warnings.append(f"hindsight cache: ignored {path}: {reason}; the bound is computed again")


def _read_small_file(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most :data:`MAX_ENTRY_BYTES` (a FIFO
    or device is never read from: it is opened without blocking and checked first).

    :raises FileNotFoundError: no such file.
    :raises InvalidEntryError: not a regular file, or too large.
    :raises OSError: it cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidEntryError("not a regular file")
        if info.st_size > MAX_ENTRY_BYTES:
            raise InvalidEntryError(f"{info.st_size} bytes, larger than {MAX_ENTRY_BYTES}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_ENTRY_BYTES:  # the file may grow after the fstat
            chunk = os.read(fd, MAX_ENTRY_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_ENTRY_BYTES:
        raise InvalidEntryError(f"larger than {MAX_ENTRY_BYTES} bytes")
    return b"".join(chunks)
