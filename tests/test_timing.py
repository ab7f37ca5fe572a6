"""Timing: the brief's worked example, interp and pad modes."""

from __future__ import annotations

import itertools

import pytest

from batchenv.config import SystemConfig
from batchenv.timing import (
    ServiceTable,
    brief_latency_ms,
    brief_throughput_per_s,
    comm_ms,
    inference_ms,
    service_ms,
)


def test_brief_worked_example(default_config: SystemConfig) -> None:
    # b = 8 on LLM-1: 2 + 4 + 40 + 1 = 47 ms; with 80 ms of accumulation (8 / 100 req/s): 127 ms.
    assert service_ms(default_config, 0, 8) == 47.0
    accumulation_ms = 8 / 100 * 1000
    assert brief_latency_ms(default_config, 0, 8, accumulation_ms) == 127.0
    assert brief_throughput_per_s(default_config, 0, 8, accumulation_ms) == pytest.approx(8 / 0.127)
    assert round(brief_throughput_per_s(default_config, 0, 8, accumulation_ms)) == 63


@pytest.mark.parametrize("mode", ["interp", "pad"])
def test_table_rows_are_exact_in_both_modes(mode: str) -> None:
    config = SystemConfig(timing={"mode": mode})
    for i, b in enumerate(config.timing.batch_sizes):
        assert comm_ms(config, b) == config.timing.comm_ms[i]
        for m, model in enumerate(config.models):
            assert inference_ms(config, m, b) == model.inference_ms[i]
            assert service_ms(config, m, b) == 3.0 + config.timing.comm_ms[i] + model.inference_ms[i]


def test_interp_is_linear_between_rows() -> None:
    config = SystemConfig(timing={"mode": "interp"})
    assert comm_ms(config, 3) == pytest.approx(2.75)
    assert inference_ms(config, 0, 3) == pytest.approx(20.0)
    assert service_ms(config, 0, 3) == pytest.approx(2 + 2.75 + 20 + 1)
    assert inference_ms(config, 2, 48) == pytest.approx(80.0)  # halfway between 60 and 100


def test_pad_runs_the_next_table_size() -> None:
    config = SystemConfig(timing={"mode": "pad"})
    assert service_ms(config, 0, 3) == service_ms(config, 0, 4) == 2 + 3 + 25 + 1
    assert service_ms(config, 2, 33) == service_ms(config, 2, 64) == 2 + 8 + 100 + 1


@pytest.mark.parametrize("mode", ["interp", "pad"])
def test_service_table_matches_and_grows_sublinearly(mode: str) -> None:
    config = SystemConfig(timing={"mode": mode})
    table = ServiceTable(config)
    for m in range(3):
        times = [table.service_ms[m, b] for b in range(1, 65)]
        assert all(b >= a for a, b in itertools.pairwise(times))
        assert table.service_s[m][8] == service_ms(config, m, 8) / 1000
        # sub-linear: a batch of 64 costs far less than 64 batches of 1
        assert times[63] < 64 * times[0] / 3
    assert table.max_throughput_per_s() == pytest.approx(64 / 0.111)
    assert table.max_throughput_per_s(2) == pytest.approx(2 * 64 / 0.111)


def test_out_of_range_batch_size(default_config: SystemConfig) -> None:
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 64\]"):
        service_ms(default_config, 0, 0)
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 64\]"):
        service_ms(default_config, 0, 65)
