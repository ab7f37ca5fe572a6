"""Train a reinforcement-learning scheduler on a batchenv scenario with Stable-Baselines3.

Examples::

    python train.py --algo ppo                                  # default scenario, 1M steps
    python train.py --algo dqn --env high_load -n 200000 --seed 3
    python train.py --algo maskable_ppo --env my_scenario.yaml --hyperparams learning_rate=1e-4 gamma=0.995
    python train.py --algo ppo --resume runs/ppo_default_1/best_model.zip -n 500000
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
import copy
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import ProgressBarCallback
from torch.utils.tensorboard import SummaryWriter

from agents.callbacks import CheckpointEveryCallback, DomainEvalCallback
from agents.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from agents.checkpoint_safety import parse_schedule
from agents.hyperparameters import (
    MAX_N_ENVS,
    OWN_KEYS,
    check_rollout,
    load_hyperparams,
    read_hyperparams_file,
    validate_hyperparams,
)
from agents.interrupt import StopRequest, StopTrainingOnRequest
from agents.replay_buffer_io import load_replay_buffer, replay_buffer_path, save_replay_buffer
from agents.rl import ALGORITHMS, make_training_env
from agents.semi_markov import SEMI_MARKOV_BUFFERS, DiscountFromInfoCallback
from batchenv.actions import ActionCodec
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.observation import ObservationBuilder
from batchenv.scenarios import load_scenario
from batchenv.seeds import parse_seeds


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
    eval_scenarios: list[str] | None = None
    eval_seeds: list[int] = field(default_factory=lambda: [10_000, 10_001])
    eval_horizon_s: float = 20.0
    save_freq: int = 100_000
    hyperparams: dict[str, Any] = field(default_factory=dict)
    hyperparams_file: str | None = None
    resume: str | None = None
    device: str = "cpu"
    torch_threads: int = 1
    runs_dir: str = "runs"
    run_name: str | None = None
    progress: bool = True
    verbose: int = 1


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
        help="environment steps to train (default: n_timesteps of the hyperparameter file; with "
        "--resume, the steps the checkpoint's run had left, so that the learning-rate and "
        "exploration schedules go on where they stopped); with --resume, steps on top of the "
        "checkpoint's, the schedules then spread over both. Training runs whole rollouts and stops at the "
        "first that reaches the count, so it is rounded up: to a multiple of n_envs x n_steps for "
        "ppo, maskable_ppo and a2c (-n 2048 with ppo's 4 envs x 2048 steps trains 8192), of n_envs x "
        "train_freq for dqn; the step count printed at the end includes a resumed checkpoint's",
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
        help="comma-separated evaluation seeds, kept apart from training seeds (default: 10000,10001)",
    )
    parser.add_argument(
        "--eval-horizon-s",
        type=float,
        default=20.0,
        help="simulated seconds per evaluation episode (default: 20)",
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
        help="continue training from a checkpoint .zip: its config, seed, hyperparameters, reward "
        "settings, normalisation statistics and (DQN) replay buffer, kept next to final_model.zip and "
        "interrupted.zip only, are restored; only -n and the evaluation/saving flags apply "
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
        "a local Ray)",
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
        if value == getattr(defaults, dest) and dest not in ("algo", "env"):
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
    if ns.rate is not None and not ns.rate > 0:
        parser.error(f"--rate must be > 0 (requests/s), got {ns.rate}")
    if not ns.eval_horizon_s > 0:
        parser.error(f"--eval-horizon-s must be > 0, got {ns.eval_horizon_s}")
    if ns.eval_rates is not None and any(r <= 0 for r in ns.eval_rates):
        parser.error("--eval-rates: every rate must be > 0 (requests/s)")
    if ns.eval_rates is not None and ns.eval_scenarios is not None:
        parser.error("--eval-rates and --eval-scenarios exclude each other")
    if ns.run_name is not None and (
        not ns.run_name or ns.run_name != _RUN_NAME.sub("_", ns.run_name) or ns.run_name.startswith(".")
    ):
        parser.error(f"--run-name: use letters, digits and _.+- (not starting with '.'), got {ns.run_name!r}")
    return TrainArgs(**vars(ns))


_RUN_NAME = re.compile(r"[^A-Za-z0-9_.+-]")


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


def new_run_dir(runs_dir: Path, algo: str, scenario: str) -> Path:
    """``runs/{algo}_{scenario}_{N}`` with the next free N, created exclusively. Characters of
    the scenario name outside ``[A-Za-z0-9_.+-]`` become ``_`` (a name never leaves ``runs_dir``)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{algo}_{_RUN_NAME.sub('_', scenario).lstrip('.') or 'scenario'}"
    n = 1 + max(
        (
            int(p.name.rsplit("_", 1)[1])
            for p in runs_dir.glob(f"{prefix}_*")  # no glob characters left in it
            if p.name.rsplit("_", 1)[1].isdigit()
        ),
        default=0,
    )
    while True:
        run_dir = runs_dir / f"{prefix}_{n}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def _log_hyperparams(tb_dir: Path, args: TrainArgs, params: dict[str, Any]) -> None:
    """CleanRL-style: every argument and hyperparameter as a text table in TensorBoard."""
    rows = {**{f"arg/{k}": v for k, v in asdict(args).items()}, **{f"hp/{k}": v for k, v in params.items()}}
    table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows.items())
    with SummaryWriter(str(tb_dir / "hyperparameters")) as writer:
        writer.add_text("hyperparameters", table)


@dataclass
class RunPlan:
    """What a run trains, resolved from the flags (or from the checkpoint it resumes)."""

    config: SystemConfig
    hyperparams: dict[str, Any]  # batchenv's own keys and SB3's, as recorded in the checkpoints
    checkpoint: Checkpoint | None
    seed: int = 0  # of the training envs and the model: --seed, or the resumed checkpoint's
    target_timesteps: int | None = None  # steps the run (resumed ones included) trains to

    @property
    def sb3_params(self) -> dict[str, Any]:
        """The SB3 constructor's keyword arguments."""
        return {k: v for k, v in self.hyperparams.items() if k not in OWN_KEYS}

    def own(self, key: str, default: Any = None) -> Any:
        """One of batchenv's own hyperparameters (:data:`agents.hyperparameters.OWN_KEYS`)."""
        return self.hyperparams.get(key, default)


def plan_run(args: TrainArgs) -> RunPlan:
    """The config and hyperparameters of the run; a resumed run takes every setting from its
    checkpoint (the hyperparameter files and ``--hyperparams`` do not apply to it).

    :raises ConfigError: for a bad scenario, hyperparameter or flag combination.
    :raises CheckpointError: for a checkpoint that cannot be resumed.
    """
    if args.resume:
        if args.hyperparams_file:
            raise ConfigError(
                "--hyperparams-file",
                "does not apply with --resume: a resumed run keeps its checkpoint's hyperparameters",
            )
        if args.hyperparams:
            raise ConfigError(
                "--hyperparams",
                "does not apply with --resume: a resumed run keeps its checkpoint's hyperparameters",
            )
        if args.rate is not None:
            raise ConfigError(
                "--rate", "does not apply with --resume: a resumed run keeps its checkpoint's config"
            )
        checkpoint = load_checkpoint(args.resume, device=args.device)
        if checkpoint.algo != args.algo:
            raise ConfigError(
                "--algo", f"{args.algo!r} but --resume {args.resume} holds a {checkpoint.algo!r} model"
            )
        hyperparams = dict(checkpoint.meta.get("hyperparams") or {})
        if not hyperparams:
            raise CheckpointError(
                f"checkpoint {args.resume}: no recorded hyperparameters, cannot resume faithfully"
            )
        validate_hyperparams(hyperparams, **network_sizes(checkpoint.config))
        # seed and target_timesteps: checked by load_checkpoint (optional integers)
        return RunPlan(checkpoint.config, hyperparams, checkpoint, seed=checkpoint.meta.get("seed") or 0)
    config = load_scenario(args.env)
    hyperparams = load_hyperparams(args.algo, config.name)
    if args.hyperparams_file:
        hyperparams.update(read_hyperparams_file(args.hyperparams_file))
    hyperparams.update(args.hyperparams)
    validate_hyperparams(hyperparams, **network_sizes(config))
    if args.rate is not None:
        config = config.at_rate(args.rate).replace(name=f"{config.name}_rate{args.rate:g}")
    if hyperparams.get("discount_horizon_s") is not None and args.algo not in SEMI_MARKOV_BUFFERS:
        raise ConfigError(
            "hyperparams.discount_horizon_s",
            f"applies to {sorted(SEMI_MARKOV_BUFFERS)}, not {args.algo!r} (which discounts per step)",
        )
    return RunPlan(config, hyperparams, None, seed=args.seed)


def timesteps_to_train(args: TrainArgs, plan: RunPlan, done: int) -> tuple[int, str | None]:
    """How many steps to train, and a note to print (or None).

    A new run trains ``-n`` (default: the hyperparameters' ``n_timesteps``). A resumed run
    without ``-n`` trains the steps its run had left (its checkpoint's ``target_timesteps`` less
    the ``done`` ones), so that the learning-rate and exploration schedules, which SB3 spreads
    over the steps done plus those of the current call, go on where they stopped; with ``-n``
    they are spread over ``done + n`` instead, and the note says so.
    """
    default = int(plan.own("n_timesteps", 1_000_000))
    if plan.checkpoint is None:
        return int(args.n_timesteps or default), None
    target = plan.checkpoint.meta.get("target_timesteps")
    if args.n_timesteps is None and target is not None and target > done:
        return target - done, f"resuming at {done} of {target} steps: {target - done} more"
    n = int(args.n_timesteps or default)
    if target is None:
        return n, f"resuming at {done} steps: {n} more (the checkpoint records no target)"
    if done + n == target:
        return n, f"resuming at {done} of {target} steps: {n} more"
    return n, (
        f"resuming at {done} steps: {n} more, so the schedules (learning rate, exploration) now "
        f"run to {done + n} steps, not the {target} of the run (leave out -n to continue them)"
    )


def network_sizes(config: SystemConfig) -> dict[str, int]:
    """What the policy's networks read and score on ``config``'s env: its observation size and
    number of actions (``validate_hyperparams``' ``n_inputs`` and ``n_outputs``)."""
    return {
        "n_inputs": ObservationBuilder(config).space.shape[0],
        "n_outputs": int(ActionCodec(config).space.n),
    }


def training_envs(args: TrainArgs, plan: RunPlan) -> int:
    """The number of parallel training envs: ``--n-envs``, else the hyperparameters'; a resumed
    run keeps its model's (SB3 cannot give a loaded model another number).

    :raises ConfigError: for a resumed run with another ``--n-envs``, or a rollout
        (``n_steps * n_envs``) over :data:`agents.hyperparameters.MAX_ROLLOUT_TRANSITIONS`.
    """
    if plan.checkpoint is None:
        n_envs = int(args.n_envs or plan.own("n_envs", 1))
        check_rollout(plan.hyperparams.get("n_steps"), n_envs)
        return n_envs
    n_envs = int(plan.checkpoint.model.n_envs)
    if args.n_envs not in (None, n_envs):
        raise ConfigError(
            "--n-envs", f"{args.n_envs}, but --resume {args.resume} holds a model of {n_envs} envs (kept)"
        )
    return n_envs


def build_model(args: TrainArgs, plan: RunPlan, venv: Any, tb_root: Path) -> Any:
    """The SB3 model: the checkpoint's (with its training state restored) or a new one."""
    if plan.checkpoint is not None:
        model = plan.checkpoint.model
        model.set_env(venv)
        restore_training_state(venv, plan.checkpoint.meta)
        try:
            restored = load_replay_buffer(model, plan.checkpoint.path)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {plan.checkpoint.path}: replay buffer: {exc}") from None
        if getattr(model, "replay_buffer", None) is not None and not restored:
            print(
                f"warning: no replay buffer next to {plan.checkpoint.path} "
                f"({replay_buffer_path(plan.checkpoint.path).name}): it starts empty. "
                "final_model.zip and interrupted.zip keep theirs; checkpoints/step_*.zip and "
                "best_model.zip do not",
                file=sys.stderr,
            )
    else:
        params = plan.sb3_params
        horizon_s = plan.own("discount_horizon_s")
        if horizon_s is not None:
            buffer_argument, buffer_class = SEMI_MARKOV_BUFFERS[args.algo]
            params[buffer_argument] = buffer_class
        try:
            model = ALGORITHMS[args.algo](
                plan.own("policy", "MlpPolicy"),
                venv,
                seed=plan.seed,
                device=args.device,
                verbose=0,
                tensorboard_log=str(tb_root),
                **{k: parse_schedule(v) for k, v in copy.deepcopy(params).items()},
            )
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError("hyperparams", f"{args.algo} rejects a hyperparameter: {exc}") from None
    model.tensorboard_log = str(tb_root)
    return model


def train(
    args: TrainArgs,
    command: str,
    stop: StopRequest | None = None,
    listeners: list[Callable[[dict[str, Any]], None]] | None = None,
) -> Path:
    """Run one training job; returns the run folder.

    :param stop: set by SIGINT/SIGTERM (see :mod:`agents.interrupt`): training ends at the next
        step and ``interrupted.zip`` is saved. A run stopped before training started leaves no
        run folder behind.
    :param listeners: called with every evaluation's record (:class:`DomainEvalCallback`), e.g.
        to report it to Ray Tune.
    """
    stop = stop or StopRequest()
    torch.set_num_threads(args.torch_threads)
    plan = plan_run(args)
    config = plan.config
    n_envs = training_envs(args, plan)
    done = int(plan.checkpoint.model.num_timesteps) if plan.checkpoint is not None else 0
    n_timesteps, note = timesteps_to_train(args, plan, done)
    plan.target_timesteps = done + n_timesteps
    if plan.checkpoint is None:  # record what runs (--n-envs, -n), not the file's defaults
        plan.hyperparams.update(n_envs=n_envs, n_timesteps=n_timesteps)
    if args.run_name:
        Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
        run_dir = Path(args.runs_dir) / args.run_name
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ConfigError(
                "--run-name", f"{run_dir} exists already: a run folder is never reused"
            ) from None
    else:
        run_dir = new_run_dir(Path(args.runs_dir), args.algo, config.name)
    tb_root = Path(args.tensorboard_log) if args.tensorboard_log else run_dir / "tb"
    try:
        write_atomic(run_dir / "config.yml", config.to_yaml())
        write_atomic(run_dir / "hyperparams.yml", yaml.safe_dump(plan.hyperparams, sort_keys=False))
        write_atomic(run_dir / "args.yml", yaml.safe_dump(asdict(args), sort_keys=False))
        write_atomic(run_dir / "command.txt", command + "\n")
        venv = make_training_env(
            config,
            n_envs,
            plan.seed,
            reward_scale=float(plan.own("reward_scale", 1.0)),
            reward_center=bool(plan.own("reward_center", False)),
            reward_per_request=bool(plan.own("reward_per_request", False)),
            normalize_obs=bool(plan.own("normalize_obs", False)),
            normalize_reward=bool(plan.own("normalize_reward", True)),
            gamma=float(plan.hyperparams.get("gamma", 0.99)),
        )
        model = build_model(args, plan, venv, tb_root)
        if note:
            print(note)
        _log_hyperparams(tb_root / run_dir.name, args, plan.hyperparams)
        callbacks = _callbacks(args, plan, run_dir, command, stop, listeners or [])
        if stop.requested:
            raise KeyboardInterrupt
    except BaseException:  # a failed or interrupted start leaves no run folder behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(f"run folder: {run_dir}\ntensorboard: tensorboard --logdir {tb_root}")
    extra = _extra(args, plan, command)
    try:
        model.learn(
            total_timesteps=n_timesteps,
            callback=callbacks,
            tb_log_name=run_dir.name,
            reset_num_timesteps=plan.checkpoint is None,
        )
    except KeyboardInterrupt:  # a second Ctrl-C, or no signal handler (not the main thread)
        for callback in callbacks:
            if isinstance(callback, ProgressBarCallback) and callback.pbar is not None:
                callback.pbar.close()  # an open bar keeps the interpreter from exiting
        path = save_checkpoint(
            model, run_dir / "interrupted.zip", config, algo=args.algo, vecnormalize=venv, extra=extra
        )
        save_replay_buffer(model, path)
        print(f"\ninterrupted at {model.num_timesteps} steps; saved {path}", file=sys.stderr)
        raise
    name = "interrupted.zip" if stop.requested else "final_model.zip"
    path = save_checkpoint(model, run_dir / name, config, algo=args.algo, vecnormalize=venv, extra=extra)
    save_replay_buffer(model, path)
    venv.close()
    if stop.requested:
        print(f"stopped by {stop.signal_name} at {model.num_timesteps} steps; saved {path}")
        return run_dir
    print(f"trained {model.num_timesteps} steps; final model {path}")
    if (run_dir / "best_model.zip").exists():
        print(f"best model (lowest mean gap to reference): {run_dir / 'best_model.zip'}")
    return run_dir


def _extra(args: TrainArgs, plan: RunPlan, command: str) -> dict[str, Any]:
    """What every checkpoint of the run records besides the model (resume reads it back)."""
    return {
        "command": command,
        "scenario": plan.config.name,
        "seed": plan.seed,
        "hyperparams": plan.hyperparams,
        "target_timesteps": plan.target_timesteps,
    }


def evaluation_targets(args: TrainArgs, config: SystemConfig) -> list[tuple[str, SystemConfig]]:
    """What a run evaluates on: ``--eval-scenarios`` by name, else the training config at
    ``--eval-rates`` (default for a rate range: those of 50, 200, 400/s inside it, else its
    middle), else the training config itself."""
    if args.eval_scenarios:
        return [(load_scenario(name).name, load_scenario(name)) for name in args.eval_scenarios]
    rates = args.eval_rates
    if rates is None and config.arrivals.rate_range_per_s is not None:
        low, high = config.arrivals.rate_range_per_s
        rates = [r for r in (50.0, 200.0, 400.0) if low <= r <= high] or [(low + high) / 2]
    if rates is None:
        return [("scenario", config)]
    return [(f"rate_{r:g}", config.at_rate(r)) for r in rates]


def _callbacks(
    args: TrainArgs,
    plan: RunPlan,
    run_dir: Path,
    command: str,
    stop: StopRequest,
    listeners: list[Callable[[dict[str, Any]], None]],
) -> list[Any]:
    """The run's callbacks: stop on a signal, the semi-Markov discount, checkpoints, evaluation."""
    config, extra = plan.config, _extra(args, plan, command)
    callbacks: list[Any] = [StopTrainingOnRequest(stop)]
    if args.progress:
        callbacks.append(ProgressBarCallback())
    horizon_s = plan.own("discount_horizon_s")
    if horizon_s is not None:
        callbacks.append(DiscountFromInfoCallback(float(horizon_s)))
    if args.save_freq:
        callbacks.append(
            CheckpointEveryCallback(args.save_freq, run_dir / "checkpoints", config, args.algo, extra)
        )
    if args.eval_freq:
        evaluation = DomainEvalCallback(
            args.eval_freq,
            run_dir,
            config,
            args.algo,
            targets=evaluation_targets(args, config),
            seeds=args.eval_seeds,
            horizon_s=args.eval_horizon_s,
            extra=extra,
            listeners=listeners,
        )
        evaluation.verbose = args.verbose
        callbacks.append(evaluation)
    return callbacks


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
