"""Self-contained checkpoints of learned agents, and the scheduler that runs them.

A checkpoint is the zip Stable-Baselines3 writes (``model.save``) with two more members:

- ``batchenv/meta.json``: format version, algorithm, timesteps, reward shaping, the observation
  normalisation statistics (VecNormalize's running mean/variance, or null), observation names,
  number of actions, and the training command;
- ``batchenv/config.yaml``: the SystemConfig the agent was trained on.

SB3 ignores members it does not know, so ``PPO.load(path)`` still works; :func:`load_checkpoint`
restores everything. Checkpoints are written to a temporary file and renamed, so a crash never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Scheduler
from agents.checkpoint_safety import (
    check_archive,
    check_data_hyperparams,
    check_sizes,
    safe_custom_objects,
    validate_meta,
    verify_shipped,
)
from agents.rl import ALGORITHMS
from agents.semi_markov import SEMI_MARKOV_BUFFERS
from batchenv.actions import ActionCodec
from batchenv.config import ConfigError, SystemConfig
from batchenv.observation import ObservationBuilder
from batchenv.safe_yaml import YamlError, load_yaml
from batchenv.sim import Decision, Simulator

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "RLScheduler",
    "load_checkpoint",
    "restore_training_state",
    "save_checkpoint",
]

FORMAT_VERSION = 1
_META = "batchenv/meta.json"
_CONFIG = "batchenv/config.yaml"


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the reason."""


class CheckpointMismatchError(CheckpointError):
    """A valid checkpoint whose observation or action space does not fit the scenario (e.g. a
    one-worker agent on two workers)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the SB3 model, the training config and the metadata."""

    path: Path
    model: Any
    config: SystemConfig
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def algo(self) -> str:
        """The algorithm name (``ppo``, ``dqn``, ...)."""
        return self.meta["algo"]


def observation_normalization(vecnormalize: Any) -> dict[str, Any] | None:
    """VecNormalize's observation statistics as plain lists (None if it does not normalise)."""
    if vecnormalize is None or not getattr(vecnormalize, "norm_obs", False):
        return None
    rms = vecnormalize.obs_rms
    return {
        "mean": np.asarray(rms.mean, dtype=float).tolist(),
        "var": np.asarray(rms.var, dtype=float).tolist(),
        "count": float(rms.count),
        "clip": float(vecnormalize.clip_obs),
        "epsilon": float(vecnormalize.epsilon),
    }


def reward_normalization(vecnormalize: Any) -> dict[str, Any] | None:
    """VecNormalize's return statistics (for resuming training; inference does not need them)."""
    if vecnormalize is None or not getattr(vecnormalize, "norm_reward", False):
        return None
    rms = vecnormalize.ret_rms
    return {"mean": float(rms.mean), "var": float(rms.var), "count": float(rms.count)}


def reward_centring(vecnormalize: Any) -> dict[str, list[float]] | None:
    """The running cost and arrival totals of each env's :class:`~agents.rl.RegretReward`
    centring (for resuming training), or None when the reward is not centred."""
    if vecnormalize is None or not all(vecnormalize.get_attr("center")):
        return None
    return {
        "total_cost": [float(x) for x in vecnormalize.get_attr("total_cost")],
        "total_arrivals": [int(x) for x in vecnormalize.get_attr("total_arrivals")],
    }


def restore_training_state(vecnormalize: Any, meta: dict[str, Any]) -> None:
    """Put a checkpoint's saved statistics back into a VecNormalize and the envs under it
    (resuming training): observation and return normalisation, and the reward centring's
    running totals (spread over the envs when their number changed)."""
    restore_normalization(vecnormalize, meta)
    centring = meta.get("reward_centring")
    if not centring or not all(vecnormalize.get_attr("center")):
        return
    costs, arrivals = centring.get("total_cost"), centring.get("total_arrivals")
    if not (
        isinstance(costs, list) and isinstance(arrivals, list) and len(costs) == len(arrivals) > 0
    ) or not all(isinstance(x, int | float) and math.isfinite(x) for x in costs + arrivals):
        raise CheckpointError("meta.json field 'reward_centring' is damaged: expected two lists of numbers")
    n = vecnormalize.num_envs
    if len(costs) != n:  # another number of envs: spread the totals evenly
        costs, arrivals = [sum(costs) / n] * n, [sum(arrivals) // n] * n
    for i in range(n):
        vecnormalize.set_attr("total_cost", float(costs[i]), indices=i)
        vecnormalize.set_attr("total_arrivals", int(arrivals[i]), indices=i)


def restore_normalization(vecnormalize: Any, meta: dict[str, Any]) -> None:
    """Put a checkpoint's saved statistics back into a VecNormalize (resuming training)."""
    obs = meta.get("observation_normalization")
    if obs and vecnormalize.norm_obs:
        vecnormalize.obs_rms.mean = np.asarray(obs["mean"], dtype=np.float64)
        vecnormalize.obs_rms.var = np.asarray(obs["var"], dtype=np.float64)
        vecnormalize.obs_rms.count = obs["count"]
    ret = meta.get("reward_normalization")
    if ret and vecnormalize.norm_reward:
        vecnormalize.ret_rms.mean = np.float64(ret["mean"])
        vecnormalize.ret_rms.var = np.float64(ret["var"])
        vecnormalize.ret_rms.count = ret["count"]


def save_checkpoint(
    model: Any,
    path: str | Path,
    config: SystemConfig,
    *,
    algo: str,
    vecnormalize: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` + config + metadata to ``path`` (``.zip``) atomically; returns the path."""
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.zip")
    try:
        model.save(tmp)
        meta = {
            "format_version": FORMAT_VERSION,
            "algo": algo,
            "timesteps": int(model.num_timesteps),
            "observation_normalization": observation_normalization(vecnormalize),
            "reward_normalization": reward_normalization(vecnormalize),
            "reward_centring": reward_centring(vecnormalize),
            "n_observations": int(np.prod(model.observation_space.shape)),
            "n_actions": int(model.action_space.n),
            **(extra or {}),
        }
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(_META, json.dumps(meta, indent=2))
            archive.writestr(_CONFIG, config.to_yaml())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`; CheckpointError if it cannot be used.

    Nothing in the file is unpickled (:mod:`agents.checkpoint_safety`): a checkpoint from an
    untrusted source cannot run code or exhaust memory here; a shipped checkpoint is also
    checked against its recorded SHA-256.
    """
    path = Path(path)
    where = f"checkpoint {path}"
    if not path.is_file():
        raise CheckpointError(f"{where}: file not found")
    verify_shipped(path, CheckpointError)
    try:
        with zipfile.ZipFile(path) as archive:
            check_archive(archive, where, CheckpointError)
            names = set(archive.namelist())
            if _META not in names or _CONFIG not in names:
                raise CheckpointError(
                    f"{where}: no {_META}: not a batchenv checkpoint (save agents with train.py), "
                    "or a truncated file"
                )
            if "data" not in names:
                raise CheckpointError(f"{where}: no SB3 'data' member: not a Stable-Baselines3 model")
            damaged = archive.testzip()
            if damaged is not None:
                raise CheckpointError(f"{where}: member {damaged!r} is corrupted (CRC mismatch)")
            meta = _read_json(archive, _META, where)
            config_data = load_yaml(archive.read(_CONFIG).decode("utf-8"))
            data = _read_json(archive, "data", where)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        reason = str(exc)[:100]
        raise CheckpointError(f"{where}: not a zip archive (corrupted or truncated file): {reason}") from None
    except (YamlError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{where}: unreadable metadata ({type(exc).__name__})") from None
    meta = validate_meta(meta, where, CheckpointError)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {meta.get('format_version')!r}, this batchenv reads {FORMAT_VERSION}"
        )
    algo = meta.get("algo")
    if not isinstance(algo, str) or algo not in ALGORITHMS:
        raise CheckpointError(f"{where}: unknown algo {str(algo)[:40]!r}; known: {sorted(ALGORITHMS)}")
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: its SB3 'data' member is not a JSON object")
    try:
        config = SystemConfig.from_dict(config_data)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: its config is invalid: {exc}") from None
    check_sizes(data, where, CheckpointError)
    check_data_hyperparams(
        data,
        algo_class=ALGORITHMS[algo],
        hyperparams=meta.get("hyperparams", {}),
        timesteps=meta["timesteps"],
        where=where,
        error=CheckpointError,
    )
    space = ObservationBuilder(config).space
    for what, recorded, actual in (
        ("observations", meta["n_observations"], space.shape[0]),
        ("actions", meta["n_actions"], ActionCodec(config).space.n),
    ):
        if recorded != actual:
            raise CheckpointError(f"{where}: meta.json says {recorded} {what}, its config {actual}")
    custom = safe_custom_objects(
        data,
        algo=algo,
        algo_class=ALGORITHMS[algo],
        observation_space=space,
        n_actions=meta["n_actions"],
        hyperparams=meta.get("hyperparams", {}),
        buffer_classes=SEMI_MARKOV_BUFFERS,
        where=where,
        error=CheckpointError,
    )
    try:
        model = ALGORITHMS[algo].load(path, device=device, custom_objects=custom)
    except Exception as exc:  # SB3 raises many kinds on damaged archives
        raise CheckpointError(
            f"{where}: the {algo} model cannot be loaded ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    model.tensorboard_log = None  # never a path from the file (train.py sets the run's own)
    return Checkpoint(path=path, model=model, config=config, meta=meta)


def _read_json(archive: zipfile.ZipFile, member: str, where: str) -> Any:
    """The JSON document in ``member`` of the archive.

    :raises CheckpointError: naming the member if it is not JSON that Python reads: bad syntax or
        UTF-8, nesting too deep, or an integer longer than Python converts (4300 digits).
    """
    try:
        return json.loads(archive.read(member))
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, UTF-8, digits
        reason = f"{type(exc).__name__}: {str(exc).split(';')[0][:100]}"
        raise CheckpointError(
            f"{where}: unreadable metadata: member {member!r} is not valid JSON ({reason})"
        ) from None


class RLScheduler(Scheduler):
    """Runs a learned agent on the simulator: at each epoch it builds the environment's
    observation (with the checkpoint's normalisation) and takes the model's deterministic action.
    It meets the same observations as it would through :class:`~batchenv.env.DynamicBatchingEnv`.

    :param checkpoint: a loaded checkpoint (or a path to one).
    :param config: the system to run on (default: the training config). Its observation and
        action spaces must match the checkpoint's.
    :param deterministic: take the most likely action (default) or sample.
    """

    def __init__(
        self,
        checkpoint: Checkpoint | str | Path,
        config: SystemConfig | None = None,
        *,
        deterministic: bool = True,
    ) -> None:
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        config = config or checkpoint.config
        super().__init__(config)
        self.checkpoint = checkpoint
        self.name = checkpoint.path.stem
        self.model = checkpoint.model
        self.deterministic = deterministic
        # The env options (rate-estimate time constant, batch choice) are the agent's own: it
        # observes and acts as it was trained, on whatever system it now serves.
        agent_view = config.replace(env=checkpoint.config.env)
        self.observe = ObservationBuilder(agent_view)
        self.codec = ActionCodec(agent_view)
        meta = checkpoint.meta
        if self.observe.space.shape[0] != meta["n_observations"] or self.codec.space.n != meta["n_actions"]:
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint.path}: trained with {meta['n_observations']} observations and "
                f"{meta['n_actions']} actions, but scenario {config.name!r} has "
                f"{self.observe.space.shape[0]} and {self.codec.space.n} (n_workers, models and "
                "env.batch_choice must match the training config)"
            )
        norm = meta.get("observation_normalization")
        self._norm = None
        if norm:
            self._norm = (
                np.asarray(norm["mean"], dtype=np.float32),
                np.sqrt(np.asarray(norm["var"], dtype=np.float32) + norm["epsilon"]),
                norm["clip"],
            )
        self._masked = meta["algo"] == "maskable_ppo"

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: restart the observation's running estimates."""
        self.observe.reset()

    def prime_estimates(self, sim: Simulator, rate_per_s: float, utilisation: float) -> None:
        """Start the observation's rate and utilisation estimates at the given steady-state
        values (see :meth:`batchenv.observation.ObservationBuilder.prime`)."""
        self.observe.prime(sim, rate_per_s, utilisation)

    def decide(self, sim: Simulator) -> Decision:
        """The model's greedy action on the observation of ``sim``, as a decision."""
        obs = self.observe(sim)
        if self._norm is not None:
            mean, std, clip = self._norm
            obs = np.clip((obs - mean) / std, -clip, clip).astype(np.float32)
        masks = self.codec.masks(sim) if self._masked else None
        if self.deterministic:
            action = self._greedy_action(obs, masks)
        elif masks is not None:
            action, _ = self.model.predict(obs, deterministic=False, action_masks=masks)
        else:
            action, _ = self.model.predict(obs, deterministic=False)
        return self.codec.decision(int(action))

    def _greedy_action(self, obs: np.ndarray, masks: np.ndarray | None) -> int:
        """The model's most likely action, straight from its network (what ``predict(...,
        deterministic=True)`` returns, without SB3's per-call overhead)."""
        policy = self.model.policy
        with torch.no_grad():
            x = torch.from_numpy(obs).unsqueeze(0)
            if hasattr(policy, "q_net"):  # DQN
                scores = policy.q_net(x)[0]
            else:  # actor-critic: the logits of the categorical policy
                features = policy.extract_features(x, policy.pi_features_extractor)
                scores = policy.action_net(policy.mlp_extractor.forward_actor(features))[0]
            if masks is not None:
                scores = scores.masked_fill(torch.from_numpy(~masks), -torch.inf)
            return int(torch.argmax(scores))

    def params(self) -> dict[str, Any]:
        """The algorithm and the training steps of the checkpoint (for reports)."""
        return {"algo": self.checkpoint.algo, "timesteps": self.checkpoint.meta.get("timesteps")}
