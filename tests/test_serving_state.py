"""The scheduler state interface (batchenv.state): every scheduler reads only its members, the
simulator and the server's state both provide them, and the server's state follows the
simulator's rules. No server dependency is needed here."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agents.registry import make_agent
from batchenv.scenarios import load_scenario
from batchenv.sim import Simulator, simulate
from batchenv.state import STATE_MEMBERS, SchedulerState
from serving.engine import OVERDUE_S, ServerState, _Batch, _Request
from tests.conftest import REPO


class StateView:
    """Only the members of SchedulerState of a simulator; reading anything else fails."""

    def __init__(self, sim: Simulator) -> None:
        object.__setattr__(self, "_sim", sim)

    def __getattr__(self, name: str) -> Any:
        if name not in STATE_MEMBERS:
            raise AttributeError(f"a scheduler read {name!r}, which is not in batchenv.state.SchedulerState")
        return getattr(self._sim, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a scheduler wrote {name!r}: the state is read-only")


class ThroughView:
    """A scheduler that sees the simulator only through a :class:`StateView`."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def reset(self, sim: Simulator) -> None:
        reset = getattr(self.agent, "reset", None)
        if callable(reset):
            reset(StateView(sim))

    def __call__(self, sim: Simulator) -> Any:
        return self.agent(StateView(sim))


def test_state_members_are_the_protocol_members() -> None:
    declared = {name for name in vars(SchedulerState) if not name.startswith("_")}
    assert declared == set(STATE_MEMBERS)


def test_the_simulator_and_the_server_state_provide_the_interface() -> None:
    config = load_scenario("default")
    sim = Simulator(config)
    sim.reset(0)
    assert isinstance(sim, SchedulerState)
    assert isinstance(ServerState(config), SchedulerState)


AGENTS = [
    "greedy",
    "static(B=8)",
    "timeout",
    "aimd",
    "util_switch(util_thresholds=[0.5, 0.8])",
    "optimal",
    "proposed",
    str(REPO / "checkpoints" / "ppo_default.zip"),
    str(REPO / "checkpoints" / "dqn_default.zip"),
]


@pytest.mark.parametrize("spec", AGENTS)
def test_every_scheduler_decides_from_the_interface_alone(spec: str) -> None:
    """Through a view with only the interface's members, every scheduler makes the same
    decisions as on the whole simulator (same episode, bit for bit)."""
    config = load_scenario("default").replace(horizon_s=3.0)
    direct = simulate(config, make_agent(spec, config), seed=3)
    viewed = simulate(config, ThroughView(make_agent(spec, config)), seed=3)
    assert direct.n_batches > 10
    assert (viewed.n_batches, viewed.total_reward, viewed.served_per_model) == (
        direct.n_batches,
        direct.total_reward,
        direct.served_per_model,
    )


def test_the_slo_guard_of_proposed_decides_from_the_interface_alone() -> None:
    config = load_scenario("azure_trace_slo").replace(horizon_s=3.0)
    direct = simulate(config, make_agent("proposed", config), seed=1)
    viewed = simulate(config, ThroughView(make_agent("proposed", config)), seed=1)
    assert viewed.total_reward == direct.total_reward


def _request(seq: int, arrival_s: float) -> _Request:
    return _Request(seq, "text", arrival_s, future=None)  # type: ignore[arg-type]


def test_server_state_follows_the_simulator_definitions() -> None:
    config = load_scenario("default").replace(n_workers=2)
    state = ServerState(config)
    assert state.queue_len == 0 and state.oldest_arrival_s == math.inf and state.oldest_wait_s == 0.0
    for seq, t in enumerate([0.010, 0.020, 0.040]):
        state.admit(_request(seq, t))
    state.n_dropped = 2
    state.now_s = 0.050
    assert state.queue_len == 3 and state.n_arrived == 5
    assert state.oldest_wait_s == pytest.approx(0.040)
    assert state.mean_wait_s == pytest.approx(0.050 - (0.010 + 0.020 + 0.040) / 3)
    assert not state.shielded
    # a batch of two on worker 0: busy until the table's service time says, busy time counts
    batch = _Batch(0, 0, 2, 0.050, 0.050 + state.service_s(2, 2), False, state.take(2))
    state.start(batch)
    assert state.queue_len == 1 and state.mean_wait_s == pytest.approx(0.010)
    assert state.idle_worker() == 1
    state.now_s = 0.052
    assert state.free_at_s[0] == pytest.approx(0.0605)  # 2 + 2.5 + 5 + 1 ms on LLM-3
    assert state.busy_time_s() == pytest.approx(0.002)
    # past its predicted end the busy worker is still reported busy
    state.now_s = 1.0
    assert state.free_at_s[0] == pytest.approx(1.0 + OVERDUE_S)
    # the oldest waiting request has waited max_wait_ms and worker 1 is idle: shielded
    assert state.shielded
    state.finish(batch, completion_s=0.060)
    assert state.free_at_s[0] == 0.060
    assert state.busy_time_s() == pytest.approx(0.010)
    assert state.observe() == (1.0, 1, pytest.approx(0.96), pytest.approx(0.96), 5, pytest.approx(0.010))
