"""Hostile checkpoints: pickled payloads, zip bombs, damaged metadata and huge sizes are refused
or ignored; nothing in a checkpoint file runs code."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from agents.checkpoint import CheckpointError, RLScheduler, load_checkpoint
from agents.checkpoint_safety import MAX_MEMBER_BYTES, REPLACEABLE_ENTRIES, validate_meta
from agents.replay_buffer_io import load_replay_buffer, replay_buffer_path

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "ppo_default.zip"


class _Payload:
    """Unpickling this object writes a marker file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


def _serialized(obj: Any) -> dict[str, str]:
    return {":type:": "<class 'object'>", ":serialized:": base64.b64encode(cloudpickle.dumps(obj)).decode()}


def _rewrite(
    source: Path,
    target: Path,
    *,
    data: dict | None = None,
    meta: dict | None = None,
    extra=(),
    raw: dict[str, bytes] | None = None,
) -> Path:
    """A copy of ``source`` with its SB3 ``data`` and/or batchenv meta changed (keys merged), or
    members replaced by the bytes of ``raw``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "data" and data is not None:
                content = json.dumps({**json.loads(content), **data}).encode()
            if name == "batchenv/meta.json" and meta is not None:
                content = json.dumps({**json.loads(content), **meta}).encode()
            content = (raw or {}).get(name, content)
            dst.writestr(name, content)
        for name, content in extra:
            dst.writestr(name, content)
    return target


@pytest.mark.parametrize("key", ["learning_rate", "policy_class", "_last_obs", "observation_space"])
def test_pickled_payload_in_a_known_entry_is_never_unpickled(key: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", data={key: _serialized(_Payload(marker))})
    checkpoint = load_checkpoint(hostile)  # rebuilt from trusted data instead
    assert not marker.exists()
    obs = np.full(8, 0.5, dtype=np.float32)
    reference = load_checkpoint(SHIPPED)
    assert (
        checkpoint.model.predict(obs, deterministic=True)[0]
        == reference.model.predict(obs, deterministic=True)[0]
    )


def test_pickled_payload_in_an_unknown_entry_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", data={"surprise": _serialized(_Payload(marker))})
    with pytest.raises(CheckpointError, match="'surprise' holds a pickled Python object"):
        load_checkpoint(hostile)
    assert not marker.exists()
    assert "surprise" not in REPLACEABLE_ENTRIES


def test_evaluate_and_scheduler_refuse_it_too(tmp_path: Path) -> None:
    from agents.registry import CheckpointError as SpecCheckpointError
    from agents.registry import make_agent
    from batchenv.scenarios import load_scenario

    marker = tmp_path / "marker.txt"
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", data={"env": _serialized(_Payload(marker))})
    with pytest.raises(SpecCheckpointError, match="pickled"):
        make_agent(str(hostile), load_scenario("default"))
    with pytest.raises(CheckpointError):
        RLScheduler(hostile)
    assert not marker.exists()


def test_zip_bombs_and_huge_sizes_are_refused(tmp_path: Path) -> None:
    bomb = _rewrite(SHIPPED, tmp_path / "bomb.zip", extra=[("padding.bin", b"\0" * (MAX_MEMBER_BYTES + 1))])
    assert bomb.stat().st_size < 2 * 2**20  # deflated: small on disk, huge when read
    with pytest.raises(CheckpointError, match="uncompressed"):
        load_checkpoint(bomb)
    many = _rewrite(SHIPPED, tmp_path / "many.zip", extra=[(f"m{i}", b"") for i in range(100)])
    with pytest.raises(CheckpointError, match="members"):
        load_checkpoint(many)
    for key, value in (("n_steps", 10**12), ("n_envs", 10**7), ("policy_kwargs", {"net_arch": [10**9]})):
        huge = _rewrite(SHIPPED, tmp_path / f"huge_{key}.zip", data={key: value})
        with pytest.raises(CheckpointError, match=key):
            load_checkpoint(huge)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            {"n_epochs": 10**12},
            r"data entry hyperparams.n_epochs: must be in \[1, 10000\], got 1000000000000",
        ),
        ({"n_epochs": 20}, "'data' entry 'n_epochs' is 20, but meta.json records 10"),
        ({"gamma": 0.5}, "'data' entry 'gamma' is 0.5, but meta.json records 0.995"),
        ({"target_kl": 0.01}, "'data' entry 'target_kl' is 0.01, but meta.json records None"),  # the default
        ({"normalize_advantage": 1}, "hyperparams.normalize_advantage: must be true or false"),
        ({"_stats_window_size": 10**9}, "hyperparams.stats_window_size: must be in"),
        ({"rollout_buffer_kwargs": {"gae_lambda": 0.1}}, "'data' entry 'rollout_buffer_kwargs'"),
        ({"num_timesteps": 10**15}, "'num_timesteps' is 1000000000000000, but meta.json records"),
    ],
)
def test_hyperparameters_in_the_sb3_data_cannot_override_the_validated_metadata(
    data: dict, words: str, tmp_path: Path
) -> None:
    """SB3 sets every entry of ``data`` on the model it loads: a hostile ``n_epochs`` of 10**12
    (its meta.json saying 10) loaded, and hung a resumed run. Each hyperparameter there must be in
    train.py's range and equal what meta.json records (or the constructor's default)."""
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", data=data)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(hostile)


def test_a_checkpoint_never_gives_its_own_tensorboard_path(tmp_path: Path) -> None:
    """``tensorboard_log`` in ``data`` is a path the file's author chose: it is dropped on load,
    and a resumed run logs to its own run folder only."""
    elsewhere = tmp_path / "elsewhere"
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", data={"tensorboard_log": str(elsewhere)})
    checkpoint = load_checkpoint(hostile)
    assert checkpoint.model.tensorboard_log is None
    assert checkpoint.model.n_epochs == 10 and checkpoint.model.gamma == 0.995  # the metadata's
    from apps import train

    runs = tmp_path / "runs"
    argv = ["-i", str(hostile), "-n", "64", "--eval-freq", "0", "--save-freq", "0", "-f", str(runs)]
    assert train.main([*argv, "--no-progress", "--verbose", "0"]) == 0
    assert not elsewhere.exists()
    (run,) = runs.iterdir()
    assert list((run / "tb").rglob("events.out.tfevents*"))


_NORMALISED = {"mean": [0.0] * 8, "var": [1.0] * 8, "count": 100.0, "clip": 10.0, "epsilon": 1e-8}
"""Valid observation statistics for the shipped 8-observation checkpoint."""


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"n_observations": "eight"}, "n_observations"),
        ({"n_actions": None}, "n_actions"),
        ({"timesteps": -1}, "timesteps"),
        ({"seed": -3}, r"'seed' must be an integer in \[0, 4294967295\], got -3"),
        ({"target_timesteps": "all"}, r"'target_timesteps' must be an integer in \[1, 1000000000000\]"),
        ({"target_timesteps": True}, "'target_timesteps' must be an integer"),
        ({"observation_normalization": {"mean": [float("nan")] * 8, "var": [1.0] * 8}}, "finite"),
        ({"observation_normalization": {"mean": [0.0] * 3, "var": [1.0] * 3}}, "list of 8"),
        (
            {"observation_normalization": {"mean": [0.0] * 8, "var": [1.0] * 8, "clip": 0, "epsilon": 1}},
            "clip",
        ),
        ({"algo": ["ppo"]}, "unknown algo"),
        ({"hyperparams": "lots"}, "hyperparams"),
        ({"n_actions": 7}, "says 7 actions, its config 4"),
        ({"reward_normalization": [1.0, 2.0]}, "'reward_normalization' must be an object or null"),
        ({"reward_normalization": {"mean": "x", "var": 1.0, "count": 10.0}}, "'reward_normalization.mean'"),
        ({"reward_normalization": {"mean": 0.0, "var": -5.0, "count": 10.0}}, "'reward_normalization.var'"),
        ({"reward_normalization": {"mean": 0.0, "var": 1.0, "count": -1e308}}, "reward_normalization.count"),
        ({"reward_normalization": {"mean": [0.0], "var": 1.0, "count": 1.0}}, "mean' must be a finite"),
        (
            {"observation_normalization": {**_NORMALISED, "var": [1.0] * 7 + [-1.0]}},
            "'observation_normalization.var' must be >= 0",
        ),
        ({"observation_normalization": {**_NORMALISED, "count": "x"}}, "'observation_normalization.count'"),
    ],
)
def test_damaged_metadata_is_a_clear_error(meta: dict, words: str, tmp_path: Path) -> None:
    damaged = _rewrite(SHIPPED, tmp_path / "damaged.zip", meta=meta)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(damaged)


def test_a_hostile_replay_buffer_file_is_refused(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    from agents.rl import make_training_env
    from batchenv.config import SystemConfig

    venv = make_training_env(SystemConfig(), 1, 0)
    model = DQN("MlpPolicy", venv, buffer_size=100, learning_starts=10)
    checkpoint = tmp_path / "final_model.zip"
    marker = tmp_path / "marker.txt"
    np.save(tmp_path / "obj.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(replay_buffer_path(checkpoint), "w") as archive:
        archive.write(tmp_path / "obj.npy", "observations.npy")
    with pytest.raises(ValueError):
        load_replay_buffer(model, checkpoint)
    assert not marker.exists()
    venv.close()


def _shipped_hyperparams() -> dict[str, Any]:
    with zipfile.ZipFile(SHIPPED) as archive:
        return json.loads(archive.read("batchenv/meta.json"))["hyperparams"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"policy_kwargs": {"net_arch": [1] * 17}}, "hyperparams.policy_kwargs.net_arch: at most 16 layers"),
        ({"policy_kwargs": "x"}, "hyperparams.policy_kwargs: must be a mapping"),
        ({"policy_kwargs": [1, 2]}, "hyperparams.policy_kwargs: must be a mapping"),
        ({"policy_kwargs": {"activation_fn": "os.system"}}, "hyperparams.policy_kwargs.activation_fn"),
        ({"learning_rate": "lin_abc"}, "hyperparams.learning_rate: lin_<x> needs a number"),
        ({"clip_range_vf": "lin_abc"}, "hyperparams.clip_range_vf: lin_<x> needs a number"),
        ({"policy": ["x"]}, "hyperparams.policy: must be 'MlpPolicy'"),
        ({"discount_horizon_s": "abc"}, "hyperparams.discount_horizon_s"),
        ({"use_rms_prop": True, "rms_prop_eps": "x"}, "hyperparams.rms_prop_eps"),
        ({"n_steps": float("inf")}, "hyperparams.n_steps: must be in"),
    ],
)
def test_recorded_hyperparameters_are_checked_before_the_model_is_built(
    change: dict, words: str, tmp_path: Path
) -> None:
    """The hyperparameters in meta.json rebuild the policy (its layers, schedules): each bad value
    is a CheckpointError naming the field, never a traceback from SB3 or torch."""
    meta = {"hyperparams": {**_shipped_hyperparams(), **change}}
    hostile = _rewrite(SHIPPED, tmp_path / "hostile.zip", meta=meta)
    with pytest.raises(CheckpointError, match=re.escape(words)):
        load_checkpoint(hostile)


@pytest.mark.parametrize(
    "net_arch",
    [[8192] * 2000, [8192] * 6, {"pi": [8192, 8192], "vf": [64]}],
)
def test_recorded_networks_too_large_to_allocate_are_refused_unbuilt(net_arch: Any) -> None:
    """A hostile net_arch is refused by the metadata check alone (this test never builds it:
    before the check, loading these allocated gigabytes)."""
    meta = json.loads(zipfile.ZipFile(SHIPPED).read("batchenv/meta.json"))
    meta["hyperparams"]["policy_kwargs"] = {"net_arch": net_arch}
    with pytest.raises(CheckpointError, match=r"hyperparams\.policy_kwargs\.net_arch: at most"):
        validate_meta(meta, "checkpoint x", CheckpointError)
    meta["n_actions"] = 65536  # the output layer counts too: 64 * 65536 weights per network
    meta["hyperparams"]["policy_kwargs"] = {"net_arch": [8192]}
    with pytest.raises(CheckpointError, match="65536 outputs"):
        validate_meta(meta, "checkpoint x", CheckpointError)


def test_unreadable_json_members_are_clear_errors(tmp_path: Path) -> None:
    """An integer longer than Python converts (4300 digits) or a damaged compressed member is a
    CheckpointError naming the problem, not a ValueError or zlib.error from deep inside."""
    with zipfile.ZipFile(SHIPPED) as archive:
        meta = archive.read("batchenv/meta.json")
    huge = meta.replace(b"{", b'{"big": ' + b"9" * 5000 + b", ", 1)
    assert huge != meta
    bigint = _rewrite(SHIPPED, tmp_path / "bigint.zip", raw={"batchenv/meta.json": huge})
    with pytest.raises(CheckpointError, match=r"member 'batchenv/meta\.json' is not valid JSON"):
        load_checkpoint(bigint)
    data = _rewrite(SHIPPED, tmp_path / "data.zip", raw={"data": b'{"n_steps": ' + b"9" * 5000 + b"}"})
    with pytest.raises(CheckpointError, match="member 'data' is not valid JSON"):
        load_checkpoint(data)

    deflated = _rewrite(SHIPPED, tmp_path / "deflated.zip")  # written with ZIP_DEFLATED
    content = bytearray(deflated.read_bytes())
    info = zipfile.ZipFile(deflated).getinfo("data")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    content[start + 5 : start + 25] = bytes(b ^ 0xA5 for b in content[start + 5 : start + 25])
    (tmp_path / "damaged.zip").write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="not a zip archive"):
        load_checkpoint(tmp_path / "damaged.zip")


def test_resume_refuses_damaged_normalisation_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train.py --resume with a string for the observations' count (SB3 failed with a TypeError)
    or a negative return variance (training went on with NaN rewards) stops with a one-line error
    before training, and leaves no run folder."""
    from apps import train

    hyperparams = {**_shipped_hyperparams(), "normalize_obs": True}
    for name, meta, words in (
        (
            "count.zip",
            {"hyperparams": hyperparams, "observation_normalization": {**_NORMALISED, "count": "x"}},
            "observation_normalization.count",
        ),
        ("var.zip", {"reward_normalization": {"mean": 0.0, "var": -5.0, "count": 10.0}}, "var' must be >= 0"),
    ):
        hostile = _rewrite(SHIPPED, tmp_path / name, meta=meta)
        argv = ["--algo", "ppo", "-i", str(hostile), "-n", "64", "--eval-freq", "0", "--save-freq", "0"]
        assert train.main([*argv, "-f", str(tmp_path / "runs"), "--no-progress"]) == 2
        assert words in capsys.readouterr().err
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def _dqn_with_saved_buffer(tmp_path: Path) -> tuple[Any, Path, dict[str, np.ndarray]]:
    """A small DQN model, a checkpoint path and the arrays of its saved (valid) replay buffer."""
    from stable_baselines3 import DQN

    from agents.replay_buffer_io import save_replay_buffer
    from agents.rl import make_training_env
    from batchenv.config import SystemConfig

    model = DQN("MlpPolicy", make_training_env(SystemConfig(), 1, 0), buffer_size=100, learning_starts=10)
    checkpoint = tmp_path / "final_model.zip"
    with np.load(save_replay_buffer(model, checkpoint)) as saved:
        return model, checkpoint, dict(saved)


def _with(arrays: dict[str, np.ndarray], name: str, value: Any) -> dict[str, np.ndarray]:
    """``arrays`` with ``name`` set to a copy holding ``value`` in its first entry."""
    changed = arrays[name].copy()
    changed.flat[0] = value
    return {**arrays, name: changed}


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda a: {k: v for k, v in a.items() if k != "position"}, "no array 'position'"),
        (lambda a: _with(a, "actions", 7), "array 'actions' holds 1 actions outside the model's [0, 4)"),
        (lambda a: _with(a, "actions", -1), "array 'actions'"),
        (lambda a: _with(a, "rewards", np.nan), "array 'rewards' holds values that are not finite"),
        (lambda a: _with(a, "observations", np.inf), "array 'observations' holds values that are not finite"),
        (lambda a: {**a, "observations": a["observations"][:-1]}, "array 'observations': shape (99, 1, 8)"),
        (lambda a: {**a, "actions": a["actions"].astype(np.float32)}, "array 'actions': shape"),
        (lambda a: _with(a, "position", 100), "array 'position'"),
    ],
)
def test_a_damaged_replay_buffer_file_is_refused_naming_the_array(
    damage: Any, words: str, tmp_path: Path
) -> None:
    model, checkpoint, arrays = _dqn_with_saved_buffer(tmp_path)
    np.savez(replay_buffer_path(checkpoint), **damage(arrays))
    with pytest.raises(ValueError, match=re.escape(words)) as error:
        load_replay_buffer(model, checkpoint)
    assert str(replay_buffer_path(checkpoint)) in str(error.value)
    assert model.replay_buffer.pos == 0 and not model.replay_buffer.full
    model.get_env().close()


def test_a_corrupt_or_lying_replay_buffer_file_is_a_value_error(tmp_path: Path) -> None:
    """Not a zip (truncated), or an array whose header promises another shape: a ValueError naming
    the file (train.py turns it into a CheckpointError), read no further than the header."""
    model, checkpoint, arrays = _dqn_with_saved_buffer(tmp_path)
    path = replay_buffer_path(checkpoint)
    valid = path.read_bytes()
    path.write_bytes(valid[: len(valid) // 2])
    with pytest.raises(ValueError, match=r"not a readable \.npz archive"):
        load_replay_buffer(model, checkpoint)
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 1, 8)}
    with zipfile.ZipFile(path, "w") as archive:
        for name, values in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                if name == "observations":  # a header for 32 TB, then nothing
                    np.lib.format.write_array_header_1_0(member, header)
                else:
                    np.lib.format.write_array(member, values)
    with pytest.raises(ValueError, match=r"array 'observations': shape \(1000000000000, 1, 8\)"):
        load_replay_buffer(model, checkpoint)
    assert load_replay_buffer(model, tmp_path / "no_such_model.zip") is False
    model.get_env().close()
