"""The sim-to-real report's Markdown tables, one per view of the cells: fidelity on the valid runs,
all runs, each run against the gate, the recorded-arrivals simulation, spreads, model mix and
batch size, ranks, service times, the load generator and the server's counters.

Each table reads the cells in their JSON form (``sim_to_real.json``'s ``cells``) and their checks
(:func:`benchmarks.sim_to_real_parts.checks.assess`), so a results file can be rendered again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmarks.sim_to_real_parts.checks import SERVICE_RATIO_BAND
from serving.fidelity import RankedCell, rank_scenario, relative_error

Cells = Sequence[Mapping[str, Any]]
Checks = Sequence[Mapping[str, Any]]

ABSENT = "not recorded"
"""What a table shows for a field its results file predates."""


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:+.1f}%"


def _range(stats: Mapping[str, float], fmt: str = "{:.1f}") -> str:
    if not stats["n"]:
        return "n/a"
    return f"{fmt.format(stats['min'])}–{fmt.format(stats['max'])}"


def _load_class(check: Mapping[str, Any]) -> str:
    share = check["rejected_share"]
    if not math.isfinite(share):
        return "n/a"
    text = f"saturated ({100 * share:.0f}% rejected)" if check["saturated"] else "unsaturated"
    # judged on the valid runs; on every run only where none is valid (older checks: every run)
    return text if check.get("saturation_judged_on") == "valid runs" else f"{text} on every run"


def fidelity_table(cells: Cells, checks: Checks) -> list[str]:
    """The valid runs against the simulator on the seeds they replayed."""
    lines = [
        "| scenario | agent | load | valid runs | mean ms sim | mean ms real | err | p99 ms sim "
        "| p99 ms real | err | thr/s sim | thr/s real | err | cost sim | cost real | within 10% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, check in zip(cells, checks, strict=True):
        row = [
            cell["scenario"],
            cell["agent"],
            _load_class(check),
            f"{check['valid_runs']} of {check['runs']}",
        ]
        comparison = check["comparison_valid"]
        if comparison is None:
            m = cell["comparison"]["metrics"]
            for key in ("latency_mean_ms", "latency_p99_ms", "throughput_per_s"):
                row += [f"{m[key]['simulated']:.1f}", "—", "—"]
            row += [f"{m['cost_per_request']['simulated']:.4f}", "—", "no valid run"]
        else:
            m = comparison["metrics"]
            for key in ("latency_mean_ms", "latency_p99_ms", "throughput_per_s"):
                row += [f"{m[key]['simulated']:.1f}", f"{m[key]['measured']:.1f}", _pct(m[key]["error"])]
            row += [f"{m['cost_per_request']['simulated']:.4f}", f"{m['cost_per_request']['measured']:.4f}"]
            row.append("yes" if comparison["within_goal"] else "no")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def all_runs_table(cells: Cells, checks: Checks) -> list[str]:
    """Every run, valid or not (the comparison earlier reports showed)."""
    lines = [
        "| scenario | agent | load | runs | err of mean | err of p99 | within 10% |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell, check in zip(cells, checks, strict=True):
        m = cell["comparison"]["metrics"]
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {_load_class(check)} | {check['runs']} | "
            f"{_pct(m['latency_mean_ms']['error'])} | {_pct(m['latency_p99_ms']['error'])} | "
            f"{'yes' if cell['comparison']['within_goal'] else 'no'} |"
        )
    return lines


def runs_table(cells: Cells, checks: Checks, max_send_lag_ms: float) -> list[str]:
    """Each run: the machine's load, the load generator's send lag, the seed-paired errors and
    the gate's verdict."""
    lines = [
        "| scenario | agent | seed | run | load average | send lag p99 ms | reached after H | "
        "err of mean | err of p99 | valid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, check in zip(cells, checks, strict=True):
        for run, ok in zip(cell["measured_runs"], check["valid"], strict=True):
            sim = cell["simulated_per_seed"][str(run["seed"])]
            load = run.get("load_average_1min")
            errors = [
                _pct(relative_error(run["metrics"][k], sim[k])) for k in ("latency_mean_ms", "latency_p99_ms")
            ]
            verdict = "yes" if ok else f"**no** (> {max_send_lag_ms:g} ms)"
            lines.append(
                f"| {cell['scenario']} | {cell['agent']} | {run['seed']} | {run['repeat']} | "
                f"{'—' if load is None else f'{load:.2f}'} | {run['client']['send_lag_ms_p99']:.2f} | "
                f"{run['client'].get('n_after_horizon', 0)} | {errors[0]} | {errors[1]} | {verdict} |"
            )
    return lines


def recorded_table(cells: Cells, checks: Checks) -> list[str]:
    """Per cell, the simulator on the scheduled arrivals, on the arrivals the server recorded,
    and the server: how much of the error the replay's arrivals explain."""
    lines = [
        "| scenario | agent | runs (valid) | p99 ms sim, scheduled | p99 ms sim, recorded | p99 ms real | "
        "arrival distortion of p99 | model error of p99 | model error of mean | model within 10% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if all(check["recorded_all_runs"] is None for check in checks):
        return [f"Not in this results file ({ABSENT}: it predates the recorded-arrivals simulation)."]
    for cell, check in zip(cells, checks, strict=True):
        rec = check["recorded_all_runs"]
        if rec is None:
            lines.append(
                f"| {cell['scenario']} | {cell['agent']} | {check['runs']} | "
                + " | ".join([ABSENT] * 7)
                + " |"
            )
            continue
        p99, mean = rec["latency_p99_ms"], rec["latency_mean_ms"]
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {check['runs']} ({check['valid_runs']}) | "
            f"{p99['simulated_scheduled']:.1f} | {p99['simulated_recorded']:.1f} | {p99['measured']:.1f} | "
            f"{_pct(p99['arrival_distortion'])} | {_pct(p99['model_error'])} | {_pct(mean['model_error'])} | "
            f"{'yes' if rec['within_goal'] else 'no'} |"
        )
    return lines


def spread_table(cells: Cells) -> list[str]:
    lines = [
        "| scenario | agent | runs | mean ms real (range) | paired err of mean (range) "
        "| p99 ms real (range) | "
        "paired err of p99 (range) | repeat noise mean / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        m = cell["comparison"]["metrics"]
        mean, p99 = m["latency_mean_ms"], m["latency_p99_ms"]
        noise = f"{_pct(mean['repeat_noise'])} / {_pct(p99['repeat_noise'])}"
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {len(cell['measured_runs'])} | "
            f"{_range(mean['measured_spread'])} | "
            f"{_range(mean['paired_error'], '{:+.1%}')} | {_range(p99['measured_spread'])} | "
            f"{_range(p99['paired_error'], '{:+.1%}')} | {noise} |"
        )
    return lines


def mix_table(cells: Cells) -> list[str]:
    lines = [
        "| scenario | agent | model mix sim | model mix real | batch sim | batch real |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        mix = cell["comparison"]["model_mix"]
        sim = " ".join(f"{m} {100 * v['simulated']:.0f}%" for m, v in mix.items() if v["simulated"] >= 0.005)
        real = " ".join(f"{m} {100 * v['measured']:.0f}%" for m, v in mix.items() if v["measured"] >= 0.005)
        batch = cell["comparison"]["metrics"]["mean_batch_size"]
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {sim} | {real} | {batch['simulated']:.1f} "
            f"| {batch['measured']:.1f} |"
        )
    return lines


def rank_inputs(cells: Cells, checks: Checks | None = None) -> dict[tuple[str, str], RankedCell | None]:
    """Per (scenario, agent), what :func:`serving.fidelity.rank_scenario` ranks the agent on: its
    simulated metrics per seed and its valid runs (``checks``' verdicts), or every run without
    ``checks``; None where there is no such run."""
    out: dict[tuple[str, str], RankedCell | None] = {}
    for i, cell in enumerate(cells):
        runs = list(cell["measured_runs"])
        if checks is not None:
            runs = [r for r, ok in zip(runs, checks[i]["valid"], strict=True) if ok]
        simulated = {int(s): m for s, m in cell["simulated_per_seed"].items()}
        out[(cell["scenario"], cell["agent"])] = (simulated, runs) if runs else None
    return out


def rank_table(
    inputs: Mapping[tuple[str, str], RankedCell | None],
    scenarios: Sequence[str],
    metric: str,
    runs: str = "valid run",
) -> tuple[list[str], list[dict[str, Any]]]:
    """Per scenario, the agents ordered by ``metric`` simulated and measured on the seeds every
    agent of the scenario has a run of (``inputs``: :func:`rank_inputs`, None where a cell has no
    run: the scenario is not ranked, nor is it without a seed common to every agent; ``runs``
    names the runs in that line)."""
    lines = [
        "| scenario | simulated order (best first) | measured order | holds | Kendall tau | seeds |",
        "|---|---|---|---|---|---|",
    ]
    records = []
    for name in scenarios:
        row = {agent: c for (scen, agent), c in inputs.items() if scen == name}
        record = rank_scenario(row, name, metric)
        if record is None:
            missing = [agent for agent, c in row.items() if c is None]
            why = f"no {runs} of {', '.join(missing)}" if missing else f"no seed with a {runs} of every agent"
            lines.append(f"| {name} | not ranked: {why} | | | | |")
            continue
        records.append(record)
        sim, real = record["simulated"], record["measured"]
        lines.append(
            f"| {name} | {' < '.join(sim)} | {' < '.join(real)} | {'yes' if sim == real else 'no'} "
            f"| {record['kendall_tau']:.2f} | {', '.join(map(str, record['seeds']))} |"
        )
    return lines, records


def service_table(cells: Cells, checks: Checks) -> list[str]:
    low, high = SERVICE_RATIO_BAND
    lines = [
        "| scenario | agent | model | batches | measured mean ms | table mean ms | measured / table | "
        f"outside [{low:g}, {high:g}] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell, check in zip(cells, checks, strict=True):
        for model, row in check["service"].items():
            lines.append(
                f"| {cell['scenario']} | {cell['agent']} | {model} | {row['batches']} | "
                f"{row['measured_mean_ms']:.1f} | {row['table_mean_ms']:.1f} | {row['ratio']:.3f} | "
                f"{'**yes**' if row['flagged'] else 'no'} |"
            )
    return lines


def client_table(cells: Cells, checks: Checks) -> list[str]:
    lines = [
        "| scenario | agent | sent | 429 | 503 | other error | unanswered | reached the server after H "
        "(share) | send lag p99 ms (max over runs) | HTTP overhead mean / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, check in zip(cells, checks, strict=True):
        clients = [r["client"] for r in cell["measured_runs"]]
        late = f"{check['after_horizon']} ({100 * check['after_horizon_share']:.2f}%)"
        if check["after_horizon_flagged"]:
            late = f"**{late}**"
        lines.append(
            f"| {cell['scenario']} | {cell['agent']} | {sum(c['n_sent'] for c in clients)} | "
            f"{sum(c['n_429'] for c in clients)} | {check['client_failures']['n_503']} | "
            f"{check['client_failures']['n_other_status']} | {check['client_failures']['n_unanswered']} | "
            f"{late} | {max(c['send_lag_ms_p99'] for c in clients):.2f} | "
            f"{np.mean([c['http_overhead_ms_mean'] for c in clients]):.2f} / "
            f"{max(c['http_overhead_ms_p99'] for c in clients):.2f} |"
        )
    return lines


def server_table(cells: Cells, checks: Checks) -> list[str]:
    lines = [
        "| scenario | agent | scheduler errors | failed requests | refused | forced dispatches |",
        "|---|---|---|---|---|---|",
    ]
    if all(check["server_counts"] is None for check in checks):
        return [f"Not in this results file ({ABSENT}: it predates them)."]
    for cell, check in zip(cells, checks, strict=True):
        counts = check["server_counts"]
        values = (
            [ABSENT] * 4
            if counts is None
            else [str(counts[k]) for k in ("n_scheduler_errors", "n_failed", "n_refused", "n_forced")]
        )
        lines.append(f"| {cell['scenario']} | {cell['agent']} | " + " | ".join(values) + " |")
    return lines
