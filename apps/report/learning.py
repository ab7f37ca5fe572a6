"""The quoted figures of the learning benchmark (benchmarks/learning.py's JSON, optional)."""

from __future__ import annotations

from typing import Any

from apps.report.formatting import fint, fpct
from apps.report.macros import Macros, add_pending
from apps.report.names import ALGO_NAMES
from apps.report.sources import (
    LEARNING,
    BuildError,
)

__all__ = [
    "RL_KEYS",
    "RL_WITHIN",
    "learning_numbers",
    "rate_token",
    "rl_assessment",
    "sorted_runs",
]

# -- RL learning curves (optional)

RL_WITHIN = "2%"
"""The threshold of ``first_timesteps_within`` that the report quotes."""
RL_KEYS = {
    "resRLSteps": "meta.n_timesteps",
    "resRLRuns": "number of runs",
    "resRLRates": "rates of the runs",
    "resRLAlgos": "algorithms of the runs",
    "resRLEvalSeeds": "len(meta.eval_seeds)",
    "resRLEvalHorizon": "meta.eval_horizon_s",
    "resRLEvalEvery": "timesteps between evaluations (first curve point)",
    "resRLSlowestTwo": "max over runs of first_timesteps_within 2%",
    "resRLAssessSeeds": "number of assessment seeds (runs[*].assessment.seeds, first-last)",
    "resRLAssessHorizon": "runs[*].assessment.horizon_s",
    "resRLFinalMin": "min over runs of the final model's gap (%)",
    "resRLWorstFinal": "max over runs of the final model's gap (%)",
    "resRLWorstFinalCi": "95% CI of that gap (%)",
    "resRLWorstAlgo": "algo of that run",
    "resRLWorstRate": "rate of that run",
    "resRLBestModelMax": "max over runs of the best model's gap (%)",
    "resRLWithinOne": "runs whose final model's gap <= 1%",
    "resRLAboveOpt": "runs whose final model's gap - CI > 0 (measurably above the optimum)",
    "resRLNotAbove": "runs whose final model's gap <= the tuned timeout's gap at their rate",
    "resRLTimeoutGapMax": "max over runs of the tuned timeout's gap to the optimum (%)",
    "resRLWithinPct": "the first_timesteps_within threshold quoted (%)",
    "resRLTopRate": "max over runs of rate_per_s",
    "resRLStepGamma": "runs[dqn without discount_horizon_s].gamma",
    "resRLDiscountS": "runs[*].discount_horizon_s (s)",
    "resRLTimeDiscountRate": "rate_per_s of the DQN runs with discount_horizon_s",
}


def rate_token(rate: float) -> str:
    return f"{rate:g}"


def rl_assessment(run: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """Gaps (value, CI) of the final and best models and of the tuned timeout, from the run's
    fresh-seed assessment when learning.py wrote one, else from its last evaluation."""
    a = run.get("assessment")
    if a:
        return {
            "final": tuple(a["final_model_gap"]),
            "best": tuple(a["best_model_gap"]),
            "timeout": tuple(a["timeout_gap"]),
            "optimal_cost": a["optimal_cost_per_request"],
            "seeds": a["seeds"][-1] - a["seeds"][0] + 1,
            "horizon_s": a["horizon_s"],
            "source": "assessment",
        }
    ref = refs[rate_token(run["rate_per_s"])]
    return {
        "final": (run["final_gap"], 0.0),
        "best": (run["best_gap"], 0.0),
        "timeout": (ref["timeout_cost_per_request"] / ref["optimal_cost_per_request"] - 1, 0.0),
        "optimal_cost": ref["optimal_cost_per_request"],
        "seeds": None,
        "horizon_s": None,
        "source": "curve",
    }


def sorted_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The learning runs by rate, then algorithm; a BuildError when there are none."""
    runs = data.get("runs") or []
    if not runs:
        raise BuildError(f"{LEARNING}: no runs")
    return sorted(runs, key=lambda r: (r["rate_per_s"], r["algo"]))


def learning_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The learning benchmark's figures, or every macro [pending] when ``data`` is None."""
    s = LEARNING
    if data is None:
        add_pending(macros, RL_KEYS, s)
        return
    runs = sorted_runs(data)
    meta = data.get("meta", {})
    assess = [rl_assessment(r, data.get("references", {})) for r in runs]
    how = assess[0]["source"]

    def put(name: str, value: str) -> None:
        macros.add(
            name, value, s, RL_KEYS[name] + ("" if how == "assessment" else " [from the evaluation curve]")
        )

    put("resRLSteps", fint(meta.get("n_timesteps") or max(c["timesteps"] for r in runs for c in r["curve"])))
    put("resRLRuns", str(len(runs)))
    put("resRLRates", ", ".join(rate_token(r) for r in sorted({r["rate_per_s"] for r in runs})))
    put("resRLAlgos", " and ".join(ALGO_NAMES.get(a, a) for a in sorted({r["algo"] for r in runs})))
    put("resRLEvalSeeds", str(len(meta.get("eval_seeds", []))))
    put("resRLEvalHorizon", f"{meta.get('eval_horizon_s', 0):g}")
    put("resRLEvalEvery", fint(min(c["timesteps"] for r in runs for c in r["curve"])))
    firsts = [(r.get("first_timesteps_within") or {}).get(RL_WITHIN) for r in runs]
    put("resRLSlowestTwo", fint(max(firsts)) if all(f is not None for f in firsts) else "--")
    put("resRLAssessSeeds", str(assess[0]["seeds"]) if assess[0]["seeds"] else "--")
    put("resRLAssessHorizon", f"{assess[0]['horizon_s']:g}" if assess[0]["horizon_s"] else "--")
    finals = [a["final"] for a in assess]
    worst = max(range(len(runs)), key=lambda i: finals[i][0])
    put("resRLFinalMin", fpct(min(g for g, _ in finals), 2, sign=True))
    put("resRLWorstFinal", fpct(finals[worst][0], 2, sign=True))
    put("resRLWorstFinalCi", fpct(finals[worst][1], 2))
    put("resRLWorstAlgo", ALGO_NAMES.get(runs[worst]["algo"], runs[worst]["algo"]))
    put("resRLWorstRate", rate_token(runs[worst]["rate_per_s"]))
    put("resRLBestModelMax", fpct(max(a["best"][0] for a in assess), 2, sign=True))
    put("resRLWithinOne", str(sum(g <= 0.01 for g, _ in finals)))
    put("resRLAboveOpt", str(sum(g - ci > 0 for g, ci in finals)))
    put("resRLNotAbove", str(sum(a["final"][0] <= a["timeout"][0] for a in assess)))
    put("resRLTimeoutGapMax", fpct(max(a["timeout"][0] for a in assess), 2, sign=True))
    put("resRLWithinPct", RL_WITHIN.rstrip("%"))
    put("resRLTopRate", rate_token(max(r["rate_per_s"] for r in runs)))
    step_gammas = {r["gamma"] for r in runs if r["algo"] == "dqn" and not r.get("discount_horizon_s")}
    timed = {
        (r["algo"], r["rate_per_s"], r["discount_horizon_s"]) for r in runs if r.get("discount_horizon_s")
    }
    dqn_timed_rates = sorted(rate for algo, rate, _ in timed if algo == "dqn")
    horizons = {h for _, _, h in timed}
    if len(step_gammas) != 1 or len(horizons) != 1 or not dqn_timed_rates:
        raise BuildError(
            f"{s}: expected one per-step DQN gamma, one time-discount horizon and a DQN run with it"
        )
    put("resRLStepGamma", f"{step_gammas.pop():g}")
    put("resRLDiscountS", f"{horizons.pop():g}")
    put("resRLTimeDiscountRate", ", ".join(rate_token(r) for r in dqn_timed_rates))
