"""RL hyperparameters: the per-algorithm YAML files (rl-baselines3-zoo style) and their validation.

``agents/hyperparams/<algo>.yml`` maps scenario names to hyperparameters; ``default`` applies to
every scenario without an entry of its own. Besides SB3's constructor arguments a file may set
batchenv's own keys (:data:`OWN_KEYS`): the run length, the number of envs, the policy and the
reward shaping of :mod:`agents.rl` and :mod:`agents.semi_markov`.

:func:`validate_hyperparams` checks every value it knows before a model is built, so a typo
(``learning_rate=abc``, ``gamma=2``) is a one-line error naming the key and its allowed range,
not a traceback from inside SB3 or a run that trains on NaNs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchenv.config import ConfigError, short_repr
from batchenv.safe_yaml import YamlError, load_yaml

__all__ = [
    "HYPERPARAMS_DIR",
    "MAX_LAYERS",
    "MAX_LAYER_WIDTH",
    "MAX_NETWORK_PARAMETERS",
    "MAX_N_ENVS",
    "MAX_ROLLOUT_TRANSITIONS",
    "NETWORK_INPUTS",
    "NETWORK_OUTPUTS",
    "OWN_KEYS",
    "check_rollout",
    "is_integer_hyperparameter",
    "load_hyperparams",
    "network_parameters",
    "read_hyperparams_file",
    "validate_hyperparams",
]

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""The shipped hyperparameter files, one per algorithm (installed with the package)."""

OWN_KEYS = (
    "n_timesteps",
    "n_envs",
    "policy",
    "normalize_obs",
    "normalize_reward",
    "reward_scale",
    "reward_center",
    "reward_per_request",
    "discount_horizon_s",
)
"""Keys that batchenv reads itself (the rest are passed to the SB3 constructor)."""

MAX_N_ENVS = 1024
"""Most parallel training envs (``hyperparams.n_envs`` and ``train.py --n-envs``)."""

MAX_ROLLOUT_TRANSITIONS = 2**21
"""Most transitions of one PPO/A2C rollout, ``n_steps * n_envs`` (SB3 allocates its buffer for all
of them: about 0.7 GB at the largest observation of :data:`NETWORK_INPUTS` entries)."""

MAX_LAYER_WIDTH = 8192
"""Widest hidden layer of ``policy_kwargs.net_arch`` (units)."""

MAX_LAYERS = 16
"""Most hidden layers in one network of ``policy_kwargs.net_arch``."""

MAX_NETWORK_PARAMETERS = 50_000_000
"""Most weights and biases the networks of ``policy_kwargs.net_arch`` may hold together
(:func:`network_parameters`; 200 MB as float32, before the optimizer's state). The shipped agents
have about 10,000 ([64, 64])."""

NETWORK_INPUTS = 128
"""Observation size the parameter count assumes when the real one is not known: more than any
scenario has (7 + at most 64 workers + 8 more rate estimates + 2 SLO entries = 81)."""

NETWORK_OUTPUTS = 1024
"""Number of actions the parameter count assumes when the real one is not known: more than any
scenario has (1 + at most 16 models x 32 batch sizes = 513)."""

_UNIT = (0.0, 1.0)
_RANGES: dict[str, tuple[str, float, float, bool, bool]] = {
    # key: (kind, low, high, low inclusive, high inclusive); kind "int", "float" or "schedule"
    "n_timesteps": ("int", 1, 10**10, True, True),
    "n_envs": ("int", 1, MAX_N_ENVS, True, True),
    "reward_scale": ("float", 0.0, math.inf, False, False),
    "discount_horizon_s": ("float", 0.0, math.inf, False, False),
    "learning_rate": ("schedule", 0.0, math.inf, False, False),
    "gamma": ("float", 0.0, 1.0, False, True),
    "gae_lambda": ("float", *_UNIT, True, True),
    "clip_range": ("schedule", 0.0, math.inf, False, False),
    "clip_range_vf": ("schedule", 0.0, math.inf, False, False),
    "ent_coef": ("float", 0.0, math.inf, True, False),
    "vf_coef": ("float", 0.0, math.inf, True, False),
    "max_grad_norm": ("float", 0.0, math.inf, False, False),
    "n_steps": ("int", 1, 1_000_000, True, True),
    "batch_size": ("int", 1, 1_000_000, True, True),
    "n_epochs": ("int", 1, 10_000, True, True),
    "buffer_size": ("int", 1, 10_000_000, True, True),
    "learning_starts": ("int", 0, 10**10, True, True),
    "tau": ("float", 0.0, 1.0, False, True),
    "train_freq": ("int", 1, 10**6, True, True),
    "gradient_steps": ("int", -1, 10**6, True, True),
    "target_update_interval": ("int", 1, 10**10, True, True),
    "exploration_fraction": ("float", 0.0, 1.0, False, True),
    "exploration_initial_eps": ("float", *_UNIT, True, True),
    "exploration_final_eps": ("float", *_UNIT, True, True),
    "rms_prop_eps": ("float", 0.0, math.inf, False, False),
    "target_kl": ("float", 0.0, math.inf, False, False),
    "stats_window_size": ("int", 1, 1_000_000, True, True),
    "sde_sample_freq": ("int", -1, 10**10, True, True),
}
_NULLABLE = ("discount_horizon_s", "clip_range_vf", "target_kl")
"""Keys of :data:`_RANGES` that may also be null (off)."""
_BOOLEANS = (
    "normalize_obs",
    "normalize_reward",
    "reward_center",
    "reward_per_request",
    "normalize_advantage",
    "use_rms_prop",
    "use_sde",
    "optimize_memory_usage",
)
_BUFFER_CLASS_KEYS = ("rollout_buffer_class", "replay_buffer_class")
"""SB3 arguments that take a Python class (batchenv picks the buffer: the semi-Markov one of
:mod:`agents.semi_markov` with ``discount_horizon_s``, else SB3's own)."""
_BUFFER_KWARGS_KEYS = ("rollout_buffer_kwargs", "replay_buffer_kwargs")
"""SB3 arguments passed on to the buffer's constructor: a mapping or null."""
_SET_BY_TRAIN = {
    "env": "--env",
    "seed": "--seed",
    "device": "--device",
    "verbose": "--verbose",
    "tensorboard_log": "--tensorboard-log",
    "_init_setup_model": None,
}
"""SB3 constructor arguments that ``train.py`` sets itself (with its flag, if any): never
hyperparameters (``_init_setup_model: false`` would build a model without networks)."""
_CLASS_KEYS = ("activation_fn", "features_extractor_class", "optimizer_class")
"""``policy_kwargs`` entries that SB3 needs as Python classes, which YAML and JSON cannot hold."""
_POLICY_BOOLEANS = (
    "ortho_init",
    "share_features_extractor",
    "normalize_images",
    "full_std",
    "use_expln",
    "squash_output",
)
"""``policy_kwargs`` entries that are true or false (SB3's ActorCriticPolicy, MaskablePPO's and
DQN's policies; each policy refuses those it does not take when the model is built)."""
_POLICY_RANGES: dict[str, tuple[str, float, float, bool, bool]] = {
    # the initial log standard deviation of continuous actions (SAC clamps its own to [-20, 2])
    "log_std_init": ("float", -20.0, 20.0, True, True),
}
_POLICY_SET_BY_SB3 = {
    "use_sde": "hyperparams.use_sde",
    "lr_schedule": "hyperparams.learning_rate",
    "observation_space": "the env",
    "action_space": "the env",
}
"""``policy_kwargs`` entries that SB3 passes to the policy itself (from what)."""
_POLICY_MAPPINGS = ("features_extractor_kwargs", "optimizer_kwargs")
"""``policy_kwargs`` entries that are keyword arguments of their own: a mapping or null."""
_OPTIMIZER_BOOLEANS = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
"""``policy_kwargs.optimizer_kwargs`` entries of torch's Adam that are true or false."""
_OPTIMIZER_OPTIONAL_BOOLEANS = ("foreach", "fused")
"""Adam entries that are true, false or null (torch chooses)."""
_OPTIMIZER_RANGES: dict[str, tuple[str, float, float, bool, bool]] = {
    "eps": ("float", 0.0, math.inf, False, False),
    "weight_decay": ("float", 0.0, math.inf, True, False),
}


def load_hyperparams(algo: str, scenario: str, directory: Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """The hyperparameters of ``algo`` for ``scenario`` (its own entry, else ``default``).

    :raises ConfigError: if the file is missing or not a mapping of mappings.
    """
    path = directory / f"{algo}.yml"
    if not path.is_file():
        raise ConfigError("--algo", f"no hyperparameter file {path}")
    try:
        table = load_yaml(path, allow_aliases=True) or {}  # the files share entries with <<: *default
    except YamlError as exc:
        raise ConfigError(str(path), str(exc)) from None
    if not isinstance(table, dict):
        raise ConfigError(str(path), "must map scenario names to hyperparameters")
    entry = table.get(scenario, table.get("default", {}))
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}:{scenario}", "must be a mapping of hyperparameters")
    return dict(entry)


MAX_HYPERPARAMS_FILE_BYTES = 64 * 1024
"""A hyperparameter file larger than this is refused (it is a short list of KEY: VALUE)."""


def read_hyperparams_file(path: str | Path) -> dict[str, Any]:
    """A YAML file of ``KEY: VALUE`` hyperparameters (``train.py --hyperparams-file``), e.g. the
    best of a search (:mod:`apps.search`); the values are checked by :func:`validate_hyperparams`
    once merged.

    :raises ConfigError: (field ``--hyperparams-file``) for a missing, oversized or unreadable
        file, or one that is not a mapping of names to values.
    """
    field = "--hyperparams-file"
    path = Path(path)
    if not path.is_file():
        raise ConfigError(field, f"no such file: {path}")
    if path.stat().st_size > MAX_HYPERPARAMS_FILE_BYTES:
        raise ConfigError(field, f"{path} is larger than {MAX_HYPERPARAMS_FILE_BYTES} bytes")
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise ConfigError(field, f"{path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(field, f"{path} must hold a mapping of hyperparameters (KEY: VALUE)")
    for key in data:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(field, f"{path}: {short_repr(key)} is not a hyperparameter name")
    return dict(data)


def is_integer_hyperparameter(key: str) -> bool:
    """Whether ``key`` takes only whole numbers (``n_steps``, ``batch_size``, ...)."""
    return _RANGES.get(key, ("",))[0] == "int"


def validate_hyperparams(
    params: Mapping[str, Any], *, n_inputs: int = NETWORK_INPUTS, n_outputs: int = NETWORK_OUTPUTS
) -> None:
    """Check the values of every known hyperparameter: every argument of the SB3 constructors of
    PPO, A2C, DQN and MaskablePPO and of their policies (``policy_kwargs``) that YAML can hold, and
    batchenv's own (:data:`OWN_KEYS`). Unknown keys are left to SB3, which refuses them when it
    builds the model.

    :param params: hyperparameters by name (a file entry, ``--hyperparams``, a checkpoint's).
    :param n_inputs: observation size the networks of ``policy_kwargs`` read (entries; default
        :data:`NETWORK_INPUTS`, more than any scenario has).
    :param n_outputs: number of actions they score (default :data:`NETWORK_OUTPUTS`).
    :raises ConfigError: naming ``hyperparams.<key>`` and the allowed range.
    """
    for key, value in params.items():
        field = f"hyperparams.{key}"
        if key in _BOOLEANS:
            _check_boolean(field, value)
        elif key in _RANGES:
            if key in _NULLABLE and value is None:
                continue
            _check_number(field, value, *_RANGES[key], nullable=key in _NULLABLE)
        elif key in _BUFFER_CLASS_KEYS:
            raise ConfigError(
                field,
                "needs a Python class, which YAML and JSON cannot hold (batchenv picks the buffer: "
                "a semi-Markov one with discount_horizon_s)",
            )
        elif key in _BUFFER_KWARGS_KEYS:
            _check_mapping(field, value)
            if key == "replay_buffer_kwargs" and value is not None and "handle_timeout_termination" in value:
                _check_boolean(f"{field}.handle_timeout_termination", value["handle_timeout_termination"])
        elif key in _SET_BY_TRAIN:
            flag = _SET_BY_TRAIN[key]
            raise ConfigError(
                field,
                f"is not a hyperparameter: train.py sets it (with {flag})"
                if flag
                else "is not a hyperparameter: train.py builds the model itself",
            )
        elif key == "policy":
            if not isinstance(value, str) or value != "MlpPolicy":
                raise ConfigError(
                    field, f"must be 'MlpPolicy' (the env's observation is a vector), got {short_repr(value)}"
                )
        elif key == "policy_kwargs":
            _check_policy_kwargs(field, value, n_inputs, n_outputs)
    if params.get("optimize_memory_usage") is True and params.get("discount_horizon_s") is not None:
        raise ConfigError(
            "hyperparams.optimize_memory_usage",
            "must be false with discount_horizon_s (the semi-Markov replay buffer does not support "
            "it), got true",
        )
    check_rollout(params.get("n_steps"), params.get("n_envs"))


def check_rollout(n_steps: Any, n_envs: Any) -> None:
    """ConfigError naming ``hyperparams.n_steps`` when ``n_steps * n_envs`` (each already in its
    range, or None when not given) is over :data:`MAX_ROLLOUT_TRANSITIONS`."""
    if isinstance(n_steps, int) and isinstance(n_envs, int) and n_steps * n_envs > MAX_ROLLOUT_TRANSITIONS:
        raise ConfigError(
            "hyperparams.n_steps",
            f"n_steps x n_envs (the rollout) must be at most {MAX_ROLLOUT_TRANSITIONS:,} transitions, "
            f"got {n_steps} x {n_envs} = {n_steps * n_envs:,}",
        )


def network_parameters(net_arch: list[int] | dict[str, list[int]], n_inputs: int, n_outputs: int) -> int:
    """Weights and biases of the networks SB3 builds from ``net_arch`` (an upper bound): each runs
    from ``n_inputs`` observations through the hidden widths (units) to ``n_outputs`` scores. A
    list builds two networks (actor and critic, or DQN's Q-network and its target); a mapping
    (``{pi: [...], vf: [...]}``) one per entry."""
    networks = list(net_arch.values()) if isinstance(net_arch, dict) else [net_arch, net_arch]
    total = 0
    for widths in networks:
        sizes = [n_inputs, *widths, n_outputs]
        total += sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    return total


def _check_boolean(field: str, value: Any, *, nullable: bool = False) -> None:
    """True or false (or null, if ``nullable``): not 0, 1 or a string such as ``maybe``."""
    if not isinstance(value, bool) and not (nullable and value is None):
        allowed = "true, false or null" if nullable else "true or false"
        raise ConfigError(field, f"must be {allowed}, got {short_repr(value)}")


def _check_mapping(field: str, value: Any) -> None:
    """A mapping of keyword arguments, or null (none)."""
    if value is not None and not isinstance(value, dict):
        raise ConfigError(field, f"must be a mapping of arguments or null, got {short_repr(value)}")


def _check_number(
    field: str,
    value: Any,
    kind: str,
    low: float,
    high: float,
    low_in: bool,
    high_in: bool,
    *,
    nullable: bool = False,
) -> None:
    """A finite number of ``kind`` ("int", "float", or "schedule": a float or ``lin_<x>``) in the
    interval from ``low`` to ``high`` (inclusive ends as given); ``nullable``: the messages say
    that null (off) is allowed too."""
    null = " or null" if nullable else ""
    if kind == "schedule" and isinstance(value, str) and value.startswith("lin_"):
        try:
            value = float(value.removeprefix("lin_"))
        except ValueError:
            raise ConfigError(field, f"lin_<x> needs a number x, got {short_repr(value)}") from None
        kind = "float"
    if isinstance(value, bool) or not isinstance(value, int | float):
        allowed = {"int": "an integer", "float": "a number", "schedule": "a number or lin_<x>"}[kind]
        raise ConfigError(field, f"must be {allowed}{null}, got {short_repr(value)}")
    inside = (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if not math.isfinite(value) or not inside:
        left, right = "[" if low_in else "(", "]" if high_in else ")"
        raise ConfigError(field, f"must be in {left}{low:g}, {high:g}{right}{null}, got {short_repr(value)}")
    if kind == "int" and value != int(value):
        raise ConfigError(field, f"must be an integer, got {value!r}")


def _check_policy_kwargs(field: str, value: Any, n_inputs: int, n_outputs: int) -> None:
    """``policy_kwargs``: a mapping without Python classes or the arguments SB3 sets itself, whose
    booleans are true or false, ``log_std_init`` a number in range, ``features_extractor_kwargs``
    and ``optimizer_kwargs`` mappings (:func:`_check_optimizer_kwargs`), and whose ``net_arch`` (a
    list of widths, or a mapping of such lists) has at most :data:`MAX_LAYERS` layers of 1 to
    :data:`MAX_LAYER_WIDTH` units per network and at most :data:`MAX_NETWORK_PARAMETERS`
    parameters in all (:func:`network_parameters`). Other entries are left to SB3."""
    if not isinstance(value, dict):
        raise ConfigError(field, f"must be a mapping, e.g. {{net_arch: [64, 64]}}, got {short_repr(value)}")
    for key in _CLASS_KEYS:
        if key in value:
            raise ConfigError(f"{field}.{key}", "needs a Python class, which YAML and JSON cannot hold")
    for key, source in _POLICY_SET_BY_SB3.items():
        if key in value:
            raise ConfigError(f"{field}.{key}", f"is set by SB3 from {source}, not in policy_kwargs")
    _check_entries(field, value, _POLICY_BOOLEANS, _POLICY_RANGES)
    for key in _POLICY_MAPPINGS:
        if key in value:
            _check_mapping(f"{field}.{key}", value[key])
    if value.get("optimizer_kwargs"):
        _check_optimizer_kwargs(f"{field}.optimizer_kwargs", value["optimizer_kwargs"])
    arch = value.get("net_arch")
    if arch is None:
        return
    field = f"{field}.net_arch"
    layers = list(arch.values()) if isinstance(arch, dict) else [arch]
    for widths in layers:
        if not isinstance(widths, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_LAYER_WIDTH for w in widths
        ):
            raise ConfigError(
                field, f"must list layer widths in [1, {MAX_LAYER_WIDTH}], got {short_repr(arch)}"
            )
        if len(widths) > MAX_LAYERS:
            raise ConfigError(field, f"at most {MAX_LAYERS} layers per network, got {len(widths)}")
    count = network_parameters(arch, n_inputs, n_outputs)
    if count > MAX_NETWORK_PARAMETERS:
        raise ConfigError(
            field,
            f"at most {MAX_NETWORK_PARAMETERS:,} parameters in all ({n_inputs} inputs, {n_outputs} "
            f"outputs), got {count:,} from {short_repr(arch)}",
        )


def _check_entries(
    field: str,
    value: Mapping[str, Any],
    booleans: Sequence[str],
    ranges: Mapping[str, tuple[str, float, float, bool, bool]],
) -> None:
    """Check the entries of mapping ``value`` (named ``field``) that it has: ``booleans`` true or
    false, ``ranges`` numbers in their bounds (:func:`_check_number`'s arguments)."""
    for key in booleans:
        if key in value:
            _check_boolean(f"{field}.{key}", value[key])
    for key, bounds in ranges.items():
        if key in value:
            _check_number(f"{field}.{key}", value[key], *bounds)


def _check_optimizer_kwargs(field: str, value: Mapping[str, Any]) -> None:
    """``policy_kwargs.optimizer_kwargs`` of torch's Adam (the optimizer class cannot be changed;
    A2C with ``use_rms_prop`` replaces them with its RMSprop's): no ``lr`` (the learning rate is
    ``hyperparams.learning_rate``), ``eps`` > 0, ``weight_decay`` >= 0, ``betas`` two numbers in
    [0, 1), booleans true or false. Other entries are left to torch."""
    if "lr" in value:
        raise ConfigError(f"{field}.lr", "is set by SB3 from hyperparams.learning_rate, not here")
    _check_entries(field, value, _OPTIMIZER_BOOLEANS, _OPTIMIZER_RANGES)
    for key in _OPTIMIZER_OPTIONAL_BOOLEANS:
        if key in value:
            _check_boolean(f"{field}.{key}", value[key], nullable=True)
    if "betas" in value:
        betas = value["betas"]
        if not (
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(not isinstance(b, bool) and isinstance(b, int | float) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(
                f"{field}.betas", f"must be two numbers in [0, 1), e.g. [0.9, 0.999], got {short_repr(betas)}"
            )
