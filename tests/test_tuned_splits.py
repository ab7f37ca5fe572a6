"""A trace scenario's held-out half (``X_test``) takes the parameters tuned on its training half
(``X_train``): tune on the first part of a trace, evaluate on the rest."""

from __future__ import annotations

from pathlib import Path

from agents.registry import make_agent
from agents.tuned_params import config_fingerprint, load_tuned, tuning_target, write_tuned
from batchenv.scenarios import load_scenario

PARAMS = {"preferred_batch_size": 4, "max_queue_delay_ms": 5.0, "model": "LLM-2"}


def _write(directory: Path, name: str) -> None:
    config = load_scenario(name)
    data = {
        "scenario": name,
        "config_fingerprint": config_fingerprint(config),
        "command": "test",
        "training_seeds": [1000],
        "horizon_s": config.horizon_s,
        "objective": "mean cost per request",
        "agents": {"timeout": {"params": PARAMS, "cost_per_request": 0.1, "candidates": 1}},
    }
    write_tuned(directory / f"{name}.yaml", data)


def test_a_test_half_uses_the_training_halfs_parameters(tmp_path: Path) -> None:
    test = load_scenario("mooncake_conv_30_test")
    assert tuning_target(test).name == "mooncake_conv_30_train"
    assert load_tuned(test, tmp_path) is None
    _write(tmp_path, "mooncake_conv_30_train")
    record = load_tuned(test, tmp_path)
    assert record is not None and record.path.name == "mooncake_conv_30_train.yaml"
    agent = make_agent("timeout", test.replace(horizon_s=5.0), tuned_dir=tmp_path)
    assert agent.params_source == "tuned (mooncake_conv_30_train.yaml)"
    assert agent.params()["model"] == "LLM-2"


def test_other_scenarios_keep_their_own_files(tmp_path: Path) -> None:
    _write(tmp_path, "mooncake_conv_30_train")
    for name in ("mooncake_conv_30", "mooncake_conv_30_train", "bursty"):
        assert tuning_target(load_scenario(name)).name == name
    assert load_tuned(load_scenario("mooncake_conv_30"), tmp_path) is None
    # a changed copy of a test half is tuned as it is, not from the packaged training half
    changed = load_scenario("mooncake_conv_30_test").replace(arrivals={"rate_per_s": 100.0})
    assert tuning_target(changed) is changed and load_tuned(changed, tmp_path) is None
