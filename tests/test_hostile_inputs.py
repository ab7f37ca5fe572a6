"""Hostile or careless inputs: YAML bombs, deep nesting, long extends chains, duplicate keys,
empty files, wrong encodings, unbounded sizes, invalid actions. Each is a clear error naming
the field, never a traceback from deep inside, a hang or a memory blow-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchenv.config import MAX_EPISODE_REQUESTS, ConfigError, SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.safe_yaml import MAX_DEPTH, YamlError, load_yaml
from batchenv.traces import load_trace_times_s

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
name: *h
"""


def _yaml(tmp_path: Path, text: str | bytes, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aliases") as info:
        SystemConfig.from_yaml(_yaml(tmp_path, BILLION_LAUGHS))
    assert len(str(info.value)) < 500
    # even where aliases are allowed (the project's hyperparameter files), expansion is bounded
    with pytest.raises(YamlError, match="more than"):
        load_yaml(BILLION_LAUGHS, allow_aliases=True)


def test_deep_nesting_and_long_extends_chains_are_errors(tmp_path: Path) -> None:
    deep = "name: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError, match=f"deeper than {MAX_DEPTH}"):
        SystemConfig.from_yaml(_yaml(tmp_path, deep))
    previous = "default"
    for i in range(40):
        _yaml(tmp_path, f"extends: {previous}\nname: s{i}\n", f"s{i}.yaml")
        previous = f"s{i}.yaml"
    with pytest.raises(ConfigError, match="extends: a chain of more than"):
        SystemConfig.from_yaml(tmp_path / "s39.yaml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        (b"name: caf\xe9\n", "not UTF-8"),
        ("name: x\nmodels: " + "[" * 3 + "]" * 3 + "\n", "models"),
    ],
)
def test_careless_yaml_gets_a_clear_error(tmp_path: Path, text: str | bytes, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        SystemConfig.from_yaml(_yaml(tmp_path, text))


def test_a_yaml_syntax_error_is_one_line() -> None:
    with pytest.raises(YamlError) as info:
        load_yaml("a: [1, 2\nb: 3\n")
    message = str(info.value)
    assert message.startswith("not valid YAML: ") and "\n" not in message and "line 2" in message


def test_an_integer_too_long_for_python_is_a_yaml_error(tmp_path: Path) -> None:
    digits = "1" + "0" * 5000  # Python converts at most 4300 digits (sys.get_int_max_str_digits)
    with pytest.raises(ConfigError, match=r"line 3: an integer of 5001 characters, more digits than"):
        SystemConfig.from_yaml(_yaml(tmp_path, f"extends: default\nname: big\nqueue_capacity: {digits}\n"))
    with pytest.raises(YamlError, match="line 1: an integer of 5001 characters"):
        load_yaml(f"a: [{digits}]", allow_aliases=True)
    assert load_yaml("a: 1_000\nb: -12\nc: 0x1f\nd: 1:30\n") == {"a": 1000, "b": -12, "c": 31, "d": 90}


def test_exponent_numbers_are_floats_and_long_values_are_cut(tmp_path: Path) -> None:
    config = SystemConfig.from_yaml(_yaml(tmp_path, "extends: default\nname: e\nhorizon_s: 1e2\n"))
    assert config.horizon_s == 100.0
    long_value = "x" * 100_000
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_yaml(_yaml(tmp_path, f"extends: default\nname: l\nhorizon_s: {long_value}\n"))
    assert "horizon_s" in str(info.value) and len(str(info.value)) < 500


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"horizon_s": 1e300}, "horizon_s"),
        ({"arrivals": {"rate_per_s": 1e300}}, "horizon_s"),
        ({"queue_capacity": 10**12}, "queue_capacity"),
        (
            {"models": [{"name": f"m{i}", "quality": 1.0, "inference_ms": [1] * 7} for i in range(100)]},
            "models",
        ),
    ],
)
def test_unbounded_sizes_are_errors(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SystemConfig().replace(**changes)
    assert SystemConfig().arrivals.mean_rate_per_s * SystemConfig().horizon_s <= MAX_EPISODE_REQUESTS


def test_a_service_time_cannot_round_to_zero() -> None:
    model = {"name": "tiny", "quality": 1.0, "inference_ms": [1e-320] * 7}
    timing = {"comm_ms": [0] * 7, "t_pre_ms": 0, "t_post_ms": 0}
    with pytest.raises(ConfigError, match=r"models\[0\].inference_ms\[0\]: must be >= 1e-06 ms"):
        SystemConfig(models=(model,), timing=timing)


def test_trace_with_bom_loads_and_non_utf8_is_an_error(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffTIMESTAMP,x\n0.0,1\n0.5,1\n1.25,1\n".encode())
    np.testing.assert_array_equal(load_trace_times_s(str(bom)), [0.0, 0.5, 1.25])
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"TIMESTAMP,note\n0.0,caf\xe9\n1.0,x\n")
    with pytest.raises(ConfigError, match=r"arrivals.trace_path: .* not UTF-8"):
        load_trace_times_s(str(latin))


@pytest.mark.parametrize("action", [-1, 4, 10**9])
def test_actions_outside_the_space_are_errors(action: int) -> None:
    env = DynamicBatchingEnv(SystemConfig())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 3\]"):
        env.step(action)
