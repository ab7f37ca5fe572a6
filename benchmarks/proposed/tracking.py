"""*tracking* part: the rate estimator after steps of the arrival rate (synthetic Poisson steps,
many seeds), the burstiness of the Azure trace, and the estimate on the diurnal and bursty
scenarios (figure)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.proposed import Proposed
from batchenv.arrivals import DiurnalArrivals, make_arrival_process
from batchenv.estimators import RateEstimator
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator
from benchmarks.proposed.common import save_figure
from execution.backends import Backend


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


def run(args: argparse.Namespace, figures: Path, backend: Backend) -> tuple[list[str], dict]:
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
