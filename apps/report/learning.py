"""The quoted figures of the learning benchmark (``python benchmarks/learning.py``; optional).

Its JSON holds the experiments (each trained once per training seed: the models, their steps and
the training evaluation's learning curve, mean and 95% interval across seeds), the shipped
checkpoints, and the assessment of every model on fresh seeds per scenario: per agent, the gap of
the cost per request to the baselines (the better of greedy and the tuned timeout), to the tuned
timeout alone and, on Poisson loads, to the exact optimum, each summarised across training seeds
(``summary``: mean, ci95, worst, n).
"""

from __future__ import annotations

import math
from typing import Any

from apps.report.formatting import fint, fpct
from apps.report.macros import Macros, add_pending
from apps.report.names import ALGO_NAMES
from apps.report.sources import LEARNING, LEARNING_BANDS, LEARNING_RERUN, BuildError, need

__all__ = [
    "BANDS_KEYS",
    "PICK_KEYS",
    "RERUN_AGENTS",
    "RERUN_KEYS",
    "RL_AGENTS",
    "RL_KEYS",
    "RL_TOLERANCE",
    "bands_numbers",
    "learning_numbers",
    "rerun_numbers",
    "rl_agent_label",
    "rl_rows",
]

RL_TOLERANCE = 0.02
"""The learned agents' goal: never more than this fraction worse than the baselines."""
RL_AGENTS = {
    "ppo_mixture": "PpoMix",
    "dqn_mixture": "DqnMix",
    "ppo_default": "PpoShip",
    "dqn_default": "DqnShip",
    "ppo_default_mixture": "PpoShipMix",
    "dqn_default_mixture": "DqnShipMix",
}
"""Agents of the assessment the text quotes: macro token."""
_SUMMARY_ITEMS = (
    ("Seeds", "training seeds (models)"),
    ("WorstBase", "max over scenarios of summary.gap_to_baselines.mean (%)"),
    ("OverTol", "scenarios whose summary.gap_to_baselines.mean > the tolerance"),
)
"""Per-agent figures of the assessment summary that both results files give: name, key."""


def _agent_keys(prefix: str, agents: dict[str, str], items: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """One macro per agent and item: ``{prefix}{item}{token}`` -> ``"{agent}: {key}"``."""
    return {f"{prefix}{what}{tok}": f"{agent}: {key}" for agent, tok in agents.items() for what, key in items}


RL_KEYS = {
    "resRLSteps": "min over the assessed experiments of steps (per model)",
    "resRLAssessSeeds": "len(meta.assess_seeds)",
    "resRLAssessHorizon": "meta.assess_horizon_s (s)",
    "resRLScenarios": "number of assessment scenarios",
    "resRLTolerance": "the goal: at most this gap to the baselines (%)",
    **_agent_keys(
        "resRL",
        RL_AGENTS,
        (
            *_SUMMARY_ITEMS,
            ("WorstBaseScen", "the scenario of that maximum"),
            ("OptMax", "max over Poisson scenarios of summary.gap_to_optimal.mean (%)"),
        ),
    ),
}


def rl_agent_label(agent: str) -> str:
    """``ppo_mixture`` -> ``PPO (mixture)``, ``dqn_default`` -> ``DQN (shipped)``,
    ``ppo_default_mixture`` -> ``PPO (shipped, mixture)``."""
    algo, _, variant = agent.partition("_")
    name = ALGO_NAMES.get(algo, algo)
    if variant.startswith("default"):
        trained_on = variant.removeprefix("default").lstrip("_").replace("_", " ")
        return f"{name} (shipped{', ' + trained_on if trained_on else ''})"
    return f"{name} ({variant.replace('_', ' ')})"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def rl_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per assessed agent: training seeds, the worst mean gap to the baselines and its scenario,
    how many scenarios exceed :data:`RL_TOLERANCE`, and the largest mean gap to the optimum
    (fractions; None where no scenario has one)."""
    assessment = data.get("assessment") or {}
    if not assessment:
        raise BuildError(f"{LEARNING}: no assessment")
    agents: list[str] = []
    for entry in assessment.values():
        agents += [a for a in entry.get("agents", {}) if a not in agents]
    rows: dict[str, dict[str, Any]] = {}
    for agent in agents:
        base: list[tuple[float, str]] = []
        optimal: list[float] = []
        seeds = 0
        for scenario, entry in assessment.items():
            cell = entry.get("agents", {}).get(agent)
            if not cell:
                continue
            summary = cell["summary"]
            seeds = max(seeds, int(summary["gap_to_baselines"]["n"]))
            if _finite(summary["gap_to_baselines"]["mean"]):
                base.append((summary["gap_to_baselines"]["mean"], scenario))
            gap_opt = summary.get("gap_to_optimal", {}).get("mean")
            if _finite(gap_opt):
                optimal.append(gap_opt)
        if not base:
            continue
        worst = max(base)
        rows[agent] = {
            "seeds": seeds,
            "worst_base": worst[0],
            "worst_scenario": worst[1],
            "over_tolerance": sum(g > RL_TOLERANCE for g, _ in base),
            "scenarios": len(base),
            "optimal_max": max(optimal) if optimal else None,
        }
    return rows


def learning_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The learning benchmark's figures, or every macro [pending] when ``data`` is None."""
    s = LEARNING
    if data is None:
        add_pending(macros, RL_KEYS, s)
        return
    experiments = data.get("experiments") or {}
    if not experiments:
        raise BuildError(f"{s}: no experiments")
    meta = data["meta"]
    rows = rl_rows(data)
    values = {
        "resRLSteps": fint(  # the assessed experiments' (ablations compared at 300,000 steps are not)
            min(min(e["steps"]) for e in experiments.values() if e.get("steps") and e.get("assessed", True))
        ),
        "resRLAssessSeeds": str(len(meta["assess_seeds"])),
        "resRLAssessHorizon": f"{meta['assess_horizon_s']:g}",
        "resRLScenarios": str(len(data["assessment"])),
        "resRLTolerance": f"{100 * RL_TOLERANCE:g}",
    }
    for agent, tok in RL_AGENTS.items():
        row = rows.get(agent)
        if row is None:
            continue
        values[f"resRLSeeds{tok}"] = str(row["seeds"])
        values[f"resRLWorstBase{tok}"] = fpct(row["worst_base"], 1, sign=True)
        values[f"resRLWorstBaseScen{tok}"] = "\\sname{" + row["worst_scenario"].replace("_", "\\_") + "}"
        values[f"resRLOverTol{tok}"] = str(row["over_tolerance"])
        if row["optimal_max"] is not None:
            values[f"resRLOptMax{tok}"] = fpct(row["optimal_max"], 1, sign=True)
    for name, key in RL_KEYS.items():
        if name in values:
            macros.add(name, values[name], s, key)
        else:
            add_pending(macros, {name: key}, s)


RERUN_AGENTS = {"ppo_mixture": "Ppo", "dqn_mixture": "Dqn"}
"""The experiments retrained on another machine (docs/rl.md, "Retrained on another machine"):
macro token."""
RERUN_KEYS = {
    "resRLRerunScenarios": "number of assessment scenarios",
    **_agent_keys(
        "resRLRerun",
        RERUN_AGENTS,
        (
            *_SUMMARY_ITEMS,
            ("SeedsOverTol", "models whose gap_to_baselines > the tolerance somewhere"),
            (
                "PickOverTol",
                "the model with the lowest kept_gap (training evaluation): scenarios "
                "where its gap_to_baselines > the tolerance",
            ),
            ("PickWorst", "that model: max over scenarios of gap_to_baselines (%)"),
        ),
    ),
}


def _model_gaps(data: dict[str, Any], agent: str) -> dict[str, list[float]]:
    """Per model of ``agent``: its gap to the baselines on every assessed scenario (fractions)."""
    gaps: dict[str, list[float]] = {}
    for entry in (data.get("assessment") or {}).values():
        for row in entry.get("agents", {}).get(agent, {}).get("models", []):
            if _finite(row.get("gap_to_baselines")):
                gaps.setdefault(row["model"], []).append(row["gap_to_baselines"])
    return gaps


def _picked_gaps(data: dict[str, Any], agent: str, per_model: dict[str, list[float]]) -> list[float]:
    """The gaps to the baselines (``per_model``: :func:`_model_gaps`) of the model of ``agent``
    that its training evaluation alone would pick (the lowest ``kept_gap``)."""
    s = LEARNING_RERUN
    experiment = (data.get("experiments") or {}).get(agent) or {}
    models, kept_gaps = experiment.get("models", []), experiment.get("kept_gap", [])
    if len(models) != len(kept_gaps):
        raise BuildError(f"{s}: {agent} has {len(models)} models and {len(kept_gaps)} kept_gap values")
    kept = [(g, m) for g, m in zip(kept_gaps, models, strict=True) if _finite(g)]
    if not kept:
        raise BuildError(f"{s}: {agent} has no kept_gap of its training evaluation")
    pick = per_model.get(min(kept)[1])
    if not pick:
        raise BuildError(f"{s}: the model {min(kept)[1]} is not in the assessment")
    return pick


def rerun_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The retrained experiments' figures (a macro is [pending] when its experiment, or the
    file, is absent): their mean gaps across seeds, how many seeds fail the goal somewhere, and
    the seed that the training evaluation alone would pick on the assessment."""
    s = LEARNING_RERUN
    values: dict[str, str] = {}
    if data is not None:
        rows = rl_rows(data)
        values["resRLRerunScenarios"] = str(len(data["assessment"]))
        for agent, tok in RERUN_AGENTS.items():
            row = rows.get(agent)
            if row is None:
                continue
            per_model = _model_gaps(data, agent)
            pick = _picked_gaps(data, agent, per_model)
            values |= {
                f"resRLRerunSeeds{tok}": str(row["seeds"]),
                f"resRLRerunOverTol{tok}": str(row["over_tolerance"]),
                f"resRLRerunWorstBase{tok}": fpct(row["worst_base"], 1, sign=True),
                f"resRLRerunSeedsOverTol{tok}": str(sum(max(g) > RL_TOLERANCE for g in per_model.values())),
                f"resRLRerunPickOverTol{tok}": str(sum(g > RL_TOLERANCE for g in pick)),
                f"resRLRerunPickWorst{tok}": fpct(max(pick), 1, sign=True),
            }
        if len(values) == 1:
            raise BuildError(f"{s}: none of {', '.join(RERUN_AGENTS)} is assessed")
    for name, key in RERUN_KEYS.items():
        if name in values:
            macros.add(name, values[name], s, key)
        else:
            add_pending(macros, {name: key}, s)


SIGNIFICANCE = 0.05
"""The level below which a change's count of failing seeds differs from the reference's."""
BANDS_KEYS = {
    "resRLBandsRefSeeds": "experiments[meta.reference].seeds",
    "resRLBandsRefBusy": "len(experiments[meta.reference].failing.busy)",
    "resRLBandsRefModerate": "len(experiments[meta.reference].failing.moderate)",
    "resRLBandsRefClean": "len(experiments[meta.reference].clean)",
    "resRLBandsChanges": "number of experiments other than meta.reference",
    "resRLBandsChangeSeeds": "min over those experiments of seeds",
    "resRLBandsMinBusyP": "min over those experiments of p_vs_reference.busy",
    "resRLBandsMinModerateP": "min over those experiments of p_vs_reference.moderate",
}
PICK_KEYS = {
    "resRLBandsPickFive": "pick.chance_clean.5.chance of the change (not meta.reference) of highest ci95[0]",
    "resRLBandsPickFiveLow": "pick.chance_clean.5.ci95[0] of that experiment",
    "resRLBandsPickFiveHigh": "pick.chance_clean.5.ci95[1] of that experiment",
    "resRLBandsPickOne": "pick.chance_clean.1.chance of that experiment",
}


def _pick_numbers(macros: Macros, experiments: dict[str, Any], source: str) -> None:
    """Of the changes ``experiments`` (the reference left out), the one whose training evaluation's
    pick among five seeds is most surely clean (the highest lower end of the 95% interval; then
    the highest chance): that chance with its interval, and the share of clean seeds (the pick of
    one)."""
    rows = {
        name: row["pick"]
        for name, row in experiments.items()
        if isinstance(row, dict)
        and isinstance(row.get("pick"), dict)
        and "5" in row["pick"].get("chance_clean", {})
    }
    macros.flags["rlBandsPick"] = (bool(rows), f"{source}: an experiment with pick.chance_clean.5")
    if not rows:
        add_pending(macros, PICK_KEYS, source)
        return
    best = max(
        rows,
        key=lambda name: (
            float(rows[name]["chance_clean"]["5"]["ci95"][0]),
            float(rows[name]["chance_clean"]["5"]["chance"]),
        ),
    )

    def chance(k: str, *keys: str | int) -> float:
        return float(need(experiments, best, "pick", "chance_clean", k, *keys, source=source))

    values = {
        "resRLBandsPickFive": f"{chance('5', 'chance'):.2f}",
        "resRLBandsPickFiveLow": f"{chance('5', 'ci95', 0):.2f}",
        "resRLBandsPickFiveHigh": f"{chance('5', 'ci95', 1):.2f}",
        "resRLBandsPickOne": f"{chance('1', 'chance'):.2f}",
    }
    for name, value in values.items():
        macros.add(name, value, source, PICK_KEYS[name])


def bands_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """learning_bands.json: how many training seeds of the reference experiment fail the goal at
    busy and at moderate loads, and how far the changes tried move those counts (the smallest
    Fisher p against the reference); ``[pending]`` when the file is absent."""
    s = LEARNING_BANDS
    if data is None:
        add_pending(macros, BANDS_KEYS | PICK_KEYS, s)
        macros.flags["rlBandsNoneSignificant"] = (False, f"{s} absent")
        macros.flags["rlBandsPick"] = (False, f"{s} absent")
        return
    reference = need(data, "meta", "reference", source=s)
    experiments = need(data, "experiments", source=s)
    if reference not in experiments:
        raise BuildError(f"{s}: meta.reference {reference!r} is not among its experiments")
    others = [name for name in experiments if name != reference]
    if not others:
        raise BuildError(f"{s}: no experiment besides the reference {reference!r}")

    def field(name: str, *keys: str) -> Any:
        return need(data, "experiments", name, *keys, source=s)

    def p_of(name: str, band: str) -> float:
        return float(field(name, "p_vs_reference", band))

    values = {
        "resRLBandsRefSeeds": str(field(reference, "seeds")),
        "resRLBandsRefBusy": str(len(field(reference, "failing", "busy"))),
        "resRLBandsRefModerate": str(len(field(reference, "failing", "moderate"))),
        "resRLBandsRefClean": str(len(field(reference, "clean"))),
        "resRLBandsChanges": str(len(others)),
        "resRLBandsChangeSeeds": str(min(field(name, "seeds") for name in others)),
        "resRLBandsMinBusyP": f"{min(p_of(name, 'busy') for name in others):.2f}",
        "resRLBandsMinModerateP": f"{min(p_of(name, 'moderate') for name in others):.2f}",
    }
    for name, value in values.items():
        macros.add(name, value, s, BANDS_KEYS[name])
    _pick_numbers(macros, {name: experiments[name] for name in others}, s)
    smallest = min(p_of(name, band) for name in others for band in ("busy", "moderate"))
    macros.flags["rlBandsNoneSignificant"] = (
        smallest >= SIGNIFICANCE,
        f"{s}: min over the changes of p_vs_reference.busy and .moderate >= {SIGNIFICANCE}",
    )
