"""Multi-seed training: ``train.py --seeds 0-4`` trains one run per seed as Ray Tune trials.

Each trial is a Tune function trainable that calls :func:`apps.train_run.train`, the code of a
single run, with the seed set: it writes the same run folder as ``train.py --seed k`` alone
(config, hyperparameters, arguments, its own reproducing command, checkpoints, ``best_model.zip``,
``final_model.zip``, ``evaluations.json``, TensorBoard logs), named
``<sweep folder>/{algo}_{scenario}_seed{k}/``. That folder is the source of truth; Tune only
schedules the trials and receives each evaluation's summary (:func:`tune_metrics`), which it
keeps under ``<sweep folder>/tune/`` (no Tune checkpoints). When the trials are done,
``aggregate.json`` and ``aggregate.md`` in the sweep folder give the final evaluation's mean and
95% confidence interval across the seeds (:mod:`agents.seed_aggregate`).

Ray is imported only here, when ``--seeds`` is given: without the ``dist`` extra
(``pip install -e ".[dist]"``) the command exits with a message naming it. A local Ray with
``--jobs`` CPUs is started (one CPU and one torch thread per trial), or a cluster is joined with
``--address``; every node needs batchenv installed and must share the sweep folder at the same
path, since a trial writes its run folder on the node it runs on (docs/scaling.md). Ctrl-C stops
the trials: Tune ends their processes, so a stopped trial keeps the checkpoints it had written
but no ``interrupted.zip``; the sweep aggregates the runs that finished and exits with 130.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agents.checkpoint import CheckpointError
from agents.seed_aggregate import aggregate_markdown, aggregate_runs
from apps.train import SweepArgs, TrainArgs, command_line_of, new_run_dir, plan_run, train
from apps.train_run import check_evaluation
from batchenv.config import ConfigError
from batchenv.fileio import write_atomic, write_json_atomic

__all__ = [
    "DIST_EXTRA_MESSAGE",
    "alive_nodes",
    "held_reporter",
    "missing_run_message",
    "ray_session",
    "relative_path",
    "report_failures",
    "run_seeds",
    "seed_run_name",
    "train_trial",
    "trial_args",
    "trial_ends",
    "tune_metrics",
]

DIST_EXTRA_MESSAGE = (
    "Ray Tune is not installed: --seeds trains each seed as a Ray Tune trial; install the dist "
    "extra with pip install -e '.[dist]'"
)

TUNE_METRICS = ("gap_to_reference", "worst_gap_to_reference", "gap_to_optimal", "score_per_request")
"""Keys of an evaluation record that each trial reports to Tune (besides the timesteps)."""


def seed_run_name(args: TrainArgs, scenario: str, seed: int) -> str:
    """The run folder name of one seed's trial: ``{algo}_{scenario}_seed{seed}``."""
    return f"{args.algo}_{scenario}_seed{seed}"


def _absolute_if_file(text: str | None) -> str | None:
    """A path that names an existing file, made absolute (a trial may run in another folder);
    anything else (a scenario name) unchanged."""
    if text is None:
        return None
    path = Path(text)
    return str(path.resolve()) if path.is_file() else text


def trial_args(args: TrainArgs, sweep_dir: Path, scenario: str, seed: int) -> TrainArgs:
    """The single-run arguments of one seed's trial: its seed and run folder inside the sweep
    folder, no progress bar, and every file path absolute."""
    return dataclasses.replace(
        args,
        seed=seed,
        runs_dir=str(sweep_dir),
        run_name=seed_run_name(args, scenario, seed),
        progress=False,
        env=_absolute_if_file(args.env) or args.env,
        hyperparams_file=_absolute_if_file(args.hyperparams_file),
        eval_scenarios=(
            None if args.eval_scenarios is None else [_absolute_if_file(s) or s for s in args.eval_scenarios]
        ),
    )


def tune_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """What a trial reports to Tune after each evaluation: the timesteps and the summary of
    the record (the full record stays in the run folder's ``evaluations.json``)."""
    metrics: dict[str, Any] = {"timesteps": record["timesteps"]}
    metrics.update({key: record[key] for key in TUNE_METRICS if key in record})
    return metrics


def train_trial(config: dict[str, Any]) -> None:
    """A Tune function trainable: one training run reporting each evaluation to Tune.

    ``config["trial"]`` holds the run's arguments (``args``, a :class:`TrainArgs` as a dict),
    its command line (``command``; None: made from the arguments) and the user's working folder
    (``cwd``); optionally ``final_steps``, the steps at which a scheduler stops a trial (ASHA's
    ``max_t``): an evaluation at or past them is reported once the run has saved
    ``final_model.zip`` (a trial stopped at a report never runs another line), see
    :func:`held_reporter`. Any other key of ``config`` is a hyperparameter sampled by a search:
    it overrides the run's hyperparameters, and the run folder is named after the trial
    (``{algo}_{scenario}_{trial name}``).
    """
    from ray import tune

    trial = config["trial"]
    os.chdir(trial["cwd"])  # Tune starts a trial in its own folder; paths are the user's
    args = TrainArgs(**trial["args"])
    sampled = {key: value for key, value in config.items() if key != "trial"}
    if sampled:
        args.hyperparams = {**args.hyperparams, **sampled}
        args.run_name = f"{args.run_name}_{tune.get_context().get_trial_id()}"
    command = trial["command"]
    if command is None:
        shown = dataclasses.replace(args, runs_dir=trial["shown_runs_dir"], progress=True)
        command = "python train.py " + shlex.join(command_line_of(shown))
    final_steps = trial.get("final_steps")
    listener, flush = held_reporter(lambda record: tune.report(tune_metrics(record)), final_steps)
    train(args, command, listeners=[listener])
    flush()


def held_reporter(
    report: Callable[[dict[str, Any]], None], final_steps: int | None
) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """A listener that passes each evaluation record to ``report``, except those at or past
    ``final_steps`` (None: none), which it holds until the second function is called: after the
    run has saved its final model. A scheduler that stops trials at ``final_steps`` (ASHA's
    ``max_t``) then stops a finished run, not one about to save its model."""
    held: list[dict[str, Any]] = []

    def listener(record: dict[str, Any]) -> None:
        if final_steps is not None and record["timesteps"] >= final_steps:
            held.append(record)
        else:
            report(record)

    def flush() -> None:
        while held:
            report(held.pop(0))

    return listener, flush


def trial_ends() -> Any:
    """A Tune callback (``RunConfig(callbacks=[...])``) that notes the trials that ended on
    their own: finished, stopped by a scheduler, or failed. After ``fit``, its ``interrupted``
    says whether some trial did not: Tune catches Ctrl-C itself, stops the running trials, marks
    them terminated like finished ones and returns, so its results cannot tell; only its
    ``on_trial_complete`` / ``on_trial_error`` hooks are left out for the trials it stopped."""
    from ray import tune

    class TrialEnds(tune.Callback):
        def __init__(self) -> None:
            self.ended: set[str] = set()
            self.trials: list[str] = []

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.ended.add(trial.trial_id)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.ended.add(trial.trial_id)

        def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
            self.trials = [trial.trial_id for trial in trials]

        @property
        def interrupted(self) -> bool:
            return any(trial not in self.ended for trial in self.trials)

    return TrialEnds()


def alive_nodes() -> int:
    """Nodes of the Ray session this process is connected to (1 for a local Ray)."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


@contextlib.contextmanager
def ray_session(address: str | None, jobs: int) -> Iterator[None]:
    """A local Ray with ``jobs`` CPUs (or the cluster at ``address``) for the duration of the
    block, through the execution layer's :func:`execution.ray_backend.start_or_join`; a session
    that is already running (a test's, a notebook's) is used and left running. A local Ray runs
    its trials at the priority of this command, as every embedded Ray of batchenv does
    (:data:`execution.ray_backend.WORKER_NICENESS`).

    :raises execution.ray_backend.RayUnavailableError: Ray cannot start, or no cluster at
        ``address`` lets this process in.
    """
    import ray

    from execution.ray_backend import start_or_join

    started = start_or_join(jobs if address is None else None, address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def report_failures(results: Any) -> int:
    """Print one line per failed trial; returns how many failed."""
    failed = [r for r in results if r.error is not None]
    for result in failed:
        lines = [line for line in str(result.error).splitlines() if line.strip()]
        print(f"trial {result.path} failed: {lines[-1] if lines else '?'}", file=sys.stderr)
    return len(failed)


def relative_path(path: Path) -> Path:
    """``path`` relative to the working folder when it is inside it (as a user would type it)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path.resolve()


def run_seeds(args: TrainArgs, sweep: SweepArgs, command: str) -> int:
    """Train ``args`` once per seed of ``sweep`` as Ray Tune trials, then write the aggregate.
    Returns the exit code (0; 1 if a trial failed; 2 for a bad configuration or no Ray)."""
    try:
        plan = plan_run(dataclasses.replace(args, seed=sweep.seeds[0]))  # errors before Ray starts
        check_evaluation(args, plan.config)
    except (ConfigError, CheckpointError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        from ray import tune
    except ImportError:
        print(f"train.py: error: {DIST_EXTRA_MESSAGE}", file=sys.stderr)
        return 2
    args = dataclasses.replace(args, algo=plan.algo)  # named in folders and recorded commands
    scenario = plan.config.name
    runs_dir = Path(args.runs_dir)
    sweep_dir = group_run_dir(runs_dir, args.run_name, plan.algo, f"{scenario}_seeds", command)
    if sweep_dir is None:
        print(f"train.py: error: --run-name: {runs_dir / args.run_name} exists already", file=sys.stderr)
        return 2
    shown = relative_path(sweep_dir)
    trials = []
    for seed in sweep.seeds:
        one = trial_args(args, sweep_dir, scenario, seed)
        shown_args = dataclasses.replace(one, runs_dir=str(shown), progress=True)
        trials.append(
            {
                "args": dataclasses.asdict(one),
                "command": "python train.py " + shlex.join(command_line_of(shown_args)),
                "cwd": str(Path.cwd()),
            }
        )

    def trial_name(trial: Any) -> str:
        return seed_run_name(args, scenario, trial.config["trial"]["args"]["seed"])

    from execution.ray_backend import RayUnavailableError

    ends = trial_ends()
    try:
        with ray_session(sweep.address, sweep.jobs):
            tuner = tune.Tuner(
                tune.with_resources(train_trial, {"cpu": 1}),
                param_space={"trial": tune.grid_search(trials)},
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=sweep.jobs,
                    trial_name_creator=trial_name,
                    trial_dirname_creator=trial_name,
                ),
                run_config=tune.RunConfig(
                    name="tune", storage_path=str(sweep_dir), verbose=1, callbacks=[ends]
                ),
            )
            results = tuner.fit()
            nodes = alive_nodes()
    except RayUnavailableError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    failed = report_failures(results)
    stopped = ends.interrupted
    run_dirs = [sweep_dir / seed_run_name(args, scenario, s) for s in sweep.seeds]
    # a finished run has its final model; an interrupted one's last evaluation is not final
    done = [d for d in run_dirs if (d / "final_model.zip").is_file() and (d / "evaluations.json").is_file()]
    for run_dir in run_dirs:
        if run_dir not in done and (run_dir.is_dir() or nodes > 1):
            print(f"train.py: {missing_run_message(relative_path(run_dir), nodes)}", file=sys.stderr)
    if done:
        aggregate = aggregate_runs(done)
        aggregate["command"] = command
        write_json_atomic(sweep_dir / "aggregate.json", aggregate)
        title = f"{args.algo} on {scenario}: final evaluation across {len(done)} training seeds"
        write_atomic(sweep_dir / "aggregate.md", aggregate_markdown(aggregate, title, command))
        overall = aggregate["overall"]["gap_to_reference"]
        print(
            f"sweep folder: {shown}\nmean gap to reference across seeds: {overall['mean']:+.2%} "
            f"(95% CI ± {overall['ci95']:.2%}, {overall['n']} seeds); {shown / 'aggregate.md'}"
        )
    else:
        print(f"sweep folder: {shown} (no finished run to aggregate)")
    if stopped:
        print("train.py: interrupted: the trials were stopped", file=sys.stderr)
        return 130
    return 1 if failed else 0


def missing_run_message(run_dir: Path, nodes: int) -> str:
    """Why a trial's run folder (``run_dir``) is left out of the aggregate: it did not finish,
    or, on a cluster of several ``nodes``, it may have been written on another node's disk."""
    if nodes == 1:
        return f"{run_dir} did not finish: left out of the aggregate"
    return (
        f"{run_dir} has no final_model.zip on this machine: left out of the aggregate. It did not "
        f"finish, or it did on another node: on a cluster ({nodes} nodes) a trial writes its run "
        "folder on the disk of the node it runs on; give --runs-dir a folder every node shares "
        "(docs/scaling.md)"
    )


def group_run_dir(runs_dir: Path, run_name: str | None, algo: str, label: str, command: str) -> Path | None:
    """The folder of a group of runs (a seed sweep, a search), absolute, with ``command.txt``
    (``command`` and a newline) written in it: ``runs_dir/run_name`` when a name is given (None
    when that folder exists already), else a new ``<algo>_<label>_<n>`` folder."""
    if run_name:
        group_dir = runs_dir / run_name
        try:
            group_dir.mkdir(parents=True)
        except FileExistsError:
            return None
    else:
        group_dir = new_run_dir(runs_dir, algo, label)
    group_dir = group_dir.resolve()
    write_atomic(group_dir / "command.txt", command + "\n")
    return group_dir
