"""The cache of hindsight bounds (agents/hindsight/cache.py, execution/hindsight_task.py,
evaluate.py --hindsight-cache / --no-hindsight-cache): a second run reads every bound and gives
the same results; whatever the bound depends on is in the key; a bad file is ignored with a
warning and the bound computed again; --no-hindsight-cache neither reads nor writes."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import re
import shutil
from pathlib import Path

import pytest

import agents.hindsight.cache as cache_module
import execution.hindsight_task as hindsight_task
from agents.hindsight import episode_bound
from agents.hindsight.cache import (
    MAX_COMPUTE_S,
    MAX_COST_PER_REQUEST,
    MAX_ENTRY_BYTES,
    BoundCache,
    BoundKey,
    CachedBound,
    bound_key,
    entry_text,
)
from apps import evaluate as evaluate_app
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import scenario_config
from execution.backends import LocalBackend
from execution.hindsight_task import BoundResult, BoundTask, run_bound_task, run_bound_tasks

REPO = Path(__file__).resolve().parents[1]
EXCERPT = REPO / "batchenv" / "data" / "azure_conv_excerpt.csv"


def _trace_scenario(tmp_path: Path, name: str = "cached_trace") -> Path:
    """A trace scenario (50 requests/s) replaying a copy of the packaged excerpt in ``tmp_path``."""
    trace = tmp_path / "trace.csv"
    shutil.copy(EXCERPT, trace)
    scenario = tmp_path / f"{name}.yaml"
    arrivals = f"arrivals:\n  trace_path: {trace}\n  rate_per_s: 50\n"
    scenario.write_text(f"extends: azure_trace\nname: {name}\n{arrivals}")
    return scenario


def _evaluate(
    capsys: pytest.CaptureFixture[str], out: Path, scenario: Path, cache: Path | None = None
) -> tuple[str, dict]:
    """evaluate.py on default and ``scenario``, seeds 0-1, 2 s, in this process, with the cache
    ``cache`` (default ``out/cache``; None: --no-hindsight-cache); its terminal output
    (whitespace collapsed: rich wraps long lines) and results.json (the newest run under ``out``)."""
    argv = ["--agents", "greedy,timeout", "--scenarios", f"default,{scenario}", "--seeds", "0-1"]
    argv += ["--horizon-s", "2", "--jobs", "1", "--no-plots", "--out", str(out)]
    argv += ["--no-hindsight-cache"] if cache is None else ["--hindsight-cache", str(cache)]
    assert evaluate_app.main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())
    run = max(out.glob("eval_*"), key=lambda p: p.stat().st_mtime_ns)
    return text, json.loads((run / "results.json").read_text())


def _without_command(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "command"}


def _entries(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_second_run_reads_every_bound_and_gives_the_same_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, folder = tmp_path / "out", tmp_path / "out" / "cache"
    scenario = _trace_scenario(tmp_path)
    first_text, first = _evaluate(capsys, out, scenario, folder)
    assert "4 hindsight bounds: 0 from the cache" in first_text and "4 computed, 4 stored" in first_text
    entries = _entries(folder)
    assert len(entries) == 4 and all(re.fullmatch(r"[0-9a-f]{64}\.json", name) for name in entries)
    assert all(len(raw) < 1000 for raw, _ in entries.values())
    assert first["scenarios"][1]["hindsight_cost_per_request"]  # the trace scenario has bounds

    second_text, second = _evaluate(capsys, out, scenario, folder)
    assert "4 hindsight bounds: 4 from the cache" in second_text and "0 computed" in second_text
    assert second_text.count("warning") == 1  # only that the trace scenario's timeout is untuned
    assert "warning: cached_trace: the gap reference, timeout, is untuned" in second_text
    assert second == first  # the same command: every field, bounds and gaps included
    assert _entries(folder) == entries  # nothing rewritten

    # without the cache: the same results, and the cache folder is neither read nor written
    uncached_text, uncached = _evaluate(capsys, out, scenario, None)
    assert "from the cache" not in uncached_text
    assert _without_command(uncached) == _without_command(first)
    assert _entries(folder) == entries

    # a valid entry with another value is what the cache gives, and what --no-hindsight-cache ignores
    path = next(iter(sorted(folder.iterdir())))
    data = json.loads(path.read_text())
    data["lower_cost_per_request"] *= 0.5
    data["exact"] = False
    path.write_text(json.dumps(data))
    _, planted = _evaluate(capsys, out, scenario, folder)
    assert planted != first
    _, ignored = _evaluate(capsys, out, scenario, None)
    assert _without_command(ignored) == _without_command(first)

    # another horizon: other episodes, other keys
    argv = ["--agents", "greedy", "--scenarios", "default", "--seeds", "0-1", "--horizon-s", "3"]
    argv += ["--jobs", "1", "--no-plots", "--out", str(out), "--hindsight-cache", str(folder)]
    assert evaluate_app.main(argv) == 0
    assert "2 hindsight bounds: 0 from the cache" in " ".join(capsys.readouterr().out.split())


@pytest.mark.default_hindsight_cache  # evaluate.py's own default, in tmp_path as working folder
def test_the_cache_is_in_the_out_folder_by_default_and_elsewhere_with_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Path.cwd() == tmp_path  # the default --out, results, is relative to the working folder
    out, folder = tmp_path / "out", tmp_path / "elsewhere" / "bounds"
    argv = ["--agents", "greedy", "--seeds", "0", "--horizon-s", "2", "--jobs", "1", "--no-plots"]
    assert evaluate_app.main([*argv, "--out", str(out), "--hindsight-cache", str(folder)]) == 0
    assert f"1 hindsight bound: 0 from the cache {folder}/" in " ".join(capsys.readouterr().out.split())
    assert len(list(folder.glob("*.json"))) == 1 and not (out / ".hindsight_cache").exists()
    # the default: .hindsight_cache in --out, not results/ of the working folder (it was, whatever --out)
    default = out / ".hindsight_cache"
    default.write_text("a file where the folder goes")  # one warning, and the run goes on
    assert evaluate_app.main([*argv, "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("cannot write into") == 1 and f"0 from the cache {default}/" in text
    default.unlink()
    assert evaluate_app.main([*argv, "--out", str(out)]) == 0
    assert "1 stored there" in " ".join(capsys.readouterr().out.split())
    assert [p.name for p in default.glob("*.json")] == [p.name for p in folder.glob("*.json")]  # one key
    assert not (tmp_path / "results").exists()
    # without --out: results/ of the working folder, its run folder and its cache
    assert evaluate_app.main(argv) == 0
    assert "1 hindsight bound: 0 from the cache results/.hindsight_cache/" in " ".join(
        capsys.readouterr().out.split()
    )
    assert len(list((tmp_path / "results" / ".hindsight_cache").glob("*.json"))) == 1
    # --hindsight-cache and --no-hindsight-cache exclude each other; a file is no cache folder
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        evaluate_app.main([*argv, "--hindsight-cache", str(tmp_path / "file"), "--no-hindsight-cache"])
    assert evaluate_app.main([*argv, "--out", str(out), "--hindsight-cache", str(tmp_path / "file")]) == 2
    assert "--hindsight-cache" in capsys.readouterr().err


def test_tests_keep_their_bounds_out_of_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hindsight_cache_dir: Path
) -> None:
    """Under pytest, evaluate.py's default cache is the test's own folder (tests/conftest.py), so
    no test reads or writes the repository's results/.hindsight_cache."""
    assert not hindsight_cache_dir.is_relative_to(REPO)
    argv = ["--agents", "greedy", "--seeds", "0", "--horizon-s", "1", "--jobs", "1", "--no-plots"]
    assert evaluate_app.main([*argv, "--out", str(tmp_path)]) == 0
    assert "1 hindsight bound: 0 from the cache" in " ".join(capsys.readouterr().out.split())
    assert len(list(hindsight_cache_dir.glob("*.json"))) == 1  # the one bound, stored there
    assert not (tmp_path / ".hindsight_cache").exists()  # not in --out either


# ------------------------------------------------------------------------------------- keys
def _key(config: SystemConfig, seed: int = 0, **options) -> str:
    return bound_key(config, seed, **options).digest


def test_the_key_changes_with_everything_the_bound_depends_on(monkeypatch: pytest.MonkeyPatch) -> None:
    config = scenario_config("default", 2.0)
    base = _key(config)
    assert _key(scenario_config("default", 2.0)) == base  # stable, from a fresh load
    others = {
        "seed": _key(config, 1),
        "horizon": _key(scenario_config("default", 3.0)),
        "horizon_s argument": _key(config, horizon_s=1.5),
        "max_wait_ms": _key(config.replace(max_wait_ms=50.0)),
        "latency weight": _key(config.replace(reward={"w_latency_per_s": 0.2})),
        "queue capacity": _key(config.replace(queue_capacity=100)),
        "workers": _key(config.replace(n_workers=2)),
        "rate": _key(config.replace(arrivals={"rate_per_s": 120.0})),
        "beam": _key(config, beam=64),
        "projection": _key(config, projection="all"),
        "env option (in the config)": _key(config.replace(env={"observe_slo": True})),
    }
    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "BOUND_VERSION", cache_module.BOUND_VERSION + 1)
        others["BOUND_VERSION"] = _key(config)
    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "code_digest", lambda: "other sources")
        others["sources"] = _key(config)
    assert base not in others.values(), [k for k, v in others.items() if v == base]
    assert len(set(others.values())) == len(others)


def test_the_key_holds_the_drawn_objective(monkeypatch: pytest.MonkeyPatch) -> None:
    config = scenario_config("default", 2.0).replace(
        reward={"slo_probability": 1.0, "slo_ms_range": [50.0, 200.0], "w_slo_range": [0.1, 1.0]}
    )
    base = _key(config)
    drawn = cache_module.episode_objective(config, 0)
    assert drawn is not None
    monkeypatch.setattr(cache_module, "episode_objective", lambda *a, **k: (drawn[0] * 2, drawn[1]))
    assert _key(config) != base


def test_the_key_holds_the_trace_content_not_only_its_path(tmp_path: Path) -> None:
    scenario = _trace_scenario(tmp_path)
    trace = tmp_path / "trace.csv"
    base = _key(scenario_config(str(scenario), 2.0))
    assert _key(scenario_config(str(scenario), 2.0)) == base
    # bytes that change no arrival (a blank line at the end): still another key
    trace.write_text(trace.read_text() + "\n")
    os.utime(trace, ns=(1, 1))
    blank = _key(scenario_config(str(scenario), 2.0))
    assert blank != base
    # another timestamp: another key
    lines = EXCERPT.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("TIMESTAMP")
    row = lines[5].split(",")
    row[column] = lines[4].split(",")[column]  # a tie with the row before: still sorted
    trace.write_text("\n".join([*lines[:5], ",".join(row), *lines[6:]]) + "\n")
    os.utime(trace, ns=(2, 2))
    assert _key(scenario_config(str(scenario), 2.0)) not in (base, blank)


# ------------------------------------------------------------------------------- bad files
@pytest.fixture
def stored(tmp_path: Path) -> tuple[BoundCache, BoundKey, CachedBound]:
    """A cache holding the bound of (default, seed 0, 2 s), its key and the bound."""
    config = scenario_config("default", 2.0)
    key = bound_key(config, 0)
    bound = episode_bound(config, 0)
    entry = CachedBound(
        bound.n_requests, bound.lower_cost_per_request, bound.upper_cost_per_request, bound.exact, 0.01
    )
    cache = BoundCache(tmp_path / "cache")
    assert cache.put(key, entry) and cache.get(key) == entry and not cache.warnings
    return cache, key, entry


def _bad_entries(key: BoundKey, entry: CachedBound) -> dict[str, bytes]:
    good = json.loads(entry_text(key, entry))

    def variant(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    without_exact = {k: v for k, v in good.items() if k != "exact"}
    text = entry_text(key, entry)
    return {
        "not JSON": b'{"format": ',
        "a list": b"[]",
        "not UTF-8": b"\xff\xfe{}",
        "NaN": text.replace(repr(entry.lower_cost_per_request), "NaN").encode(),
        "Infinity": text.replace(repr(entry.upper_cost_per_request), "Infinity").encode(),
        "overflow to inf": text.replace(repr(entry.lower_cost_per_request), "1e400").encode(),
        "huge": text.encode() + b" " * (MAX_ENTRY_BYTES + 1),
        "deeply nested": b"[" * (MAX_ENTRY_BYTES - 10),
        "huge integer": text.replace(
            f'"n_requests": {entry.n_requests}', f'"n_requests": {"9" * 5000}'
        ).encode(),
        "a string cost": variant(lower_cost_per_request=str(entry.lower_cost_per_request)),
        "a bool count": variant(n_requests=True),
        "a float count": variant(n_requests=float(entry.n_requests)),
        "another count": variant(n_requests=entry.n_requests + 1),
        "exact as text": variant(exact="true"),
        "exact as 1": variant(exact=1),
        "missing field": json.dumps(without_exact).encode(),
        "extra field": variant(pickle="gASV"),
        "another key": variant(key="0" * 64),
        "another version": variant(bound_version=cache_module.BOUND_VERSION + 1),
        "another format": variant(format="something else"),
        "negative bound": variant(lower_cost_per_request=-0.5),
        "bound above dropping everything": variant(lower_cost_per_request=key.max_cost_per_request * 2),
        "null bound": variant(lower_cost_per_request=None),
        "schedule below the bound": variant(upper_cost_per_request=entry.lower_cost_per_request * 0.5),
        "exact but apart": variant(exact=True, upper_cost_per_request=entry.lower_cost_per_request * 2),
        "exact without a schedule": variant(exact=True, upper_cost_per_request=None),
        "negative seconds": variant(compute_s=-1.0),
        "a schedule near the float range": variant(exact=False, upper_cost_per_request=1e308),
        "a schedule above the cap": variant(exact=False, upper_cost_per_request=2 * MAX_COST_PER_REQUEST),
        "ages of computing": variant(compute_s=1e308),
        "seconds above the cap": variant(compute_s=2 * MAX_COMPUTE_S),
        "episode not text": variant(episode=["default"]),
    }


def test_a_bad_file_is_ignored_with_a_warning(stored: tuple[BoundCache, BoundKey, CachedBound]) -> None:
    cache, key, entry = stored
    path = cache.path(key)
    for what, raw in _bad_entries(key, entry).items():
        path.write_bytes(raw)
        fresh = BoundCache(cache.directory)
        assert fresh.get(key) is None, what
        assert len(fresh.warnings) == 1 and str(path) in fresh.warnings[0], what
        assert fresh.hits == 0
    # no file: a plain miss, no warning
    path.unlink()
    fresh = BoundCache(cache.directory)
    assert fresh.get(key) is None and not fresh.warnings
    # a folder, or a FIFO (never blocks: opened without waiting for a writer)
    path.mkdir()
    assert fresh.get(key) is None and "not a regular file" in fresh.warnings[-1]
    path.rmdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(path)
        assert fresh.get(key) is None and "not a regular file" in fresh.warnings[-1]
        path.unlink()
    # a good entry under another name is another key's file: written for another key
    other = bound_key(scenario_config("default", 2.0), 1)
    cache.put(key, entry)
    shutil.copy(cache.path(key), cache.path(other))
    fresh = BoundCache(cache.directory)
    assert fresh.get(other) is None and "another key" in fresh.warnings[0]


def test_an_entry_without_arrivals_or_schedule_round_trips(tmp_path: Path) -> None:
    key = BoundKey("a" * 64, 0, 2.0, "empty")
    cache = BoundCache(tmp_path)
    cache.put(key, CachedBound(0, math.nan, math.nan, True, 0.0))
    got = cache.get(key)
    assert got is not None and got.n_requests == 0
    assert math.isnan(got.lower_cost_per_request) and math.isnan(got.upper_cost_per_request)
    key = BoundKey("b" * 64, 10, 2.0, "no schedule")
    cache.put(key, CachedBound(10, 0.5, math.inf, False, 1.0))
    assert cache.get(key) == CachedBound(10, 0.5, math.inf, False, 1.0)
    assert "NaN" not in cache.path(key).read_text() and "Infinity" not in cache.path(key).read_text()


def test_costs_and_seconds_are_capped_but_no_schedule_found_is_kept(tmp_path: Path) -> None:
    """A cost per request up to MAX_COST_PER_REQUEST and a schedule not found (stored as null,
    read as inf) are entries; a cost above the cap is neither stored nor read; a computation
    longer than MAX_COMPUTE_S is stored as that much."""
    cache = BoundCache(tmp_path)
    for n, (lower, upper) in enumerate([(0.5, MAX_COST_PER_REQUEST), (0.5, math.inf)]):
        key = BoundKey(f"{n}" * 64, 10, 2.0, "capped")
        assert cache.put(key, CachedBound(10, lower, upper, False, 1.0))
        assert cache.get(key) == CachedBound(10, lower, upper, False, 1.0)
    key = BoundKey("c" * 64, 10, 2.0 * MAX_COST_PER_REQUEST, "weights beyond the cap")
    assert not cache.put(key, CachedBound(10, 0.5, 2 * MAX_COST_PER_REQUEST, False, 1.0))
    assert "upper_cost_per_request is above 1e+09" in cache.warnings[-1]
    assert not cache.put(key, CachedBound(10, 1.5 * MAX_COST_PER_REQUEST, math.inf, False, 1.0))
    assert "lower_cost_per_request is above 1e+09" in cache.warnings[-1]
    key = BoundKey("d" * 64, 10, 2.0, "a long computation")
    assert cache.put(key, CachedBound(10, 0.5, 0.6, False, 10 * MAX_COMPUTE_S))
    assert cache.get(key) == CachedBound(10, 0.5, 0.6, False, MAX_COMPUTE_S)


def test_the_found_gap_of_huge_figures_does_not_overflow() -> None:
    """The mean over seeds of finite figures near the float range is finite: the summary's gap
    between the schedule found and the bound divides each figure first (a plain math.fsum raised
    OverflowError after every episode of an evaluation reading such entries)."""
    from evaluation.cells import HindsightBounds
    from evaluation.tables import _found_gap

    lower = {"x": {0: 0.05, 1: 0.05, 2: 0.05}}
    huge = HindsightBounds(lower, {"x": {0: 1e308, 1: 1e308, 2: 1.7e308}}, {})
    assert _found_gap(huge, "x") > 0
    plain = HindsightBounds(lower, {"x": {0: 0.06, 1: 0.07, 2: 0.05}}, {})
    assert _found_gap(plain, "x") == pytest.approx(0.2, rel=1e-12)
    none_found = HindsightBounds(lower, {"x": {0: 0.06, 1: math.inf, 2: 0.05}}, {})
    assert math.isnan(_found_gap(none_found, "x"))


def test_hostile_figures_in_every_entry_are_computed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries holding a schedule found of 1e308 per request (not exact) and 1e308 s of computing,
    once read, made evaluate.py fail with OverflowError and print "inf s of computing saved":
    they are ignored with a warning, computed again, and the results are the first run's."""
    out, folder = tmp_path / "out", tmp_path / "cache"
    scenario = _trace_scenario(tmp_path)
    _, first = _evaluate(capsys, out, scenario, folder)
    for n, path in enumerate(sorted(folder.iterdir())):
        data = json.loads(path.read_text())
        data |= {"exact": False, "upper_cost_per_request": 1e308} if n % 2 else {"compute_s": 1e308}
        path.write_text(json.dumps(data))
    text, again = _evaluate(capsys, out, scenario, folder)
    assert "4 hindsight bounds: 0 from the cache" in text and "4 computed, 4 stored" in text
    assert text.count("warning: hindsight cache") == 4
    assert text.count("upper_cost_per_request is above 1e+09") == 2
    assert text.count("compute_s is not a number of seconds in [0, 1e+06]") == 2
    assert "inf s" not in text and "Traceback" not in text
    assert again == first


def test_a_bad_entry_is_computed_again_and_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, folder = tmp_path / "out", tmp_path / "cache"
    scenario = _trace_scenario(tmp_path)
    _, first = _evaluate(capsys, out, scenario, folder)
    broken = sorted(folder.iterdir())[:2]
    good = {path: path.read_bytes() for path in broken}
    broken[0].write_text('{"lower_cost_per_request": NaN}')
    broken[1].write_bytes(b"\x00" * (MAX_ENTRY_BYTES * 4))
    text, again = _evaluate(capsys, out, scenario, folder)
    assert "4 hindsight bounds: 2 from the cache" in text and "2 computed, 2 stored" in text
    assert text.count("warning: hindsight cache") == 2 and "the bound is computed again" in text
    assert "Traceback" not in text
    assert again == first
    for path, raw in good.items():  # rewritten whole (compute_s aside)
        assert json.loads(path.read_bytes()) | {"compute_s": 0} == json.loads(raw) | {"compute_s": 0}


def test_an_unwritable_cache_warns_once(
    stored: tuple[BoundCache, BoundKey, CachedBound], tmp_path: Path
) -> None:
    _, key, entry = stored
    (tmp_path / "not a folder").write_text("")
    cache = BoundCache(tmp_path / "not a folder")
    assert not cache.put(key, entry) and not cache.put(key, entry)
    assert len(cache.warnings) == 1 and "cannot write into" in cache.warnings[0]
    assert cache.get(key) is None and cache.stored == 0
    # a value get would refuse is not stored
    cache = BoundCache(tmp_path / "refused")
    assert not cache.put(key, dataclasses.replace(entry, n_requests=entry.n_requests + 1))
    assert not cache.put(key, dataclasses.replace(entry, lower_cost_per_request=-1.0))
    assert len(cache.warnings) == 2 and "not stored" in cache.warnings[0] and not cache.directory.exists()


# ------------------------------------------------------------------------- the task runner
def test_run_bound_tasks_with_a_cache_gives_the_tasks_own_results(tmp_path: Path) -> None:
    scenario = _trace_scenario(tmp_path)
    two_workers = scenario_config("default", 1.0).replace(n_workers=2)  # a config, not a name
    tasks = [BoundTask("default", 0, 2.0), BoundTask(str(scenario), 1, 2.0), BoundTask(two_workers, 0)]
    tasks.append(BoundTask(str(tmp_path / "missing.yaml"), 0, 2.0))  # no key: runs, and fails
    expected = [run_bound_task(task) for task in tasks[:3]]
    cache = BoundCache(tmp_path / "cache")
    for hits in (0, 3):
        with LocalBackend(1) as backend:
            outcomes = run_bound_tasks(backend, tasks, cache)
        got = [o.value for o in outcomes[:3]]
        assert got == [
            dataclasses.replace(e, compute_s=g.compute_s) for e, g in zip(expected, got, strict=True)
        ]
        assert outcomes[3].error is not None and cache.hits == hits
    assert cache.stored == 3 and not cache.warnings


def test_an_interrupted_run_keeps_the_bounds_it_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bound is stored as soon as it is back: Ctrl-C during the third of four bounds
    leaves the first two in the cache (they were all lost: the cache was written only once every
    bound was back), and the next run reads them instead of computing them again."""
    computed: list[int] = []

    def interrupted_at_the_third(task: BoundTask) -> BoundResult:
        if len(computed) == 2:
            raise KeyboardInterrupt
        computed.append(task.seed)
        return run_bound_task(task)

    folder = tmp_path / "cache"
    argv = ["--agents", "greedy", "--scenarios", "default", "--seeds", "0-3", "--horizon-s", "2"]
    argv += ["--jobs", "1", "--no-plots", "--out", str(tmp_path / "out"), "--hindsight-cache", str(folder)]
    with monkeypatch.context() as patch:
        patch.setattr(hindsight_task, "run_bound_task", interrupted_at_the_third)
        assert evaluate_app.main(argv) == 130
    text = " ".join(capsys.readouterr().out.split())
    assert f"no results written; the 2 hindsight bounds computed are kept in {folder}/" in text
    assert len(list(folder.glob("*.json"))) == 2 and computed == [0, 1]
    assert evaluate_app.main(argv) == 0
    assert "4 hindsight bounds: 2 from the cache" in " ".join(capsys.readouterr().out.split())
    assert len(list(folder.glob("*.json"))) == 4


def test_a_cached_bound_reads_back_as_the_computed_result(tmp_path: Path) -> None:
    """BoundResult.ok builds the result alike from a computed bound and from a cache entry: every
    field of the computed result, its compute time included, comes back from the cache."""
    bound = episode_bound(scenario_config("default", 2.0), 0)
    computed = run_bound_task(BoundTask("default", 0, 2.0))
    assert computed == BoundResult.ok(bound, compute_s=computed.compute_s)
    assert computed.status == "ok" and computed.n_requests == bound.n_requests > 0
    cache = BoundCache(tmp_path)
    key = bound_key(scenario_config("default", 2.0), 0)
    assert cache.put(key, hindsight_task._to_cache(computed))
    with LocalBackend(1) as backend:
        (outcome,) = run_bound_tasks(backend, [BoundTask("default", 0, 2.0)], cache)
    assert cache.hits == 1 and outcome.value == computed


@pytest.mark.parametrize(
    "error",
    [ConfigError("arrivals.trace_path", "trace file not found"), OSError("unreadable"), ValueError("bad")],
    ids=["ConfigError", "OSError", "ValueError"],
)
@pytest.mark.parametrize("where", ["bound_key", "make_arrival_process"])
def test_a_task_whose_key_cannot_be_built_runs_uncached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, where: str
) -> None:
    """An error a missing or bad file gives while building the key: the task runs, uncached."""

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(hindsight_task, where, fail)
    cache = BoundCache(tmp_path / "cache")
    with LocalBackend(1) as backend:  # in this process, where the key is built too
        (outcome,) = run_bound_tasks(backend, [BoundTask("default", 0, 2.0)], cache)
    assert outcome.value is not None and outcome.value.status == "ok" and outcome.value.n_requests > 0
    assert cache.hits == 0 and cache.stored == 0 and not cache.directory.exists()


@pytest.mark.parametrize("where", ["bound_key", "make_arrival_process"])
def test_a_bug_in_building_keys_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Any other exception is a bug: it surfaces rather than silently turn the cache off."""

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug in the key function")

    monkeypatch.setattr(hindsight_task, where, bug)
    with LocalBackend(1) as backend, pytest.raises(TypeError, match="a bug in the key function"):
        run_bound_tasks(backend, [BoundTask("default", 0, 2.0)], BoundCache(tmp_path / "cache"))


def _store_repeatedly(directory: str, key: BoundKey, entry: CachedBound, times: int) -> None:
    cache = BoundCache(directory)
    for _ in range(times):
        assert cache.put(key, entry)


def test_two_processes_storing_one_key_leave_a_whole_file(
    stored: tuple[BoundCache, BoundKey, CachedBound],
) -> None:
    cache, key, entry = stored
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    other = dataclasses.replace(entry, compute_s=123.0)  # the other process's timing
    child = multiprocessing.get_context("fork").Process(
        target=_store_repeatedly, args=(str(cache.directory), key, other, 300)
    )
    child.start()
    try:
        for _ in range(300):
            cache.put(key, entry)
            got = BoundCache(cache.directory).get(key)
            assert got is not None and got.lower_cost_per_request == entry.lower_cost_per_request
    finally:
        child.join(30)
    assert child.exitcode == 0
    assert [p.name for p in cache.directory.iterdir()] == [cache.path(key).name]  # no temporary left
