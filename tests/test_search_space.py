"""Search spaces of ``python -m apps.search`` (no Ray needed): parsing, checks, best trial."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("optuna", reason='Optuna is not installed (pip install -e ".[dist]")')

from apps.search import (
    SearchSpaceError,
    _search_flags,
    best_trial,
    load_search_space,
    optuna_space,
    result_yaml,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_shipped_search_spaces_load(algo: str) -> None:
    space = load_search_space(REPO / "agents" / "hyperparams" / "search" / f"{algo}.yml")
    assert "learning_rate" in space and space["learning_rate"][0] == "loguniform"
    distributions = optuna_space(space)
    assert set(distributions) == set(space)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "must map hyperparameter names"),
        ("gamma: 0.9\n", "expected one of"),
        ("gamma: {normal: [0, 1]}\n", "expected one of"),
        ("gamma: {uniform: [0.9]}\n", "needs [low, high]"),
        ("gamma: {uniform: [0.99, 0.9]}\n", "needs low < high"),
        ("learning_rate: {loguniform: [0, 1]}\n", "low > 0"),
        ("n_epochs: {int: [1.5, 4]}\n", "integer bounds"),
        ("gamma: {uniform: [0.9, 2.0]}\n", "hyperparams.gamma: must be in (0, 1]"),
        ("policy_kwargs: {categorical: [{net_arch: [64]}]}\n", "numbers, strings or booleans"),
        ("1: {int: [1, 2]}\n", "not a hyperparameter name"),
        (f"n_epochs: {{int: [1, 1{'0' * 5000}]}}\n", "more digits than the 4300 allowed"),
        ("n_steps: {uniform: [64, 128]}\n", "integer hyperparameter; use int: [low, high], not uniform"),
        ("batch_size: {loguniform: [32, 64]}\n", "use int: [low, high], not loguniform"),
        ("a: &x [1, 2]\nb: *x\n", "alias"),
        ("gamma: {uniform: [0.9, 0.99]}\ngamma: {uniform: [0.8, 0.9]}\n", "duplicate key"),
    ],
)
def test_bad_spaces_are_clear_errors(text: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "space.yml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as err:
        load_search_space(path)
    assert words in str(err.value) and err.value.field == "--space"


def test_best_trial_prefers_trials_that_ran_to_the_end() -> None:
    trials = [
        {"trial": "a", "objective": 0.01, "timesteps": 1000},
        {"trial": "b", "objective": -0.5, "timesteps": 200},  # pruned early: not comparable
        {"trial": "c", "objective": 0.02, "timesteps": 1000},
        {"trial": "d", "objective": None, "timesteps": 0},
    ]
    assert best_trial(trials, 1000)["trial"] == "a"
    assert best_trial(trials[1:2], 1000)["trial"] == "b"
    assert best_trial([trials[3]], 1000) is None


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--search-seed", "-1"], "--search-seed must be in [0, 4294967295]"),
        (["--search-seed", str(2**32)], "--search-seed must be in [0, 4294967295]"),
        (["--out", "{tmp}"], "--out must be a file path"),
        (["--out", "{tmp}/file/best.yml"], "is not a folder"),
    ],
)
def test_bad_search_flags_exit_2_before_anything_runs(
    flags: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    argv = ["--space", "space.yml", "--out", str(tmp_path / "best.yml")]
    with pytest.raises(SystemExit) as exit_:
        _search_flags(argv + [flag.format(tmp=tmp_path) for flag in flags])
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_result_header_cannot_inject_yaml() -> None:
    import yaml

    best = {"trial": "t0", "objective": 0.01, "timesteps": 10, "run_dir": "r", "hyperparams": {"gamma": 0.9}}
    text = result_yaml(best, "python -m apps.search --run-name 'x\nn_steps: 7'", [best])
    assert yaml.safe_load(text) == {"gamma": 0.9}
