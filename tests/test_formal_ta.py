"""The timed-automata model (formal/ta/) and its TChecker checks.

Every property is checked on the correct model and on a deliberately broken one (a mutant), which
must fail it. The TChecker tests need TChecker (``bash .ci/install_tchecker.sh``, which
``.ci/run`` calls); without it they are skipped with that reason.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from batchenv.config import ConfigError
from batchenv.metrics import request_table
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator
from batchenv.timing import ServiceTable
from formal.discrete import TickModel
from formal.policies import GreedyPolicy, TablePolicy, TimeoutPolicy
from formal.ta.ir import Network
from formal.ta.model import ArrivalCurve, Observers, TAModel, build_network, service_units
from formal.ta.properties import TAChecks, TASettings, tight_bound, with_mutation
from formal.ta.schedulers import DecisionTable, Piece, from_tick_policy, from_timeout, timed_rows
from formal.ta.tchecker_format import to_tchecker
from formal.tchecker import TChecker, TCheckerError, TCheckerMissingError, TCheckerTimeoutError, find_tchecker
from formal.uppaal import lint, to_uppaal

REPO = Path(__file__).resolve().parents[1]
CONFIG = load_scenario("default")
CAP = 8
UNIT = 1.0


def _tchecker() -> TChecker:
    try:
        return find_tchecker()
    except TCheckerMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tck() -> TChecker:
    return _tchecker()


@pytest.fixture(scope="module")
def checks(tck: TChecker) -> TAChecks:
    return TAChecks(tck, TASettings(CONFIG, queue_cap=CAP, bursts=(1, 2), timeout_s=120))


def timeout_table(batch: int = 4, timeout_ms: float = 10.0) -> DecisionTable:
    return from_timeout(TimeoutPolicy(batch, timeout_ms, (0,)), CONFIG, queue_cap=CAP, unit_ms=UNIT).shielded(
        100
    )


# ------------------------------------------------------------------------------------------------
# IR and printers (no TChecker needed)
# ------------------------------------------------------------------------------------------------


def _tiny() -> Network:
    net = Network("tiny", 1.0)
    net.int("n", 0, 3)
    net.clock("x")
    a = net.process("A")
    a.location("L0", initial=True, invariant=("x <= 2",))
    a.location("L1", labels=("goal",))
    a.edge("L0", "L1", "go", guard=("x >= 2", "n < 3"), updates=("n = n + 1", "x = 0"))
    b = net.process("B")
    b.location("M", initial=True)
    b.edge("M", "M", "go")
    net.sync(("A", "go"), ("B", "go"))
    return net


def test_ir_rejects_malformed_networks() -> None:
    net = _tiny()
    net.int("n", 0, 1)
    with pytest.raises(ValueError, match="declared twice"):
        net.validate()
    net = _tiny()
    net.get("A").edge("L0", "L1", guard=("m > 0",))
    with pytest.raises(ValueError, match="undeclared 'm'"):
        net.validate()
    net = _tiny()
    c = net.process("C")
    c.location("N", initial=True)
    c.edge("N", "N", "go")
    net.syncs.clear()
    net.sync(("A", "go"), ("C", "go"), ("B", "go"))
    with pytest.raises(ValueError, match="process order"):
        net.validate()
    net.syncs.clear()
    net.sync(("A", "go"), ("B", "go", True), ("C", "go"))
    net.validate()  # the same parties in process order
    net.syncs.clear()
    net.sync(("A", "go", True), ("B", "go"))
    with pytest.raises(ValueError, match="strong first party"):
        net.validate()
    with pytest.raises(ValueError, match="outside"):
        Network("x", 1.0).int("v", 0, 3, 7)


def test_printers_agree_on_the_same_network() -> None:
    net = _tiny()
    text = to_tchecker(net)
    assert text.startswith("system:tiny\n")
    assert "int:1:0:3:0:n" in text and "clock:1:x" in text
    assert "location:A:L0{initial::invariant:x <= 2}" in text
    assert "edge:A:L0:L1:go{provided:x >= 2 && n < 3:do:n = n + 1; x = 0}" in text
    assert "sync:A@go:B@go" in text
    xml = to_uppaal(net).xml
    assert lint(xml) == []
    assert "int[0,3] n = 0;" in xml and "chan go;" in xml and "broadcast" not in xml
    assert '<label kind="guard">x &gt;= 2 &amp;&amp; n &lt; 3</label>' in xml
    assert '<label kind="assignment">n = n + 1, x = 0</label>' in xml
    assert "go!" in xml and "go?" in xml


def test_service_times_come_from_the_timing_table() -> None:
    table = ServiceTable(CONFIG).service_ms
    svc = service_units(CONFIG, 0.5)
    assert svc[0][8] == math.ceil(table[0, 8] / 0.5 - 1e-9) == 94  # the brief's 47 ms for b=8 on LLM-1
    net = build_network(TAModel(CONFIG, timeout_table(), ArrivalCurve(2, 10), unit_ms=UNIT))
    text = to_tchecker(net)
    for b in range(1, CAP + 1):
        assert f"svc_0 = {math.ceil(table[0, b] - 1e-9)}" in text  # each batch's time, in 1 ms units


def test_timeout_table_and_shield() -> None:
    table = timeout_table(batch=4, timeout_ms=10.0)
    assert table.rows[0] == (Piece(0, None), Piece(10, (0, 64)))
    assert table.rows[3] == (Piece(0, (0, 64)),)
    assert table.decision(2, 9.5) is None and table.decision(2, 10) == (0, 64)
    assert table.longest_wait() == 10
    forever = DecisionTable("lazy", ((Piece(0, None),),) * 3, forced_model=2, max_batch=5)
    assert forever.waits_forever() == [1, 2, 3]
    shielded = forever.shielded(100)
    assert shielded.rows[2] == (Piece(0, None), Piece(100, (2, 5)))
    assert shielded.normalised().rows[2][1] == Piece(100, (2, 3))


def test_tick_tables_start_pieces_at_multiples_of_the_tick() -> None:
    tm = TickModel(CONFIG, 100.0, 2.0, CAP)
    # waits at q = 1 until 3 ticks (6 ms) of age, dispatches on model 1 at q >= 2
    table = {(q, a): ((1, 64) if q >= 2 or a >= 3 else None) for q in range(1, CAP + 1) for a in range(51)}
    ta = from_tick_policy(TablePolicy("t", table, 1), tm, unit_ms=1.0)
    assert ta.rows[0] == (Piece(0, None), Piece(6, (1, 1)))  # batches as the tick model writes them
    assert ta.rows[1] == (Piece(0, (1, 2)),)
    greedy = from_tick_policy(GreedyPolicy(0), tm, unit_ms=1.0)
    assert greedy.longest_wait() == 0
    with pytest.raises(ConfigError, match="time_unit_ms"):
        from_tick_policy(GreedyPolicy(0), tm, unit_ms=0.3)


def test_timed_rows_have_the_shape_of_the_proposed_scheduler() -> None:
    table = timed_rows(
        "row",
        [None, None, (1, 3)],
        [20.0, None, None],
        [(0, 1), (0, 2), (1, 3)],
        queue_cap=5,
        unit_ms=1.0,
        forced_model=0,
        max_batch=64,
    )
    assert table.rows[0] == (Piece(0, None), Piece(20, (0, 1)))
    assert table.rows[1] == (Piece(0, None),)  # no timer: waits for an event (or the shield)
    assert table.rows[4] == (Piece(0, (1, 3)),)


def test_tight_bound_finds_the_supremum_with_or_without_a_hint() -> None:
    calls = []

    def above(c: int) -> bool:
        calls.append(c)
        return c < 37

    assert tight_bound(above, 37, 100) == 37 and len(calls) == 2
    calls.clear()
    assert tight_bound(above, 12, 100) == 37 and len(calls) > 2
    assert tight_bound(above, None, 30) is None


def test_settings_name_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"ta\.queue_cap"):
        TASettings(CONFIG, queue_cap=1)
    with pytest.raises(ConfigError, match=r"ta\.bursts"):
        TASettings(CONFIG, bursts=(0,))
    with pytest.raises(ConfigError, match="burst"):
        ArrivalCurve(0, 10)


# ------------------------------------------------------------------------------------------------
# The TChecker runner
# ------------------------------------------------------------------------------------------------


def test_tchecker_reach_and_liveness_on_a_tiny_network(tck: TChecker) -> None:
    text = to_tchecker(_tiny())
    assert tck.reach(text, ["goal"]).holds
    assert tck.reach(text.replace("n < 3", "n > 3"), ["goal"]).holds is False
    assert tck.liveness(text, ["goal"]).holds is False  # no cycle at all


def test_tchecker_errors_are_clear(tck: TChecker, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TCheckerError, match="Unknown label"):
        tck.reach(to_tchecker(_tiny()), ["nope"])
    with pytest.raises(TCheckerError, match="syntax error"):
        tck.reach("system:x\nnonsense:\n", ["a"])
    monkeypatch.setenv("TCHECKER_LIB", "/nonexistent/libtchecker.so")
    with pytest.raises(TCheckerMissingError, match=r"install_tchecker\.sh"):
        find_tchecker()


def test_tchecker_timeout(tck: TChecker) -> None:
    model = TAModel(CONFIG, timeout_table(), ArrivalCurve(CAP, 1), unit_ms=0.1)
    text = to_tchecker(build_network(model, Observers(tag=True, latency_bound=10**6)))
    with pytest.raises(TCheckerTimeoutError):
        tck.reach(text, ["late"], timeout_s=0.5)


# ------------------------------------------------------------------------------------------------
# Properties: the correct model passes, each mutant fails
# ------------------------------------------------------------------------------------------------


def test_timeout_safety_is_exact_and_fails_without_the_timer(checks: TAChecks) -> None:
    model = checks.model(timeout_table(), ArrivalCurve.unconstrained())
    result = checks.timeout_safety("timeout", model)
    assert result.holds and result.value == 10.0  # the wait ends exactly at T = 10 ms
    for mutation in ("timer_removed", "guard_flipped", "lost_wakeup"):
        assert not checks.timeout_safety("timeout", with_mutation(model, mutation)).holds, mutation
    # A timer of 60 ms restarted by every arrival: the oldest request can wait 60 + 60 ms.
    slow_timer = checks.model(timeout_table(batch=CAP, timeout_ms=60.0), ArrivalCurve.unconstrained())
    assert checks.timeout_safety("timeout", slow_timer).value == 60.0
    assert not checks.timeout_safety("timeout", with_mutation(slow_timer, "age_reset_on_arrival")).holds


def test_queue_bound_and_latency_are_exact_and_a_slow_worker_breaks_them(checks: TAChecks) -> None:
    model = checks.model(timeout_table(), checks.settings.curve(2))
    queue, latency = checks.queue_and_latency("timeout", model)
    assert queue.holds and latency.holds
    k, lat = int(queue.value), round(latency.value / UNIT)
    assert 2 <= k < CAP and lat > 0
    slow = with_mutation(model, "slow_worker", slow_units=10)
    tally_free = TAChecks(checks.tck, checks.settings)
    tally = type("T", (), {"add": staticmethod(lambda r: r)})()
    assert tally_free._reach(tally, slow, Observers(tag=True, latency_bound=lat), "late")
    assert tally_free._reach(tally, slow, Observers(queue_bound=k), "queue_exceeded")
    assert not tally_free._reach(tally, model, Observers(queue_bound=k), "queue_exceeded")


def test_deadlock_freedom_with_finite_arrivals(checks: TAChecks) -> None:
    model = checks.model(timeout_table(), checks.settings.curve(1, n_arrivals=3))
    assert checks.deadlock_freedom("timeout", model).holds
    for mutation in ("timer_removed", "guard_flipped", "lost_wakeup"):
        assert not checks.deadlock_freedom("timeout", with_mutation(model, mutation)).holds, mutation


def test_leads_to_waiting_served(checks: TAChecks) -> None:
    model = checks.model(timeout_table(), checks.settings.curve(1))
    assert checks.leads_to("timeout", model).holds
    # (guard_flipped is left out here: TChecker's liveness search did not end on it in minutes)
    for mutation in ("timer_removed", "lost_wakeup"):
        assert not checks.leads_to("timeout", with_mutation(model, mutation)).holds, mutation


# ------------------------------------------------------------------------------------------------
# Cross-check: the event-driven simulator never beats the timed automata's worst case
# ------------------------------------------------------------------------------------------------


def _token_bucket_stream(rng: np.random.Generator, burst: int, period_s: float, n: int) -> list[float]:
    """Arrival times below the curve: every arrival takes a token, tokens come back one per
    period (bucket of ``burst``, full at 0), gaps drawn at random."""
    times, tokens, refill, t = [], burst, period_s, 0.0
    while len(times) < n:
        t += rng.choice([0.0, 0.0, rng.uniform(0, period_s), rng.uniform(0, 3 * period_s)])
        while refill <= t:
            tokens, refill = min(burst, tokens + 1), refill + period_s
        if tokens == 0:
            t = refill
            continue
        tokens -= 1
        times.append(t)
    return times


def _timeout_policy(batch: int, timeout_s: float):
    def decide(sim: Simulator):
        if sim.queue_len >= batch or sim.oldest_wait_s >= timeout_s - 1e-12:
            return (0, 64)
        return timeout_s  # a timed wait: asked again when the oldest has waited timeout_s

    return decide


def test_simulator_stays_within_the_timed_automata_bounds(checks: TAChecks) -> None:
    """The TA bounds are worst cases over every stream below the curve: 200 random streams in the
    event-driven simulator, with the same timeout scheduler, never exceed them (service times in
    the TA are rounded up to 1 ms, so its bounds are upper bounds of the simulator's)."""
    burst = 2
    model = checks.model(timeout_table(batch=4, timeout_ms=10.0), checks.settings.curve(burst))
    queue, latency = checks.queue_and_latency("timeout", model)
    rng = np.random.default_rng(0)
    worst_latency, worst_queue = 0.0, 0
    policy = _timeout_policy(4, 0.010)
    for _ in range(200):
        times = np.asarray(_token_bucket_stream(rng, burst, checks.settings.period / 1000.0, 12))
        config = CONFIG.replace(horizon_s=float(times[-1]) + 2.0)
        sim = Simulator(config, record=True)
        sim.reset(arrivals=iter([times, np.array([1e12])]))
        sim.run(policy)
        table = request_table(sim)
        assert len(table.arrival_s) == len(times)  # everything served
        worst_latency = max(worst_latency, float(np.max(table.completion_s - table.arrival_s)) * 1000.0)
        dispatched = np.sort(table.dispatch_s)
        for i, t in enumerate(times):  # waiting requests just after each arrival
            worst_queue = max(worst_queue, i + 1 - int(np.searchsorted(dispatched, t, side="left")))
    assert worst_queue <= queue.value
    assert worst_latency <= latency.value + 1e-9
    assert worst_latency > 0.6 * latency.value  # the random streams come close to the worst case


def test_unit_appears_in_the_uppaal_comments() -> None:
    net = build_network(TAModel(CONFIG, timeout_table(), ArrivalCurve(2, 10), unit_ms=UNIT))
    xml = to_uppaal(net).xml
    assert re.search(r"Time unit: 1 ms", xml)
    assert lint(xml) == []


def test_committed_tchecker_model_passes_its_checks(tck: TChecker) -> None:
    """formal/models/batching.tck (written by verify.py --uppaal: timeout(B=8, T=10 ms), token
    bucket of burst 3, every observer): no error location is reachable."""
    text = (REPO / "formal" / "models" / "batching.tck").read_text()
    for label in ("late_idle", "queue_exceeded"):
        assert not tck.reach(text, [label]).holds, label


def test_a_check_out_of_time_is_reported_as_no_verdict(tck: TChecker) -> None:
    settings = TASettings(CONFIG, queue_cap=CAP, bursts=(1,), timeout_s=0.01)
    checks = TAChecks(tck, settings)
    rows = checks.run([("timeout", timeout_table())])
    assert rows and all(not r.decided and not r.holds and "no verdict" in r.detail for r in rows)
