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

Regret. Write L_k(t) for expert k's shadow cost, f for the expert followed at t and D_s >= 0
for the lead the new expert had at switch s (``SwitchRecord.lead``). The identity above reads

    real cost(t) = L_f(t) + sum over switches s <= t of D_s,

so for every expert k, ``real cost(T) - L_k(T) = (L_f(T) - L_k(T)) + sum_s D_s``. The rule
below keeps the followed expert within ``z`` standard deviations of the cheapest one at every
review (it switches otherwise, at the next coupling epoch), so the regret against the best
expert in hindsight is at most ``z`` standard deviations of the accrued difference, plus the
cost accrued between the last review and the horizon, plus the leads given up at the switches,
all of them measured (:meth:`ExpertPortfolio.report`). It is a measured bound, not a
worst-case one: a deterministic rule cannot have sublinear worst-case regret.

Work per decision: O(K) amortised for K experts (each shadow admits each arrival once and makes
its own decisions); nothing depends on the queue length or the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agents.base import Scheduler
from agents.robust.shadow import ShadowSim
from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["ExpertPortfolio", "SwitchRecord"]


class SwitchRecord(tuple):
    """(time s, from expert index, to expert index, lead of the new expert in cost units)."""


class ExpertPortfolio(Scheduler):
    """Follow the best expert, evaluated by shadow simulation, with switches at coupling epochs.

    Every ``review_s`` seconds the portfolio picks a *target* expert from the accrued costs of
    all shadows; the real server switches to the target at the first epoch at which the two are
    coupled (:func:`coupled`), provided it still costs less than the followed expert then.

    The rule compares accrued costs with a paired test. The cost every expert accrues in each
    block of ``block_s`` seconds is recorded; the accrued difference between two experts after
    n blocks has standard deviation ``sqrt(n) s``, s the standard deviation of the per-block
    differences (batch means). Expert j is *significantly cheaper* than i when
    ``cost_i - cost_j > z sd_ij``. At a review the cheapest expert becomes the target when it
    is significantly cheaper than the followed one; otherwise the followed expert stays. Before
    ``min_blocks`` blocks it always stays.

    :param config: the system.
    :param experts: factories ``config -> scheduler``, one per expert (called once; the
        schedulers are reset every episode).
    :param labels: a name per expert (for reports).
    :param start: index of the expert followed at the start of an episode.
    :param z: confidence of the paired tests, in standard deviations (> 0).
    :param block_s: length of the cost blocks of the variance estimate (s of simulated time).
    :param min_blocks: blocks before any switch.
    :param review_s: time between two reviews of the target (s of simulated time).
    :param tail_references: indices of the *reference* experts of the tail term (e.g. the
        timeouts); empty (default): no tail term.
    :param tail_tolerance: the tail term. An expert is *eligible* when its shadow latency
        quantile ``tail_quantile`` is at most ``1 + tail_tolerance`` times that of the cheapest
        reference expert (which is always eligible). The target is the cheapest eligible
        expert; a followed expert that is no longer eligible is left at the next coupling epoch
        even when the target costs more (its lead is then negative). The quantiles are read
        when a block closes (O(histogram bins) per block, not per decision).
    :param tail_quantile: the latency quantile of the tail term, in (0, 1); default 0.99.
    :param tail_budget: the *budgeted* tail rule (None, default: off), a fraction >= 0 of cost,
        which replaces the cost rule while :meth:`tail_active`. The *limit* is ``1 +
        tail_budget`` times :meth:`budget_reference` (the start expert's cost, or a significantly
        cheaper expert's). While the real cost so far (the accounting identity) is within the
        limit, at every block close the target becomes, among the experts whose own cost is
        within the limit, the one with the shortest tail (latency quantile ``tail_quantile``;
        ties within ``tail_step`` go to the cheaper), if its tail is shorter than the followed
        expert's by more than ``tail_step``; the switch is taken at the next coupling epoch even
        at a negative lead, if the target is still within the limit then. Once the real cost
        exceeds the limit, the target is the cheapest expert. So the real cost stays within the
        limit up to what accrues between a review and the switch it calls for (:meth:`report`
        gives the reference): the tail is bought with at most that share of the cost.
        Exclusive with ``tail_references``.
    :param tail_step: relative tail difference below which two experts' tails tie (default
        0.02, one bin of the shadows' latency histograms).
    :ivar followed: index of the expert the real server follows.
    :ivar target: index of the expert it switches to at the next coupling epoch.
    :ivar switches: the switches of the episode (:class:`SwitchRecord`).
    """

    name = "portfolio"

    def __init__(
        self,
        config: SystemConfig,
        experts: Sequence[Callable[[SystemConfig], Any]],
        labels: Sequence[str] | None = None,
        start: int = 0,
        z: float = 2.5,
        block_s: float = 1.0,
        min_blocks: int = 3,
        review_s: float = 0.1,
        tail_references: Sequence[int] = (),
        tail_tolerance: float = 0.0,
        tail_quantile: float = 0.99,
        tail_budget: float | None = None,
        tail_step: float = 0.02,
    ) -> None:
        super().__init__(config)
        if not experts:
            raise ValueError("experts must name at least one scheduler")
        if not 0 <= start < len(experts):
            raise ValueError(f"start must be in [0, {len(experts) - 1}], got {start!r}")
        if not (z > 0 and block_s > 0 and review_s > 0 and min_blocks >= 0):
            raise ValueError(
                f"need z > 0, block_s > 0, review_s > 0, min_blocks >= 0; got z={z!r}, "
                f"block_s={block_s!r}, review_s={review_s!r}, min_blocks={min_blocks!r}"
            )
        if not (tail_tolerance > -1 and 0 < tail_quantile < 1):
            raise ValueError(
                f"need tail_tolerance > -1 and tail_quantile in (0, 1); got "
                f"tail_tolerance={tail_tolerance!r}, tail_quantile={tail_quantile!r}"
            )
        if tail_budget is not None and not (
            isinstance(tail_budget, int | float) and 0 <= tail_budget < math.inf and tail_step >= 0
        ):
            raise ValueError(
                f"need tail_budget >= 0 (a fraction of cost) and tail_step >= 0; got "
                f"tail_budget={tail_budget!r}, tail_step={tail_step!r}"
            )
        if tail_budget is not None and tail_references:
            raise ValueError("tail_budget and tail_references are two tail rules: set one of them")
        if any(not 0 <= i < len(experts) for i in tail_references):
            raise ValueError(f"tail_references must index the experts, got {list(tail_references)!r}")
        self.labels = list(labels) if labels is not None else [f"expert{i}" for i in range(len(experts))]
        if len(self.labels) != len(experts):
            raise ValueError("labels must give one name per expert")
        self.experts = [factory(config) for factory in experts]
        self.shadows = [ShadowSim(config, expert) for expert in self.experts]
        self.start = int(start)
        self.z = float(z)
        self.block_s = float(block_s)
        self.min_blocks = int(min_blocks)
        self.review_s = float(review_s)
        self.tail_references = tuple(int(i) for i in tail_references)
        self.tail_tolerance = float(tail_tolerance)
        self.tail_quantile = float(tail_quantile)
        self.tail_budget = None if tail_budget is None else float(tail_budget)
        self.tail_step = float(tail_step)
        self.followed = self.target = self.start
        self.switches: list[SwitchRecord] = []
        self._seen = 0
        self._next_review_s = 0.0
        self._blocks = BlockMoments(len(experts))

    # ------------------------------------------------------------------ episode
    def reset(self, sim: Simulator) -> None:
        """Start every shadow on the arrivals so far and follow the start expert."""
        arrivals = sim.newest_arrivals_s(sim.queue_len)
        for shadow in self.shadows:
            shadow.start(arrivals, sim.now_s)
        self._seen = sim.n_admitted
        self.followed = self.target = self.start
        self.switches = []
        self._next_review_s = sim.now_s + self.review_s
        self._next_block_s = sim.now_s + self.block_s
        self._blocks.reset(self.costs())
        self._eligible = [True] * len(self.shadows)
        self._quantiles = [0.0] * len(self.shadows)
        self._leads = 0.0
        self._forced = False
        self._tail_review = False

    def _observe(self, sim: Simulator) -> None:
        """Feed the arrivals admitted since the last call to every shadow and run them to now."""
        new = sim.n_admitted - self._seen
        if new:
            arrivals = sim.newest_arrivals_s(new)
            self._seen = sim.n_admitted
            for shadow in self.shadows:
                shadow.feed(arrivals)
        now = sim.now_s
        for shadow in self.shadows:
            shadow.advance_to(now)

    def decide(self, sim: Simulator) -> Decision:
        """Run the shadows to now, review the target, switch at a coupling epoch, and return the
        followed shadow's decision."""
        now = sim.now_s
        self._observe(sim)
        followed = self.shadows[self.followed]
        if not (followed.pending and followed.queue_len == sim.queue_len):
            raise RuntimeError(
                f"{self.name}: the followed shadow lost step with the simulator at t = {now:.6f} s"
            )
        if now >= self._next_block_s:
            self._blocks.close(self.costs())
            self._next_block_s = now + self.block_s
            if self.tail_references:
                self._eligible = self.eligible()
            if self.tail_budget is not None:
                self._quantiles = [_quantile_s(shadow, self.tail_quantile) for shadow in self.shadows]
                self._tail_review = True
        if now >= self._next_review_s:
            self.target = self.review()
            self._next_review_s = now + self.review_s
        if self.target != self.followed and coupled(self.shadows[self.target], followed, now):
            lead = followed.cost - self.shadows[self.target].cost
            if lead > 0.0 or not self._eligible[self.followed] or (self._forced and self._affordable()):
                self.switches.append(SwitchRecord((now, self.followed, self.target, lead)))
                self._leads += lead
                self.followed = self.target
            else:  # the target lost its lead while waiting for a coupling epoch
                self.target = self.followed
        return self.shadows[self.followed].decide_pending()

    # ------------------------------------------------------------------ the rule
    def costs(self) -> list[float]:
        """Accrued cost of every expert on the arrivals so far (cost units)."""
        return [shadow.cost for shadow in self.shadows]

    def eligible(self) -> list[bool]:
        """Per expert, whether it passes the tail term (class docstring); all True without one."""
        if not self.tail_references:
            return [True] * len(self.shadows)
        costs = self.costs()
        reference = min(self.tail_references, key=costs.__getitem__)
        quantiles = [_quantile_s(shadow, self.tail_quantile) for shadow in self.shadows]
        limit = quantiles[reference] * (1.0 + self.tail_tolerance)
        return [k == reference or not quantiles[k] > limit for k in range(len(quantiles))]

    def review(self) -> int:
        """The target expert under the rule of the class docstring."""
        current = self.followed
        blocks = self._blocks
        if blocks.n < self.min_blocks:
            return current
        costs = self.costs()
        self._forced = False
        if self.tail_budget is not None and self.tail_active():
            return self._budgeted_target(costs)
        eligible = self._eligible
        best = min((k for k in range(len(costs)) if eligible[k]), key=costs.__getitem__)
        if not eligible[current] or costs[current] - costs[best] > self.z * blocks.sd(current, best):
            return best
        return current

    def _affordable(self) -> bool:
        """Whether a switch the budgeted tail rule forces is taken now, whatever the lead: always
        when the real cost is over budget (the target is then the cheapest expert), otherwise
        when the target's cost is still within the limit."""
        costs = self.costs()
        limit = self.budget_limit(costs)
        return self.spliced_cost(costs) > limit or costs[self.target] <= limit

    def spliced_cost(self, costs: Sequence[float]) -> float:
        """The real cost so far by the accounting identity: the followed expert's shadow cost
        ``costs[followed]`` plus the leads given up at the switches (cost units)."""
        return costs[self.followed] + self._leads

    def tail_active(self) -> bool:
        """Whether the budgeted tail rule applies at this review (always, here; subclasses may
        gate it)."""
        return True

    def budget_reference(self, costs: Sequence[float]) -> float:
        """The cost the budgeted tail rule measures its spending against: the start expert's,
        or that of an expert significantly cheaper than it (``z`` standard deviations), the
        least such upper bound: ``min_k cost_k + z sd(k, start)``."""
        start, sd = self.start, self._blocks.sd
        return min(costs[k] + self.z * sd(k, start) if k != start else costs[k] for k in range(len(costs)))

    def _budgeted_target(self, costs: list[float]) -> int:
        """The target under the budgeted tail rule (``tail_budget`` in the class docstring)."""
        current = self.followed
        limit = self.budget_limit(costs)
        if self.spliced_cost(costs) > limit:  # over budget: to the cheapest expert
            best = _cheapest(costs)
            self._forced = best != current
            return best
        if not self._tail_review:  # tail moves only when the quantiles are read (block closes)
            return current if costs[current] <= limit else _cheapest(costs)
        self._tail_review = False
        quantiles = self._quantiles
        within = [k for k in range(len(costs)) if costs[k] <= limit]
        shortest = min(quantiles[k] for k in within)
        tied = [k for k in within if quantiles[k] <= shortest * (1.0 + self.tail_step)]
        pick = min(tied, key=costs.__getitem__)
        if quantiles[pick] * (1.0 + self.tail_step) < quantiles[current] or costs[current] > limit:
            self._forced = True
            return pick
        return current

    def budget_limit(self, costs: Sequence[float]) -> float:
        """The most the real cost may be under the budgeted tail rule: ``1 + tail_budget`` times
        :meth:`budget_reference`."""
        return (1.0 + self.tail_budget) * self.budget_reference(costs)  # type: ignore[operator]

    def report(self, sim: Simulator) -> dict[str, Any]:
        """Advance every shadow to ``sim.now_s`` (the end of an episode) and report, in cost
        units: every expert's shadow cost, the real cost from the accounting identity (followed
        shadow + leads given up), the real simulator's own accrued cost, and the regret against
        the best expert in hindsight."""
        self._observe(sim)
        costs = self.costs()
        leads = self._leads
        spliced = self.spliced_cost(costs)
        best = _cheapest(costs)
        return {
            "expert_costs": dict(zip(self.labels, costs, strict=True)),
            "spliced_cost": spliced,
            "real_cost": sim.n_arrived * max(self.config.qualities) - sim.total_reward,
            "best_expert": self.labels[best],
            "regret": spliced - costs[best],
            "leads": leads,
            "switches": len(self.switches),
            "followed": self.labels[self.followed],
            "budget_reference": self.budget_reference(costs) if self.tail_budget is not None else None,
        }

    def params(self) -> dict[str, Any]:
        """The experts' labels and the rule's parameters."""
        return {
            "experts": list(self.labels),
            "start": self.start,
            "z": self.z,
            "block_s": self.block_s,
            "min_blocks": self.min_blocks,
            "review_s": self.review_s,
            "tail_references": list(self.tail_references),
            "tail_tolerance": self.tail_tolerance,
            "tail_quantile": self.tail_quantile,
            "tail_budget": self.tail_budget,
            "tail_step": self.tail_step,
        }


def _cheapest(costs: Sequence[float]) -> int:
    """Index of the cheapest expert (the lowest index on ties)."""
    return min(range(len(costs)), key=costs.__getitem__)


def _quantile_s(shadow: ShadowSim, q: float) -> float:
    """The ``q`` latency quantile (s) of a shadow's served requests; 0 before any is served."""
    histogram = shadow.latencies
    if histogram is None or not histogram.total:
        return 0.0
    return histogram.quantile_s(q)


class BlockMoments:
    """Running first and second moments of the per-block cost increments of K experts (batch
    means), for the standard deviation of accrued cost differences; O(K^2) per block.

    :param n_experts: K.
    """

    def __init__(self, n_experts: int) -> None:
        self.k = n_experts
        self.reset([0.0] * n_experts)

    def reset(self, costs: Sequence[float]) -> None:
        """Start with the accrued costs ``costs`` (one per expert)."""
        self.n = 0
        self._last = np.asarray(costs, dtype=float)
        self._sum = np.zeros(self.k)
        self._cross = np.zeros((self.k, self.k))

    def close(self, costs: Sequence[float]) -> None:
        """End a block at the accrued costs ``costs``."""
        now = np.asarray(costs, dtype=float)
        x = now - self._last
        self._last = now
        self.n += 1
        self._sum += x
        self._cross += np.outer(x, x)

    def sd(self, i: int, j: int) -> float:
        """Standard deviation of the accrued cost difference of experts i and j over the blocks
        so far: sqrt(n) times the sample standard deviation of the per-block differences."""
        n = self.n
        if n < 2:
            return math.inf
        mean = (self._sum[i] - self._sum[j]) / n
        second = (self._cross[i, i] + self._cross[j, j] - 2.0 * self._cross[i, j]) / n
        variance = max(second - mean * mean, 0.0) * n / (n - 1)
        return math.sqrt(n * variance)


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
