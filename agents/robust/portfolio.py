"""Follow the best of a portfolio of schedulers, each evaluated online on the real arrivals.

Every expert (a scheduler) runs in a :class:`~agents.robust.shadow.ShadowSim` fed with the
arrivals the real server observes, so its cost on *these* arrivals is known at every moment,
whatever the real server does. The real server copies the decisions of one expert's shadow, the
*followed* one, and switches to another expert only at a *coupling* epoch: a decision epoch at
which the other expert's shadow is in exactly the real state (the same requests waiting, the
same workers idle, an epoch at the same time). From then on the real trajectory is that
shadow's trajectory, decision for decision. Hence the accounting identity, exact for any
arrival sequence:

    real cost up to t = sum over followed segments of the followed expert's shadow cost,

and the regret against any expert k, ``real cost - cost_k``, is measured exactly online.

Work per decision: O(K) amortised for K experts (each shadow admits each arrival once and makes
its own decisions); nothing depends on the queue length or the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from agents.base import Scheduler
from agents.robust.shadow import ShadowSim
from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["ExpertPortfolio", "SwitchRecord"]


class SwitchRecord(tuple):
    """(time s, from expert index, to expert index, lead of the new expert in cost units)."""


class ExpertPortfolio(Scheduler):
    """Follow-the-leader over shadow-simulated experts with switches at coupling epochs.

    :param config: the system.
    :param experts: factories ``config -> scheduler``, one per expert (called once; the
        schedulers are reset every episode).
    :param labels: a name per expert (for reports).
    :param start: index of the expert followed at the start of an episode.
    :param margin: a switch needs the leader's accrued cost to be lower than the followed
        expert's by more than ``margin`` times the followed expert's accrued cost (relative
        hysteresis, >= 0).
    :param margin_requests: ... plus this many requests' worth of the followed expert's mean cost
        per request (absolute hysteresis, >= 0).
    :ivar followed: index of the expert the real server follows.
    :ivar switches: the switches of the episode (:class:`SwitchRecord`).
    """

    name = "portfolio"

    def __init__(
        self,
        config: SystemConfig,
        experts: Sequence[Callable[[SystemConfig], Any]],
        labels: Sequence[str] | None = None,
        start: int = 0,
        margin: float = 0.01,
        margin_requests: float = 20.0,
    ) -> None:
        super().__init__(config)
        if not experts:
            raise ValueError("experts must name at least one scheduler")
        if not 0 <= start < len(experts):
            raise ValueError(f"start must be in [0, {len(experts) - 1}], got {start!r}")
        if not margin >= 0 or not margin_requests >= 0:
            raise ValueError(f"margin and margin_requests must be >= 0, got {margin!r}, {margin_requests!r}")
        self.labels = list(labels) if labels is not None else [f"expert{i}" for i in range(len(experts))]
        if len(self.labels) != len(experts):
            raise ValueError("labels must give one name per expert")
        self.experts = [factory(config) for factory in experts]
        self.shadows = [ShadowSim(config, expert) for expert in self.experts]
        self.start = int(start)
        self.margin = float(margin)
        self.margin_requests = float(margin_requests)
        self.followed = self.start
        self.switches: list[SwitchRecord] = []
        self._seen = 0
        self._best_quality = max(config.qualities)

    # ------------------------------------------------------------------ episode
    def reset(self, sim: Simulator) -> None:
        arrivals = sim.newest_arrivals_s(sim.queue_len)
        for shadow in self.shadows:
            shadow.start(arrivals, sim.now_s)
        self._seen = sim.n_admitted
        self.followed = self.start
        self.switches = []

    def decide(self, sim: Simulator) -> Decision:
        now = sim.now_s
        new = sim.n_admitted - self._seen
        if new:
            arrivals = sim.newest_arrivals_s(new)
            self._seen = sim.n_admitted
            for shadow in self.shadows:
                shadow.feed(arrivals)
        for shadow in self.shadows:
            shadow.advance_to(now)
        followed = self.shadows[self.followed]
        if not (followed.pending and followed.queue_len == sim.queue_len):
            raise RuntimeError(
                f"{self.name}: the followed shadow lost step with the simulator at t = {now:.6f} s"
            )
        self._maybe_switch(now)
        return self.shadows[self.followed].decide_pending()

    # ------------------------------------------------------------------ switching
    def costs(self) -> list[float]:
        """Accrued cost of every expert on the arrivals so far (cost units)."""
        return [shadow.cost for shadow in self.shadows]

    def _maybe_switch(self, now: float) -> None:
        shadows = self.shadows
        current = shadows[self.followed]
        leader = min(range(len(shadows)), key=lambda k: shadows[k].cost)
        if leader == self.followed:
            return
        lead = current.cost - shadows[leader].cost
        mean = current.cost / current.n_arrived if current.n_arrived else 0.0
        if lead <= self.margin * current.cost + self.margin_requests * mean:
            return
        if coupled(shadows[leader], current, now):
            self.switches.append(SwitchRecord((now, self.followed, leader, lead)))
            self.followed = leader

    def params(self) -> dict[str, Any]:
        return {
            "experts": list(self.labels),
            "start": self.start,
            "margin": self.margin,
            "margin_requests": self.margin_requests,
        }


def coupled(shadow: ShadowSim, reference: ShadowSim, now: float) -> bool:
    """True when ``shadow`` is in exactly ``reference``'s state at a decision epoch at ``now``:
    both pending there, the same requests waiting, each worker idle in both or busy until the
    same time."""
    if not (shadow.pending and shadow.now_s == now and reference.pending):
        return False
    if shadow.head_index != reference.head_index or shadow.queue_len != reference.queue_len:
        return False
    for mine, theirs in zip(shadow.free_at_s, reference.free_at_s, strict=True):
        if mine != theirs and (mine > now or theirs > now):
            return False
    return True


_ = math  # reserved for rules that need it
