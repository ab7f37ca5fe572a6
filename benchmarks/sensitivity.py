"""Sensitivity of the suite's conclusions to the cost weights: the headline comparisons rerun at
latency weights 0.1, 0.3, 3 and 10 per second and at two other quality profiles, with the tuned
baselines retuned for each.

    nice -n 10 python benchmarks/sensitivity.py --jobs 2          # about an hour on 2 cores

Settings, agents and tuning: :mod:`benchmarks.objectives.sensitivity`. The conclusions checked
(:func:`conclusions`), each with the rule that says whether it holds:

- C1: the proposed scheduler is within 1% of the optimum's cost on every one-worker Poisson
  scenario of the suite;
- C2: it costs less than the retuned timeout on the scenarios with changing load, traces or
  several workers: *holds* when it is significantly cheaper (95% interval of the paired gap below
  0) somewhere and significantly dearer nowhere, *level* when neither anywhere, *reverses* when
  it is significantly dearer in more scenarios than significantly cheaper, else *partly*;
- C3: against the retuned util_switch on the same scenarios (seed-paired gap between the two):
  the count of scenarios where each is significantly cheaper; *holds* when util_switch is
  significantly cheaper nowhere;
- C4: the shipped learned agents are within 2% of the optimum on the one-worker Poisson scenarios
  and the randomised-rate one (they keep the policy trained at w = 1);
- C5: on the randomised-rate scenario they do not reach the proposed scheduler;
- C6: the proposed scheduler's p99 latency against the timeout's (how many scenarios it is
  higher in; a description, not a claim).

Writes ``docs/results/sensitivity.md`` and ``.json`` next to it, and prints where.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.objectives.common import (  # noqa: E402
    add_checkpoints_argument,
    add_study_arguments,
    check_study_arguments,
    checkpoint_paths,
    scenario_names,
    scope_cuts,
    scope_note,
    write_results,
)
from benchmarks.objectives.sensitivity import NON_POISSON, POISSON_ONE_WORKER, SETTINGS, run_study  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "results" / "sensitivity.md"
PROG = "python benchmarks/sensitivity.py"
RANDOMISED = "default_randomised"
NEAR_OPTIMUM = 0.01
"""C1: the largest gap to the optimum that still counts as "within" (1%)."""
RL_NEAR_OPTIMUM = 0.02
"""C4: the largest gap of a learned agent to the optimum that still counts as close (2%)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_checkpoints_argument(parser)
    parser.add_argument(
        "--scenarios", default="suite", help="comma-separated scenario names; 'suite' = the scenario suite"
    )
    add_study_arguments(parser, DEFAULT_OUT, n_seeds=10)
    return parser


def _significance(gap: Sequence[float]) -> int:
    """-1 significantly cheaper (interval below 0), +1 significantly dearer, 0 level."""
    mean, half = gap
    if not (math.isfinite(mean) and math.isfinite(half)):
        return 0
    return -1 if mean + half < 0 else (1 if mean - half > 0 else 0)


def conclusions(data: dict[str, Any], rl_agents: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per setting, the figures and verdicts of C1-C6 (module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    scenarios = data["scenarios"]
    poisson = [n for n in POISSON_ONE_WORKER if n in scenarios]
    changing = [n for n in NON_POISSON if n in scenarios]
    randomised = [n for n in (RANDOMISED,) if n in scenarios]
    for setting in (s.label for s in SETTINGS):

        def gap(name: str, agent: str, setting: str = setting) -> list[float]:
            return scenarios[name][setting]["agents"].get(agent, {}).get("gap", [math.nan, math.nan])

        c1 = max((gap(n, "proposed")[0] for n in poisson), default=math.nan)
        c2 = [_significance(gap(n, "proposed")) for n in changing]
        c2_best = min((gap(n, "proposed")[0] for n in changing), default=math.nan)
        c3 = [_significance(scenarios[n][setting]["proposed_vs_util_switch"]) for n in changing]
        rl = {
            agent: max((gap(n, agent)[0] for n in [*poisson, *randomised]), default=math.nan)
            for agent in rl_agents
        }
        c5 = {
            agent: (gap(RANDOMISED, agent)[0] - gap(RANDOMISED, "proposed")[0]) if randomised else math.nan
            for agent in rl_agents
        }
        tails = [
            n
            for n in [*poisson, *changing]
            if scenarios[n][setting]["agents"]["proposed"]["p99_ms"]
            > scenarios[n][setting]["agents"]["timeout"]["p99_ms"]
        ]
        lower, higher = c2.count(-1), c2.count(1)
        out[setting] = {
            "C1": {"max_gap": c1, "holds": c1 <= NEAR_OPTIMUM},
            "C2": {
                "lower": lower,
                "level": c2.count(0),
                "higher": higher,
                "best_gap": c2_best,
                "verdict": _c2_verdict(lower, higher),
            },
            "C3": {
                "proposed_lower": c3.count(-1),
                "level": c3.count(0),
                "util_switch_lower": c3.count(1),
                "holds": c3.count(1) == 0,
            },
            "C4": {"max_gap": rl, "holds": all(v <= RL_NEAR_OPTIMUM for v in rl.values())},
            "C5": {
                "gap_over_proposed": c5,
                "holds": all(v > 0 for v in c5.values()) if randomised else None,
            },
            "C6": {
                "p99_higher_than_timeout": len(tails),
                "of": len(poisson) + len(changing),
                "scenarios": tails,
            },
        }
    return out


def _c2_verdict(lower: int, higher: int) -> str:
    """C2 from the counts of scenarios where the proposed scheduler is significantly cheaper
    (``lower``) and dearer (``higher``) than the retuned timeout."""
    if higher == 0:
        return "holds" if lower > 0 else "level (no significant difference)"
    return "reverses" if higher > lower else "partly"


def _verdict(holds: bool | None) -> str:
    return "n/a" if holds is None else ("holds" if holds else "**fails**")


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.2f}%"


def to_markdown(data: dict[str, Any]) -> str:
    settings = [s.label for s in SETTINGS]
    verdicts = data["conclusions"]
    rl = data["settings"]["rl_agents"]
    lines = [
        "# Sensitivity of the conclusions to the cost weights",
        "",
        "Produced by:",
        "",
        f"```\n{data['command']}\n```",
        "",
        data["shortened"],
        f"The suite's scenarios, evaluation seeds {data['settings']['seeds'][0]}-"
        f"{data['settings']['seeds'][-1]}, "
        + (
            "each scenario's horizon"
            if data["settings"]["horizon_s"] is None
            else f"horizon {data['settings']['horizon_s']:g} s (retuning included)"
        )
        + ", common random numbers. Every "
        "number of the project's other results prices one second of latency like one unit of "
        "quality (w = 1 per second) with qualities 1.00/0.97/0.92; here the score is "
        "`quality(m) - w * latency` under the settings in the columns. Under each setting timeout "
        "and util_switch are retuned on the training seeds by the grid search of `python -m "
        "apps.tune` for that setting's cost, the optimum and the proposed scheduler are solved for "
        "it, and the learned agents keep the policy they were trained with (w = 1, the default "
        "qualities; not retrained). Gap: (mean cost - mean cost of the reference) / mean cost of "
        "the reference, 95% interval from seed-paired differences; reference: the optimum on "
        "one-worker Poisson scenarios (and the randomised-rate one), else the retuned timeout.",
        "",
        "## Conclusions",
        "",
        "| conclusion (rule) | " + " | ".join(settings) + " |",
        "|---|" + "|".join("---" for _ in settings) + "|",
    ]

    def row(title: str, cell: Any) -> None:
        lines.append(f"| {title} | " + " | ".join(cell(verdicts[s]) for s in settings) + " |")

    row(
        f"C1 proposed within {100 * NEAR_OPTIMUM:g}% of the optimum (one-worker Poisson; largest gap)",
        lambda v: f"{'holds' if v['C1']['holds'] else '**fails**'} ({_pct(v['C1']['max_gap'])})",
    )
    row(
        "C2 proposed vs retuned timeout, changing load / traces / multi-GPU (significantly lower, level, "
        "higher; best gap)",
        lambda v: (
            f"{v['C2']['verdict']} ({v['C2']['lower']}/{v['C2']['level']}/{v['C2']['higher']}; "
            f"{_pct(v['C2']['best_gap'])})"
        ),
    )
    row(
        "C3 proposed vs retuned util_switch, same scenarios (proposed significantly lower, level, "
        "util_switch lower)",
        lambda v: (
            f"{'holds' if v['C3']['holds'] else '**fails**'} ({v['C3']['proposed_lower']}/"
            f"{v['C3']['level']}/{v['C3']['util_switch_lower']})"
        ),
    )
    row(
        f"C4 learned agents within {100 * RL_NEAR_OPTIMUM:g}% of the optimum (largest gap: "
        + ", ".join(rl)
        + ")",
        lambda v: (
            f"{'holds' if v['C4']['holds'] else '**fails**'} ("
            + ", ".join(_pct(v["C4"]["max_gap"][a]) for a in rl)
            + ")"
        ),
    )
    row(
        "C5 learned agents above the proposed scheduler on randomised rates (gap difference)",
        lambda v: (
            f"{_verdict(v['C5']['holds'])} ("
            + ", ".join(_pct(v["C5"]["gap_over_proposed"][a]) for a in rl)
            + ")"
        ),
    )
    row(
        "C6 scenarios where the proposed p99 is above the timeout's",
        lambda v: f"{v['C6']['p99_higher_than_timeout']} of {v['C6']['of']}",
    )
    lines += ["", "## Gaps per scenario", ""]
    agents = ["timeout", "util_switch", "proposed", *rl]
    for name, per_setting in data["scenarios"].items():
        ref = per_setting[settings[0]]["reference"]
        lines += [f"### {name} (reference: {ref})", ""]
        lines.append("| agent | " + " | ".join(settings) + " |")
        lines.append("|---|" + "|".join("---" for _ in settings) + "|")
        for agent in agents:
            cells = []
            for s in settings:
                entry = per_setting[s]["agents"].get(agent)
                cells.append(
                    "n/a" if entry is None else f"{_pct(entry['gap'][0])} ± {100 * entry['gap'][1]:.2f}"
                )
            lines.append(f"| {agent} | " + " | ".join(cells) + " |")
        cells = [
            f"{per_setting[s]['agents']['optimal']['cost'][0]:.4f}"
            if "optimal" in per_setting[s]["agents"]
            else f"{per_setting[s]['agents']['timeout']['cost'][0]:.4f}"
            for s in settings
        ]
        lines.append("| reference cost | " + " | ".join(cells) + " |")
        tuned = [
            f"{p['model']} B={p['preferred_batch_size']} T={p['max_queue_delay_ms']:g}"
            for p in (per_setting[s]["tuned"]["timeout"] for s in settings)
        ]
        lines.append("| retuned timeout | " + " | ".join(tuned) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    checkpoints = checkpoint_paths(parser, args.checkpoints)
    names = scenario_names(parser, args.scenarios)
    study = check_study_arguments(parser, args)
    shortened = (
        [] if args.scenarios == "suite" else [f"the scenarios {', '.join(names)} instead of the suite"]
    )
    shortened += scope_cuts(args, 10)
    start = time.perf_counter()
    with study.backend.create() as backend:
        data = run_study(names, SETTINGS, study.seeds, checkpoints, backend, study.horizon_s)
    rl = [c.stem for c in checkpoints]
    data["command"] = f"{PROG} {shlex.join(argv)}".strip()
    data["shortened"] = scope_note(PROG, argv, shortened)
    data["settings"] = {
        "seeds": study.seeds,
        "horizon_s": study.horizon_s,
        "settings": [
            {"label": s.label, "w_latency_per_s": s.w_latency_per_s, "qualities": s.qualities}
            for s in SETTINGS
        ],
        "rl_agents": rl,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    data["conclusions"] = conclusions(data, rl)
    write_results(args.out, to_markdown(data), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
