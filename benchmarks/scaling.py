"""Scaling of the execution layer: the same evaluation grid with 1 and 2 workers on the local
process pool and on Ray, the overhead Ray adds per task, and what Ray costs to start.

Measured on this machine:

- **grid**: the wall time of one evaluation grid (agents x scenarios x seeds, the episodes of
  ``evaluate.py``) on ``local`` with 1 and 2 jobs and on an embedded local ``ray`` with 1 and 2
  CPUs, after a warm-up (workers started, modules imported); the speed-up against one local
  job; and a check that every configuration gives the same results bit for bit.
- **overhead**: the round trip of a task that does nothing (``abs``), per task, on each backend
  (local with 2 processes, Ray with 2 CPUs): what a task costs beyond its own work.
- **start-up**: the time to import Ray and start a local Ray (``ray.init``), and the resident
  memory of all the processes of that Ray session (driver included).
- **cost per episode and per simulated request** on one core (the local 1-job run), the figures
  that docs/scaling.md sizes cluster runs from; with ``--training``, also the cost per training
  step of ``train.py --algo ppo`` (two run lengths, so that start-up cancels out).

It writes ``benchmarks/results/scaling.json`` and ``docs/results/scaling.md``. Timings depend on
the machine and on what else runs on it (the load average before and after is recorded): rerun
on a quiet machine for figures to quote::

    python benchmarks/scaling.py                     # about 5 minutes on 2 cores
    python benchmarks/scaling.py --training          # also the cost of a PPO training step
    python benchmarks/scaling.py --seeds 2 --horizon-s 10 --no-ray   # a quick check, local only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from benchmarks.proposed.common import display_path  # noqa: E402
from execution.backends import Backend, BackendSpec, usable_cores  # noqa: E402
from execution.episode import EpisodeResult, EpisodeTask, run_episode_task  # noqa: E402
from execution.run import run_tasks  # noqa: E402

AGENTS = ("greedy", "timeout", "util_switch", "aimd")
SCENARIOS = ("default", "poisson_50", "bursty", "azure_trace")
OVERHEAD_TASKS = 400
DEFAULT_JSON = REPO / "benchmarks" / "results" / "scaling.json"
DEFAULT_MARKDOWN = REPO / "docs" / "results" / "scaling.md"


def grid(seeds: int, horizon_s: float) -> list[EpisodeTask]:
    """The evaluation grid: every agent on every scenario and seed, running totals only."""
    return [
        EpisodeTask(agent, scenario, seed, horizon_s, record="totals")
        for scenario in SCENARIOS
        for agent in AGENTS
        for seed in range(seeds)
    ]


def _fingerprint(results: Sequence[EpisodeResult]) -> str:
    """Everything an episode returns, as text (NaN == NaN there, unlike in floats)."""
    return repr([(r.status, r.reason, r.metrics, r.model_mix, r.params) for r in results])


def _warm_up(backend: Backend) -> None:
    """Start every worker and import what episodes need: one short episode per job, twice."""
    tasks = [
        (EpisodeTask("greedy", "default", seed, 1.0, record="totals"),) for seed in range(2 * backend.jobs)
    ]
    run_tasks(backend, run_episode_task, tasks)


def time_grid(backend: Backend, tasks: list[EpisodeTask]) -> tuple[float, list[EpisodeResult]]:
    """Wall time (s) of the grid on a warmed-up backend, and its results in task order."""
    _warm_up(backend)
    start = time.perf_counter()
    outcomes = run_tasks(backend, run_episode_task, [(t,) for t in tasks])
    elapsed = time.perf_counter() - start
    return elapsed, [o.unwrap() for o in outcomes]


def task_overhead_s(backend: Backend) -> float:
    """Mean wall time per task (s) of :data:`OVERHEAD_TASKS` tasks that do nothing."""
    run_tasks(backend, abs, [(-1,)] * (2 * backend.jobs))  # workers up
    start = time.perf_counter()
    run_tasks(backend, abs, [(-i,) for i in range(OVERHEAD_TASKS)])
    return (time.perf_counter() - start) / OVERHEAD_TASKS


def _tree_rss_mib(root: int) -> float:
    """Resident memory (MiB) of process ``root`` and all its descendants (Linux ``ps``)."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True, check=True)
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for line in table.stdout.splitlines():
        pid, ppid, kib = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = kib
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


def _identity(x: int) -> int:
    return x


def ray_start_up(jobs: int) -> dict[str, float]:
    """Seconds to import Ray and to start a local Ray with ``jobs`` CPUs, and the memory (MiB)
    of this process and every Ray process it started, idle and after a few tasks."""
    before = _tree_rss_mib(os.getpid())
    start = time.perf_counter()
    import ray  # the only place this benchmark imports Ray itself

    imported = time.perf_counter()
    ray.init(num_cpus=jobs, include_dashboard=False, configure_logging=False, log_to_driver=False)
    started = time.perf_counter()
    idle = _tree_rss_mib(os.getpid())
    ray.get([ray.remote(_identity).remote(i) for i in range(2 * jobs)])
    first = time.perf_counter()
    busy = _tree_rss_mib(os.getpid())
    ray.shutdown()
    return {
        "import_s": imported - start,
        "init_s": started - imported,
        "first_tasks_s": first - started,
        "driver_rss_before_mib": before,
        "session_rss_idle_mib": idle,
        "session_rss_with_workers_mib": busy,
    }


def training_step_s(steps: tuple[int, int]) -> dict[str, float]:
    """Cost of one PPO training step (s, one core): ``train.py --algo ppo`` for two numbers of
    steps, the difference of the wall times over the difference of the steps (start-up cancels)."""
    walls = []
    with tempfile.TemporaryDirectory() as runs:
        for n in steps:
            argv = [sys.executable, str(REPO / "train.py"), "--algo", "ppo", "-n", str(n), "--eval-freq", "0"]
            argv += ["--save-freq", "0", "--no-progress", "--verbose", "0", "--runs-dir", runs]
            start = time.perf_counter()
            subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
    return {
        "steps": list(steps),
        "wall_s": walls,
        "per_step_s": (walls[1] - walls[0]) / (steps[1] - steps[0]),
        "start_up_s": walls[0] - steps[0] * (walls[1] - walls[0]) / (steps[1] - steps[0]),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tasks = grid(args.seeds, args.horizon_s)
    configs = [("local", 1), ("local", 2)]
    if args.ray:
        configs += [("ray", 1), ("ray", 2)]
    load_before = os.getloadavg()
    runs: dict[str, dict[str, Any]] = {}
    reference: str | None = None
    identical = True
    overhead: dict[str, float] = {}
    for name, jobs in configs:
        start = time.perf_counter()
        with BackendSpec(name, jobs).create() as backend:  # type: ignore[arg-type]
            started = time.perf_counter() - start
            wall, results = time_grid(backend, tasks)
            if jobs == 2:
                overhead[name] = task_overhead_s(backend)
        fingerprint = _fingerprint(results)
        reference = reference or fingerprint
        identical = identical and fingerprint == reference
        runs[f"{name}_{jobs}"] = {"backend": name, "jobs": jobs, "start_s": started, "grid_wall_s": wall}
        if name == "local" and jobs == 1:
            requests = sum(r.metrics["n_arrived"] for r in results)
            decisions = sum(r.metrics["n_batches"] for r in results)
            per_episode = wall / len(tasks)
            per_request = wall / requests
            per_batch = wall / decisions
        print(f"{name} x{jobs}: grid {wall:.1f} s (start {started:.1f} s)", flush=True)
    base = runs["local_1"]["grid_wall_s"]
    for run in runs.values():
        run["speed_up"] = base / run["grid_wall_s"]
    result: dict[str, Any] = {
        "command": "python benchmarks/scaling.py" + (" " + shlex.join(args.argv) if args.argv else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cores": os.cpu_count(),
            "usable_cores": usable_cores(),
            "python": platform.python_version(),
        },
        "load_average_before": load_before,
        "grid": {
            "agents": list(AGENTS),
            "scenarios": list(SCENARIOS),
            "seeds": args.seeds,
            "horizon_s": args.horizon_s,
            "episodes": len(tasks),
        },
        "runs": runs,
        "identical_results": identical,
        "per_episode_s": per_episode,
        "per_request_s": per_request,
        "per_dispatch_s": per_batch,
        "task_overhead_s": overhead,
    }
    if args.ray:
        result["ray_overhead_per_task_s"] = overhead["ray"] - overhead["local"]
        code = "import json; from benchmarks.scaling import ray_start_up; print(json.dumps(ray_start_up(2)))"
        child = subprocess.run(  # a fresh interpreter, where Ray is not imported yet
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        )
        result["ray_start_up"] = json.loads(child.stdout.strip().splitlines()[-1])
    if args.training:
        result["training"] = training_step_s((2048, 10240))
    result["load_average_after"] = os.getloadavg()
    return result


QUIET_LOAD = 0.5
"""A one-minute load average below this before the run counts as a machine with no other work."""


def markdown(result: dict[str, Any]) -> str:
    grid_ = result["grid"]
    load = "/".join(f"{x:.1f}" for x in result["load_average_before"])
    quiet = result["load_average_before"][0] < QUIET_LOAD
    scope = (
        "no other work on the machine"
        if quiet
        else "**other work shared the machine, so these are preliminary figures**; rerun the command on "
        "a quiet machine"
    )
    lines = [
        "# Scaling of the execution layer",
        "",
        f"Produced by `{result['command']}` on {result['date']} ({result['machine']['usable_cores']} usable "
        f"cores; load average {load} before the run: {scope}). docs/scaling.md explains them.",
        "",
        f"Grid: {len(grid_['agents'])} agents ({', '.join(grid_['agents'])}) x {len(grid_['scenarios'])} "
        f"scenarios ({', '.join(grid_['scenarios'])}) x {grid_['seeds']} seeds, {grid_['horizon_s']:g} s "
        f"episodes = {grid_['episodes']} episodes, after a warm-up. Results identical on every "
        f"backend and job count: **{'yes' if result['identical_results'] else 'NO'}**.",
        "",
        "| backend | jobs | start (s) | grid wall time (s) | speed-up vs local x1 |",
        "|---|---|---|---|---|",
    ]
    for run in result["runs"].values():
        lines.append(
            f"| {run['backend']} | {run['jobs']} | {run['start_s']:.2f} | {run['grid_wall_s']:.1f} "
            f"| {run['speed_up']:.2f} |"
        )
    lines += [
        "",
        f"Cost on one core: {1e3 * result['per_episode_s']:.0f} ms per episode, "
        f"{1e6 * result['per_request_s']:.2f} µs per simulated request, "
        f"{1e6 * result['per_dispatch_s']:.1f} µs per dispatched batch.",
        "",
        "Round trip of a task that does nothing, per task (2 jobs): "
        + ", ".join(f"{name} {1e3 * s:.2f} ms" for name, s in result["task_overhead_s"].items())
        + ".",
    ]
    if "ray_start_up" in result:
        ray = result["ray_start_up"]
        lines += [
            "Ray's overhead per task beyond the local pool's: "
            f"{1e3 * result['ray_overhead_per_task_s']:.2f} ms.",
            "",
            f"Ray's start-up: import {ray['import_s']:.1f} s, `ray.init` of a local Ray with 2 CPUs "
            f"{ray['init_s']:.1f} s, first tasks {ray['first_tasks_s']:.1f} s; memory (resident, all "
            f"processes of the session) {ray['session_rss_idle_mib']:.0f} MiB idle, "
            f"{ray['session_rss_with_workers_mib']:.0f} MiB with its 2 workers started (this driver "
            f"alone: {ray['driver_rss_before_mib']:.0f} MiB before importing Ray).",
        ]
    if "training" in result:
        t = result["training"]
        lines += [
            "",
            f"PPO training (`train.py --algo ppo`, default hyperparameters, one core): "
            f"{1e3 * t['per_step_s']:.2f} ms per environment step, {t['start_up_s']:.1f} s of start-up "
            f"(runs of {t['steps'][0]} and {t['steps'][1]} steps).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/scaling.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--seeds", type=int, default=6, help="seeds 0..N-1 per agent and scenario (default: 6)"
    )
    parser.add_argument(
        "--horizon-s", type=float, default=60.0, help="simulated seconds per episode (default: 60)"
    )
    parser.add_argument(
        "--no-ray", dest="ray", action="store_false", help="the local backend only (default: local and Ray)"
    )
    parser.add_argument("--training", action="store_true", help="also time PPO training steps")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_JSON,
        help=f"JSON file of every measurement (default: {display_path(DEFAULT_JSON)})",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=DEFAULT_MARKDOWN,
        help=f"Markdown table to write (default: {display_path(DEFAULT_MARKDOWN)})",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or not args.horizon_s > 0:
        parser.error("--seeds must be >= 1 and --horizon-s > 0")
    if args.ray and importlib.util.find_spec("ray") is None:
        parser.error('Ray is not installed: pip install -e ".[dist]", or use --no-ray')
    args.argv = argv
    result = measure(args)
    write_json_atomic(args.out, result)
    write_atomic(args.markdown, markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "grid"}, indent=1))
    print(f"wrote {args.out} and {args.markdown}")
    return 0 if result["identical_results"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
