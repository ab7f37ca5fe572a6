"""SystemConfig: the brief's defaults, YAML loading, and one clear error per bad field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from batchenv.arrivals import make_arrival_process
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import list_scenarios, load_scenario


def test_defaults_are_the_brief(default_config: SystemConfig) -> None:
    c = default_config
    assert c.timing.batch_sizes == (1, 2, 4, 8, 16, 32, 64)
    assert c.timing.comm_ms == (2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    assert (c.timing.t_pre_ms, c.timing.t_post_ms) == (2.0, 1.0)
    assert c.model_names == ("LLM-1", "LLM-2", "LLM-3")
    assert c.qualities == (1.0, 0.97, 0.92)
    assert c.models[0].inference_ms == (10, 15, 25, 40, 75, 140, 260)
    assert c.models[1].inference_ms == (8, 12, 20, 30, 50, 100, 200)
    assert c.models[2].inference_ms == (4, 5, 10, 15, 30, 60, 100)
    assert (c.max_batch_size, c.n_workers, c.queue_capacity) == (64, 1, 1024)
    assert (c.max_wait_ms, c.slo_ms) == (100.0, 250.0)
    assert (c.reward.w_latency_per_s, c.reward.w_slo, c.reward.w_drop) == (1.0, 0.0, 1.0)


def test_default_scenario_equals_defaults(default_config: SystemConfig) -> None:
    assert load_scenario("default") == default_config


@pytest.mark.parametrize("name", list_scenarios())
def test_every_scenario_loads_and_round_trips(name: str, tmp_path: Path) -> None:
    config = load_scenario(name)
    assert config.name == name
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    again = SystemConfig.from_yaml(path)
    assert again == config
    make_arrival_process(config)  # trace files resolve


def test_extends_merges_sections(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("extends: default\nname: s\nn_workers: 3\narrivals: {rate_per_s: 42}\n")
    config = SystemConfig.from_yaml(path)
    assert config.n_workers == 3
    assert config.arrivals.rate_per_s == 42.0
    assert config.arrivals.process == "poisson"
    assert config.models == SystemConfig().models


def test_replace_validates_and_merges_sections(default_config: SystemConfig) -> None:
    changed = default_config.replace(n_workers=2, arrivals={"rate_per_s": 7.0})
    assert changed.n_workers == 2 and changed.arrivals.rate_per_s == 7.0
    with pytest.raises(ConfigError) as err:
        default_config.replace(arrivals={"rate_per_s": -1})
    assert err.value.field == "arrivals.rate_per_s"


def _error_field(data: dict, tmp_path: Path) -> ConfigError:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        config = SystemConfig.from_yaml(path)
        make_arrival_process(config)
    return err.value


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"arrivals": {"rate_per_s": -5}}, "arrivals.rate_per_s", "> 0"),
        ({"arrivals": {"rate_per_s": "fast"}}, "arrivals.rate_per_s", "number"),
        (
            {"timing": {"batch_sizes": [1, 4, 2, 8, 16, 32, 64]}},
            "timing.batch_sizes[2]",
            "increasing",
        ),
        (
            {"timing": {"batch_sizes": [1, 2, 2, 8, 16, 32, 64]}},
            "timing.batch_sizes[2]",
            "increasing",
        ),
        ({"timing": {"comm_ms": [2, 2.5, 3, 2, 5, 6, 8]}}, "timing.comm_ms[3]", "non-decreasing"),
        ({"timing": {"comm_ms": [2, 2.5, 3]}}, "timing.comm_ms", "7 entries"),
        ({"timing": {"mode": "cubic"}}, "timing.mode", "interp"),
        ({"max_batch_size": 0}, "max_batch_size", ">= 1"),
        ({"max_batch_size": 65}, "max_batch_size", "<= 64"),
        ({"n_workers": 0}, "n_workers", ">= 1"),
        ({"queue_capacity": 2.5}, "queue_capacity", "integer"),
        ({"max_wait_ms": 0}, "max_wait_ms", "> 0"),
        ({"slo_ms": -1}, "slo_ms", "> 0"),
        ({"reward": {"w_drop": -1}}, "reward.w_drop", ">= 0"),
        ({"reward": {"w_lat": 1}}, "reward.w_lat", "unknown field"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"arrivals": {"process": "uniform"}}, "arrivals.process", "poisson"),
        ({"arrivals": {"process": "diurnal", "amplitude": 1.5}}, "arrivals.amplitude", "[0, 1)"),
        (
            {
                "arrivals": {
                    "process": "mmpp",
                    "rate_per_s": None,
                    "rates_per_s": [10],
                    "switch_rates_per_s": [1],
                }
            },
            "arrivals.rates_per_s",
            "at least 2",
        ),
        ({"arrivals": {"rate_range_per_s": [50, 10]}}, "arrivals.rate_range_per_s", "low <= high"),
        (
            {"models": [{"name": "LLM-1", "quality": 1.2, "inference_ms": [1, 2, 3, 4, 5, 6, 7]}]},
            "models[0].quality",
            "(0, 1]",
        ),
        (
            {"models": [{"name": "A", "quality": 1, "inference_ms": [1, 2, 3, 4, 5, 6, 5]}]},
            "models[0].inference_ms[6]",
            "non-decreasing",
        ),
        (
            {
                "models": [
                    {"name": "A", "quality": 1, "inference_ms": [1, 2, 3, 4, 5, 6, 7]},
                    {"name": "A", "quality": 1, "inference_ms": [1, 2, 3, 4, 5, 6, 7]},
                ]
            },
            "models[1].name",
            "duplicate",
        ),
        (
            {"arrivals": {"process": "trace", "trace_path": "no/such/file.csv"}},
            "arrivals.trace_path",
            "not found",
        ),
        ({"extends": "no_such_scenario"}, "extends", "unknown scenario"),
        ({"name": "../escaped_by_name"}, "name", "usable as a file name"),
        ({"arrivals": {"rate_per_s": 10**400}}, "arrivals.rate_per_s", "a finite number > 0"),
        (
            {
                "arrivals": {
                    "process": "mixture",
                    "rate_per_s": None,
                    "components": [{"weight": 1e308, "arrivals": {"rate_per_s": r}} for r in (5, 6)],
                }
            },
            "arrivals.components",
            "finite sum",
        ),
        (
            {
                "arrivals": {
                    "process": "mmpp",
                    "rate_per_s": None,
                    "rates_per_s": [0, 1],
                    "switch_rates_per_s": [1e-300, 1e-300],
                }
            },
            "arrivals.switch_rates_per_s[0]",
            "mean stay of at most 86400 s",
        ),
        (
            {
                "arrivals": {
                    "process": "mmpp",
                    "rate_per_s": None,
                    "rates_per_s": [0, 1],
                    "switch_rates_per_s": [[0, 1], [1e308, 0]],
                }
            },
            "arrivals.switch_rates_per_s[1]",
            "leaving rate must be in",
        ),
        (
            {
                "arrivals": {
                    "process": "mmpp",
                    "rate_per_s": None,
                    "rates_per_s": [0, 100000],
                    "switch_rates_per_s": [1 / 86400, 1 / 86400],
                }
            },
            "arrivals.switch_rates_per_s",
            "a mean stay of 86400 s in a phase of up to 100000 requests/s holds more than 1e+07",
        ),
        ({"timing": {"t_pre_ms": 1e300}}, "timing.t_pre_ms", "<= 3.6e+06 ms (one hour)"),
        ({"timing": {"t_post_ms": 3.7e6}}, "timing.t_post_ms", "<= 3.6e+06 ms (one hour)"),
        ({"timing": {"comm_ms": [2, 2.5, 3, 4, 5, 6, 1e300]}}, "timing.comm_ms[6]", "(one hour)"),
        (
            {"models": [{"name": "A", "quality": 1, "inference_ms": [1, 2, 3, 4, 5, 6, 1e300]}]},
            "models[0].inference_ms[6]",
            "(one hour)",
        ),
    ],
)
def test_bad_fields_give_one_clear_error(data: dict, field: str, words: str, tmp_path: Path) -> None:
    err = _error_field(data, tmp_path)
    assert err.field == field, str(err)
    assert words in str(err)
    assert str(err).startswith(field)


@pytest.mark.parametrize("name", ["../escaped_by_name", "a/b", "a\\b", "a\0b", ".", "..", "", "x" * 201, 7])
def test_a_name_that_is_not_a_plain_file_name_is_refused(default_config: SystemConfig, name: object) -> None:
    with pytest.raises(ConfigError, match=r"^name: must be") as err:
        default_config.replace(name=name)
    assert err.value.field == "name"


def test_names_the_code_builds_stay_valid(default_config: SystemConfig) -> None:
    # agents/slo_target.py, benchmarks/robust (poisson@<rate>), apps/train_plan.py (--rate), sim_to_real
    for name in ("-", "poisson@173", "default_rate150", "poisson_50pct", "calibrated", "...", "x" * 200):
        assert default_config.replace(name=name).name == name


def test_unknown_model_name(default_config: SystemConfig) -> None:
    assert default_config.model_index("LLM-2") == 1
    with pytest.raises(ConfigError, match=r"model: unknown model 'LLM-4'; known: \['LLM-1'"):
        default_config.model_index("LLM-4")


def _trace_config(tmp_path: Path, rows: list[str]) -> SystemConfig:
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,x\n" + "\n".join(rows) + "\n")
    return SystemConfig(arrivals={"process": "trace", "rate_per_s": 10.0, "trace_path": str(trace)})


def test_trace_with_unsorted_timestamps(tmp_path: Path) -> None:
    config = _trace_config(tmp_path, ["0.0,1", "0.5,1", "0.2,1", "0.9,1"])
    with pytest.raises(ConfigError, match=r"arrivals.trace_path: .*row 4: timestamps must be sorted"):
        make_arrival_process(config)


def test_trace_with_non_numeric_timestamp(tmp_path: Path) -> None:
    config = _trace_config(tmp_path, ["0.0,1", "soon,1", "0.9,1"])
    with pytest.raises(ConfigError, match=r"row 3: timestamp 'soon' is neither a number"):
        make_arrival_process(config)


def test_trace_with_missing_column(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("when\n0\n1\n")
    config = SystemConfig(arrivals={"process": "trace", "rate_per_s": 10.0, "trace_path": str(trace)})
    with pytest.raises(ConfigError, match=r"arrivals.trace_column: column 'TIMESTAMP' not in"):
        make_arrival_process(config)


def test_trace_relative_to_yaml_and_datetimes(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "TIMESTAMP\n2023-11-16 18:15:46.6805900\n2023-11-16 18:15:47.1805900\n2023-11-16 18:15:48.6805900\n"
    )
    (tmp_path / "s.yaml").write_text("arrivals: {process: trace, rate_per_s: 5, trace_path: t.csv}\n")
    process = make_arrival_process(SystemConfig.from_yaml(tmp_path / "s.yaml"))
    assert process.unit_gaps.tolist() == pytest.approx([0.5, 1.5])


def test_missing_config_file_and_bad_yaml(tmp_path: Path) -> None:
    """A whole file's error names the file, with no placeholder for a field (it read
    ``<file>: ...`` and ``<root>: ...``), and says where in the file YAML stopped."""
    absent = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_yaml(absent)
    assert str(info.value) == f"config file not found: {absent}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_yaml(bad)
    assert str(info.value) == (
        f"{bad}: not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1, column 4)"
    )
    bad.write_text("- poisson\n")
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_yaml(bad)
    assert str(info.value) == f"{bad} must hold a mapping of fields, got a list"
    bad.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=r"^/.*bad\.yaml is empty: a scenario file needs"):
        SystemConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="unknown scenario 'nope'"):
        load_scenario("nope")


def test_a_yaml_list_is_echoed_as_a_list() -> None:
    """The configs keep YAML lists as tuples; an error shows the value as it was written."""
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_dict({"arrivals": {"process": ["poisson"]}})
    assert str(info.value) == (
        "arrivals.process: must be one of ['poisson', 'mmpp', 'diurnal', 'trace', 'mixture'], got ['poisson']"
    )
    with pytest.raises(ConfigError) as info:
        SystemConfig.from_dict({"timing": {"mode": ["a", ["b"]]}})
    assert str(info.value) == "timing.mode: must be one of ['interp', 'pad'], got ['a', ['b']]"


def test_at_rate_fixes_the_mean_rate_and_keeps_the_shape() -> None:
    bursty = load_scenario("bursty")
    fixed = bursty.at_rate(300.0)
    assert fixed.arrivals.mean_rate_per_s == pytest.approx(300.0)
    assert fixed.arrivals.rates_per_s == pytest.approx([100.0, 800.0])
    randomised = load_scenario("default_randomised")
    assert randomised.at_rate(42.0).arrivals.rate_range_per_s is None
    assert randomised.at_rate(42.0).arrivals.rate_per_s == 42.0
    with pytest.raises(ConfigError, match="rate_per_s"):
        randomised.at_rate(-1.0)
