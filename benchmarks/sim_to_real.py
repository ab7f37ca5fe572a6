"""Sim-to-real fidelity: does the simulator, run on a timing table measured on this machine,
predict a real batching server's latency, and does each scheduler's rank hold?

Steps:

1. Calibrate (``serving.calibrate``, unless ``--calibration`` names a calibrated YAML): the three
   stand-in models' stage times -> a scenario with the measured timing table.
2. Scenarios: Poisson arrivals at ``--loads`` (fractions of the calibrated capacity, the largest
   sustainable throughput) and the Azure trace scaled to ``--trace-load``, all on the calibrated
   system, ``--horizon-s`` long.
3. Schedulers: greedy, the timeout baseline tuned in simulation on each scenario (grid search on
   the training seeds, as ``python -m apps.tune`` does), proposed, and ``--checkpoint``
   (skipped with its reason if it does not apply to the calibrated system).
4. For each scheduler a real server (``python -m serving.server``, one PyTorch thread) is started
   once per distinct agent, warmed up (model warm-up at start, then a discarded replay of
   ``--warmup-s`` s), and each scenario's seeds are replayed ``--repeats`` times open-loop on
   loopback; the same seeds are simulated with the same scheduler built for the same config.
5. Compare (``serving.fidelity``): mean and p99 latency, throughput, cost, model mix; goal
   |error| <= 10% for the mean and p99; scheduler ranks by cost per request and by mean latency.

Writes ``docs/results/sim_to_real.md``, ``.json`` next to it, the figures in
``docs/results/sim_to_real_figures/`` and the calibration in
``docs/results/sim_to_real_calibrated.yaml`` (+ ``.json``). The default settings take about
20 minutes on the 2-core machine; ``--preliminary`` labels a short run as such.

Usage::

    python benchmarks/sim_to_real.py                     # the full run (quiet machine)
    python benchmarks/sim_to_real.py --preliminary --horizon-s 6 --seeds 0 --repeats 1 \\
        --calibration-reps 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import AgentSpecError, make_agent
from batchenv.config import SystemConfig
from batchenv.fileio import json_safe, write_atomic, write_json_atomic
from batchenv.metrics import compute_metrics, request_table
from batchenv.scenarios import load_scenario
from batchenv.seeds import TRAINING_SEEDS, parse_seeds
from batchenv.sim import simulate
from batchenv.timing import ServiceTable
from evaluation.tuning import tune_scenario
from serving.calibrate import calibrate, yaml_text
from serving.connections import raise_open_files_limit
from serving.fidelity import GOAL, batch_service_check, compare_cell, kendall_tau, rank_agents
from serving.loadgen import run_episode
from serving.models import MODEL_SPECS
from serving.process import ServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results" / "sim_to_real.md"
WARMUP_SEED = 10_000  # the discarded warm-up replay's arrivals (never an evaluation seed)


@dataclass
class Cell:
    """One (scenario, agent): simulated metrics per seed, measured runs, pooled latencies (ms)."""

    scenario: str
    agent: str
    spec: str
    simulated: dict[int, dict[str, Any]] = field(default_factory=dict)
    measured: list[dict[str, Any]] = field(default_factory=list)
    sim_latency_ms: list[np.ndarray] = field(default_factory=list)
    real_latency_ms: list[np.ndarray] = field(default_factory=list)
    service_check: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Set-up: calibration, scenarios, agents
# --------------------------------------------------------------------------------------------


def calibrated_system(args: argparse.Namespace, command: str, out: Path) -> tuple[SystemConfig, Path]:
    """The calibrated config: read from ``--calibration``, or measured now and written next to
    the results."""
    if args.calibration is not None:
        return load_scenario(args.calibration), Path(args.calibration)
    path = out.with_name(f"{out.stem}_calibrated.yaml")
    print(f"calibrating ({args.calibration_reps} rounds) ...", flush=True)
    base = load_scenario("default")
    config, record = calibrate(
        base, MODEL_SPECS, reps=args.calibration_reps, warmup_reps=3, statistic=args.calibration_statistic
    )
    record = {"command": command, "base_scenario": "default", **record, "config": config.to_dict()}
    write_atomic(path, yaml_text(config, record, command + "  (its calibration step)", "default"))
    write_json_atomic(path.with_suffix(".json"), json_safe(record))
    return load_scenario(path), path


def make_scenarios(calibrated: SystemConfig, args: argparse.Namespace) -> dict[str, SystemConfig]:
    """The compared scenarios by name: Poisson at each load, the trace at its load."""
    capacity = ServiceTable(calibrated).max_throughput_per_s(calibrated.n_workers)
    base = calibrated.replace(horizon_s=args.horizon_s)
    scenarios = {}
    for load in args.loads:
        name = f"poisson_{round(100 * load)}pct"
        scenarios[name] = base.replace(name=name).at_rate(load * capacity)
    if args.trace_load > 0:
        trace = load_scenario("azure_trace").arrivals
        name = f"azure_trace_{round(100 * args.trace_load)}pct"
        scenarios[name] = base.replace(name=name, arrivals=trace).at_rate(args.trace_load * capacity)
    return scenarios


def tuned_timeout_spec(config: SystemConfig, tune_horizon_s: float) -> str:
    """The timeout baseline tuned in simulation on ``config`` (the grid of evaluation.tuning, on the
    training seeds), as an agent spec with every parameter given."""
    tuned = tune_scenario(config.replace(horizon_s=tune_horizon_s), agents=["timeout"], seeds=TRAINING_SEEDS)
    p = tuned["timeout"]["params"]
    return f"timeout(B={p['preferred_batch_size']},T={p['max_queue_delay_ms']:g},model={p['model']})"


def agent_specs(
    scenarios: dict[str, SystemConfig], args: argparse.Namespace, notes: list[str]
) -> dict[str, dict[str, str]]:
    """Per agent label, the spec used on each scenario."""
    specs: dict[str, dict[str, str]] = {"greedy": dict.fromkeys(scenarios, "greedy")}
    specs["timeout (tuned)"] = {}
    for name, config in scenarios.items():
        print(f"tuning timeout on {name} in simulation ...", flush=True)
        specs["timeout (tuned)"][name] = tuned_timeout_spec(config, args.tune_horizon_s)
    specs["proposed"] = dict.fromkeys(scenarios, "proposed")
    if args.checkpoint:
        first = next(iter(scenarios.values()))
        try:
            make_agent(args.checkpoint, first)
        except AgentSpecError as exc:
            notes.append(f"{args.checkpoint} is not compared: {exc}")
        else:
            specs[Path(args.checkpoint).stem] = dict.fromkeys(scenarios, args.checkpoint)
    return specs


# --------------------------------------------------------------------------------------------
# Running: simulated and measured
# --------------------------------------------------------------------------------------------


def server_groups(specs: dict[str, dict[str, str]]) -> list[tuple[str, str, list[str]]]:
    """(agent label, spec, scenarios) per server to start: one per distinct spec of an agent."""
    groups: list[tuple[str, str, list[str]]] = []
    for label, by_scenario in specs.items():
        for spec in dict.fromkeys(by_scenario.values()):
            groups.append((label, spec, [s for s, v in by_scenario.items() if v == spec]))
    return groups


def write_server_config(config: SystemConfig, folder: Path) -> Path:
    path = folder / f"{config.name}.yaml"
    write_atomic(path, config.to_yaml())
    return path


def simulate_group(
    cells: dict[tuple[str, str], Cell], scenarios: dict[str, SystemConfig], label: str, spec: str,
    names: list[str], server_config: SystemConfig, seeds: list[int],
) -> None:  # fmt: skip
    """Simulate every seed of ``names`` with the agent built for ``server_config`` (as the server
    builds it), on the same arrivals the server will get."""
    agent = make_agent(spec, server_config, tuned=False)
    for name in names:
        cell = cells[(name, label)]
        for seed in seeds:
            sim = simulate(scenarios[name], agent, seed)
            cell.simulated[seed] = compute_metrics(sim).to_dict()
            cell.sim_latency_ms.append(request_table(sim).latency_s * 1000.0)


def measure_group(
    cells: dict[tuple[str, str], Cell], scenarios: dict[str, SystemConfig], label: str, spec: str,
    names: list[str], server_config: SystemConfig, args: argparse.Namespace, folder: Path,
    loads: list[float],
) -> int:  # fmt: skip
    """Start a server for ``spec``, warm it up, replay every seed of ``names`` ``repeats`` times;
    returns the server's exit code after SIGTERM."""
    server_args = [
        "--scenario", str(write_server_config(server_config, folder)), "--agent", spec, "--no-tuned",
        "--torch-threads", "1", "--warmup-reps", "2",
    ]  # fmt: skip
    with ServerProcess(server_args, log_dir=folder) as server:
        first = scenarios[names[0]]
        asyncio.run(run_episode(server.url, first, WARMUP_SEED, min(args.warmup_s, first.horizon_s)))
        for name in names:
            cell = cells[(name, label)]
            for seed in args.seeds:
                for repeat in range(args.repeats):
                    loads.append(os.getloadavg()[0])
                    run = asyncio.run(run_episode(server.url, scenarios[name], seed, args.horizon_s))
                    metrics, client = run["metrics"], run["client"]
                    print(
                        f"  {name} {label} seed {seed} run {repeat}: mean {metrics.latency_mean_ms:.1f} ms "
                        f"(sim {cell.simulated[seed]['latency_mean_ms']:.1f}), "
                        f"p99 {metrics.latency_p99_ms:.1f} "
                        f"(sim {cell.simulated[seed]['latency_p99_ms']:.1f}); {client['n_sent']} sent, "
                        f"{client['n_unanswered']} unanswered; load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    cell.measured.append(
                        {"seed": seed, "repeat": repeat, "metrics": metrics.to_dict(), "client": client}
                    )
                    cell.real_latency_ms.append(run["latency_ms"])
                    cell.service_check.append(batch_service_check(server_config, run["answers"]))
        code = server.stop()
    return code


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.1f}%"


def _range(stats: dict[str, float], fmt: str = "{:.1f}") -> str:
    if not stats["n"]:
        return "n/a"
    return f"{fmt.format(stats['min'])}–{fmt.format(stats['max'])}"


def fidelity_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| scenario | agent | mean ms sim | mean ms real | err | p99 ms sim | p99 ms real | err | "
        "thr/s sim | thr/s real | err | cost sim | cost real | within 10% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        m = cell.comparison["metrics"]
        row = [cell.scenario, cell.agent]
        for key, fmt in (
            ("latency_mean_ms", "{:.1f}"),
            ("latency_p99_ms", "{:.1f}"),
            ("throughput_per_s", "{:.1f}"),
        ):
            row += [fmt.format(m[key]["simulated"]), fmt.format(m[key]["measured"]), _pct(m[key]["error"])]
        row += [f"{m['cost_per_request']['simulated']:.4f}", f"{m['cost_per_request']['measured']:.4f}"]
        row.append("yes" if cell.comparison["within_goal"] else "no")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def spread_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| scenario | agent | runs | mean ms real (range) | paired err of mean (range) "
        "| p99 ms real (range) | "
        "paired err of p99 (range) | repeat noise mean / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        m = cell.comparison["metrics"]
        mean, p99 = m["latency_mean_ms"], m["latency_p99_ms"]
        noise = f"{_pct(mean['repeat_noise'])} / {_pct(p99['repeat_noise'])}"
        lines.append(
            f"| {cell.scenario} | {cell.agent} | {len(cell.measured)} | {_range(mean['measured_spread'])} | "
            f"{_range(mean['paired_error'], '{:+.1%}')} | {_range(p99['measured_spread'])} | "
            f"{_range(p99['paired_error'], '{:+.1%}')} | {noise} |"
        )
    return lines


def mix_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| scenario | agent | model mix sim | model mix real | batch sim | batch real |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        mix = cell.comparison["model_mix"]
        sim = " ".join(f"{m} {100 * v['simulated']:.0f}%" for m, v in mix.items() if v["simulated"] >= 0.005)
        real = " ".join(f"{m} {100 * v['measured']:.0f}%" for m, v in mix.items() if v["measured"] >= 0.005)
        batch = cell.comparison["metrics"]["mean_batch_size"]
        lines.append(
            f"| {cell.scenario} | {cell.agent} | {sim} | {real} | {batch['simulated']:.1f} "
            f"| {batch['measured']:.1f} |"
        )
    return lines


def rank_table(
    cells: list[Cell], scenarios: list[str], metric: str
) -> tuple[list[str], list[dict[str, Any]]]:
    lines = [
        "| scenario | simulated order (best first) | measured order | holds | Kendall tau |",
        "|---|---|---|---|---|",
    ]
    records = []
    for name in scenarios:
        row = [c for c in cells if c.scenario == name]
        sim = rank_agents({c.agent: c.comparison["metrics"][metric]["simulated"] for c in row})
        real = rank_agents({c.agent: c.comparison["metrics"][metric]["measured"] for c in row})
        tau = kendall_tau(sim, real)
        records.append(
            {"scenario": name, "metric": metric, "simulated": sim, "measured": real, "kendall_tau": tau}
        )
        lines.append(
            f"| {name} | {' < '.join(sim)} | {' < '.join(real)} | {'yes' if sim == real else 'no'} "
            f"| {tau:.2f} |"
        )
    return lines, records


def service_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| scenario | agent | model | batches | measured mean ms | table mean ms | measured / table |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        pooled: dict[str, list[float]] = {}
        for check in cell.service_check:
            for model, row in check.items():
                acc = pooled.setdefault(model, [0, 0.0, 0.0])
                acc[0] += row["batches"]
                acc[1] += row["measured_mean_ms"] * row["batches"]
                acc[2] += row["table_mean_ms"] * row["batches"]
        for model, (n, measured, expected) in pooled.items():
            lines.append(
                f"| {cell.scenario} | {cell.agent} | {model} | {n} | {measured / n:.1f} "
                f"| {expected / n:.1f} | "
                f"{measured / expected:.3f} |"
            )
    return lines


def client_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| scenario | agent | sent | 429 | unanswered | reached the server after H | send lag p99 ms "
        "(max over runs) | HTTP overhead mean / p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        clients = [r["client"] for r in cell.measured]
        lines.append(
            f"| {cell.scenario} | {cell.agent} | {sum(c['n_sent'] for c in clients)} | "
            f"{sum(c['n_429'] for c in clients)} | {sum(c['n_unanswered'] for c in clients)} | "
            f"{sum(c['n_after_horizon'] for c in clients)} | "
            f"{max(c['send_lag_ms_p99'] for c in clients):.2f} | "
            f"{np.mean([c['http_overhead_ms_mean'] for c in clients]):.2f} / "
            f"{max(c['http_overhead_ms_p99'] for c in clients):.2f} |"
        )
    return lines


def plot_figures(cells: list[Cell], scenarios: list[str], figures: Path) -> list[str]:
    """Measured against simulated mean and p99 latency; latency CDFs per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(dict.fromkeys(c.agent for c in cells))
    colors = {a: plt.get_cmap("tab10")(i) for i, a in enumerate(agents)}
    markers = dict(zip(scenarios, "osD^vP*X", strict=False))
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, metric, title in (
        (axes[0], "latency_mean_ms", "mean latency (ms)"),
        (axes[1], "latency_p99_ms", "p99 latency (ms)"),
    ):
        values = []
        for cell in cells:
            m = cell.comparison["metrics"][metric]
            ax.scatter(
                m["simulated"], m["measured"], color=colors[cell.agent], marker=markers[cell.scenario], s=40
            )
            values += [m["simulated"], m["measured"]]
        finite = [v for v in values if math.isfinite(v) and v > 0]
        low, high = min(finite) / 1.5, max(finite) * 1.5
        grid = np.geomspace(low, high, 50)
        ax.plot(grid, grid, color="black", lw=1)
        ax.fill_between(grid, grid * (1 - GOAL), grid * (1 + GOAL), color="grey", alpha=0.25, label="±10%")
        ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), title=title)
        ax.set_xlabel("simulated (calibrated table)")
        ax.set_ylabel("measured on the server")
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[a], marker="o", ls="", label=a) for a in agents]
    handles += [plt.Line2D([], [], color="grey", marker=markers[s], ls="", label=s) for s in scenarios]
    axes[1].legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    names.append(_save(fig, figures / "sim_vs_real_latency.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.8), squeeze=False)
    for ax, name in zip(axes[0], scenarios, strict=True):
        for cell in (c for c in cells if c.scenario == name):
            for data, style in ((cell.sim_latency_ms, "--"), (cell.real_latency_ms, "-")):
                pooled = np.sort(np.concatenate(data)) if data else np.zeros(0)
                if pooled.size:
                    ax.plot(
                        pooled, np.arange(1, pooled.size + 1) / pooled.size, style, color=colors[cell.agent]
                    )
        ax.set(xscale="log", title=name, xlabel="latency (ms)", ylabel="fraction of requests")
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[a], label=a) for a in agents]
    handles += [
        plt.Line2D([], [], color="black", ls="--", label="simulated"),
        plt.Line2D([], [], color="black", label="measured"),
    ]
    axes[0][0].legend(handles=handles, fontsize=7)
    fig.tight_layout()
    names.append(_save(fig, figures / "latency_cdf.png"))
    plt.close(fig)
    return names


def _save(fig: Any, path: Path) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_atomic(path, buffer.getvalue())
    return path.name


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/sim_to_real.py",
        description="Simulated (calibrated timing table) against measured (real server) latency of "
        "greedy, the tuned timeout, proposed and a learned checkpoint (see the module docstring).",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        help="use this calibrated scenario YAML instead of calibrating (default: calibrate first, written "
        "next to --out as <stem>_calibrated.yaml)",
    )
    parser.add_argument(
        "--calibration-reps", type=int, default=20, help="measured calibration rounds (default: 20)"
    )
    parser.add_argument(
        "--calibration-statistic",
        choices=("mean", "median"),
        default="mean",
        help="table entry of a cell (default: mean)",
    )
    parser.add_argument(
        "--loads",
        default="0.3,0.6,0.9",
        help="Poisson loads, fractions of the calibrated capacity (default: 0.3,0.6,0.9)",
    )
    parser.add_argument(
        "--trace-load",
        type=float,
        default=0.6,
        help="load of the Azure trace scenario (0: none) (default: 0.6)",
    )
    parser.add_argument(
        "--seeds", default="0-1", help="evaluation seeds (arrivals), e.g. 0-3 or 0,2 (default: 0-1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="measured runs of each seed (noise estimate) (default: 2)"
    )
    parser.add_argument(
        "--horizon-s", type=float, default=12.0, help="seconds of arrivals per run (default: 12)"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=3.0, help="discarded warm-up replay per server (s) (default: 3)"
    )
    parser.add_argument(
        "--tune-horizon-s",
        type=float,
        default=30.0,
        help="episode length of the timeout tuning (s) (default: 30)",
    )
    parser.add_argument(
        "--checkpoint",
        default="checkpoints/ppo_default.zip",
        help="learned agent compared ('' for none) (default: checkpoints/ppo_default.zip)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Markdown file to write, with its .json and <stem>_figures/ next to it "
        "(default: docs/results/sim_to_real.md)",
    )
    parser.add_argument("--preliminary", action="store_true", help="label the results as preliminary")
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.loads = [float(x) for x in args.loads.split(",") if x.strip()]
        args.seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        parser.error(f"--loads/--seeds: {exc}")
    if not args.loads or not all(0 < x <= 1.5 for x in args.loads):
        parser.error(f"--loads must be fractions of the capacity in (0, 1.5], got {args.loads}")
    if not 0 <= args.trace_load <= 1.5:
        parser.error(f"--trace-load must be in [0, 1.5], got {args.trace_load}")
    if not 1 <= args.repeats <= 20:
        parser.error(f"--repeats must be in [1, 20], got {args.repeats}")
    if not 1 <= args.horizon_s <= 600:
        parser.error(f"--horizon-s must be in [1, 600] s, got {args.horizon_s}")
    if not 2 <= args.calibration_reps <= 1000:
        parser.error(f"--calibration-reps must be in [2, 1000], got {args.calibration_reps}")
    if not 0.5 <= args.warmup_s <= 60:
        parser.error(f"--warmup-s must be in [0.5, 60] s, got {args.warmup_s}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    command = "python benchmarks/sim_to_real.py" + (" " + shlex.join(argv) if argv else "")
    start = time.monotonic()
    raise_open_files_limit()
    out = Path(args.out)
    figures = out.with_name(out.stem + "_figures")
    work = Path(tempfile.mkdtemp(prefix="sim_to_real-"))  # the servers' configs and logs
    notes: list[str] = []
    calibrated, calibration_path = calibrated_system(args, command, out)
    capacity = ServiceTable(calibrated).max_throughput_per_s(calibrated.n_workers)
    scenarios = make_scenarios(calibrated, args)
    specs = agent_specs(scenarios, args, notes)
    cells = {
        (name, label): Cell(name, label, by_scenario[name])
        for label, by_scenario in specs.items()
        for name in scenarios
    }
    loads: list[float] = []
    exit_codes = {}
    for label, spec, names in server_groups(specs):
        server_config = scenarios[names[0]]
        print(f"{label} = {spec} on {', '.join(names)} (server config {server_config.name})", flush=True)
        simulate_group(cells, scenarios, label, spec, names, server_config, args.seeds)
        exit_codes[f"{label}: {spec}"] = measure_group(
            cells, scenarios, label, spec, names, server_config, args, work, loads
        )
    ordered = [cells[(name, label)] for name in scenarios for label in specs]
    for cell in ordered:
        cell.comparison = compare_cell(cell.simulated, cell.measured)
    elapsed = time.monotonic() - start
    write_report(
        args, command, out, figures, calibrated, calibration_path, capacity, scenarios, specs, ordered,
        loads, exit_codes, notes, elapsed,
    )  # fmt: skip
    print(f"wrote {out}, {out.with_suffix('.json')} and {figures}/ in {elapsed / 60:.1f} min")
    return 0 if all(code == 0 for code in exit_codes.values()) else 1


def write_report(
    args: argparse.Namespace, command: str, out: Path, figures: Path, calibrated: SystemConfig,
    calibration_path: Path, capacity: float, scenarios: dict[str, SystemConfig],
    specs: dict[str, dict[str, str]], cells: list[Cell], loads: list[float], exit_codes: dict[str, int],
    notes: list[str], elapsed_s: float,
) -> None:  # fmt: skip
    """Write the Markdown report, the JSON and the figures."""
    names = list(scenarios)
    figure_names = plot_figures(cells, names, figures)
    within = [c.comparison["within_goal"] for c in cells]
    mean_err = [abs(c.comparison["metrics"]["latency_mean_ms"]["error"]) for c in cells]
    p99_err = [abs(c.comparison["metrics"]["latency_p99_ms"]["error"]) for c in cells]
    cost_lines, cost_ranks = rank_table(cells, names, "cost_per_request")
    latency_lines, latency_ranks = rank_table(cells, names, "latency_mean_ms")
    table = ServiceTable(calibrated).service_ms
    sizes = [b for b in calibrated.timing.batch_sizes if b <= calibrated.max_batch_size]
    relative = (
        calibration_path.relative_to(REPO) if calibration_path.is_relative_to(REPO) else calibration_path
    )
    lines = [
        "# Sim-to-real: the simulator against a real batching server",
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    if args.preliminary:
        lines += [
            "> **Preliminary.** Measured with short settings on a shared machine while other jobs ran "
            f"(1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} on "
            f"{os.cpu_count()} CPUs), so the servers' timings are distorted. The final numbers come from "
            "`python benchmarks/sim_to_real.py` (default settings, about 20 minutes) on a quiet machine.",
            "",
        ]
    lines += [
        "## Set-up",
        "",
        f"- Calibrated system: `{relative}` (written by the calibration step; "
        "`python -m serving.calibrate` alone does the same). Service time (ms) = T_pre + T_comm(b) + "
        "T_inf(m, b) + T_post at batch sizes " + ", ".join(map(str, sizes)) + ":",
        "",
        "| model | " + " | ".join(f"b={b}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for m, model in enumerate(calibrated.model_names):
        lines.append(f"| {model} | " + " | ".join(f"{table[m, b]:.1f}" for b in sizes) + " |")
    lines += [
        "",
        f"- Capacity (largest sustainable throughput, LLM-3 at b = {calibrated.max_batch_size}): "
        f"{capacity:.1f} requests/s. Qualities are the default scenario's (a configuration choice).",
        "- Scenarios: "
        + "; ".join(
            f"{n}: {c.arrivals.process} at {c.arrivals.mean_rate_per_s:.1f} requests/s"
            for n, c in scenarios.items()
        )
        + f". Each run replays {args.horizon_s:g} s of arrivals of one seed "
        f"(seeds {', '.join(map(str, args.seeds))}), "
        f"{args.repeats} run(s) per seed; the simulator runs the same seeds (the same arrival times).",
        "- Schedulers (the timeout tuned in simulation per scenario on the training seeds "
        f"{TRAINING_SEEDS[0]}-{TRAINING_SEEDS[-1]}, {args.tune_horizon_s:g} s episodes):",
        "",
    ]
    for label, by_scenario in specs.items():
        text = (
            ", ".join(f"{n}: `{s}`" for n, s in by_scenario.items())
            if len(set(by_scenario.values())) > 1
            else f"`{next(iter(by_scenario.values()))}`"
        )
        lines.append(f"  - {label}: {text}")
    lines += [""] + [f"- {note}" for note in notes]
    lines += [
        "- Noise control: one PyTorch thread (intra- and inter-op) and OMP/MKL threads 1 in the server; "
        "the calibration's warm-up rounds and random cell order; each server warms every model at every "
        f"table batch size twice, then replays {args.warmup_s:g} s of a warm-up seed, discarded; repeated "
        "runs of each seed measure the run-to-run noise. Not pinned with taskset: on 2 CPUs the server's "
        "event loop and its inference thread would then share one CPU.",
        f"- Server exit codes after SIGTERM: {sorted(set(exit_codes.values()))}. "
        f"Wall time {elapsed_s / 60:.1f} min; "
        f"1-minute load average at the start of each run: {min(loads):.2f} to {max(loads):.2f}.",
        "",
        "## Fidelity",
        "",
        "Simulated = the simulator on the calibrated table; measured = the server's own times (arrival "
        "at the server to the batch's completion, the simulator's definition); err = (measured - "
        "simulated) / simulated of the means over runs; cost = best quality - score per request.",
        "",
        *fidelity_table(cells),
        "",
        f"Within 10% for both the mean and the p99: {sum(within)} of {len(within)} cells; median |error| "
        f"of the mean {100 * float(np.nanmedian(mean_err)):.1f}%, "
        f"of the p99 {100 * float(np.nanmedian(p99_err)):.1f}%.",
        "",
        "### Spreads",
        "",
        "Range over runs of the measured value and of the seed-paired error; repeat noise = mean over seeds "
        "of (max - min) / mean of the repeated runs of one seed (the server's run-to-run noise on identical "
        "arrivals).",
        "",
        *spread_table(cells),
        "",
        "### Model mix and batch size",
        "",
        *mix_table(cells),
        "",
        "## Do the ranks hold?",
        "",
        "By cost per request (the project's objective):",
        "",
        *cost_lines,
        "",
        "By mean latency:",
        "",
        *latency_lines,
        "",
        "## Why they differ: service times and the client",
        "",
        "The real batches' service time (dispatch to completion, as the event loop sees it) against the "
        "calibrated table for the same model and batch size:",
        "",
        *service_table(cells),
        "",
        "The load generator: how late requests were sent (send lag), and what HTTP adds to the "
        "server's latency as the client sees it (its end-to-end time minus the server's latency, per "
        "request):",
        "",
        *client_table(cells),
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{n}]({figures.name}/{n})" for n in figure_names]
    lines += [
        "",
        "## Scope",
        "",
        "One machine (2 CPUs, no GPU), stand-in encoders with random weights (real timing, meaningless "
        "outputs), one worker, loopback HTTP, the loads and seeds above. The simulator assumes a "
        "deterministic service time per (model, batch size); a real batch's time varies, and waiting "
        "grows with that variance (Pollaczek-Khinchine), so the measured tail is expected above the "
        "simulated one where queues form.",
        "",
    ]
    write_atomic(out, "\n".join(lines))
    data = {
        "command": command,
        "preliminary": args.preliminary,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_per_run": loads},
        "elapsed_s": elapsed_s,
        "goal_relative_error": GOAL,
        "calibration": str(relative),
        "calibrated_config": calibrated.to_dict(),
        "capacity_per_s": capacity,
        "settings": {
            "loads": args.loads,
            "trace_load": args.trace_load,
            "seeds": args.seeds,
            "repeats": args.repeats,
            "horizon_s": args.horizon_s,
            "warmup_s": args.warmup_s,
            "tune_horizon_s": args.tune_horizon_s,
        },
        "scenarios": {n: c.to_dict() for n, c in scenarios.items()},
        "agents": specs,
        "notes": notes,
        "server_exit_codes": exit_codes,
        "summary": {
            "cells": len(within),
            "cells_within_goal": int(sum(within)),
            "median_abs_error_mean": float(np.nanmedian(mean_err)),
            "median_abs_error_p99": float(np.nanmedian(p99_err)),
        },
        "ranks": cost_ranks + latency_ranks,
        "cells": [
            {
                "scenario": c.scenario,
                "agent": c.agent,
                "spec": c.spec,
                "comparison": c.comparison,
                "simulated_per_seed": {str(s): m for s, m in c.simulated.items()},
                "measured_runs": c.measured,
                "service_check": c.service_check,
            }
            for c in cells
        ],
    }
    write_json_atomic(out.with_suffix(".json"), json_safe(data))


if __name__ == "__main__":
    sys.exit(main())
