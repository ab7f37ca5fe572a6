"""The robust scheduler and the trace protocol: tuned on the first half of each trace, evaluated
on the second. Reads ``docs/results/robust.json`` (``python benchmarks/robust_eval.py``: traces,
the MMPP with its phase oracle, Poisson loads) and, when committed,
``docs/results/trace_results.json`` (``python benchmarks/trace_results.py``: every agent, with
the gap to the hindsight bound); the trace table comes from the latter when present."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apps.report.formatting import fnum, fpct
from apps.report.macros import Macros, add_pending
from apps.report.sources import (
    AZURE_HOUR,
    AZURE_LMM,
    EXTERNAL_TRACES,
    GUARD_TEST,
    REPLAY,
    ROBUST,
    TRACE_RESULTS,
    TRACE_RESULTS_ALL,
)
from apps.report.tables import table_header

__all__ = [
    "ALL_TRACES_KEYS",
    "AZURE_HOUR_KEYS",
    "AZURE_LMM_KEYS",
    "EXTERNAL_KEYS",
    "REPLAY_KEYS",
    "TRACE_RESULTS_KEYS",
    "TraceCell",
    "all_traces_numbers",
    "azure_hour_numbers",
    "azure_lmm_numbers",
    "external_trace_numbers",
    "replay_numbers",
    "robust_numbers",
    "trace_cells",
    "trace_numbers",
    "trace_results_numbers",
    "trace_table",
]

TRACE_AGENTS = {
    "util_switch": ("Switch", "util\\_switch"),
    "aimd": ("Aimd", "AIMD"),
    "proposed": ("Prop", "proposed"),
    "robust": ("Robust", "robust"),
    "ppo_default": ("Ppo", "PPO"),
    "dqn_default": ("Dqn", "DQN"),
}
"""Agents of the trace table besides the reference (the tuned timeout): macro token, column head."""
TRACE_NAMES = {
    "azure_trace": "Azure conv.",
    "mooncake_conv": "Mooncake conv.",
    "servegen": "ServeGen$^\\ast$",
}
"""Row labels; the asterisk marks arrivals generated from production statistics, not recorded."""


@dataclass(frozen=True)
class TraceCell:
    """One agent on one trace's test half: means (cost per request, latencies in ms, quality),
    the seed-paired gap to the tuned timeout and p99 difference (mean, 95% half-width; fractions
    and ms), and the gap to the hindsight bound (None when the source has none)."""

    cost: float
    mean_ms: float
    p99_ms: float
    quality: float
    gap: tuple[float, float]
    d99: tuple[float, float]
    bound: tuple[float, float] | None

    def verdict(self, which: str) -> str:
        """``beats`` (95% interval below 0), ``ties`` or ``loses``, for ``gap`` or ``d99``."""
        mean, half = self.gap if which == "gap" else self.d99
        return "beats" if mean + half < 0 else "loses" if mean - half > 0 else "ties"


def trace_cells(data: dict[str, Any], from_trace_results: bool) -> dict[str, dict[str, TraceCell]]:
    """Scenario -> agent -> :class:`TraceCell`, from trace_results.json or robust.json's traces
    (agents that do not apply to a scenario are left out)."""
    out: dict[str, dict[str, TraceCell]] = {}
    scenarios = (
        {
            k: v
            for k, v in data.items()
            if k != "settings" and isinstance(v, dict) and isinstance(v.get("agents"), dict)
        }
        if from_trace_results
        else data["traces"]
    )
    for name, entry in scenarios.items():
        row = {}
        for agent, s in entry["agents"].items():
            if "not_applicable" in s:
                continue
            gap = s["gap_vs_timeout"] if from_trace_results else entry["gap_vs_timeout"][agent]
            d99 = s["p99_minus_timeout_ms"] if from_trace_results else entry["p99_minus_timeout_ms"][agent]
            bound = s.get("gap_vs_hindsight") if from_trace_results else None
            row[agent] = TraceCell(
                cost=s["cost"][0],
                mean_ms=s["mean_ms"][0],
                p99_ms=s["p99_ms"][0],
                quality=s["quality"][0],
                gap=(gap[0], gap[1]),
                d99=(d99[0], d99[1]),
                bound=None if bound is None else (bound[0], bound[1]),
            )
        out[name] = row
    return out


def _label(name: str) -> str:
    """``mooncake_conv_30`` -> ``Mooncake conv. 30\\%``; ``azure_trace_native`` -> ``... native``."""
    match = re.fullmatch(r"(.*?)(?:_(native|\d+))?", name)
    base, load = (match.group(1), match.group(2)) if match else (name, None)
    text = TRACE_NAMES.get(base, base.replace("_", "\\_"))
    if load is None or load == "native":
        return f"{text} native"
    return f"{text} {load}\\%"


def _token(name: str) -> str:
    """Letters-only macro token of a trace scenario (``azure_trace_30`` -> ``AzureThirty``)."""
    words = {"30": "Thirty", "60": "Sixty", "native": "Native"}
    base, _, load = name.rpartition("_")
    if load not in words:
        base, load = name, "native"
    heads = {"azure": "Azure", "mooncake": "Moon", "servegen": "Serve"}
    head = next((h for prefix, h in heads.items() if base.startswith(prefix)), "")
    return head + words[load] if head else ""


def _gap_cell(cell: TraceCell) -> str:
    text = fpct(cell.gap[0], 2, sign=True)
    verdict = cell.verdict("gap")
    return (
        f"\\textbf{{{text}}}" if verdict == "beats" else f"{text}$^\\dagger$" if verdict == "loses" else text
    )


def _d99_cell(cell: TraceCell) -> str:
    text = fnum(cell.d99[0], 1, sign=True)
    verdict = cell.verdict("d99")
    return (
        f"\\textbf{{{text}}}" if verdict == "beats" else f"{text}$^\\dagger$" if verdict == "loses" else text
    )


def trace_table(cells: dict[str, dict[str, TraceCell]], source: str) -> str:
    """Rows: the trace scenarios' test halves; columns: the tuned timeout's cost, p99 and quality
    (and gap to the hindsight bound), every other agent's cost gap to it, and the robust
    scheduler's p99 difference, quality (and gap to the bound)."""
    agents = [a for a in TRACE_AGENTS if all(a in row for row in cells.values())]
    with_bound = all(c.bound is not None for row in cells.values() for c in row.values())
    heads = ["trace (test half)", "cost", "p99", "qual."]
    cols = ["l", "r", "r", "r"]
    if with_bound:
        heads.append("bound")
        cols.append("r")
    heads += [TRACE_AGENTS[a][1] for a in agents]
    cols += ["r"] * len(agents)
    robust_heads = ["$\\Delta$p99", "qual."] + (["bound"] if with_bound else [])
    heads += robust_heads
    cols += ["r"] * len(robust_heads)
    n_ref = 4 if with_bound else 3
    group = (
        f"& \\multicolumn{{{n_ref}}}{{c}}{{tuned timeout}} & "
        f"\\multicolumn{{{len(agents)}}}{{c}}{{cost gap to the tuned timeout (\\%)}} & "
        f"\\multicolumn{{{len(robust_heads)}}}{{c}}{{robust}} \\\\\n"
        f"\\cmidrule(lr){{2-{n_ref + 1}}}\\cmidrule(lr){{{n_ref + 2}-{n_ref + 1 + len(agents)}}}"
        f"\\cmidrule(l){{{n_ref + 2 + len(agents)}-{n_ref + 1 + len(agents) + len(robust_heads)}}}\n"
    )
    rows = []
    for name, row in cells.items():
        ref = row["timeout"]
        out = [_label(name), fnum(ref.cost, 4), fnum(ref.p99_ms, 1), fnum(ref.quality, 3)]
        if with_bound and ref.bound is not None:
            out.append(fpct(ref.bound[0], 1, sign=True))
        out += [_gap_cell(row[a]) for a in agents]
        rob = row.get("robust")
        if rob is not None:
            out += [_d99_cell(rob), fnum(rob.quality, 3)]
            if with_bound and rob.bound is not None:
                out.append(fpct(rob.bound[0], 1, sign=True))
        rows.append(" & ".join(out) + " \\\\")
    return (
        table_header(
            source, "agents on the traces' test halves against the timeout tuned on the training halves"
        )
        + f"\\begin{{tabular}}{{@{{}}{' '.join(cols)}@{{}}}}\n\\toprule\n"
        + group
        + " & ".join(heads)
        + " \\\\\n\\midrule\n"
        + "\n".join(rows)
        + "\n\\bottomrule\n\\end{tabular}\n"
    )


def _verdict_counts(macros: Macros, cells: dict[str, dict[str, TraceCell]], source: str, prefix: str) -> None:
    """Per agent: on how many scenarios it loses on cost and on p99 (95% intervals above 0)."""
    for agent, (tok, _) in TRACE_AGENTS.items():
        rows = [row[agent] for row in cells.values() if agent in row]
        if not rows:
            continue
        for which, what in (("gap", "Cost"), ("d99", "Tail")):
            macros.add(
                f"{prefix}{what}Loses{tok}",
                str(sum(c.verdict(which) == "loses" for c in rows)),
                source,
                f"scenarios where {agent} loses to the tuned timeout on "
                + ("cost" if which == "gap" else "p99"),
            )
    for name, row in cells.items():
        stok = _token(name)
        if not stok:
            continue
        for agent in ("proposed", "robust"):
            if agent not in row:
                continue
            atok = TRACE_AGENTS[agent][0]
            c = row[agent]
            macros.add(
                f"{prefix}Gap{atok}{stok}",
                fpct(c.gap[0], 2, sign=True),
                source,
                f"{name} / {agent} / gap_vs_timeout[0] (%)",
            )
            macros.add(
                f"{prefix}DTail{atok}{stok}",
                fnum(c.d99[0], 1, sign=True),
                source,
                f"{name} / {agent} / p99_minus_timeout_ms[0]",
            )
        macros.add(
            f"{prefix}TailTimeout{stok}",
            fnum(row["timeout"].p99_ms, 1),
            source,
            f"{name} / timeout / p99_ms[0]",
        )
    macros.add(f"{prefix}Scenarios", str(len(cells)), source, "number of trace scenarios")


def trace_numbers(macros: Macros, cells: dict[str, dict[str, TraceCell]], source: str) -> None:
    """The verdicts of the trace table (from ``source``, the file the table is built from): per
    agent, on how many test halves it loses on cost and on p99 (``resRb...``; agents the source
    does not have are ``[pending]``), the proposed and robust schedulers' gaps per scenario, and
    the switch ``\\ifrobustNeverCostlier``."""
    _verdict_counts(macros, cells, source, "resRb")
    for agent, (tok, _) in TRACE_AGENTS.items():
        for what in ("Cost", "Tail"):
            if f"resRb{what}Loses{tok}" not in macros.results:
                add_pending(
                    macros, {f"resRb{what}Loses{tok}": f"scenarios where {agent} loses"}, TRACE_RESULTS
                )
    never = all(row["robust"].verdict("gap") != "loses" for row in cells.values() if "robust" in row)
    macros.flags["robustNeverCostlier"] = (
        never,
        f"{source}: robust never loses on cost = {str(never).lower()}",
    )


def robust_numbers(macros: Macros, data: dict[str, Any]) -> None:
    """robust.json: the settings, the MMPP's gaps to the phase oracle and the share of the
    timeout's gap closed, and the largest gap to the optimum on Poisson."""
    settings = data["settings"]
    macros.add("resRbSeeds", str(settings["seeds"]), ROBUST, "settings.seeds")
    macros.add("resRbHorizonS", f"{settings['horizon_s']:g}", ROBUST, "settings.horizon_s (s)")
    macros.add("resRbMmppSeeds", str(settings["mmpp_seeds"]), ROBUST, "settings.mmpp_seeds")
    agents = data["mmpp"]["agents"]
    for agent, tok in (
        ("timeout", "Timeout"),
        ("util_switch", "Switch"),
        ("proposed", "Prop"),
        ("robust", "Robust"),
    ):
        macros.add(
            f"resRbMmppGap{tok}",
            fpct(agents[agent]["gap_vs_oracle"][0], 2, sign=True),
            ROBUST,
            f"mmpp.agents.{agent}.gap_vs_oracle[0] (%)",
        )
        if agent != "timeout":
            macros.add(
                f"resRbClosure{tok}",
                fpct(agents[agent]["closure"], 0),
                ROBUST,
                f"mmpp.agents.{agent}.closure (%)",
            )
    low, high = agents["robust"]["closure_interval"]
    what = "mmpp.agents.robust.closure_interval[{}] (%, paired bootstrap over the seeds)"
    macros.add("resRbClosureRobustLow", fpct(low, 0), ROBUST, what.format(0))
    macros.add("resRbClosureRobustHigh", fpct(high, 0), ROBUST, what.format(1))
    worst = max(abs(v["gap_vs_optimal"]["robust"][0]) for v in data["poisson"].values())
    upper = max(sum(v["gap_vs_optimal"]["robust"]) for v in data["poisson"].values())
    macros.add(
        "resRbPoisMaxGap", fpct(worst, 2), ROBUST, "max over poisson.* of |gap_vs_optimal.robust[0]| (%)"
    )
    macros.add(
        "resRbPoisMaxUpper",
        fpct(upper, 2),
        ROBUST,
        "max over poisson.* of gap_vs_optimal.robust[0] + [1] (%)",
    )


GUARD_TEST_TRACE = "azure_trace_30"
GUARD_TEST_KEYS = {
    "resGtGoal": "guard_test.goal_poisson_gap (%)",
    "resGtClosestMs": f"min over guard_test.candidates within the goal of tests.{GUARD_TEST_TRACE}.p99[0]",
    "resGtClosestGap": "guard_test.candidates[that one].max_poisson_gap (%)",
    "resGtLightestGap": "guard_test.candidates[guard_test.lightest_matching].max_poisson_gap (%)",
}


def guard_test_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """robust_guard_test.json: the tail guard settings on the held-out halves, after the fact: the
    p99 difference to the tuned timeout on the Azure trace at 30% of the setting within the Poisson
    goal that comes closest, and the Poisson gap of the lightest setting that matches the timeout
    (``[pending]`` when the file is absent)."""
    if data is None:
        add_pending(macros, GUARD_TEST_KEYS, GUARD_TEST)
        macros.flags["guardTestNoneMatches"] = (False, f"{GUARD_TEST} absent")
        return
    data = data["guard_test"]
    rows = data["candidates"]
    within = [row for row in rows.values() if row["within_goal"]]
    closest = min(within, key=lambda row: row["tests"][GUARD_TEST_TRACE]["p99"][0])
    lightest = data["lightest_matching"]
    values = {
        "resGtGoal": fpct(data["goal_poisson_gap"], 1),
        "resGtClosestMs": fnum(closest["tests"][GUARD_TEST_TRACE]["p99"][0], 1, sign=True),
        "resGtClosestGap": fpct(closest["max_poisson_gap"], 2, sign=True),
        "resGtLightestGap": fpct(rows[lightest]["max_poisson_gap"], 2, sign=True) if lightest else "none",
    }
    for name, value in values.items():
        macros.add(name, value, GUARD_TEST, GUARD_TEST_KEYS[name])
    none = not data["within_goal_and_matching"]
    macros.flags["guardTestNoneMatches"] = (
        none,
        f"{GUARD_TEST}: no setting within the goal matches = {str(none).lower()}",
    )


REPLAY_KEYS = {
    "resRpPoisMs": "replay.traces.azure_trace_30.candidates.robust.poisson.p99[0] (ms)",
    "resRpSurrogates": "len(replay.traces.azure_trace_30.candidates.robust.surrogates)",
    "resRpMinMs": "replay.traces.azure_trace_30.candidates.robust.p99_spread_ms.min",
    "resRpMaxMs": "replay.traces.azure_trace_30.candidates.robust.p99_spread_ms.max",
    "resRpLoses": "replay.traces.azure_trace_30.candidates.robust.p99_verdicts.loses",
    "resRpTraces": "len(replay.traces)",
    "resRpPoisLoses": "count of replay.traces.* with candidates.robust.poisson.p99_verdict == loses",
}


def replay_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """robust_replay.json: robust against the tuned timeout on fresh Poisson arrivals at the rate
    of the Azure trace's 30% test half, and the spread of its p99 difference over Poisson
    surrogates of that half replayed like it (``[pending]`` when the file is absent)."""
    if data is None:
        add_pending(macros, REPLAY_KEYS, REPLAY)
        return
    robust = data["replay"]["traces"][GUARD_TEST_TRACE]["candidates"]["robust"]
    values = {
        "resRpPoisMs": fnum(robust["poisson"]["p99"][0], 1, sign=True),
        "resRpSurrogates": str(len(robust["surrogates"])),
        "resRpMinMs": fnum(robust["p99_spread_ms"]["min"], 1, sign=True),
        "resRpMaxMs": fnum(robust["p99_spread_ms"]["max"], 1, sign=True),
        "resRpLoses": str(robust["p99_verdicts"]["loses"]),
        "resRpTraces": str(len(data["replay"]["traces"])),
        "resRpPoisLoses": str(
            sum(
                t["candidates"]["robust"]["poisson"]["p99_verdict"] == "loses"
                for t in data["replay"]["traces"].values()
            )
        ),
    }
    for name, value in values.items():
        macros.add(name, value, REPLAY, REPLAY_KEYS[name])


TRACE_RESULTS_KEYS = {
    "resTrSeeds": "len(settings.seeds)",
    "resTrHorizonS": "settings.horizon_s (s)",
    "resTrBoundMinRobust": "min over scenarios of robust / gap_vs_hindsight[0] (%)",
    "resTrBoundMaxRobust": "max over scenarios of robust / gap_vs_hindsight[0] (%)",
    "resTrBoundMaxTimeout": "max over scenarios of timeout / gap_vs_hindsight[0] (%)",
}


def trace_results_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """trace_results.json's settings and gaps to the hindsight bound (``[pending]`` when the file
    is absent)."""
    if data is None:
        add_pending(macros, TRACE_RESULTS_KEYS, TRACE_RESULTS)
        return
    cells = trace_cells(data, from_trace_results=True)
    settings = data["settings"]
    macros.add("resTrSeeds", str(len(settings["seeds"])), TRACE_RESULTS, TRACE_RESULTS_KEYS["resTrSeeds"])
    macros.add(
        "resTrHorizonS", f"{settings['horizon_s']:g}", TRACE_RESULTS, TRACE_RESULTS_KEYS["resTrHorizonS"]
    )
    for agent, tok, fn in (
        ("robust", "MinRobust", min),
        ("robust", "MaxRobust", max),
        ("timeout", "MaxTimeout", max),
    ):
        values = [
            row[agent].bound[0] for row in cells.values() if agent in row and row[agent].bound is not None
        ]  # type: ignore[index]
        name = f"resTrBound{tok}"
        macros.add(name, fpct(fn(values), 1, sign=True), TRACE_RESULTS, TRACE_RESULTS_KEYS[name])


def _robust_keys(prefix: str, loads: dict[str, str]) -> dict[str, str]:
    """The macros of :func:`_robust_at_loads` for ``loads`` (macro token -> scenario)."""
    keys = {
        key: what
        for tok, name in loads.items()
        for key, what in (
            (f"{prefix}Load{tok}", f"the load in the name of {name} (% of LLM-3's capacity)"),
            (f"{prefix}GapRobust{tok}", f"{name}.agents.robust.gap_vs_timeout[0] (%)"),
            (f"{prefix}DTailRobust{tok}", f"{name}.agents.robust.p99_minus_timeout_ms[0] (ms)"),
        )
    }
    keys[f"{prefix}RobustMatches"] = (
        "scenarios where robust loses to the tuned timeout neither on cost nor on p99"
    )
    keys[f"{prefix}CostLosesRobust"] = "scenarios where robust loses to the tuned timeout on cost"
    keys[f"{prefix}TailLosesRobust"] = "scenarios where robust loses to the tuned timeout on p99"
    keys[f"{prefix}Scenarios"] = "number of scenarios in the file"
    return keys


def _robust_at_loads(
    macros: Macros, data: dict[str, Any] | None, source: str, prefix: str, loads: dict[str, str]
) -> None:
    """A trace_results.py file of its own: the robust scheduler's cost gap and p99 difference to
    the tuned timeout at ``loads``, and on how many of the file's scenarios it loses on cost, on
    p99, and on neither (``[pending]`` when the file is absent)."""
    keys = _robust_keys(prefix, loads)
    if data is None:
        add_pending(macros, keys, source)
        return
    cells = trace_cells(data, from_trace_results=True)
    for tok, name in loads.items():
        cell = cells[name]["robust"]
        for key, value in (
            (f"{prefix}Load{tok}", name.rsplit("_", 1)[1]),
            (f"{prefix}GapRobust{tok}", fpct(cell.gap[0], 2, sign=True)),
            (f"{prefix}DTailRobust{tok}", fnum(cell.d99[0], 1, sign=True)),
        ):
            macros.add(key, value, source, keys[key])
    robust_cells = [row["robust"] for row in cells.values()]
    losses = [(c.verdict("gap") == "loses", c.verdict("d99") == "loses") for c in robust_cells]
    for key, count in (
        ("RobustMatches", sum(not (cost or tail) for cost, tail in losses)),
        ("CostLosesRobust", sum(cost for cost, _ in losses)),
        ("TailLosesRobust", sum(tail for _, tail in losses)),
        ("Scenarios", len(robust_cells)),
    ):
        macros.add(f"{prefix}{key}", str(count), source, keys[f"{prefix}{key}"])


EXTERNAL_LOADS = {"Thirty": "fineserve_dense_30", "Sixty": "fineserve_dense_60"}
"""The rescaled scenarios of the recorded trace batchenv does not ship: macro token -> scenario."""
EXTERNAL_KEYS = _robust_keys("resExt", EXTERNAL_LOADS)
AZURE_HOUR_LOADS = {"Thirty": "azure_conv_hour_30", "Sixty": "azure_conv_hour_60"}
"""The whole Azure conversation hour rescaled: macro token -> scenario."""
AZURE_HOUR_KEYS = _robust_keys("resHour", AZURE_HOUR_LOADS)
AZURE_LMM_LOADS = {"Thirty": "azure_lmm_30", "Sixty": "azure_lmm_60"}
"""The Azure LMM (multimodal) excerpt rescaled: macro token -> scenario."""
AZURE_LMM_KEYS = _robust_keys("resLmm", AZURE_LMM_LOADS)
ALL_TRACES_KEYS = _robust_keys("resAll", {})


def external_trace_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """external_traces.json (a recorded trace that batchenv does not ship, FineServe's)."""
    _robust_at_loads(macros, data, EXTERNAL_TRACES, "resExt", EXTERNAL_LOADS)


def azure_hour_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """azure_hour.json (the whole Azure conversation hour, halves of about 9,700 requests)."""
    _robust_at_loads(macros, data, AZURE_HOUR, "resHour", AZURE_HOUR_LOADS)


def azure_lmm_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """azure_lmm.json (the Azure LMM inference trace's excerpt, a multimodal model's requests)."""
    _robust_at_loads(macros, data, AZURE_LMM, "resLmm", AZURE_LMM_LOADS)


def all_traces_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """trace_results_all.json (every trace scenario at every rate, not only the goal's)."""
    _robust_at_loads(macros, data, TRACE_RESULTS_ALL, "resAll", {})
