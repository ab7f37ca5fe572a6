"""Every agent on every trace scenario and rate, tuned on the first half of each trace and
evaluated on the second: ``docs/results/trace_results.md`` and ``.json``.

Agents: greedy, static, the timeout, util_switch and aimd tuned on ``<name>_train`` (seeds
1000-1003; timeout and util_switch from the same files as ``docs/results/robust.md``, aimd over
its model and batch latency objective), proposed, robust, the shipped PPO and DQN checkpoints and
the SMDP optimum where it applies (Poisson arrivals only, so never on a trace). Per agent and
scenario: cost per request, gap to the tuned timeout (the seed-paired gap of
``evaluation.stats.paired_gap``, 95% interval), gap to the hindsight bound of each episode
(``execution.hindsight_task``, as ``evaluate.py`` reports it), mean and p99 latency, SLO
attainment, quality, and the verdicts against the tuned timeout (*beats*: the 95% interval of
the paired difference lies below 0; *ties*: it contains 0; *loses*).

Usage::

    python benchmarks/trace_results.py                    # goal traces, 10 seeds, 60 s
    python benchmarks/trace_results.py --traces all --n-seeds 10
    python benchmarks/trace_results.py --scenario-path benchmarks/configs/external \
        --scenarios fineserve_dense,fineserve_dense_30,fineserve_dense_60,fineserve_dense_30_published \
        --out docs/results/external_traces.md --tuned-dir docs/results/external_traces/robust_tuned
    python benchmarks/trace_results.py --help
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.scenarios import load_scenario  # noqa: E402
from batchenv.seeds import TRAINING_SEEDS  # noqa: E402
from benchmarks.cli_parts import (  # noqa: E402
    add_scenario_path_argument,
    check_trace_files,
    chosen_trace_scenarios,
)
from benchmarks.proposed.common import display_path  # noqa: E402
from benchmarks.robust.common import ms, pct, trace_tasks, tuned_for, write_results  # noqa: E402
from benchmarks.robust.parts import GOAL_TRACES  # noqa: E402
from benchmarks.robust.trace_table import (  # noqa: E402
    AGENTS,
    agent_label,
    hindsight,
    run_cells,
    scenario_summary,
    tuned_aimd,
)
from execution.cli import add_execution_arguments, backend_spec_or_exit  # noqa: E402
from execution.outcome import TaskFailedError  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "trace_results.md"
ROBUST_TUNED = REPO / "docs" / "results" / "robust" / "tuned"
SEEDS_RANGE = (2, 1000)
"""Allowed number of evaluation seeds (``--n-seeds N``: seeds 0 .. N-1)."""
DEFAULT_SEEDS = 10

SEEDS_DEPRECATED = (
    "--seeds N is deprecated here: write --n-seeds N (seeds 0 .. N-1, as evaluate.py's --n-seeds; "
    "evaluate.py's --seeds takes a list or range instead)"
)
"""The warning of the old name of ``--n-seeds``, a count (still accepted)."""


def seed_count(parser: argparse.ArgumentParser, text: str, flag: str = "--n-seeds") -> int:
    """``--n-seeds`` (or its deprecated name ``flag`` = ``--seeds``): the number N of evaluation
    seeds (seeds 0 .. N-1), as evaluate.py's ``--n-seeds``. A list, a range or a number outside
    :data:`SEEDS_RANGE` is a usage error (``parser.error``, exit code 2) naming ``flag``."""
    low, high = SEEDS_RANGE
    try:
        count = int(text)
    except ValueError:
        first, _, last = text.partition("-")
        hint = ""
        if first == "0" and last.isdigit():
            hint = f"; for seeds 0-{last} write --n-seeds {int(last) + 1}"
        parser.error(f"{flag} is the number of evaluation seeds N (seeds 0 .. N-1), got {text!r}{hint}")
    if not low <= count <= high:
        parser.error(f"{flag} must be in [{low}, {high}] (the number of evaluation seeds), got {count}")
    return count


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/trace_results.py",
        description="Every agent on every trace scenario: tuned on the first half, evaluated on the "
        "second (see the module docstring).",
    )
    parser.add_argument(
        "--traces",
        choices=("goal", "all"),
        default="goal",
        help="goal: each trace at its native rate, 30%% and 60%% of capacity; all: every trace scenario "
        "(default: goal)",
    )
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated trace scenarios with a time split (overrides --traces), e.g. azure_trace_30 "
        "(default: those of --traces)",
    )
    add_scenario_path_argument(parser)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--n-seeds",
        default=None,
        metavar="N",
        help=f"the NUMBER of evaluation seeds: seeds 0 .. N-1, N in [{SEEDS_RANGE[0]}, {SEEDS_RANGE[1]}], "
        f"as evaluate.py's --n-seeds (--n-seeds 10 is seeds 0-9; default: {DEFAULT_SEEDS})",
    )
    seeds.add_argument(
        "--seeds",
        default=None,
        metavar="N",
        help="deprecated name of --n-seeds (a count here, unlike evaluate.py's --seeds); still accepted, "
        "with a warning",
    )
    parser.add_argument("--horizon-s", type=float, default=60.0, help="episode length (s) > 0 (default: 60)")
    parser.add_argument(
        "--agents",
        default=",".join(AGENTS),
        help=f"comma-separated, among {','.join(AGENTS)} (default: all of them)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"Markdown file to write (and .json) (default: {display_path(DEFAULT_OUT)})",
    )
    parser.add_argument(
        "--tuned-dir",
        type=Path,
        default=ROBUST_TUNED,
        help="tuned timeout and util_switch of the training halves, read or written there "
        f"(default: {display_path(ROBUST_TUNED)})",
    )
    add_execution_arguments(parser, default_jobs=2)
    args = parser.parse_args(argv)
    args.agent_list = [a.strip() for a in re.split(r",(?![^()]*\))", args.agents) if a.strip()]
    unknown = sorted(set(args.agent_list) - set(AGENTS))
    if unknown:
        parser.error(f"--agents: unknown agent {unknown[0]!r}; agents: {','.join(AGENTS)}")
    args.scenario_list, splits = chosen_trace_scenarios(parser, args)
    if not args.scenario_list:
        args.scenario_list = list(GOAL_TRACES) if args.traces == "goal" else splits
    if "timeout" not in args.agent_list:
        parser.error("--agents must include timeout (the reference)")
    if args.seeds is not None:
        print(f"warning: {SEEDS_DEPRECATED}", file=sys.stderr)
        args.n_seeds = seed_count(parser, args.seeds, "--seeds")
    else:
        args.n_seeds = DEFAULT_SEEDS if args.n_seeds is None else seed_count(parser, args.n_seeds)
    del args.seeds  # one name for the count from here on
    if not args.horizon_s > 0:
        parser.error(f"--horizon-s must be > 0 (s), got {args.horizon_s}")
    args.execution = backend_spec_or_exit(parser, args)
    check_trace_files(parser, args.scenario_list)
    return args


def cell(s: dict[str, Any], key: str, digits: int = 4) -> str:
    mean, half = s[key]
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def bound_sentence(bounds: Sequence[Any]) -> str:
    """How many of the scenario's episodes have a hindsight bound and on how many it is exact.
    The gap vs hindsight is over the seeds with a bound (``evaluation.stats.paired_gap`` leaves
    the others out, as ``evaluate.py`` does): their number is stated when it is not every seed."""
    exact = sum(b.exact for b in bounds if b.status == "ok")
    has = [b.status == "ok" and math.isfinite(b.lower_cost_per_request) for b in bounds]
    if all(has):
        return f"Hindsight bound: exact on {exact} of {len(bounds)} episodes (a lower bound on the others)."
    reasons = sorted(
        {b.reason if b.status != "ok" else "no arrival" for b, ok in zip(bounds, has, strict=True) if not ok}
    )
    bounded = [b for b, ok in zip(bounds, has, strict=True) if ok]
    return (
        f"Hindsight bound on {len(bounded)} of {len(bounds)} episodes, the seeds the gap vs hindsight "
        f"covers (none on the others: {'; '.join(reasons)}); exact on {sum(b.exact for b in bounded)} of "
        "them (a lower bound "
        "on the others)."
    )


def scenario_lines(name: str, tuned: dict[str, dict], summaries: dict[str, dict], bounds: list) -> list[str]:
    config = load_scenario(f"{name}_test")
    params = ", ".join(f"{k}={v}" for k, v in tuned["timeout"]["params"].items())
    lines = [
        f"### {name}_test ({config.arrivals.rate_per_s:g}/s; tuned timeout: {params})",
        "",
        bound_sentence(bounds),
        "",
        "| agent | cost/req | gap vs timeout | gap vs hindsight | mean ms | p99 ms | p99 - timeout (ms) "
        "| SLO | quality | verdict (cost, p99) |",
        "|" + "---|" * 10,
    ]
    for spec, s in summaries.items():
        if "not_applicable" in s:
            lines.append(
                f"| {spec} | n/a | | | | | | | | not applicable: {s['not_applicable'].split(';')[0]} |"
            )
            continue
        lines.append(
            f"| {spec} | {cell(s, 'cost')} | {pct(s['gap_vs_timeout'])} | {pct(s['gap_vs_hindsight'])} "
            f"| {s['mean_ms'][0]:.1f} | {s['p99_ms'][0]:.1f} | {ms(s['p99_minus_timeout_ms'])} "
            f"| {s['slo'][0]:.3f} | {s['quality'][0]:.4f} | {s['verdict_cost']}, {s['verdict_p99']} |"
        )
    return [*lines, ""]


def overview_lines(names: Sequence[str], agents: Sequence[str], data: dict[str, Any]) -> list[str]:
    lines = [
        "## Overview: gap to the tuned timeout (cost; p99 difference in ms) and verdicts",
        "",
        "| scenario | " + " | ".join(agents) + " |",
        "|---|" + "---|" * len(agents),
    ]
    for name in names:
        cells = []
        for spec in agents:
            s = data[name]["agents"][spec]
            if "not_applicable" in s:
                cells.append("n/a")
                continue
            cost, d99 = s["gap_vs_timeout"][0], s["p99_minus_timeout_ms"][0]
            cells.append(f"{100 * cost:+.2f}%; {d99:+.1f} ms ({s['verdict_cost']}, {s['verdict_p99']})")
        label = f"**{name}**" if name in GOAL_TRACES else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def run_episodes(args: argparse.Namespace, command: str, aimd_dir: Path) -> tuple[dict, dict, dict]:
    """Tune on the training halves, then run every agent and the hindsight bounds on the test
    halves; returns the tuned parameters, the episode rows and the bounds, by scenario.

    :raises execution.outcome.TaskFailedError: a task failed (its message says why).
    """
    names, agents, seeds = args.scenario_list, args.agent_list, list(range(args.n_seeds))
    with args.execution.create() as backend:
        print(f"episodes on {backend.describe()}", flush=True)
        tuned: dict[str, dict[str, dict]] = {}
        for name in names:
            train = load_scenario(f"{name}_train")
            tuned[name] = dict(tuned_for(train, Path(args.tuned_dir), backend, command))
            if "aimd" in agents:
                tuned[name]["aimd"] = tuned_aimd(train, aimd_dir, backend, command)
        tasks = trace_tasks(names, [agent_label(spec) for spec in agents], seeds, tuned, args.horizon_s)
        print(f"{len(tasks)} episodes", flush=True)
        flat = iter(run_cells(backend, tasks))
        rows = {name: {spec: [next(flat) for _ in seeds] for spec in agents} for name in names}
        print(f"hindsight bounds of {len(names) * len(seeds)} episodes", flush=True)
        bounds = hindsight(backend, [f"{name}_test" for name in names], seeds, args.horizon_s)
    return tuned, rows, bounds


def main(argv: Sequence[str] | None = None) -> int:
    """Run what the command line ``argv`` (default ``sys.argv[1:]``) asks for; returns the exit
    code: 0, 1 if a task failed (one line saying why, as ``python -m apps.tune``), 2 for a bad
    command line (including a missing trace file, as ``evaluate.py``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = "python benchmarks/trace_results.py" + (" " + shlex.join(argv) if argv else "")
    names = args.scenario_list
    seeds = list(range(args.n_seeds))
    agents = args.agent_list
    aimd_dir = Path(args.out).with_suffix("") / "tuned"
    try:
        tuned, rows, bounds = run_episodes(args, command, aimd_dir)
    except TaskFailedError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    data: dict[str, Any] = {
        "command": command,
        "settings": {"traces": args.traces, "seeds": seeds, "horizon_s": args.horizon_s, "agents": agents},
    }
    for name in names:
        test_bounds = bounds[f"{name}_test"]
        data[name] = {
            "tuned": {
                a: tuned[name][a]["params"] for a in ("timeout", "util_switch", "aimd") if a in tuned[name]
            },
            "hindsight_exact": [b.exact for b in test_bounds],
            "agents": scenario_summary(rows[name], test_bounds),
        }
    lines = [
        "# Every agent on every trace: tuned on the first half, evaluated on the second",
        "",
        f"Produced by `{command}`.",
        "",
        f"Scenarios: {', '.join(f'`{n}_test`' for n in names)}; seeds {seeds[0]}-{seeds[-1]}, "
        f"{args.horizon_s:g} s each, every agent on the same arrivals per seed. timeout and util_switch "
        f"tuned on `<name>_train` (seeds {TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, files in "
        f"`{display_path(Path(args.tuned_dir))}/`), aimd tuned there over its model and batch latency "
        f"objective (`{display_path(aimd_dir)}/`); greedy and static with their defaults; proposed and "
        "robust have no parameter tuned per trace; ppo_default and dqn_default are the shipped "
        "checkpoints trained on default_randomised, ppo_default_mixture and dqn_default_mixture those "
        "trained on the workload mixture (`checkpoints/`, docs/rl.md); optimal needs Poisson arrivals "
        "and does not apply to a trace. "
        "Gap vs timeout: relative difference of the mean cost to the tuned timeout's, 95% interval "
        "from the seed-paired differences (`evaluation.stats.paired_gap`); gap vs hindsight: the same "
        "to the hindsight lower bound of each episode (`execution/hindsight_task.py`, as `evaluate.py` "
        "reports it), over the seeds that have one (each section says how many when not all). "
        "Verdicts against the tuned timeout: *beats* (95% interval below 0), *ties* "
        "(it contains 0), *loses*; goal scenarios in bold. cost/req = best quality - score per "
        "request; latencies in ms; SLO = fraction of requests within `slo_ms`.",
        "",
        *overview_lines(names, agents, data),
        "## Per scenario",
        "",
    ]
    for name in names:
        lines += scenario_lines(name, tuned[name], data[name]["agents"], bounds[f"{name}_test"])
    out = Path(args.out)
    write_results(out, lines, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
