"""Measurements of the proposed scheduler (agents/proposed.py) that ``evaluate.py`` does not make:
every number and figure of docs/algorithm.md besides the scenario-suite tables comes from here.

Parts (``--parts``, comma-separated; default all):

- ``gap``: cost gap to the exact optimum on stationary Poisson loads, with common random numbers
  (the same arrivals for every agent), paired by seed: mean and 95% confidence interval of
  (cost_agent - cost_optimal) / cost_optimal, for the proposed scheduler, its "no rate
  estimation" ablation and the tuned timeout and util_switch baselines.
- ``tracking``: the rate estimator after steps of the arrival rate (synthetic Poisson steps,
  many seeds) and on the diurnal and bursty scenarios (figure).
- ``table``: the precomputed table (model and batch by rate and queue length, one and two
  workers; figure), its build time and size.
- ``speed``: simulated requests and decisions per second, proposed vs timeout vs optimal.
- ``sensitivity``: exact cost (SMDP policy evaluation, no simulation) of using the table row of
  a wrong rate: the one-worker optimal policy for ``f * rate`` run at ``rate``.
- ``oracle``: the bursty load regenerated with its phases known (a two-phase MMPP with the
  parameters of ``bursty.yaml``): the proposed scheduler against the same table driven by the
  true phase rate (an oracle) and the tuned baselines.
- ``workers``: several workers: the staggered-workers table against the one-worker table at the
  per-worker rate (``worker_model="share"``).
- ``design``: the design choices of docs/algorithm.md on the *training* seeds 1000-1015 (the
  seeds the parameters were chosen on): estimator and timer variants against the defaults.
- ``slo``: the ``azure_trace_slo`` scenario (80 ms SLO, w_slo = 0.2), with the timeout and
  util_switch baselines tuned for it on training seeds (written to
  ``<out stem>/tuned/azure_trace_slo.yaml``, as ``python -m apps.tune`` would), and the
  proposed scheduler with and without its SLO guard.

Usage::

    python benchmarks/proposed_eval.py                       # all parts, 2 processes
    python benchmarks/proposed_eval.py --parts gap --seeds 40 --horizon-s 300
    python benchmarks/proposed_eval.py --help

It writes ``docs/results/proposed_benchmarks.md`` (Markdown tables), ``.json`` next to it and the
figures into ``docs/results/proposed_benchmarks_figures/``, and prints where.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from agents import optimal, proposed
from agents.proposed import Proposed, RateEstimator, build_policy_table
from agents.registry import make_agent, run_episode
from agents.tuned_params import config_fingerprint, load_tuned, write_tuned
from batchenv.arrivals import DiurnalArrivals, make_arrival_process
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario, scenario_config
from batchenv.seeds import TRAINING_SEEDS
from batchenv.sim import Simulator, simulate
from evaluation.stats import mean_ci95
from evaluation.tuning import tune_scenario
from execution.backends import LocalBackend

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results" / "proposed_benchmarks.md"
PARTS = ("gap", "sensitivity", "tracking", "oracle", "table", "workers", "speed", "slo", "design")
DEFAULT_PARTS = PARTS[:-1]
DESIGN_SCENARIOS = (
    "default",
    "poisson_50",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_high",
    "multi_gpu",
)
DESIGN_VARIANTS = (
    ("defaults", "proposed"),
    ("z = 2", "proposed(estimator={z: 2})"),
    ("z = 4", "proposed(estimator={z: 4})"),
    ("drops restart too", "proposed(estimator={detect_drops: true})"),
    ("no CUSUM", "proposed(estimator={cusum_threshold: 1.0e+9})"),
    ("h = 7", "proposed(estimator={cusum_threshold: 7})"),
    ("h = 14", "proposed(estimator={cusum_threshold: 14})"),
    ("r = 2", "proposed(estimator={cusum_ratio: 2})"),
    ("no timer (patience inf)", "proposed(patience=.inf)"),
    ("patience 1", "proposed(patience=1)"),
    ("whole-queue batches", "proposed(action_set=whole)"),
)
GAP_SCENARIOS = ("poisson_05", "poisson_25", "default", "poisson_50", "poisson_75", "poisson_95", "high_load")
GAP_AGENTS = ("optimal", "proposed", "proposed(rate_estimation=false)", "timeout", "util_switch")
SLO_SCENARIO = "azure_trace_slo"
SLO_AGENTS = (
    "greedy",
    "timeout",
    "aimd",
    "util_switch",
    "proposed",
    "proposed(slo_guard=false)",
    "proposed(rate_estimation=false)",
    "proposed(model_switching=false)",
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def pct(mean_half: tuple[float, float], digits: int = 3) -> str:
    mean, half = mean_half
    return f"{100 * mean:+.{digits}f}% ± {100 * half:.{digits}f}%"


def episode(
    spec: str, scenario: str, seed: int, horizon_s: float | None, tuned_dir: str | None, record: bool
) -> dict[str, float]:
    """One episode of agent ``spec`` on ``scenario``: cost, p99 (ms), SLO attainment, quality,
    forced dispatches."""
    config = scenario_config(scenario, horizon_s)
    agent = make_agent(spec, config, tuned_dir=Path(tuned_dir) if tuned_dir else None)
    sim = run_episode(agent, config, seed, record=record)
    m = compute_metrics(sim)
    estimator = getattr(agent, "estimator", None)
    return {
        "alarms": float(estimator.alarms) if estimator is not None else math.nan,
        "cost": m.cost_per_request,
        "p99_ms": m.latency_p99_ms,
        "mean_ms": m.latency_mean_ms,
        "slo": m.slo_attainment,
        "quality": m.mean_quality,
        "forced": m.n_forced,
        **{f"mix_{k}": v for k, v in m.model_mix.items()},
    }


def run_grid(
    specs: Sequence[str],
    scenario: str,
    seeds: Sequence[int],
    horizon_s: float | None,
    jobs: int,
    tuned_dir: str | None = None,
    record: bool = False,
) -> dict[str, list[dict]]:
    """Per agent spec, the per-seed results (in seed order)."""
    tasks = [(s, scenario, seed, horizon_s, tuned_dir, record) for s in specs for seed in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_episode_task, tasks, chunksize=max(1, len(tasks) // (4 * jobs))))
    else:
        results = [_episode_task(t) for t in tasks]
    out: dict[str, list[dict]] = {s: [] for s in specs}
    for (spec, *_), result in zip(tasks, results, strict=True):
        out[spec].append(result)
    return out


def _episode_task(task: tuple) -> dict[str, float]:
    return episode(*task)


def save_figure(fig: Any, figures: Path, name: str, caption: str) -> list[str]:
    """Save ``fig`` (tight layout, 110 dpi) as ``figures/name`` and close it; returns the Markdown
    lines that show it under ``caption``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = figures / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ["", f"![{caption}]({path.parent.name}/{path.name})", ""]


def paired_gap(agent: list[dict], reference: list[dict]) -> tuple[float, float]:
    return mean_ci95([(a["cost"] - r["cost"]) / r["cost"] for a, r in zip(agent, reference, strict=True)])


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def part_gap(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Cost gap to the optimum on stationary Poisson loads (common random numbers)."""
    seeds = list(range(args.seeds))
    lines = [
        "## Gap to the exact optimum on stationary Poisson loads",
        "",
        f"{len(seeds)} seeds (0-{seeds[-1]}) x {args.horizon_s:g} s per scenario, common random numbers; "
        "gap = (cost - cost of `optimal`) / cost of `optimal`, paired by seed, mean ± 95% CI. "
        "`optimal` solves the SMDP for the scenario's true rate (an oracle); `proposed` estimates "
        "the rate online from the arrivals.",
        "",
        "| scenario | rate (1/s) | optimal cost/req | proposed | proposed, no rate estimation "
        "| timeout (tuned) | util_switch (tuned) | proposed forced |",
        "|---|---|---|---|---|---|---|---|",
    ]
    data = {}
    for scenario in GAP_SCENARIOS:
        start = time.perf_counter()
        res = run_grid(GAP_AGENTS, scenario, seeds, args.horizon_s, args.jobs)
        opt = res["optimal"]
        gaps = {spec: paired_gap(res[spec], opt) for spec in GAP_AGENTS if spec != "optimal"}
        cost = mean_ci95([r["cost"] for r in opt])
        rate = load_scenario(scenario).arrivals.mean_rate_per_s
        forced = sum(r["forced"] for r in res["proposed"])
        lines.append(
            f"| {scenario} | {rate:g} | {cost[0]:.5f} | {pct(gaps['proposed'])} "
            f"| {pct(gaps['proposed(rate_estimation=false)'])} | {pct(gaps['timeout'])} "
            f"| {pct(gaps['util_switch'])} | {forced} |"
        )
        data[scenario] = {"optimal_cost": cost, "gaps": gaps, "forced": forced}
        print(f"  gap {scenario}: proposed {pct(gaps['proposed'])} ({time.perf_counter() - start:.0f} s)")
    return [*lines, ""], data


def _stepped_counts(rng: np.random.Generator, rates: Sequence[float], step_s: float) -> np.ndarray:
    """Arrival times (s) of a Poisson process whose rate is rates[i] on [i step, (i + 1) step)."""
    parts = []
    for i, rate in enumerate(rates):
        n = rng.poisson(rate * step_s)
        parts.append(np.sort(rng.uniform(i * step_s, (i + 1) * step_s, n)))
    return np.concatenate(parts)


def _track(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The estimator's value at every grid time (it reads the arrival counter there)."""
    estimator = RateEstimator()
    counts = np.searchsorted(times, grid, side="right")
    return np.array([estimator.update(float(t), float(n)) for t, n in zip(grid, counts, strict=True)])


def _settle_s(
    grid: np.ndarray, values: np.ndarray, start: float, end: float, target: float, tol: float
) -> float:
    """Time after ``start`` from which the estimate stays within ``tol`` of ``target`` until ``end``."""
    window = (grid >= start) & (grid < end)
    bad = np.flatnonzero(window & (np.abs(values / target - 1.0) > tol))
    return float(grid[bad[-1]] - start) if len(bad) else 0.0


def part_tracking(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Rate tracking after steps, on stationary loads, and on the diurnal and bursty scenarios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step_s = 10.0
    rates = (50.0, 400.0, 50.0, 150.0, 300.0)
    grid = np.arange(0.005, step_s * len(rates), 0.005)  # the counter read every 5 ms
    n_seeds, tight, loose = 50, 0.2, 0.5  # seeds; settle tolerances (relative error)
    runs = [
        _track(_stepped_counts(np.random.default_rng(seed), rates, step_s), grid) for seed in range(n_seeds)
    ]
    lines = [
        "## Rate estimation",
        "",
        "Synthetic Poisson arrivals whose rate steps every 10 s through "
        f"{', '.join(f'{r:g}' for r in rates)} requests/s; the estimator reads the arrival counter every "
        "5 ms; 50 seeds. *settle*: time after the step from which the estimate stays within the "
        "tolerance until the next step (median and 90th percentile over seeds); *rms error*: relative "
        "root-mean-square error over the last 5 s before the next step.",
        "",
        "| step (1/s) | settle within 20% (median / p90, s) | settle within 50% (median / p90, s) "
        "| rms error, last 5 s |",
        "|---|---|---|---|",
    ]
    data: dict[str, Any] = {
        "settings": {
            "step_s": step_s,
            "rates_per_s": list(rates),
            "tolerances": [tight, loose],
            "seeds": n_seeds,
        }
    }
    for i in range(1, len(rates)):
        start, end, target = i * step_s, (i + 1) * step_s, rates[i]
        s20 = [_settle_s(grid, v, start, end, target, tight) for v in runs]
        s50 = [_settle_s(grid, v, start, end, target, loose) for v in runs]
        tail = (grid >= end - 5.0) & (grid < end)
        rms = float(np.mean([np.sqrt(np.mean((v[tail] / target - 1.0) ** 2)) for v in runs]))
        key = f"{rates[i - 1]:g}->{target:g}"
        lines.append(
            f"| {key} | {np.median(s20):.2f} / {np.percentile(s20, 90):.2f} "
            f"| {np.median(s50):.2f} / {np.percentile(s50, 90):.2f} | {100 * rms:.1f}% |"
        )
        data[key] = {"settle20_s": s20, "settle50_s": s50, "rms": rms}

    dispersion_lines, data["dispersion_azure_trace_high"] = _dispersion()
    lines += ["", *dispersion_lines]

    fig, axes = plt.subplots(3, 1, figsize=(9, 9))
    ax = axes[0]
    truth = np.repeat(rates, len(grid) // len(rates) + 1)[: len(grid)]
    ax.plot(grid, truth, "k--", lw=1, label="true rate")
    ax.plot(grid, runs[0], lw=1, label="estimate (seed 0)")
    ax.set(title="Poisson steps", xlabel="time (s)", ylabel="requests/s")
    ax.legend(loc="upper left")
    for ax, scenario in zip(axes[1:], ("diurnal", "bursty"), strict=True):
        times, estimates, arrivals = _scenario_track(scenario)
        ax.plot(times, estimates, lw=1, label="estimate")
        config = load_scenario(scenario)
        process = make_arrival_process(config)
        if isinstance(process, DiurnalArrivals):
            t = np.linspace(0, config.horizon_s, 600)
            ax.plot(t, process.rate_at(t), "k--", lw=1, label="true rate")
        bins = np.arange(0.0, config.horizon_s + 0.25, 0.25)
        counts, _ = np.histogram(arrivals, bins)
        ax.step(bins[:-1], counts / 0.25, where="post", color="0.6", lw=0.8, label="arrivals per 250 ms")
        ax.set(title=f"{scenario} (seed 0)", xlabel="time (s)", ylabel="requests/s")
        ax.legend(loc="upper left")
    lines += save_figure(fig, figures, "rate_tracking.png", "rate tracking")
    return lines, data


def _dispersion() -> tuple[list[str], dict[str, list[float]]]:
    """Index of dispersion (variance / mean of the counts) of the Azure trace's arrivals in
    windows of several lengths: 1 for Poisson arrivals; the noise the estimator must tolerate.
    Returns the Markdown lines and ``{"windows_s": [...], "variance_to_mean": [...]}``."""
    config = load_scenario("azure_trace_high")
    stream = make_arrival_process(config).stream(np.random.default_rng(0))
    times = np.concatenate([next(stream) for _ in range(30)])
    times = times[times < 100.0]
    windows = (0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
    ratios = []
    for w in windows:
        counts, _ = np.histogram(times, np.arange(0.0, 100.0 + w / 2, w))
        ratios.append(float(counts.var() / counts.mean()))
    lines = [
        "Index of dispersion (variance / mean of the arrival counts per window; 1 for Poisson) of "
        "the Azure trace replayed at 432 requests/s (azure_trace_high, seed 0, 100 s):",
        "",
        "| window (s) | " + " | ".join(f"{w:g}" for w in windows) + " |",
        "|---|" + "---|" * len(windows),
        "| variance / mean | " + " | ".join(f"{r:.2f}" for r in ratios) + " |",
        "",
    ]
    return lines, {"windows_s": list(windows), "variance_to_mean": ratios}


def _scenario_track(scenario: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decision times, rate estimates, arrival times) of the proposed scheduler, seed 0."""
    config = load_scenario(scenario)
    agent = Proposed(config)
    times: list[float] = []
    estimates: list[float] = []

    def policy(sim: Simulator) -> Any:
        decision = agent.decide(sim)
        times.append(sim.now_s)
        estimates.append(agent.rate_per_s)
        return decision

    sim = Simulator(config, record=True)
    sim.reset(0)
    agent.reset(sim)
    sim.run(policy)
    arrivals = np.asarray(sim.admitted_arrivals_s + sim.drop_times_s)
    return np.asarray(times), np.asarray(estimates), arrivals


def part_table(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """The precomputed policy: model and batch by rate and queue length; build time and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    lines = [
        "## The precomputed table",
        "",
        "| scenario | workers | rates | queue lengths per rate | build time (s) "
        "| control limits q* (range) |",
        "|---|---|---|---|---|---|",
    ]
    data = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, scenario in zip(axes, ("default", "multi_gpu"), strict=True):
        config = load_scenario(scenario)
        proposed._build_cached.cache_clear()  # time a build from scratch, solves included
        optimal._solve_cached.cache_clear()
        start = time.perf_counter()
        table = build_policy_table(config)
        elapsed = time.perf_counter() - start
        sizes = [len(r.decisions) for r in table.rows]
        thresholds = table.thresholds()
        lines.append(
            f"| {scenario} | {config.n_workers} | {len(table.rows)} ({table.rates_per_s[0]:g}-"
            f"{table.rates_per_s[-1]:.0f}/s) | {min(sizes)}-{max(sizes)} | {elapsed:.1f} "
            f"| {min(thresholds)}-{max(thresholds)} |"
        )
        data[scenario] = {"build_s": elapsed, "rows": len(table.rows), "thresholds": thresholds}
        q_max = 64
        image = np.full((q_max, len(table.rows)), np.nan)
        partial = np.zeros_like(image, dtype=bool)
        for j, row in enumerate(table.rows):
            for q in range(1, q_max + 1):
                d = row.decisions[min(q, len(row.decisions) - 1)]
                if d is None:
                    image[q - 1, j] = -1
                else:
                    image[q - 1, j] = d[0]
                    partial[q - 1, j] = d[1] < min(q, config.max_batch_size)
        rates = np.asarray(table.rates_per_s)
        cmap = ListedColormap(["white", "tab:blue", "tab:orange", "tab:green"][: config.n_models + 1])
        ax.pcolormesh(
            rates,
            np.arange(1, q_max + 1),
            image,
            cmap=cmap,
            vmin=-1.5,
            vmax=config.n_models - 0.5,
            shading="nearest",
        )
        qs, js = np.nonzero(partial)
        ax.scatter(rates[js], qs + 1, s=3, c="k", marker=".", label="partial batch")
        ax.set(
            xscale="log",
            title=f"{scenario} ({config.n_workers} worker{'s' if config.n_workers > 1 else ''})",
            xlabel="total arrival rate (requests/s)",
        )
        ax.set_xlim(10, rates[-1])
    axes[0].set_ylabel("queue length q at a decision epoch")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c, ec="0.5")
        for c in ("white", "tab:blue", "tab:orange", "tab:green")
    ]
    names = ["wait", *load_scenario("default").model_names]
    axes[1].legend(handles, names, loc="upper left")
    lines += save_figure(fig, figures, "policy_table.png", "policy table")
    return lines, data


def part_speed(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Simulated requests and decision epochs per second (simulator + policy, one process)."""
    lines = [
        "## Speed",
        "",
        "Simulator plus policy in one process, 5 episodes of 60 s per cell (seeds 0-4), after the "
        "table is built; absolute rates depend on the machine and its load, the ratios much less.",
        "",
        "| scenario | agent | decisions/s | requests/s | relative to timeout |",
        "|---|---|---|---|---|",
    ]
    data = {}
    for scenario in ("default", "poisson_50", "bursty", "multi_gpu_4"):
        config = load_scenario(scenario)
        base = None
        for spec in ("timeout", "optimal", "proposed"):
            try:
                agent = make_agent(spec, config)
            except Exception:  # optimal does not apply to every scenario
                continue
            sim = Simulator(config, record=False)
            epochs = requests = 0
            start = time.perf_counter()
            for seed in range(5):
                simulate(config, agent, seed, sim=sim)
                epochs += sim.n_epochs
                requests += sim.n_arrived
            elapsed = time.perf_counter() - start
            rate = epochs / elapsed
            base = base or rate
            lines.append(
                f"| {scenario} | {spec} | {rate / 1e3:.0f}k | {requests / elapsed / 1e3:.0f}k "
                f"| {rate / base:.2f} |"
            )
            data[f"{scenario}/{spec}"] = {"decisions_per_s": rate, "requests_per_s": requests / elapsed}
    return [*lines, ""], data


def part_slo(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """The SLO scenario, with its own tuned baselines."""
    config = load_scenario(SLO_SCENARIO)
    tuned_dir = Path(args.out).with_suffix("") / "tuned"
    path = tuned_dir / f"{SLO_SCENARIO}.yaml"
    if load_tuned(config, tuned_dir) is None:
        print(f"  tuning timeout and util_switch for {SLO_SCENARIO} on seeds {list(TRAINING_SEEDS)}")
        with LocalBackend(args.jobs) as backend:
            agents = tune_scenario(config, backend=backend)
        write_tuned(
            path,
            {
                "scenario": SLO_SCENARIO,
                "config_fingerprint": config_fingerprint(config),
                "command": "python benchmarks/proposed_eval.py --parts slo",
                "training_seeds": list(TRAINING_SEEDS),
                "horizon_s": config.horizon_s,
                "objective": "mean cost per request (best quality - score)",
                "agents": agents,
            },
        )
    seeds = list(range(args.slo_seeds))
    res = run_grid(SLO_AGENTS, SLO_SCENARIO, seeds, None, args.jobs, tuned_dir=str(tuned_dir), record=True)
    ref = res["timeout"]
    lines = [
        f"## SLO scenario `{SLO_SCENARIO}`",
        "",
        f"Azure trace at 150 requests/s, SLO {config.slo_ms:g} ms, w_slo = {config.reward.w_slo:g} per miss. "
        f"timeout and util_switch tuned for this scenario on training seeds ({path.relative_to(REPO)}); "
        f"seeds 0-{seeds[-1]}, 60 s each; gap vs the tuned timeout, paired, mean ± 95% CI.",
        "",
        "| agent | cost/req | gap vs timeout | p99 ms | SLO attainment | quality | LLM-1 / LLM-2 / LLM-3 |",
        "|---|---|---|---|---|---|---|",
    ]
    data = {}
    names = config.model_names
    for spec in SLO_AGENTS:
        rows = res[spec]
        cost = mean_ci95([r["cost"] for r in rows])
        gap = paired_gap(rows, ref)
        mix = " / ".join(f"{100 * np.mean([r[f'mix_{n}'] for r in rows]):.0f}%" for n in names)
        p99, slo, quality = (np.mean([r[key] for r in rows]) for key in ("p99_ms", "slo", "quality"))
        lines.append(
            f"| {spec} | {cost[0]:.4f} ± {cost[1]:.4f} | {pct(gap, 2)} | {p99:.1f} | {slo:.3f} "
            f"| {quality:.4f} | {mix} |"
        )
        data[spec] = {
            "cost": cost,
            "gap": gap,
            "p99_ms": float(p99),
            "slo_attainment": float(slo),
            "quality": float(quality),
            "model_mix": {n: float(np.mean([r[f"mix_{n}"] for r in rows])) for n in names},
        }
    return [*lines, ""], data


def part_sensitivity(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Exact extra cost of the optimal policy for a wrong rate (one worker, Poisson)."""
    config = load_scenario("default")
    rates = (50.0, 100.0, 144.14, 200.0, 288.29, 400.0, 432.43, 547.75)
    factors = (0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 2.0)
    lines = [
        "## Sensitivity of the optimal policy to the rate",
        "",
        "Extra cost per request, relative to the optimum, of running the optimal one-worker policy "
        "solved for rate f x r when the true Poisson rate is r (exact policy evaluation of the SMDP).",
        "",
        "| true rate r (1/s) | " + " | ".join(f"f = {f:g}" for f in factors) + " |",
        "|---|" + "---|" * len(factors),
    ]
    data = {}
    for rate in rates:
        best = optimal.solve_optimal(config, rate)
        model = optimal.build_smdp(config, rate, best.queue_cap, "any")
        cells = []
        for factor in factors:
            other = optimal.solve_optimal(config, factor * rate)
            gain = optimal.evaluate_policy(model, _actions_on(other, best.queue_cap)).gain_per_s
            extra = (best.gain_per_s - gain) / rate / best.cost_per_request
            cells.append(extra)
        data[f"{rate:g}"] = dict(zip(map(str, factors), cells, strict=True))
        lines.append(f"| {rate:g} | " + " | ".join(f"{100 * c:+.2f}%" for c in cells) + " |")
    return [*lines, ""], data


def _actions_on(solution: Any, cap: int) -> np.ndarray:
    """The solution's policy as SMDP action indices on states 0..cap (beyond its own cap: its
    last model with the whole queue)."""
    batch_max = solution.max_batch_size
    model = np.asarray(solution.model)
    batch = np.asarray(solution.batch)
    actions = np.where(model < 0, 0, 1 + model * batch_max + batch - 1)
    out = np.empty(cap + 1, dtype=int)
    n = min(cap + 1, len(actions))
    out[:n] = actions[:n]
    if cap + 1 > n:
        q = np.arange(n, cap + 1)
        out[n:] = 1 + model[-1] * batch_max + np.minimum(q, batch_max) - 1
    return out


def _mmpp_with_phases(seed: int, horizon_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times (s), phase start times (s) and phase rates of the two-phase MMPP of
    bursty.yaml (50 and 400 requests/s, leaving rates 0.2 and 0.5 per s, stationary start)."""
    config = load_scenario("bursty").arrivals
    rates = np.asarray(config.rates_per_s)
    leave = np.asarray([sum(row) for row in config.switch_rates_per_s])
    rng = np.random.default_rng(seed)
    stationary = (1.0 / leave) / (1.0 / leave).sum()
    phase = int(rng.choice(len(rates), p=stationary))
    t, times, starts, phase_rates = 0.0, [], [], []
    while t < horizon_s:
        end = t + rng.exponential(1.0 / leave[phase])
        times.append(np.sort(rng.uniform(t, end, rng.poisson(rates[phase] * (end - t)))))
        starts.append(t)
        phase_rates.append(rates[phase])
        t, phase = end, 1 - phase
    return np.concatenate(times), np.asarray(starts), np.asarray(phase_rates)


class _PhaseOracle:
    """The proposed scheduler fed the true phase rate instead of its estimate."""

    def __init__(self, config: Any) -> None:
        self.inner = Proposed(config, rate_estimation=False)
        self.starts = np.zeros(1)
        self.rates = np.ones(1)

    def reset(self, sim: Simulator) -> None:
        self.inner.reset(sim)

    def __call__(self, sim: Simulator) -> Any:
        index = int(np.searchsorted(self.starts, sim.now_s, side="right")) - 1
        self.inner.nominal_rate_per_s = float(self.rates[index])
        return self.inner.decide(sim)


def part_oracle(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Bursty load with known phases: how much does rate estimation leave on the table?"""
    config = load_scenario("bursty")
    agents: dict[str, Any] = {
        "timeout (tuned)": make_agent("timeout", config),
        "util_switch (tuned)": make_agent("util_switch", config),
        "proposed": Proposed(config),
        "proposed, true phase rate (oracle)": _PhaseOracle(config),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in agents}
    seeds = list(range(args.oracle_seeds))
    for seed in seeds:
        times, starts, rates = _mmpp_with_phases(seed, config.horizon_s)
        for name, agent in agents.items():
            if isinstance(agent, _PhaseOracle):
                agent.starts, agent.rates = starts, rates
            sim = Simulator(config, record=True)
            sim.reset(arrivals=iter([times, np.asarray([math.inf])]), horizon_s=config.horizon_s)
            agent.reset(sim)
            sim.run(agent)
            m = compute_metrics(sim)
            results[name].append((m.cost_per_request, m.latency_p99_ms))
    reference = results["timeout (tuned)"]
    lines = [
        "## Bursty load with known phases",
        "",
        f"The MMPP of bursty.yaml regenerated with its phase path recorded, seeds 0-{seeds[-1]}, "
        f"{config.horizon_s:g} s each; every agent meets the same arrivals. The oracle is the "
        "proposed scheduler's table looked up at the true rate of the current phase.",
        "",
        "| agent | cost/req | gap vs timeout (paired, 95% CI) | p99 ms |",
        "|---|---|---|---|",
    ]
    data = {}
    for name, rows in results.items():
        gap = mean_ci95([(c - r[0]) / r[0] for (c, _), r in zip(rows, reference, strict=True)])
        cost = float(np.mean([c for c, _ in rows]))
        p99 = float(np.mean([p for _, p in rows]))
        lines.append(f"| {name} | {cost:.4f} | {pct(gap, 2)} | {p99:.1f} |")
        data[name] = {"cost": cost, "gap": gap, "p99_ms": p99}
    return [*lines, ""], data


def part_workers(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Staggered-workers table against the one-worker table at the per-worker rate."""
    specs = ("timeout", "util_switch", "proposed", "proposed(worker_model=share)")
    seeds = list(range(args.slo_seeds))
    lines = [
        "## Several workers",
        "",
        f"Seeds 0-{seeds[-1]}, 60 s each; gap vs the tuned timeout, paired, mean ± 95% CI.",
        "",
        "| scenario | " + " | ".join(specs[1:]) + " |",
        "|---|" + "---|" * (len(specs) - 1),
    ]
    data = {}
    for scenario in ("multi_gpu", "multi_gpu_4"):
        res = run_grid(specs, scenario, seeds, None, args.jobs, record=True)
        gaps = {spec: paired_gap(res[spec], res["timeout"]) for spec in specs[1:]}
        p99 = {spec: np.mean([r["p99_ms"] for r in res[spec]]) for spec in specs}
        cells = [f"{pct(gaps[s], 2)} (p99 {p99[s]:.0f} ms)" for s in specs[1:]]
        lines.append(f"| {scenario} (timeout p99 {p99['timeout']:.0f} ms) | " + " | ".join(cells) + " |")
        data[scenario] = {"gaps": gaps, "p99_ms": p99}
    return [*lines, ""], data


def part_design(args: argparse.Namespace, figures: Path) -> tuple[list[str], dict]:
    """Variants of the estimator and the timer on the training seeds."""
    seeds = list(range(TRAINING_SEEDS[0], TRAINING_SEEDS[0] + 16))
    specs = ["timeout", *(spec for _, spec in DESIGN_VARIANTS)]
    lines = [
        "## Design choices (training seeds)",
        "",
        f"Seeds {seeds[0]}-{seeds[-1]} (the training seeds the parameters were chosen on), 60 s each. "
        "Cost gap of each variant against the tuned timeout, paired by seed, mean ± 95% CI; the "
        "defaults' row first. CUSUM alarms per episode in brackets.",
        "",
        "| variant | " + " | ".join(DESIGN_SCENARIOS) + " |",
        "|---|" + "---|" * len(DESIGN_SCENARIOS),
    ]
    table: dict[str, dict[str, str]] = {name: {} for name, _ in DESIGN_VARIANTS}
    data: dict[str, Any] = {}
    for scenario in DESIGN_SCENARIOS:
        res = run_grid(specs, scenario, seeds, None, args.jobs)
        for name, spec in DESIGN_VARIANTS:
            gap = paired_gap(res[spec], res["timeout"])
            alarms = np.mean([r["alarms"] for r in res[spec]])
            table[name][scenario] = f"{pct(gap, 2)} ({alarms:.1f})"
            data[f"{scenario}/{name}"] = {"gap": gap, "alarms": alarms}
        print(f"  design {scenario} done")
    for name, _ in DESIGN_VARIANTS:
        lines.append(f"| {name} | " + " | ".join(table[name][s] for s in DESIGN_SCENARIOS) + " |")
    return [*lines, ""], data


PART_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Path], tuple[list[str], dict]]] = {
    "gap": part_gap,
    "sensitivity": part_sensitivity,
    "oracle": part_oracle,
    "workers": part_workers,
    "design": part_design,
    "tracking": part_tracking,
    "table": part_table,
    "speed": part_speed,
    "slo": part_slo,
}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/proposed_eval.py",
        description="Measurements of the proposed scheduler for docs/algorithm.md "
        "(see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--parts",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated, among {','.join(PARTS)} (design is run only when asked for)",
    )
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 of the gap part")
    parser.add_argument("--horizon-s", type=float, default=120.0, help="episode length of the gap part (s)")
    parser.add_argument("--slo-seeds", type=int, default=10, help="seeds 0..N-1 of the slo and workers parts")
    parser.add_argument("--oracle-seeds", type=int, default=20, help="seeds 0..N-1 of the oracle part")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; parts: {','.join(PARTS)}")
    if min(args.seeds, args.slo_seeds, args.oracle_seeds) < 2:
        parser.error("--seeds, --slo-seeds and --oracle-seeds must be >= 2")
    out = Path(args.out)
    figures = out.with_name(out.stem + "_figures")
    if {"tracking", "table"} & set(parts):
        figures.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/proposed_eval.py" + (" " + shlex.join(argv) if argv else "")
    lines = [
        "# Proposed scheduler: measurements",
        "",
        f"Produced by `{command}` (docs/algorithm.md explains every table).",
        "",
    ]
    data: dict[str, Any] = {
        "command": command,
        "settings": {
            "seeds": args.seeds,
            "horizon_s": args.horizon_s,
            "slo_seeds": args.slo_seeds,
            "oracle_seeds": args.oracle_seeds,
        },
    }
    for part in parts:
        start = time.perf_counter()
        print(f"part {part} ...")
        part_lines, part_data = PART_FUNCTIONS[part](args, figures)
        lines += part_lines
        data[part] = part_data
        print(f"part {part} done in {time.perf_counter() - start:.0f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {out}, {out.with_suffix('.json')} and {figures}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
