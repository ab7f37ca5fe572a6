"""Tuning: grids, seeds kept apart, the search itself, tuned files and the scenario suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.baselines import UtilSwitch
from agents.registry import make_agent
from agents.tuned_params import TUNED_DIR, config_fingerprint, load_tuned, read_tuned, tuned_path, write_tuned
from batchenv.config import ConfigError, SystemConfig
from batchenv.scenarios import SUITE, load_scenario
from batchenv.seeds import TRAINING_SEEDS, parse_seeds
from batchenv.timing import ServiceTable
from evaluation.plan import build_parser, make_plan
from evaluation.tuning import grid_search, mean_cost, timeout_grid, tune_scenario
from execution.backends import LocalBackend


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,7") == [3, 1, 7]
    assert parse_seeds("0-1,10-11") == [0, 1, 10, 11]
    for bad, message in [
        ("a", "bad seed"),
        ("5-2", "range"),
        ("1,,2", "empty"),
        ("1,1", "repeated"),
        ("-3", "bad"),
        ("0-100000000000", "too many seeds"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_seeds(bad)


@pytest.mark.parametrize("flags", [[], ["--quick"], ["--n-seeds", "100"]])
def test_training_and_evaluation_seeds_are_apart(flags: list[str]) -> None:
    """The seeds evaluate.py uses by default are never tuning seeds."""
    parser = build_parser()
    plan = make_plan(parser.parse_args(["--agents", "greedy", *flags]), flags)
    assert plan.seeds and not set(plan.seeds) & set(TRAINING_SEEDS)


def test_timeout_grid_stays_within_the_system_limits(default_config: SystemConfig) -> None:
    config = default_config.replace(max_wait_ms=40.0, max_batch_size=32)
    grid = timeout_grid(config)
    assert {p["model"] for p in grid} == set(config.model_names)
    assert max(p["preferred_batch_size"] for p in grid) == 32
    assert max(p["max_queue_delay_ms"] for p in grid) == 40.0
    keys = [(p["preferred_batch_size"], p["max_queue_delay_ms"], p["model"]) for p in grid]
    assert len(set(keys)) == len(keys)
    assert sum(1 for b, _, m in keys if b == 1 and m == "LLM-1") == 1  # with B = 1, T is moot


def test_grid_search_takes_the_first_minimum_and_is_independent_of_jobs(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=3.0, arrivals={"rate_per_s": 200.0})
    grid = timeout_grid(config)[::7]
    seeds = TRAINING_SEEDS[:2]
    best, cost, costs = grid_search(config, "timeout", grid, seeds)
    assert cost == min(costs) and best == grid[costs.index(cost)]
    assert costs[3] == mean_cost(config, "timeout", grid[3], seeds)
    with LocalBackend(2) as backend:
        assert grid_search(config, "timeout", grid, seeds, backend) == (best, cost, costs)
    doubled = [grid[0], grid[0]]
    assert grid_search(config, "timeout", doubled, seeds)[0] is doubled[0]


def test_tuned_util_switch_is_never_worse_than_tuned_timeout(default_config: SystemConfig) -> None:
    config = default_config.replace(horizon_s=4.0, arrivals={"rate_per_s": 350.0})
    seeds = TRAINING_SEEDS[:2]
    results = tune_scenario(config, seeds=seeds)
    timeout, switch = results["timeout"], results["util_switch"]
    assert switch["cost_per_request"] <= timeout["cost_per_request"]
    assert timeout["candidates"] == len(timeout_grid(config))
    # the entries rebuild the agents and reproduce their costs
    rebuilt = UtilSwitch(config, **switch["params"])
    assert mean_cost(config, "util_switch", rebuilt.params(), seeds) == pytest.approx(
        switch["cost_per_request"], abs=1e-6
    )


def test_tuned_file_round_trip_and_staleness(tmp_path: Path, default_config: SystemConfig) -> None:
    config = default_config.replace(name="roundtrip")
    data = {
        "scenario": "roundtrip",
        "config_fingerprint": config_fingerprint(config),
        "command": "python -m apps.tune --scenarios roundtrip",
        "training_seeds": [1000],
        "horizon_s": 60.0,
        "agents": {
            "timeout": {
                "params": {"preferred_batch_size": 4, "max_queue_delay_ms": 5.0, "model": "LLM-2"},
                "cost_per_request": 0.1,
                "candidates": 1,
            }
        },
    }
    path = tmp_path / "roundtrip.yaml"
    write_tuned(path, data)
    assert path.read_text().startswith("# Tuned parameters")
    assert "python -m apps.tune --scenarios roundtrip" in path.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert read_tuned(path).agents == data["agents"]
    # a command with a newline in an argument stays one comment line
    injected = tmp_path / "injected.yaml"
    write_tuned(injected, {**data, "command": "python -m apps.tune --scenarios 'x\nagents: {}'"})
    assert read_tuned(injected).agents == data["agents"]
    assert [line for line in injected.read_text().splitlines() if "Reproduce" in line] == [
        "# Reproduce with: python -m apps.tune --scenarios 'x\\nagents: {}'"
    ]
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(f"agents: {{timeout: {{params: {{preferred_batch_size: 1{'0' * 5000}}}}}}}\n")
    with pytest.raises(ConfigError, match=r"hostile\.yaml: line 1: an integer of 5001 characters"):
        read_tuned(hostile)
    assert load_tuned(config, tmp_path) is not None
    assert load_tuned(config.replace(horizon_s=5.0), tmp_path) is not None  # horizon is not part of it
    assert load_tuned(config.replace(arrivals={"rate_per_s": 101.0}), tmp_path) is None  # stale

    agent = make_agent("timeout", config, tuned_dir=tmp_path)
    assert agent.params()["preferred_batch_size"] == 4 and agent.params()["model"] == "LLM-2"
    assert agent.params_source == "tuned (roundtrip.yaml)"
    override = make_agent("timeout(B=16)", config, tuned_dir=tmp_path)
    assert override.params()["preferred_batch_size"] == 16 and override.params()["model"] == "LLM-2"
    assert "given overrides" in override.params_source
    assert make_agent("timeout", config, tuned=False, tuned_dir=tmp_path).params_source == "defaults"
    changed = config.replace(arrivals={"rate_per_s": 101.0})
    assert "stale" in make_agent("timeout", changed, tuned_dir=tmp_path).params_source
    other = config.replace(name="elsewhere")
    assert (
        "tuned parameters for 'elsewhere': none"
        in make_agent("util_switch", other, tuned_dir=tmp_path).params_source
    )


def test_suite_scenarios_load_and_poisson_loads_match_their_names() -> None:
    for name in SUITE:
        load_scenario(name)
    capacity = ServiceTable(load_scenario("default")).max_throughput_per_s()
    assert capacity == pytest.approx(64 / 0.111)
    for percent in (5, 25, 50, 75, 95):
        rate = load_scenario(f"poisson_{percent:02d}").arrivals.rate_per_s
        assert rate == pytest.approx(percent / 100 * capacity, abs=0.006)
    for level, percent in (("low", 25), ("medium", 50), ("high", 75)):
        config = load_scenario(f"azure_trace_{level}")
        assert config.arrivals.process == "trace"
        assert config.arrivals.rate_per_s == load_scenario(f"poisson_{percent:02d}").arrivals.rate_per_s
    assert load_scenario("multi_gpu_4").n_workers == 4


@pytest.mark.parametrize("scenario", SUITE)
def test_committed_tuned_parameters_are_fresh(scenario: str) -> None:
    config = load_scenario(scenario)
    record = load_tuned(config)
    assert record is not None, (
        f"agents/tuned/{scenario}.yaml is missing or stale: run python -m apps.tune --scenarios {scenario}"
    )
    assert set(record.agents) == {"timeout", "util_switch"}
    assert record.data["training_seeds"] == list(TRAINING_SEEDS)
    for name in record.agents:
        agent = make_agent(name, config)
        assert agent.params_source.startswith("tuned")
    assert (TUNED_DIR / f"{scenario}.yaml").read_text().startswith("# Tuned parameters")


def test_tune_command_writes_the_tuned_file(tmp_path: Path, capsys) -> None:
    from apps import tune

    argv = ["--scenarios", "poisson_50", "--agents", "timeout", "--seeds", "1000", "--horizon-s", "1"]
    argv += ["--jobs", "1", "--out", str(tmp_path)]
    assert tune.main(argv) == 0
    record = read_tuned(tmp_path / "poisson_50.yaml")
    assert record is not None and set(record.agents) == {"timeout"}
    # the command without --jobs, which never changes the results (re-tuning rewrites no file)
    assert record.data["command"] == "python -m apps.tune " + " ".join(argv).replace(" --jobs 1", "")
    assert f"# Reproduce with: {record.data['command']}\n" in (tmp_path / "poisson_50.yaml").read_text()
    config = load_scenario("poisson_50").replace(horizon_s=1.0)
    params = record.agents["timeout"]["params"]
    assert record.agents["timeout"]["cost_per_request"] == round(
        mean_cost(config, "timeout", params, [1000]), 6
    )
    with pytest.raises(SystemExit):
        tune.main(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../escaped_by_name", "a/b", "..", "a\0b"])
def test_tuned_files_stay_in_their_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"^name: must be usable as a file name"):
        tuned_path(name, tmp_path)
    assert tuned_path("poisson_50", tmp_path) == tmp_path / "poisson_50.yaml"


def test_tune_refuses_an_escaping_name_and_an_out_that_is_a_file(tmp_path: Path, capsys) -> None:
    from apps import tune

    scenario = tmp_path / "s" / "name_trav.yaml"
    scenario.parent.mkdir()
    scenario.write_text("extends: default\nname: ../escaped_by_name\n")
    quick = ["--seeds", "1000", "--horizon-s", "1", "--jobs", "1"]
    with pytest.raises(SystemExit) as exit_info:
        tune.main(["--scenarios", str(scenario), *quick, "--out", str(tmp_path / "s" / "out")])
    assert exit_info.value.code == 2
    assert "error: name: must be usable as a file name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["name_trav.yaml", "s"]  # nothing written
    not_a_folder = tmp_path / "afile"
    not_a_folder.write_text("kept\n")
    for out in (not_a_folder, not_a_folder / "sub"):
        with pytest.raises(SystemExit) as exit_info:
            tune.main(["--scenarios", "poisson_50", *quick, "--out", str(out)])
        assert exit_info.value.code == 2
        assert f"error: --out: cannot create folder {out}" in capsys.readouterr().err
    assert not_a_folder.read_text() == "kept\n"


def test_untuned_hint_names_the_scenario_as_given_so_its_command_works(tmp_path: Path, capsys) -> None:
    """A scenario given by YAML path whose ``name:`` is no scenario name: the hint for its untuned
    baselines suggests ``python -m apps.tune --scenarios <the path>``, which loads, not the name."""
    import shlex

    from apps import evaluate
    from batchenv.scenarios import scenario_config

    scenario = tmp_path / "my scenario.yaml"
    scenario.write_text("extends: default\nname: calibrated_here\n")
    argv = ["--scenarios", str(scenario), "--agents", "timeout", "--seeds", "0", "--horizon-s", "0.5"]
    argv += ["--jobs", "1", "--no-plots", "--no-hindsight", "--out", str(tmp_path / "out")]
    assert evaluate.main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    hint = f"run python -m apps.tune --scenarios {shlex.quote(str(scenario))})"
    assert "tuned parameters for 'calibrated_here': none;" in out and hint in out
    (given,) = shlex.split(out.split("run python -m apps.tune --scenarios ")[1].split(")")[0])
    assert scenario_config(given).name == "calibrated_here"
    # a name stays a name; the held-out half of a trace names its packaged training half
    config = load_scenario("azure_trace_test")
    hint = make_agent("timeout", config, tuned_dir=tmp_path, scenario_spec="azure_trace_test").params_source
    assert hint.endswith("run python -m apps.tune --scenarios azure_trace_train)")


@pytest.mark.parametrize(
    ("argv", "recorded"),
    [
        (["--scenarios", "suite", "--jobs", "1"], "--scenarios suite"),
        (["--jobs=2", "--scenarios", "suite"], "--scenarios suite"),
        (["--backend", "ray", "--address", "auto", "--jobs", "4", "--seeds", "1000"], "--seeds 1000"),
        (["--backend=ray", "--address=10.0.0.1:6379", "--out", "x"], "--out x"),
        (["--job", "3", "--ad=auto", "--scenarios", "default"], "--scenarios default"),  # abbreviations
        (["--jobs", "2"], ""),
        (["--scenarios", "my file.yaml", "--agents", "aimd"], "--scenarios 'my file.yaml' --agents aimd"),
    ],
)
def test_tuned_files_record_the_command_without_the_execution_flags(argv: list[str], recorded: str) -> None:
    """Results are identical for every backend and number of workers: the recorded command
    leaves out --jobs, --backend and --address, so re-tuning elsewhere rewrites no file."""
    from apps import tune

    assert tune.recorded_command(argv, tune.build_parser()) == f"python -m apps.tune {recorded}".rstrip()


def test_tune_help_states_each_default_once(capsys) -> None:
    import re

    from apps import tune

    with pytest.raises(SystemExit):
        tune.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"default[^()]*\)\s*\(default", text), text
    for wrong in ("(default: None)", "(default: local)", "%%"):
        assert wrong not in text
    assert "(default: the usable cores, at most 8; every CPU of a cluster)" in text
    assert "(default: 1000-1003)" in text and "(default: 0.2)" in text and "(default: suite)" in text
