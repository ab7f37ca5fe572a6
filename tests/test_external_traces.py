"""Traces batchenv may not redistribute: scenario directories of your own
(``BATCHENV_SCENARIO_PATH``, ``--scenario-path``), the FineServe reader and its preparation."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_script

from batchenv import scenarios
from batchenv.config import ConfigError
from batchenv.scenarios import (
    SCENARIO_PATH_ENV,
    SPLIT_WINDOWS,
    add_scenario_dir,
    list_scenarios,
    load_scenario,
    trace_scenarios,
)
from batchenv.timing import model_capacity_per_s
from batchenv.trace_prep import read_fineserve_csv, snap_to_grid
from batchenv.traces import load_trace_times_s

REPO = Path(__file__).resolve().parents[1]
EXTERNAL_CONFIGS = REPO / "benchmarks" / "configs" / "external"
PREPARED = REPO / "external" / "fineserve_dense.csv"
HEADER = "input_length,output_length,latency,timestamp,architecture,scale"


def _script(name: str):
    return load_script(name)


def _write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def own_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scenario directory of one's own: a trace scenario with its halves and a file that
    would shadow the packaged ``default`` if own files came first."""
    monkeypatch.setenv(SCENARIO_PATH_ENV, "")
    folder = tmp_path / "mine"
    folder.mkdir()
    times = np.cumsum(np.full(200, 0.01))
    (folder / "ticks.csv").write_text("t\n" + "\n".join(f"{t:.4f}" for t in times) + "\n")
    (folder / "ticks.yaml").write_text(
        "extends: default\nname: ticks\narrivals:\n  process: trace\n  rate_per_s: 100\n"
        "  trace_path: ticks.csv\n  trace_column: t\n"
    )
    for part, (lo, hi) in SPLIT_WINDOWS.items():
        (folder / f"ticks_{part}.yaml").write_text(
            f"extends: ticks.yaml\nname: ticks_{part}\narrivals:\n  trace_window: [{lo}, {hi}]\n"
        )
    (folder / "default.yaml").write_text("extends: default\nname: default\nhorizon_s: 1.5\n")
    return folder


def test_scenarios_of_ones_own_are_named_after_the_packaged_ones(own_dir: Path, monkeypatch) -> None:
    assert "ticks" not in list_scenarios()
    monkeypatch.setenv(SCENARIO_PATH_ENV, f"{own_dir / 'absent'}:{own_dir}")
    assert scenarios.scenario_dirs() == [scenarios.SCENARIO_DIR, own_dir.resolve()]
    assert {"ticks", "ticks_train", "ticks_test", "default"} <= set(list_scenarios())
    assert load_scenario("default").horizon_s != 1.5  # the packaged file comes first
    config = load_scenario("ticks_test")
    assert config.arrivals.trace_window == (0.5, 1.0)
    assert "ticks" in trace_scenarios() and scenarios.eval_split_of("ticks") == "ticks_test"
    with pytest.raises(ConfigError) as info:
        load_scenario("nowhere")
    assert info.value.field == "scenario"
    assert SCENARIO_PATH_ENV in str(info.value) and "names no directory" in str(info.value)
    assert str(own_dir / "absent") in str(info.value)


def test_add_scenario_dir_appends_to_the_variable_and_refuses_a_non_directory(
    own_dir: Path, tmp_path: Path
) -> None:
    add_scenario_dir(own_dir)
    assert load_scenario("ticks").name == "ticks"
    with pytest.raises(ConfigError, match="not a directory") as info:
        add_scenario_dir(tmp_path / "nope")
    assert info.value.field == "scenario_path"
    assert scenarios.scenario_dirs()[-1] == own_dir.resolve()


def test_trace_results_names_scenarios_from_scenario_path(own_dir: Path, capsys) -> None:
    from benchmarks import trace_results

    with pytest.raises(SystemExit):
        trace_results.parse_args(["--scenarios", "ticks"])
    assert "'ticks' is not a trace scenario with a time split" in capsys.readouterr().err
    args = trace_results.parse_args(["--scenario-path", str(own_dir), "--scenarios", "ticks"])
    assert args.scenario_list == ["ticks"]
    with pytest.raises(SystemExit):
        trace_results.parse_args(["--scenario-path", str(own_dir / "nope"), "--scenarios", "ticks"])
    assert "--scenario-path: scenario_path: not a directory" in capsys.readouterr().err


def test_fineserve_reader_converts_microseconds_and_drops_the_trailing_untimed_rows(tmp_path: Path) -> None:
    rows = [
        "214,722,0.0015,0.0,Dense,30-100B",
        "232,5,0.0013,55908.0,Dense,30-100B",
        "1147,675,0.0021,2069861,Dense,30-100B",
        "3295,174,,,Dense,30-100B",
        "879,110,,,Dense,30-100B",
    ]
    records, untimed = read_fineserve_csv(_write(tmp_path / "d.csv", rows))
    assert untimed == 2
    assert records.times_s.tolist() == [0.0, 0.055908, 2.069861]
    assert records.input_tokens.tolist() == [214, 232, 1147]
    assert records.output_tokens.tolist() == [722, 5, 675]


@pytest.mark.parametrize(
    ("rows", "header", "words"),
    [
        (["1,2,0,0,D,s", "1,2,0,5,D,s"], "input_length,latency,timestamp", "column 'output_length' missing"),
        (["1,2,0,0,D,s", "1,2,0,oops,D,s"], HEADER, "line 3: 'timestamp' must be a finite number >= 0"),
        (["1,2,0,0,D,s", "1,2,0,-4,D,s"], HEADER, "line 3: 'timestamp' must be a finite number >= 0"),
        (["1,2,0,0,D,s", "1,2,0,nan,D,s"], HEADER, "line 3: 'timestamp' must be a finite number >= 0"),
        (["1,2,0,9,D,s", "1,2,0,5,D,s"], HEADER, "line 3: timestamps must be non-decreasing"),
        (["1,2,0,0,D,s", "1,2,,,D,s", "1,2,0,7,D,s"], HEADER, "line 4: a timestamp after 1 rows"),
        (["1,2,0,0,D,s", "-1,2,0,7,D,s"], HEADER, "line 3: 'input_length' must be an integer >= 0"),
        (["1,2,0,0,D,s", "1,2.5,0,7,D,s"], HEADER, "line 3: 'output_length' must be an integer >= 0"),
        (["1,2,0,0,D,s", "1,2"], HEADER, "line 3: 2 fields, expected 6"),
        (["1,2,0,0,D,s", "1,2,,,D,s"], HEADER, "needs at least 2 timestamped requests, found 1"),
    ],
)
def test_bad_fineserve_rows_give_one_clear_error(
    tmp_path: Path, rows: list[str], header: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        read_fineserve_csv(_write(tmp_path / "d.csv", rows, header))
    assert info.value.field == "source"
    assert words in str(info.value)


def test_snap_to_grid_moves_each_time_to_the_nearest_tick() -> None:
    snapped, moved = snap_to_grid(np.array([0.0, 0.9, 1.2, 1.29, 7.74]), 1.0)
    assert snapped.tolist() == [0.0, 1.0, 1.0, 1.0, 8.0]
    assert moved == pytest.approx(0.29)
    with pytest.raises(ValueError, match="grid_s must be"):
        snap_to_grid(np.array([0.0, 1.0]), 0.0)


def test_excerpt_script_prepares_fineserve_outside_the_package(tmp_path: Path, capsys) -> None:
    script = _script("make_trace_excerpts")
    stamps_us = [0, 1_050_000, 980_000 + 1_000_000, 2_900_000, 3_100_000, 9_000_000, 9_200_000]
    rows = [f"{100 + i},7,0.001,{t},Dense,30-100B" for i, t in enumerate(sorted(stamps_us))]
    source = _write(tmp_path / "Dense_30to100B.csv", [*rows, "5,5,,,Dense,30-100B"])
    assert script.main(["--fineserve-dense", str(source), "--out-dir", str(tmp_path)]) == 2
    assert "not Dense_30to100B.csv of FineServe commit f2ff77d" in capsys.readouterr().err
    argv = ["--fineserve-dense", str(source), "--out-dir", str(tmp_path), "--any-version"]
    assert script.main(argv) == 0
    assert "1 trailing rows without a timestamp dropped" in capsys.readouterr().out
    first = (tmp_path / "fineserve_dense.csv").read_text()
    assert script.main(argv) == 0
    assert (tmp_path / "fineserve_dense.csv").read_text() == first  # the same file at every run
    with open(tmp_path / "fineserve_dense.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    recorded = np.array([float(r["recorded_s"]) for r in table])
    arrival = np.array([float(r["arrival_s"]) for r in table])
    assert recorded.tolist() == [t / 1e6 for t in sorted(stamps_us)]
    second = np.round(recorded)
    assert np.all(arrival >= second) and np.all(arrival < second + 1.0)
    assert np.all(np.diff(arrival) >= 0)
    assert [int(r["input_tokens"]) for r in table] == list(range(100, 107))
    assert script.EXTERNAL_DIR == REPO / "external"
    assert "/external/" in (REPO / ".gitignore").read_text().splitlines()


def test_the_external_fineserve_scenarios_are_complete_and_at_the_suite_rates(monkeypatch) -> None:
    monkeypatch.setenv(SCENARIO_PATH_ENV, str(EXTERNAL_CONFIGS))
    bases = ["fineserve_dense", "fineserve_dense_30", "fineserve_dense_60"]
    published = "fineserve_dense_30_published"  # the timestamps as published, not spread
    assert {*bases, published} <= set(trace_scenarios())
    assert sorted(p.stem for p in EXTERNAL_CONFIGS.glob("*.yaml")) == sorted(
        f"{b}{suffix}"
        for b in [*bases, published]
        for suffix in ("", *(f"_{part}" for part in SPLIT_WINDOWS))
    )
    as_published = load_scenario(published)
    assert as_published.arrivals.trace_column == "recorded_s"
    spread = {"trace_column": "arrival_s"}
    assert as_published.replace(name="fineserve_dense_30", arrivals=spread) == load_scenario(
        "fineserve_dense_30"
    )
    for part, window in SPLIT_WINDOWS.items():
        split = load_scenario(f"{published}_{part}")
        assert split.replace(name=published, arrivals={"trace_window": None}) == as_published
        assert split.arrivals.trace_window == window
    default = load_scenario("default")
    capacity = model_capacity_per_s(default, "LLM-3")
    base = load_scenario("fineserve_dense")
    for name in bases:
        config = load_scenario(name)
        same_rate = {"rate_per_s": base.arrivals.rate_per_s}
        assert config.replace(name="fineserve_dense", arrivals=same_rate) == base
        for part, window in SPLIT_WINDOWS.items():
            split = load_scenario(f"{name}_{part}")
            assert split.replace(name=name, arrivals={"trace_window": None}) == config
            assert split.arrivals.trace_window == window
    for percent in (30, 60):
        rate = load_scenario(f"fineserve_dense_{percent}").arrivals.rate_per_s
        assert rate == pytest.approx(percent / 100 * capacity, abs=0.006)
    if PREPARED.is_file():  # prepared by make_trace_excerpts.py; never in a clean clone
        times = load_trace_times_s(str(PREPARED), "arrival_s")
        assert base.arrivals.rate_per_s == round((len(times) - 1) / times[-1], 4)  # native, to 4 decimals


def test_trace_table_characterises_the_named_scenarios_of_ones_own(
    own_dir: Path, tmp_path: Path, capsys
) -> None:
    script = _script("trace_table")
    out = tmp_path / "out"
    argv = ["--scenario-path", str(own_dir), "--scenarios", "ticks", "--out-dir", str(out)]
    assert script.main(argv) == 0
    data = json.loads((out / "traces.json").read_text())
    assert [entry["scenario"] for entry in data["scenarios"]] == ["ticks"]
    assert data["command"] == "python benchmarks/trace_table.py " + shlex.join(argv)
    train = data["scenarios"][0]["parts"]["train"]
    assert train["n_requests"] == 100 and train["gap_cv"] == pytest.approx(0.0, abs=1e-6)
    assert "| ticks |" in (out / "traces.md").read_text()
    with pytest.raises(SystemExit):
        script.main(["--scenarios", "bursty"])
    assert "'bursty' is not a trace scenario with a time split" in capsys.readouterr().err


def test_trace_table_takes_the_halves_of_a_trace_not_at_hand_from_an_earlier_run(
    own_dir: Path, tmp_path: Path, capsys
) -> None:
    """--halves-from: without a scenario's trace file (FineServe's is not shipped) the halves
    come from an earlier traces.json, the shipped traces are measured again, and the report
    names the run that measured the halves (through a chain of such runs too)."""
    script = _script("trace_table")
    names = ["--scenario-path", str(own_dir), "--scenarios", "ticks"]
    assert script.main([*names, "--out-dir", str(tmp_path / "first")]) == 0
    first = json.loads((tmp_path / "first" / "traces.json").read_text())
    (own_dir / "ticks.csv").unlink()
    for earlier, out in (("first", "second"), ("second", "third")):
        argv = [
            *names,
            "--out-dir",
            str(tmp_path / out),
            "--halves-from",
            str(tmp_path / earlier / "traces.json"),
        ]
        assert script.main(argv) == 0
        data = json.loads((tmp_path / out / "traces.json").read_text())
        assert data["scenarios"] == first["scenarios"] and data["shipped"] == first["shipped"]
        assert data["command"] == "python benchmarks/trace_table.py " + shlex.join(argv)
        assert data["halves_from"]["command"] == first["command"]  # the run that measured them
        text = (tmp_path / out / "traces.md").read_text()
        assert f"are those measured by `{first['command']}`" in text and "| ticks |" in text
    for argv, words in (
        (["--halves-from", str(tmp_path / "first" / "traces.json")], "--halves-from needs --scenarios"),
        (
            [*names[:2], "--scenarios", "ticks", "--halves-from", str(own_dir / "ticks.yaml")],
            "not a traces.json",
        ),
    ):
        with pytest.raises(SystemExit):
            script.main([*argv, "--out-dir", str(tmp_path / "bad")])
        assert words in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_trace_results_runs_a_scenario_of_ones_own_in_worker_processes(own_dir: Path, tmp_path: Path) -> None:
    from benchmarks import trace_results

    quick = own_dir  # a relative trace_path is relative to the directory of the file that names the scenario
    (quick / "ticks_quick.yaml").write_text("extends: ticks.yaml\nname: ticks_quick\nhorizon_s: 0.4\n")
    for part, (lo, hi) in SPLIT_WINDOWS.items():
        (quick / f"ticks_quick_{part}.yaml").write_text(
            f"extends: ticks_quick.yaml\nname: ticks_quick_{part}\narrivals:\n  trace_window: [{lo}, {hi}]\n"
        )
    out = tmp_path / "results.md"
    argv = ["--scenario-path", str(quick), "--scenarios", "ticks_quick", "--agents", "timeout,greedy"]
    argv += ["--n-seeds", "2", "--horizon-s", "0.4", "--jobs", "2", "--out", str(out)]
    argv += ["--tuned-dir", str(tmp_path / "tuned")]
    assert trace_results.main(argv) == 0  # the workers resolve the name through the variable
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["ticks_quick"]["agents"]) == {"timeout", "greedy"}
    assert (tmp_path / "tuned" / "ticks_quick_train.yaml").is_file()
    assert data["ticks_quick"]["agents"]["timeout"]["gap_vs_timeout"] == [0.0, 0.0]


def test_a_missing_trace_file_is_a_one_line_usage_error(own_dir: Path, tmp_path: Path, capsys) -> None:
    """An external trace not yet made (make_trace_excerpts.py): trace_table.py and
    trace_results.py stop before any work with one line naming the scenario, exit code 2."""
    from benchmarks import trace_results

    (own_dir / "ticks.csv").unlink()
    table = _script("trace_table")
    argv = ["--scenario-path", str(own_dir), "--scenarios", "ticks"]
    for main in (
        lambda: table.main([*argv, "--out-dir", str(tmp_path / "out")]),
        lambda: trace_results.main([*argv, "--out", str(tmp_path / "r.md")]),
    ):
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code == 2
        err = capsys.readouterr().err
        (line,) = [x for x in err.splitlines() if "error:" in x]
        assert "scenario 'ticks': arrivals.trace_path: trace file not found" in line
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.md").exists()


def test_trace_results_reports_a_failed_task_in_one_line(
    own_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A task failing while it runs (e.g. its trace vanished after the check): the error's
    message in one line and exit code 1, as python -m apps.tune and evaluate.py, no traceback."""
    from benchmarks import trace_results
    from execution.outcome import TaskError, TaskFailedError

    def fail(*_args):
        raise TaskFailedError(TaskError("ConfigError", "arrivals.trace_path: trace file not found:\n x.csv"))

    monkeypatch.setattr(trace_results, "run_episodes", fail)
    argv = ["--scenario-path", str(own_dir), "--scenarios", "ticks", "--out", str(tmp_path / "r.md")]
    assert trace_results.main(argv) == 1
    err = capsys.readouterr().err
    assert err == "error: ConfigError: arrivals.trace_path: trace file not found: x.csv\n"
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize(
    ("flag", "seeds", "message"),
    [
        ("--n-seeds", "0-9", "(seeds 0 .. N-1), got '0-9'; for seeds 0-9 write --n-seeds 10"),
        ("--n-seeds", "0,1", "--n-seeds is the number of evaluation seeds N (seeds 0 .. N-1), got '0,1'"),
        ("--n-seeds", "1", "--n-seeds must be in [2, 1000] (the number of evaluation seeds), got 1"),
        (
            "--seeds",
            "0-9",
            "--seeds is the number of evaluation seeds N (seeds 0 .. N-1), got '0-9'; "
            "for seeds 0-9 write --n-seeds 10",
        ),
        ("--seeds", "1", "--seeds must be in [2, 1000] (the number of evaluation seeds), got 1"),
    ],
)
def test_trace_results_n_seeds_is_a_count_and_a_range_is_a_clear_error(
    flag: str, seeds: str, message: str, capsys
) -> None:
    from benchmarks import trace_results

    with pytest.raises(SystemExit) as info:
        trace_results.parse_args([flag, seeds])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "invalid int value" not in err


def test_trace_results_seeds_is_a_deprecated_name_of_n_seeds(capsys) -> None:
    """--n-seeds is the count, as evaluate.py's; the old --seeds N still works, with a warning,
    and the commands at the top of the committed results (no seed flag: 10 seeds) read as before."""
    from benchmarks import trace_results

    assert trace_results.parse_args(["--n-seeds", "7"]).n_seeds == 7
    assert "deprecated" not in capsys.readouterr().err
    assert trace_results.parse_args(["--seeds", "7"]).n_seeds == 7
    assert "warning: --seeds N is deprecated here: write --n-seeds N" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        trace_results.parse_args(["--seeds", "3", "--n-seeds", "3"])
    assert "not allowed with argument" in capsys.readouterr().err
    for path in sorted((REPO / "docs" / "results").glob("trace_results*.md")):
        command = re.search(r"Produced by `python benchmarks/trace_results.py(.*?)`", path.read_text())
        assert command is not None, path
        args = trace_results.parse_args(shlex.split(command.group(1)))
        assert args.n_seeds == 10 and json.loads(path.with_suffix(".json").read_text())["settings"][
            "seeds"
        ] == list(range(10))


def test_trace_results_help_states_each_default_once(capsys) -> None:
    """No default twice ("(default: the usable cores ...) (default: None)") nor an empty one."""
    from benchmarks import trace_results

    with pytest.raises(SystemExit):
        trace_results.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"default[^()]*\)\s*\(default", text), text
    for empty in ("(default: None)", "(default: )", "(default: [])", "(default: local)"):
        assert empty not in text
    assert "(default: the usable cores, at most 2; every CPU of a cluster)" in text
    assert "NUMBER of evaluation seeds" in text and "--n-seeds 10 is seeds 0-9" in text


def test_a_relative_trace_path_resolves_from_the_loaded_files_directory(own_dir: Path) -> None:
    from batchenv.arrivals import make_arrival_process

    sub = own_dir / "sub"
    sub.mkdir()
    (sub / "child.yaml").write_text("extends: ../ticks.yaml\nname: child\n")
    with pytest.raises(ConfigError, match="trace file not found") as info:
        make_arrival_process(load_scenario(sub / "child.yaml"))
    assert str(sub / "ticks.csv") in str(info.value)
    assert make_arrival_process(load_scenario(own_dir / "ticks.yaml")) is not None
