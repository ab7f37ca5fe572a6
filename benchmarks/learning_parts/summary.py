"""The learning benchmark's summary, the block between :data:`RL_DOC_BEGIN` and
:data:`RL_DOC_END` in docs/rl.md."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.learning_parts.tables import (
    _assessed_labels,
    _gap_cell,
    _pct,
    _seeds,
    comparison_lines,
    episodes_text,
    gate_lines,
)

RL_DOC_BEGIN = "<!-- benchmarks/learning.py: begin -->"
RL_DOC_END = "<!-- benchmarks/learning.py: end -->"
LOW_RATES = (
    "poisson_rate_1",
    "poisson_rate_3",
    "poisson_rate_10",
    "bursty_low",
    "azure_trace_native_test",
    "mooncake_conv_test",
)
"""Assessment scenarios below 10 requests/s (mean rate): the quiet servers of the summary."""


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The summary that :func:`replace_block` puts in docs/rl.md: per agent, how many assessment
    scenarios it is within 2% of the baselines on, its worst scenario and the quiet servers."""
    meta = result["meta"]
    labels = _assessed_labels(result)
    assessment = result["assessment"]
    seeds = meta["assess_seeds"]
    lines = [
        f"Produced by `{meta['command']}` ({meta['date']}; every table of "
        "[results/learning.md](results/learning.md)). Assessment seeds "
        f"{seeds[0]}-{seeds[-1]}, {meta['assess_horizon_s']:g} s episodes, {len(assessment)} scenarios; "
        "gap to the better of greedy and the tuned timeout, mean ± 95% CI across training seeds "
        "(a shipped checkpoint is one model, no CI). " + episodes_text(result),
        "",
        "| agent | models | mean within 2% | a seed over 2% on | worst scenario (its mean gap) | mean gap |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        gaps = {
            name: entry["agents"][label]["summary"]["gap_to_baselines"]
            for name, entry in assessment.items()
            if label in entry["agents"]
        }
        if not gaps:
            continue
        experiment = result["experiments"].get(label)
        if experiment is None:
            models = "1 (shipped)"
        else:
            steps = sorted(set(experiment.get("steps") or []))
            models = f"{_seeds(len(experiment['models']))}, {'/'.join(f'{k:,}' for k in steps)} steps"
        within = sum(1 for g in gaps.values() if g["mean"] <= 0.02)
        over = [f"{name} ({_pct(g['worst'])})" for name, g in gaps.items() if g["worst"] > 0.02]
        worst = max(gaps, key=lambda n: gaps[n]["mean"])
        mean = float(np.mean([g["mean"] for g in gaps.values()]))
        lines.append(
            f"| {label} | {models} | {within} of {len(gaps)} | {', '.join(over) or 'none'} | {worst} "
            f"({_gap_cell({'g': gaps[worst]}, 'g')}) | {_pct(mean)} |"
        )
    quiet = [name for name in LOW_RATES if name in assessment]
    if quiet:
        lines += [
            "",
            "Below 10 requests/s (gap to the better of greedy and the tuned timeout):",
            "",
            "| scenario | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for name in quiet:
            agents = assessment[name]["agents"]
            cells = [
                _gap_cell(agents[label]["summary"], "gap_to_baselines") if label in agents else "n/a"
                for label in labels
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    gates = gate_lines(result)
    if gates:
        lines += [
            "",
            "Shipping gate (the thresholds of tests/test_checkpoints.py, benchmarks/learning_gate.py):",
            "",
        ]
        lines += gates
    compared = comparison_lines(result, "###")
    return lines + (["", *compared[:-1]] if compared else [])


def replace_block(text: str, block: str) -> str:
    """``text`` with the lines between :data:`RL_DOC_BEGIN` and :data:`RL_DOC_END` replaced by
    ``block``.

    :raises SystemExit: the markers are missing or out of order.
    """
    begin, end = text.find(RL_DOC_BEGIN), text.find(RL_DOC_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"learning.py: --rl-doc needs the lines {RL_DOC_BEGIN} and {RL_DOC_END}")
    return text[: begin + len(RL_DOC_BEGIN)] + "\n" + block + "\n" + text[end:]
