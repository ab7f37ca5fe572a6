"""Grid search of the ``timeout`` and ``util_switch`` baselines, per scenario, on training seeds.

The objective is the mean cost per request (best quality - score, see docs/design.md, "Metrics")
over :data:`TRAINING_SEEDS`, which evaluation never uses (``evaluate.py`` uses seeds 0..N-1).
Every candidate meets the same arrivals (common random numbers), so candidates are compared
paired, seed by seed.

- ``timeout``: the full grid of (preferred_batch_size B, max_queue_delay_ms T, model).
- ``util_switch``: coordinate search from the best timeout's (B, T): queue thresholds, then
  utilisation thresholds, then (B, T) again, then the hysteresis; each stage keeps its best
  candidate (the incumbent is always in the next stage, so the cost never goes up). With queue
  thresholds of 1 it serves every request on the last model, so it is never worse than timeout
  on that model with the same (B, T).

The results go to ``agents/tuned/<scenario>.yaml`` with the command that produced them and a
fingerprint of the scenario; :func:`load_tuned` reads them back (``evaluate.py`` uses them).

Run ``python -m agents.tuning --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.baselines import BASELINES
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate

__all__ = [
    "SUITE",
    "TRAINING_SEEDS",
    "TUNABLE",
    "TUNED_DIR",
    "TunedRecord",
    "config_fingerprint",
    "grid_search",
    "load_tuned",
    "main",
    "parse_seeds",
    "timeout_grid",
    "tune_scenario",
    "write_tuned",
]

TRAINING_SEEDS: tuple[int, ...] = (1000, 1001, 1002, 1003)
"""Seeds of the tuning episodes; evaluation seeds are 0..N-1 and must stay below 1000."""

TUNABLE = ("timeout", "util_switch")
TUNED_DIR = Path(__file__).resolve().parent / "tuned"

SUITE: tuple[str, ...] = (
    "default",
    "poisson_05",
    "poisson_25",
    "poisson_50",
    "poisson_75",
    "poisson_95",
    "high_load",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "azure_trace_medium",
    "azure_trace_high",
    "multi_gpu",
    "multi_gpu_4",
    "default_randomised",
)
"""The scenario suite (``--scenarios suite`` here and in ``evaluate.py``)."""

BATCH_GRID = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
DELAY_GRID_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0)
QUEUE_GRID: tuple[float | None, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, None)
UTIL_GRID: tuple[float | None, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, None)
HYSTERESIS_GRID = (0.25, 0.5, 0.75, 1.0)


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-9"``, ``"0,3,7"`` or ``"0-4,10-12"`` (ranges inclusive), in order given.

    :raises ValueError: with a message saying what was wrong.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"empty item in seed list {text!r}")
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(f"bad seed {part!r} in {text!r}: use integers like 0-9 or 0,3,7") from None
        if first < 0 or last < first:
            raise ValueError(f"bad seed range {part!r}: need 0 <= first <= last")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated seeds in {text!r}")
    return seeds


# --------------------------------------------------------------------------------------------
# Tuned-parameter files
# --------------------------------------------------------------------------------------------


def config_fingerprint(config: SystemConfig) -> str:
    """Short hash of everything in a scenario that a baseline's cost depends on (all fields
    except the horizon and the environment options)."""
    data = config.to_dict()
    data.pop("horizon_s", None)
    data.pop("env", None)
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TunedRecord:
    """The content of one ``agents/tuned/<scenario>.yaml``.

    :ivar agents: per tuned agent: ``params`` (constructor keywords), ``cost_per_request``,
        ``candidates``.
    :ivar stale: the scenario changed since tuning (its fingerprint differs); do not use.
    """

    path: Path
    scenario: str
    fingerprint: str
    agents: dict[str, dict[str, Any]]
    data: dict[str, Any]
    stale: bool = False


def tuned_path(scenario: str, directory: Path = TUNED_DIR) -> Path:
    return Path(directory) / f"{scenario}.yaml"


def load_tuned(config: SystemConfig, directory: Path = TUNED_DIR) -> TunedRecord | None:
    """The tuned parameters for ``config`` (looked up by its name), or None if there are none
    or they were tuned for a different version of the scenario."""
    record = read_tuned(tuned_path(config.name, directory))
    if record is None or record.fingerprint != config_fingerprint(config):
        return None
    return record


def read_tuned(path: Path) -> TunedRecord | None:
    """Read a tuned-parameter file; None if it does not exist.

    :raises ConfigError: the file exists but is malformed.
    """
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("<tuned>", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        raise ConfigError("<tuned>", f"{path} must hold a mapping with an 'agents' section")
    for name, entry in data["agents"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
            raise ConfigError(f"<tuned>.agents.{name}", f"{path}: needs a 'params' mapping")
    return TunedRecord(
        path=path,
        scenario=str(data.get("scenario", path.stem)),
        fingerprint=str(data.get("config_fingerprint", "")),
        agents=data["agents"],
        data=data,
    )


def write_tuned(path: Path, data: dict[str, Any]) -> None:
    """Write a tuned-parameter file atomically (temporary file + rename)."""
    header = (
        f"# Tuned parameters of the timeout and util_switch baselines for scenario "
        f"{data['scenario']!r}.\n"
        f"# Grid search on training seeds {data['training_seeds']} (never used for evaluation);\n"
        f"# objective: mean cost per request (best quality - score); lower is better.\n"
        f"# Reproduce with: {data['command']}\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    write_atomic(path, text)


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def mean_cost(
    config: SystemConfig,
    name: str,
    params: dict[str, Any],
    seeds: Sequence[int],
    sim: Simulator | None = None,
) -> float:
    """Mean over ``seeds`` of the cost per request of baseline ``name`` with ``params``."""
    agent = BASELINES[name](config, **params)
    sim = sim or Simulator(config, record=False)
    best = max(config.qualities)
    total = 0.0
    for seed in seeds:
        simulate(config, agent, seed, sim=sim)
        total += best - sim.total_reward / max(sim.n_arrived, 1)
    return total / len(seeds)


def _costs_chunk(
    config: SystemConfig, name: str, candidates: list[dict[str, Any]], seeds: Sequence[int]
) -> list[float]:
    """Costs of a chunk of candidates (one simulator reused for all)."""
    sim = Simulator(config, record=False)
    return [mean_cost(config, name, params, seeds, sim) for params in candidates]


def grid_search(
    config: SystemConfig,
    name: str,
    candidates: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    pool: ProcessPoolExecutor | None = None,
    jobs: int = 1,
) -> tuple[dict[str, Any], float, list[float]]:
    """Evaluate every candidate; returns ``(best params, best mean cost, all costs)``. Ties go to
    the first candidate in grid order, so the result does not depend on ``jobs``."""
    candidates = list(candidates)
    if pool is None or jobs <= 1:
        costs = _costs_chunk(config, name, candidates, seeds)
    else:
        size = max(1, -(-len(candidates) // (4 * jobs)))
        chunks = [candidates[i : i + size] for i in range(0, len(candidates), size)]
        futures = [pool.submit(_costs_chunk, config, name, chunk, seeds) for chunk in chunks]
        costs = [cost for future in futures for cost in future.result()]
    best = min(range(len(costs)), key=costs.__getitem__)
    return candidates[best], costs[best], costs


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def _batch_grid(config: SystemConfig) -> list[int]:
    return sorted({b for b in BATCH_GRID if b <= config.max_batch_size} | {config.max_batch_size})


def _delay_grid(config: SystemConfig) -> list[float]:
    return sorted({t for t in DELAY_GRID_MS if t <= config.max_wait_ms} | {config.max_wait_ms})


def _batch_delay_grid(config: SystemConfig) -> list[tuple[int, float]]:
    """(B, T) pairs; with B = 1 every epoch dispatches, so one T stands for all."""
    delays = _delay_grid(config)
    return [(b, t) for b in _batch_grid(config) for t in (delays[:1] if b == 1 else delays)]


def timeout_grid(config: SystemConfig) -> list[dict[str, Any]]:
    """Every (preferred_batch_size, max_queue_delay_ms, model) candidate of ``timeout``."""
    return [
        {"preferred_batch_size": b, "max_queue_delay_ms": t, "model": model}
        for model in config.model_names
        for b, t in _batch_delay_grid(config)
    ]


def _threshold_tuples(values: Sequence[float | None], steps: int) -> list[list[float | None]]:
    """Non-decreasing threshold tuples (None = never, sorted last)."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    return [list(c) for c in itertools.combinations_with_replacement(ordered, steps)]


Stage = tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]


def util_switch_stages(config: SystemConfig) -> list[Stage]:
    """The coordinate-search stages of ``util_switch``: each maps the incumbent to candidates."""
    steps = config.n_models - 1
    return [
        (
            "queue thresholds",
            lambda p: [{**p, "queue_thresholds": q} for q in _threshold_tuples(QUEUE_GRID, steps)],
        ),
        (
            "util thresholds",
            lambda p: [{**p, "util_thresholds": u} for u in _threshold_tuples(UTIL_GRID, steps)],
        ),
        (
            "B, T",
            lambda p: [
                {**p, "preferred_batch_size": b, "max_queue_delay_ms": t}
                for b, t in _batch_delay_grid(config)
            ],
        ),
        ("hysteresis", lambda p: [{**p, "hysteresis": h} for h in HYSTERESIS_GRID]),
    ]


# --------------------------------------------------------------------------------------------
# Tuning one scenario
# --------------------------------------------------------------------------------------------


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def tune_scenario(
    config: SystemConfig,
    agents: Iterable[str] = TUNABLE,
    seeds: Sequence[int] = TRAINING_SEEDS,
    pool: ProcessPoolExecutor | None = None,
    jobs: int = 1,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, Any]]:
    """Tune the named agents on ``config`` (its horizon) and return, per agent, the entry of the
    tuned file: ``params``, ``cost_per_request``, ``candidates``."""
    agents = list(agents)
    results: dict[str, dict[str, Any]] = {}
    grid = timeout_grid(config)
    best, cost, _ = grid_search(config, "timeout", grid, seeds, pool, jobs)
    log(f"  timeout: {len(grid)} candidates -> cost {cost:.5f} {best}")
    if "timeout" in agents:
        results["timeout"] = {
            "params": _plain_params(best),
            "cost_per_request": round(cost, 6),
            "candidates": len(grid),
        }
    if "util_switch" in agents:
        incumbent: dict[str, Any] = {
            "preferred_batch_size": best["preferred_batch_size"],
            "max_queue_delay_ms": best["max_queue_delay_ms"],
        }
        count = 0
        for stage, make in util_switch_stages(config):
            # the incumbent first: ties keep it (grid_search prefers the first of equal costs)
            candidates = [incumbent, *(c for c in make(incumbent) if c != incumbent)]
            count += len(candidates)
            incumbent, cost, _ = grid_search(config, "util_switch", candidates, seeds, pool, jobs)
            log(f"  util_switch {stage}: {len(candidates)} candidates -> cost {cost:.5f}")
        full = BASELINES["util_switch"](config, **incumbent).params()
        results["util_switch"] = {
            "params": _plain_params(full),
            "cost_per_request": round(cost, 6),
            "candidates": count,
        }
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents.tuning",
        description=(
            "Tune the timeout and util_switch baselines per scenario by grid search on training "
            "seeds, minimising the mean cost per request (best quality - score). Writes "
            "agents/tuned/<scenario>.yaml, which evaluate.py uses by default."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        default="suite",
        help="comma-separated scenario names or YAML paths; 'suite' = " + ",".join(SUITE),
    )
    parser.add_argument(
        "--agents", default=",".join(TUNABLE), help=f"which baselines to tune, among {','.join(TUNABLE)}"
    )
    parser.add_argument(
        "--seeds",
        default=f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}",
        help="training seeds, e.g. 1000-1003 or 1000,1005 (keep them >= 1000, apart from evaluation seeds)",
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="simulated seconds per episode (default: each scenario's horizon_s)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(os.cpu_count() or 1, 8),
        help="parallel worker processes (results do not depend on it)",
    )
    parser.add_argument("--out", type=Path, default=TUNED_DIR, help="directory of the tuned-parameter files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    names = SUITE if args.scenarios == "suite" else [s.strip() for s in args.scenarios.split(",")]
    names = [name for name in names if name]
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    for agent in agents:
        if agent not in TUNABLE:
            parser.error(f"cannot tune {agent!r}; tunable: {list(TUNABLE)}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    if min(seeds) < 1000:
        parser.error("--seeds: training seeds must be >= 1000 (seeds below are for evaluation)")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.horizon_s is not None and not args.horizon_s > 0:
        parser.error("--horizon-s must be > 0")
    configs = []
    for name in names:
        try:
            config = load_scenario(name)
        except ConfigError as exc:
            parser.error(str(exc))
        if args.horizon_s is not None:
            config = config.replace(horizon_s=args.horizon_s)
        configs.append(config)
    command = "python -m agents.tuning " + shlex.join(argv) if argv else "python -m agents.tuning"

    table = Table(title="Tuned baselines (mean cost per request on the training seeds)")
    for column in ("scenario", "agent", "cost/request", "candidates", "params"):
        table.add_column(column)
    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    try:
        for config in configs:
            start = time.perf_counter()
            console.print(f"[bold]{config.name}[/] (horizon {config.horizon_s:g} s, seeds {seeds})")
            results = tune_scenario(config, agents, seeds, pool, args.jobs, console.print)
            path = tuned_path(config.name, args.out)
            previous = read_tuned(path)
            merged = {}
            if previous is not None and previous.fingerprint == config_fingerprint(config):
                merged = {k: v for k, v in previous.agents.items() if k not in results}
            data = {
                "scenario": config.name,
                "config_fingerprint": config_fingerprint(config),
                "command": command,
                "training_seeds": list(seeds),
                "horizon_s": config.horizon_s,
                "objective": "mean cost per request (best quality - score)",
                "agents": {**merged, **results},
            }
            write_tuned(path, data)
            console.print(f"  wrote {path} ({time.perf_counter() - start:.1f} s)")
            for agent, entry in results.items():
                params = ", ".join(f"{k}={v}" for k, v in entry["params"].items())
                table.add_row(
                    config.name, agent, f"{entry['cost_per_request']:.5f}", str(entry["candidates"]), params
                )
    finally:
        if pool is not None:
            pool.shutdown()
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
