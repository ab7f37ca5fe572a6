"""One training run of train.py, once planned (:mod:`apps.train_plan`): its run folder and the
files in it, the SB3 model and its envs, the hyperparameters logged to TensorBoard, the callbacks
(checkpoints, evaluation, stopping) and the saved models."""

from __future__ import annotations

import copy
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import ProgressBarCallback
from stable_baselines3.common.logger import Logger, configure

from agents.callbacks import CheckpointEveryCallback, DomainEvalCallback
from agents.checkpoint import CheckpointError, restore_training_state, save_checkpoint
from agents.checkpoint_safety import parse_schedule
from agents.interrupt import StopRequest, StopTrainingOnRequest
from agents.replay_buffer_io import load_replay_buffer, replay_buffer_path, save_replay_buffer
from agents.rl import ALGORITHMS, make_training_env
from agents.semi_markov import SEMI_MARKOV_BUFFERS, DiscountFromInfoCallback
from apps.train_plan import (
    RunPlan,
    TrainArgs,
    plan_run,
    timesteps_to_train,
    training_envs,
    training_seed,
)
from batchenv.arrival_config import MAX_EPISODE_REQUESTS
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_atomic
from batchenv.scenarios import load_scenario

_RUN_NAME = re.compile(r"[^A-Za-z0-9_.+-]")


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


def tensorboard_dir(tb_root: Path, run_name: str) -> Path:
    """The TensorBoard folder of a run: ``tb_root/<run name>`` (``_2``, ``_3``, ... appended if a
    run of another runs folder sharing ``--tensorboard-log`` took it). SB3's curves, the
    evaluation metrics and the hyperparameter table all go there, so TensorBoard shows the run
    as one."""
    tb_dir, n = tb_root / run_name, 1
    while tb_dir.exists():
        n += 1
        tb_dir = tb_root / f"{run_name}_{n}"
    return tb_dir


def _log_hyperparams(logger: Logger, args: TrainArgs, params: dict[str, Any]) -> None:
    """CleanRL-style: every argument and hyperparameter as a text table in TensorBoard (through
    the run's own SB3 logger, so in the run's folder)."""
    rows = {**{f"arg/{k}": v for k, v in asdict(args).items()}, **{f"hp/{k}": v for k, v in params.items()}}
    table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in rows.items())
    logger.record("hyperparameters", table)
    logger.dump(0)


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
            buffer_argument, buffer_class = SEMI_MARKOV_BUFFERS[plan.algo]
            params[buffer_argument] = buffer_class
        try:
            model = ALGORITHMS[plan.algo](
                plan.own("policy", "MlpPolicy"),
                venv,
                seed=plan.seed,
                device=args.device,
                verbose=0,
                tensorboard_log=str(tb_root),
                **{k: parse_schedule(v) for k, v in copy.deepcopy(params).items()},
            )
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError("hyperparams", f"{plan.algo} rejects a hyperparameter: {exc}") from None
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
    args = replace(args, algo=plan.algo)  # args.yml records what runs (a resumed checkpoint's)
    config = plan.config
    check_evaluation(args, config)
    n_envs = training_envs(args, plan)
    done = int(plan.checkpoint.model.num_timesteps) if plan.checkpoint is not None else 0
    n_timesteps, note = timesteps_to_train(args, plan, done)
    seed = training_seed(plan, done)  # a resumed run's: from the run's seed and the steps done
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
        run_dir = new_run_dir(Path(args.runs_dir), plan.algo, config.name)
    tb_root = Path(args.tensorboard_log) if args.tensorboard_log else run_dir / "tb"
    try:
        write_atomic(run_dir / "config.yml", config.to_yaml())
        write_atomic(run_dir / "hyperparams.yml", yaml.safe_dump(plan.hyperparams, sort_keys=False))
        write_atomic(run_dir / "args.yml", yaml.safe_dump(asdict(args), sort_keys=False))
        write_atomic(run_dir / "command.txt", command + "\n")
        venv = make_training_env(
            config,
            n_envs,
            seed,
            reward_scale=float(plan.own("reward_scale", 1.0)),
            reward_center=bool(plan.own("reward_center", False)),
            reward_per_request=bool(plan.own("reward_per_request", False)),
            normalize_obs=bool(plan.own("normalize_obs", False)),
            normalize_reward=bool(plan.own("normalize_reward", True)),
            gamma=float(plan.hyperparams.get("gamma", 0.99)),
        )
        model = build_model(args, plan, venv, tb_root)
        if plan.checkpoint is not None:  # a new model was seeded by its constructor
            model.set_random_seed(seed)
        if note:
            print(note)
        model.set_logger(configure(str(tensorboard_dir(tb_root, run_dir.name)), ["tensorboard"]))
        _log_hyperparams(model.logger, args, plan.hyperparams)
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
            reset_num_timesteps=plan.checkpoint is None,  # the logger is the run's own (above)
        )
    except KeyboardInterrupt:  # a second Ctrl-C, or no signal handler (not the main thread)
        for callback in callbacks:
            if isinstance(callback, ProgressBarCallback) and callback.pbar is not None:
                callback.pbar.close()  # an open bar keeps the interpreter from exiting
        path = save_checkpoint(
            model, run_dir / "interrupted.zip", config, algo=plan.algo, vecnormalize=venv, extra=extra
        )
        save_replay_buffer(model, path)
        print(f"\ninterrupted at {model.num_timesteps} steps; saved {path}", file=sys.stderr)
        raise
    name = "interrupted.zip" if stop.requested else "final_model.zip"
    path = save_checkpoint(model, run_dir / name, config, algo=plan.algo, vecnormalize=venv, extra=extra)
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


def check_evaluation(args: TrainArgs, config: SystemConfig) -> None:
    """Refuse, before the run starts, evaluation targets that cannot be built (``--eval-rates``
    out of the scenario's range) or whose ``--eval-horizon-s`` episodes would hold more than
    ``MAX_EPISODE_REQUESTS`` requests (an evaluation keeps every request in memory).

    :raises ConfigError: naming the flag.
    """
    if not args.eval_freq:
        return
    try:
        targets = evaluation_targets(args, config)
    except ConfigError as exc:
        flag = "--eval-scenarios" if args.eval_scenarios else "--eval-rates"
        raise ConfigError(flag, str(exc)) from None
    for label, target in targets:
        arrivals = target.arrivals
        peak = max((arrivals.mean_rate_per_s, *(arrivals.rate_range_per_s or ())))
        if peak * args.eval_horizon_s > MAX_EPISODE_REQUESTS:
            raise ConfigError(
                "--eval-horizon-s",
                f"{args.eval_horizon_s:g} s at up to {peak:g} requests/s ({label}) is more than "
                f"{MAX_EPISODE_REQUESTS:g} requests per evaluation episode; use a shorter horizon",
            )


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
            CheckpointEveryCallback(args.save_freq, run_dir / "checkpoints", config, plan.algo, extra)
        )
    if args.eval_freq:
        evaluation = DomainEvalCallback(
            args.eval_freq,
            run_dir,
            config,
            plan.algo,
            targets=evaluation_targets(args, config),
            seeds=args.eval_seeds,
            horizon_s=args.eval_horizon_s,
            extra=extra,
            listeners=listeners,
        )
        evaluation.verbose = args.verbose
        callbacks.append(evaluation)
    return callbacks
