"""Multi-seed training as Ray Tune trials (``train.py --seeds``): each trial writes the run
folder of a single run, and the sweep writes the aggregate across seeds.

One local Ray session with 2 CPUs serves every test here (starting Ray takes several seconds),
and they all run in one xdist worker (``xdist_group`` with ``--dist loadgroup``). They are
skipped only when Ray Tune is not installed (``pip install -e ".[dist]"``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[dist]")')
pytest.importorskip("ray.tune", reason='Ray Tune is not installed (pip install -e ".[dist]")')

from tiny_runs import TINY_PPO_HYPERPARAMS, tiny_ppo_argv  # noqa: E402

from apps import train  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")

SINGLE_RUN_FILES = ("config.yml", "hyperparams.yml", "args.yml", "command.txt", "final_model.zip")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False
        )
    yield
    if started:
        ray.shutdown()


def _argv(runs: Path, *flags: str) -> list[str]:
    return tiny_ppo_argv(runs, "--eval-freq", "128", "--save-freq", "128", *TINY_PPO_HYPERPARAMS, *flags)


def test_each_seed_is_a_trial_with_its_own_run_folder(ray_session: None, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert train.main(_argv(runs, "--seeds", "0-1", "--run-name", "sweep")) == 0
    sweep = runs / "sweep"
    for seed in (0, 1):
        run = sweep / f"ppo_default_seed{seed}"
        for name in SINGLE_RUN_FILES:
            assert (run / name).is_file(), name
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_128.zip", "step_256.zip"]
        assert list((run / "tb").rglob("events.out.tfevents*"))
        assert yaml.safe_load((run / "args.yml").read_text())["seed"] == seed
        history = json.loads((run / "evaluations.json").read_text())
        assert [h["timesteps"] for h in history] == [128, 256]
        # the trial's command reproduces it alone: the same arguments as a single run
        command = (run / "command.txt").read_text().strip()
        argv = shlex.split(command)[2:]
        alone = train.parse_args(argv)
        recorded = train.TrainArgs(**yaml.safe_load((run / "args.yml").read_text()))
        assert alone.seed == recorded.seed and alone.run_name == recorded.run_name
        assert alone.hyperparams == recorded.hyperparams and alone.n_timesteps == recorded.n_timesteps
        assert Path(alone.runs_dir).resolve() == Path(recorded.runs_dir).resolve()
    assert (sweep / "tune").is_dir()  # Tune's own records, under the same parent
    aggregate = json.loads((sweep / "aggregate.json").read_text())
    finals = [
        json.loads((sweep / f"ppo_default_seed{s}" / "evaluations.json").read_text())[-1]["gap_to_reference"]
        for s in (0, 1)
    ]
    assert [r["seed"] for r in aggregate["runs"]] == [0, 1]
    overall = aggregate["overall"]["gap_to_reference"]
    assert overall["n"] == 2 and overall["mean"] == pytest.approx(np.mean(finals))
    assert aggregate["targets"]["scenario"]["gap_to_reference"]["mean"] == pytest.approx(np.mean(finals))
    assert "| scenario |" in (sweep / "aggregate.md").read_text()


def test_a_bad_configuration_fails_before_any_trial(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert train.main(_argv(runs, "--seeds", "0-1", "--env", "no_such_scenario")) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert not runs.exists() or not list(runs.iterdir())
    # an evaluation too large to hold in memory is refused before Ray starts, as for one run
    huge = _argv(runs, "--seeds", "0-1", "--eval-rates", "100000", "--eval-horizon-s", "3600")
    assert train.main(huge) == 2
    assert "--eval-horizon-s" in capsys.readouterr().err
    assert not runs.exists() or not list(runs.iterdir())


def test_a_search_writes_the_best_hyperparameters_for_train(ray_session: None, tmp_path: Path) -> None:
    from apps import search

    space = tmp_path / "space.yml"
    space.write_text("learning_rate: {loguniform: [1.0e-4, 1.0e-3]}\nn_epochs: {int: [1, 2]}\n")
    out = tmp_path / "best.yml"
    argv = _argv(tmp_path / "runs", "--space", str(space), "--trials", "2", "--out", str(out))
    assert search.main(argv) == 0
    best = yaml.safe_load(out.read_text())
    assert set(best) == {"learning_rate", "n_epochs"}
    assert 1e-4 <= best["learning_rate"] <= 1e-3 and best["n_epochs"] in (1, 2)
    assert "python -m apps.search" in out.read_text().splitlines()[2]  # the command at its top
    (folder,) = (tmp_path / "runs").iterdir()
    trials = json.loads((folder / "trials.json").read_text())["trials"]
    assert len(trials) == 2
    for trial in trials:  # each trial is a train.py run folder with the sampled values
        run = Path(trial["run_dir"])
        assert (
            trial["timesteps"] == 256 and (run / "final_model.zip").is_file()
        )  # ASHA's max_t: not cut short
        used = yaml.safe_load((run / "hyperparams.yml").read_text())
        assert used["learning_rate"] == trial["hyperparams"]["learning_rate"]
        assert json.loads((run / "evaluations.json").read_text())[-1]["gap_to_reference"] == pytest.approx(
            trial["objective"]
        )
    winner = min(trials, key=lambda t: t["objective"])
    assert best == winner["hyperparams"]
    # train.py takes the file
    assert train.main([*_argv(tmp_path / "again", "--eval-freq", "0"), "--hyperparams-file", str(out)]) == 0


def test_a_sweep_starts_a_local_ray_of_jobs_cpus_or_joins_the_address(monkeypatch) -> None:
    """Its priority and environment are those of every embedded Ray of batchenv
    (tests/test_execution_ray.py)."""
    from apps import sweep
    from execution import ray_backend

    seen: list[tuple[int | None, str | None]] = []
    monkeypatch.setattr(
        ray_backend, "start_or_join", lambda jobs, address: seen.append((jobs, address)) or False
    )
    with sweep.ray_session("auto", 3):
        pass
    with sweep.ray_session(None, 3):
        pass
    assert seen == [(None, "auto"), (3, None)]


def test_a_trial_reports_its_final_evaluation_once_its_final_model_is_saved() -> None:
    """ASHA stops a trial at its max_t (the steps to train) at the report that reaches it: a
    trial stopped there never saved final_model.zip."""
    from apps import sweep

    reported: list[int] = []
    listener, flush = sweep.held_reporter(lambda record: reported.append(record["timesteps"]), 256)
    for steps in (128, 256):
        listener({"timesteps": steps})
    assert reported == [128]  # ... then train() saves final_model.zip
    flush()
    assert reported == [128, 256]
    listener, flush = sweep.held_reporter(lambda record: reported.append(record["timesteps"]), None)
    listener({"timesteps": 512})
    assert reported[-1] == 512


def test_ctrl_c_of_a_sweep_exits_130(monkeypatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tune catches Ctrl-C itself, stops the running trials, marks them terminated like finished
    ones and returns: the sweep said "no finished run to aggregate" and exited 0. The trials
    it stopped are those that got no on_trial_complete / on_trial_error."""
    import contextlib

    from ray import tune

    from apps import sweep

    done, stopped = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    ends = sweep.trial_ends()
    ends.on_trial_complete(iteration=1, trials=[], trial=done)
    ends.on_experiment_end(trials=[done, stopped])
    assert ends.interrupted
    ends.on_trial_error(iteration=2, trials=[], trial=stopped)  # a failed trial ended on its own
    assert not ends.interrupted

    class StoppedTuner:
        def __init__(self, *args: object, run_config: tune.RunConfig, **kwargs: object) -> None:
            self.callbacks = run_config.callbacks

        def fit(self) -> list[object]:
            for callback in self.callbacks:
                callback.on_experiment_end(trials=[done, stopped])
            return []

    monkeypatch.setattr(tune, "Tuner", StoppedTuner)
    monkeypatch.setattr(sweep, "ray_session", lambda address, jobs: contextlib.nullcontext())
    monkeypatch.setattr(sweep, "alive_nodes", lambda: 1)
    assert train.main(_argv(tmp_path / "runs", "--seeds", "0-1")) == 130
    assert "interrupted" in capsys.readouterr().err


def test_on_several_nodes_a_missing_run_may_be_on_another_disk() -> None:
    from apps import sweep

    assert (
        sweep.missing_run_message(Path("runs/s/seed0"), 1)
        == "runs/s/seed0 did not finish: left out of the aggregate"
    )
    several = sweep.missing_run_message(Path("runs/s/seed0"), 3)
    assert "on another node" in several and "no final_model.zip on this machine" in several
