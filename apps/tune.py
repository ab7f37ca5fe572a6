"""``python -m apps.tune`` (console script ``batchenv-tune``): tune the ``timeout`` and
``util_switch`` baselines per scenario by grid search on training seeds (:mod:`evaluation.tuning`)
and write ``agents/tuned/<scenario>.yaml`` (:mod:`agents.tuned_params`), which ``evaluate.py`` uses
by default. With ``--target p99<=100ms`` they are tuned to meet a latency target with the best
quality instead (``agents/tuned/targets/<scenario>__p99-100ms.yaml``, used by ``evaluate.py
--target``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agents.tuned_params import TUNABLE, TUNED_DIR, config_fingerprint, read_tuned, tuned_file, write_tuned
from batchenv.config import ConfigError, LatencyTarget, SystemConfig
from batchenv.scenarios import SUITE, scenario_config
from batchenv.seeds import TRAINING_SEEDS, parse_seeds
from evaluation.candidates import CandidateRuns
from evaluation.plan import UsageError, check_writable_folder
from evaluation.tuning import TargetObjective, tune_for_objective, tune_scenario
from execution.backends import Backend
from execution.cli import add_execution_arguments, backend_spec_or_exit, without_execution_flags
from execution.outcome import TaskFailedError

__all__ = ["main"]

PROG = "python -m apps.tune"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Tune the timeout and util_switch baselines per scenario by grid search on training "
            "seeds, minimising the mean cost per request (best quality - score). Writes "
            "agents/tuned/<scenario>.yaml, which evaluate.py uses by default."
        ),
    )
    parser.add_argument(
        "--scenarios",
        default="suite",
        help=f"comma-separated scenario names or YAML paths; 'suite' = {','.join(SUITE)} (default: suite)",
    )
    parser.add_argument(
        "--agents",
        default=",".join(TUNABLE),
        help=f"which baselines to tune, among {','.join(TUNABLE)} (default: all of them)",
    )
    parser.add_argument(
        "--seeds",
        default=f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}",
        help="training seeds, e.g. 1000-1003 or 1000,1005, all >= 1000, apart from the evaluation seeds "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="simulated seconds per episode (default: each scenario's horizon_s)",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="tune to meet a latency target instead of minimising the cost: the best mean quality "
        "among the candidates that meet it on the training seeds (with the margin of --margin), e.g. "
        "p99<=100ms, 95%%<=250ms or 95%% (of requests within slo_ms); writes "
        "<out>/targets/<scenario>__<target>.yaml (default: none)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.2,
        help="with --target: the share of the miss budget kept in reserve (as agent slo_target's margin), "
        "in [0, 1) (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=TUNED_DIR,
        help="directory of the tuned-parameter files (default: agents/tuned)",
    )
    add_execution_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Tune what the command line ``argv`` (default ``sys.argv[1:]``) asks for; returns the exit
    code (0, 1 if an episode failed, 2 for a bad command line, 130 if interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    names = SUITE if args.scenarios == "suite" else [s.strip() for s in args.scenarios.split(",")]
    names = [name for name in names if name]
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    for agent in agents:
        if agent not in TUNABLE:
            parser.error(f"cannot tune {agent!r}; tunable: {list(TUNABLE)}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    if min(seeds) < 1000:
        parser.error("--seeds: training seeds must be >= 1000 (seeds below are for evaluation)")
    if args.horizon_s is not None and not args.horizon_s > 0:
        parser.error("--horizon-s must be > 0")
    target = None
    if args.target is not None:
        try:
            target = LatencyTarget.parse(args.target, "--target")
        except ConfigError as exc:
            parser.error(str(exc))
    if not 0 <= args.margin < 1:
        parser.error(f"--margin must be in [0, 1), got {args.margin}")
    spec = backend_spec_or_exit(
        parser, args, lambda warning: console.print(f"[yellow]warning:[/] {escape(warning)}")
    )
    configs = []
    for name in names:
        try:
            config = scenario_config(name, args.horizon_s)
            configs.append(config if target is None else config.replace(latency_target=target))
        except ConfigError as exc:
            parser.error(str(exc))
    _check_out(parser, configs, args.out)
    command = recorded_command(argv, parser)

    what = "mean cost per request" if target is None else "feasible, attainment, quality, cost"
    table = Table(title=f"Tuned baselines ({what} on the training seeds)")
    for column in (
        "scenario",
        "agent",
        "cost/request" if target is None else "result",
        "candidates",
        "params",
    ):
        table.add_column(column)
    try:
        with spec.create() as backend:
            console.print(f"episodes on {backend.describe()}", markup=False)
            for config in configs:
                start = time.perf_counter()
                console.print(
                    f"[bold]{escape(config.name)}[/] (horizon {config.horizon_s:g} s, seeds {seeds})"
                )
                data = _tune_one(config, agents, seeds, backend, console, args.margin)
                data["command"] = command
                path = tuned_file(config, args.out)
                previous = read_tuned(path)
                if previous is not None and previous.fingerprint == config_fingerprint(config):
                    data["agents"] = {
                        **{k: v for k, v in previous.agents.items() if k not in data["agents"]},
                        **data["agents"],
                    }
                write_tuned(path, data)
                console.print(f"  wrote {path} ({time.perf_counter() - start:.1f} s)", markup=False)
                for agent, entry in data["agents"].items():
                    if agent not in agents:
                        continue
                    params = ", ".join(f"{k}={v}" for k, v in entry["params"].items())
                    if target is None:
                        result = f"{entry['cost_per_request']:.5f}"
                    else:
                        met = "meets" if entry["feasible"] else "misses"
                        result = (
                            f"{met}: {entry['attainment']:.4f}, q {entry['mean_quality']:.4f}, "
                            f"{entry['cost_per_request']:.5f}"
                        )
                    table.add_row(
                        escape(config.name), agent, result, str(entry["candidates"]), escape(params)
                    )
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: the scenarios written above are kept")
        return 130
    except TaskFailedError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 1
    console.print(table)
    return 0


def recorded_command(argv: list[str], parser: argparse.ArgumentParser) -> str:
    """The command a tuned file records ("Reproduce with:" and ``command:``): ``argv`` without the
    execution flags (``--jobs``, ``--backend``, ``--address``), which never change the results, so
    that re-tuning on another machine or with more workers rewrites no file."""
    kept = without_execution_flags(argv, parser)
    return f"{PROG} {shlex.join(kept)}" if kept else PROG


def _check_out(parser: argparse.ArgumentParser, configs: list[SystemConfig], out: Path) -> None:
    """A parser error (exit code 2) unless the tuned files of ``configs`` can be written in
    ``out`` (or its ``targets`` folder), which is created if needed: not a file, writable."""
    try:
        for folder in dict.fromkeys(tuned_file(config, out).parent for config in configs):
            check_writable_folder(folder, "--out", create=True)
    except (ConfigError, UsageError) as exc:
        parser.error(str(exc))


def _tune_one(
    config: SystemConfig,
    agents: list[str],
    seeds: list[int],
    backend: Backend,
    console: Console,
    margin: float,
) -> dict[str, Any]:
    """The content of one tuned file (without the command): the cost-minimising parameters, or
    with ``config.latency_target`` those of the best quality that meets it."""
    target = config.latency_target
    data: dict[str, Any] = {
        "scenario": config.name,
        "config_fingerprint": config_fingerprint(config),
        "command": "",
        "training_seeds": list(seeds),
        "horizon_s": config.horizon_s,
        "objective": "mean cost per request (best quality - score)",
    }
    if target is None:
        data["agents"] = tune_scenario(config, agents, seeds, backend, console.print)
        return data
    objective = TargetObjective(target, margin)
    runs = CandidateRuns(config, seeds, (target.bound_for(config.slo_ms),), backend)
    data["latency_target"] = target.short(config.slo_ms)
    data["objective"] = objective.describe(config.slo_ms)
    data["agents"] = tune_for_objective(runs, objective, agents, console.print)
    return data


if __name__ == "__main__":
    sys.exit(main())
