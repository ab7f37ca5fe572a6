"""Long-run averages of a Storm-built DTMC by a direct solve, with a certified interval.

Storm's sound value iteration for long-run averages needs minutes on slowly mixing chains (an
overloaded policy whose queue sits at its capacity). This module solves the same chain, as Storm
built it (its transition matrix and reward vectors), directly:

1. the gain-bias equations ``g + h(s) = r(s) + sum_s' P(s, s') h(s')`` with ``h(s0) = 0`` are
   solved by a sparse LU factorisation (scipy's SuperLU), once per chain for every reward;
2. the result is *certified* a posteriori: for any vector ``h``, the long-run average reward
   from any state lies in ``[min_s d(s), max_s d(s)]`` with ``d = r + P h - h``. (Summing ``d``
   along a path telescopes: ``sum_{t<N} r(s_t) = sum_{t<N} d(s_t) + h(s_0) - E h(s_N)``, so the
   average over N ticks lies between ``min d`` and ``max d`` up to ``O(1 / N)``.) The bound holds
   for every chain, unichain or not, and whatever the accuracy of the solve: a poor solve only
   widens the interval. It is exact up to the floating-point rounding of one matrix-vector
   product.

The answer is the midpoint of the interval and its half-width is reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["CertifiedAverage", "certified_long_run_averages", "transition_matrix"]


@dataclass(frozen=True)
class CertifiedAverage:
    """A long-run average per tick with its certified interval ``[low, high]``."""

    low: float
    high: float

    @property
    def value(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)


def transition_matrix(model: Any) -> sp.csr_matrix:
    """The transition matrix of a Storm sparse DTMC as a scipy CSR matrix (states x states)."""
    matrix = model.transition_matrix
    indptr = [0]
    cols: list[int] = []
    vals: list[float] = []
    for i in range(matrix.nr_rows):
        for entry in matrix.get_row(i):
            cols.append(entry.column)
            vals.append(entry.value)
        indptr.append(len(cols))
    n = model.nr_states
    return sp.csr_matrix((np.asarray(vals), np.asarray(cols), np.asarray(indptr)), shape=(n, n))


def _reward_vector(model: Any, name: str) -> np.ndarray:
    """Expected reward per tick of each state (state rewards plus the reward of its one action)."""
    rewards = model.reward_models[name]
    vector = np.zeros(model.nr_states)
    if rewards.has_state_rewards:
        vector += np.asarray(rewards.state_rewards, dtype=float)
    if rewards.has_state_action_rewards:
        vector += np.asarray(rewards.state_action_rewards, dtype=float)
    if rewards.has_transition_rewards:
        raise ValueError(f"reward structure {name!r} has transition rewards, which are not supported")
    return vector


def certified_long_run_averages(model: Any, names: list[str]) -> dict[str, CertifiedAverage]:
    """Long-run average per tick of each reward structure of ``names`` from the initial state of a
    Storm sparse DTMC (one action per state), each with its certified interval."""
    if model.nr_choices != model.nr_states:
        raise ValueError("certified_long_run_averages needs a DTMC (one choice per state)")
    p = transition_matrix(model)
    n = p.shape[0]
    start = int(model.initial_states[0])
    # Unknowns (h without h(start), g): (I - P) h + g 1 = r with h(start) = 0.
    system = (sp.identity(n, format="csc") - p.tocsc()).tolil()
    system[:, start] = np.ones((n, 1))  # column of h(start), which is 0, now carries g
    lu = splu(system.tocsc(), permc_spec="COLAMD")
    out: dict[str, CertifiedAverage] = {}
    for name in names:
        r = _reward_vector(model, name)
        x = lu.solve(r)
        h = x.copy()
        h[start] = 0.0
        d = r + p @ h - h
        out[name] = CertifiedAverage(float(d.min()), float(d.max()))
    return out
