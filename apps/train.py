"""Train a reinforcement-learning scheduler on a batchenv scenario with Stable-Baselines3.

Examples::

    python train.py --algo ppo                                  # default scenario, 1M steps
    python train.py --algo dqn --env high_load -n 200000 --seed 3
    python train.py --algo maskable_ppo --env my_scenario.yaml --hyperparams learning_rate=1e-4 gamma=0.995
    python train.py -i runs/dqn_high_load_1/interrupted.zip     # resume: its algorithm, settings, steps left
    python train.py --algo ppo --env default_mixture --seeds 0-2 --eval-scenarios bursty,poisson_05
    python train.py --algo ppo --rate 200 --hyperparams-file benchmarks/results/search_ppo_rate200_best.yml
    tensorboard --logdir runs                                    # watch the curves

Each run gets its own folder ``runs/{algo}_{scenario}_{N}/`` holding ``config.yml`` (the resolved
scenario), ``hyperparams.yml``, ``args.yml``, ``command.txt``, ``checkpoints/step_*.zip``,
``best_model.zip`` (best evaluation score), ``final_model.zip``, ``evaluations.json`` and the
TensorBoard logs (``tb/``). Checkpoints are self-contained (config + model + normalisation) and
are written atomically. Ctrl-C saves ``interrupted.zip`` and exits with status 130.

``--seeds 0-4`` trains one run per seed as Ray Tune trials (:mod:`apps.sweep`; needs the ``dist``
extra): each trial writes exactly the run folder above, ``runs/<sweep>/{algo}_{scenario}_seed{k}/``,
and the sweep writes ``aggregate.json`` and ``aggregate.md`` (the final evaluation's mean and 95%
confidence interval across the seeds) next to them; Tune's own records go to
``runs/<sweep>/tune/``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Any

import torch
import yaml

from agents.checkpoint import CheckpointError
from agents.hyperparameters import MAX_N_ENVS
from agents.interrupt import StopRequest
from apps.train_plan import DEFAULT_ALGO, TrainArgs, plan_run
from apps.train_run import _RUN_NAME, new_run_dir, train
from batchenv.config import ConfigError
from batchenv.scenarios import load_scenario
from batchenv.seeds import parse_seeds

__all__ = [  # plan_run and new_run_dir: apps.search and apps.sweep import them from here
    "SweepArgs",
    "TrainArgs",
    "build_parser",
    "command_line_of",
    "main",
    "new_run_dir",
    "parse_args",
    "parse_command_line",
    "plan_run",
    "train",
]


EVAL_HORIZON_RANGE_S = (1.0, 3600.0)
"""Allowed ``--eval-horizon-s`` (simulated seconds per evaluation episode): at least 1 s (a 1 ms
episode holds no arrival at the usual rates: its cost is NaN and no model is ever the best), at
most an hour (an evaluation keeps every request of its episodes in memory)."""


def _parse_key_values(items: list[str]) -> dict[str, Any]:
    """``KEY:VALUE`` (rl-zoo) or ``KEY=VALUE`` items; values are YAML scalars, lists or mappings."""
    result = {}
    for item in items:
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:=](.*)$", item, re.DOTALL)
        if not match:
            raise argparse.ArgumentTypeError(f"--hyperparams: expected KEY:VALUE, got {item!r}")
        key, value = match.group(1), match.group(2)
        try:
            parsed = yaml.safe_load(value)
            if isinstance(parsed, str):  # YAML 1.1 reads "1e-4" as a string
                with contextlib.suppress(ValueError):
                    parsed = float(parsed)
            result[key] = parsed
        except yaml.YAMLError:
            raise argparse.ArgumentTypeError(
                f"--hyperparams: cannot parse the value of {key!r}: {value!r}"
            ) from None
    return result


def _csv(kind: type, flag: str):
    def parse(text: str):
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag}: expected comma-separated {kind.__name__}s, got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"{flag}: empty list")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    from agents.rl import ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--algo",
        choices=sorted(ALGORITHMS),
        default=None,
        help=f"RL algorithm (default: {DEFAULT_ALGO}; with --resume, the checkpoint's; maskable_ppo "
        "uses the env's action masks)",
    )
    parser.add_argument(
        "--env",
        default="default",
        help="scenario name (see batchenv/configs/) or path to a scenario YAML (default: default)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="fix the scenario's mean arrival rate (requests/s), no domain randomisation; "
        "the run is named <scenario>_rate<R>",
    )
    parser.add_argument(
        "-n",
        "--n-timesteps",
        type=int,
        default=None,
        help="environment steps to train (default: n_timesteps of the hyperparameter file). With --resume:"
        " without -n, the steps the checkpoint's run had left, so that the learning-rate and "
        "exploration schedules go on where they stopped (a complete run is refused); with -n, that "
        "many steps on top of the checkpoint's, the schedules then spread over both. Training runs "
        "whole rollouts and stops at the first that reaches the count, so it is rounded up: to a "
        "multiple of n_envs x n_steps for ppo, maskable_ppo and a2c (-n 2048 with ppo's 4 envs x 2048"
        " steps trains 8192), of n_envs x train_freq for dqn; the step count printed at the end "
        "includes a resumed checkpoint's",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the training envs and the model (default: 0)"
    )
    parser.add_argument(
        "--n-envs",
        type=int,
        default=None,
        help=f"parallel envs, 1 to {MAX_N_ENVS} (default: from the hyperparameter file; a resumed run "
        "keeps its model's)",
    )
    parser.add_argument(
        "-tb", "--tensorboard-log", default=None, help="TensorBoard log root (default: <run folder>/tb)"
    )
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=25_000,
        help="evaluate every this many env steps; 0 disables (default: 25000)",
    )
    parser.add_argument(
        "--eval-rates",
        type=_csv(float, "--eval-rates"),
        default=None,
        help="comma-separated mean arrival rates (requests/s) to evaluate at "
        "(default: the scenario's own rate; for rate-randomised scenarios 50,200,400)",
    )
    parser.add_argument(
        "--eval-scenarios",
        type=_csv(str, "--eval-scenarios"),
        default=None,
        help="comma-separated scenario names or YAML paths to evaluate on instead of the training "
        "scenario's rates (e.g. bursty,poisson_05,azure_trace_native_train: never a _test part)",
    )
    parser.add_argument(
        "--eval-seeds",
        type=_csv(int, "--eval-seeds"),
        default=[10_000, 10_001],
        help="comma-separated evaluation seeds in [0, 2**32 - 1], kept apart from training seeds "
        "(default: 10000,10001)",
    )
    parser.add_argument(
        "--eval-horizon-s",
        type=float,
        default=20.0,
        help=f"simulated seconds per evaluation episode, {EVAL_HORIZON_RANGE_S[0]:g} to "
        f"{EVAL_HORIZON_RANGE_S[1]:g} (default: 20)",
    )
    parser.add_argument(
        "--save-freq",
        type=int,
        default=100_000,
        help="checkpoint every this many env steps; 0 disables (default: 100000)",
    )
    parser.add_argument(
        "--hyperparams",
        nargs="*",
        default=[],
        metavar="KEY:VALUE",
        help="override hyperparameters, rl-zoo style KEY:VALUE (KEY=VALUE works too), e.g. "
        "learning_rate:1e-4 gamma:0.995 'policy_kwargs:{net_arch: [128, 128]}'",
    )
    parser.add_argument(
        "--hyperparams-file",
        default=None,
        metavar="YAML",
        help="a YAML file of KEY: VALUE hyperparameters (e.g. the best of a search, apps/search.py) "
        "that overrides the algorithm's file entry; --hyperparams overrides it in turn",
    )
    parser.add_argument(
        "-i",
        "--trained-agent",
        "--resume",
        dest="resume",
        default=None,
        metavar="PATH",
        help="continue training from a checkpoint .zip: its algorithm, config, seed, hyperparameters, reward "
        "settings, normalisation statistics and (DQN) replay buffer, kept next to final_model.zip and "
        "interrupted.zip only, are restored; only -n and the evaluation/saving flags apply; the envs "
        "are seeded from the run's seed and the steps done, so that they draw new episodes "
        "(rl-zoo's -i; --resume is the same flag)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1: fastest for these small networks)",
    )
    parser.add_argument(
        "-f",
        "--log-folder",
        "--runs-dir",
        dest="runs_dir",
        default="runs",
        help="parent folder of run folders (default: runs; rl-zoo's -f; --runs-dir is the same flag)",
    )
    parser.add_argument(
        "--run-name",
        default=None,
        help="name of the run folder inside the runs folder (default: {algo}_{scenario}_{N}, N the "
        "next free number; with --seeds: of the sweep's folder, default {algo}_{scenario}_seeds_{N}); "
        "it must not exist yet",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="SEEDS",
        help="train one run per seed (e.g. 0-4 or 0,3,7) as Ray Tune trials and write the mean and "
        "95%% CI of their final evaluations (needs pip install -e '.[dist]'; see apps/sweep.py)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="with --seeds (and in a search, apps/search.py): trials at once, one CPU each (default: 2)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --seeds (and in a search): a Ray cluster to join ('auto' or host:port; default: "
        "a local Ray); its nodes must share --runs-dir (docs/scaling.md)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="verbosity (default: 1)")
    return parser


@dataclass
class SweepArgs:
    """The flags of a multi-seed run (``--seeds``): which seeds, trials at once, Ray address."""

    seeds: list[int]
    jobs: int = 2
    address: str | None = None


def parse_command_line(argv: list[str] | None = None) -> tuple[TrainArgs, SweepArgs | None]:
    """The training flags, and the multi-seed flags when ``--seeds`` is given (exits 2 with a
    one-line message on a bad command line)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    seeds, jobs, address = ns.seeds, ns.jobs, ns.address
    del ns.seeds, ns.jobs, ns.address
    args = _train_args(parser, ns)
    if seeds is None:
        if address is not None:
            parser.error("--address applies only with --seeds")
        return args, None
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    if jobs < 1:
        parser.error(f"--jobs must be >= 1, got {jobs}")
    for flag, value in (("--seed", args.seed != 0), ("--resume", args.resume)):
        if value:
            parser.error(f"{flag} does not apply with --seeds (each trial has its own seed)")
    return args, SweepArgs(seed_list, jobs, address)


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    """The training flags of one run (``--seeds`` is read by :func:`parse_command_line`)."""
    args, sweep = parse_command_line(argv)
    if sweep is not None:
        build_parser().error("--seeds: use parse_command_line")
    return args


def command_line_of(args: TrainArgs) -> list[str]:
    """The train.py flags that give ``args`` (only those that differ from the defaults): the
    command line that reproduces one run of a sweep on its own."""
    defaults = TrainArgs()
    argv: list[str] = []
    for action in build_parser()._actions:
        dest = action.dest
        if dest not in TrainArgs.__dataclass_fields__:
            continue
        value = getattr(args, dest)
        if value is None or (value == getattr(defaults, dest) and dest not in ("algo", "env")):
            continue
        flag = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
        if isinstance(action, argparse._StoreFalseAction):
            argv.append(flag)
        elif dest == "hyperparams":
            argv += [flag, *(f"{k}:{_inline_yaml(v)}" for k, v in value.items())]
        elif isinstance(value, list):
            argv += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
        else:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def _inline_yaml(value: Any) -> str:
    """``value`` as one line of YAML (``--hyperparams KEY:VALUE`` reads it back)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")


def _train_args(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> TrainArgs:
    try:
        ns.hyperparams = _parse_key_values(ns.hyperparams)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    for flag, value, minimum in (
        ("-n/--n-timesteps", ns.n_timesteps, 1),
        ("--eval-freq", ns.eval_freq, 0),
        ("--save-freq", ns.save_freq, 0),
        ("--torch-threads", ns.torch_threads, 1),
    ):
        if value is not None and value < minimum:
            parser.error(f"{flag} must be >= {minimum}, got {value}")
    if ns.n_envs is not None and not 1 <= ns.n_envs <= MAX_N_ENVS:
        parser.error(f"--n-envs must be in [1, {MAX_N_ENVS}] (as hyperparams.n_envs), got {ns.n_envs}")
    if not 0 <= ns.seed < 2**32:
        parser.error(f"--seed must be in [0, 2**32 - 1], got {ns.seed}")
    if ns.algo is None and not ns.resume:  # a resumed run keeps its checkpoint's (train_plan)
        ns.algo = DEFAULT_ALGO
    if ns.resume:
        for flag, given in (("--env", ns.env != "default"), ("--seed", ns.seed != 0)):
            if given:
                parser.error(
                    f"{flag} does not apply with --resume: a resumed run keeps its checkpoint's "
                    "scenario and seed"
                )
    _check_device(parser, ns.device)
    for name in ns.eval_scenarios or ():
        if name.endswith("_test"):
            parser.error(
                f"--eval-scenarios: {name!r} is a held-out test half; evaluate during training on "
                "training data only (its _train half, say)"
            )
        try:
            load_scenario(name)
        except ConfigError as exc:
            parser.error(f"--eval-scenarios: {exc}")
    if ns.rate is not None and not (math.isfinite(ns.rate) and ns.rate > 0):
        parser.error(
            f"--rate must be a finite number > 0 (requests/s; at most 1e7 requests per episode of the "
            f"scenario's horizon_s), got {ns.rate:g}"
        )
    low, high = EVAL_HORIZON_RANGE_S
    if not low <= ns.eval_horizon_s <= high:  # NaN fails too
        parser.error(
            f"--eval-horizon-s must be in [{low:g}, {high:g}] (simulated s), got {ns.eval_horizon_s:g}"
        )
    if ns.eval_rates is not None and not all(math.isfinite(r) and r > 0 for r in ns.eval_rates):
        parser.error("--eval-rates: every rate must be a finite number > 0 (requests/s)")
    bad_seed = next((s for s in ns.eval_seeds if not 0 <= s < 2**32), None)
    if bad_seed is not None:
        parser.error(f"--eval-seeds: every seed must be in [0, 2**32 - 1], got {bad_seed}")
    if ns.eval_rates is not None and ns.eval_scenarios is not None:
        parser.error("--eval-rates and --eval-scenarios exclude each other")
    if ns.run_name is not None and (
        not ns.run_name or ns.run_name != _RUN_NAME.sub("_", ns.run_name) or ns.run_name.startswith(".")
    ):
        parser.error(f"--run-name: use letters, digits and _.+- (not starting with '.'), got {ns.run_name!r}")
    return TrainArgs(**vars(ns))


def _check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """``parser.error`` unless ``device`` names a torch device this machine has."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        parser.error(f"--device: {device!r} is not a torch device ({' '.join(str(exc).split())})")
    if parsed.type == "cuda" and (
        not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()
    ):
        parser.error(f"--device {device}: no such CUDA device on this machine (use cpu)")
    if parsed.type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda[:N], got {device!r}")


def main(argv: list[str] | None = None) -> int:
    """Train as the command line ``argv`` says; returns the exit code: 0, 2 for a bad command
    line or configuration, 130 when stopped by Ctrl-C or SIGTERM (the model saved if training
    had started)."""
    args, sweep = parse_command_line(argv)
    command = "python train.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if sweep is not None:
        from apps.sweep import run_seeds  # imports Ray (heavy, optional): only for --seeds

        return run_seeds(args, sweep, command)
    stop = StopRequest()
    try:
        with stop.installed():
            train(args, command, stop)
    except KeyboardInterrupt:
        print("train.py: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    return 130 if stop.requested else 0


if __name__ == "__main__":
    raise SystemExit(main())
