"""benchmarks/end_effect.py: the drained episode is the reported one continued past the horizon
(same arrivals, same decisions before it), serves every request that arrived before it, and
costs exactly the reported cost when nothing was queued at the horizon; the reported cost is
``evaluate.py``'s, to the last bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.registry import make_agent
from batchenv.metrics import compute_metrics, request_scores
from batchenv.scenarios import scenario_config
from batchenv.sim import Simulator, episode_arrivals_s, simulate
from benchmarks import end_effect
from execution.episode import EpisodeTask, run_episode_task


def _pair(config, policy, seed):
    reported = simulate(config, policy, seed, sim=Simulator(config, record=True))
    return reported, end_effect.drained_episode(config, policy, seed, reported)


def never_dispatch(sim: Simulator) -> None:
    """Always wait: only the max_wait_ms shield ever dispatches."""
    return None


@pytest.mark.parametrize("policy", ["timeout", "greedy", never_dispatch])
def test_drained_run_serves_every_request_that_arrived_before_the_horizon(policy) -> None:
    config = scenario_config("high_load", 0.5)
    agent = make_agent(policy, config) if isinstance(policy, str) else policy
    queued = 0
    for seed in range(4):
        reported, drained = _pair(config, agent, seed)
        end_effect.check_drained(reported, drained, "test")
        arrivals = episode_arrivals_s(config, seed)
        assert drained.n_arrived == reported.n_arrived == len(arrivals)
        assert drained.queue_len == 0 and drained.n_served + drained.n_dropped == len(arrivals)
        # the requests queued at the horizon are served after it, the others as before
        n = reported.n_served
        assert np.array_equal(request_scores(drained)[:n], request_scores(reported)[:n])
        assert all(b.dispatch_s >= config.horizon_s for b in drained.batches[len(reported.batches) :])
        bound = config.horizon_s + end_effect.drain_bound_s(config)
        assert max(b.dispatch_s for b in drained.batches) < bound
        queued += reported.queue_len
    assert queued > 0  # the case the drained run is about occurred


def test_nothing_queued_at_the_horizon_gives_exactly_the_reported_cost() -> None:
    config = scenario_config("poisson_50", 1.0)
    agent = make_agent("timeout", config)
    empty = nonempty = 0
    for seed in range(12):
        reported, drained = _pair(config, agent, seed)
        cost_reported = compute_metrics(reported).cost_per_request
        cost_drained = compute_metrics(drained).cost_per_request
        if reported.queue_len == 0:
            assert cost_drained == cost_reported
            empty += 1
        else:
            # a queued request costs about 1 reported, a few hundredths once served
            assert cost_drained < cost_reported
            nonempty += 1
    assert empty and nonempty  # both cases were met


def test_reported_cost_is_evaluates_to_the_bit() -> None:
    horizon = 3.0
    seeds = (0, 1, 2)
    for spec in ("optimal", "timeout"):
        cell = end_effect.run_cell("high_load", spec, seeds, horizon)
        assert cell["status"] == "ok"
        for row in cell["rows"]:
            task = EpisodeTask(spec, "high_load", row["seed"], horizon)
            evaluated = run_episode_task(task).metrics
            assert row["cost_reported"] == evaluated["cost_per_request"]
            assert row["queued_at_horizon"] == evaluated["n_waiting"]
    assert end_effect.run_cell("azure_trace_30_test", "optimal", seeds, horizon)["status"] == "not_applicable"


def test_command_line_writes_the_markdown_and_json(tmp_path) -> None:
    out = tmp_path / "end_effect.md"
    argv = ["--scenarios", "poisson_75", "--agents", "optimal,timeout", "--seeds", "0-2"]
    argv += ["--horizon-s", "2", "--out", str(out), "--jobs", "1"]
    assert end_effect.main(argv) == 0
    text = out.read_text()
    assert "Produced by `python benchmarks/end_effect.py --scenarios poisson_75" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["command"].startswith("python benchmarks/end_effect.py ")
    cell = data["scenarios"]["poisson_75"]
    assert cell["reference"] == "optimal"
    timeout = cell["agents"]["timeout"]
    assert [row["seed"] for row in timeout["rows"]] == [0, 1, 2]
    change = 100 * (timeout["gap_drained"][0] - timeout["gap_reported"][0])
    assert timeout["gap_change_points"] == pytest.approx(change)


def test_bad_seeds_are_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        end_effect.main(["--seeds", "999-1000"])
    assert exc.value.code == 2
