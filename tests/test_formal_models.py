"""PRISM models checked with Storm against an independent exact solution of the same chain.

The reference here enumerates the discrete-time chain of formal/discrete.py directly from its
documented rules (no PRISM text involved), solves its stationary distribution with numpy and
compares state counts and long-run averages with what Storm computes from the generated PRISM.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchenv.config import ArrivalConfig, ModelProfile, SystemConfig, TimingTable
from formal.check import build, check_optimum, check_policy, check_safety, cost_per_request
from formal.discrete import TickModel
from formal.policies import DiscretePolicy, GreedyPolicy, StaticPolicy, TimeoutPolicy, shielded_decision
from formal.prism import dtmc_program, mdp_program, rectangles

REPO = Path(__file__).resolve().parents[1]


def tiny_config(n_workers: int = 1, rate_per_s: float = 300.0) -> SystemConfig:
    """Two models, batches up to 4, service times that are not whole ticks (2 ms)."""
    return SystemConfig(
        name="tiny",
        timing=TimingTable(batch_sizes=(1, 2, 4), comm_ms=(1.0, 1.0, 1.5), t_pre_ms=0.5, t_post_ms=0.5),
        models=(ModelProfile("A", 1.0, (4.0, 5.0, 8.0)), ModelProfile("B", 0.9, (2.0, 2.5, 4.0))),
        max_batch_size=4,
        n_workers=n_workers,
        queue_capacity=64,
        max_wait_ms=6.0,
        arrivals=ArrivalConfig(rate_per_s=rate_per_s),
    )


def tiny_model(n_workers: int = 1, rate_per_s: float = 300.0, queue_cap: int = 6) -> TickModel:
    return TickModel(tiny_config(n_workers, rate_per_s), tick_ms=2.0, queue_cap=queue_cap)


# ------------------------------------------------------------------------------------------------
# Reference: the chain enumerated from the rules of formal/discrete.py
# ------------------------------------------------------------------------------------------------


def _successors(tm: TickModel, policy: DiscretePolicy, state: tuple) -> list[tuple[float, tuple, dict]]:
    """(probability, next state, rewards of the tick) for one tick from ``state``."""
    q, a, r = state[0], state[1], list(state[2:])
    w = tm.max_age_ticks
    idle = min(r) == 0
    decision = shielded_decision(policy, q, a, tm) if q and idle else None
    outcomes = []
    if decision is None:
        workers = [([max(x - 1, 0) for x in r], 1.0)]
        q1 = q
    else:
        m, b = decision
        s = tm.service_ticks(m, b)
        target = r.index(0)
        workers = []
        for ticks, p in ((s.hi, s.p_hi), (s.hi - 1, 1.0 - s.p_hi)):
            if p > 0:
                nxt = [max(x - 1, 0) for x in r]
                nxt[target] = ticks - 1
                workers.append((nxt, p))
        q1 = q - b
    w_lat = tm.config.reward.w_latency_per_s
    base = {
        "waiting": q1,
        "busy": sum(x > 0 for x in r) + (decision is not None),
        "served": 0 if decision is None else decision[1],
        "batches": 0 if decision is None else 1,
        "service_ms": 0.0,
        "cost": w_lat * tm.tick_s * q1,
    }
    if decision is not None:
        m, b = decision
        svc = tm.service_ticks(m, b).service_ms
        base["service_ms"] = b * svc
        base["cost"] += b * (tm.regret(m) + w_lat * svc / 1000.0)
    for (nxt_r, p_s), (k, p_k) in itertools.product(workers, enumerate(tm.arrival_probs)):
        free = min(nxt_r)
        q_next = min(q1 + k, tm.queue_cap)
        drops = q1 + k - q_next
        if q1 > 0:
            if decision is not None:
                a_next = min(a + 1 + free, w)
            elif idle:
                a_next = min(a + 1, w + 1)
            else:
                a_next = a
        else:
            a_next = min(free, w) if k > 0 else 0
        rewards = dict(base)
        rewards["dropped"] = drops
        rewards["cost"] = base["cost"] + (max(tm.config.qualities) + tm.config.reward.w_drop) * drops
        outcomes.append((p_s * p_k, (q_next, a_next, *nxt_r), rewards))
    return outcomes


def reference_rates(tm: TickModel, policy: DiscretePolicy) -> tuple[int, dict[str, float]]:
    """(reachable states, long-run average per tick of each reward) of the enumerated chain."""
    start = (0, 0, *([0] * tm.n_workers))
    index = {start: 0}
    frontier = [start]
    rows: list[list[tuple[float, tuple, dict]]] = []
    while frontier:
        state = frontier.pop()
        while len(rows) <= index[state]:
            rows.append([])
        rows[index[state]] = _successors(tm, policy, state)
        for _, nxt, _ in rows[index[state]]:
            if nxt not in index:
                index[nxt] = len(index)
                frontier.append(nxt)
    n = len(index)
    matrix = np.zeros((n, n))
    expected: dict[str, np.ndarray] = {}
    for i, outcomes in enumerate(rows):
        for p, nxt, rewards in outcomes:
            matrix[i, index[nxt]] += p
            for name, value in rewards.items():
                expected.setdefault(name, np.zeros(n))[i] += p * value
    system = matrix.T - np.eye(n)
    system[-1, :] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    pi = np.linalg.solve(system, rhs)
    return n, {name: float(pi @ values) for name, values in expected.items()}


POLICIES = [
    GreedyPolicy(0),
    StaticPolicy(3, 1),
    TimeoutPolicy(2, 3.0, (0, 1), (3,)),
    TimeoutPolicy(3, 6.0, (1,), max_batch=3),
]


@pytest.mark.parametrize("n_workers", [1, 2])
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_storm_dtmc_equals_the_enumerated_chain(policy: DiscretePolicy, n_workers: int) -> None:
    tm = tiny_model(n_workers)
    states, reference = reference_rates(tm, policy)
    figures = check_policy(tm, policy, overflow_s=0.1)
    assert figures.stats.states == states
    for name in ("cost", "waiting", "batches", "service_ms", "busy"):
        assert figures.rates[name] == pytest.approx(reference[name], rel=1e-5, abs=1e-9), name
    # drops come from Storm's plain (non-sound) solver, about 1e-4 relative precision
    assert figures.rates["dropped"] == pytest.approx(reference["dropped"], rel=1e-3, abs=1e-9)
    assert figures.throughput_per_s == pytest.approx(reference["served"] / tm.tick_s, rel=1e-5)
    assert figures.p_violation == 0.0
    assert 0.0 <= figures.p_overflow <= 1.0


def test_figures_follow_littles_law_and_cost_decomposition() -> None:
    tm = tiny_model()
    f = check_policy(tm, TimeoutPolicy(2, 3.0, (0, 1), (3,)))
    # Little: mean queue = throughput x mean waiting time, plus the dropped arrivals' half tick
    waiting_ms = f.latency_ms - f.rates["service_ms"] / f.rates["served"]
    dropped_half_tick = f.rates["dropped"] / 2
    assert f.drop_rate > 1e-4  # the drop term matters at this load
    assert f.mean_queue == pytest.approx(
        f.throughput_per_s * waiting_ms / 1000.0 + dropped_half_tick, rel=1e-6
    )
    # cost per request = quality regret + w_lat x latency (+ drop costs), per arrival
    regret = f.cost_per_request - tm.config.reward.w_latency_per_s * f.latency_ms / 1000.0 * (
        f.rates["served"] / tm.mean_arrivals
    )
    assert 0.0 <= regret <= 0.1 + 2.0 * f.drop_rate + 1e-9


def test_overflow_probability_grows_with_the_time_bound_and_the_load() -> None:
    light, heavy = tiny_model(rate_per_s=200.0), tiny_model(rate_per_s=900.0)
    greedy_slow = GreedyPolicy(0)
    short = check_policy(light, greedy_slow, overflow_s=0.05).p_overflow
    long = check_policy(light, greedy_slow, overflow_s=0.5).p_overflow
    assert 0.0 < short < long < 1.0
    assert check_policy(heavy, greedy_slow, overflow_s=0.5).p_overflow > long
    # 900/s is beyond what model A sustains (4 per 10.5 ms = 381/s): the queue overflows
    assert check_policy(heavy, greedy_slow, overflow_s=0.5).drop_rate > 0.3


@pytest.mark.parametrize("n_workers", [1, 2])
def test_timeout_safety_holds_with_the_shield_and_fails_without(n_workers: int) -> None:
    tm = tiny_model(n_workers)
    safety = check_safety(tm)
    assert safety.p_max_shielded == 0.0
    assert safety.p_max_unshielded == pytest.approx(1.0)
    assert safety.holds
    assert safety.unshielded.states > safety.shielded.states


def test_the_optimum_is_below_every_policy_and_attained_by_its_scheduler() -> None:
    tm = tiny_model()
    optimum = check_optimum(tm)
    assert optimum.policy is not None
    costs = [check_policy(tm, p).cost_per_request for p in POLICIES]
    assert all(optimum.cost_per_request <= c + 1e-9 for c in costs)
    attained = check_policy(tm, optimum.policy)
    assert attained.cost_per_request == pytest.approx(optimum.cost_per_request, rel=1e-6)
    assert cost_per_request(tm, optimum.cost_per_tick) == optimum.cost_per_request


def test_several_workers_have_no_scheduler_table() -> None:
    assert check_optimum(tiny_model(2)).policy is None


def test_mdp_offers_every_model_and_wait_until_the_shield() -> None:
    tm = tiny_model()
    text = mdp_program(tm)
    assert "[wait] (r1=0) & q>0 & a<W ->" in text
    assert "[wait] (r1=0) & q>0 ->" in mdp_program(tm, shield=False)
    for m in range(tm.n_models):
        for b in range(1, tm.max_batch + 1):
            assert f"[m{m}_b{b}]" in text
    built = build(text, choice_labels=True)
    # at the empty initial state only time passes; with one request: wait or either model
    assert built.model.get_nr_available_actions(built.model.initial_states[0]) == 1


def test_generated_text_is_deterministic_and_names_its_source() -> None:
    """The text depends only on the model and the policy: equal inputs built anew give the same
    text, in this process and in another one with another string-hash seed; another policy gives
    another text."""
    tm = tiny_model()
    policy = TimeoutPolicy(2, 3.0, (0, 1), (3,))
    text = dtmc_program(tm, policy)
    assert dtmc_program(tiny_model(), TimeoutPolicy(2, 3.0, (0, 1), (3,))) == text
    assert dtmc_program(tm, TimeoutPolicy(3, 3.0, (0, 1), (3,))) != text
    code = (
        "import sys; sys.path.insert(0, 'tests'); "
        "from test_formal_models import TimeoutPolicy, dtmc_program, tiny_model; "
        "print(dtmc_program(tiny_model(), TimeoutPolicy(2, 3.0, (0, 1), (3,))), end='')"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert other.stdout == text
    assert "SystemConfig 'tiny'" in text and policy.name in text


@pytest.mark.parametrize("seed", range(5))
def test_rectangles_cover_exactly_the_given_states(seed: int) -> None:
    rng = np.random.default_rng(seed)
    states = {(int(q), int(a)) for q, a in rng.integers(1, 12, size=(40, 2))}
    covered = set()
    for q_lo, q_hi, ages in rectangles(states):
        for q in range(q_lo, q_hi + 1):
            for lo, hi in ages:
                covered |= {(q, a) for a in range(lo, hi + 1)}
    assert covered == states


def test_storm_cost_is_finite_and_positive_on_the_default_system_cheap_model() -> None:
    tm = TickModel(SystemConfig(), tick_ms=5.0, queue_cap=16)
    f = check_policy(tm, GreedyPolicy(0), overflow_s=0.2)
    assert math.isfinite(f.cost_per_request) and f.cost_per_request > 0
    assert f.throughput_per_s == pytest.approx(100.0, rel=1e-3)


def test_certified_direct_solve_brackets_storms_sound_value() -> None:
    import stormpy

    from formal.lra import certified_long_run_averages

    built = build(dtmc_program(tiny_model(), GreedyPolicy(0)))
    certified = certified_long_run_averages(built.model, ["cost", "waiting", "dropped"])
    for name, c in certified.items():
        sound = stormpy.model_checking(
            built.model, stormpy.parse_properties(f'R{{"{name}"}}=? [LRA]', built.program)[0]
        )
        value = sound.get_value(built.model.initial_states[0])
        assert c.low <= c.high and c.half_width < 1e-10, name
        assert value == pytest.approx(c.value, rel=2e-6, abs=1e-12), name


def test_a_wrong_bias_only_widens_the_certified_interval() -> None:
    """The certificate holds for any bias vector: with h = 0 it is [min r, max r]."""
    from formal.lra import _reward_vector

    built = build(dtmc_program(tiny_model(), GreedyPolicy(0)))
    r = _reward_vector(built.model, "cost")
    from formal.lra import certified_long_run_averages

    c = certified_long_run_averages(built.model, ["cost"])["cost"]
    assert r.min() <= c.low <= c.high <= r.max()


def test_a_query_that_runs_out_of_its_cpu_budget_is_answered_by_certified_policy_iteration() -> None:
    from formal.check import CERTIFIED_PI, SOUND, _mdp_long_run

    built = build(mdp_program(tiny_model()))
    for direction in ("min", "max"):
        value, solver = _mdp_long_run(built, "cost", direction, budget_s=60.0)
        assert solver == SOUND and value > 0
        certified, name = _mdp_long_run(built, "cost", direction, budget_s=0.0)
        assert name.startswith(CERTIFIED_PI) and certified == pytest.approx(value, rel=1e-5)
    dropped, name = _mdp_long_run(built, "dropped", "max", budget_s=60.0)
    assert name.startswith(CERTIFIED_PI) and dropped > 0


def test_policy_iteration_from_a_bad_start_reaches_the_optimum_and_certifies_it() -> None:
    import stormpy

    from formal.lra import certified_optimum

    built = build(mdp_program(tiny_model()))
    for direction, maximise in (("min", False), ("max", True)):
        prop = stormpy.parse_properties(f'R{{"cost"}}{direction}=? [LRA]', built.program)[0]
        storm = stormpy.model_checking(built.model, prop).get_value(built.model.initial_states[0])
        c = certified_optimum(built.model, "cost", maximise)  # first choice everywhere
        assert c.low <= storm * (1 + 2e-6) and storm * (1 - 2e-6) <= c.high
        assert c.half_width < 1e-9 and c.iterations > 1


def test_the_cpu_budget_is_enforced_by_the_kernel() -> None:
    from formal.check import run_with_cpu_budget

    def spin() -> float:
        while True:
            pass

    start = time.process_time()
    assert run_with_cpu_budget(spin, 1.0) is None  # SIGXCPU after 1 s of the child's CPU time
    assert run_with_cpu_budget(lambda: 2.5, 1.0) == 2.5
    assert time.process_time() - start < 0.5  # the parent only waited


def test_committed_prism_model_and_properties_parse() -> None:
    import stormpy

    models = Path(__file__).resolve().parents[1] / "formal" / "models"
    program = stormpy.parse_prism_program(str(models / "batching_mdp.prism"))
    assert program.model_type.name == "MDP"
    lines = (models / "batching.props").read_text().splitlines()
    formulas = [line for line in lines if line.strip() and not line.lstrip().startswith("//")]
    props = stormpy.parse_properties(";".join(formulas), program)  # the string parser splits at ;
    assert len(props) == 3
    from apps.verify_cli import QUICK_SIZES

    cap = int(QUICK_SIZES["queue_cap"])  # what python verify.py --prism writes
    assert (models / "batching_mdp.prism").read_text() == mdp_program(
        TickModel(SystemConfig(), queue_cap=cap)
    )
