"""The exact optimum as a scheduler: the policy of the batching SMDP (:mod:`agents.smdp`) for one
worker and Poisson arrivals, a table lookup by queue length at each decision epoch: the yardstick
the other schedulers are measured against (docs/design.md).

    simulate(config, OptimalScheduler(config), seed)   # solves (cached) for each episode's rate
    python -m apps.optimal --rates 20,100,300          # the solutions as a table (docs/optimal.md)

The timeout (``max_wait_ms``)
    The state has no ages, so the SMDP ignores the timeout: its gain is an upper bound for every
    policy that obeys it. The bound is attained when the optimal policy never waits long: on the
    default system (100 ms) it waits only at q = 1 and only when lambda >= 260/s, where the next
    arrival is due within a few ms; a request that finds the system empty waits 100 ms with
    probability e^(-0.1 lambda) < 1e-11 (``p_timeout_from_empty``), and the simulator records
    no forced dispatch in millions of epochs (tests).
    Where the timeout does bind (say max_wait_ms = 2), :class:`OptimalScheduler` dispatches the
    best action at q itself (``shield_model``/``shield_batch``); at 300/s with max_wait_ms = 2
    its simulated cost stays within 1% of the bound (the wait at q = 1 is nearly indifferent).
"""

from __future__ import annotations

import math

from agents.base import Scheduler
from agents.smdp import OptimalSolution, check_supported, solve_optimal
from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["OptimalScheduler"]


class OptimalScheduler(Scheduler):
    """The SMDP-optimal policy as a scheduler: a table lookup by queue length at each epoch (O(1)).

    With ``rate_per_s=None`` and no ``solution``, the scheduler solves (cached) for the rate of
    each episode (``sim.episode_rate_per_s``: the config's mean rate, or the rate drawn for the
    episode when ``arrivals.rate_range_per_s`` is set): an oracle that knows the Poisson rate,
    the yardstick of docs/design.md.

    Where the table says wait but the oldest request has waited ``max_wait_ms`` (the simulator
    would force a dispatch on the last model), it dispatches the best action at that queue length
    itself (``solution.shield_model``/``shield_batch``). The SMDP has no request ages, so its gain
    is an upper bound for any policy that obeys the timeout; on the default system this never
    happens (module docstring).

    :param config: the system (one worker, Poisson arrivals, ``reward.w_slo = 0``).
    :param rate_per_s: solve for this rate (requests/s) instead of each episode's rate.
    :param solution: use this solution (overrides ``rate_per_s``, ``queue_cap``, ``action_set``).
    :param queue_cap: state-space cap passed to :func:`agents.smdp.solve_optimal`.
    :param action_set: batch sizes allowed (:data:`agents.smdp.ACTION_SETS`); default ``"any"``.
    """

    name = "optimal"

    def __init__(
        self,
        config: SystemConfig,
        rate_per_s: float | None = None,
        *,
        solution: OptimalSolution | None = None,
        queue_cap: int | None = None,
        action_set: str = "any",
    ) -> None:
        super().__init__(config)
        check_supported(config)
        if solution is None:
            solution = solve_optimal(config, rate_per_s, queue_cap=queue_cap, action_set=action_set)
            self._follow_episode_rate = rate_per_s is None
        else:
            self._follow_episode_rate = False
            queue_cap, action_set = solution.queue_cap, solution.action_set
        self._queue_cap = queue_cap
        self._action_set = action_set
        self._load(solution)

    def _load(self, solution: OptimalSolution) -> None:
        self.solution = solution
        self._cap = solution.queue_cap
        self._table: list[Decision] = [solution.decision(q) for q in range(solution.queue_cap + 1)]
        self._shield: list[Decision] = [
            None,
            *(
                (int(m), int(b))
                for m, b in zip(solution.shield_model[1:], solution.shield_batch[1:], strict=True)
            ),
        ]

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: solve (cached) for its rate when following each episode's rate."""
        rate = sim.episode_rate_per_s
        if self._follow_episode_rate and math.isfinite(rate) and rate != self.solution.rate_per_s:
            self._load(
                solve_optimal(self.config, rate, queue_cap=self._queue_cap, action_set=self._action_set)
            )

    def decide(self, sim: Simulator) -> Decision:
        """The optimal decision at the queue length of ``sim`` (the shield's dispatch if it may not wait)."""
        q = sim.queue_len
        if q > self._cap:
            q = self._cap
        decision = self._table[q]
        if decision is None and sim.shielded:
            return self._shield[q]
        return decision

    def params(self) -> dict[str, float | int | str]:
        """Constructor keyword arguments that differ from the defaults."""
        params: dict[str, float | int | str] = {}
        if not self._follow_episode_rate:
            params["rate_per_s"] = self.solution.rate_per_s
        if self._queue_cap is not None:
            params["queue_cap"] = self._queue_cap
        if self._action_set != "any":
            params["action_set"] = self._action_set
        return params
