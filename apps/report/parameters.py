"""The parameters the text quotes, read from their inputs: the system's config (through
:class:`SystemConfig` and :class:`ServiceTable`), the scenario configs, the proposed scheduler's
defaults and the shipped agents' hyperparameters."""

from __future__ import annotations

import inspect

from agents.hyperparameters import load_hyperparams
from agents.proposed import Proposed
from apps.report.macros import Macros
from apps.report.names import MODEL_LETTERS
from apps.report.sources import (
    CONFIG,
    BuildError,
)
from batchenv.config import SystemConfig
from batchenv.estimators import RateEstimator
from batchenv.scenarios import load_scenario
from batchenv.timing import ServiceTable

__all__ = [
    "agent_numbers",
    "config_numbers",
    "model_capacities_per_s",
    "scenario_numbers",
    "shipped_numbers",
]


# -- the system (an input: constants derived from the brief's timing table)


def model_capacities_per_s(config: SystemConfig) -> list[float]:
    """Per model, the largest one-worker throughput max_b b / service(b, m) (requests/s)."""
    table = ServiceTable(config)
    return [table.model_throughput_per_s(m) for m in range(config.n_models)]


def config_numbers(macros: Macros, config: SystemConfig) -> None:
    """The system's parameters (qualities, cost weight, queue, timeout, SLO) and the models'
    largest sustainable rates, with the batch size that attains them."""
    service = ServiceTable(config).service_ms
    best_batches = set()
    for letter, model, cap in zip(MODEL_LETTERS, config.models, model_capacities_per_s(config), strict=False):
        macros.add(f"resCap{letter}", f"{cap:.0f}", CONFIG, f"max_b b / service(b, {model.name}) (1/s)")
        macros.add(f"resQual{letter}", f"{model.quality:.2f}", CONFIG, f"models[{model.name}].quality")
        m = config.model_names.index(model.name)
        best_batches.add(max(range(1, service.shape[1]), key=lambda b, m=m: b / service[m, b]))
    if len(best_batches) != 1:
        raise BuildError(
            f"{CONFIG}: the models reach their largest rate at different batch sizes {best_batches}"
        )
    macros.add("resCapBatch", str(best_batches.pop()), CONFIG, "argmax_b b / service(b, m), every model")
    macros.add("resWLatency", f"{config.reward.w_latency_per_s:g}", CONFIG, "reward.w_latency_per_s")
    macros.add("resQueueCap", str(config.queue_capacity), CONFIG, "queue_capacity")
    macros.add("resMaxWaitMs", f"{config.max_wait_ms:g}", CONFIG, "max_wait_ms")
    macros.add("resSloMs", f"{config.slo_ms:g}", CONFIG, "slo_ms")


SCENARIO_LOADS = {
    "poisson_05": "PoisFive",
    "poisson_25": "PoisTwentyFive",
    "poisson_50": "PoisFifty",
    "poisson_75": "PoisSeventyFive",
    "poisson_95": "PoisNinetyFive",
    "azure_trace_low": "TraceLow",
    "azure_trace_medium": "TraceMedium",
    "azure_trace_high": "TraceHigh",
}
SLO_SCENARIO = "azure_trace_slo"


def scenario_numbers(macros: Macros, config: SystemConfig) -> None:
    """Parameters of the scenarios (batchenv/configs/*.yaml) that the text describes: loads as a
    share of the fastest model's capacity, the bursty and diurnal processes, the SLO scenario."""
    capacity = max(model_capacities_per_s(config))
    for name, tok in SCENARIO_LOADS.items():
        rate = load_scenario(name).arrivals.mean_rate_per_s
        macros.add(
            f"resLoad{tok}",
            f"{100 * rate / capacity:.0f}",
            _yaml(name),
            "mean rate, % of the largest capacity",
        )
    bursty = load_scenario("bursty").arrivals
    low, high = bursty.rates_per_s
    macros.add("resBurstyLow", f"{low:g}", _yaml("bursty"), "arrivals.rates_per_s[0] (1/s)")
    macros.add("resBurstyHigh", f"{high:g}", _yaml("bursty"), "arrivals.rates_per_s[1] (1/s)")
    diurnal = load_scenario("diurnal").arrivals
    macros.add("resDiurnalAmplitude", f"{diurnal.amplitude:g}", _yaml("diurnal"), "arrivals.amplitude")
    macros.add("resDiurnalPeriodS", f"{diurnal.period_s:g}", _yaml("diurnal"), "arrivals.period_s")
    slo = load_scenario(SLO_SCENARIO)
    macros.add(
        "resSloScenarioRate",
        f"{slo.arrivals.mean_rate_per_s:g}",
        _yaml(SLO_SCENARIO),
        "mean rate (1/s)",
    )
    macros.add("resSloScenarioMs", f"{slo.slo_ms:g}", _yaml(SLO_SCENARIO), "slo_ms")
    macros.add("resSloScenarioPenalty", f"{slo.reward.w_slo:g}", _yaml(SLO_SCENARIO), "reward.w_slo")


def _yaml(scenario: str) -> str:
    return f"batchenv/configs/{scenario}.yaml"


PROPOSED = "agents/proposed.py"
ESTIMATOR = "batchenv/estimators.py"


def agent_numbers(macros: Macros) -> None:
    """The proposed scheduler's default parameters (agents/proposed.py, batchenv/estimators.py)."""
    estimator = inspect.signature(RateEstimator).parameters
    scheduler = inspect.signature(Proposed).parameters
    taus = estimator["taus_s"].default
    macros.add("resEwmaCount", str(len(taus)), ESTIMATOR, "RateEstimator: len(taus_s)")
    macros.add("resTauMin", f"{min(taus):g}", ESTIMATOR, "RateEstimator: min(taus_s) (s)")
    macros.add("resTauMax", f"{max(taus):g}", ESTIMATOR, "RateEstimator: max(taus_s) (s)")
    macros.add("resEstimatorZ", f"{estimator['z'].default:g}", ESTIMATOR, "RateEstimator: z")
    macros.add(
        "resCusumRatio",
        f"{estimator['cusum_ratio'].default:g}",
        ESTIMATOR,
        "RateEstimator: cusum_ratio",
    )
    macros.add(
        "resCusumAlarm",
        f"{estimator['cusum_threshold'].default:g}",
        ESTIMATOR,
        "RateEstimator: cusum_threshold",
    )
    macros.add("resPatience", f"{scheduler['patience'].default:g}", PROPOSED, "Proposed: patience")
    macros.add("resMaxLoad", f"{scheduler['max_load'].default:g}", PROPOSED, "Proposed: max_load")


SHIPPED_SCENARIO = "default_randomised"


def shipped_numbers(macros: Macros) -> None:
    """The time discount of the shipped agents, trained on default_randomised (PPO and DQN)."""
    horizons = {load_hyperparams(algo, SHIPPED_SCENARIO).get("discount_horizon_s") for algo in ("ppo", "dqn")}
    if len(horizons) != 1 or None in horizons:
        raise BuildError(
            f"agents/hyperparams: ppo and dqn on {SHIPPED_SCENARIO} differ in discount_horizon_s"
        )
    macros.add(
        "resShippedDiscountS",
        f"{horizons.pop():g}",
        "agents/hyperparams/ppo.yml",
        f"{SHIPPED_SCENARIO}.discount_horizon_s (s; dqn.yml the same)",
    )
