"""Hyperparameter search: Optuna's TPE sampler on Ray Tune, with ASHA pruning on the
intermediate evaluations; the best hyperparameters go to a YAML file that
``train.py --hyperparams-file`` takes.

Examples::

    python -m apps.search --algo ppo --env default --rate 200 --space agents/hyperparams/search/ppo.yml \\
        --trials 8 -n 50000 --eval-freq 10000 --out ppo_rate200_best.yml
    python train.py --algo ppo --env default --rate 200 --hyperparams-file ppo_rate200_best.yml
    python train.py --algo ppo --env default --rate 200 \\
        --hyperparams-file benchmarks/results/search_ppo_rate200_best.yml   # the committed search's

The search space is a YAML mapping from hyperparameter names to one distribution each (the kinds
of rl-baselines3-zoo's samplers)::

    learning_rate: {loguniform: [1.0e-5, 1.0e-3]}   # low, high (> 0), uniform in log
    gae_lambda: {uniform: [0.8, 1.0]}               # low, high
    n_epochs: {int: [1, 20]}                        # low, high, integers (both included)
    batch_size: {categorical: [64, 128, 256, 512]}  # numbers, strings or booleans

Every trial is one training run (:func:`apps.sweep.train_trial`, the code of ``train.py``) with
the sampled values over the algorithm's hyperparameter file and the fixed ``--hyperparams``; it
writes a run folder of its own (``<search folder>/{algo}_{scenario}_<trial>/``) and reports each
evaluation's mean gap to the reference (:class:`agents.callbacks.DomainEvalCallback`; lower is
better) to Tune. ASHA (:class:`ray.tune.schedulers.ASHAScheduler`, on the environment steps)
stops the trials whose gap is in the worse half at a rung; Optuna's TPE proposes the next
trials from the finished ones (:class:`ray.tune.search.optuna.OptunaSearch`). The best trial is
the one with the lowest final gap among those that ran to the end; a trial that runs to the end
reports its last evaluation once it has saved ``final_model.zip`` (ASHA stops every trial that
reaches its ``max_t``, the steps to train). Ctrl-C stops the trials, writes ``trials.json`` but no
``--out`` file, and exits with 130.

Needs the ``dist`` extra (``pip install -e ".[dist]"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from agents.checkpoint import CheckpointError
from agents.hyperparameters import is_integer_hyperparameter, validate_hyperparams
from apps.sweep import group_run_dir, ray_session, relative_path, report_failures, train_trial, trial_ends
from apps.train import build_parser, parse_command_line, plan_run
from batchenv.config import ConfigError, short_repr
from batchenv.fileio import write_atomic, write_json_atomic
from batchenv.safe_yaml import YamlError, comment_block, load_yaml
from serving.cli import UsageError, check_writable

__all__ = ["DISTRIBUTIONS", "SearchSpaceError", "load_search_space", "main"]

DISTRIBUTIONS = ("loguniform", "uniform", "int", "categorical")
"""The kinds of distribution a search space may give a hyperparameter."""

OBJECTIVE = "gap_to_reference"
"""The metric the search minimises: the evaluation's mean gap to the reference."""

MAX_SPACE_BYTES = 64 * 1024
"""Largest search-space file (bytes)."""

MAX_SEARCH_SEED = 2**32 - 1
"""Largest --search-seed (NumPy seeds the TPE sampler and takes [0, 2**32 - 1])."""


class SearchSpaceError(ConfigError):
    """A search-space file is missing, malformed, or gives a value the hyperparameter rejects."""


def load_search_space(path: str | Path) -> dict[str, tuple[str, list[Any]]]:
    """Read and check a search space: ``{name: (kind, arguments)}``.

    Both ends of every range (and every categorical choice) are checked with
    :func:`~agents.hyperparameters.validate_hyperparams`, so no trial can sample a value
    the run would reject.

    :raises SearchSpaceError: naming the file and the hyperparameter.
    """
    path = Path(path)
    field = "--space"
    if not path.is_file():
        raise SearchSpaceError(field, f"no such file: {path}")
    if path.stat().st_size > MAX_SPACE_BYTES:
        raise SearchSpaceError(field, f"{path} is larger than {MAX_SPACE_BYTES} bytes")
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise SearchSpaceError(field, f"{path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise SearchSpaceError(field, f"{path} must map hyperparameter names to distributions")
    space: dict[str, tuple[str, list[Any]]] = {}
    for name, spec in data.items():
        where = f"{path}: {name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise SearchSpaceError(field, f"{path}: {short_repr(name)} is not a hyperparameter name")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise SearchSpaceError(
                field, f"{where}: expected one of {{{', '.join(f'{d}: ...' for d in DISTRIBUTIONS)}}}"
            )
        kind, arguments = next(iter(spec.items()))
        if not isinstance(arguments, list) or not arguments:
            raise SearchSpaceError(field, f"{where}: {kind} needs a list, got {short_repr(arguments)}")
        if kind == "categorical":
            if not all(isinstance(v, bool | int | float | str) for v in arguments):
                raise SearchSpaceError(
                    field, f"{where}: categorical choices must be numbers, strings or booleans"
                )
            values = list(arguments)
        else:
            if len(arguments) != 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in arguments
            ):
                raise SearchSpaceError(
                    field, f"{where}: {kind} needs [low, high], got {short_repr(arguments)}"
                )
            low, high = arguments
            if not low < high or (kind == "loguniform" and low <= 0):
                raise SearchSpaceError(
                    field, f"{where}: {kind} needs low < high{' and low > 0' if kind == 'loguniform' else ''}"
                )
            if kind != "int" and is_integer_hyperparameter(name):
                raise SearchSpaceError(
                    field, f"{where}: {name} is an integer hyperparameter; use int: [low, high], not {kind}"
                )
            if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
                raise SearchSpaceError(field, f"{where}: int needs integer bounds, got {arguments}")
            values = [int(low), int(high)] if kind == "int" else [float(low), float(high)]
        for value in values:
            try:
                validate_hyperparams({name: value})
            except ConfigError as exc:
                raise SearchSpaceError(field, f"{path}: {exc}") from None
        space[name] = (kind, values)
    return space


def optuna_space(space: dict[str, tuple[str, list[Any]]]) -> dict[str, Any]:
    """The space as Optuna distributions (for :class:`ray.tune.search.optuna.OptunaSearch`)."""
    from optuna import distributions

    out: dict[str, Any] = {}
    for name, (kind, values) in space.items():
        if kind == "categorical":
            out[name] = distributions.CategoricalDistribution(values)
        elif kind == "int":
            out[name] = distributions.IntDistribution(values[0], values[1])
        else:
            out[name] = distributions.FloatDistribution(values[0], values[1], log=kind == "loguniform")
    return out


def build_search_parser() -> argparse.ArgumentParser:
    """train.py's flags (for every trial) plus the search's own."""
    parser = build_parser()
    parser.prog = "python -m apps.search"
    parser.description = __doc__
    group = parser.add_argument_group("search")
    group.add_argument("--space", required=True, help="YAML search space (see above)")
    group.add_argument("--trials", type=int, default=8, help="trials (samples) to run (default: 8)")
    group.add_argument(
        "--grace-steps",
        type=int,
        default=None,
        help="ASHA's grace period: no trial is stopped before this many steps (default: 2 x --eval-freq)",
    )
    group.add_argument("--search-seed", type=int, default=0, help="seed of the TPE sampler (default: 0)")
    group.add_argument("--out", required=True, help="YAML file for the best hyperparameters")
    return parser


def _search_flags(argv: list[str]) -> tuple[list[str], argparse.Namespace]:
    """Split ``argv`` into train.py's flags and the search's (parsed)."""
    parser = build_search_parser()
    ns = parser.parse_args(argv)
    own = {"--space", "--trials", "--grace-steps", "--search-seed", "--out", "--address"}
    train_argv: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        flag = item.split("=", 1)[0]
        if flag in own:
            skip = "=" not in item
            continue
        train_argv.append(item)
    if ns.seeds is not None:
        parser.error("--seeds does not apply to a search (every trial uses --seed)")
    if ns.trials < 1:
        parser.error(f"--trials must be >= 1, got {ns.trials}")
    if ns.grace_steps is not None and ns.grace_steps < 1:
        parser.error(f"--grace-steps must be >= 1, got {ns.grace_steps}")
    if ns.eval_freq < 1:
        parser.error("--eval-freq must be >= 1: the search prunes and ranks trials on the evaluations")
    if not 0 <= ns.search_seed <= MAX_SEARCH_SEED:
        parser.error(f"--search-seed must be in [0, {MAX_SEARCH_SEED}], got {ns.search_seed}")
    try:
        check_writable("--out", Path(ns.out))  # before Ray and the trials, not after them
    except UsageError as exc:
        parser.error(str(exc))
    return train_argv, ns


def best_trial(trials: list[dict[str, Any]], n_timesteps: int) -> dict[str, Any] | None:
    """The trial with the lowest final objective among those that trained ``n_timesteps`` (all
    trials when none did)."""
    scored = [t for t in trials if t.get("objective") is not None and math.isfinite(t["objective"])]
    finished = [t for t in scored if t["timesteps"] >= n_timesteps] or scored
    return min(finished, key=lambda t: t["objective"]) if finished else None


def result_yaml(best: dict[str, Any], command: str, trials: list[dict[str, Any]]) -> str:
    """The best hyperparameters as a ``--hyperparams-file``, its provenance and every trial's
    final objective in comments."""
    header = [
        "# Best hyperparameters of a search (Optuna TPE on Ray Tune, ASHA pruning); use with",
        "#   python train.py ... --hyperparams-file <this file>",
        f"# Produced by: {command}",
        f"# On {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: trial {best['trial']} of {len(trials)}, final mean "
        f"gap to the reference {best['objective']:+.4%} after {best['timesteps']} steps",
        f"# (run folder {best['run_dir']}). Only the searched hyperparameters are listed; the others",
        "# come from the algorithm's hyperparameter file and the search's --hyperparams.",
        "# Every trial (steps trained: fewer than the budget = stopped by ASHA; last mean gap):",
    ]
    for trial in trials:
        objective = trial.get("objective")
        score = "n/a" if objective is None else f"{objective:+.4%}"
        values = json.dumps(trial["hyperparams"], sort_keys=True)
        header.append(f"#   {trial['trial']}: {trial['timesteps']} steps, {score}: {values}")
    body = yaml.safe_dump(best["hyperparams"], sort_keys=True, default_flow_style=False)
    return comment_block(header) + body


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_argv, ns = _search_flags(argv)
    args, _ = parse_command_line(train_argv)
    command = "python -m apps.search " + shlex.join(argv)
    try:
        space = load_search_space(ns.space)
        plan = plan_run(args)
        validate_hyperparams({**plan.hyperparams, **{k: v[1][0] for k, v in space.items()}})
    except (ConfigError, CheckpointError) as exc:
        print(f"search: error: {exc}", file=sys.stderr)
        return 2
    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        print(
            "search: error: Ray Tune is not installed: a search runs its trials on Ray Tune with "
            "Optuna; install the dist extra with pip install -e '.[dist]'",
            file=sys.stderr,
        )
        return 2
    from optuna.samplers import TPESampler

    scenario = plan.config.name
    n_timesteps = int(args.n_timesteps or plan.own("n_timesteps", 1_000_000))
    runs_dir = Path(args.runs_dir)
    search_dir = group_run_dir(runs_dir, args.run_name, plan.algo, f"{scenario}_search", command)
    if search_dir is None:
        print(f"search: error: --run-name: {runs_dir / args.run_name} exists already", file=sys.stderr)
        return 2
    base = dataclasses.replace(
        args,
        algo=plan.algo,
        runs_dir=str(search_dir),
        run_name=f"{plan.algo}_{scenario}",
        progress=False,
        verbose=0,
    )
    trial = {
        "args": dataclasses.asdict(base),
        "command": None,
        "cwd": str(Path.cwd()),
        "shown_runs_dir": str(relative_path(search_dir)),
        "final_steps": n_timesteps,  # ASHA's max_t: the last report waits for final_model.zip
    }
    grace = ns.grace_steps or 2 * args.eval_freq
    searcher = OptunaSearch(
        space=optuna_space(space),
        metric=OBJECTIVE,
        mode="min",
        sampler=TPESampler(seed=ns.search_seed, n_startup_trials=max(2, ns.trials // 3)),
    )
    scheduler = ASHAScheduler(
        time_attr="timesteps",
        metric=OBJECTIVE,
        mode="min",
        max_t=n_timesteps,
        grace_period=min(grace, n_timesteps),
        reduction_factor=2,
    )
    from execution.ray_backend import RayUnavailableError

    ends = trial_ends()
    try:
        with ray_session(ns.address, ns.jobs):
            tuner = tune.Tuner(
                tune.with_resources(train_trial, {"cpu": 1}),
                param_space={"trial": trial},
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=ns.trials,
                    max_concurrent_trials=ns.jobs,
                ),
                run_config=tune.RunConfig(
                    name="tune", storage_path=str(search_dir), verbose=1, callbacks=[ends]
                ),
            )
            results = tuner.fit()
    except RayUnavailableError as exc:
        print(f"search: error: {exc}", file=sys.stderr)
        return 2
    report_failures(results)
    trials = []
    for result in results:
        config = result.config or {}
        sampled = {k: v for k, v in config.items() if k != "trial"}
        metrics = result.metrics or {}
        trial_id = str(metrics.get("trial_id", "?"))
        run_dir = search_dir / f"{base.run_name}_{trial_id}"
        trials.append(
            {
                "trial": trial_id,
                "hyperparams": sampled,
                "objective": metrics.get(OBJECTIVE),
                "timesteps": int(metrics.get("timesteps", 0) or 0),
                "run_dir": str(relative_path(run_dir)) if run_dir.is_dir() else None,
                "error": None if result.error is None else str(result.error).splitlines()[-1][:200],
            }
        )
    write_json_atomic(search_dir / "trials.json", {"command": command, "trials": trials})
    if ends.interrupted:
        print(
            f"search: interrupted: the trials were stopped; {relative_path(search_dir / 'trials.json')} "
            f"lists them, {ns.out} is not written",
            file=sys.stderr,
        )
        return 130
    best = best_trial(trials, n_timesteps)
    if best is None:
        print("search: no trial finished an evaluation", file=sys.stderr)
        return 1
    write_atomic(Path(ns.out), result_yaml(best, command, trials))
    print(
        f"search folder: {relative_path(search_dir)}\nbest: trial {best['trial']}, final mean gap "
        f"{best['objective']:+.3%} after {best['timesteps']} steps: {json.dumps(best['hyperparams'])}\n"
        f"wrote {ns.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
