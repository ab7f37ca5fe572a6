"""Loading a checkpoint from an untrusted file without running code from it.

A Stable-Baselines3 zip stores the model's attributes as JSON in its ``data`` member, and every
attribute that JSON cannot hold (the policy class, the spaces, learning-rate schedules, buffer
classes, the last observation) as a base64 *cloudpickle* under ``":serialized:"``. SB3's ``load``
unpickles them, and unpickling runs whatever code the file's author chose. batchenv never does:

- every pickled entry a batchenv checkpoint carries is rebuilt from data batchenv trusts (the
  checkpoint's JSON metadata and scenario config, parsed with ``json`` and ``yaml.safe_load``) and
  handed to SB3 as a ``custom_objects`` replacement, so SB3 never decodes it;
- a pickled entry batchenv does not know is refused (:class:`~agents.checkpoint.CheckpointError`),
  not decoded;
- the network weights are read by SB3 with ``torch.load(weights_only=True)``, which rebuilds
  tensors and plain containers only;
- the archive is bounded (number of members, uncompressed size) before anything is read, and the
  sizes that the model allocates on load (replay and rollout buffers, layers) are bounded, so a
  hostile file cannot exhaust memory;
- the metadata is validated field by field: the training hyperparameters as ``train.py`` checks
  them (:func:`agents.hyperparameters.validate_hyperparams`: ranges, layer widths, depth and the
  networks' parameter count) before any network is built, and finite normalisation statistics of
  the right length (variances >= 0, counts > 0);
- the hyperparameters SB3 takes from ``data`` itself (``n_epochs``, ``gamma``, ...) must be in
  the same ranges and equal the validated metadata's (:func:`check_data_hyperparams`), and the
  loader never keeps a path from ``data`` (``tensorboard_log``).

The checkpoints shipped in ``checkpoints/`` are also checked against ``checkpoints/SHA256SUMS``.
SECURITY.md says what a user may safely load.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import torch
from gymnasium import spaces

from agents.hyperparameters import validate_hyperparams
from batchenv.config import ConfigError, short_repr

__all__ = [
    "MAX_ARCHIVE_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_TOTAL_BYTES",
    "REPLACEABLE_ENTRIES",
    "SHIPPED_DIR",
    "SIZED_ENTRIES",
    "check_archive",
    "check_data_hyperparams",
    "check_sizes",
    "parse_schedule",
    "safe_custom_objects",
    "serialized_entries",
    "validate_meta",
    "verify_shipped",
]

MAX_ARCHIVE_MEMBERS = 64
"""Most members a checkpoint archive may have."""

MAX_MEMBER_BYTES = 128 * 2**20
"""Largest uncompressed size (bytes) of one member."""

MAX_TOTAL_BYTES = 512 * 2**20
"""Largest uncompressed size (bytes) of all members together."""

SIZED_ENTRIES = ("buffer_size", "n_steps", "n_envs", "batch_size", "policy_kwargs")
"""Entries of a checkpoint's ``data`` that size what SB3 allocates on load (replay and rollout
buffers, layers); bounded as hyperparameters are (:func:`agents.hyperparameters.validate_hyperparams`)."""

REPLACEABLE_ENTRIES = frozenset(
    {
        "policy_class",
        "policy_kwargs",
        "observation_space",
        "action_space",
        "learning_rate",
        "lr_schedule",
        "clip_range",
        "clip_range_vf",
        "exploration_schedule",
        "train_freq",
        "rollout_buffer_class",
        "replay_buffer_class",
        "_last_obs",
        "_last_episode_starts",
        "_last_original_obs",
        "ep_info_buffer",
        "ep_success_buffer",
    }
)
"""Pickled entries of SB3's ``data`` that batchenv rebuilds itself; any other one is refused."""

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
"""Where the repository's shipped checkpoints and their ``SHA256SUMS`` live."""


def check_archive(archive: zipfile.ZipFile, where: str, error: type[Exception]) -> None:
    """Refuse an archive with too many members or too much uncompressed data (a zip bomb)."""
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise error(f"{where}: {len(infos)} members in the archive, at most {MAX_ARCHIVE_MEMBERS} allowed")
    total = 0
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise error(
                f"{where}: member {short_repr(info.filename)} is {info.file_size} bytes uncompressed, "
                f"at most {MAX_MEMBER_BYTES} allowed"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise error(f"{where}: {total} bytes uncompressed in all, at most {MAX_TOTAL_BYTES} allowed")


def serialized_entries(data: Mapping[str, Any]) -> list[str]:
    """Keys of SB3 ``data`` whose value is a pickled object (a dict with ``":serialized:"``)."""
    return [key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value]


def parse_schedule(value: Any) -> Any:
    """rl-zoo style ``lin_<x>``: a value decaying linearly from x to 0 over training (a function of
    SB3's progress_remaining, 1 -> 0); any other value is returned as it is."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value.removeprefix("lin_"))
        return lambda progress_remaining: progress_remaining * start
    return value


def check_sizes(data: Mapping[str, Any], where: str, error: type[Exception]) -> None:
    """Bound the numbers in ``data`` that size what SB3 allocates when it rebuilds the model. Of
    its ``policy_kwargs`` only ``net_arch`` is checked: the rest is SB3's own (A2C's optimizer
    class, pickled), and the whole entry is rebuilt from the metadata (:func:`safe_custom_objects`)."""
    sized = {key: data[key] for key in SIZED_ENTRIES if key in data}
    if isinstance(sized.get("policy_kwargs"), dict):
        sized["policy_kwargs"] = {"net_arch": sized["policy_kwargs"].get("net_arch")}
    _check_hyperparams(sized, "data entry", where, error)


_NOT_HYPERPARAMETERS = frozenset(
    {"env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model", "policy"}
)
"""Constructor arguments of the SB3 classes that are no hyperparameters (train.py sets them)."""

_DATA_NAMES = {"_stats_window_size": "stats_window_size"}
"""``data`` entries stored under another name than their constructor argument."""


def check_data_hyperparams(
    data: Mapping[str, Any],
    *,
    algo_class: type,
    hyperparams: Mapping[str, Any],
    timesteps: int,
    where: str,
    error: type[Exception],
) -> None:
    """Check the hyperparameters SB3 stores in a checkpoint's ``data`` and sets on the model it
    loads (``n_epochs``, ``gamma``, ``batch_size``, ...: every constructor argument of the
    algorithm found there that it does not rebuild from the metadata, see
    :func:`safe_custom_objects`), so that a hostile ``data`` cannot override the validated
    metadata (an ``n_epochs`` of 10**12 would hang a resumed run):

    - each is in the range ``train.py`` allows (:func:`~agents.hyperparameters.validate_hyperparams`);
    - when the metadata records the run's hyperparameters (every run of ``train.py`` does), each
      equals the recorded value, or the constructor's default when none is recorded;
    - the model's step count ``num_timesteps`` equals the metadata's ``timesteps``.

    :param data: the checkpoint's ``data`` member, parsed as JSON.
    :param algo_class: the algorithm's SB3 class.
    :param hyperparams: the (validated) hyperparameters recorded in ``meta.json``.
    :param timesteps: the (validated) ``timesteps`` of ``meta.json``.
    :raises error: naming the entry.
    """
    defaults = _constructor_defaults(algo_class)
    stored: dict[str, Any] = {}
    for key, value in data.items():
        name = _DATA_NAMES.get(key, key)
        if key in REPLACEABLE_ENTRIES or name not in defaults or name in _NOT_HYPERPARAMETERS:
            continue
        stored[name] = value
    _check_hyperparams(stored, "data entry", where, error)
    if hyperparams:
        for name, value in stored.items():
            expected = hyperparams.get(name, defaults[name])
            if name.endswith("_buffer_kwargs") and expected is None:
                expected = {}  # SB3 stores no kwargs as {}
            if value != expected or isinstance(value, bool) != isinstance(expected, bool):
                raise error(
                    f"{where}: its SB3 'data' entry {name!r} is {short_repr(value)}, but meta.json "
                    f"records {short_repr(expected)}: refusing a model whose hyperparameters are not "
                    "the validated ones"
                )
    recorded = data.get("num_timesteps")
    if recorded != timesteps or isinstance(recorded, bool):
        raise error(
            f"{where}: its SB3 'data' entry 'num_timesteps' is {short_repr(recorded)}, but meta.json "
            f"records {timesteps} timesteps"
        )


def _check_hyperparams(
    params: Mapping[str, Any], what: str, where: str, error: type[Exception], **sizes: int
) -> None:
    """:func:`~agents.hyperparameters.validate_hyperparams` on ``params`` (``sizes``: its
    ``n_inputs`` and ``n_outputs``), its ConfigError turned into ``error`` ("<where>: <what>
    hyperparams.<key>: ...")."""
    try:
        validate_hyperparams(params, **sizes)
    except ConfigError as exc:
        raise error(f"{where}: {what} {exc}") from None


def safe_custom_objects(
    data: Mapping[str, Any],
    *,
    algo: str,
    algo_class: type,
    observation_space: spaces.Box,
    n_actions: int,
    hyperparams: Mapping[str, Any],
    buffer_classes: Mapping[str, tuple[str, type]],
    where: str,
    error: type[Exception],
) -> dict[str, Any]:
    """The ``custom_objects`` for SB3's ``load`` that replace every pickled entry of ``data``.

    :param data: the checkpoint's ``data`` member, parsed as JSON.
    :param algo: the ``--algo`` name (``ppo``, ``dqn``, ...).
    :param algo_class: its SB3 class.
    :param observation_space: the env's observation space for the checkpoint's config.
    :param n_actions: the size of its discrete action space.
    :param hyperparams: the training hyperparameters recorded in the checkpoint's metadata.
    :param buffer_classes: per algo, the semi-Markov buffer's constructor argument and class
        (used when the run discounted by simulated time, ``discount_horizon_s``).
    :raises error: if ``data`` holds a pickled entry batchenv does not rebuild.
    """
    unknown = sorted(set(serialized_entries(data)) - REPLACEABLE_ENTRIES)
    if unknown:
        raise error(
            f"{where}: its SB3 'data' entry {short_repr(unknown[0])} holds a pickled Python object that a "
            "batchenv checkpoint does not need; refusing to unpickle it (checkpoints can carry code, "
            "see SECURITY.md)"
        )
    policy_name = hyperparams.get("policy", "MlpPolicy")
    aliases = getattr(algo_class, "policy_aliases", {})
    if policy_name not in aliases:
        raise error(f"{where}: policy {short_repr(policy_name)} is not one of {sorted(aliases)}")
    defaults = _constructor_defaults(algo_class)

    def setting(key: str) -> Any:
        return hyperparams.get(key, defaults.get(key))

    buffer_key, buffer_class = buffer_classes.get(algo, (None, None))
    semi_markov = hyperparams.get("discount_horizon_s") is not None
    replacements: dict[str, Callable[[], Any]] = {
        "policy_class": lambda: aliases[policy_name],
        "observation_space": lambda: observation_space,
        "action_space": lambda: spaces.Discrete(n_actions),
        "learning_rate": lambda: parse_schedule(setting("learning_rate")),
        "clip_range": lambda: parse_schedule(setting("clip_range")),
        "clip_range_vf": lambda: parse_schedule(setting("clip_range_vf")),
        "train_freq": lambda: setting("train_freq"),
        "policy_kwargs": lambda: _policy_kwargs(hyperparams, setting),
    }
    custom: dict[str, Any] = {}
    for key in REPLACEABLE_ENTRIES:
        if key not in data:
            continue
        if key in replacements:
            custom[key] = replacements[key]()
        elif key == buffer_key:
            custom[key] = buffer_class if semi_markov else None
        else:  # recomputed by SB3 (schedules) or at the next learn() (last observation, buffers)
            custom[key] = None
    for key in ("policy_class", "observation_space", "action_space"):  # always ours
        custom[key] = replacements[key]()
    return custom


_META_INTEGERS: tuple[tuple[str, int, float, bool], ...] = (
    ("n_observations", 1, math.inf, True),
    ("n_actions", 1, math.inf, True),
    ("timesteps", 0, math.inf, True),
    ("seed", 0, 2**32 - 1, False),
    ("target_timesteps", 1, 10**12, False),
)
"""Integer fields of ``meta.json``: (key, lowest, highest, required)."""


def validate_meta(meta: Any, where: str, error: type[Exception]) -> dict[str, Any]:
    """Check the fields of ``batchenv/meta.json`` that loading, running and resuming a checkpoint
    read: the sizes, the seed and target step count of the run (when recorded), the training
    hyperparameters (as ``train.py`` checks them, the networks
    counted for the checkpoint's own numbers of observations and actions) and the normalisation
    statistics."""
    if not isinstance(meta, dict):
        raise error(f"{where}: meta.json must hold a JSON object, got {type(meta).__name__}")
    for key, low, high, required in _META_INTEGERS:
        value = meta.get(key)
        if (value is not None or required) and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
            got = short_repr(value)
            raise error(f"{where}: meta.json field {key!r} must be an integer {bounds}, got {got}")
    if meta["n_observations"] > 4096 or meta["n_actions"] > 65536:
        raise error(f"{where}: meta.json sizes out of range (n_observations <= 4096, n_actions <= 65536)")
    hyperparams = meta.get("hyperparams", {})
    if not isinstance(hyperparams, dict):
        raise error(
            f"{where}: meta.json field 'hyperparams' must be an object, got {short_repr(hyperparams)}"
        )
    sizes = {"n_inputs": meta["n_observations"], "n_outputs": meta["n_actions"]}
    _check_hyperparams(hyperparams, "meta.json field", where, error, **sizes)
    _check_normalization(meta, "observation_normalization", meta["n_observations"], where, error)
    _check_normalization(meta, "reward_normalization", None, where, error)
    return meta


def _check_normalization(
    meta: Mapping[str, Any], key: str, size: int | None, where: str, error: type[Exception]
) -> None:
    """One section of VecNormalize statistics in meta.json (absent or null: no normalisation).

    ``mean`` and ``var`` are lists of ``size`` finite numbers (observations), or finite numbers
    when ``size`` is None (returns); ``var`` >= 0; ``count`` (observations seen) > 0; for
    observations also ``clip`` and ``epsilon`` > 0.
    """
    stats = meta.get(key)
    if stats is None:
        return
    if not isinstance(stats, dict):
        raise error(f"{where}: meta.json field '{key}' must be an object or null, got {short_repr(stats)}")
    for name in ("mean", "var"):
        values = stats.get(name)
        entries = [values] if size is None else values
        if not (isinstance(entries, list) and len(entries) == (size or 1) and all(map(_finite, entries))):
            wanted = "a finite number" if size is None else f"a list of {size} finite numbers"
            raise error(f"{where}: meta.json field '{key}.{name}' must be {wanted}, got {short_repr(values)}")
        if name == "var" and any(v < 0 for v in entries):
            raise error(f"{where}: meta.json field '{key}.var' must be >= 0, got {short_repr(values)}")
    for name in ("clip", "epsilon", "count") if size is not None else ("count",):
        value = stats.get(name)
        if not _finite(value) or not value > 0:
            got = short_repr(value)
            raise error(f"{where}: meta.json field '{key}.{name}' must be a finite number > 0, got {got}")


def verify_shipped(path: Path, error: type[Exception], directory: Path = SHIPPED_DIR) -> None:
    """If ``path`` is one of the checkpoints shipped in ``directory``, check it against the
    SHA-256 recorded in ``directory/SHA256SUMS`` (other files are left to the caller)."""
    manifest = directory / "SHA256SUMS"
    try:
        inside = path.resolve().parent == directory.resolve()
    except OSError:
        return
    if not inside or not manifest.is_file():
        return
    expected = {}
    for line in manifest.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            expected[name] = digest
    if path.name not in expected:
        return
    actual = sha256_of(path)
    if actual != expected[path.name]:
        raise error(
            f"checkpoint {path}: its SHA-256 {actual[:16]}... does not match the one recorded in "
            f"{manifest} ({expected[path.name][:16]}...): the shipped file was modified"
        )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _policy_kwargs(hyperparams: Mapping[str, Any], setting: Callable[[str], Any]) -> dict[str, Any]:
    """The policy's keyword arguments as the algorithm's constructor builds them: the recorded
    ``policy_kwargs``, plus A2C's RMSprop optimizer (which A2C adds itself, a class SB3 pickles)."""
    kwargs = dict(hyperparams.get("policy_kwargs") or {})
    if setting("use_rms_prop") and "optimizer_class" not in kwargs:
        kwargs["optimizer_class"] = torch.optim.RMSprop
        kwargs["optimizer_kwargs"] = {"alpha": 0.99, "eps": setting("rms_prop_eps"), "weight_decay": 0}
    return kwargs


def _constructor_defaults(algo_class: type) -> dict[str, Any]:
    params = inspect.signature(algo_class.__init__).parameters  # type: ignore[misc]
    return {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}


def _finite(value: Any) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
