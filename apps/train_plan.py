"""What a training run trains: the flags of train.py (:class:`TrainArgs`) resolved into a
:class:`RunPlan` (config, hyperparameters, seed; a resumed run's from its checkpoint), the number of
parallel envs and the steps to train."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from agents.hyperparameters import (
    OWN_KEYS,
    check_rollout,
    load_hyperparams,
    read_hyperparams_file,
    validate_hyperparams,
)
from agents.semi_markov import SEMI_MARKOV_BUFFERS
from batchenv.actions import ActionCodec
from batchenv.arrival_config import MAX_EPISODE_REQUESTS
from batchenv.config import ConfigError, SystemConfig
from batchenv.observation import ObservationBuilder
from batchenv.scenarios import load_scenario


@dataclass
class TrainArgs:
    """Every flag of train.py (logged to TensorBoard and saved as args.yml)."""

    algo: str | None = None  # None: a resumed checkpoint's algorithm, else DEFAULT_ALGO
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


DEFAULT_ALGO = "ppo"
"""The algorithm of a new run when ``--algo`` is not given (a resumed run keeps its checkpoint's)."""


@dataclass
class RunPlan:
    """What a run trains, resolved from the flags (or from the checkpoint it resumes)."""

    algo: str  # --algo, a resumed checkpoint's algorithm, or DEFAULT_ALGO
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
    """The algorithm, config and hyperparameters of the run; a resumed run takes every setting
    from its checkpoint, its algorithm included (the hyperparameter files and ``--hyperparams``
    do not apply to it; an ``--algo`` given must be the checkpoint's).

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
        if args.algo is not None and checkpoint.algo != args.algo:
            raise ConfigError(
                "--algo",
                f"{args.algo!r} but --resume {args.resume} holds a {checkpoint.algo!r} model "
                "(leave out --algo: a resumed run keeps its checkpoint's algorithm)",
            )
        hyperparams = dict(checkpoint.meta.get("hyperparams") or {})
        if not hyperparams:
            raise CheckpointError(
                f"checkpoint {args.resume}: no recorded hyperparameters, cannot resume faithfully"
            )
        validate_hyperparams(hyperparams, **network_sizes(checkpoint.config))
        # seed and target_timesteps: checked by load_checkpoint (optional integers)
        return RunPlan(
            checkpoint.algo, checkpoint.config, hyperparams, checkpoint, seed=checkpoint.meta.get("seed") or 0
        )
    algo = args.algo or DEFAULT_ALGO
    config = _training_scenario(args.env)
    hyperparams = load_hyperparams(algo, config.name)
    if args.hyperparams_file:
        hyperparams.update(read_hyperparams_file(args.hyperparams_file))
    hyperparams.update(args.hyperparams)
    validate_hyperparams(hyperparams, **network_sizes(config))
    if args.rate is not None:
        config = _at_rate(config, args.rate).replace(name=f"{config.name}_rate{args.rate:g}")
    if hyperparams.get("discount_horizon_s") is not None and algo not in SEMI_MARKOV_BUFFERS:
        raise ConfigError(
            "hyperparams.discount_horizon_s",
            f"applies to {sorted(SEMI_MARKOV_BUFFERS)}, not {algo!r} (which discounts per step)",
        )
    return RunPlan(algo, config, hyperparams, None, seed=args.seed)


def _training_scenario(env: str) -> SystemConfig:
    """The scenario of ``--env``; a ConfigError names the flag (and the field of a bad YAML)."""
    try:
        return load_scenario(env)
    except ConfigError as exc:
        if exc.field == "scenario":  # unknown name: the message says how to list the known ones
            raise ConfigError("--env", exc.message) from None
        raise ConfigError("--env", f"{env}: {exc}") from None


def _at_rate(config: SystemConfig, rate: float) -> SystemConfig:
    """``config`` at the fixed mean rate ``rate`` (``--rate``); a ConfigError names the flag and
    the allowed range (an episode of ``horizon_s`` holds at most ``MAX_EPISODE_REQUESTS``)."""
    high = MAX_EPISODE_REQUESTS / config.horizon_s
    if not (math.isfinite(rate) and 0 < rate <= high):
        raise ConfigError(
            "--rate",
            f"must be in (0, {high:g}] requests/s on {config.name!r} (at most {MAX_EPISODE_REQUESTS:g} "
            f"requests in its {config.horizon_s:g} s episodes), got {rate:g}",
        )
    try:
        return config.at_rate(rate)
    except ConfigError as exc:
        raise ConfigError("--rate", f"{rate:g} requests/s does not fit {config.name!r}: {exc}") from None


def timesteps_to_train(args: TrainArgs, plan: RunPlan, done: int) -> tuple[int, str | None]:
    """How many steps to train, and a note to print (or None).

    A new run trains ``-n`` (default: the hyperparameters' ``n_timesteps``). A resumed run
    without ``-n`` trains the steps its run had left (its checkpoint's ``target_timesteps`` less
    the ``done`` ones), so that the learning-rate and exploration schedules, which SB3 spreads
    over the steps done plus those of the current call, go on where they stopped; with ``-n``
    they are spread over ``done + n`` instead, and the note says so.

    :raises CheckpointError: for a resumed run without ``-n`` whose checkpoint has reached its
        target (a complete run: ``-n`` says how much further to train).
    """
    default = int(plan.own("n_timesteps", 1_000_000))
    if plan.checkpoint is None:
        return int(args.n_timesteps or default), None
    target = plan.checkpoint.meta.get("target_timesteps")
    if args.n_timesteps is None and target is not None:
        if target > done:
            return target - done, f"resuming at {done} of {target} steps: {target - done} more"
        raise CheckpointError(
            f"checkpoint {args.resume}: the run is complete ({done} steps trained, its target "
            f"{target}); pass -n to train further"
        )
    n = int(args.n_timesteps or default)
    if target is None:
        return n, f"resuming at {done} steps: {n} more (the checkpoint records no target)"
    if done + n == target:
        return n, f"resuming at {done} of {target} steps: {n} more"
    if done >= target:
        return n, (
            f"resuming a complete run at {done} steps: {n} more, so the schedules (learning rate, "
            f"exploration) now run to {done + n} steps, not the {target} of the run"
        )
    return n, (
        f"resuming at {done} steps: {n} more, so the schedules (learning rate, exploration) now "
        f"run to {done + n} steps, not the {target} of the run (leave out -n to continue them)"
    )


def training_seed(plan: RunPlan, done: int) -> int:
    """The seed of the training envs (``seed .. seed + n_envs - 1``) and of the model's random
    generators for this call: the run's seed for a new run; for a resumed run, one derived
    deterministically from the run's seed and the ``done`` steps of its checkpoint (NumPy's
    ``SeedSequence([seed, done])``, in [0, 2**32 - 1]), so that it goes on with new episodes
    instead of replaying those its run began with, and resuming the same checkpoint twice trains
    the same. The checkpoints keep recording the run's own seed."""
    if plan.checkpoint is None or done == 0:
        return plan.seed
    return int(np.random.SeedSequence([plan.seed, done]).generate_state(1)[0])


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
