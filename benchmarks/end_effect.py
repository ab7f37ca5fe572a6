"""How much the end of an episode moves the cost per request and the gaps between agents:
``docs/results/end_effect.md`` and ``.json``.

An episode stops at its horizon H; a request still queued then is charged best quality + ``w``
x its wait so far (about 1, against a few hundredths for a served request: docs/design.md, "The
end of an episode"), a term the long-run (SMDP) objective does not have. Per scenario, agent and
seed this script measures the cost per request

- *reported*: as ``evaluate.py`` reports it (``batchenv.sim.simulate``, then
  ``batchenv.metrics.compute_metrics``, the agent built by ``agents.registry.make_agent`` with
  the tuned parameters, as ``execution.episode`` builds it for ``evaluate.py``);
- *drained*: the same arrivals before H (``batchenv.sim.episode_arrivals_s``), none after, and
  the episode continued until every request is served: the agent keeps deciding, and the
  ``max_wait_ms`` shield (finite in every scenario) forces a dispatch at the latest when the
  oldest request has waited that long. The simulator's horizon is H + D with D =
  :func:`drain_bound_s`, longer than any drain can take; the run stops as soon as the queue is
  empty after H (a batch still running then was charged in full at its dispatch).

Every drained episode is checked against its reported one: the same arrivals, the same drops,
the same batches dispatched before H (same times, models, sizes), every request served at the
end; and where nothing was queued at H, exactly the reported cost. Gaps are to the optimum where
it applies, else to the tuned timeout (``evaluate.py``'s ``--reference auto``), paired by seed
(``evaluation.stats.paired_gap``).

Usage::

    python benchmarks/end_effect.py --jobs 2      # writes docs/results/end_effect.md and .json
    python benchmarks/end_effect.py --scenarios high_load --agents optimal,timeout --seeds 0-4 \\
        --out /tmp/end_effect.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.registry import NotApplicableError, make_agent, parse_agent_spec, split_specs  # noqa: E402
from batchenv.config import ConfigError, SystemConfig  # noqa: E402
from batchenv.fileio import json_safe, write_files_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.scenarios import scenario_config  # noqa: E402
from batchenv.seeds import TRAINING_SEEDS, parse_seeds  # noqa: E402
from batchenv.sim import Simulator, episode_arrivals_s, simulate  # noqa: E402
from batchenv.timing import ServiceTable  # noqa: E402
from benchmarks.proposed.common import display_path  # noqa: E402
from evaluation.stats import mean_ci95, paired_gap  # noqa: E402
from execution.cli import add_execution_arguments, backend_spec_or_exit  # noqa: E402
from execution.outcome import TaskFailedError  # noqa: E402
from execution.run import run_tasks  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "end_effect.md"
SCENARIOS = (
    "poisson_05",
    "poisson_25",
    "poisson_50",
    "poisson_75",
    "poisson_95",
    "default",
    "high_load",
    "azure_trace_30_test",
    "azure_trace_60_test",
)
"""The one-worker Poisson scenarios of the suite and two trace halves (default scope)."""
AGENTS = ("optimal", "timeout", "util_switch", "proposed", "robust")
REFERENCES = ("optimal", "timeout")
"""The gap reference of a scenario: the first of these that applies (``--reference auto``)."""


def drain_bound_s(config: SystemConfig) -> float:
    """A time after the horizon by which every request queued at it has been dispatched, for any
    agent: the batch running at the horizon ends within the longest service time, and after it
    each dispatch (of at least one request) follows within ``max_wait_ms`` (the shield) and
    takes at most the longest service time; at most ``queue_capacity`` requests wait."""
    longest = max(max(row) for row in ServiceTable(config).service_s)
    return longest + config.queue_capacity * (config.max_wait_ms / 1000.0 + longest)


def _arrival_stream(arrivals_s: np.ndarray) -> Iterator[np.ndarray]:
    """The episode's arrivals, then none: an endless chunk of +inf."""
    return itertools.chain([arrivals_s], itertools.repeat(np.array([math.inf])))


def drained_episode(config: SystemConfig, agent: Any, seed: int, reported: Simulator) -> Simulator:
    """The episode (``config``, ``seed``) of ``agent`` on the arrivals before the horizon only,
    run until every request is served (module docstring). ``reported`` is the finished
    reported episode: its arrival process is reused, and its rate and SLO objective are given to
    the drained one (an explicit arrival stream has neither; ``optimal`` reads the rate)."""
    horizon = config.horizon_s
    arrivals = episode_arrivals_s(config, seed, horizon, arrival_process=reported.arrival_process)
    sim = Simulator(config, record=True, arrival_process=reported.arrival_process)
    sim.reset(arrivals=_arrival_stream(arrivals), horizon_s=horizon + drain_bound_s(config))
    sim.episode_rate_per_s = reported.episode_rate_per_s
    sim.slo_s, sim.w_slo = reported.slo_s, reported.w_slo
    reset = getattr(agent, "reset", None)
    if callable(reset):
        reset(sim)
    sim.run(agent)
    return sim


def check_drained(reported: Simulator, drained: Simulator, label: str) -> None:
    """Raise AssertionError unless ``drained`` is ``reported`` continued past the horizon: the
    same arrivals and drops, the same batches before the horizon, nothing dispatched before it
    afterwards, and every request served (none queued at the end)."""
    horizon = reported.horizon_s
    n = len(reported.batches)
    if drained.n_arrived != reported.n_arrived or drained.n_dropped != reported.n_dropped:
        raise AssertionError(f"{label}: drained arrivals or drops differ from the reported episode's")
    if drained.batches[:n] != reported.batches or any(b.dispatch_s < horizon for b in drained.batches[n:]):
        raise AssertionError(f"{label}: the drained episode's batches before the horizon differ")
    if drained.queue_len or drained.n_served + drained.n_dropped != drained.n_arrived:
        raise AssertionError(
            f"{label}: {drained.queue_len} requests still queued at the end of the drained run"
        )


def episode_row(config: SystemConfig, agent: Any, seed: int, label: str) -> dict[str, Any]:
    """One seed: the reported and the drained cost per request and what was left at the horizon."""
    reported = simulate(config, agent, seed, sim=Simulator(config, record=True))
    metrics = compute_metrics(reported)
    drained = drained_episode(config, agent, seed, reported)
    check_drained(reported, drained, f"{label}, seed {seed}")
    cost = compute_metrics(drained).cost_per_request
    if reported.queue_len == 0 and cost != metrics.cost_per_request:
        raise AssertionError(f"{label}, seed {seed}: nothing queued at the horizon, yet the costs differ")
    last_end = max((b.dispatch_s + b.service_s for b in drained.batches), default=0.0)
    return {
        "seed": seed,
        "n_arrived": metrics.n_arrived,
        "queued_at_horizon": metrics.n_waiting,
        "in_service_at_horizon": reported.n_in_service,
        "cost_reported": metrics.cost_per_request,
        "cost_drained": cost,
        "forced_after_horizon": drained.n_forced - reported.n_forced,
        "drain_s": max(0.0, last_end - reported.horizon_s),
    }


def run_cell(scenario: str, spec: str, seeds: Sequence[int], horizon_s: float | None) -> dict[str, Any]:
    """Every seed of one agent on one scenario (a task): the agent is built once, as
    ``execution.episode`` builds it for ``evaluate.py``, and reset at the start of each episode."""
    config = scenario_config(scenario, horizon_s)
    try:
        agent = make_agent(parse_agent_spec(spec), config, tuned=True, scenario_spec=scenario)
    except NotApplicableError as exc:
        return {"status": "not_applicable", "reason": str(exc)}
    label = f"{spec} on {scenario}"
    return {
        "status": "ok",
        "describe": agent.describe(),
        "params_source": getattr(agent, "params_source", "defaults"),
        "rows": [episode_row(config, agent, seed, label) for seed in seeds],
    }


def summarise(cells: dict[str, dict[str, Any]], agents: Sequence[str]) -> dict[str, Any]:
    """Per agent of one scenario: mean costs, gaps to the reference, fraction queued at H."""
    reference = next((r for r in REFERENCES if r in cells and cells[r]["status"] == "ok"), None)
    out: dict[str, Any] = {"reference": reference, "agents": {}}
    for spec in agents:
        cell = cells[spec]
        if cell["status"] != "ok":
            out["agents"][spec] = {"status": cell["status"], "reason": cell["reason"]}
            continue
        rows = cell["rows"]
        summary: dict[str, Any] = {
            "status": "ok",
            "describe": cell["describe"],
            "params_source": cell["params_source"],
            "cost_reported": mean_ci95([r["cost_reported"] for r in rows]),
            "cost_drained": mean_ci95([r["cost_drained"] for r in rows]),
            "queued_fraction": float(np.mean([r["queued_at_horizon"] / r["n_arrived"] for r in rows])),
            "drain_s_max": max(r["drain_s"] for r in rows),
            "forced_after_horizon": float(np.mean([r["forced_after_horizon"] for r in rows])),
        }
        if reference is not None:
            ref_rows = cells[reference]["rows"]
            for kind in ("reported", "drained"):
                summary[f"gap_{kind}"] = paired_gap(
                    [r[f"cost_{kind}"] for r in rows], [r[f"cost_{kind}"] for r in ref_rows]
                )
            summary["gap_change_points"] = 100.0 * (summary["gap_drained"][0] - summary["gap_reported"][0])
        summary["rows"] = rows
        out["agents"][spec] = summary
    return out


def largest_changes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per gap reference (``optimal``, ``timeout``): the largest change of a gap to it, in
    percentage points (by size), between reported and drained, and where."""
    best: dict[str, dict[str, Any]] = {}
    for name, scenario in data.items():
        reference = scenario["reference"]
        for spec, s in scenario["agents"].items():
            if spec == reference or "gap_change_points" not in s:
                continue
            if reference not in best or abs(s["gap_change_points"]) > abs(best[reference]["points"]):
                best[reference] = {
                    "scenario": name,
                    "agent": spec,
                    "points": s["gap_change_points"],
                    "gap_reported": s["gap_reported"][0],
                    "gap_drained": s["gap_drained"][0],
                }
    return best


def seeds_text(seeds: Sequence[int]) -> str:
    return (
        f"{seeds[0]}-{seeds[-1]}"
        if list(seeds) == list(range(seeds[0], seeds[-1] + 1))
        else ",".join(map(str, seeds))
    )


def pct(mean_half: tuple[float, float]) -> str:
    return f"{100 * mean_half[0]:+.3f}% ± {100 * mean_half[1]:.3f}%"


def markdown(result: dict[str, Any]) -> str:
    settings = result["settings"]
    horizons = sorted(set(settings["horizon_s"].values()))
    horizon = " or ".join(f"{h:g} s" for h in horizons)
    lines = [
        "# The end of an episode: reported against drained cost per request",
        "",
        f"Produced by `{result['command']}`.",
        "",
        f"Scope: scenarios {', '.join(f'`{s}`' for s in settings['scenarios'])}; agents "
        f"{', '.join(settings['agents'])}; seeds {settings['seeds']}; horizon H = each scenario's "
        f"`horizon_s` ({horizon}). Agents built as `evaluate.py` builds them (`agents.registry.make_agent`; "
        "timeout and util_switch with their tuned files in `agents/tuned/`, a trace's `_test` half with "
        "its `_train` file).",
        "",
        "*Reported*: the cost per request as `evaluate.py` reports it: the episode stops at H and a "
        "request still queued then costs best quality + `w_latency_per_s` x its wait (docs/design.md, "
        "'The end of an episode'). *Drained*: the same arrivals before H, none after, and the episode "
        "run on until every request is served (the agent keeps deciding; the `max_wait_ms` shield "
        "forces a dispatch at the latest after that wait, so every scenario drains; the simulator's "
        f"horizon is H + D, D = `drain_bound_s` = {settings['drain_bound_s_max']:g} s at most, a bound no "
        "drain reaches). Both "
        "count the requests that arrived before H, and each drained episode was checked to be the "
        "reported one continued: the same batches before H, every request served, and exactly the "
        "reported cost where nothing was queued at H. Gap: to the optimum where it applies, else to the "
        "tuned timeout, seed-paired with its 95% interval (`evaluation.stats.paired_gap`); change = "
        "drained gap - reported gap, in percentage points. Queued at H: the mean over seeds of the "
        "fraction of the arrivals still queued at H (`evaluate.py`'s 'queued at end'). Drain: the "
        "longest time after H until the last batch ends.",
        "",
    ]
    for reference, best in result["largest_change"].items():
        lines += [
            f"Largest change of a gap to {reference}: **{best['points']:+.3f} points**, {best['agent']} on "
            f"`{best['scenario']}` ({100 * best['gap_reported']:+.3f}% reported, "
            f"{100 * best['gap_drained']:+.3f}% drained).",
            "",
        ]
    lines += [
        "| scenario | agent | cost/req reported | cost/req drained | gap reported | gap drained "
        "| change (points) | queued at H | drain (s) |",
        "|" + "---|" * 9,
    ]
    for name, scenario in result["scenarios"].items():
        for spec, s in scenario["agents"].items():
            if s["status"] != "ok":
                lines.append(f"| `{name}` | {spec} | n/a | | | | | | {s['reason'].split(':')[0]} |")
                continue
            ref = spec == scenario["reference"]
            gaps = (
                ("reference", "reference", "")
                if ref
                else (pct(s["gap_reported"]), pct(s["gap_drained"]), f"{s['gap_change_points']:+.3f}")
                if "gap_reported" in s
                else ("", "", "")
            )
            lines.append(
                f"| `{name}` | {spec} | {s['cost_reported'][0]:.5f} ± {s['cost_reported'][1]:.5f} "
                f"| {s['cost_drained'][0]:.5f} ± {s['cost_drained'][1]:.5f} "
                f"| {gaps[0]} | {gaps[1]} | {gaps[2]} "
                f"| {100 * s['queued_fraction']:.3f}% | {s['drain_s_max']:.3f} |"
            )
    lines += ["", f"Run time: {result['elapsed_s']:.0f} s on {result['backend']}.", ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/end_effect.py",
        description="The cost per request as evaluate.py reports it (episodes stop at the horizon) "
        "against drained (the same arrivals, run on until every request is served), and the gaps to "
        "the optimum (see the module docstring).",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenario names or YAML paths (default: the one-worker Poisson scenarios "
        "of the suite and azure_trace_30_test, azure_trace_60_test)",
    )
    parser.add_argument(
        "--agents",
        default=",".join(AGENTS),
        help="comma-separated agent specs as in evaluate.py; the gap reference is optimal where it "
        f"applies, else timeout (default: {','.join(AGENTS)})",
    )
    parser.add_argument(
        "--seeds",
        default="0-9",
        help=f"evaluation seeds, e.g. 0-9 or 0,3,7 (ranges inclusive), below {TRAINING_SEEDS[0]} "
        "(default: 0-9)",
    )
    parser.add_argument(
        "--horizon-s",
        type=float,
        default=None,
        help="episode length H (s) > 0 (default: each scenario's horizon_s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"Markdown file to write, and its .json next to it (default: {display_path(DEFAULT_OUT)})",
    )
    add_execution_arguments(parser, default_jobs=1)
    args = parser.parse_args(argv)
    try:
        args.seed_list = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--seeds: {exc}")
    if max(args.seed_list) >= TRAINING_SEEDS[0]:
        parser.error(f"--seeds must stay below {TRAINING_SEEDS[0]} (the tuning seeds)")
    if args.horizon_s is not None and not (math.isfinite(args.horizon_s) and args.horizon_s > 0):
        parser.error(f"--horizon-s must be > 0 (s), got {args.horizon_s}")
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.agent_list = split_specs(args.agents)
    if not args.scenario_list or not args.agent_list:
        parser.error("--scenarios and --agents must each name at least one")
    for name in args.scenario_list:
        try:
            scenario_config(name, args.horizon_s)
        except (ConfigError, OSError, ValueError) as exc:
            parser.error(f"scenario {name!r}: {exc}")
    for spec in args.agent_list:
        try:
            parse_agent_spec(spec)
        except ValueError as exc:
            parser.error(f"--agents: {exc}")
    args.execution = backend_spec_or_exit(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); exit code 0, 1 if a task failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = "python benchmarks/end_effect.py" + (" " + shlex.join(argv) if argv else "")
    names, agents, seeds = args.scenario_list, args.agent_list, args.seed_list
    tasks = [(name, spec, tuple(seeds), args.horizon_s) for name in names for spec in agents]
    start = time.perf_counter()
    with args.execution.create() as backend:
        backend_text = backend.describe()
        print(f"{len(tasks)} cells x {len(seeds)} seeds on {backend_text}", flush=True)
        outcomes = run_tasks(backend, run_cell, tasks, description="cells")
    try:
        values = [outcome.unwrap() for outcome in outcomes]
    except TaskFailedError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    cells = iter(values)
    per_scenario = {name: {spec: next(cells) for spec in agents} for name in names}
    configs = {name: scenario_config(name, args.horizon_s) for name in names}
    data = {name: summarise(per_scenario[name], agents) for name in names}
    result = {
        "command": command,
        "settings": {
            "scenarios": names,
            "agents": agents,
            "seeds": seeds_text(seeds),
            "horizon_s": {name: config.horizon_s for name, config in configs.items()},
            "drain_bound_s": {name: drain_bound_s(config) for name, config in configs.items()},
            "drain_bound_s_max": max(drain_bound_s(config) for config in configs.values()),
        },
        "elapsed_s": elapsed,
        "backend": backend_text,
        "largest_change": largest_changes(data),
        "scenarios": data,
    }
    out = Path(args.out)
    write_files_atomic(
        {
            out: markdown(result),
            out.with_suffix(".json"): json.dumps(json_safe(result), indent=1) + "\n",
        }
    )
    print(markdown(result))
    print(f"wrote {display_path(out)} and {display_path(out.with_suffix('.json'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
