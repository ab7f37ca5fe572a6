"""The structure of an optimal policy: its control limit q*, the queue lengths at which each
model is first used, and the policy as runs of queue lengths with one decision type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.smdp.solution import OptimalSolution

__all__ = ["ControlLimits", "PolicyRun", "control_limits"]


@dataclass(frozen=True)
class PolicyRun:
    """Consecutive queue lengths q_low..q_high (requests) with the same decision type.

    The decision is a wait (``model = -1``), or a dispatch on ``model`` with batch sizes
    ``batch_low..batch_high``, the whole queue at every q of the run or at none.

    :ivar whole: every q of the run dispatches its whole queue, min(q, max_batch_size).
    """

    q_low: int
    q_high: int
    model: int
    batch_low: int
    batch_high: int
    whole: bool


@dataclass(frozen=True)
class ControlLimits:
    """The control limits of an optimal policy: the compact form of one rate's table.

    :ivar rate_per_s: arrival rate (requests/s).
    :ivar dispatch_threshold: q*: wait below it, dispatch at it (requests).
    :ivar is_control_limit: waits at every 1 <= q < q* and dispatches at every q >= q*.
    :ivar model_from: per model, the smallest q at which the policy dispatches on it (None: never).
    :ivar whole_batch_until: the policy dispatches the whole queue at every q* <= q <= this.
    :ivar runs: the policy over q = 1..q_max as runs of one model that dispatch either the whole
        queue at every q or not (see :class:`PolicyRun`).
    :ivar q_max: the runs cover q <= q_max, by default the 99.99th percentile of the queue at
        decision epochs.
    :ivar model_names: names of the models, by index.
    """

    rate_per_s: float
    dispatch_threshold: int
    is_control_limit: bool
    model_from: tuple[int | None, ...]
    whole_batch_until: int
    runs: tuple[PolicyRun, ...]
    q_max: int
    model_names: tuple[str, ...]

    def describe(self) -> str:
        """One line, e.g. ``1 wait; 2-3 LLM-1 b=q; 4-21 LLM-3 b=4..20`` (``b=q``: whole queue)."""
        parts = []
        for run in self.runs:
            span = f"{run.q_low}" if run.q_low == run.q_high else f"{run.q_low}-{run.q_high}"
            if run.model < 0:
                parts.append(f"{span} wait")
                continue
            if run.whole:
                sizes = "q" if run.batch_high == run.q_high else f"min(q, {run.batch_high})"
            elif run.batch_low == run.batch_high:
                sizes = f"{run.batch_low}"
            else:
                sizes = f"{run.batch_low}..{run.batch_high}"
            parts.append(f"{span} {self.model_names[run.model]} b={sizes}")
        return "; ".join(parts)


def control_limits(solution: OptimalSolution, q_max: int | None = None) -> ControlLimits:
    """Summarise ``solution`` by its control limits, its runs up to ``q_max``.

    :param solution: a solved SMDP.
    :param q_max: the largest queue length the runs cover (requests); default the 99.99th
        percentile of the queue length at decision epochs.
    """
    q_max = solution.queue_quantile(0.9999) if q_max is None else min(q_max, solution.queue_cap)
    q_max = max(q_max, min(solution.dispatch_threshold, solution.queue_cap))
    model, batch = solution.model, solution.batch
    model_from = []
    for m in range(len(solution.model_names)):
        used = np.flatnonzero(model == m)
        model_from.append(int(used[0]) if len(used) else None)
    q = np.arange(solution.queue_cap + 1)
    whole = batch == np.minimum(q, solution.max_batch_size)
    partial = np.flatnonzero((q >= solution.dispatch_threshold) & ~whole)
    return ControlLimits(
        rate_per_s=solution.rate_per_s,
        dispatch_threshold=solution.dispatch_threshold,
        is_control_limit=solution.is_control_limit,
        model_from=tuple(model_from),
        whole_batch_until=int(partial[0]) - 1 if len(partial) else solution.queue_cap,
        runs=tuple(_runs(model, batch, whole, q_max)),
        q_max=q_max,
        model_names=solution.model_names,
    )


def _runs(model: np.ndarray, batch: np.ndarray, whole: np.ndarray, q_max: int) -> list[PolicyRun]:
    """The policy over q = 1..q_max, merged into runs of one model and one kind of batch."""
    runs: list[PolicyRun] = []
    for q in range(1, q_max + 1):
        m, b, w = int(model[q]), int(batch[q]), bool(whole[q]) and model[q] >= 0
        if runs and runs[-1].model == m and runs[-1].whole == w:
            last = runs[-1]
            runs[-1] = PolicyRun(
                last.q_low, q, m, min(last.batch_low, b), max(last.batch_high, b), last.whole and w
            )
        else:
            runs.append(PolicyRun(q, q, m, b, b, w))
    return runs
