"""Arrivals generated from ServeGen's production statistics (batchenv.servegen), the script entry
that writes the shipped hour (benchmarks/make_trace_excerpts.py --servegen-m-large) and the
shipped file itself."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_script

from batchenv import servegen
from batchenv.config import ConfigError
from batchenv.scenarios import load_scenario
from batchenv.servegen import WINDOW_S, read_servegen_clients, servegen_arrivals
from batchenv.trace_stats import gap_cv
from batchenv.traces import PACKAGE_TRACES, load_trace_times_s

REPO = Path(__file__).resolve().parents[1]


def _folder(tmp_path: Path, clients: dict[int, list[str]]) -> Path:
    """A ServeGen model folder: per client id, its rows (without the window start)."""
    folder = tmp_path / "m-test"
    folder.mkdir(parents=True)
    for cid, rows in clients.items():
        lines = [f"{int(i * WINDOW_S)},{row}" for i, row in enumerate(rows)]
        (folder / f"chunk-{cid}-trace.csv").write_text("\n".join(lines) + "\n")
    return folder


SMOOTH = "2.0,1.0,Gamma,1.0,0.5"  # exponential gaps: Poisson within the window
BURSTY = "1.0,5.0,Weibull,0.35,0.2"
IDLE = "0,0,,0,0"


def test_generation_follows_servegen_method(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {3: [SMOOTH, IDLE, SMOOTH], 10: [BURSTY, BURSTY, IDLE]})
    clients = read_servegen_clients(folder)
    assert list(clients.client_ids) == [3, 10] and clients.n_windows == 3
    assert list(clients.aggregate_rate_per_s()) == [3.0, 1.0, 2.0]
    times, owners = servegen_arrivals(clients, 0, 3, 1.0, np.random.default_rng(5))
    # one factor for the span: mean aggregate 2/s -> 1/s, every client keeps its share
    factor = 1.0 / 2.0
    for j, rates in enumerate([(2.0, 1.0), (0.0, 1.0), (2.0, 0.0)]):
        in_window = (times >= j * WINDOW_S) & (times < (j + 1) * WINDOW_S)
        for cid, rate in zip((3, 10), rates, strict=True):
            expected = max(math.ceil(rate * factor * WINDOW_S) - 1, 0) if rate else 0
            assert np.sum(in_window & (owners == cid)) == expected  # ceil(r L) gaps, the last excluded
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < 3 * WINDOW_S
    again = servegen_arrivals(clients, 0, 3, 1.0, np.random.default_rng(5))
    assert np.array_equal(times, again[0]) and np.array_equal(owners, again[1])  # a seed fixes it
    other = servegen_arrivals(clients, 0, 3, 1.0, np.random.default_rng(6))[0]
    assert not np.array_equal(times, other)


def test_each_client_keeps_its_fitted_burstiness(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {0: [SMOOTH], 1: [BURSTY]})
    times, owners = servegen_arrivals(read_servegen_clients(folder), 0, 1, 30.0, np.random.default_rng(0))
    assert gap_cv(times[owners == 0]) == pytest.approx(1.0, abs=0.1)  # Gamma shape 1: Poisson
    assert gap_cv(times[owners == 1]) > 2.0  # Weibull shape 0.35: bursts
    first_window = servegen_arrivals(read_servegen_clients(folder), 0, 1, 3.0, np.random.default_rng(0))[0]
    assert len(first_window) / WINDOW_S == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ({0: ["1,1,Gamma,1,1", "1,1,Lognormal,1,1"]}, "pattern must be one of"),
        ({0: ["1,1,Gamma,1,1"], 1: ["1,1,Gamma,1,1", IDLE]}, "different numbers of windows"),
        ({0: ["-1,1,Gamma,1,1"]}, "rate must be a finite number >= 0"),
        ({0: ["1,1,Gamma,0,1"]}, "shape and scale must be > 0"),
        ({0: ["1,1,Gamma,1"]}, "expected 6 columns"),
    ],
)
def test_bad_statistics_give_one_clear_error(tmp_path: Path, rows: dict, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_servegen_clients(_folder(tmp_path, rows))
    assert info.value.field == "source" and words in str(info.value)


def test_missing_folder_and_bad_span_are_refused(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_servegen_clients(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no chunk"):
        read_servegen_clients(tmp_path / "empty")
    (tmp_path / "gap").mkdir()
    (tmp_path / "gap" / "chunk-0-trace.csv").write_text("0,1,1,Gamma,1,1\n1200,1,1,Gamma,1,1\n")
    with pytest.raises(ConfigError, match="window start must be 600"):
        read_servegen_clients(tmp_path / "gap")
    monkeypatch.setattr(servegen, "MAX_WINDOWS", 2)
    with pytest.raises(ConfigError, match="more than 2 windows"):
        read_servegen_clients(_folder(tmp_path / "long", {0: [SMOOTH, SMOOTH, SMOOTH]}))
    monkeypatch.setattr(servegen, "MAX_CLIENTS", 1)
    with pytest.raises(ConfigError, match="more than 1"):
        read_servegen_clients(_folder(tmp_path / "many", {0: [SMOOTH], 1: [SMOOTH]}))
    monkeypatch.undo()
    clients = read_servegen_clients(_folder(tmp_path, {0: [SMOOTH, IDLE]}))
    with pytest.raises(ValueError, match="outside"):
        servegen_arrivals(clients, 1, 2, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no requests"):
        servegen_arrivals(clients, 1, 1, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mean_rate_per_s"):
        servegen_arrivals(clients, 0, 1, 0.0, np.random.default_rng(0))


def _script():
    return load_script("make_trace_excerpts")


def test_script_writes_the_busiest_hour_and_checks_its_source(tmp_path: Path, capsys) -> None:
    script = _script()
    quiet, busy = "0.5,1.0,Gamma,1.0,2.0", "3.0,1.0,Gamma,1.0,0.3"
    rows = [quiet] * 6 + [busy] * 6 + [quiet] * (24 * 6 - 12)
    folder = _folder(tmp_path, {0: rows, 1: rows})
    (folder / "chunk-x-trace.csv").write_text("not a client file\n")  # not chunk-<id>: ignored
    out = tmp_path / "out"
    out.mkdir()
    assert script.main(["--servegen-m-large", str(folder), "--out-dir", str(out)]) == 2
    assert "is not the m-large folder" in capsys.readouterr().err
    assert script.main(["--servegen-m-large", str(folder), "--out-dir", str(out), "--any-version"]) == 0
    assert "hour 1 of the first day" in capsys.readouterr().out  # the busiest hour
    first = (out / "servegen_m_large.csv").read_text()
    assert script.main(["--servegen-m-large", str(folder), "--out-dir", str(out), "--any-version"]) == 0
    assert (out / "servegen_m_large.csv").read_text() == first  # the same file at every run
    times = load_trace_times_s(str(out / "servegen_m_large.csv"), "arrival_s")
    assert len(times) / (6 * WINDOW_S) == pytest.approx(script.SERVEGEN_MEAN_RATE_PER_S, rel=0.01)
    with pytest.raises(SystemExit):  # neither source given
        script.main(["--out-dir", str(out)])


def test_shipped_hour_is_what_attribution_says() -> None:
    with open(PACKAGE_TRACES["servegen_m_large"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    times = np.array([float(r["arrival_s"]) for r in rows])
    clients = {int(r["client"]) for r in rows}
    assert len(rows) == 17863 and len(clients) == 42
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < 3600.0
    assert len(rows) / 3600.0 == pytest.approx(5.0, rel=0.01)
    text = (REPO / "batchenv" / "data" / "ATTRIBUTION.md").read_text()
    assert "hour 23" in text and "364.73 requests/s" in text
    native = load_scenario("servegen")
    assert native.arrivals.rate_per_s == 364.73  # the data's own aggregate rate in that hour
    assert load_scenario("servegen_30_test").arrivals.trace_window == (0.5, 1.0)
