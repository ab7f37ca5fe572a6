"""Model checking of the PRISM models (:mod:`formal.prism`) with Storm, through stormpy.

What is computed (``tm`` a :class:`~formal.discrete.TickModel`):

- :func:`check_safety`: ``Pmax=? [F "violation"]`` over every scheduler of the MDP, with the
  timeout shield (must be 0) and without it (must be > 0, so the check is not vacuous).
- :func:`check_optimum`: ``R{"cost"}min=? [LRA]`` on the MDP, the optimal long-run cost, and a
  scheduler attaining it, read back as a :class:`~formal.policies.TablePolicy` (one worker).
- :func:`check_policy`: the DTMC of one policy: long-run throughput, utilisation, mean queue,
  mean batch, mean latency (Little's law), cost per request, drop rate, the probability that the
  queue fills up within a time bound, and the probability of a timeout violation.

Storm's default (sound) solvers are used, except where :func:`_long_run_rates` says otherwise;
every reward is non-negative (the cost is a regret). (Storm's steady-state distribution API was
slow or imprecise on these chains; one long-run average property per reward structure is fast
and matches an exact sparse solve.)
"""

from __future__ import annotations

import math
import os
import select
import signal
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import stormpy

from batchenv.sim import Decision
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, TablePolicy
from formal.prism import REWARD_NAMES, dtmc_program, mdp_program, parse_action_label

__all__ = [
    "BuildStats",
    "OptimumResult",
    "PolicyFigures",
    "SafetyResult",
    "build",
    "check_optimum",
    "check_policy",
    "check_safety",
    "cost_per_request",
    "figures_from_rates",
    "max_violation_probability",
]


@dataclass(frozen=True)
class BuildStats:
    """Size of a built model and the time (s) to parse and build it."""

    states: int
    transitions: int
    choices: int
    build_s: float


@dataclass
class _Built:
    program: Any
    model: Any
    stats: BuildStats


OVERLAP_LABEL = "overlap_guards"


def build(text: str, *, choice_labels: bool = False, state_valuations: bool = False) -> _Built:
    """Parse a PRISM text and build its sparse model with every label and reward structure.

    For a DTMC, a state where two commands are enabled raises ValueError (PRISM would mix them
    uniformly; every generated DTMC must have exactly one command per state)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.prism"
        path.write_text(text)
        program = stormpy.parse_prism_program(str(path))
    options = stormpy.BuilderOptions()
    options.set_build_all_reward_models(True)
    options.set_build_all_labels(True)
    if choice_labels:
        options.set_build_choice_labels(True)
    if state_valuations:
        options.set_build_state_valuations(True)
    is_dtmc = program.model_type.name == "DTMC"
    if is_dtmc:
        options.set_add_overlapping_guards_label(True)
    model = stormpy.build_model(program, options=options)
    if is_dtmc and model.labeling.contains_label(OVERLAP_LABEL):
        overlapping = model.labeling.get_states(OVERLAP_LABEL).get_number_of_set_bits()
        if overlapping:
            raise ValueError(f"DTMC with overlapping guards in {overlapping} states")
    stats = BuildStats(model.nr_states, model.nr_transitions, model.nr_choices, time.perf_counter() - start)
    return _Built(program, model, stats)


def _initial_value(built: _Built, formula: str, **kwargs: Any) -> tuple[float, Any]:
    prop = stormpy.parse_properties(formula, built.program)[0]
    kwargs.setdefault("only_initial_states", not kwargs.get("extract_scheduler", False))
    if kwargs.get("environment", 1) is None:
        del kwargs["environment"]
    result = stormpy.model_checking(built.model, prop, **kwargs)
    return float(result.get_value(built.model.initial_states[0])), result


# ---------------------------------------------------------------------------------- safety
@dataclass(frozen=True)
class SafetyResult:
    """Timeout safety over every scheduler: Pmax of reaching a violation, with and without the
    shield, and the sizes and times of the two MDPs."""

    p_max_shielded: float
    p_max_unshielded: float
    shielded: BuildStats
    unshielded: BuildStats
    check_s: float

    @property
    def holds(self) -> bool:
        """The shielded MDP is safe and the unshielded one is not (the check is not vacuous)."""
        return self.p_max_shielded == 0.0 and self.p_max_unshielded > 0.0


VIOLATION = 'Pmax=? [F "violation"]'


def max_violation_probability(built: _Built) -> tuple[float, float]:
    """``Pmax=? [F "violation"]`` from the initial state of a built MDP, and the time (s)."""
    start = time.perf_counter()
    value, _ = _initial_value(built, VIOLATION)
    return value, time.perf_counter() - start


def check_safety(tm: TickModel, shielded: _Built | None = None) -> SafetyResult:
    """``Pmax=? [F "violation"]`` on the MDP with the shield (``shielded`` if already built) and
    on the MDP without it."""
    shielded = shielded or build(mdp_program(tm))
    p_shielded, t_shielded = max_violation_probability(shielded)
    unshielded = build(mdp_program(tm, shield=False))
    p_unshielded, t_unshielded = max_violation_probability(unshielded)
    return SafetyResult(p_shielded, p_unshielded, shielded.stats, unshielded.stats, t_shielded + t_unshielded)


# ---------------------------------------------------------------------------------- optimum
@dataclass(frozen=True)
class OptimumResult:
    """The optimal long-run cost of the MDP and a scheduler attaining it.

    :ivar cost_per_tick: ``R{"cost"}min=? [LRA]`` (cost per tick).
    :ivar cost_per_request: per arrived request, including the half-tick arrival offset.
    :ivar policy: the optimal scheduler as a table over (q, a) (None with several workers,
        whose optimal decisions also depend on the other workers' remaining service).
    """

    cost_per_tick: float
    cost_per_request: float
    policy: TablePolicy | None
    stats: BuildStats
    check_s: float


def cost_per_request(tm: TickModel, cost_per_tick: float) -> float:
    """Cost per arrived request from the long-run cost per tick: the model's arrivals are counted
    at the end of their tick, so each also waited half a tick on average before it."""
    return cost_per_tick / tm.mean_arrivals + tm.config.reward.w_latency_per_s * tm.tick_s / 2.0


def check_optimum(tm: TickModel, built: _Built | None = None) -> OptimumResult:
    """``R{"cost"}min=? [LRA]`` on the shielded MDP, with the optimal scheduler extracted.

    :param built: the shielded MDP built with choice labels and state valuations (built here if
        None).
    """
    built = built or build(mdp_program(tm), choice_labels=True, state_valuations=True)
    start = time.perf_counter()
    value, result = _initial_value(built, 'R{"cost"}min=? [LRA]', extract_scheduler=True)
    check_s = time.perf_counter() - start
    policy = _scheduler_table(tm, built, result) if tm.n_workers == 1 else None
    return OptimumResult(value, cost_per_request(tm, value), policy, built.stats, check_s)


def _scheduler_table(tm: TickModel, built: _Built, result: Any) -> TablePolicy:
    """The extracted scheduler's decision in each decision state (q >= 1, worker idle)."""
    model = built.model
    scheduler = result.get_scheduler()
    valuations = model.state_valuations
    values = {v.name: valuations.get_int64_values(v) for v in valuations.get_all_variables()}
    table: dict[tuple[int, int], Decision] = {}
    counts = [0] * tm.n_models
    for state in range(model.nr_states):
        q, a, r = values["q"][state], values["a"][state], values["r1"][state]
        if q == 0 or r != 0:
            continue
        choice = scheduler.get_choice(state).get_deterministic_choice()
        labels = model.choice_labeling.get_labels_of_choice(model.get_choice_index(state, choice))
        decision = parse_action_label(next(iter(labels)))
        if decision is not None:
            counts[decision[0]] += 1
        table[(q, a)] = decision
    return TablePolicy("storm optimum", table, int(np.argmax(counts)))


# ---------------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class PolicyFigures:
    """Long-run figures of one policy on the discrete model (DTMC), as Storm computes them.

    Rates per second, latency in ms, fractions in [0, 1].
    """

    policy: str
    throughput_per_s: float
    utilisation: float
    mean_queue: float
    mean_batch: float
    latency_ms: float
    cost_per_request: float
    drop_rate: float
    p_overflow: float = math.nan
    overflow_s: float = math.nan
    p_violation: float = math.nan
    stats: BuildStats | None = None
    check_s: float = math.nan
    solver: str = "sound"
    rates: dict[str, float] = field(default_factory=dict, repr=False)


def figures_from_rates(tm: TickModel, policy: str, rates: dict[str, float], **extra: Any) -> PolicyFigures:
    """Turn long-run averages per tick of the reward structures into figures.

    The model counts an arrival at the end of its tick; a server that decides at tick boundaries
    has it waiting from its arrival, on average half a tick earlier. So the latency adds
    ``tick_ms / 2`` and the mean queue ``mean_arrivals / 2`` (the requests that arrived during the
    current tick), which keeps Little's law: mean queue = throughput x mean waiting time.

    :param rates: ``{reward name: long-run average per tick}`` for the names of
        :data:`formal.prism.REWARD_NAMES` (``served`` may be left out).
    """
    served = rates["served"] if "served" in rates else tm.mean_arrivals - rates["dropped"]
    tick_ms = tm.tick_ms
    latency = (
        (rates["waiting"] * tick_ms + rates["service_ms"]) / served + tick_ms / 2 if served else math.nan
    )
    return PolicyFigures(
        policy=policy,
        throughput_per_s=served / tm.tick_s,
        utilisation=rates["busy"] / tm.n_workers,
        mean_queue=rates["waiting"] + tm.mean_arrivals / 2,
        mean_batch=served / rates["batches"] if rates["batches"] else math.nan,
        latency_ms=latency,
        cost_per_request=cost_per_request(tm, rates["cost"]),
        drop_rate=rates["dropped"] / tm.mean_arrivals,
        rates={**rates, "served": served},
        **extra,
    )


SOUND_BUDGET_S = 5.0
"""Time (s) allowed to one sound long-run-average query before the plain solver takes over."""


def _value_with_budget(built: _Built, formula: str, budget_s: float) -> float | None:
    """The value of ``formula`` under Storm's sound environment, computed in a forked child
    process; None if it takes longer than ``budget_s`` (the child is then stopped)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: compute, report, leave without running any cleanup of the parent
        try:
            value, _ = _initial_value(built, formula)
            os.write(write_fd, struct.pack("d", value))
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], budget_s)
        data = os.read(read_fd, 8) if ready else b""
    finally:
        os.close(read_fd)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return struct.unpack("d", data)[0] if len(data) == 8 else None


def _long_run_rates(built: _Built, sound_budget_s: float = SOUND_BUDGET_S) -> tuple[dict[str, float], str]:
    """``R{"name"}=? [LRA]`` from the initial state for every reward structure but ``served``
    (in the long run every admitted request is served: it equals the mean arrivals per tick minus
    the drops), and the solver used.

    Storm's sound environment answers in well under a second on most chains but needs minutes
    when the chain mixes slowly (an overloaded policy whose queue sits at its cap). Each query
    gets ``sound_budget_s``; after the first one that runs out, the chain's remaining values come
    from Storm's plain (non-sound) environment (gmm++ GMRES, relative precision 1e-6), which stays
    fast there. ``dropped`` always uses the plain environment: its values are often tiny (1e-30
    and below) and the sound stopping criterion, relative to the value, never fires on them.
    """
    rates = {}
    solver = "sound"
    plain = stormpy.Environment()
    for name in REWARD_NAMES:
        if name == "served":
            continue
        formula = f'R{{"{name}"}}=? [LRA]'
        value = None
        if name != "dropped" and solver == "sound":
            value = _value_with_budget(built, formula, sound_budget_s)
            if value is None:
                solver = f"plain (sound > {sound_budget_s:g} s)"
        if value is None:
            value, _ = _initial_value(built, formula, environment=plain)
        rates[name] = value
    return rates, solver


def check_policy(tm: TickModel, policy: DiscretePolicy, *, overflow_s: float = 1.0) -> PolicyFigures:
    """Build the DTMC of ``policy`` and compute its figures.

    :param overflow_s: time bound (s) of the overflow probability ``P=? [F<=n "full"]`` from an
        empty system, ``n = overflow_s / tick_s`` ticks.
    """
    if not overflow_s > 0:
        raise ValueError(f"overflow_s must be > 0 (s), got {overflow_s!r}")
    built = build(dtmc_program(tm, policy))
    start = time.perf_counter()
    rates, solver = _long_run_rates(built)
    steps = max(1, round(overflow_s / tm.tick_s))
    p_overflow, _ = _initial_value(built, f'P=? [F<={steps} "full"]')
    p_violation, _ = _initial_value(built, 'P=? [F "violation"]')
    check_s = time.perf_counter() - start
    return figures_from_rates(
        tm,
        policy.name,
        rates,
        p_overflow=p_overflow,
        overflow_s=steps * tm.tick_s,
        p_violation=p_violation,
        stats=built.stats,
        check_s=check_s,
        solver=solver,
    )
