#!/usr/bin/env python
"""Memory and time bounds on hostile or oversized input, measured (not asserted in a timed test).

    python benchmarks/memory_bounds.py        # writes benchmarks/results/memory_bounds.json

What it measures:
- the memory a recorded episode needs per request (``Simulator(record=True)``, as evaluation
  runs it, plus the metrics), from two episode lengths, and from it the peak at the largest
  episode a config allows (``batchenv.config.MAX_EPISODE_REQUESTS``);
- that an unrecorded episode (training, tuning) keeps its memory flat as the horizon grows;
- the time and peak memory to refuse a YAML alias bomb and a checkpoint zip bomb.

Peak memory is traced Python allocation (``tracemalloc``), which includes numpy arrays.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import agents.rl  # noqa: E402, F401  (imported before timing: load_checkpoint needs SB3)
from agents.baselines import Timeout  # noqa: E402
from agents.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from agents.checkpoint_safety import MAX_MEMBER_BYTES  # noqa: E402
from batchenv.config import MAX_EPISODE_REQUESTS, SystemConfig  # noqa: E402
from batchenv.fileio import write_json_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.safe_yaml import YamlError, load_yaml  # noqa: E402
from batchenv.sim import Simulator, simulate  # noqa: E402
from benchmarks.proposed.common import display_path  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "memory_bounds.json"
BOMB = (
    "a: &a ["
    + ", ".join(['"lol"'] * 9)
    + "]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
    )
)


def _peak(fn: Any) -> tuple[Any, float, float]:
    """``fn()``'s result, its wall time (s) and its peak traced memory (bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, elapsed, float(peak)


def episode_memory(horizon_s: float, record: bool) -> dict[str, float]:
    """Peak memory of one 400 requests/s episode of ``horizon_s`` seconds."""
    config = SystemConfig().at_rate(400.0).replace(horizon_s=horizon_s)

    def run() -> int:
        sim = simulate(config, Timeout(config), 0, sim=Simulator(config, record=record))
        if record:
            compute_metrics(sim)
        return sim.n_arrived

    arrived, elapsed, peak = _peak(run)
    return {"horizon_s": horizon_s, "requests": arrived, "wall_s": elapsed, "peak_bytes": peak}


def zip_bomb(folder: Path) -> dict[str, float]:
    """Refusing a checkpoint with one member of MAX_MEMBER_BYTES + 1 zero bytes."""
    path = folder / "bomb.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("batchenv/meta.json", "{}")
        archive.writestr("batchenv/config.yaml", "name: x\n")
        archive.writestr("data", b"\0" * (MAX_MEMBER_BYTES + 1))
    path.write_bytes(buffer.getvalue())

    def load() -> str:
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            return str(exc)
        return "loaded"

    message, elapsed, peak = _peak(load)
    return {"file_bytes": path.stat().st_size, "wall_s": elapsed, "peak_bytes": peak, "message": message}


def alias_bomb() -> dict[str, Any]:
    """Refusing a "billion laughs" YAML (9^9 strings once expanded), with and without aliases."""
    out = {}
    for allow in (False, True):

        def load(allow: bool = allow) -> str:
            try:
                load_yaml(BOMB, allow_aliases=allow)
            except YamlError as exc:
                return str(exc)
            return "loaded"

        message, elapsed, peak = _peak(load)
        out["aliases allowed" if allow else "aliases refused"] = {
            "wall_s": elapsed,
            "peak_bytes": peak,
            "message": message,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default: {display_path(RESULTS)})"
    )
    parser.add_argument("--scratch", type=Path, default=Path("/tmp"), help="folder for the zip bomb file")
    args = parser.parse_args(argv)
    short, long = episode_memory(30.0, True), episode_memory(120.0, True)
    per_request = (long["peak_bytes"] - short["peak_bytes"]) / (long["requests"] - short["requests"])
    flat = [episode_memory(h, False) for h in (30.0, 120.0)]
    results = {
        "command": "python benchmarks/memory_bounds.py",
        "python": platform.python_version(),
        "recorded_episodes": [short, long],
        "bytes_per_recorded_request": per_request,
        "max_episode_requests": MAX_EPISODE_REQUESTS,
        "projected_peak_bytes_at_the_bound": per_request * MAX_EPISODE_REQUESTS,
        "unrecorded_episodes": flat,
        "zip_bomb": zip_bomb(args.scratch),
        "alias_bomb": alias_bomb(),
    }
    write_json_atomic(args.out, results)
    print(
        f"{per_request:.0f} bytes per recorded request; at the bound of {MAX_EPISODE_REQUESTS:g} requests "
        f"{per_request * MAX_EPISODE_REQUESTS / 2**30:.2f} GiB"
    )
    low, high = (e["peak_bytes"] / 2**20 for e in flat)
    print(f"unrecorded: {low:.1f} MiB at 30 s, {high:.1f} MiB at 120 s")
    print(
        f"zip bomb refused in {results['zip_bomb']['wall_s'] * 1000:.0f} ms; "
        f"alias bomb refused in {results['alias_bomb']['aliases refused']['wall_s'] * 1000:.1f} ms"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
