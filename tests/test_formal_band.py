"""The proposed scheduler's own rows in the formal models, its rate estimate an adversary within a
band (formal/band.py, formal/ta/schedulers.py's ChoiceTable), and the real agents against their
tables in the event simulator (formal/real_agents.py).

Each property is also checked on a deliberately broken table (a mutant) that must fail it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from formal_probes import normalised, probe, tick_grid_ms

from agents.proposed import Proposed
from batchenv.config import SystemConfig
from batchenv.decision_rows import DecisionRow, rows_of
from formal.band import EstimateBand, band_choices, is_deterministic, row_choices, tick_ages
from formal.check import check_choices
from formal.discrete import TickModel
from formal.real_agents import run_real_agent
from formal.ta.model import ArrivalCurve
from formal.ta.properties import TAChecks, TASettings, with_mutation
from formal.ta.schedulers import ChoiceTable, Option, from_decision_rows
from formal.tchecker import TChecker, TCheckerMissingError, find_tchecker
from formal.verification import as_sim_policy

CONFIG = SystemConfig()
CAP = 8
RATE = 100.0


@pytest.fixture(scope="module")
def proposed() -> Proposed:
    return Proposed(CONFIG.at_rate(RATE))


@pytest.fixture(scope="module")
def checks() -> TAChecks:
    """TChecker's checks of the small system (skipped without TChecker)."""
    try:
        tck: TChecker = find_tchecker()
    except TCheckerMissingError as exc:
        pytest.skip(str(exc))
    return TAChecks(tck, TASettings(CONFIG, queue_cap=CAP, bursts=(1,), timeout_s=120))


def band_table(rows: list[DecisionRow], max_wait: int = 100) -> ChoiceTable:
    """The choice table of ``rows`` at 1 ms, queue cap CAP."""
    return from_decision_rows(
        "band", rows, queue_cap=CAP, unit_ms=1.0, max_wait=max_wait, forced_model=0, max_batch=64
    )


def waiting_row(shortest_ms: float, longest_ms: float) -> DecisionRow:
    """Wait below 4 requests with a timer in [shortest, longest] ms, then dispatch all on model 0."""
    wait = (None, None, None)
    return DecisionRow(
        "waiting row",
        (*wait, (0, 64)),
        ((shortest_ms, longest_ms),) * 3 + (None,),
        ((0, 64),) * 3 + (None,),
    )


DISPATCH_ROW = DecisionRow("dispatch row", ((0, 64),), (None,), (None,))


# ------------------------------------------------------------------------------------------------
# Decision rows of the proposed scheduler
# ------------------------------------------------------------------------------------------------


def test_exact_band_is_the_row_the_scheduler_follows(proposed: Proposed) -> None:
    rows = rows_of(proposed, RATE, RATE)
    assert len(rows) == 1
    row = proposed._rows[proposed._row_index(RATE)]
    assert rows[0].decisions == tuple(row.decisions[1:])
    wide = rows_of(proposed, *EstimateBand(2.0).around(RATE))
    assert len(wide) > len(rows_of(proposed, *EstimateBand(1.25).around(RATE))) > 1
    assert any(r.decisions == rows[0].decisions for r in wide)
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        EstimateBand(0.5)


def test_without_rate_estimation_one_row_whatever_the_band() -> None:
    fixed = Proposed(CONFIG.at_rate(RATE), rate_estimation=False)
    assert len(rows_of(fixed, 10.0, 1000.0)) == 1


def test_rows_of_refuses_a_scheduler_without_rows() -> None:
    with pytest.raises(TypeError, match="decision_rows"):
        rows_of(object(), 1.0, 2.0)


# ------------------------------------------------------------------------------------------------
# Storm: the band MDP
# ------------------------------------------------------------------------------------------------


def test_band_mdp_bounds_contain_the_exact_estimate_and_widen(proposed: Proposed) -> None:
    tm = TickModel(CONFIG.at_rate(RATE), RATE, tick_ms=5.0, queue_cap=16)
    exact, _ = band_choices(tm, proposed, EstimateBand(1.0))
    assert is_deterministic(exact)
    wide, _ = band_choices(tm, proposed, EstimateBand(2.0))
    assert not is_deterministic(wide)
    assert all(exact[s] <= wide[s] for s in exact)  # every exact decision is one of the band's
    point = check_choices(tm, exact, "exact", overflow_s=0.5)
    band = check_choices(tm, wide, "x2", overflow_s=0.5)
    assert point.deterministic and point.cost_per_request.low == point.cost_per_request.high
    lo, hi = band.cost_per_request.low, band.cost_per_request.high
    assert lo <= point.cost_per_request.low * (1 + 1e-9) and point.cost_per_request.high <= hi * (1 + 1e-9)
    assert hi > lo  # the estimate matters
    assert band.p_violation_max == 0.0


def _real_decisions(config: SystemConfig, scheduler: Proposed, q: int, ages_ms, rates) -> set:
    """Every decision ``scheduler`` takes by its own ``decide()`` at queue length ``q``, the
    oldest request at each of ``ages_ms``, its estimate at each of ``rates``, the other requests
    evenly spread or arrived together at several moments (its SLO guard reads their spacing)."""
    out = set()
    patterns = (None, 0.0, 0.5, 0.9, 1.0) if q > 1 else (None,)
    for age_ms in ages_ms:
        probes = [probe(config, q, age_ms / 1000.0, together) for together in patterns]
        for rate in rates:
            scheduler.estimator.update = lambda now, count, rate=rate: rate
            for sim in probes:
                out.add(normalised(scheduler.decide(sim), q, config.max_batch_size))
    return out


@pytest.mark.parametrize(
    "rate,w_slo,factor",
    [(300.0, 0.0, 1.0), (300.0, 0.0, 1.25), (100.0, 0.2, 1.0), (300.0, 0.2, 1.25)],
)
def test_every_real_decision_inside_a_tick_is_a_choice(rate: float, w_slo: float, factor: float) -> None:
    """Soundness of the band model: the real scheduler, deciding at any real age of the oldest
    request inside the tick a state stands for (a 0.25 ms grid; beyond W x tick in the states of
    age W), with its estimate anywhere in the band and any arrival pattern, takes a decision of
    that state's choice set. At 300/s its rows wait at short queues with timers inside a tick; with
    w_slo > 0 (slo 60 ms) its SLO guard changes the model with the age. (Reading the rows at
    a x tick only, the old model missed e.g. the dispatch at q = 1, 7 ms, at 300/s.)"""
    config = CONFIG.replace(reward={"w_slo": w_slo}, slo_ms=60.0).at_rate(rate)
    scheduler = Proposed(config, rate_points=24)  # a coarser table: faster to build
    tm = TickModel(config, rate, tick_ms=2.0, queue_cap=6)
    choices, _ = band_choices(tm, scheduler, EstimateBand(factor))
    rates = list(np.geomspace(*EstimateBand(factor).around(rate), 7))
    for q in range(1, tm.queue_cap + 1):
        for a in range(tm.max_age_ticks + 1):
            ages = tick_grid_ms(a, tm.tick_ms, tm.max_age_ticks)
            seen = _real_decisions(config, scheduler, q, ages, rates)
            assert seen <= choices[(0, q, a)], (q, a, seen - choices[(0, q, a)])


def test_a_timer_inside_a_tick_offers_both_wait_and_dispatch() -> None:
    """The timer fires once the age reaches it: a state whose tick holds the timer offers the wait
    and the fallback, the tick before only the wait, the tick after only the fallback; the guard
    of a dispatch is read over the ages from the timer on."""
    tm = TickModel(CONFIG.replace(max_wait_ms=20.0), RATE, tick_ms=2.0, queue_cap=8)
    row = waiting_row(5.0, 5.0)  # q < 4: wait until exactly 5 ms, then (0, 64)
    assert row_choices(row, 1, 1, tm, shield=True) == {None}  # ages [2, 4)
    assert row_choices(row, 1, 2, tm, shield=True) == {None, (0, 1)}  # [4, 6): 5 ms inside
    assert row_choices(row, 1, 3, tm, shield=True) == {(0, 1)}  # [6, 8)
    on_tick = waiting_row(6.0, 6.0)  # a timer on a tick boundary: no overlap
    assert row_choices(on_tick, 2, 2, tm, shield=True) == {None}
    assert row_choices(on_tick, 2, 3, tm, shield=True) == {(0, 2)}
    assert tick_ages(3, tm) == (6.0, 8.0) and tick_ages(tm.max_age_ticks, tm) == (20.0, math.inf)


def test_after_a_partial_dispatch_the_choices_cover_the_younger_real_ages(monkeypatch) -> None:
    """After a dispatch that leaves requests behind, the model's age is the old oldest request's
    (an upper bound); the requests left behind are at least one service old (15 ms here). A row
    that waits at q = 1 until 18 ms may then still wait where the upper bound says 20 ms: the
    model keeps a lower bound l and offers the decisions of every age in [l, a]. Without it the
    worst mean latency is lower (the wait is missing). The proposed scheduler's bands at 100/s
    need no bound (their choices only grow with the age from one service on)."""
    from formal import check as check_module
    from formal.prism import choice_program, least_age_after_partial_dispatch, needs_age_bounds

    config = CONFIG.replace(max_wait_ms=20.0)
    tm = TickModel(config, RATE, tick_ms=5.0, queue_cap=4)
    row = DecisionRow("partial", (None, (0, 1), (0, 64)), ((18.0, 18.0), None, None), ((0, 64), None, None))

    class Rows:
        def decision_rows(self, lo: float, hi: float) -> list[DecisionRow]:
            return [row]

    choices, _ = band_choices(tm, Rows(), EstimateBand(1.0))
    assert least_age_after_partial_dispatch(tm, choices) == 3  # LLM-1, one request: 15 ms
    assert choices[(0, 1, 3)] == {None, (0, 1)} and choices[(0, 1, 4)] == {(0, 1)}
    assert needs_age_bounds(tm, choices)
    assert "l : [0..W+1]" in choice_program(tm, choices, "partial")
    bounded = check_choices(tm, choices, "bounded", overflow_s=0.2)
    monkeypatch.setattr(check_module, "needs_age_bounds", lambda tm, choices: False)
    one_age = check_choices(tm, choices, "one age", overflow_s=0.2)
    assert bounded.latency_ms.high > one_age.latency_ms.high * (1 + 1e-6)
    assert bounded.p_violation_max == 0.0
    proposed = Proposed(CONFIG.at_rate(RATE))
    default = TickModel(CONFIG.at_rate(RATE), RATE, tick_ms=2.0, queue_cap=16)
    for factor in (1.0, 2.0):
        assert not needs_age_bounds(default, band_choices(default, proposed, EstimateBand(factor))[0])


def test_unshielded_band_with_a_timer_beyond_max_wait_fails_safety() -> None:
    """Mutant: a row whose timer ends after max_wait. Its raw table violates the timeout (Pmax > 0);
    with the shield the violation is gone."""
    config = CONFIG.replace(max_wait_ms=20.0)
    tm = TickModel(config, RATE, tick_ms=5.0, queue_cap=8)

    class Rows:
        def __init__(self, longest_ms: float) -> None:
            self.longest_ms = longest_ms

        def decision_rows(self, lo: float, hi: float) -> list[DecisionRow]:
            return [waiting_row(5.0, self.longest_ms), DISPATCH_ROW]

    for longest, fails in ((15.0, False), (40.0, True)):
        band = EstimateBand(1.0)
        shielded, _ = band_choices(tm, Rows(longest), band)
        raw, _ = band_choices(tm, Rows(longest), band, shield=False)
        figures = check_choices(tm, shielded, "mutant", raw_choices=raw, overflow_s=0.2)
        assert figures.p_violation_max == 0.0
        assert (figures.p_violation_raw_max or 0.0) > 0.0 if fails else figures.p_violation_raw_max == 0.0


# ------------------------------------------------------------------------------------------------
# Timed automata (TChecker): the choice table
# ------------------------------------------------------------------------------------------------


def test_choice_table_of_rows() -> None:
    table = band_table([waiting_row(4.2, 14.5), DISPATCH_ROW])
    # q = 1: wait until 15 (rounded up), fire from 4 (rounded down), fallback from 4; dispatch now
    assert table.allowed(1, 0) == {None, (0, 64)}
    assert table.allowed(1, 14.9) == {None, (0, 64)}
    assert table.allowed(1, 15) == {(0, 64)}
    assert table.allowed(4, 0) == {(0, 64)}
    assert table.longest_wait() == 15 and table.waits_forever() == []
    shielded = table.shielded(10)
    assert shielded.longest_wait() == 10 and shielded.allowed(1, 10) == {(0, 64)}
    with pytest.raises(ValueError, match="no option"):
        ChoiceTable("gap", ((Option(None, 0, 5, 5),),))


def test_band_table_timeout_safety_is_the_longest_timer_and_needs_the_timer(checks: TAChecks) -> None:
    table = band_table([waiting_row(5.0, 15.0), DISPATCH_ROW]).shielded(checks.max_wait)
    model = checks.model(table, ArrivalCurve.unconstrained())
    result = checks.timeout_safety("band", model)
    assert result.holds and result.value == 15.0  # the adversary's longest timer, exactly
    assert not checks.timeout_safety("band", with_mutation(model, "timer_removed")).holds


def test_band_table_deadlock_and_leads_to_fail_on_mutants(checks: TAChecks) -> None:
    s = checks.settings
    table = band_table([waiting_row(5.0, 15.0), DISPATCH_ROW]).shielded(checks.max_wait)
    finite = checks.model(table, s.curve(1, n_arrivals=3))
    assert checks.deadlock_freedom("band", finite).holds
    assert not checks.deadlock_freedom("band", with_mutation(finite, "lost_wakeup")).holds
    live = checks.model(table, s.curve(1))
    assert checks.leads_to("band", live).holds
    assert not checks.leads_to("band", with_mutation(live, "timer_removed")).holds


def test_proposed_band_in_the_timed_automata(checks: TAChecks, proposed: Proposed) -> None:
    """The proposed scheduler's rows within x2 of the rate: the queue bound and latency under the
    token bucket are at least those of its exact row (the band allows more behaviours)."""

    def table(factor: float) -> ChoiceTable:
        rows = rows_of(proposed, *EstimateBand(factor).around(RATE))
        return band_table(rows, checks.max_wait).shielded(checks.max_wait)

    curve = checks.settings.curve(1)
    q1, l1 = checks.queue_and_latency("x1", checks.model(table(1.0), curve))
    q2, l2 = checks.queue_and_latency("x2", checks.model(table(2.0), curve))
    assert q1.holds and l1.holds and q2.holds and l2.holds
    assert q2.value >= q1.value and l2.value >= l1.value


# ------------------------------------------------------------------------------------------------
# Real agents in the event simulator
# ------------------------------------------------------------------------------------------------


def test_real_agent_is_simulated_itself_and_deterministically(proposed: Proposed) -> None:
    tm = TickModel(CONFIG.at_rate(RATE), RATE, tick_ms=2.0, queue_cap=32)
    fixed = Proposed(CONFIG.at_rate(RATE), rate_estimation=False)
    exact, _ = band_choices(tm, fixed, EstimateBand(1.0))
    from formal.policies import TablePolicy

    table = TablePolicy("exact", {(q, a): next(iter(c)) for (_, q, a), c in exact.items()}, 0)
    runs = [
        run_real_agent(
            tm,
            "proposed",
            Proposed(CONFIG.at_rate(RATE)),
            as_sim_policy(table, tm),
            seeds=(0, 1),
            horizon_s=10.0,
            band_factors=(1.25, 2.0),
        )
        for _ in range(2)
    ]
    a, b = runs
    assert a.agent_costs == b.agent_costs and a.table_costs == b.table_costs  # same seeds, same result
    assert len(a.agent_costs) == 2 and all(math.isfinite(c) and c > 0 for c in a.agent_costs)
    assert a.decisions > 0 and 0.0 <= a.in_band[1.25] <= a.in_band[2.0] <= 1.0
    # its own running estimate was read, and it left the x1.25 band at some decisions (a frozen
    # estimate at the true rate would stay inside)
    assert a.in_band[1.25] < 1.0


def test_a_policy_raw_table_that_waits_too_long_fails_the_safety_check() -> None:
    """(c)'s raw-table check can fail: a table that never dispatches below 4 requests (a timer
    removed) violates the timeout without the shield; greedy does not; with the shield neither."""
    from formal.check import check_policy
    from formal.policies import GreedyPolicy, TablePolicy

    tm = TickModel(CONFIG.replace(max_wait_ms=20.0), RATE, tick_ms=5.0, queue_cap=8)
    no_timer = TablePolicy(
        "no timer",
        {(q, a): (None if q < 4 else (0, 64)) for q in range(1, 9) for a in range(tm.max_age_ticks + 2)},
    )
    bad = check_policy(tm, no_timer, overflow_s=0.2)
    good = check_policy(tm, GreedyPolicy(0), overflow_s=0.2)
    assert bad.p_violation_raw is not None and bad.p_violation_raw > 0.5
    assert good.p_violation_raw == 0.0
    assert bad.p_violation == 0.0 and good.p_violation == 0.0
