"""Speed of the environment and the simulator, as ratios to Gymnasium's CartPole-v1 measured in
the same process (absolute rates depend on the machine and the day; ratios much less so).

- env: steps/s of ``gymnasium.make("batchenv/DynamicBatching-v0", config=<scenario>)`` with
  uniformly random actions, against steps/s of ``gymnasium.make("CartPole-v1")`` with random
  actions. Both go through the same ``gymnasium.make`` wrappers, both draw their actions
  beforehand, both reset when done. ``--scenarios`` names the scenarios (default: ``default``,
  key ``env_steps_per_s``; another scenario's key is ``env_steps_per_s_<scenario>``). A step
  costs more on a busy scenario (a longer queue to observe and more events per step), so the
  default scenario's ratio is not the environment's speed everywhere.
- sim: requests/s of ``batchenv.sim.simulate`` driving whole episodes with a Triton-style
  timeout heuristic (dispatch at 16 queued or when the oldest has waited 20 ms, on LLM-2),
  against CartPole's steps/s.

Goals: env >= 0.5x CartPole (aim 1x); sim >= 2x CartPole's step rate, in requests/s.

Usage::

    python benchmarks/env_speed.py                 # writes benchmarks/results/env_speed.json
    python benchmarks/env_speed.py --scenarios default,high_load   # the env on a busy scenario too
    python benchmarks/env_speed.py --steps 50000 --repeats 3 --out /tmp/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import batchenv
from batchenv.config import ConfigError
from batchenv.fileio import write_atomic
from batchenv.sim import Simulator, simulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.proposed.common import display_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "env_speed.json"


def gym_steps_per_s(env_id: str, n_steps: int, seed: int = 0, **kwargs) -> float:
    """Steps/s of ``env_id`` with pre-drawn uniformly random actions (resets included)."""
    env = gym.make(env_id, **kwargs)
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=n_steps).tolist()
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def timeout_heuristic(sim: Simulator):
    """Dispatch on LLM-2 at 16 queued requests or when the oldest has waited 20 ms."""
    if sim.queue_len >= 16 or sim.oldest_wait_s >= 0.020:
        return (1, 64)
    return None


def sim_requests_per_s(scenario: str, n_requests: int, seed: int = 0) -> float:
    """Requests/s of whole-episode simulation of ``scenario`` with the timeout heuristic."""
    config = batchenv.load_scenario(scenario)
    sim = Simulator(config, record=True)
    done = 0
    elapsed = 0.0
    while done < n_requests:
        start = time.perf_counter()
        simulate(config, timeout_heuristic, seed=seed + done, sim=sim)
        elapsed += time.perf_counter() - start
        done += sim.n_arrived
    return done / elapsed


def env_key(scenario: str) -> str:
    """The results key of the env's steps/s on ``scenario``."""
    return "env_steps_per_s" if scenario == "default" else f"env_steps_per_s_{scenario}"


def measure(n_steps: int, repeats: int, scenarios: list[str] | None = None) -> dict:
    """Interleaved repeats; the best of each (least disturbed by other load on the machine).

    :param scenarios: the scenarios to step the env on (default: ``["default"]``).
    """
    scenarios = scenarios or ["default"]
    rows: dict[str, list[float]] = {
        "cartpole_steps_per_s": [],
        **{env_key(name): [] for name in scenarios},
        "env_batch_choice_steps_per_s": [],
        "sim_requests_per_s_default": [],
        "sim_requests_per_s_high_load": [],
    }
    for r in range(repeats):
        rows["cartpole_steps_per_s"].append(gym_steps_per_s("CartPole-v1", n_steps, seed=r))
        for name in scenarios:
            rows[env_key(name)].append(
                gym_steps_per_s("batchenv/DynamicBatching-v0", n_steps, seed=r, config=name)
            )
        rows["env_batch_choice_steps_per_s"].append(
            gym_steps_per_s(
                "batchenv/DynamicBatching-v0", n_steps, seed=r, overrides={"env": {"batch_choice": True}}
            )
        )
        rows["sim_requests_per_s_default"].append(sim_requests_per_s("default", 4 * n_steps, seed=r))
        rows["sim_requests_per_s_high_load"].append(sim_requests_per_s("high_load", 4 * n_steps, seed=r))
    best = {k: max(v) for k, v in rows.items()}
    cartpole = best["cartpole_steps_per_s"]
    return {
        "best": best,
        "all_repeats": rows,
        "ratios_to_cartpole": {k: v / cartpole for k, v in best.items() if k != "cartpole_steps_per_s"},
        "goals": {"env_steps_per_s": 0.5, "sim_requests_per_s_default": 2.0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=100_000, help="env steps per measurement (default: 100000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; best kept (default: 3)")
    parser.add_argument(
        "--scenarios",
        default="default",
        help="comma-separated scenarios to step the env on (default: default); the env with "
        "env.batch_choice and the simulator are measured on their fixed scenarios",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON output (default: {display_path(RESULTS)})"
    )
    args = parser.parse_args(argv)
    if args.steps < 1000 or args.repeats < 1:
        parser.error("--steps must be >= 1000 and --repeats >= 1")
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not scenarios or len(set(scenarios)) != len(scenarios):
        parser.error(f"--scenarios: a comma-separated list of distinct scenarios, got {args.scenarios!r}")
    for name in scenarios:
        try:
            batchenv.load_scenario(name)
        except ConfigError as exc:
            parser.error(f"--scenarios: {exc}")
    load_at_start = os.getloadavg()
    result = measure(args.steps, args.repeats, scenarios)
    given = sys.argv[1:] if argv is None else list(argv)
    result["meta"] = {
        "command": shlex.join(["python", "benchmarks/env_speed.py", *given]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.uname().machine,
        "cpu_count": os.cpu_count(),
        "steps": args.steps,
        "repeats": args.repeats,
        "scenarios": scenarios,
        "load_average_at_start": list(load_at_start),
        "load_average_at_end": list(os.getloadavg()),
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    cartpole = result["best"]["cartpole_steps_per_s"]
    print(f"CartPole-v1 (gymnasium.make, random actions): {cartpole:12,.0f} steps/s")
    for key, ratio in result["ratios_to_cartpole"].items():
        print(f"{key:32s} {result['best'][key]:12,.0f}   = {ratio:5.2f}x CartPole")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
