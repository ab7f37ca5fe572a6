"""The sim-to-real report's Markdown tables, one per view of the cells: fidelity, spreads, model
mix and batch size, ranks, service times, and the load generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.sim_to_real_parts.runs import Cell
from serving.fidelity import kendall_tau, rank_agents


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
