"""Train a reinforcement-learning scheduler on a batchenv scenario with Stable-Baselines3.

Examples::

    python train.py --algo ppo                                  # default scenario, 1M steps
    python train.py --algo dqn --env high_load -n 200000 --seed 3
    python train.py --algo maskable_ppo --env my_scenario.yaml --hyperparams learning_rate=1e-4 gamma=0.995
    python train.py --algo ppo --resume runs/ppo_default_1/best_model.zip -n 500000
    tensorboard --logdir runs                                    # watch the curves

Each run gets its own folder ``runs/{algo}_{scenario}_{N}/`` holding ``config.yml`` (the resolved
scenario), ``hyperparams.yml``, ``args.yml``, ``command.txt``, ``checkpoints/step_*.zip``,
``best_model.zip`` (best evaluation score), ``final_model.zip``, ``evaluations.json`` and the
TensorBoard logs (``tb/``). Checkpoints are self-contained (config + model + normalisation) and
are written atomically. Ctrl-C saves ``interrupted.zip`` and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic

HYPERPARAMS_DIR = Path(__file__).resolve().parents[1] / "agents" / "hyperparams"
_OWN_KEYS = (
    "n_timesteps",
    "n_envs",
    "policy",
    "normalize_obs",
    "normalize_reward",
    "reward_scale",
    "reward_center",
    "discount_horizon_s",
)


@dataclass
class TrainArgs:
    """Every flag of train.py (logged to TensorBoard and saved as args.yml)."""

    algo: str = "ppo"
    env: str = "default"
    rate: float | None = None
    n_timesteps: int | None = None
    seed: int = 0
    n_envs: int | None = None
    tensorboard_log: str | None = None
    eval_freq: int = 25_000
    eval_rates: list[float] | None = None
    eval_seeds: list[int] = field(default_factory=lambda: [10_000, 10_001])
    eval_horizon_s: float = 20.0
    save_freq: int = 100_000
    hyperparams: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    device: str = "cpu"
    torch_threads: int = 1
    runs_dir: str = "runs"
    progress: bool = True
    verbose: int = 1


def _parse_key_values(items: list[str]) -> dict[str, Any]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--hyperparams: expected key=value, got {item!r}")
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
        default="ppo",
        help="RL algorithm (default: ppo; maskable_ppo uses the env's action masks)",
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
        help="environment steps to train (default: n_timesteps of the hyperparameter file)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the training envs and the model (default 0)"
    )
    parser.add_argument(
        "--n-envs", type=int, default=None, help="parallel envs (default: from the hyperparameter file)"
    )
    parser.add_argument(
        "-tb", "--tensorboard-log", default=None, help="TensorBoard log root (default: <run folder>/tb)"
    )
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=25_000,
        help="evaluate every this many env steps; 0 disables (default 25000)",
    )
    parser.add_argument(
        "--eval-rates",
        type=_csv(float, "--eval-rates"),
        default=None,
        help="comma-separated mean arrival rates (requests/s) to evaluate at "
        "(default: the scenario's own rate; for rate-randomised scenarios 50,200,400)",
    )
    parser.add_argument(
        "--eval-seeds",
        type=_csv(int, "--eval-seeds"),
        default=[10_000, 10_001],
        help="comma-separated evaluation seeds, kept apart from training seeds (default 10000,10001)",
    )
    parser.add_argument(
        "--eval-horizon-s",
        type=float,
        default=20.0,
        help="simulated seconds per evaluation episode (default 20)",
    )
    parser.add_argument(
        "--save-freq",
        type=int,
        default=100_000,
        help="checkpoint every this many env steps; 0 disables (default 100000)",
    )
    parser.add_argument(
        "--hyperparams",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override hyperparameters, e.g. learning_rate=1e-4 gamma=0.995 "
        "'policy_kwargs={net_arch: [128, 128]}'",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue training from a checkpoint .zip (its config is used)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: fastest for these small networks)",
    )
    parser.add_argument("--runs-dir", default="runs", help="parent folder of run folders (default runs)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="verbosity (default 1)")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        ns.hyperparams = _parse_key_values(ns.hyperparams)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    for flag, value, minimum in (
        ("-n/--n-timesteps", ns.n_timesteps, 1),
        ("--n-envs", ns.n_envs, 1),
        ("--eval-freq", ns.eval_freq, 0),
        ("--save-freq", ns.save_freq, 0),
        ("--torch-threads", ns.torch_threads, 1),
    ):
        if value is not None and value < minimum:
            parser.error(f"{flag} must be >= {minimum}, got {value}")
    if ns.rate is not None and not ns.rate > 0:
        parser.error(f"--rate must be > 0 (requests/s), got {ns.rate}")
    if not ns.eval_horizon_s > 0:
        parser.error(f"--eval-horizon-s must be > 0, got {ns.eval_horizon_s}")
    if ns.eval_rates is not None and any(r <= 0 for r in ns.eval_rates):
        parser.error("--eval-rates: every rate must be > 0 (requests/s)")
    return TrainArgs(**vars(ns))


def load_hyperparams(algo: str, scenario: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The algorithm's hyperparameters for ``scenario`` (or its ``default`` entry) with overrides."""
    path = HYPERPARAMS_DIR / f"{algo}.yml"
    table = yaml.safe_load(path.read_text()) or {}
    params = dict(table.get(scenario, table.get("default", {})))
    params.update(overrides)
    return params


def _schedule(value: Any) -> Any:
    """rl-zoo style ``lin_<x>``: a value decaying linearly from x to 0 over training."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value.removeprefix("lin_"))
        return lambda progress_remaining: progress_remaining * start
    return value


def new_run_dir(runs_dir: Path, algo: str, scenario: str) -> Path:
    """``runs/{algo}_{scenario}_{N}`` with the next free N, created exclusively."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    n = 1 + max(
        (
            int(p.name.rsplit("_", 1)[1])
            for p in runs_dir.glob(f"{algo}_{scenario}_*")
            if p.name.rsplit("_", 1)[1].isdigit()
        ),
        default=0,
    )
    while True:
        run_dir = runs_dir / f"{algo}_{scenario}_{n}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def _log_hyperparams(tb_dir: Path, args: TrainArgs, params: dict[str, Any]) -> None:
    """CleanRL-style: every argument and hyperparameter as a text table in TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter

    rows = {**{f"arg/{k}": v for k, v in asdict(args).items()}, **{f"hp/{k}": v for k, v in params.items()}}
    table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows.items())
    with SummaryWriter(str(tb_dir / "hyperparameters")) as writer:
        writer.add_text("hyperparameters", table)


def train(args: TrainArgs, command: str) -> Path:
    """Run one training job; returns the run folder."""
    import torch

    from agents.callbacks import CheckpointEveryCallback, DomainEvalCallback
    from agents.checkpoint import load_checkpoint, restore_normalization, save_checkpoint
    from agents.rl import ALGORITHMS, make_training_env
    from agents.semi_markov import SEMI_MARKOV_BUFFERS, DiscountFromInfoCallback
    from batchenv.scenarios import load_scenario

    torch.set_num_threads(args.torch_threads)
    checkpoint = load_checkpoint(args.resume, device=args.device) if args.resume else None
    if checkpoint is not None and checkpoint.algo != args.algo:
        raise ConfigError(
            "--algo", f"{args.algo!r} but --resume {args.resume} holds a {checkpoint.algo!r} model"
        )
    config: SystemConfig = checkpoint.config if checkpoint else load_scenario(args.env)
    params = load_hyperparams(args.algo, config.name, args.hyperparams)
    if args.rate is not None:
        config = config.at_rate(args.rate).replace(name=f"{config.name}_rate{args.rate:g}")
    n_timesteps = int(args.n_timesteps or params.get("n_timesteps", 1_000_000))
    n_envs = int(args.n_envs or params.get("n_envs", 1))
    own = {k: params.pop(k) for k in _OWN_KEYS if k in params}
    policy = own.get("policy", "MlpPolicy")

    run_dir = new_run_dir(Path(args.runs_dir), args.algo, config.name)
    tb_root = Path(args.tensorboard_log) if args.tensorboard_log else run_dir / "tb"
    write_atomic(run_dir / "config.yml", config.to_yaml())
    write_atomic(run_dir / "hyperparams.yml", yaml.safe_dump({**own, **params}, sort_keys=False))
    extra_hyperparams = {**own, **params}
    write_atomic(run_dir / "args.yml", yaml.safe_dump(asdict(args), sort_keys=False))
    write_atomic(run_dir / "command.txt", command + "\n")
    _log_hyperparams(tb_root / run_dir.name, args, {**own, **params})

    venv = make_training_env(
        config,
        n_envs,
        args.seed,
        reward_scale=float(own.get("reward_scale", 1.0)),
        reward_center=bool(own.get("reward_center", False)),
        normalize_obs=bool(own.get("normalize_obs", False)),
        normalize_reward=bool(own.get("normalize_reward", True)),
        gamma=float(params.get("gamma", 0.99)),
    )
    algo_cls = ALGORITHMS[args.algo]
    horizon_s = own.get("discount_horizon_s")
    if horizon_s is not None:
        if args.algo not in SEMI_MARKOV_BUFFERS:
            raise ConfigError(
                "hyperparams.discount_horizon_s",
                f"applies to {sorted(SEMI_MARKOV_BUFFERS)}, not {args.algo!r} (which discounts per step)",
            )
        buffer_argument, buffer_class = SEMI_MARKOV_BUFFERS[args.algo]
        params[buffer_argument] = buffer_class
    if checkpoint is not None:
        model = checkpoint.model
        model.set_env(venv)
        restore_normalization(venv, checkpoint.meta)
    else:
        try:
            model = algo_cls(
                policy,
                venv,
                seed=args.seed,
                device=args.device,
                verbose=0,
                tensorboard_log=str(tb_root),
                **{k: _schedule(v) for k, v in copy.deepcopy(params).items()},
            )
        except TypeError as exc:
            raise ConfigError("hyperparams", f"{args.algo} rejects a hyperparameter: {exc}") from None
    model.tensorboard_log = str(tb_root)

    extra = {"command": command, "scenario": config.name, "seed": args.seed, "hyperparams": extra_hyperparams}
    callbacks: list = [] if horizon_s is None else [DiscountFromInfoCallback(float(horizon_s))]
    if args.save_freq:
        callbacks.append(
            CheckpointEveryCallback(args.save_freq, run_dir / "checkpoints", config, args.algo, extra)
        )
    if args.eval_freq:
        rates = args.eval_rates
        if rates is None and config.arrivals.rate_range_per_s is not None:
            low, high = config.arrivals.rate_range_per_s
            rates = [r for r in (50.0, 200.0, 400.0) if low <= r <= high] or [(low + high) / 2]
        callbacks.append(
            DomainEvalCallback(
                args.eval_freq,
                run_dir,
                config,
                args.algo,
                rates=rates,
                seeds=args.eval_seeds,
                horizon_s=args.eval_horizon_s,
                extra=extra,
            )
        )
        callbacks[-1].verbose = args.verbose
    print(f"run folder: {run_dir}\ntensorboard: tensorboard --logdir {tb_root}")
    try:
        model.learn(
            total_timesteps=n_timesteps,
            callback=callbacks,
            tb_log_name=run_dir.name,
            reset_num_timesteps=checkpoint is None,
            progress_bar=args.progress,
        )
    except KeyboardInterrupt:
        path = save_checkpoint(
            model, run_dir / "interrupted.zip", config, algo=args.algo, vecnormalize=venv, extra=extra
        )
        print(f"\ninterrupted at {model.num_timesteps} steps; saved {path}")
        raise
    path = save_checkpoint(
        model, run_dir / "final_model.zip", config, algo=args.algo, vecnormalize=venv, extra=extra
    )
    print(f"trained {model.num_timesteps} steps; final model {path}")
    if (run_dir / "best_model.zip").exists():
        print(f"best model (by evaluation score): {run_dir / 'best_model.zip'}")
    venv.close()
    return run_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python train.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    from agents.checkpoint import CheckpointError

    try:
        train(args, command)
    except KeyboardInterrupt:
        return 130
    except (ConfigError, CheckpointError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
