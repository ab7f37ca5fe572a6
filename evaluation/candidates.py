"""Episodes of parameter candidates, run once and kept: the raw material of tuning under any
objective (the default cost, another latency weight or quality profile, a latency target) and
of the timeout family's frontier.

A candidate's episode on a seed is reduced to a :class:`CandidateEpisode`: its score terms
(:class:`batchenv.metrics.ScoreTerms`), the served requests within each bound of interest, and a
few metrics (mean and p99 latency, throughput, model mix). The baselines read neither the
latency weight nor the qualities, so one episode serves every objective. :class:`CandidateRuns`
memoises them per (agent, parameters, seed) for one scenario, in memory and optionally in a
JSON-lines file keyed by everything the episode depends on (scenario, horizon, seed, agent,
parameters, bounds) and by a hash of the simulator's and the baselines' source, so a stale
entry is never read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchenv.config import LatencyTarget, SystemConfig
from batchenv.metrics import ScoreTerms
from execution.backends import Backend, LocalBackend
from execution.episode import EpisodeResult, EpisodeTask, run_episode_tasks
from execution.run import run_tasks

__all__ = ["CandidateEpisode", "CandidateRuns", "code_version"]

CHUNKS_PER_JOB = 4
"""Candidates are sent to the backend in about this many chunks per job."""

_SOURCES = (
    "batchenv/sim.py",
    "batchenv/arrivals.py",
    "batchenv/traces.py",
    "batchenv/timing.py",
    "agents/baselines.py",
)
"""The files a baseline's trajectory depends on (their hash keys the file cache)."""

CACHE_FORMAT = 1
"""Version of what an entry holds and how it is measured; raise it when either changes."""


def code_version() -> str:
    """SHA-256 (16 hex digits) of the source files an episode of a baseline depends on."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for rel in _SOURCES:
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class CandidateEpisode:
    """What one episode of a candidate gives for tuning and frontiers.

    :ivar terms: the score terms (any weights and qualities).
    :ivar within: per bound (ms) of the run, the served requests within it.
    :ivar latency_mean_ms: mean latency of the served requests (ms).
    :ivar latency_p99_ms: their 99th percentile (ms).
    :ivar throughput_per_s: served requests per simulated second.
    """

    terms: ScoreTerms
    within: tuple[int, ...]
    latency_mean_ms: float
    latency_p99_ms: float
    throughput_per_s: float

    def attainment(self, index: int) -> float:
        """Served within bound ``index`` / (served + dropped); NaN if nothing was judged."""
        judged = sum(self.terms.served_per_model) + self.terms.n_dropped
        return self.within[index] / judged if judged else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": self.terms.to_dict(),
            "within": list(self.within),
            "latency_mean_ms": self.latency_mean_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "throughput_per_s": self.throughput_per_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateEpisode:
        return cls(
            terms=ScoreTerms.from_dict(data["terms"]),
            within=tuple(int(n) for n in data["within"]),
            latency_mean_ms=float(data["latency_mean_ms"]),
            latency_p99_ms=float(data["latency_p99_ms"]),
            throughput_per_s=float(data["throughput_per_s"]),
        )

    @classmethod
    def of(cls, result: EpisodeResult) -> CandidateEpisode:
        if result.status != "ok":
            raise ValueError(result.reason)
        assert result.terms is not None
        return cls(
            terms=ScoreTerms.from_dict(result.terms),
            within=tuple(result.within or ()),
            latency_mean_ms=result.metrics["latency_mean_ms"],
            latency_p99_ms=result.metrics["latency_p99_ms"],
            throughput_per_s=result.metrics["throughput_per_s"],
        )


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class CandidateRuns:
    """Memoised candidate episodes of one scenario on a fixed list of seeds.

    :param config: the scenario (its horizon is the episodes').
    :param seeds: the seeds every candidate runs on (tuning: :data:`batchenv.seeds.TRAINING_SEEDS`).
    :param bounds_ms: the latency bounds (ms) whose attainment the episodes record.
    :param backend: where episodes run (None: in this process).
    :param cache_file: a JSON-lines file to read entries from and append new ones to (None:
        memory only). Entries of another scenario, horizon or code version are ignored.
    """

    def __init__(
        self,
        config: SystemConfig,
        seeds: Sequence[int],
        bounds_ms: Sequence[float] = (),
        backend: Backend | None = None,
        cache_file: Path | None = None,
    ) -> None:
        self.config = config.replace(latency_target=None)
        self.seeds = list(seeds)
        self.bounds_ms = tuple(float(b) for b in bounds_ms)
        self.backend = backend
        self.cache_file = cache_file
        self._scope = json.dumps(
            {
                "config": self.config.to_dict(),
                "bounds_ms": list(self.bounds_ms),
                "code": code_version(),
                "format": CACHE_FORMAT,
            },
            sort_keys=True,
        )
        self._memory: dict[str, CandidateEpisode] = {}
        if cache_file is not None and cache_file.is_file():
            self._read(cache_file)

    def _key(self, name: str, params: dict[str, Any], seed: int) -> str:
        text = json.dumps(
            [self._scope, name, {k: _plain(v) for k, v in params.items()}, seed], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _read(self, path: Path) -> None:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                self._memory[str(entry["key"])] = CandidateEpisode.from_dict(entry["episode"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn or foreign line: recompute what it held

    def bound_index(self, bound_ms: float) -> int:
        """Index of ``bound_ms`` among the recorded bounds (ValueError if not recorded)."""
        try:
            return self.bounds_ms.index(float(bound_ms))
        except ValueError:
            raise ValueError(
                f"bound {bound_ms:g} ms is not recorded; recorded: {list(self.bounds_ms)}"
            ) from None

    def target_index(self, target: LatencyTarget) -> int:
        """Index of ``target``'s bound among the recorded bounds."""
        return self.bound_index(target.bound_for(self.config.slo_ms))

    def episodes(self, name: str, candidates: Sequence[dict[str, Any]]) -> list[list[CandidateEpisode]]:
        """Per candidate (in order), its episodes on every seed (in order); runs only those not
        kept yet, on the backend.

        :raises execution.outcome.TaskFailedError: an episode failed.
        """
        keys = [[self._key(name, params, seed) for seed in self.seeds] for params in candidates]
        missing = [
            (params, seed, key)
            for params, row in zip(candidates, keys, strict=True)
            for seed, key in zip(self.seeds, row, strict=True)
            if key not in self._memory
        ]
        if missing:
            self._run(name, missing)
        return [[self._memory[key] for key in row] for row in keys]

    def _run(self, name: str, missing: list[tuple[dict[str, Any], int, str]]) -> None:
        backend = self.backend or LocalBackend(1)
        tasks = [
            EpisodeTask(
                name,
                self.config,
                seed,
                tuned=False,
                params=params,
                record="requests",
                terms=True,
                bounds_ms=self.bounds_ms,
            )
            for params, seed, _ in missing
        ]
        size = max(1, -(-len(tasks) // (CHUNKS_PER_JOB * backend.jobs)))
        chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        outcomes = run_tasks(backend, run_episode_tasks, [(chunk,) for chunk in chunks])
        results = [result for outcome in outcomes for result in outcome.unwrap()]
        lines = []
        for (_, _, key), result in zip(missing, results, strict=True):
            episode = CandidateEpisode.of(result)
            self._memory[key] = episode
            lines.append(json.dumps({"key": key, "episode": episode.to_dict()}))
        if self.cache_file is not None:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_file.open("a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
