"""Hostile checkpoints: pickled payloads, zip bombs, damaged metadata and huge sizes are refused
or ignored; nothing in a checkpoint file runs code."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from agents.checkpoint import CheckpointError, RLScheduler, load_checkpoint
from agents.checkpoint_safety import MAX_MEMBER_BYTES, REPLACEABLE_ENTRIES
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
    source: Path, target: Path, *, data: dict | None = None, meta: dict | None = None, extra=()
) -> Path:
    """A copy of ``source`` with its SB3 ``data`` and/or batchenv meta changed (keys merged)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "data" and data is not None:
                content = json.dumps({**json.loads(content), **data}).encode()
            if name == "batchenv/meta.json" and meta is not None:
                content = json.dumps({**json.loads(content), **meta}).encode()
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
    ("meta", "words"),
    [
        ({"n_observations": "eight"}, "n_observations"),
        ({"n_actions": None}, "n_actions"),
        ({"timesteps": -1}, "timesteps"),
        ({"observation_normalization": {"mean": [float("nan")] * 8, "var": [1.0] * 8}}, "finite"),
        ({"observation_normalization": {"mean": [0.0] * 3, "var": [1.0] * 3}}, "list of 8"),
        (
            {"observation_normalization": {"mean": [0.0] * 8, "var": [1.0] * 8, "clip": 0, "epsilon": 1}},
            "clip",
        ),
        ({"algo": ["ppo"]}, "unknown algo"),
        ({"hyperparams": "lots"}, "hyperparams"),
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
