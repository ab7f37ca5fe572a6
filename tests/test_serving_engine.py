"""The server's batching core (serving.engine) on a real event loop with a stand-in batch runner,
the workload (the simulator's arrivals) and the measured-episode metrics (serving.episode)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from agents.registry import make_agent
from batchenv.metrics import compute_metrics, request_table
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate
from batchenv.timing import ServiceTable
from serving.engine import BatchingEngine, NotAcceptingError, QueueFullError
from serving.episode import MeasuredEpisode
from serving.models import BatchResult, ModelWorker, build_models, parse_model_shapes
from serving.workload import episode_arrivals_s, request_texts


def sleeping_runner(service_s: float) -> Callable[[int, list[str]], BatchResult]:
    """A batch runner that takes ``service_s`` seconds and echoes each text's length."""

    def run(model: int, texts: list[str]) -> BatchResult:
        start = time.monotonic()
        time.sleep(service_s)
        end = time.monotonic()
        answers = [{"label": len(t), "score": 1.0} for t in texts]
        return BatchResult(answers, start, 0.0, 0.0, end - start, 0.0, end)

    return run


async def _submit_all(engine: BatchingEngine, texts: list[str], gap_s: float = 0.0) -> list[Any]:
    async def one(text: str) -> Any:
        try:
            return await engine.infer(text)
        except (QueueFullError, NotAcceptingError) as exc:
            return exc

    tasks = []
    for text in texts:
        tasks.append(asyncio.create_task(one(text)))
        await asyncio.sleep(gap_s)
    return await asyncio.gather(*tasks)


def run_engine(
    config, scheduler, runner, scenario: Callable[[BatchingEngine], Any]
) -> tuple[Any, BatchingEngine]:
    async def main() -> Any:
        engine = BatchingEngine(config, scheduler, runner)
        engine.start()
        try:
            return await asyncio.wait_for(scenario(engine), timeout=30.0), engine
        finally:
            await engine.shutdown(drain_timeout_s=5.0)

    return asyncio.run(main())


def test_every_request_is_answered_once_with_its_own_result() -> None:
    config = load_scenario("default")
    texts = [f"request {'x' * i}" for i in range(200)]
    answers, engine = run_engine(
        config, make_agent("greedy", config), sleeping_runner(0.002), lambda e: _submit_all(e, texts, 0.0005)
    )
    assert [a["result"]["label"] for a in answers] == [len(t) for t in texts]
    assert sorted(a["seq"] for a in answers) == list(range(200))
    batches = {a["batch"]["id"]: a["batch"] for a in answers}
    assert sum(b["size"] for b in batches.values()) == 200
    assert max(b["size"] for b in batches.values()) > 1  # requests waited during batches: batched
    stats = engine.stats()
    assert stats["n_answered"] == stats["n_admitted"] == stats["n_dispatched"] == 200
    for a in answers:  # latency = queueing + service, all from the server's clock
        t = a["timings_ms"]
        assert t["latency"] == pytest.approx(t["queue"] + t["service"])
        assert a["batch"]["dispatch_s"] >= a["arrival_s"]


def test_a_full_queue_drops_and_counts() -> None:
    config = load_scenario("default").replace(queue_capacity=5)
    answers, engine = run_engine(
        config,
        make_agent("greedy", config),
        sleeping_runner(0.05),
        lambda e: _submit_all(e, [f"r{i}" for i in range(40)]),
    )
    dropped = [a for a in answers if isinstance(a, QueueFullError)]
    served = [a for a in answers if isinstance(a, dict)]
    assert len(dropped) + len(served) == 40
    # the first request is dispatched at once, five wait, the rest find the queue full
    assert len(served) == 6 and len(dropped) == 34
    stats = engine.stats()
    assert stats["n_dropped"] == 34 and stats["n_arrived"] == 40 and stats["n_answered"] == 6


def test_a_scheduler_that_always_waits_is_forced_at_max_wait() -> None:
    config = load_scenario("default").replace(max_wait_ms=30.0)
    answers, engine = run_engine(
        config, lambda state: None, sleeping_runner(0.001), lambda e: _submit_all(e, ["a"] * 5)
    )
    assert engine.stats()["n_forced"] >= 1
    assert all(a["batch"]["forced"] for a in answers)
    oldest: dict[int, float] = {}  # per batch, the wait of its oldest request (ms)
    for a in answers:
        batch = a["batch"]["id"]
        oldest[batch] = max(oldest.get(batch, 0.0), a["timings_ms"]["queue"])
    # never dispatched before the oldest request has waited max_wait_ms (the others, submitted a
    # loop turn later, have waited a little less)
    assert all(wait >= 30.0 - 1e-6 for wait in oldest.values())


def test_a_timed_wait_wakes_the_scheduler_when_the_oldest_has_waited() -> None:
    config = load_scenario("default")
    agent = make_agent("timeout(B=64,T=20,model=LLM-3)", config, tuned=False)
    answers, engine = run_engine(config, agent, sleeping_runner(0.001), lambda e: _submit_all(e, ["a"] * 3))
    assert {a["batch"]["id"] for a in answers} == {0}  # one batch of the three, after 20 ms
    assert answers[0]["timings_ms"]["queue"] >= 20.0
    assert answers[0]["model"] == "LLM-3"
    assert engine.stats()["n_forced"] == 0


def test_shutdown_answers_running_batches_and_refuses_waiting_requests() -> None:
    config = load_scenario("default")

    async def scenario(engine: BatchingEngine) -> list[Any]:
        tasks = [asyncio.create_task(engine.infer("r0"))]
        await asyncio.sleep(0.005)  # the first batch (one request) is running
        tasks += [asyncio.create_task(engine.infer(f"r{i}")) for i in range(1, 10)]
        await asyncio.sleep(0.015)  # nine wait
        await engine.shutdown(drain_timeout_s=0.0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(NotAcceptingError):
            await engine.infer("late")
        return results

    results, engine = run_engine(config, make_agent("greedy", config), sleeping_runner(0.2), scenario)
    assert isinstance(results[0], dict)
    assert all(isinstance(r, NotAcceptingError) for r in results[1:])
    assert engine.stats()["n_refused"] == 9


def test_the_engine_runs_real_models() -> None:
    config = load_scenario("default")
    worker = ModelWorker(build_models(parse_model_shapes("1x64,1x64,1x64", 3)))
    answers, _ = run_engine(
        config, make_agent("greedy", config), worker.run_batch, lambda e: _submit_all(e, request_texts(0, 20))
    )
    assert len(answers) == 20
    assert all(0 <= a["result"]["label"] < 16 and 0 < a["result"]["score"] <= 1 for a in answers)
    assert all(a["timings_ms"]["inference"] > 0 for a in answers)


@pytest.mark.parametrize("scenario", ["default", "bursty", "diurnal", "azure_trace"])
def test_replayed_arrivals_are_the_simulators(scenario: str) -> None:
    config = load_scenario(scenario)
    sim = simulate(config, make_agent("greedy", config), seed=4, horizon_s=5.0)
    simulated = np.sort(np.concatenate([sim.admitted_arrivals_s, sim.drop_times_s]))
    np.testing.assert_array_equal(episode_arrivals_s(config, 4, 5.0), simulated)


def test_request_texts_are_deterministic_and_leave_the_arrivals_alone() -> None:
    assert request_texts(3, 50) == request_texts(3, 50)
    assert request_texts(3, 50) != request_texts(4, 50)
    assert all(4 <= len(t.split()) <= 40 for t in request_texts(3, 50))


def _answers_of(sim: Simulator) -> tuple[list[dict[str, Any]], list[float]]:
    """The answers a server would give for the requests a simulated episode served (the
    simulator does not record which batches were forced: none is marked)."""
    table = request_table(sim)
    batch_of = np.repeat(np.arange(len(sim.batches)), [b.size for b in sim.batches])
    answers = []
    for i, k in enumerate(batch_of):
        b = sim.batches[k]
        batch = {
            "id": int(k),
            "dispatch_s": b.dispatch_s,
            "completion_s": b.dispatch_s + b.service_s,
            "model_index": b.model,
            "worker": b.worker,
            "forced": False,
        }
        answers.append({"seq": i, "arrival_s": float(table.arrival_s[i]), "batch": batch})
    return answers, list(sim.drop_times_s)


@pytest.mark.parametrize("scenario", ["default", "multi_gpu"])
def test_measured_metrics_equal_the_simulators_on_the_same_records(scenario: str) -> None:
    config = load_scenario(scenario).replace(queue_capacity=20, horizon_s=3.0)
    config = config.at_rate(1.3 * ServiceTable(config).max_throughput_per_s(config.n_workers))  # overload
    sim = simulate(config, make_agent("timeout", config), seed=2)
    answers, drops = _answers_of(sim)
    waiting = sim.admitted_arrivals_s[sim.n_served :]
    # requests waiting at the horizon: dispatched later on a real server
    late = {
        "id": 10**6,
        "dispatch_s": 99.0,
        "completion_s": 99.1,
        "model_index": 0,
        "worker": 0,
        "forced": False,
    }
    answers += [{"seq": sim.n_served + k, "arrival_s": t, "batch": late} for k, t in enumerate(waiting)]
    measured = MeasuredEpisode(config, sim.now_s, answers, drops)
    got_metrics = compute_metrics(measured)  # type: ignore[arg-type]
    expected, got = compute_metrics(sim).to_dict(), got_metrics.to_dict()
    assert sim.n_dropped > 0
    assert measured.n_after_horizon == 0
    # a request that reached the server after the horizon is not part of the episode
    late_arrival = {"seq": 10**6, "arrival_s": sim.now_s + 0.5, "batch": late}
    assert compute_metrics(MeasuredEpisode(config, sim.now_s, [*answers, late_arrival], drops)) == got_metrics
    assert MeasuredEpisode(config, sim.now_s, [*answers, late_arrival], drops).n_after_horizon == 1
    for key, value in expected.items():
        if key == "n_forced":
            continue
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
