"""The shipped trace excerpts (loading, attribution, treatment of coarse timestamps), the tools
that cut them (batchenv.trace_prep, benchmarks/make_trace_excerpts.py) and the statistics that
characterise them (batchenv.trace_stats, benchmarks/trace_table.py)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_script

from batchenv.arrivals import make_arrival_process
from batchenv.config import ConfigError, SystemConfig
from batchenv.trace_prep import (
    read_azure_multimodal_csv,
    read_fineserve_csv,
    read_mooncake_jsonl,
    recording_granularity_s,
    spread_ties_evenly,
    spread_ties_uniformly,
)
from batchenv.trace_stats import (
    characterise,
    dispersion_index,
    gap_cv,
    peak_rate_per_s,
    share_in_bins_above,
)
from batchenv.traces import PACKAGE_TRACES, load_trace_times_s

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "batchenv" / "data"

# per shipped trace: the licence file that must sit next to it and words its attribution must hold
ATTRIBUTION = {
    "azure_conv_excerpt": ("LICENSE-CC-BY-4.0.txt", ["Azure/AzurePublicDataset", "Splitwise", "ISCA 2024"]),
    "azure_conv_hour": (
        "LICENSE-CC-BY-4.0.txt",
        [
            "Azure/AzurePublicDataset",
            "AzureLLMInferenceTrace_conv.csv",
            "Splitwise",
            "ISCA 2024",
            "unchanged",
        ],
    ),
    "azure_lmm_excerpt": (
        "LICENSE-CC-BY-4.0.txt",
        [
            "Azure/AzurePublicDataset",
            "AzureLMMInferenceTrace_multimodal.csv.gz",
            "ModServe",
            "SoCC 2025",
            "nebula893/vlm-scheduler",
            "Changes made",
            "to the millisecond",
        ],
    ),
    "mooncake_conv": (
        "LICENSE-APACHE-2.0.txt",
        ["kvcache-ai/Mooncake", "conversation_trace.jsonl", "FAST 25", "Apache License 2.0", "Changes made"],
    ),
    "servegen_m_large": (
        "LICENSE-APACHE-2.0.txt",
        [
            "alibaba/ServeGen",
            "arXiv:2505.09999",
            "Apache License 2.0",
            "Changes made",
            "not a recorded trace",
        ],
    ),
}


def _script(name: str):
    return load_script(name)


def _rows(name: str) -> list[dict[str, str]]:
    with open(PACKAGE_TRACES[name], newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", sorted(PACKAGE_TRACES))
def test_each_shipped_excerpt_loads_and_has_its_attribution_and_licence(name: str) -> None:
    path = PACKAGE_TRACES[name]
    assert path.stat().st_size < 750_000  # small enough to ship
    column = "TIMESTAMP" if name.startswith("azure_conv") else "arrival_s"
    times = load_trace_times_s(f"package:{name}", column)
    assert len(times) > 2000 and times[0] == 0.0 and np.all(np.diff(times) >= 0)
    licence, words = ATTRIBUTION[name]
    assert (DATA / licence).is_file()
    text = (DATA / "ATTRIBUTION.md").read_text()
    section = text[text.index(f"`{path.name}`") :]
    section = section[: section.find("\n## ") if "\n## " in section else len(section)]
    for word in [licence, *words]:
        assert word in section, f"ATTRIBUTION.md lacks {word!r} for {path.name}"
    assert f"{len(times):,} requests" in section


def test_mooncake_excerpt_spreads_the_3s_grid_as_documented() -> None:
    rows = _rows("mooncake_conv")
    recorded = np.array([float(r["recorded_s"]) for r in rows])
    arrival = np.array([float(r["arrival_s"]) for r in rows])
    distinct, counts = np.unique(recorded, return_counts=True)
    # the recording: a 3 s grid with ties (1,180 ticks, about 10 requests each)
    assert len(rows) == 12031 and len(distinct) == 1180
    assert recording_granularity_s(recorded) == pytest.approx(3.0, abs=0.002)
    assert counts.max() == 28 and np.mean(np.diff(recorded) == 0) > 0.9
    # the replayed column: each request inside its recording interval [t, t + g), g = the time
    # to the next recorded time (at most 3 s), the order of the rows kept
    interval = np.minimum(np.append(np.diff(distinct), 3.0), 3.0)
    upper = recorded + np.repeat(interval, counts)
    assert np.all(arrival >= recorded) and np.all(arrival < upper + 5e-5)
    assert np.all(np.diff(arrival) >= 0)
    # what the scenarios replay is that column, and it is locally Poisson-like (docs/results/traces.md)
    assert gap_cv(arrival) == pytest.approx(1.0, abs=0.05)
    assert gap_cv(recorded) > 2.5


def test_spreads_follow_their_definitions() -> None:
    recorded = np.array([0.0, 0.0, 0.0, 3.0, 6.0, 6.0, 8.5])
    even = spread_ties_evenly(recorded, 3.0)
    assert np.allclose(even, [0.5, 1.5, 2.5, 4.5, 6.625, 7.875, 10.0])  # interval 2.5 before 8.5
    first = spread_ties_uniformly(recorded, 3.0, np.random.default_rng(1))
    again = spread_ties_uniformly(recorded, 3.0, np.random.default_rng(1))
    assert np.array_equal(first, again)  # deterministic for a seed
    assert not np.array_equal(first, spread_ties_uniformly(recorded, 3.0, np.random.default_rng(2)))
    bounds = np.array([3.0, 3.0, 3.0, 6.0, 8.5, 8.5, 11.5])
    assert np.all(first >= recorded) and np.all(first < bounds) and np.all(np.diff(first) >= 0)
    with pytest.raises(ValueError, match="sorted"):
        spread_ties_evenly(recorded[::-1], 3.0)
    with pytest.raises(ValueError, match="granularity_s"):
        spread_ties_evenly(recorded, 0.0)


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (['{"timestamp": 0, "input_length": 5, "output_length": 1}', "{oops"], "line 2: not JSON"),
        (
            ['{"timestamp": 9, "input_length": 5, "output_length": 1}', "[1, 2]"],
            "line 2: must be a JSON object",
        ),
        (
            [
                '{"timestamp": 9, "input_length": 5, "output_length": 1}',
                '{"timestamp": 3, "input_length": 5, "output_length": 1}',
            ],
            "line 2: timestamps must be non-decreasing",
        ),
        (
            ['{"timestamp": 0, "input_length": -5, "output_length": 1}'],
            "line 1: 'input_length' must be an integer >= 0",
        ),
        (['{"timestamp": 0, "input_length": 5}'], "'output_length' must be an integer >= 0, got None"),
        (['{"timestamp": 0, "input_length": 5, "output_length": 1}'], "needs at least 2 requests"),
    ],
)
def test_bad_source_lines_give_one_clear_error(tmp_path: Path, lines: list[str], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_mooncake_jsonl(_write_jsonl(tmp_path / "t.jsonl", lines))
    assert info.value.field == "source"
    assert words in str(info.value)


MOONCAKE_ROW = '{"timestamp": 0, "input_length": 5, "output_length": 1}'


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f'{{"timestamp": 1{"0" * 400}, "input_length": 5, "output_length": 1}}', "<= 9007199254740992"),
        (f'{{"timestamp": 1{"0" * 5000}, "input_length": 5, "output_length": 1}}', "more than 4300 digits"),
        ('{"timestamp": 5, "input_length": 5, "output_length": 1, "note": "caf\xe9"}', "not UTF-8 text"),
        ("[" * 100_000, "nested too deep"),
    ],
)
def test_hostile_source_lines_give_one_clear_error(tmp_path: Path, line: str, words: str) -> None:
    source = tmp_path / "t.jsonl"
    source.write_bytes(f"{MOONCAKE_ROW}\n{line}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_mooncake_jsonl(source)
    message = str(info.value)
    assert info.value.field == "source" and "line 2: " in message and words in message, message
    assert len(message) < 400


def test_mooncake_reader_stops_at_the_row_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchenv.trace_prep.MAX_TRACE_ROWS", 2)
    source = _write_jsonl(tmp_path / "t.jsonl", [MOONCAKE_ROW] * 2)
    assert len(read_mooncake_jsonl(source).times_s) == 2
    with pytest.raises(ConfigError, match="more than 2 requests"):
        read_mooncake_jsonl(_write_jsonl(tmp_path / "t.jsonl", [MOONCAKE_ROW] * 3))


def test_a_csv_field_over_the_csv_modules_limit_is_one_clear_error(tmp_path: Path) -> None:
    huge = "1" * 200_000  # the csv module reads fields up to 128 KiB
    trace = tmp_path / "trace.csv"
    trace.write_text(f"TIMESTAMP\n0\n{huge}\n")
    with pytest.raises(
        ConfigError, match=r"^arrivals.trace_path: .*trace.csv line 3: not a readable CSV row"
    ):
        load_trace_times_s(str(trace))
    fineserve = tmp_path / "fineserve.csv"
    fineserve.write_text(f"input_length,output_length,timestamp\n1,1,0\n1,1,{huge}\n")
    with pytest.raises(ConfigError, match=r"^source: .*fineserve.csv line 3: not a readable CSV row"):
        read_fineserve_csv(fineserve)
    lmm = tmp_path / "lmm.csv"
    lmm.write_text(f"arrival_time,input_tokens,output_tokens\n0,1,1\n{huge},1,1\n")
    with pytest.raises(ConfigError, match=r"^source: .*lmm.csv line 3: not a readable CSV row"):
        read_azure_multimodal_csv(lmm, 2)


def test_a_trace_whose_span_overflows_is_refused_not_replayed_forever(tmp_path: Path) -> None:
    (tmp_path / "extreme.csv").write_text("TIMESTAMP\n-1e308\n1e308\n")
    (tmp_path / "s.yaml").write_text(
        "extends: default\nname: t_extreme\n"
        "arrivals: {process: trace, rate_per_s: 50, trace_path: extreme.csv, random_start: false}\n"
    )
    with pytest.raises(ConfigError, match=r"^arrivals.trace_path: .*extreme.csv: the timestamps span"):
        make_arrival_process(SystemConfig.from_yaml(tmp_path / "s.yaml"))


def test_excerpt_script_ships_the_azure_hour_unchanged_and_its_first_requests(tmp_path: Path, capsys) -> None:
    script = _script("make_trace_excerpts")
    hour, excerpt = PACKAGE_TRACES["azure_conv_hour"], PACKAGE_TRACES["azure_conv_excerpt"]
    assert script.main(["--azure-conversation", str(hour), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "azure_conv_hour.csv").read_bytes() == hour.read_bytes()
    assert (tmp_path / "azure_conv_excerpt.csv").read_bytes() == excerpt.read_bytes()
    times = load_trace_times_s(str(hour))
    assert len(times) == 19366 and len(load_trace_times_s(str(excerpt))) == script.AZURE_EXCERPT_REQUESTS
    # another file is refused by its digest, and a short one even with --any-version
    other = tmp_path / "other.csv"
    other.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    assert script.main(["--azure-conversation", str(other), "--out-dir", str(tmp_path / "a")]) == 2
    assert "not the 2023 conversation trace" in capsys.readouterr().err
    assert (
        script.main(["--azure-conversation", str(other), "--out-dir", str(tmp_path / "b"), "--any-version"])
        == 2
    )
    assert "fewer than 3001" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_excerpt_script_cuts_a_loadable_file_and_checks_its_source(tmp_path: Path, capsys) -> None:
    script = _script("make_trace_excerpts")
    lines = [
        json.dumps({"timestamp": ms, "input_length": 100 + i, "output_length": 7, "hash_ids": [1, 2]})
        for i, ms in enumerate([0, 0, 0, 3000, 3000, 6001, 9000, 9000, 9000, 9000])
    ]
    source = _write_jsonl(tmp_path / "conversation_trace.jsonl", lines)
    assert script.main(["--mooncake-conversation", str(source), "--out-dir", str(tmp_path)]) == 2
    assert "not the FAST'25 release file" in capsys.readouterr().err
    assert (
        script.main(["--mooncake-conversation", str(source), "--out-dir", str(tmp_path), "--any-version"])
        == 0
    )
    first = (tmp_path / "mooncake_conv.csv").read_text()
    assert (
        script.main(["--mooncake-conversation", str(source), "--out-dir", str(tmp_path), "--any-version"])
        == 0
    )
    assert (tmp_path / "mooncake_conv.csv").read_text() == first  # the same file at every run
    with open(tmp_path / "mooncake_conv.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    recorded = np.array([float(r["recorded_s"]) for r in rows])
    arrival = np.array([float(r["arrival_s"]) for r in rows])
    assert list(recorded) == [0, 0, 0, 3, 3, 6.001, 9, 9, 9, 9]
    assert [int(r["input_tokens"]) for r in rows] == list(range(100, 110))
    assert np.all(arrival >= recorded) and np.all(arrival < recorded + 3.0) and len(np.unique(arrival)) == 10
    assert len(load_trace_times_s(str(tmp_path / "mooncake_conv.csv"), "arrival_s")) == 10


def _lmm_sources(tmp_path: Path, extra_rows: int = 3) -> tuple[Path, Path]:
    """The shipped LMM excerpt written back in the release's layout (ISO times from 2024-10-15
    12:00:00.269 UTC, a column of image counts) and in the copy's (seconds from the first request),
    each with ``extra_rows`` more requests after the 5,000."""
    rows = _rows("azure_lmm_excerpt")
    ms = [round(float(r["recorded_s"]) * 1000) for r in rows]
    ms += [ms[-1] + 250 * (i + 1) for i in range(extra_rows)]
    tokens = [(r["input_tokens"], r["output_tokens"]) for r in rows] + [("9", "9")] * extra_rows
    start = dt.datetime(2024, 10, 15, 12, 0, 0, 269000, tzinfo=dt.UTC)
    release, copy = tmp_path / "release.csv", tmp_path / "copy.csv"
    with open(release, "w", encoding="utf-8") as handle:
        handle.write("TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n")
        for t, (n_in, n_out) in zip(ms, tokens, strict=True):
            stamp = (
                (start + dt.timedelta(milliseconds=t))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
            handle.write(f"{stamp},1,{n_in},{n_out}\n")
    with open(copy, "w", encoding="utf-8") as handle:
        handle.write("arrival_time,input_tokens,output_tokens\n")
        for t, (n_in, n_out) in zip(ms, tokens, strict=True):
            handle.write(f"{t / 1000!r},{n_in},{n_out}\n")
    return release, copy


def test_excerpt_script_writes_the_lmm_excerpt_from_the_release_or_its_copy(tmp_path: Path, capsys) -> None:
    script = _script("make_trace_excerpts")
    shipped = PACKAGE_TRACES["azure_lmm_excerpt"].read_bytes()
    release, copy = _lmm_sources(tmp_path)
    assert "2024-10-15T12:00:05.819Z,1,949,126" in release.read_text()  # as the release's notebook prints
    for source in (release, copy):
        out = tmp_path / source.stem
        assert script.main(["--azure-multimodal", str(source), "--out-dir", str(out)]) == 0
        assert (out / "azure_lmm_excerpt.csv").read_bytes() == shipped
    # one token count changed: refused by the excerpt's digest, nothing written; --any-version writes it
    changed = tmp_path / "changed.csv"
    changed.write_text(copy.read_text().replace("\n5.55,949,126\n", "\n5.55,949,127\n"))
    assert script.main(["--azure-multimodal", str(changed), "--out-dir", str(tmp_path / "c")]) == 2
    assert "does not give the shipped excerpt" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert (
        script.main(["--azure-multimodal", str(changed), "--out-dir", str(tmp_path / "c"), "--any-version"])
        == 0
    )
    assert (tmp_path / "c" / "azure_lmm_excerpt.csv").read_text().splitlines()[2] == "5.550,5.5500,949,127"


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (["time,input_tokens,output_tokens", "0,1,1"], "expected the columns TIMESTAMP"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "x,1,1"], "line 3: 'arrival_time' must be"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "-1,1,1"], "line 3: 'arrival_time' must be"),
        (["TIMESTAMP,ContextTokens,GeneratedTokens", "2024-10-15T12:00:00Z,1,1", "noon,1,1"], "ISO-8601"),
        (
            ["arrival_time,input_tokens,output_tokens", "1,1,1", "0.5,1,1"],
            "line 3: timestamps must be non-decreasing",
        ),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "1,-2,1"], "'input_tokens' must be an integer"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "1,1"], "line 3: 2 fields, expected 3"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "1,1,1"], "has 2 requests, fewer than 3"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", "1e306,1,1"], "line 3: 'arrival_time' must be"),
        (["arrival_time,input_tokens,output_tokens", "0,1,1", f"1,1{'0' * 400},1"], "<= 9007199254740992"),
    ],
)
def test_bad_lmm_sources_give_one_clear_error(tmp_path: Path, lines: list[str], words: str) -> None:
    source = tmp_path / "lmm.csv"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=re.escape(words)):
        read_azure_multimodal_csv(source, 3)


def test_statistics_on_known_sequences() -> None:
    periodic = np.arange(0.0, 100.0, 0.125)  # 8/s, evenly (exact binary fractions)
    assert gap_cv(periodic) == pytest.approx(0.0, abs=1e-9)
    assert dispersion_index(periodic, 1.0) == 0.0
    assert peak_rate_per_s(periodic, 1.0) == 8.0
    bursts = np.repeat(np.arange(0.0, 100.0, 1.0), 5)  # 5 at once every second
    assert peak_rate_per_s(bursts, 0.020) == pytest.approx(250.0)
    assert share_in_bins_above(bursts, 0.020, 200.0) == 1.0
    assert share_in_bins_above(bursts, 0.020, 300.0) == 0.0
    assert characterise(bursts).tied_share == pytest.approx(0.8, abs=0.01)
    poisson = np.cumsum(np.random.default_rng(3).exponential(0.01, 200_000))
    stats = characterise(poisson)
    assert stats.mean_rate_per_s == pytest.approx(100.0, rel=0.01)
    assert stats.gap_cv == pytest.approx(1.0, abs=0.01)
    assert stats.dispersion_1s == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="sorted"):
        gap_cv(poisson[::-1])


def test_trace_table_reports_what_the_scenarios_replay(tmp_path: Path) -> None:
    script = _script("trace_table")
    assert script.main(["--out-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "traces.json").read_text())
    text = (tmp_path / "traces.md").read_text()
    assert "python benchmarks/trace_table.py" in text.splitlines()[2]
    halves = {e["scenario"]: e["parts"] for e in data["scenarios"]}
    assert (
        halves["mooncake_conv"]["train"]["n_requests"] + halves["mooncake_conv"]["test"]["n_requests"]
        == 12031
    )
    shipped = {(s["path"], s["column"]): s["at_rate"] for s in data["shipped"]}
    ties = shipped[("package:mooncake_conv", "recorded_s")]["native"]
    spread = shipped[("package:mooncake_conv", "arrival_s")]["native"]
    assert ties["gap_cv"] > 2.5 > 1.2 > spread["gap_cv"]
    assert data["command"] == f"python benchmarks/trace_table.py --out-dir {tmp_path}"
    committed = json.loads((REPO / "docs" / "results" / "traces.json").read_text())
    assert committed["command"] == "python benchmarks/trace_table.py"
    data["command"] = committed["command"]  # the same content, written elsewhere
    assert committed == data, "docs/results/traces.json is stale: run python benchmarks/trace_table.py"
