"""The real agents against their formal models, in the event-driven simulator.

The formal models check tables: an agent distilled into a decision table over (q, a), or the
proposed scheduler's rows with its rate estimate as an adversary. What a table hides (the
running rate estimate, an RL network's reaction to its own EWMA observations) becomes a number
here: the real agent and its table run in :mod:`batchenv.sim` on the model's arrival process
(:meth:`formal.discrete.TickModel.event_config`), on the same seeds, and their costs per request
are compared with each other (a seed-paired gap, :func:`evaluation.stats.relative_gap`) and with
the model's figure. For a scheduler that estimates the arrival rate (``rate_per_s`` after each
decision, as :class:`agents.proposed.Proposed`), the fraction of its decisions taken with an
estimate within each band ``[rate / f, rate * f]`` of the true rate is recorded (Poisson arrivals
only: the simulator's MMPP does not expose its phase).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchenv.metrics import compute_metrics
from batchenv.sim import Decision, Simulator, simulate
from evaluation.stats import mean_ci95, relative_gap
from formal.discrete import TickModel

__all__ = ["RealAgentResult", "run_real_agent"]


@dataclass
class RealAgentResult:
    """One agent in the event-driven simulator against its table and its model.

    :ivar agent: the agent's spec (:mod:`agents.registry`).
    :ivar model: what the model figure is (e.g. ``"DTMC of its table"``).
    :ivar model_cost: the model's cost per request (Storm), None when not known.
    :ivar agent_costs: the real agent's cost per request, per seed.
    :ivar table_costs: its table's, per seed.
    :ivar in_band: ``{f: fraction of the decisions with the estimate within [rate / f, rate * f]}``.
    """

    agent: str
    seeds: tuple[int, ...]
    horizon_s: float
    model: str = ""
    model_cost: float | None = None
    agent_costs: list[float] = field(default_factory=list)
    table_costs: list[float] = field(default_factory=list)
    decisions: int = 0
    in_band: dict[float, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def agent_cost(self) -> tuple[float, float]:
        """Mean and 95% half-width over the seeds."""
        return mean_ci95(self.agent_costs)

    @property
    def table_cost(self) -> tuple[float, float]:
        return mean_ci95(self.table_costs)

    @property
    def agent_vs_table(self) -> tuple[float, float]:
        """Gap of the real agent's mean cost to its table's, with the 95% half-width of the
        seed-paired differences (both relative to the table's mean cost)."""
        return _gap(self.agent_costs, self.table_costs, self.seeds)

    @property
    def agent_vs_model(self) -> float:
        """Relative difference of the real agent's mean cost to the model's figure."""
        if self.model_cost is None or not self.agent_costs:
            return math.nan
        return (self.agent_cost[0] - self.model_cost) / self.model_cost


def _gap(costs: Sequence[float], reference: Sequence[float], seeds: Sequence[int]) -> tuple[float, float]:
    rows = [{"seed": s, "cost_per_request": c} for s, c in zip(seeds, costs, strict=False)]
    return relative_gap(rows, dict(zip(seeds, reference, strict=False)))


class _EstimateRecorder:
    """Runs a scheduler and counts, after each decision, whether its ``rate_per_s`` lies within
    each band of the true rate."""

    def __init__(self, agent: Any, rate_per_s: float, factors: Sequence[float]) -> None:
        self.agent = agent
        self.rate = rate_per_s
        self.factors = tuple(factors)
        self.decisions = 0
        self.inside = dict.fromkeys(self.factors, 0)

    def reset(self, sim: Simulator) -> None:
        reset = getattr(self.agent, "reset", None)
        if callable(reset):
            reset(sim)

    def __call__(self, sim: Simulator) -> Decision:
        decision = self.agent(sim)
        estimate = self.agent.rate_per_s
        self.decisions += 1
        for f in self.factors:
            if self.rate / f <= estimate <= self.rate * f:
                self.inside[f] += 1
        return decision


def run_real_agent(
    tm: TickModel,
    spec: str,
    agent: Any,
    table: Callable[[Simulator], Decision] | None,
    *,
    seeds: Sequence[int],
    horizon_s: float,
    band_factors: Sequence[float] = (),
) -> RealAgentResult:
    """Run ``agent`` (reset by the simulator at each episode) and its ``table`` (if any: the
    table as a simulator policy, :func:`formal.verification.as_sim_policy`) for ``horizon_s``
    seconds on each seed, on the model's arrival process and queue capacity. The model's figure
    is filled in by the caller.

    :param band_factors: record the fraction of decisions with the agent's rate estimate within
        these bands of the true rate (agents with ``rate_per_s``, Poisson models only).
    """
    result = RealAgentResult(spec, tuple(seeds), horizon_s)
    config = tm.event_config(horizon_s)
    record = bool(band_factors) and tm.n_phases == 1 and hasattr(agent, "rate_per_s")
    recorder = _EstimateRecorder(agent, tm.rate_per_s, band_factors) if record else None
    for seed in seeds:
        sim = simulate(config, recorder or agent, seed, record=False)
        result.agent_costs.append(compute_metrics(sim).cost_per_request)
        if table is not None:
            sim = simulate(config, table, seed, record=False)
            result.table_costs.append(compute_metrics(sim).cost_per_request)
    if recorder is not None and recorder.decisions:
        result.decisions = recorder.decisions
        result.in_band = {f: recorder.inside[f] / recorder.decisions for f in band_factors}
    return result
