"""The server's engine and the simulator make the same decisions on the same arrivals.

The engine (serving.engine) runs on an event loop with a virtual clock that never sleeps (it jumps
to the next timer when nothing is ready), and its batches are completed by a virtual executor
after exactly the timing table's service time. On a fixed arrival list the sequence of dispatches
(time, model, size, worker, forced) must be the simulator's, for several schedulers, with distinct
and with simultaneous arrival times. No server dependency (aiohttp, torch) is needed here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import selectors
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.registry import make_agent
from batchenv.config import SystemConfig
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator
from batchenv.timing import ServiceTable
from serving.engine import BatchingEngine, NotAcceptingError, QueueFullError
from serving.models import BatchResult
from serving.workload import episode_arrivals_s

Dispatch = tuple[float, int, int, int, bool]  # time (s), model, size, worker, forced


class _JumpingSelector(selectors.BaseSelector):
    """A real selector (the loop's self-pipe) that never blocks: when the loop would wait for its
    next timer, the loop's virtual clock jumps to that timer instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: nothing is ready and no timer is set (the test would hang)")
        # the loop asked to wait until its earliest timer: be there exactly (no rounding)
        self._loop.now = max(self._loop.now, self._loop._scheduled[0]._when)  # type: ignore[attr-defined]
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is virtual, starting at 0 s."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


class VirtualExecutor(concurrent.futures.Executor):
    """Runs a batch at once and completes it ``end_s - start_s`` of virtual time later."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self.loop = loop

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        result = fn(*args, **kwargs)
        self.loop.call_later(result.end_s - result.start_s, future.set_result, result)
        return future


def table_runner(config: SystemConfig) -> Callable[[int, list[str]], BatchResult]:
    """A deterministic batch runner: the timing table's service time, no work."""
    service = ServiceTable(config).service_s

    def run(model: int, texts: list[str]) -> BatchResult:
        duration = service[model][len(texts)]
        return BatchResult(
            [{"label": 0, "score": 1.0} for _ in texts], 0.0, 0.0, 0.0, duration, 0.0, duration
        )

    return run


def engine_dispatches(
    config: SystemConfig, scheduler: Any, arrivals_s: np.ndarray
) -> tuple[list[Dispatch], dict[str, Any]]:
    """Serve ``arrivals_s`` on the engine in virtual time; its dispatches and final counters."""
    loop = VirtualTimeLoop()

    async def main() -> tuple[list[Any], dict[str, Any]]:
        engine = BatchingEngine(
            config,
            scheduler,
            table_runner(config),
            clock=loop.time,
            executor_factory=lambda worker: VirtualExecutor(loop),
        )
        engine.start()  # the episode's origin: virtual time 0
        assert engine.origin_s == 0.0
        tasks: list[asyncio.Task] = []

        async def one(i: int) -> Any:
            try:
                return await engine.infer(f"request {i}")
            except (QueueFullError, NotAcceptingError) as exc:
                return exc

        for i, t in enumerate(arrivals_s):
            loop.call_at(float(t), lambda i=i: tasks.append(asyncio.ensure_future(one(i))))
        await asyncio.sleep(float(arrivals_s[-1]) + 1e-3)
        answers = await asyncio.gather(*tasks)
        stats = engine.stats()
        await engine.shutdown(drain_timeout_s=0.0)
        return answers, stats

    try:
        answers, stats = loop.run_until_complete(main())
    finally:
        loop.close()
    batches = {a["batch"]["id"]: a["batch"] for a in answers if isinstance(a, dict)}
    dispatches = [
        (b["dispatch_s"], b["model_index"], b["size"], b["worker"], b["forced"])
        for _, b in sorted(batches.items())
    ]
    return dispatches, stats


def simulator_dispatches(
    config: SystemConfig, scheduler: Any, arrivals_s: np.ndarray
) -> tuple[list[Dispatch], Simulator]:
    """The same arrivals on the simulator, to a horizon by which every request is served."""
    sim = Simulator(config)
    horizon = float(arrivals_s[-1]) + 60.0
    sim.reset(arrivals=iter([np.asarray(arrivals_s, dtype=float), np.array([math.inf])]), horizon_s=horizon)
    reset = getattr(scheduler, "reset", None)
    if callable(reset):
        reset(sim)
    forced: list[bool] = []
    while not sim.done:
        before = len(sim.batches)
        was_forced = sim.step(scheduler(sim))
        forced += [was_forced] * (len(sim.batches) - before)
    assert sim.queue_len == 0  # every request served before the horizon
    return [
        (b.dispatch_s, b.model, b.size, b.worker, f) for b, f in zip(sim.batches, forced, strict=True)
    ], sim


def assert_same_dispatches(engine: list[Dispatch], simulated: list[Dispatch]) -> None:
    assert len(engine) == len(simulated)
    for k, (got, expected) in enumerate(zip(engine, simulated, strict=True)):
        assert got[1:] == expected[1:], f"dispatch {k}: engine {got}, simulator {expected}"
        # a timer is armed as a delay from now, so its instant may differ by a rounding error
        assert got[0] == pytest.approx(expected[0], abs=1e-9), (
            f"dispatch {k}: engine {got}, simulator {expected}"
        )


PPO = str(Path(__file__).resolve().parents[1] / "checkpoints" / "ppo_default.zip")
SCHEDULERS = ["greedy", "timeout(B=8,T=20,model=LLM-2)", "timeout", "proposed", "optimal", PPO]
ONE_WORKER_ONLY = ("optimal", PPO)  # the SMDP has one worker; the checkpoint was trained on one
CASES = [
    (scenario, load, spec)
    for scenario, load in (("default", 0.7), ("default", 0.3), ("multi_gpu", 0.8))
    for spec in SCHEDULERS
    if scenario == "default" or spec not in ONE_WORKER_ONLY
]


def _arrivals(
    config: SystemConfig, load: float, seed: int, horizon_s: float
) -> tuple[SystemConfig, np.ndarray]:
    loaded = config.at_rate(load * ServiceTable(config).max_throughput_per_s(config.n_workers))
    return loaded, episode_arrivals_s(loaded, seed, horizon_s)


@pytest.mark.parametrize(("scenario", "load", "spec"), CASES)
def test_the_engine_dispatches_as_the_simulator_on_the_same_arrivals(
    spec: str, scenario: str, load: float
) -> None:
    config, arrivals = _arrivals(load_scenario(scenario), load, seed=5, horizon_s=2.0)
    assert len(np.unique(arrivals)) == len(arrivals)  # distinct arrival times
    engine, stats = engine_dispatches(config, make_agent(spec, config, tuned=False), arrivals)
    simulated, sim = simulator_dispatches(config, make_agent(spec, config, tuned=False), arrivals)
    assert len(simulated) > 10
    assert_same_dispatches(engine, simulated)
    assert stats["n_forced"] == sim.n_forced
    assert stats["n_scheduler_errors"] == 0
    assert stats["n_dropped"] == sim.n_dropped


@pytest.mark.parametrize("spec", SCHEDULERS)
def test_simultaneous_arrivals_share_one_decision_epoch_as_in_the_simulator(spec: str) -> None:
    """Requests arriving at the same instant are all admitted before the scheduler decides, on
    the server as in the simulator (one epoch, not one per request)."""
    config, arrivals = _arrivals(load_scenario("default"), 0.5, seed=2, horizon_s=1.0)
    rng = np.random.default_rng(0)
    arrivals = np.sort(np.repeat(arrivals, rng.integers(1, 5, len(arrivals))))  # ties of up to 4
    assert len(np.unique(arrivals)) < len(arrivals)
    engine, _ = engine_dispatches(config, make_agent(spec, config, tuned=False), arrivals)
    simulated, _ = simulator_dispatches(config, make_agent(spec, config, tuned=False), arrivals)
    assert_same_dispatches(engine, simulated)


def test_a_burst_is_one_epoch_and_one_batch() -> None:
    config = load_scenario("default")
    epochs: list[int] = []

    def greedy_counting(state: Any) -> tuple[int, int]:
        epochs.append(state.queue_len)
        return (0, 64)

    engine, stats = engine_dispatches(config, greedy_counting, np.full(10, 0.5))
    assert [d[2] for d in engine] == [10]  # one batch of all ten: greedy saw the whole burst
    assert epochs == [10] and stats["n_epochs"] == 1


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        (np.float64(0.01), "a numpy float is no timed wait (Simulator.step rejects it)"),
        ("wait", "not a decision"),
    ],
)
def test_an_invalid_decision_is_counted_and_served_as_a_full_batch(decision: Any, reason: str) -> None:
    config = load_scenario("default")
    engine, stats = engine_dispatches(config, lambda state: decision, np.array([0.1, 0.2]))
    assert stats["n_scheduler_errors"] == 2, reason
    assert [(d[1], d[2], d[4]) for d in engine] == [(0, 1, False), (0, 1, False)]  # served at once
    sim = Simulator(config)
    sim.reset(arrivals=iter([np.array([0.1, 0.2]), np.array([math.inf])]), horizon_s=1.0)
    with pytest.raises((TypeError, IndexError)):  # the simulator stops on it
        sim.step(decision)


def test_a_batch_size_int_cannot_take_is_counted_and_nothing_is_left_waiting() -> None:
    """``int(math.inf)`` raises OverflowError: it too is an invalid decision, served as a full
    batch, not an exception that leaves the queue without an epoch or a timer."""
    config = load_scenario("default")
    engine, stats = engine_dispatches(config, lambda state: (0, math.inf), np.array([0.1, 0.2]))
    assert stats["n_scheduler_errors"] == 2
    assert [(d[1], d[2], d[4]) for d in engine] == [(0, 1, False), (0, 1, False)]


def test_a_python_float_is_a_timed_wait_on_both() -> None:
    config = load_scenario("default")
    arrivals = np.array([0.1, 0.102, 0.5])
    engine, stats = engine_dispatches(config, lambda state: 0.02, arrivals)
    simulated, _ = simulator_dispatches(config, lambda state: 0.02, arrivals)
    assert stats["n_scheduler_errors"] == 0
    # the waits end at max_wait_ms (100 ms) as forced dispatches: a timed wait that always
    # waits again never dispatches by itself
    assert all(d[4] for d in engine)
    assert_same_dispatches(engine, simulated)


def test_a_scheduler_that_raises_is_counted_and_the_requests_are_served() -> None:
    config = load_scenario("default")

    def broken(state: Any) -> Any:
        raise RuntimeError("a bug in the scheduler")

    engine, stats = engine_dispatches(config, broken, np.array([0.1, 0.3, 0.31]))
    assert stats["n_scheduler_errors"] == len(engine) >= 2
    assert stats["n_answered"] == 3
