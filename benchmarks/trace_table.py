"""Characterise the shipped traces and what every trace scenario replays.

Writes ``docs/results/traces.md`` and ``docs/results/traces.json``: for each shipped trace its
mean rate, the coefficient of variation of its inter-arrival gaps, the index of dispersion of its
counts per 1 s and 10 s and its peak rates over 20 ms and 1 s windows; for the Mooncake trace,
whose timestamps were recorded on a 3 s grid, the same for the recorded ties, the shipped random
spread and an even spread, at its native rate and at the scenarios' rates; and for each trace
scenario the train and test halves as replayed (one pass, no wrap-around). Deterministic: no
simulation, no random draw except the fixed one of the shipped spread.

Usage::

    python benchmarks/trace_table.py
    python benchmarks/trace_table.py --scenario-path benchmarks/configs/external \
        --scenarios fineserve_dense,fineserve_dense_30,fineserve_dense_60,fineserve_dense_30_published \
        --out-dir docs/results/external_traces

Without the trace file of a scenario batchenv does not ship (FineServe's), ``--halves-from
docs/results/external_traces/traces.json`` takes the halves of the named scenarios from that
earlier run and computes the shipped traces again: the figures are those the whole command gives
with the file (they are deterministic), and the report names the run the halves come from.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.arrivals import TraceArrivals, make_arrival_process  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.scenarios import load_scenario, split_of, trace_scenarios  # noqa: E402
from batchenv.timing import model_capacity_per_s  # noqa: E402
from batchenv.trace_prep import recording_granularity_s, spread_ties_evenly  # noqa: E402
from batchenv.trace_stats import characterise, share_in_bins_above  # noqa: E402
from batchenv.traces import load_trace_times_s  # noqa: E402
from benchmarks.cli_parts import (  # noqa: E402
    add_scenario_path_argument,
    check_trace_files,
    chosen_trace_scenarios,
)
from benchmarks.proposed.common import display_path  # noqa: E402

COMMAND = "python benchmarks/trace_table.py"
OUT_DIR = REPO / "docs" / "results"
PEAK_BIN_S = 0.020
"""Bin (s) of the share of requests arriving faster than the server's largest throughput."""

SHIPPED = (
    # (label, trace_path, column, treatment of the timestamps)
    ("Azure conv 2023 (excerpt)", "package:azure_conv_excerpt", "TIMESTAMP", "as recorded (0.1 us)"),
    ("Azure conv 2023 (whole hour)", "package:azure_conv_hour", "TIMESTAMP", "as recorded (0.1 us)"),
    ("Azure LMM 2024 (excerpt)", "package:azure_lmm_excerpt", "arrival_s", "as recorded (1 ms)"),
    ("Mooncake conv (FAST'25)", "package:mooncake_conv", "recorded_s", "recorded: ties on a 3 s grid"),
    ("Mooncake conv (FAST'25)", "package:mooncake_conv", "arrival_s", "random spread (shipped, replayed)"),
    ("Mooncake conv (FAST'25)", "package:mooncake_conv", "even", "even spread (not shipped)"),
    (
        "ServeGen m-large (hour)",
        "package:servegen_m_large",
        "arrival_s",
        "generated from production statistics",
    ),
)


def _times(path: str, column: str) -> np.ndarray:
    if column == "even":
        recorded = load_trace_times_s(path, "recorded_s")
        return spread_ties_evenly(recorded, recording_granularity_s(recorded))
    return np.asarray(load_trace_times_s(path, column))


def _row(times_s: np.ndarray, capacity_per_s: float) -> dict:
    stats = characterise(times_s).to_dict()
    stats["share_above_capacity_20ms"] = share_in_bins_above(times_s, PEAK_BIN_S, capacity_per_s)
    return stats


def collect(names: Sequence[str] | None = None, command: str = COMMAND) -> dict:
    """All the numbers of the report, as plain data: the shipped traces and the halves of the
    trace scenarios ``names`` (None: every one, :func:`batchenv.scenarios.trace_scenarios`)."""
    default = load_scenario("default")
    capacity = model_capacity_per_s(default, "LLM-3")
    rates = {"30%": 0.3 * capacity, "60%": 0.6 * capacity}
    shipped = []
    for label, path, column, treatment in SHIPPED:
        times = _times(path, column)
        native = characterise(times).mean_rate_per_s
        at_rates = {"native": _row(times, capacity)}
        for key, rate in rates.items():
            at_rates[key] = _row((times - times[0]) * (native / rate), capacity)
        shipped.append(
            {"trace": label, "path": path, "column": column, "timestamps": treatment, "at_rate": at_rates}
        )
    scenarios = []
    for base in trace_scenarios() if names is None else names:
        config = load_scenario(base)
        entry = {"scenario": base, "rate_per_s": config.arrivals.rate_per_s, "parts": {}}
        for part in ("train", "test"):
            name = split_of(base, part)
            process = make_arrival_process(load_scenario(name))
            assert isinstance(process, TraceArrivals)
            times = process.one_pass_s()
            row = _row(times, capacity)
            row["scenario"] = name
            row["passes_per_episode"] = config.horizon_s / row["duration_s"]
            entry["parts"][part] = row
        scenarios.append(entry)
    return {
        "command": command,
        "llm3_capacity_per_s": capacity,
        "rates_per_s": rates,
        "peak_bin_s": PEAK_BIN_S,
        "shipped": shipped,
        "scenarios": scenarios,
    }


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _stat(key: str, digits: int = 2):
    return lambda row: _f(row[key], digits)


def _table(columns: list[tuple[str, str, object]], rows: list[dict]) -> list[str]:
    """A Markdown table: ``columns`` holds (header, alignment rule such as ``---:``, function of a
    row giving the cell)."""
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "|".join(c[1] for c in columns) + "|"]
    lines += ["| " + " | ".join(str(c[2](row)) for c in columns) + " |" for row in rows]
    return lines


_PEAKS = [
    ("peak 20 ms (/s)", "---:", _stat("peak_rate_20ms_per_s", 0)),
    ("peak 1 s (/s)", "---:", _stat("peak_rate_1s_per_s", 0)),
]


def _shipped_rows(data: dict) -> list[str]:
    rows = [{**item["at_rate"]["native"], **item} for item in data["shipped"]]
    columns = [
        ("trace", "---", lambda r: r["trace"]),
        ("timestamps", "---", lambda r: r["timestamps"]),
        ("requests", "---:", lambda r: f"{r['n_requests']:,}"),
        ("minutes", "---:", lambda r: _f(r["duration_s"] / 60, 1)),
        ("mean rate (/s)", "---:", _stat("mean_rate_per_s", 3)),
        ("CV", "---:", _stat("gap_cv")),
        ("tied", "---:", _stat("tied_share", 3)),
        ("IDC 1 s", "---:", _stat("dispersion_1s")),
        ("IDC 10 s", "---:", _stat("dispersion_10s")),
        *_PEAKS,
    ]
    return _table(columns, rows)


def _rescaled_rows(data: dict) -> list[str]:
    rows = [
        {**item["at_rate"][key], **item, "rate": key} for item in data["shipped"] for key in ("30%", "60%")
    ]
    columns = [
        ("trace", "---", lambda r: r["trace"]),
        ("timestamps", "---", lambda r: r["timestamps"]),
        ("rate", "---", lambda r: f"{r['rate']} of capacity"),
        ("mean rate (/s)", "---:", _stat("mean_rate_per_s")),
        ("IDC 1 s", "---:", _stat("dispersion_1s")),
        *_PEAKS,
        ("over cap.", "---:", _stat("share_above_capacity_20ms", 3)),
    ]
    return _table(columns, rows)


def _split_rows(data: dict) -> list[str]:
    rows = [
        {**entry["parts"][part], "base": entry["scenario"], "rate_per_s": entry["rate_per_s"], "half": part}
        for entry in data["scenarios"]
        for part in ("train", "test")
    ]
    columns = [
        ("scenario", "---", lambda r: r["base"]),
        ("rate_per_s", "---:", _stat("rate_per_s", 4)),
        ("half", "---", lambda r: r["half"]),
        ("requests", "---:", lambda r: f"{r['n_requests']:,}"),
        ("duration (s)", "---:", _stat("duration_s", 1)),
        ("passes", "---:", _stat("passes_per_episode")),
        ("mean rate (/s)", "---:", _stat("mean_rate_per_s", 3)),
        ("CV", "---:", _stat("gap_cv")),
        ("IDC 1 s", "---:", _stat("dispersion_1s")),
        *_PEAKS,
        ("over cap.", "---:", _stat("share_above_capacity_20ms", 3)),
    ]
    return _table(columns, rows)


def halves_from(path: Path, names: Sequence[str], capacity_per_s: float) -> tuple[list[dict], str]:
    """The halves of the trace scenarios ``names``, in that order, as an earlier run measured
    them, read from the ``traces.json`` it wrote (``path``), and the command of the run that
    measured them (that of ``path``, or the one ``path`` itself took its halves from).

    :raises ValueError: a file that is not such a report, lacks one of ``names`` or was measured
        against another capacity (another default system)."""
    try:
        data = json.loads(path.read_text())
        entries = {entry["scenario"]: entry for entry in data["scenarios"]}
        capacity = float(data["llm3_capacity_per_s"])
        command = str((data.get("halves_from") or data)["command"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a traces.json of trace_table.py ({exc})") from None
    missing = [name for name in names if name not in entries]
    if missing:
        raise ValueError(f"{path} has no halves of {missing[0]!r} (it has {sorted(entries)})")
    if not math.isclose(capacity, capacity_per_s, rel_tol=1e-12):
        raise ValueError(f"{path} was measured at a capacity of {capacity:g}/s, not {capacity_per_s:g}/s")
    return [entries[name] for name in names], command


def render(data: dict) -> str:
    capacity = data["llm3_capacity_per_s"]
    reused = data.get("halves_from")
    origin = (
        [
            f"The halves of the trace scenarios (the last section) are those measured by "
            f"`{reused['command']}`, read from `{reused['path']}`: their trace files are not shipped.",
        ]
        if reused
        else []
    )
    lines = [
        "# Arrival traces: what the shipped traces and the trace scenarios replay",
        "",
        f"Produced by `{data['command']}` (deterministic; no simulation). Sources and licences:",
        "`batchenv/data/ATTRIBUTION.md`. Capacity = the largest sustainable rate of one worker",
        f"running LLM-3 on the default system, {_f(capacity)} requests/s",
        "(`ServiceTable.model_throughput_per_s`).",
        "",
        "Columns: mean rate = (n - 1) / duration; CV = coefficient of variation of the inter-arrival",
        "gaps (1 for Poisson); tied = share of gaps equal to 0; IDC = index of dispersion of the",
        "counts per 1 s and per 10 s (variance / mean; 1 for Poisson); peak = largest number of",
        "arrivals in a window of 20 ms or 1 s starting at an arrival, per second; over cap. = share",
        "of the requests that arrive in a 20 ms bin whose rate exceeds the capacity.",
        *(["", *origin] if origin else []),
        "",
        "## Shipped traces, on their own time axis",
        "",
        *_shipped_rows(data),
        "",
        "The Mooncake trace was recorded on a 3 s grid (1,180 distinct timestamps, 1 to 28 requests",
        "each). Its CV and short-scale dispersion are therefore not measured but chosen by how the",
        "ties are spread: replayed as recorded they are batch arrivals (CV 3, most gaps 0); spread",
        "evenly over their interval they are smoother than Poisson; spread at random (uniformly,",
        "seeded) they are locally Poisson, which is what the scenarios replay. Above the grid the",
        "two spreads nearly agree (IDC 10 s); the ties give more there because a 10 s bin holds 3",
        "or 4 grid ticks. Rescaled to 30% and 60% of capacity the 3 s grid becomes 59 ms and 29 ms",
        "of replayed time: below that the arrival pattern is the spread's assumption, not data.",
        "",
        "The ServeGen hour holds no recorded timestamp: its arrivals are drawn from ServeGen's",
        "per-client rates and fitted gap distributions of production traffic, per 10-minute window",
        "(`batchenv/servegen.py`). Its figures measure that generation: the clients' bursts (the",
        "tied gaps are requests drawn at the same 0.1 ms, from clients whose fitted gaps are mostly",
        "near 0) and the mix of clients are from the data, each timestamp is a draw.",
        "",
        "## The same traces rescaled to the scenarios' rates",
        "",
        "Rescaling multiplies the time axis by one factor: the CV does not change, the dispersion",
        "per fixed second and the peaks do.",
        "",
        *_rescaled_rows(data),
        "",
        "## Train and test halves of the trace scenarios",
        "",
        "Each trace scenario `X` has `X_train` (`arrivals.trace_window: [0.0, 0.5]`, the first half",
        "of the trace in time) and `X_test` (`[0.5, 1.0]`). Both halves are replayed on the whole",
        "trace's time axis, so each keeps its own mean rate (the scenario's `rate_per_s` is the whole",
        "trace's). One pass through a half lasts `duration`; a longer episode wraps around within",
        "the half (`passes` = passes per episode of the scenario's horizon).",
        "",
        *_split_rows(data),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=OUT_DIR,
        help=f"folder of traces.json and traces.md (default: {display_path(OUT_DIR)})",
    )
    add_scenario_path_argument(parser)
    parser.add_argument(
        "--scenarios", default="", help="comma-separated trace scenarios with a time split (default: all)"
    )
    parser.add_argument(
        "--halves-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="take the halves of the --scenarios from the traces.json of an earlier run instead of "
        "their trace files (one batchenv does not ship, e.g. FineServe's, when it is not at hand); "
        "the shipped traces are measured again",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    chosen, known = chosen_trace_scenarios(parser, args)
    command = COMMAND + (" " + shlex.join(argv) if argv else "")
    if args.halves_from is None:
        check_trace_files(parser, chosen or known)
        data = collect(chosen or None, command)
    else:
        if not chosen:
            parser.error("--halves-from needs --scenarios: the scenarios whose halves it holds")
        data = collect([], command)
        try:
            data["scenarios"], earlier = halves_from(args.halves_from, chosen, data["llm3_capacity_per_s"])
        except ValueError as exc:
            parser.error(f"--halves-from: {exc}")
        data["halves_from"] = {"path": display_path(args.halves_from), "command": earlier}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_json_atomic(args.out_dir / "traces.json", data)
    md_path = write_atomic(args.out_dir / "traces.md", render(data))
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
