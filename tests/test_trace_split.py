"""Time split of the trace scenarios: ``arrivals.trace_window``, the ``_train``/``_test``
scenarios and the helpers of batchenv.scenarios that enumerate them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from batchenv import scenarios
from batchenv.arrivals import TraceArrivals, make_arrival_process, trace_window_times_s
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import SPLIT_WINDOWS, list_scenarios, load_scenario, split_of, trace_scenarios
from batchenv.timing import model_capacity_per_s
from batchenv.traces import load_trace_times_s

TRACES = [("package:azure_conv_excerpt", "TIMESTAMP"), ("package:mooncake_conv", "arrival_s")]


def _trace_config(window=None, rate: float = 100.0, random_start: bool = True) -> SystemConfig:
    arrivals = {
        "process": "trace",
        "rate_per_s": rate,
        "trace_path": "package:mooncake_conv",
        "trace_column": "arrival_s",
        "random_start": random_start,
    }
    if window is not None:
        arrivals["trace_window"] = window
    return SystemConfig(arrivals=arrivals)


def _take(process: TraceArrivals, seed: int, n: int, rate: float | None = None) -> np.ndarray:
    stream = process.stream(np.random.default_rng(seed), rate)
    return np.concatenate([next(stream) for _ in range(n // 2048 + 1)])[:n]


@pytest.mark.parametrize(("path", "column"), TRACES)
def test_train_and_test_windows_are_disjoint_ordered_and_cover_the_trace(path: str, column: str) -> None:
    times = load_trace_times_s(path, column)
    train = trace_window_times_s(times, SPLIT_WINDOWS["train"])
    test = trace_window_times_s(times, SPLIT_WINDOWS["test"])
    assert train[-1] < test[0]  # the train window is the first part
    assert len(train) + len(test) == len(times)
    assert np.array_equal(np.concatenate([train, test]), times)
    middle = times[0] + 0.5 * (times[-1] - times[0])
    assert train[-1] < middle <= test[0]


def test_window_replays_exactly_its_gaps_on_the_whole_traces_time_axis() -> None:
    times = load_trace_times_s("package:mooncake_conv", "arrival_s")
    whole = make_arrival_process(_trace_config())
    train = make_arrival_process(_trace_config([0.0, 0.5]))
    test = make_arrival_process(_trace_config([0.5, 1.0]))
    n_train = len(trace_window_times_s(times, (0.0, 0.5)))
    assert np.array_equal(train.unit_gaps, whole.unit_gaps[: n_train - 1])
    assert np.array_equal(test.unit_gaps, whole.unit_gaps[n_train:])
    # one time axis: the halves keep their own level around the whole trace's mean rate
    assert whole.window_rate_per_s == pytest.approx(100.0, rel=1e-12)
    assert train.window_rate_per_s < 100.0 < test.window_rate_per_s
    assert train.one_pass_s()[-1] + test.one_pass_s()[-1] < whole.one_pass_s()[-1]


def test_random_starts_and_wraparounds_stay_within_the_window() -> None:
    process = make_arrival_process(_trace_config([0.0, 0.25]))
    window_gaps_s = process.unit_gaps / 100.0
    n = len(window_gaps_s)
    starts = set()
    for seed in range(4):
        times = _take(process, seed, 3 * n + 1)  # three passes and more: wraps three times
        # the first arrival comes one window gap after t = 0; from there the stream replays the
        # window's gaps in the recorded order, wrapping around within the window
        head = np.concatenate([[times[0]], np.diff(times[:8])])
        matches = [
            i
            for i in range(n)
            if np.allclose(np.take(window_gaps_s, range(i, i + 8), mode="wrap"), head, atol=1e-12)
        ]
        assert len(matches) == 1
        start = matches[0]
        starts.add(start)
        expected = np.take(window_gaps_s, np.arange(start + 1, start + 3 * n + 1), mode="wrap")
        assert np.allclose(np.diff(times), expected, rtol=0, atol=1e-9)
    assert len(starts) == 4  # random starts


def test_same_seed_same_arrivals_different_seed_different_start() -> None:
    config = load_scenario(split_of("mooncake_conv_30", "test"))
    one, two = make_arrival_process(config), make_arrival_process(config)
    assert np.array_equal(_take(one, 7, 5000), _take(two, 7, 5000))
    assert not np.array_equal(_take(one, 7, 100), _take(one, 8, 100))


@pytest.mark.parametrize("window", [None, (0.0, 0.5), (0.5, 1.0)])
def test_rescaling_keeps_the_shape(window) -> None:
    process = make_arrival_process(_trace_config(window, random_start=False))
    slow, fast = process.one_pass_s(50.0), process.one_pass_s(400.0)
    assert np.allclose(slow * (50.0 / 400.0), fast, rtol=1e-12, atol=0)
    cv = [np.std(np.diff(t)) / np.mean(np.diff(t)) for t in (slow, fast)]
    assert cv[0] == pytest.approx(cv[1], rel=1e-9)
    # the stream agrees with one pass
    assert np.allclose(_take(process, 0, len(fast) - 1, 400.0), fast[1:], rtol=1e-9)


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ([0.5, 0.5], "0 <= start < end <= 1"),
        ([0.6, 0.4], "0 <= start < end <= 1"),
        ([-0.1, 0.5], "0 <= start < end <= 1"),
        ([0.0, 1.5], "0 <= start < end <= 1"),
        ([0.0, 0.5, 1.0], "0 <= start < end <= 1"),
        ("first half", "0 <= start < end <= 1"),
        (["a", 0.5], "must be a number"),
    ],
)
def test_bad_windows_give_one_clear_error(window, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _trace_config(window)
    assert info.value.field.startswith("arrivals.trace_window")
    assert words in str(info.value)


def test_window_on_a_process_without_a_trace_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"arrivals.trace_window: is only used by process 'trace'"):
        SystemConfig(arrivals={"process": "poisson", "rate_per_s": 10.0, "trace_window": [0.0, 0.5]})


def test_window_too_narrow_for_two_arrivals_is_an_error() -> None:
    config = _trace_config([0.3, 0.3000001])
    with pytest.raises(ConfigError, match=r"arrivals.trace_window: \[0.3, 0.3000001\] holds [01] arrivals"):
        make_arrival_process(config)


def test_unset_window_stays_out_of_the_yaml_and_a_set_one_round_trips(tmp_path) -> None:
    assert "trace_window" not in load_scenario("azure_trace").to_dict()["arrivals"]
    config = load_scenario("mooncake_conv_60_train")
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert SystemConfig.from_yaml(path) == config
    assert SystemConfig.from_yaml(path).arrivals.trace_window == (0.0, 0.5)


def test_every_trace_scenario_has_a_train_and_test_split_differing_only_in_the_window() -> None:
    bases = trace_scenarios()
    assert {"azure_trace", "azure_trace_native", "mooncake_conv", "mooncake_conv_30"} <= set(bases)
    trace_names = {n for n in list_scenarios() if load_scenario(n).arrivals.process == "trace"}
    assert trace_names == set(bases) | {split_of(b, p) for b, p in itertools.product(bases, SPLIT_WINDOWS)}
    for base in bases:
        config = load_scenario(base)
        assert config.arrivals.trace_window is None
        for part, window in SPLIT_WINDOWS.items():
            split = load_scenario(split_of(base, part))
            assert split.arrivals.trace_window == window
            assert split.replace(name=base, arrivals={"trace_window": None}) == config
    assert scenarios.train_split_of("azure_trace_low") == "azure_trace_low_train"
    assert scenarios.eval_split_of("azure_trace_low") == "azure_trace_low_test"


@pytest.mark.parametrize(
    ("name", "part", "field"),
    [
        ("bursty", "train", "scenario"),
        ("mooncake_conv_train", "test", "scenario"),
        ("azure_trace", "dev", "part"),
    ],
)
def test_split_of_rejects_scenarios_without_splits(name: str, part: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_of(name, part)
    assert info.value.field == field


def test_trace_scenario_rates_are_native_or_shares_of_llm3_capacity() -> None:
    default = load_scenario("default")
    capacity = model_capacity_per_s(default, "LLM-3")
    assert capacity == pytest.approx(64 / 0.111)
    for trace in ("azure_trace", "mooncake_conv"):
        for percent in (30, 60):
            rate = load_scenario(f"{trace}_{percent}").arrivals.rate_per_s
            assert rate == pytest.approx(percent / 100 * capacity, abs=0.006)
    for name in ("azure_trace_native", "mooncake_conv"):
        arrivals = load_scenario(name).arrivals
        times = load_trace_times_s(arrivals.trace_path, arrivals.trace_column)
        native = (len(times) - 1) / (times[-1] - times[0])
        assert arrivals.rate_per_s == pytest.approx(native, rel=2e-5)
