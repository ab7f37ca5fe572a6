"""The hindsight bound (agents/hindsight): exact against brute force on small instances, a lower
bound for every policy the simulator runs, below the SMDP optimum on Poisson, and replayed in
the simulator at the cost it reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.hindsight import (
    HindsightProblem,
    PlannedBatch,
    ReplayError,
    Schedule,
    ScheduleReplay,
    episode_arrivals,
    episode_bound,
    hindsight_bound,
    hindsight_cost_per_request,
    replay_schedule,
    schedule_cost,
    schedule_violations,
)
from agents.hindsight.frontier import solve_frontier
from agents.hindsight.pairs import pareto_pairs, solve_pairs
from agents.hindsight.replay import arrival_stream
from agents.hindsight.workers import solve_workers
from agents.optimal import OptimalScheduler
from agents.registry import make_agent, run_episode
from agents.smdp import solve_optimal
from batchenv.config import ConfigError, ModelProfile, SystemConfig, TimingTable
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate


def tiny_config(**changes) -> SystemConfig:
    """Three models, batches of up to 4 (table sizes 1, 2, 4), the brief's time scale."""
    base = SystemConfig(
        name="tiny",
        timing=TimingTable(batch_sizes=(1, 2, 4), comm_ms=(2.0, 2.5, 3.0)),
        models=(
            ModelProfile("LLM-1", 1.00, (10.0, 15.0, 25.0)),
            ModelProfile("LLM-2", 0.97, (8.0, 12.0, 20.0)),
            ModelProfile("LLM-3", 0.92, (4.0, 5.0, 10.0)),
        ),
        max_batch_size=4,
    )
    return base.replace(**changes)


def tiny_instance(seed: int) -> tuple[SystemConfig, np.ndarray, float]:
    """A random small instance: 5 or 6 arrivals (sometimes tied), a horizon just after the last
    one, and rules drawn so that the shield, the queue capacity, drops, SLO penalties and the
    horizon all come into play on some seeds."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 7))
    gaps = rng.exponential(1.0 / rng.choice([50.0, 150.0, 400.0]), n)
    times = np.cumsum(gaps)
    if seed % 3 == 0:
        times = np.round(times, 2)  # ties, as in traces with coarse timestamps
    times = np.sort(times)
    horizon = float(times[-1] + rng.uniform(0.001, 0.06))
    config = tiny_config(
        max_wait_ms=float(rng.choice([1.0, 4.0, 100.0])),
        queue_capacity=int(rng.choice([2, 3, 1024])),
        slo_ms=float(rng.choice([15.0, 30.0, 250.0])),
        reward={
            "w_latency_per_s": float(rng.choice([1.0, 5.0])),
            "w_slo": float(rng.choice([0.0, 0.2])),
            "w_drop": float(rng.choice([0.05, 1.0])),
        },
        horizon_s=horizon,
    )
    return config, times, horizon


# ---------------------------------------------------------------------------------------------
# Brute force over schedules, written from the rules, independently of the programme
# ---------------------------------------------------------------------------------------------


def brute_force(problem: HindsightProblem, *, relaxed: bool, delays: tuple[float, ...] = (0.0,)) -> float:
    """Least cost over every FIFO schedule on one worker: every split into batches, every model,
    dispatch at the earliest time plus each of ``delays`` and at every later arrival time (and,
    with the shield, at the shield time); drops (relaxed: of any request) and the requests left
    at the horizon. Costs are summed request by request."""
    a = [float(x) for x in problem.arrivals_s]
    n = len(a)
    horizon, w, w_slo, slo = problem.horizon_s, problem.w_latency_per_s, problem.w_slo, problem.slo_s
    best_q = problem.best_quality
    leftover = [best_q + w * (horizon - t) for t in a]
    drop = problem.drop_cost
    cap = problem.queue_capacity
    wait_s = problem.max_wait_s
    best = math.inf

    def served_cost(first: int, last: int, m: int, d: float) -> float:
        completion = d + float(problem.service_s[m, last - first + 1])
        return sum(
            best_q - float(problem.quality[m]) + w * (completion - a[r]) + w_slo * (a[r] < completion - slo)
            for r in range(first, last + 1)
        )

    def visit(i: int, f: float, cost: float) -> None:
        nonlocal best
        if cost >= best:
            return
        if i == n:
            best = min(best, cost)
            return
        if relaxed:
            best = min(best, cost + sum(min(leftover[r], drop) for r in range(i, n)))
            visit(i + 1, f, cost + drop)
        elif i + cap >= n and max(f, a[i] + wait_s) >= horizon:
            best = min(best, cost + sum(leftover[i:]))
        for last in range(i, min(n, i + problem.max_batch_size)):
            earliest = max(f, a[last])
            times = {earliest + delay for delay in delays} | {t for t in a if t > earliest}
            if not relaxed:
                times.add(a[i] + wait_s)
            for d in sorted(times):
                if d < earliest or d >= horizon:
                    continue
                if not relaxed:
                    if d > max(f, a[i] + wait_s):
                        continue  # a worker idles past the shield
                    if i + cap < n and not d < a[i + cap]:
                        continue  # the queue fills before the dispatch
                for m in range(problem.n_models):
                    s = float(problem.service_s[m, last - i + 1])
                    visit(last + 1, d + s, cost + served_cost(i, last, m, d))

    visit(0, 0.0, 0.0)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_relaxed_programme_equals_brute_force(seed: int) -> None:
    config, arrivals, _ = tiny_instance(seed)
    problem = HindsightProblem.from_config(config, arrivals)
    result = solve_frontier(problem, "relaxed")
    assert result.cost == pytest.approx(brute_force(problem, relaxed=True), rel=1e-12, abs=1e-12)
    assert schedule_cost(problem, result.schedule) == pytest.approx(result.cost, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(0, 40, 5))
def test_dispatching_later_never_helps_without_the_shield(seed: int) -> None:
    """The earliest-dispatch argument: waiting longer (by fixed delays or to later arrivals)
    finds nothing cheaper in the relaxation."""
    config, arrivals, _ = tiny_instance(seed)
    arrivals = arrivals[:5]
    problem = HindsightProblem.from_config(config, arrivals)
    earliest = brute_force(problem, relaxed=True)
    assert brute_force(problem, relaxed=True, delays=(0.0, 0.0007, 0.003)) == pytest.approx(
        earliest, rel=1e-12
    )


@pytest.mark.parametrize("seed", range(40))
def test_bound_brackets_the_best_playable_schedule(seed: int) -> None:
    config, arrivals, _ = tiny_instance(seed)
    problem = HindsightProblem.from_config(config, arrivals)
    bound = hindsight_bound(config, arrivals)
    playable = brute_force(problem, relaxed=False, delays=(0.0, 0.0007, 0.003))
    assert bound.lower_cost <= playable + 1e-12
    assert playable <= bound.upper_cost + 1e-12
    if bound.exact:
        assert bound.lower_cost == pytest.approx(playable, rel=1e-12, abs=1e-12)
    if bound.schedule is None:  # every schedule overflows the queue (ties at a full queue)
        assert playable == math.inf and bound.upper_cost == math.inf
    else:
        assert schedule_violations(problem, bound.schedule) == []


def test_the_shield_can_make_the_relaxed_optimum_unplayable() -> None:
    """With a 1 ms shield the relaxed optimum can wait longer than the shield allows; the bound
    then reports the rule it breaks, a realisable schedule and the gap between them."""
    shielded = []
    for seed in range(60):
        config, arrivals, _ = tiny_instance(seed)
        bound = hindsight_bound(config, arrivals)
        if bound.violations:
            assert "realisable" in bound.stats and not bound.exact
            assert bound.upper_cost > bound.lower_cost
        if any("shield" in v for v in bound.violations) and config.queue_capacity > 6:
            shielded.append(bound)
            assert bound.schedule is not None and bound.gap_per_request > 0
    assert shielded, "no instance where the relaxation breaks the shield: the test lost its point"


# ---------------------------------------------------------------------------------------------
# Brute force over the simulator's own decisions
# ---------------------------------------------------------------------------------------------


class _StopError(Exception):
    pass


class _Prefix:
    """Plays a list of decisions, then stops the episode and records the options it meets."""

    def __init__(self, decisions: list) -> None:
        self.decisions = decisions
        self.step = 0
        self.options: list | None = None

    def __call__(self, sim: Simulator):
        if self.step < len(self.decisions):
            self.step += 1
            return self.decisions[self.step - 1]
        q = min(sim.queue_len, sim.max_batch_size)
        self.options = [None] + [(m, b) for m in range(sim.n_models) for b in range(1, q + 1)]
        if not any(isinstance(d, float) for d in self.decisions):
            # once per episode, wait 2 ms past an event (a dispatch at a time no event marks)
            self.options.append(sim.oldest_wait_s + 0.002)
        raise _StopError


def simulator_brute_force(config: SystemConfig, arrivals: np.ndarray) -> float:
    """Least cost over every sequence of the simulator's decisions (wait for the next event,
    wait 2 ms more, or dispatch any batch on any model): the simulator itself as the oracle,
    drops, forced dispatches and the horizon included."""
    best = math.inf
    best_q = max(config.qualities)
    stack: list[list] = [[]]
    while stack:
        decisions = stack.pop()
        policy = _Prefix(decisions)
        sim = Simulator(config, record=False)
        sim.reset(arrivals=arrival_stream(arrivals))
        try:
            sim.run(policy)
        except _StopError:
            stack.extend([*decisions, option] for option in policy.options)
            continue
        best = min(best, best_q * sim.n_arrived - sim.total_reward)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_no_sequence_of_simulator_decisions_beats_the_bound(seed: int) -> None:
    config, arrivals, _ = tiny_instance(100 + seed)
    config = config.replace(models=config.models[:2], queue_capacity=2 if seed % 2 else 1024)
    arrivals = arrivals[:4]
    bound = hindsight_bound(config, arrivals)
    best = simulator_brute_force(config, arrivals)
    assert bound.lower_cost <= best + 1e-12
    if bound.exact:
        assert bound.lower_cost == pytest.approx(best, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Whole episodes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "rate", "seed"),
    [("default", 100.0, 0), ("default", 250.0, 1), ("azure_trace", 150.0, 2), ("azure_trace_slo", None, 3)],
)
def test_replayed_schedule_costs_what_the_bound_says(scenario: str, rate: float | None, seed: int) -> None:
    config = load_scenario(scenario).replace(horizon_s=10.0)
    if rate is not None:
        config = config.at_rate(rate)
    arrivals = episode_arrivals(config, seed)
    bound = hindsight_bound(config, arrivals)
    sim = replay_schedule(config, arrivals, bound.schedule)
    metrics = compute_metrics(sim)
    assert metrics.n_arrived == bound.n_requests
    assert metrics.cost_per_request == pytest.approx(bound.upper_cost_per_request, rel=1e-9)
    assert bound.exact and bound.lower_cost == pytest.approx(bound.upper_cost, rel=1e-9)
    # the same episode from its seed: simulate() meets the same arrivals
    replayed = simulate(config, ScheduleReplay(bound.schedule), seed)
    assert compute_metrics(replayed).cost_per_request == pytest.approx(metrics.cost_per_request, rel=1e-12)


def test_replay_refuses_a_schedule_the_simulator_does_not_follow() -> None:
    config = tiny_config(horizon_s=1.0)
    arrivals = np.array([0.0, 0.010, 0.020])
    late = Schedule((PlannedBatch(0.5, 0, 3, 0),), (), 3)  # idles 500 ms past the 100 ms shield
    assert any(
        "shield" in v for v in schedule_violations(HindsightProblem.from_config(config, arrivals), late)
    )
    with pytest.raises(ReplayError):
        replay_schedule(config, arrivals, late)


@pytest.mark.parametrize("rate", [50.0, 100.0, 200.0])
def test_bound_is_below_the_smdp_optimum_on_poisson(rate: float) -> None:
    """Hindsight knows the arrivals: per episode it is below the simulated optimal policy on the
    same arrivals (always) and, on these 20 s episodes, more than 3% below the SMDP's long-run
    cost (at 20/s the hindsight advantage is within the episode-to-episode spread: not tested)."""
    config = load_scenario("default").at_rate(rate).replace(horizon_s=20.0)
    optimum = solve_optimal(config, rate).cost_per_request
    for seed in (0, 1):
        bound = episode_bound(config, seed)
        assert bound.exact
        assert bound.lower_cost_per_request < 0.97 * optimum
        sim = simulate(config, OptimalScheduler(config), seed)
        assert bound.lower_cost_per_request <= compute_metrics(sim).cost_per_request


def _assert_bound_below(config: SystemConfig, agents: tuple[str, ...], seeds: tuple[int, ...]) -> None:
    built = [make_agent(agent, config) for agent in agents]
    for seed in seeds:
        bound_cost = hindsight_cost_per_request(config, seed)
        for agent in built:
            sim = run_episode(agent, config, seed)
            assert bound_cost <= compute_metrics(sim).cost_per_request + 1e-12, (
                config.name,
                agent.describe(),
                seed,
            )


def test_bound_is_never_above_a_baseline() -> None:
    """On the same arrivals (seeds 0 and 1), greedy, the tuned timeout and proposed all cost at
    least the bound: Poisson, the real trace, the trace with an SLO penalty. (One test: the
    proposed scheduler's tables are built once per process.)"""
    for scenario in ("default", "azure_trace", "azure_trace_slo"):
        _assert_bound_below(
            load_scenario(scenario).replace(horizon_s=6.0), ("greedy", "timeout", "proposed"), (0, 1)
        )


@pytest.mark.parametrize(
    ("scenario", "changes", "agents"),
    [
        # a small queue: the baselines drop requests
        ("high_load", {"horizon_s": 1.0, "queue_capacity": 80}, ("greedy", "timeout", "aimd")),
        # a 2 ms shield: forced dispatches
        ("default", {"horizon_s": 4.0, "max_wait_ms": 2.0}, ("greedy", "timeout(T=1)", "static(B=4)")),
    ],
)
def test_bound_holds_where_drops_and_the_shield_bind(
    scenario: str, changes: dict, agents: tuple[str, ...]
) -> None:
    _assert_bound_below(load_scenario(scenario).replace(**changes), agents, (0, 1, 2))


@pytest.mark.parametrize(
    "scenario",
    [
        "default",
        "default_randomised",
        "bursty",
        "azure_trace",
        # an SLO objective drawn per episode, before the arrivals (a mixture of rates and traces)
        "benchmarks/configs/default_mixture_slo.yaml",
    ],
)
def test_episode_arrivals_are_the_simulators(scenario: str) -> None:
    from serving.workload import episode_arrivals_s  # the load generator's, the same function

    config = load_scenario(scenario).replace(horizon_s=5.0)
    sim = simulate(config, lambda sim: (0, 64), seed=7)
    arrivals = episode_arrivals(config, 7)
    assert len(arrivals) == sim.n_arrived
    assert np.array_equal(arrivals, np.asarray(sim.admitted_arrivals_s))
    assert np.array_equal(episode_arrivals_s(config, 7, 5.0), arrivals)


def test_no_arrivals() -> None:
    config = tiny_config(horizon_s=1.0)
    bound = hindsight_bound(config, np.array([]))
    assert bound.lower_cost == 0.0 and bound.exact and math.isnan(bound.lower_cost_per_request)


@pytest.mark.parametrize(
    ("arrivals", "changes", "kwargs", "field"),
    [
        ([0.2, 0.1], {}, {}, "arrivals_s"),
        ([-0.1, 0.1], {}, {}, "arrivals_s"),
        ([0.0, float("nan")], {}, {}, "arrivals_s"),
        ([[0.0, 0.1]], {}, {}, "arrivals_s"),
        ([0.0], {}, {"horizon_s": 0.0}, "horizon_s"),
        ([0.0], {}, {"horizon_s": float("inf")}, "horizon_s"),
    ],
)
def test_bad_input_names_the_argument(arrivals: list, changes: dict, kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        hindsight_bound(tiny_config(**changes), np.array(arrivals), **kwargs)


# ---------------------------------------------------------------------------------------------
# Several workers: the relaxed programme on the virtual worker is a lower bound
# ---------------------------------------------------------------------------------------------


def brute_force_workers(problem: HindsightProblem) -> float:
    """Least cost over every FIFO schedule on ``problem.n_workers`` workers that serves every
    request: every split into batches, every model and every worker per batch, each batch
    dispatched at the earliest time its worker, its last arrival and the previous dispatch (FIFO)
    allow (a later dispatch changes no batch and delays every completion after it). No shield, no
    queue limit, no drop: the least cost of the simulator's schedules is at least this."""
    a = [float(x) for x in problem.arrivals_s]
    n = len(a)
    w, w_slo, slo = problem.w_latency_per_s, problem.w_slo, problem.slo_s
    best_q = problem.best_quality
    best = math.inf

    def visit(i: int, free: tuple[float, ...], last_dispatch: float, cost: float) -> None:
        nonlocal best
        if cost >= best:
            return
        if i == n:
            best = cost
            return
        for last in range(i, min(n, i + problem.max_batch_size)):
            for worker in sorted(set(range(len(free))), key=lambda k: free[k]):
                d = max(free[worker], a[last], last_dispatch)
                if d >= problem.horizon_s:
                    continue
                for m in range(problem.n_models):
                    done = d + float(problem.service_s[m, last - i + 1])
                    batch = sum(
                        best_q - float(problem.quality[m]) + w * (done - a[r]) + w_slo * (a[r] < done - slo)
                        for r in range(i, last + 1)
                    )
                    after = tuple(done if k == worker else f for k, f in enumerate(free))
                    visit(last + 1, after, d, cost + batch)

    visit(0, (0.0,) * problem.n_workers, 0.0, 0.0)
    return best


@pytest.mark.parametrize("seed", range(24))
def test_several_workers_bound_is_below_every_schedule(seed: int) -> None:
    """On small instances with 2 or 3 workers the relaxed programme costs at most the best FIFO
    schedule (brute force), at least what every request costs alone on an idle worker, and at
    most the one-worker optimum (more workers can only help)."""
    config, times, _ = tiny_instance(seed)
    config = config.replace(
        n_workers=2 + seed % 2, queue_capacity=1024, horizon_s=float(times[-1] + 1.0), max_wait_ms=1000.0
    )
    problem = HindsightProblem.from_config(config, times)
    bound = hindsight_bound(config, times)
    optimum = brute_force_workers(problem)
    assert bound.lower_cost <= optimum * (1 + 1e-12)
    alone = min(
        problem.best_quality - problem.quality[m] + problem.w_latency_per_s * problem.service_s[m, 1]
        for m in range(problem.n_models)
    )
    assert bound.lower_cost >= len(times) * alone * (1 - 1e-12)
    one_worker = hindsight_bound(config.replace(n_workers=1), times)
    assert bound.lower_cost <= one_worker.lower_cost * (1 + 1e-12)
    # the schedule found is one of the brute force's: at least its optimum, and the simulator
    # plays it at the cost the bound says
    assert bound.schedule is not None and "workers" in bound.stats
    assert optimum <= bound.upper_cost * (1 + 1e-12)
    assert schedule_violations(problem, bound.schedule) == []
    played = replay_schedule(config, times, bound.schedule)
    assert problem.best_quality * played.n_arrived - played.total_reward == pytest.approx(
        bound.upper_cost, rel=1e-12
    )


@pytest.mark.parametrize("seed", range(24))
def test_pair_programme_on_a_fine_grid_is_the_least_cost_of_every_two_worker_schedule(seed: int) -> None:
    """With two workers and the free times on a 1 ns grid, the pair programme's optimum is the
    brute force's (every FIFO split, model and worker; no shield, queue limit or drop binds
    here) to the rounding; on its default 1 ms grid it is at most that."""
    config, times, _ = tiny_instance(seed)
    config = config.replace(
        n_workers=2, queue_capacity=1024, horizon_s=float(times[-1] + 1.0), max_wait_ms=1000.0
    )
    problem = HindsightProblem.from_config(config, times)
    optimum = brute_force_workers(problem)
    fine = solve_pairs(problem, grid_s=1e-9).cost
    assert fine <= optimum * (1 + 1e-12)
    assert fine == pytest.approx(optimum, rel=1e-6)
    assert solve_pairs(problem).cost <= optimum * (1 + 1e-12)


def test_pareto_pairs_is_the_front_of_a_brute_force() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        f0 = rng.integers(0, 6, n).astype(float)
        f1 = f0 + rng.integers(0, 6, n)
        cost = rng.integers(0, 8, n).astype(float)
        kept = set(pareto_pairs(f0, f1, cost).tolist())
        for i in range(n):
            beaten = any(
                f0[j] <= f0[i]
                and f1[j] <= f1[i]
                and cost[j] <= cost[i]
                and (j < i or (f0[j], f1[j], cost[j]) != (f0[i], f1[i], cost[i]))
                for j in range(n)
                if j != i
            )
            assert (i in kept) == (not beaten), (i, f0[i], f1[i], cost[i])


def test_pareto_pairs_with_its_bucket_pass_is_the_front_of_a_brute_force() -> None:
    """Past 512 states a bucket pass runs first: the front is still exact (vectorised brute force
    over every pair of states)."""
    rng = np.random.default_rng(12)
    for n in (600, 3000):
        f0 = rng.integers(0, 200, n).astype(float)
        f1 = f0 + rng.integers(0, 200, n)
        cost = rng.normal(size=n) - 0.01 * (f0 + f1)  # cheaper when later, as in the programme
        kept = np.zeros(n, dtype=bool)
        kept[pareto_pairs(f0, f1, cost)] = True
        no_worse = (f0[:, None] <= f0) & (f1[:, None] <= f1) & (cost[:, None] <= cost)  # [j, i]
        same = (f0[:, None] == f0) & (f1[:, None] == f1) & (cost[:, None] == cost)
        earlier = np.arange(n)[:, None] < np.arange(n)
        beaten = (no_worse & (~same | earlier)).any(axis=0)
        np.testing.assert_array_equal(kept, ~beaten)


def test_pair_programme_is_tighter_than_the_credit_relaxation_on_multi_gpu() -> None:
    """The reason it exists: on two 2 s episodes at 400 requests/s the pair bound is above the
    one-virtual-worker bound and within 3% of the schedule found."""
    config = load_scenario("multi_gpu").replace(horizon_s=2.0)
    for seed in range(2):
        arrivals = episode_arrivals(config, seed)
        problem = HindsightProblem.from_config(config, arrivals)
        credit = solve_frontier(problem, "relaxed").cost
        bound = hindsight_bound(config, arrivals)
        assert "pairs" in bound.stats and bound.lower_cost > credit
        assert bound.lower_cost < bound.upper_cost < 1.03 * bound.lower_cost


def test_pair_programme_refuses_other_workers_and_a_bad_grid() -> None:
    config, times, _ = tiny_instance(0)
    with pytest.raises(ValueError, match="covers two workers"):
        solve_pairs(HindsightProblem.from_config(config.replace(n_workers=3), times))
    two = HindsightProblem.from_config(config.replace(n_workers=2), times)
    for grid in (0.0, -1e-3, math.inf, True, "1ms"):
        with pytest.raises(ValueError, match="grid_s must be a number > 0"):
            solve_pairs(two, grid_s=grid)


@pytest.mark.parametrize("seed", range(24))
def test_worker_search_with_one_worker_and_a_wide_beam_is_the_exact_optimum(seed: int) -> None:
    """With one worker the front of (free time, cost) is the exact Pareto front, so a beam
    that never binds finds the earliest-dispatch optimum: the relaxed programme's where that one
    is playable."""
    config, times, _ = tiny_instance(seed)
    config = config.replace(queue_capacity=1024, max_wait_ms=1000.0, horizon_s=float(times[-1] + 1.0))
    problem = HindsightProblem.from_config(config, times)
    bound = hindsight_bound(config, times)
    assert bound.exact
    searched = solve_workers(problem, beam=10**6)
    assert searched.cost == pytest.approx(bound.lower_cost, rel=1e-12)
    assert schedule_cost(problem, searched.schedule) == pytest.approx(searched.cost, rel=1e-12)


def test_a_narrower_beam_never_finds_a_cheaper_schedule_here() -> None:
    """On a two-worker episode at 400 requests/s the search with a wider beam costs no more
    (it keeps a superset of the front at the first index where the narrow one thins it), and
    both are playable."""
    config = load_scenario("multi_gpu").replace(horizon_s=1.0)
    arrivals = episode_arrivals(config, 0)
    problem = HindsightProblem.from_config(config, arrivals)
    costs = []
    for beam in (2, 16, 128):
        found = solve_workers(problem, beam=beam)
        assert schedule_violations(problem, found.schedule) == []
        costs.append(found.cost)
    assert costs[2] <= costs[1] <= costs[0]
    assert costs[2] >= hindsight_bound(config, arrivals).lower_cost


@pytest.mark.parametrize("seed", range(8))
def test_worker_search_on_every_projection_plays_a_schedule_no_cheaper_than_the_least(seed: int) -> None:
    """Keeping the fronts on each free time too (projection "all"), the search still returns a
    schedule that keeps every rule, replays in the simulator at its cost and costs at least the
    brute force's least cost (2 and 3 workers, a beam of 2 so that the thinning binds)."""
    config, times, _ = tiny_instance(seed)
    config = config.replace(
        n_workers=2 + seed % 2, queue_capacity=1024, horizon_s=float(times[-1] + 1.0), max_wait_ms=1000.0
    )
    problem = HindsightProblem.from_config(config, times)
    found = solve_workers(problem, beam=2, projection="all")
    assert found.schedule is not None and schedule_violations(problem, found.schedule) == []
    assert brute_force_workers(problem) <= found.cost * (1 + 1e-12)
    played = replay_schedule(config, times, found.schedule)
    assert problem.best_quality * played.n_arrived - played.total_reward == pytest.approx(
        found.cost, rel=1e-12
    )


@pytest.mark.parametrize("scenario", ["multi_gpu", "multi_gpu_4"])
def test_more_projections_find_a_cheaper_schedule_here(scenario: str) -> None:
    """On 1 s episodes at 400/s (2 workers) and 800/s (4 workers) with a narrow beam, keeping the
    fronts on each free time too finds a cheaper schedule than the front on their sum alone (a
    measured property of these instances, not a theorem), and both play."""
    config = load_scenario(scenario).replace(horizon_s=1.0)
    arrivals = episode_arrivals(config, 0)
    problem = HindsightProblem.from_config(config, arrivals)
    by_sum = solve_workers(problem, beam=4)
    by_all = solve_workers(problem, beam=4, projection="all")
    for found in (by_sum, by_all):
        assert schedule_violations(problem, found.schedule) == []
    assert by_all.cost < by_sum.cost


@pytest.mark.parametrize("projection", ["", "max", None, 1])
def test_worker_search_refuses_a_bad_projection(projection) -> None:
    config, times, _ = tiny_instance(0)
    with pytest.raises(ValueError, match="projection must be one of sum, all"):
        solve_workers(HindsightProblem.from_config(config.replace(n_workers=2), times), projection=projection)
    with pytest.raises(ValueError, match="projection must be one of sum, all"):
        hindsight_bound(config, times, projection=projection)


@pytest.mark.parametrize("beam", [0, -3, 2.5, True, "8"])
def test_worker_search_refuses_a_bad_beam(beam) -> None:
    config, times, _ = tiny_instance(0)
    with pytest.raises(ValueError, match="beam must be an integer >= 1"):
        solve_workers(HindsightProblem.from_config(config.replace(n_workers=2), times), beam=beam)
    for workers in (1, 2):  # the bound checks it before any programme runs, with one worker too
        with pytest.raises(ValueError, match="beam must be an integer >= 1"):
            hindsight_bound(config.replace(n_workers=workers), times, beam=beam)


@pytest.mark.parametrize("seed", range(8))
def test_no_sequence_of_simulator_decisions_beats_the_several_workers_bound(seed: int) -> None:
    """The simulator itself as the oracle, with two workers: drops (a queue of 2 on odd seeds),
    forced dispatches and the horizon included."""
    config, arrivals, _ = tiny_instance(100 + seed)
    config = config.replace(models=config.models[:2], queue_capacity=2 if seed % 2 else 1024, n_workers=2)
    arrivals = arrivals[:4]
    bound = hindsight_bound(config, arrivals)
    best = simulator_brute_force(config, arrivals)
    assert bound.lower_cost <= best + 1e-12
    assert best <= bound.upper_cost + 1e-12  # the schedule found is a sequence of decisions too


def test_several_workers_bound_is_below_the_agents_on_multi_gpu() -> None:
    """A lower bound of every policy of the simulator: below each agent on the same arrivals."""
    config = load_scenario("multi_gpu").replace(horizon_s=2.0)
    for seed in range(2):
        bound = episode_bound(config, seed)
        assert bound.lower_cost_per_request > 0
        assert bound.lower_cost_per_request < bound.upper_cost_per_request
        for spec in ("greedy", "timeout", "util_switch", "proposed"):
            metrics = compute_metrics(simulate(config, make_agent(spec, config), seed))
            assert bound.lower_cost_per_request <= metrics.cost_per_request
            # knowing the arrivals helps: the schedule found beats every online agent here
            assert bound.upper_cost_per_request < metrics.cost_per_request
        played = replay_schedule(config, episode_arrivals(config, seed), bound.schedule)
        cost = compute_metrics(played).cost_per_request
        assert cost == pytest.approx(bound.upper_cost_per_request, rel=1e-9)


def config_with_a_slow_model(config: SystemConfig) -> SystemConfig:
    """``config`` plus a fourth model that is useful for one request (better than LLM-2, faster
    than LLM-1) and beaten outright by LLM-1 at 4 (83 ms, three times LLM-1's): the longest
    service of the table is then not a useful option."""
    slow = ModelProfile("LLM-slow", 0.99, (7.0, 20.0, 80.0))
    return config.replace(models=(*config.models, slow))


def test_the_credit_counts_useful_options_only() -> None:
    config, times, _ = tiny_instance(1)
    problem = HindsightProblem.from_config(config_with_a_slow_model(config).replace(n_workers=3), times)
    useful = problem.useful_options()
    assert useful[1, 3] and not useful[4, 3]  # LLM-slow alone is useful, at 4 it is not
    longest = float(problem.service_s[:, 1:].max())
    assert longest == pytest.approx(problem.service_s[3, 4])
    assert problem.credit_s == pytest.approx(2 / 3 * float(problem.service_s[0, 4]))
    assert problem.credit_s < 0.5 * 2 / 3 * longest
    default = HindsightProblem.from_config(load_scenario("multi_gpu_4"), np.zeros(1))
    # the default system's longest useful batch is LLM-2's at 37 (LLM-1's at 64 is not useful)
    assert not default.useful_options()[64, 0] and default.useful_options()[37, 1]
    assert default.credit_s == pytest.approx(0.75 * float(default.service_s[1, 37]))


@pytest.mark.parametrize("seed", range(10))
def test_the_virtual_worker_is_below_every_schedule_when_the_longest_batch_is_not_useful(seed: int) -> None:
    """The credit leaves out the options another model beats outright; the brute force tries them
    all (three workers, the slow model among them): the relaxed programme stays at or below the
    least cost of every FIFO schedule."""
    config, times, _ = tiny_instance(200 + seed)
    times = times[:5]
    config = config_with_a_slow_model(config).replace(
        n_workers=3, queue_capacity=1024, horizon_s=float(times[-1] + 1.0), max_wait_ms=1000.0
    )
    problem = HindsightProblem.from_config(config, times)
    assert problem.credit_s < 2 / 3 * float(problem.service_s[:, 1:].max())
    assert solve_frontier(problem, "relaxed").cost <= brute_force_workers(problem) * (1 + 1e-12)


def test_one_worker_has_no_credit_and_the_realisable_programme_refuses_several() -> None:
    config, times, _ = tiny_instance(3)
    one = HindsightProblem.from_config(config, times)
    assert one.credit_s == 0.0 and one.n_workers == 1
    two = HindsightProblem.from_config(config.replace(n_workers=2), times)
    useful = two.useful_options()[1:]
    assert two.credit_s == pytest.approx(0.5 * float(two.service_by_size()[1:][useful].max()))
    assert two.credit_s <= 0.5 * float(two.service_s[:, 1:].max())
    with pytest.raises(ValueError, match="one worker"):
        solve_frontier(two, "realisable")


def test_an_episode_that_draws_its_slo_objective_is_bounded_under_it() -> None:
    """With reward.slo_probability > 0 each episode draws its own SLO bound and penalty, and its
    agents are charged with them: so is the bound. The best schedule found costs, played in the
    simulator on that episode (simulate: the same draws), what the bound says, and no agent is
    below the bound; under the config's objective (w_slo = 0) the schedule's cost was not the
    simulator's."""
    import dataclasses

    from agents.hindsight import episode_objective

    base = load_scenario("high_load").replace(horizon_s=1.0)
    reward = dataclasses.replace(
        base.reward, slo_probability=0.5, slo_ms_range=(40.0, 60.0), w_slo_range=(0.2, 0.5)
    )
    config = base.replace(reward=reward)
    seed = 3  # draws an objective (seeds 0 and 1 keep the config's)
    sim = simulate(config, make_agent("greedy", config), seed)
    assert episode_objective(config, seed) == (sim.slo_s, sim.w_slo)
    assert sim.w_slo > 0 and sim.slo_s < config.slo_ms / 1000.0
    assert episode_objective(config, 0) == (config.slo_ms / 1000.0, 0.0)
    assert episode_objective(base, seed) is None
    bound = episode_bound(config, seed)
    assert bound.schedule is not None
    played = simulate(config, ScheduleReplay(bound.schedule), seed)
    assert compute_metrics(played).cost_per_request == pytest.approx(bound.upper_cost_per_request, rel=1e-9)
    for spec in ("greedy", "timeout", "proposed"):
        cost = compute_metrics(simulate(config, make_agent(spec, config), seed)).cost_per_request
        assert bound.lower_cost_per_request <= cost + 1e-12, spec
    unpenalised = hindsight_bound(config, episode_arrivals(config, seed))
    assert unpenalised.lower_cost_per_request < bound.lower_cost_per_request


# ---------------------------------------------------------------------------------------------
# Rounding, exactness and the bucket pass
# ---------------------------------------------------------------------------------------------


def test_rounding_down_to_the_grid_never_rounds_up() -> None:
    """In floating point ``floor(x / g) * g`` can exceed x (0.018 on a 1 ms grid gives
    0.018000000000000002): the relaxations' rounding stays at or below x, within one step."""
    from agents.hindsight.frontier import GRID_S, floor_to_grid
    from agents.hindsight.pairs import PAIR_GRID_S

    for grid in (PAIR_GRID_S, GRID_S):
        values = np.round(np.arange(1, 20_000) * grid, 6)  # grid points as a trace writes them
        down = floor_to_grid(values, grid)
        assert (down <= values).all()
        assert (values - down < 1.000001 * grid).all()  # at most one step below
    assert floor_to_grid(np.array([0.018]), 1e-3)[0] == 0.018


def flip_config(workers: int) -> SystemConfig:
    """One model of 20 ms batches of 1 (18 ms + 2 ms of communication), SLO 20 ms with a
    penalty: a request served at once has a latency exactly at the SLO, no miss."""
    return SystemConfig(
        name="flip",
        timing=TimingTable(batch_sizes=(1,), comm_ms=(2.0,), t_pre_ms=0.0, t_post_ms=0.0),
        models=(ModelProfile("A", 1.0, (18.0,)),),
        max_batch_size=1,
        n_workers=workers,
        slo_ms=20.0,
        horizon_s=1.0,
        reward={"w_latency_per_s": 1.0, "w_slo": 0.5, "w_drop": 1.0},
    )


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_latency_exactly_at_the_slo_is_no_miss_in_the_bound(workers: int) -> None:
    """Arrivals at 0 and 18 ms: with two workers both are served at once, each with a latency of
    exactly 20 ms, the SLO. The pair programme rounded the second worker's free time, 0.018,
    down to 0.018000000000000002 and charged an SLO miss that no schedule has: its bound was
    0.54, above the 0.04 the greedy policy costs in the simulator."""
    config = flip_config(workers)
    arrivals = np.array([0.0, 0.018])
    bound = hindsight_bound(config, arrivals)
    sim = Simulator(config)
    sim.reset(arrivals=arrival_stream(arrivals))
    sim.run(lambda state: (0, 1))  # model 0, a batch of one, at once
    greedy = max(config.qualities) * sim.n_arrived - sim.total_reward
    assert bound.lower_cost <= greedy + 1e-12
    assert bound.exact
    if workers > 1:
        assert sim.n_slo_misses == 0
        assert bound.lower_cost == pytest.approx(greedy, rel=1e-12)


def test_exact_needs_both_costs_close_and_a_bound_above_the_schedule_is_an_error() -> None:
    """Exactness is |upper - lower| within the tolerance, not upper - lower: a bound above the
    cost of a schedule the simulator plays is a bug, raised with the figures, never "exact"."""
    from agents.hindsight.bound import EXACT_RTOL, _close

    assert _close(2.0, 2.0)
    assert _close(2.0, 2.0 * (1 + EXACT_RTOL / 2)) and _close(2.0 * (1 + EXACT_RTOL / 2), 2.0)
    assert not _close(2.0, 2.1) and not _close(2.0, math.inf)
    with pytest.raises(AssertionError, match=r"lower bound 2\.1 is above the cost 2\.0"):
        _close(2.1, 2.0)


def test_a_bound_above_the_schedule_found_names_the_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.hindsight.bound as bound_module

    config = load_scenario("default").replace(horizon_s=0.2)
    honest = bound_module.schedule_cost
    monkeypatch.setattr(bound_module, "schedule_cost", lambda p, s: 0.5 * honest(p, s))
    n = len(episode_arrivals(config, 4))
    figures = rf"default, seed 4: .* above the cost .* {n} requests, 1 worker"
    with pytest.raises(AssertionError, match=figures):
        episode_bound(config, 4)


@pytest.mark.parametrize("seed", range(40))
def test_the_programmes_with_the_bucket_pass_on_every_front_equal_brute_force(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """The bucket pass runs only from 256 candidates (512 for the pair programme), never on these
    small instances by itself: run it on every front, and the one-worker optimum is still the
    brute force's, as is the two-worker pair programme on a fine grid; three workers stay below.
    Each programme keeps the same fronts as without the pass (tests/test_hindsight_reference.py
    checks the same where the pass runs by itself)."""
    import agents.hindsight.frontier as frontier_module
    import agents.hindsight.pairs as pairs_module

    def both(run):  # (cost, states kept) without the pass, then with it on every front
        monkeypatch.setattr(frontier_module, "_PREFILTER_FROM", 10**12)
        monkeypatch.setattr(pairs_module, "_PREFILTER_FROM", 10**12)
        without = run()
        monkeypatch.setattr(frontier_module, "_PREFILTER_FROM", 0)
        monkeypatch.setattr(pairs_module, "_PREFILTER_FROM", 0)
        with_pass = run()
        assert (with_pass.cost, with_pass.stats.n_states) == (without.cost, without.stats.n_states)
        return with_pass.cost

    config, arrivals, _ = tiny_instance(seed)
    problem = HindsightProblem.from_config(config, arrivals)
    assert both(lambda: solve_frontier(problem, "relaxed")) == pytest.approx(
        brute_force(problem, relaxed=True), rel=1e-12, abs=1e-12
    )
    config = config.replace(queue_capacity=1024, horizon_s=float(arrivals[-1] + 1.0), max_wait_ms=1000.0)
    two = HindsightProblem.from_config(config.replace(n_workers=2), arrivals)
    assert both(lambda: solve_pairs(two, grid_s=1e-9)) == pytest.approx(brute_force_workers(two), rel=1e-6)
    three = HindsightProblem.from_config(config.replace(n_workers=3), arrivals)
    assert both(lambda: solve_frontier(three, "relaxed")) <= brute_force_workers(three) * (1 + 1e-12)
