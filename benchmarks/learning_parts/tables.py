"""The learning benchmark's Markdown report (``docs/results/learning*.md``): the experiments and
their models, the training evaluations, the gaps per scenario and per model, the optimum table,
the shipping gate and the tuned timeouts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

MODEL_CHOICE = {
    "best": "`best_model.zip`: the lowest mean gap to the reference of the training evaluation, on "
    "training-side scenarios only",
    "final": "`final_model.zip`: at the end of training",
}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _gap_cell(summary: dict[str, Any], key: str) -> str:
    if key not in summary:
        return "n/a"
    s = summary[key]
    ci = "" if not math.isfinite(s["ci95"]) else f" ± {s['ci95']:.2%}"
    return f"{_pct(s['mean'])}{ci}"


def _assessed_labels(result: dict[str, Any]) -> list[str]:
    """The assessed experiments, then the shipped checkpoints (the columns of the tables)."""
    names = [n for n, e in result["experiments"].items() if e.get("assessed", True)]
    return names + [Path(p).stem for p in result.get("shipped", [])]


def _steps_text(trained: int | None, kept: int | None) -> str:
    """`` (kept at 300,000 of 1,007,616 steps)``, or `` (1,007,616 steps)`` for the last model."""
    if trained is None:
        return ""
    if kept is None or kept == trained:
        return f" ({trained:,} steps)"
    return f" (kept at {kept:,} of {trained:,} steps)"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def comparison_lines(result: dict[str, Any], heading: str) -> list[str]:
    """The table of the experiments' own training evaluation at a common step (the ablations),
    under a ``heading`` title (``"##"``, ``"###"``); empty when fewer than two have it."""
    lines: list[str] = []
    at_step = result.get("training_evaluation_at") or {}
    compared = {name: table for name, table in at_step.get("experiments", {}).items() if table}
    if len(compared) > 1:
        names = list(compared)
        targets = list(next(iter(compared.values())))
        lines += [
            f"{heading} Training evaluation at {at_step['step']:,} steps: what each change does",
            "",
            "The runs' own evaluation (training-side scenarios only, seeds "
            "10000-10001, 30 s) at the same step: gap to the best of greedy, the timeout and the "
            "proposed scheduler, mean ± 95% CI across training seeds.",
            "",
            "| target | "
            + " | ".join(f"{n} ({_seeds(compared[n]['mean over targets']['n'])})" for n in names)
            + " |",
            "|---|" + "---|" * len(names),
        ]
        for target in targets:
            cells = []
            for name in names:
                cell = compared[name].get(target)
                ci = "" if cell is None or not math.isfinite(cell["ci95"]) else f" ± {cell['ci95']:.2%}"
                cells.append("n/a" if cell is None else f"{_pct(cell['mean'])}{ci}")
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def target_curve_lines(result: dict[str, Any]) -> list[str]:
    """One table per target of ``--curve-targets``: the training evaluation at every step, per
    experiment (gap to the reference, mean ± 95% CI across seeds, and the share of requests on
    the first model); empty without such targets."""
    lines: list[str] = []
    for target in result["meta"].get("curve_targets", []):
        curves = {
            name: experiment["target_curves"][target]
            for name, experiment in result["experiments"].items()
            if experiment.get("target_curves", {}).get(target)
        }
        if not curves:
            continue
        names = list(curves)
        first_model = next(iter(next(iter(curves.values()))[0]["model_mix"]), None)
        steps = sorted({row["timesteps"] for curve in curves.values() for row in curve})
        lines += [
            f"## Over training: {target}",
            "",
            f"The runs' own evaluation of {target} (seeds 10000-10001, 30 s) at every evaluation step: "
            "gap to the reference (the best of greedy, the timeout and the proposed scheduler), mean "
            f"± 95% CI across training seeds, and in brackets the mean share of requests sent to "
            f"{first_model}. Every seed's model at that step, whichever the run kept.",
            "",
            "| steps | " + " | ".join(f"{n} ({_seeds(curves[n][0]['n'])})" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for step in steps:
            cells = []
            for name in names:
                row = next((r for r in curves[name] if r["timesteps"] == step), None)
                if row is None:
                    cells.append("n/a")
                    continue
                ci = "" if not math.isfinite(row["ci95"]) else f" ± {row['ci95']:.2%}"
                share = row["model_mix"].get(first_model, float("nan"))
                cells.append(f"{_pct(row['mean'])}{ci} [{share:.0%}]")
            lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def target_seed_lines(result: dict[str, Any]) -> list[str]:
    """One table per target of ``--curve-targets``: per seed and experiment, the target's gap at
    the step the run kept, at the step where the target was lowest, and at the last step; empty
    without such targets."""
    lines: list[str] = []
    for target in result["meta"].get("curve_targets", []):
        per_seed = {
            name: {row["seed"]: row for row in experiment["target_seeds"][target]}
            for name, experiment in result["experiments"].items()
            if experiment.get("target_seeds", {}).get(target)
        }
        if not per_seed:
            continue
        names = list(per_seed)
        lines += [
            f"## Per seed: {target}",
            "",
            f"The runs' own evaluation of {target} (seeds 10000-10001, 30 s): its gap to the reference "
            "at the step the run kept (lowest mean over the training evaluation's targets), at the "
            "step where this target alone was lowest, and at the last step (steps in thousands).",
            "",
            "| seed | " + " | ".join(f"{n}: kept / lowest / last" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for seed in sorted({seed for rows in per_seed.values() for seed in rows}):
            cells = []
            for name in names:
                row = per_seed[name].get(seed)
                cells.append(
                    "n/a"
                    if row is None
                    else f"{_pct(row['kept_gap'])} ({row['kept_step'] // 1000}k) / "
                    f"{_pct(row['best_gap'])} ({row['best_step'] // 1000}k) / {_pct(row['last_gap'])}"
                )
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def episodes_text(result: dict[str, Any]) -> str:
    """The sentence that names the scenarios assessed on more than the assessment seeds (a quiet
    scenario: :func:`scenario_seeds`), each with its number of episodes; empty when none is."""
    meta = result["meta"]
    base = len(meta["assess_seeds"])
    more = {
        name: len(entry["seeds"])
        for name, entry in result["assessment"].items()
        if len(entry.get("seeds", ())) > base
    }
    if not more:
        return ""
    listed = ", ".join(f"{name} {n}" for name, n in more.items())
    return (
        f"A scenario whose {base} episodes hold fewer than {meta['assess_min_requests']:,} requests on "
        f"average is assessed on the seeds that follow too, up to that many requests: {listed} episodes."
    )


def model_lines(result: dict[str, Any]) -> list[str]:
    """Per assessed model: its own training evaluation where it was kept (what chooses among
    the seeds without the assessment), its worst scenario and the scenarios where it is over 2%."""
    kept = {
        m: g
        for e in result["experiments"].values()
        for m, g in zip(e["models"], e.get("kept_gap") or [None] * len(e["models"]), strict=True)
    }
    per_model: dict[str, list[tuple[float, str]]] = {}
    for scenario, entry in result["assessment"].items():
        for agent in entry["agents"].values():
            for row in agent["models"]:
                per_model.setdefault(row["model"], []).append((row["gap_to_baselines"], scenario))
    lines = [
        "## Per model: its training evaluation, its worst scenario, where it is over 2%",
        "",
        "The training evaluation's mean gap (training-side scenarios, seeds 10000-10001) where the "
        "model was kept ranks the seeds of an experiment without the assessment.",
        "",
        "| model | training evaluation | worst scenario (gap to the baselines) | over 2% on |",
        "|---|---|---|---|",
    ]
    for model, gaps in per_model.items():
        worst = max(gaps)
        over = ", ".join(f"{name} ({_pct(g)})" for g, name in gaps if g > 0.02) or "none"
        lines.append(f"| `{model}` | {_pct(kept.get(model))} | {worst[1]} ({_pct(worst[0])}) | {over} |")
    return lines


def gate_lines(result: dict[str, Any]) -> list[str]:
    """The shipping gate as a Markdown table (empty without one)."""
    gates = result.get("shipping_gate") or {}
    if not gates:
        return []
    lines = [
        "| model | default_randomised: mean / greedy (worst seed) | 200/s: mean / optimum | "
        "300/s: mean / optimum | passes |",
        "|---|---|---|---|---|",
    ]
    for path, g in gates.items():
        r = g["randomised"]
        lines.append(
            f"| `{path}` | {r['mean_over_greedy']:.4f} ({r['worst_seed_over_greedy']:.4f}) | "
            f"{g['rate_200']['mean_over_optimal']:.4f} | {g['rate_300']['mean_over_optimal']:.4f} | "
            f"{'yes' if g['passes'] else 'no'} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    out = meta.get("out", "benchmarks/results/learning.json")
    curves = meta.get("plot", "benchmarks/results/learning.png")
    files = f"`{out}`, learning curves `{curves}`" if curves else f"`{out}`; no learning curves"
    if result["experiments"]:
        models = (
            "Each experiment is trained once per seed by the command listed under it (Ray Tune "
            f"trials, `train.py --seeds`); every seed's {meta['model']} model "
            f"({MODEL_CHOICE[meta['model']]}) is"
        )
    else:
        models = "No experiment: the shipped checkpoints (`checkpoints/*.zip`), one model each, are"
    lines = [
        "# Learning: RL agents across training seeds, on the suite, low rates and held-out traces",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} ({files}). {models} "
        f"assessed on seeds {meta['assess_seeds'][0]}-{meta['assess_seeds'][-1]} "
        f"({meta['assess_horizon_s']:g} s "
        "episodes, never used for training or model selection), paired with the references on the same "
        "arrivals. Gap = (cost - reference cost) / reference cost of the mean cost per request; "
        "**baselines** = the better of greedy and the timeout tuned on training seeds (on a trace's "
        "`_test` half: tuned on its `_train` half); mean ± 95% CI across training seeds (Student t), "
        "and the worst seed. Scope: the default system (one worker, three models, "
        "w_latency = 1 per s, no SLO penalty), each scenario at its own rate and horizon. "
        + episodes_text(result),
        "",
    ]
    for name, experiment in result["experiments"].items():
        assessed = experiment.get("assessed", True)
        title = name if assessed else f"{name} (compared by its training evaluation only)"
        lines += [f"## {title}", "", experiment["description"] + ".", ""]
        lines += [f"Training command: `{experiment['command']}`", ""]
        trained_by = experiment.get("trained_by", [])
        if trained_by and trained_by != [experiment["command"]]:
            lines += ["Trained by (the sweep folders' `command.txt`):", ""]
            lines += [f"- `{command}`" for command in trained_by] + [""]
        if not experiment["models"]:
            lines += ["Not trained.", ""]
            continue
        asked, found = experiment.get("seeds_asked"), len(experiment["models"])
        if asked and found < asked:
            lines += [
                f"Finished seeds: {found} of {asked}; the others did not finish (`python "
                "benchmarks/learning.py` trains what is missing, into a continuation sweep). No claim "
                "rests on fewer than three seeds.",
                "",
            ]
        steps = experiment.get("steps") or [None] * len(experiment["models"])
        kept = experiment.get("kept_at") or steps
        lines += [
            "Models: "
            + ", ".join(
                f"`{m}`" + _steps_text(n, k)
                for m, n, k in zip(experiment["models"], steps, kept, strict=True)
            )
            + ".",
            "",
        ]
    lines += comparison_lines(result, "##")
    lines += target_curve_lines(result)
    lines += target_seed_lines(result)
    labels = _assessed_labels(result)
    lines += [
        "## Gap to the baselines (the better of greedy and the tuned timeout) per scenario",
        "",
        "Mean ± 95% CI across training seeds (worst seed in brackets); a shipped checkpoint is one model.",
        "",
        "| scenario | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    worst: dict[str, float] = {}
    for scenario, entry in result["assessment"].items():
        cells = []
        for label in labels:
            agent = entry["agents"].get(label)
            if agent is None:
                cells.append("n/a")
                continue
            s = agent["summary"]["gap_to_baselines"]
            worst[label] = max(worst.get(label, -math.inf), s["worst"])
            cell = _gap_cell(agent["summary"], "gap_to_baselines")
            cells.append(cell if s["n"] == 1 else f"{cell} [{_pct(s['worst'])}]")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("| **worst** | " + " | ".join(_pct(worst.get(label)) for label in labels) + " |")
    lines += ["", *model_lines(result)]
    lines += [
        "",
        "## Gap to the exact optimum (Poisson scenarios) and to the tuned timeout alone",
        "",
        "| scenario | agent | gap to optimum | gap to tuned timeout | gap to greedy | p99 ms | quality |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, entry in result["assessment"].items():
        for label in labels:
            agent = entry["agents"].get(label)
            if agent is None:
                continue
            s = agent["summary"]
            lines.append(
                f"| {scenario} | {label} | {_gap_cell(s, 'gap_to_optimal')} | "
                f"{_gap_cell(s, 'gap_to_timeout')} | {_gap_cell(s, 'gap_to_greedy')} | "
                f"{s['latency_p99_ms']['mean']:.1f} | "
                f"{s['mean_quality']['mean']:.4f} |"
            )
        lines += _timeout_row(scenario, entry["references"])
    if result.get("shipping_gate"):
        lines += [
            "",
            "## Shipping gate: tests/test_checkpoints.py's thresholds",
            "",
            "The regression gate of the checkpoints trained on default_randomised, which a model must "
            "pass to replace one of them; the mixture checkpoints ship beside them and are held to the "
            "2% goal instead (docs/rl.md, tests/test_checkpoints.py) (benchmarks/learning_gate.py: "
            "seeds 0-5, 60 s; default_randomised: mean below 0.5 x greedy's and every seed at most 1.01 x; "
            "200/s and 300/s: mean at most 1.06 and 1.01 x the optimum's, every seed below 0.6 x greedy's).",
            "",
            *gate_lines(result),
        ]
    lines += [
        "",
        "## Tuned timeouts (the reference)",
        "",
        "| scenario | tuned on | parameters | source |",
        "|---|---|---|---|",
    ]
    for scenario, entry in result["assessment"].items():
        t = entry["timeout"]
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        lines.append(f"| {scenario} | {t['tuned_on']} | {params} | {t['source']} |")
    return "\n".join(lines) + "\n"


def _timeout_row(scenario: str, references: dict[str, Any]) -> list[str]:
    """The tuned timeout's own row of the optimum table, where the optimum applies: how far the
    reference itself is from the optimum (empty elsewhere)."""
    timeout, optimal, greedy = (references.get(k, {}) for k in ("timeout_tuned", "optimal", "greedy"))
    if "cost_per_request" not in optimal or "cost_per_request" not in timeout:
        return []
    cost = timeout["cost_per_request"]
    to_greedy = _pct((cost - greedy["cost_per_request"]) / greedy["cost_per_request"])
    to_optimal = _pct((cost - optimal["cost_per_request"]) / optimal["cost_per_request"])
    return [
        f"| {scenario} | timeout (tuned) | {to_optimal} | +0.00% | {to_greedy} | "
        f"{timeout['latency_p99_ms']:.1f} | n/a |"
    ]
