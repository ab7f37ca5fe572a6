"""Model checking of the PRISM models (:mod:`formal.prism`) with Storm, through stormpy.

What is computed (``tm`` a :class:`~formal.discrete.TickModel`):

- :func:`check_safety`: ``Pmax=? [F "violation"]`` over every scheduler of the MDP, with the
  timeout shield (must be 0) and without it (must be > 0, so the check is not vacuous).
- :func:`check_optimum`: ``R{"cost"}min=? [LRA]`` on the MDP, the optimal long-run cost, and a
  scheduler attaining it, read back as a :class:`~formal.policies.TablePolicy` (one worker).
- :func:`check_policy`: the DTMC of one policy: long-run throughput, utilisation, mean queue,
  mean batch, mean latency (Little's law), cost per request, drop rate, the probability that the
  queue fills up within a time bound, and the probability of a timeout violation of its raw table
  (without the shield) and with the shield.
- :func:`check_choices`: an MDP of choice sets (:mod:`formal.band`): the minimum and maximum over
  its schedulers of the cost per request, the mean latency, the drop rate and the overflow
  probability, and the largest violation probability.

Solvers (the one that answered is recorded with every result):

- long-run averages of a DTMC: a direct sparse solve of the chain Storm built, certified by an
  interval (:mod:`formal.lra`; sound, deterministic, no iteration count);
- long-run averages of an MDP: Storm's sound value iteration, in a child process with a CPU-time
  budget (``RLIMIT_CPU``, not wall-clock time: the same budget on a loaded machine); a query
  that runs out of it, and every drop rate, is answered by a certified policy iteration on the
  model Storm built (:mod:`formal.lra`, started from the scheduler of Storm's default solver),
  and says so;
- probabilities: Storm's sound environment (bounded reachability is a fixed number of
  matrix-vector products; unbounded reachability of a violation is decided by graph analysis
  when it is 0).

Every reward is non-negative (the cost is a regret). Probabilities below the truncation of the
arrival counts (:meth:`formal.discrete.TickModel.truncation_resolution`) are not resolved by the
model; :mod:`formal.report` shows them as bounds.
"""

from __future__ import annotations

import math
import os
import resource
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
from formal.lra import ChoiceMatrix, certified_long_run_averages, certified_optimum, choice_matrix
from formal.policies import DiscretePolicy, TablePolicy
from formal.prism import (
    REWARD_NAMES,
    Choices,
    choice_program,
    dtmc_program,
    mdp_program,
    needs_age_bounds,
    parse_action_label,
)

__all__ = [
    "CPU_BUDGET_S",
    "BuildStats",
    "ChoiceFigures",
    "OptimumResult",
    "PolicyFigures",
    "SafetyResult",
    "build",
    "check_choices",
    "check_optimum",
    "check_policy",
    "check_safety",
    "cost_per_request",
    "figures_from_rates",
    "max_violation_probability",
]

CPU_BUDGET_S = 60.0
"""CPU time (s) allowed to one sound MDP long-run-average query before Storm's default solver
answers it instead."""

CERTIFIED = "certified direct solve"
"""Name of the DTMC long-run-average solver (:mod:`formal.lra`)."""
CERTIFIED_PI = "certified policy iteration"
"""Name of the MDP long-run-average solver of :mod:`formal.lra` (after Storm's sound VI)."""
SOUND = "Storm sound VI"


@dataclass(frozen=True)
class BuildStats:
    """Size of a built model and the time (s) to parse and build it."""

    states: int
    transitions: int
    choices: int
    build_s: float


@dataclass
class _Built:
    """A built model and its initial states with their weights (several with Markov-modulated
    arrivals: one per phase, weighted by the stationary phase distribution)."""

    program: Any
    model: Any
    stats: BuildStats
    initial: tuple[tuple[int, float], ...] = ()


OVERLAP_LABEL = "overlap_guards"


def build(
    text: str,
    *,
    choice_labels: bool = False,
    state_valuations: bool = False,
    phase_weights: tuple[float, ...] = (1.0,),
) -> _Built:
    """Parse a PRISM text and build its sparse model with every label and reward structure.

    For a DTMC, a state where two commands are enabled raises ValueError (PRISM would mix them
    uniformly; every generated DTMC must have exactly one command per state).

    :param phase_weights: weight of the initial state of each arrival phase (the model's
        stationary phase distribution); one phase: one initial state."""
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
    phased = len(phase_weights) > 1
    if phased:
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
    states = [int(s) for s in model.initial_states]
    if phased:
        phase = next(v for v in model.state_valuations.get_all_variables() if v.name == "ph")
        phases = model.state_valuations.get_int64_values(phase)
        initial = tuple((s, phase_weights[phases[s]]) for s in states)
    else:
        initial = ((states[0], 1.0),)
    if len(initial) != len(phase_weights) or abs(sum(w for _, w in initial) - 1.0) > 1e-9:
        raise ValueError(
            f"expected one initial state per arrival phase ({len(phase_weights)}), got {len(states)}"
        )
    return _Built(program, model, stats, initial)


def build_model(text: str, tm: TickModel, **kwargs: Any) -> _Built:
    """:func:`build` with the initial-state weights of ``tm``'s arrival phases."""
    return build(text, phase_weights=tm.phase_stationary, **kwargs)


def _initial_value(built: _Built, formula: str, **kwargs: Any) -> tuple[float, Any]:
    """The value of ``formula`` from the initial states (weighted by their phase weights)."""
    prop = stormpy.parse_properties(formula, built.program)[0]
    kwargs.setdefault("only_initial_states", not kwargs.get("extract_scheduler", False))
    if kwargs.get("environment", 1) is None:
        del kwargs["environment"]
    result = stormpy.model_checking(built.model, prop, **kwargs)
    initial = built.initial or ((int(built.model.initial_states[0]), 1.0),)
    return float(sum(w * result.get_value(s) for s, w in initial)), result


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
    shielded = shielded or build_model(mdp_program(tm), tm)
    p_shielded, t_shielded = max_violation_probability(shielded)
    unshielded = build_model(mdp_program(tm, shield=False), tm)
    p_unshielded, t_unshielded = max_violation_probability(unshielded)
    return SafetyResult(p_shielded, p_unshielded, shielded.stats, unshielded.stats, t_shielded + t_unshielded)


# ---------------------------------------------------------------------------------- optimum
@dataclass(frozen=True)
class OptimumResult:
    """The optimal long-run cost of the MDP and a scheduler attaining it.

    :ivar cost_per_tick: ``R{"cost"}min=? [LRA]`` (cost per tick).
    :ivar cost_per_request: per arrived request, including the half-tick arrival offset.
    :ivar policy: the optimal scheduler as a table over (q, a) (None with several workers,
        whose optimal decisions also depend on the other workers' remaining service, and with
        Markov-modulated arrivals, where they depend on the phase).
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
    built = built or build_model(mdp_program(tm), tm, choice_labels=True, state_valuations=True)
    start = time.perf_counter()
    value, result = _initial_value(built, 'R{"cost"}min=? [LRA]', extract_scheduler=True)
    check_s = time.perf_counter() - start
    policy = _scheduler_table(tm, built, result) if tm.n_workers == 1 and tm.n_phases == 1 else None
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

    :ivar p_overflow: ``P=? [F<=n "full"]`` from an empty system; ``overflow_resolution`` the
        largest error the truncation of the arrival counts can cause in it (values below it are
        not resolved by the model).
    :ivar p_violation: ``P=? [F "violation"]`` with the shield (0 by construction of the shield);
        ``p_violation_raw`` of the policy's raw table, without the shield (None if not checked).
    :ivar drop_resolution: the arrival-count truncation per arrival (``arrival_tail /
        mean arrivals per tick``): drop rates below it are not resolved.
    :ivar solver: the long-run-average solver that answered, with its largest certified
        half-width per tick when it is the certified direct solve.
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
    solver: str = CERTIFIED
    rates: dict[str, float] = field(default_factory=dict, repr=False)
    p_violation_raw: float | None = None
    overflow_resolution: float = math.nan
    drop_resolution: float = math.nan


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
        overflow_resolution=extra.pop("overflow_resolution", math.nan),
        drop_resolution=tm.arrival_tail / tm.mean_arrivals,
        **extra,
    )


def _value_with_cpu_budget(built: _Built, formula: str, budget_s: float) -> float | None:
    """The value of ``formula`` under Storm's sound environment, computed within ``budget_s``
    seconds of CPU time (:func:`run_with_cpu_budget`); None if it ran out."""
    return run_with_cpu_budget(lambda: _initial_value(built, formula)[0], budget_s)


def run_with_cpu_budget(compute: Any, budget_s: float) -> float | None:
    """``compute()`` (a float) in a forked child process limited to ``budget_s`` seconds of CPU
    time (``RLIMIT_CPU``, rounded up to whole seconds: the kernel stops the child there, however
    loaded the machine); None if it ran out (or failed)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: compute, report, leave without running any cleanup of the parent
        try:
            os.close(read_fd)
            seconds = max(1, math.ceil(budget_s))
            resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
            os.write(write_fd, struct.pack("d", float(compute())))
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        data = b""
        while len(data) < 8:
            chunk = os.read(read_fd, 8 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return struct.unpack("d", data)[0] if len(data) == 8 else None


def _certified_rates(built: _Built, names: tuple[str, ...]) -> tuple[dict[str, float], str]:
    """Long-run averages per tick of ``names`` on a built DTMC by the certified direct solve
    (:mod:`formal.lra`), and the solver's name with its largest half-width."""
    certified = certified_long_run_averages(built.model, list(names))
    widest = max(c.half_width for c in certified.values())
    return {n: c.value for n, c in certified.items()}, f"{CERTIFIED} (+-{widest:.0e} per tick)"


def check_policy(
    tm: TickModel, policy: DiscretePolicy, *, overflow_s: float = 1.0, raw: bool = True
) -> PolicyFigures:
    """Build the DTMC of ``policy`` and compute its figures.

    With ``raw`` (default) the raw table is built first, without the shield, and
    ``P=? [F "violation"]`` is computed on it; when it is 0 no state where the shield would act
    is reachable, so the raw chain is the shielded one and its figures are kept; otherwise the
    shielded DTMC is built for the figures.

    :param overflow_s: time bound (s) of the overflow probability ``P=? [F<=n "full"]`` from an
        empty system, ``n = overflow_s / tick_s`` ticks.
    """
    if not overflow_s > 0:
        raise ValueError(f"overflow_s must be > 0 (s), got {overflow_s!r}")
    start = time.perf_counter()
    p_raw = None
    built = None
    build_s = 0.0
    if raw:
        built = build_model(dtmc_program(tm, policy, shield=False), tm)
        build_s = built.stats.build_s
        p_raw, _ = _initial_value(built, 'P=? [F "violation"]')
        if p_raw > 0:
            built = None
    if built is None:
        built = build_model(dtmc_program(tm, policy), tm)
        build_s += built.stats.build_s
    rates, solver = _certified_rates(built, tuple(n for n in REWARD_NAMES if n != "served"))
    steps = max(1, round(overflow_s / tm.tick_s))
    p_overflow, _ = _initial_value(built, f'P=? [F<={steps} "full"]')
    p_violation, _ = _initial_value(built, 'P=? [F "violation"]')
    stats = BuildStats(built.stats.states, built.stats.transitions, built.stats.choices, build_s)
    return figures_from_rates(
        tm,
        policy.name,
        rates,
        p_overflow=p_overflow,
        overflow_s=steps * tm.tick_s,
        p_violation=p_violation,
        p_violation_raw=p_raw,
        overflow_resolution=tm.truncation_resolution(steps),
        stats=stats,
        check_s=time.perf_counter() - start - build_s,
        solver=solver,
    )


# ---------------------------------------------------------------------------------- choice MDPs
@dataclass(frozen=True)
class Interval:
    """``[low, high]``: the minimum and the maximum over the schedulers of a choice MDP."""

    low: float
    high: float


@dataclass(frozen=True)
class ChoiceFigures:
    """Bounds over every scheduler of a choice MDP (:func:`check_choices`); per request, ms,
    probabilities.

    :ivar cost_per_request: ``Rmin``/``Rmax`` of the cost per arrived request.
    :ivar latency_ms: bounds on the mean latency: ``Rmin[sojourn] / (arrivals - Rmin[drops])``
        and ``Rmax[sojourn] / (arrivals - Rmax[drops])`` per tick (the latency of a scheduler is
        its sojourn over its served rate), plus the half-tick arrival offset.
    :ivar drop_rate: ``Rmin``/``Rmax`` of the drops per arrived request.
    :ivar p_overflow: ``Pmin``/``Pmax`` of the queue filling up within ``overflow_s``.
    :ivar p_violation_max: ``Pmax=? [F "violation"]`` of the model the figures come from (with
        the shield, 0 by construction, unless the raw model is safe and was used);
        ``p_violation_raw_max`` of the raw choices, without the shield (None if not checked).
    :ivar deterministic: one choice in every state (built and solved as a DTMC: low = high).
    :ivar solvers: per quantity, the solver that answered.
    :ivar age_bounds: the model kept a lower bound of the age after partial dispatches
        (:func:`formal.prism.needs_age_bounds`).
    """

    cost_per_request: Interval
    latency_ms: Interval
    drop_rate: Interval
    p_overflow: Interval
    p_violation_max: float
    p_violation_raw_max: float | None
    overflow_s: float
    overflow_resolution: float
    drop_resolution: float
    deterministic: bool
    stats: BuildStats
    check_s: float
    solvers: dict[str, str]
    age_bounds: bool = False

    @classmethod
    def of_policy(cls, f: PolicyFigures, tm: TickModel) -> ChoiceFigures:
        """The figures of one policy's DTMC as (point) bounds."""
        solvers = dict.fromkeys(("cost", "sojourn_ms", "dropped"), f.solver)
        raw = f.p_violation_raw
        return cls(
            cost_per_request=Interval(f.cost_per_request, f.cost_per_request),
            latency_ms=Interval(f.latency_ms, f.latency_ms),
            drop_rate=Interval(f.drop_rate, f.drop_rate),
            p_overflow=Interval(f.p_overflow, f.p_overflow),
            p_violation_max=f.p_violation,
            p_violation_raw_max=raw,
            overflow_s=f.overflow_s,
            overflow_resolution=f.overflow_resolution,
            drop_resolution=f.drop_resolution,
            deterministic=True,
            stats=f.stats or BuildStats(0, 0, 0, math.nan),
            check_s=f.check_s,
            solvers=solvers,
        )


def _mdp_long_run(
    built: _Built, name: str, direction: str, budget_s: float, matrix: ChoiceMatrix | None = None
) -> tuple[float, str]:
    """``R{name}{min|max}=? [LRA]`` of a built MDP: Storm's sound value iteration within
    ``budget_s`` of CPU time; when it runs out, the certified policy iteration of
    :mod:`formal.lra` started from the scheduler of Storm's default solver. For ``dropped``, whose
    tiny values neither Storm solver stops on, the certified policy iteration alone, started from
    the first choice of every state. The value (the interval's midpoint for the latter) and the
    solver's name."""
    formula = f'R{{"{name}"}}{direction}=? [LRA]'
    start: np.ndarray | None = None
    if name == "dropped":
        # Storm's default solver does not stop either on values near 0 (minutes on a band MDP of
        # 6,500 states): the policy iteration starts from the first choice of every state.
        why = "sound VI cannot stop on values near 0"
    else:
        if budget_s > 0:
            value = _value_with_cpu_budget(built, formula, budget_s)
            if value is not None:
                return value, SOUND
            why = f"sound VI > {budget_s:g} s CPU"
        else:
            why = "no sound VI budget"
        _, result = _initial_value(built, formula, environment=stormpy.Environment(), extract_scheduler=True)
        scheduler = result.get_scheduler()
        start = np.asarray(
            [scheduler.get_choice(s).get_deterministic_choice() for s in range(built.model.nr_states)]
        )
    c = certified_optimum(built.model, name, direction == "max", start, matrix=matrix)
    return c.value, f"{CERTIFIED_PI} (+-{c.half_width:.0e} per tick, {c.iterations} evaluations; {why})"


def check_choices(
    tm: TickModel,
    choices: Choices,
    title: str,
    *,
    raw_choices: Choices | None = None,
    overflow_s: float = 1.0,
    cpu_budget_s: float = CPU_BUDGET_S,
) -> ChoiceFigures:
    """Build the MDP of ``choices`` (:func:`formal.prism.choice_program`) and bound its
    figures over every scheduler (module docstring for the solvers). One choice in every state:
    it is built and solved as a DTMC, and every interval is a point.

    With ``raw_choices`` (the same scheduler without the shield) that model is built first and
    ``Pmax=? [F "violation"]`` computed on it; when it is 0, no state where the shield would act
    is reachable and its figures are those of the shielded model, so it is used for them."""
    start = time.perf_counter()
    steps = max(1, round(overflow_s / tm.tick_s))
    p_raw = None
    built = None
    build_s = 0.0

    def make(which: Choices) -> _Built:
        bounds = needs_age_bounds(tm, which)
        kind = "dtmc" if not bounds and all(len(c) == 1 for c in which.values()) else "mdp"
        return build_model(choice_program(tm, which, title, kind=kind, bounds=bounds), tm)

    if raw_choices is not None:
        built = make(raw_choices)
        build_s = built.stats.build_s
        p_raw = _initial_value(built, _violation(built))[0]
        if p_raw > 0:
            built = None
    if built is None:
        built = make(choices)
        build_s += built.stats.build_s
    deterministic = _is_dtmc(built)
    full = f'[F<={steps} "full"]'
    solvers: dict[str, str] = {}
    rates: dict[str, Interval] = {}
    names = ("cost", "sojourn_ms", "dropped")
    if deterministic:
        values, solver = _certified_rates(built, names)
        rates = {n: Interval(v, v) for n, v in values.items()}
        solvers = dict.fromkeys(names, solver)
        p = _initial_value(built, f"P=? {full}")[0]
        overflow = Interval(p, p)
    else:
        matrix = choice_matrix(built.model)
        for name in names:
            low, low_solver = _mdp_long_run(built, name, "min", cpu_budget_s, matrix)
            high, high_solver = _mdp_long_run(built, name, "max", cpu_budget_s, matrix)
            rates[name] = Interval(low, high)
            solvers[name] = (
                low_solver if low_solver == high_solver else f"min: {low_solver}; max: {high_solver}"
            )
        overflow = Interval(
            _initial_value(built, f"Pmin=? {full}")[0], _initial_value(built, f"Pmax=? {full}")[0]
        )
    violation = _initial_value(built, _violation(built))[0]
    arrivals = tm.mean_arrivals

    def latency(sojourn: float, dropped: float) -> float:
        served = arrivals - dropped
        return sojourn / served + tm.tick_ms / 2 if served > 0 else math.inf

    sojourn, dropped, cost = rates["sojourn_ms"], rates["dropped"], rates["cost"]
    stats = BuildStats(built.stats.states, built.stats.transitions, built.stats.choices, build_s)
    return ChoiceFigures(
        cost_per_request=Interval(cost_per_request(tm, cost.low), cost_per_request(tm, cost.high)),
        latency_ms=Interval(latency(sojourn.low, dropped.low), latency(sojourn.high, dropped.high)),
        drop_rate=Interval(dropped.low / arrivals, dropped.high / arrivals),
        p_overflow=overflow,
        p_violation_max=violation,
        p_violation_raw_max=p_raw,
        overflow_s=steps * tm.tick_s,
        overflow_resolution=tm.truncation_resolution(steps),
        drop_resolution=tm.arrival_tail / arrivals,
        deterministic=deterministic,
        stats=stats,
        check_s=time.perf_counter() - start - build_s,
        solvers=solvers,
        age_bounds=needs_age_bounds(tm, choices),
    )


def _is_dtmc(built: _Built) -> bool:
    return built.program.model_type.name == "DTMC"


def _violation(built: _Built) -> str:
    """The violation query of a DTMC (``P``) or an MDP (``Pmax``)."""
    return 'P=? [F "violation"]' if _is_dtmc(built) else 'Pmax=? [F "violation"]'
