"""What a verification run hands to its worker processes (:mod:`execution`): one function per
task (Storm on the MDP with and without the shield, on a policy's DTMC, on a band's choice sets;
a real agent in the event-driven simulator), and the event-driven simulator's side of the
cross-check (:func:`as_sim_policy`, :func:`simulate_continuous`). Each task returns plain
dataclasses."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from batchenv.metrics import compute_metrics, request_table
from batchenv.sim import Decision, Simulator, simulate
from formal.check import (
    BuildStats,
    ChoiceFigures,
    OptimumResult,
    PolicyFigures,
    build_model,
    check_choices,
    check_optimum,
    check_policy,
    max_violation_probability,
)
from formal.discrete import TickModel
from formal.policies import DiscretePolicy
from formal.prism import Choices, mdp_program
from formal.real_agents import RealAgentResult, run_real_agent
from formal.results import ContinuousResult
from formal.settings import Settings
from formal.ticksim import TickSimResult, simulate_ticks

__all__ = [
    "as_sim_policy",
    "band_task",
    "policy_task",
    "real_agent_task",
    "shielded_task",
    "simulate_continuous",
    "unshielded_task",
]


# ---------------------------------------------------------------------------------- simulator
def as_sim_policy(policy: DiscretePolicy, tm: TickModel) -> Callable[[Simulator], Decision]:
    """Run a discrete policy in the event-driven simulator: at each epoch it sees the queue
    (capped at the model's queue cap) and the oldest age in whole ticks; when it waits, it sets a
    timer for the next tick of age, so it is asked again exactly when its view changes. A wait at
    ``a >= max_age_ticks`` becomes the model's shield dispatch."""
    tick_s = tm.tick_s
    w_max = tm.max_age_ticks

    def decide(sim: Simulator) -> Decision:
        q = min(sim.queue_len, tm.queue_cap)
        a = min(math.floor(sim.oldest_wait_s / tick_s + 1e-9), w_max)
        decision = policy.decide(q, a, tm)
        if decision is None:
            if a >= w_max:
                return (policy.forced_model, tm.max_batch)
            return (a + 1) * tick_s
        return decision

    return decide


def simulate_continuous(
    tm: TickModel, policy: DiscretePolicy, horizon_s: float, seed: int
) -> ContinuousResult:
    """Figures of ``policy`` (through :func:`as_sim_policy`) in the event-driven simulator with
    the model's arrival process (:meth:`~formal.discrete.TickModel.event_config`), one episode
    of ``horizon_s``. The mean queue is the time-average of the waiting requests (total waiting
    time / horizon)."""
    config = tm.event_config(horizon_s)
    sim = simulate(config, as_sim_policy(policy, tm), seed, record=True)
    metrics = compute_metrics(sim)
    table = request_table(sim)
    waited = float(np.sum(table.dispatch_s - table.arrival_s) + np.sum(sim.now_s - table.waiting_arrival_s))
    return ContinuousResult(
        throughput_per_s=metrics.throughput_per_s,
        utilisation=metrics.utilisation,
        mean_queue=waited / sim.now_s,
        mean_batch=metrics.mean_batch_size,
        latency_ms=metrics.latency_mean_ms,
        cost_per_request=metrics.cost_per_request,
        horizon_s=horizon_s,
    )


# ---------------------------------------------------------------------------------- tasks
def shielded_task(tm: TickModel) -> tuple[float, float, OptimumResult]:
    built = build_model(mdp_program(tm), tm, choice_labels=True, state_valuations=True)
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, check_optimum(tm, built)


def unshielded_task(tm: TickModel) -> tuple[float, float, BuildStats]:
    built = build_model(mdp_program(tm, shield=False), tm)
    p_max, check_s = max_violation_probability(built)
    return p_max, check_s, built.stats


def policy_task(
    tm: TickModel, policy: DiscretePolicy, settings: Settings
) -> tuple[PolicyFigures, TickSimResult, ContinuousResult]:
    figures = check_policy(tm, policy, overflow_s=settings.overflow_s)
    ticks = simulate_ticks(tm, policy, settings.crosscheck_ticks, settings.seed)
    continuous = simulate_continuous(tm, policy, settings.sim_horizon_s, settings.seed)
    return figures, ticks, continuous


def band_task(tm: TickModel, choices: Choices, raw: Choices, title: str, settings: Settings) -> ChoiceFigures:
    return check_choices(
        tm,
        choices,
        title,
        raw_choices=raw,
        overflow_s=settings.overflow_s,
        cpu_budget_s=settings.cpu_budget_s,
    )


def real_agent_task(
    tm: TickModel, spec: str, table: DiscretePolicy | None, settings: Settings, factors: tuple[float, ...]
) -> RealAgentResult:
    from agents.registry import make_agent

    return run_real_agent(
        tm,
        spec,
        make_agent(spec, tm.config),
        None if table is None else as_sim_policy(table, tm),
        seeds=range(settings.agent_seeds),
        horizon_s=settings.agent_horizon_s,
        band_factors=factors,
    )
