"""Long-run averages of Storm-built models by direct solves, with certified intervals.

Storm's sound value iteration for long-run averages needs minutes on slowly mixing chains (an
overloaded policy whose queue sits at its capacity), and its relative stopping rule never fires
on tiny values (drop rates of 1e-30). This module works on the model exactly as Storm built it
(its transition matrix, choices and reward vectors) and certifies every answer:

**The certificate.** For any vector ``h`` over the states, write ``d(s, c) = r(s, c) +
sum_s' P(s, c, s') h(s') - h(s)`` for every choice ``c`` of state ``s``. Along any path, under
any scheduler (history-dependent or randomised), the rewards telescope: ``sum_{t<N} r_t =
sum_{t<N} d_t + h(s_0) - h(s_N)``, so the long-run average reward of every scheduler, from every
state, lies in ``[min d, max d]`` over the choices it can take. Hence

- for a DTMC: its long-run average is in ``[min_s d(s), max_s d(s)]``;
- for an MDP: ``Rmax <= max_{s,c} d(s, c)`` and ``Rmin >= min_{s,c} d(s, c)``, while any one
  stationary scheduler's own interval gives the other side (``Rmax >= its low``, ``Rmin <= its
  high``).

The bound holds whatever the accuracy of ``h``: a poor ``h`` only widens the interval. It is
exact up to the floating-point rounding of one matrix-vector product.

**Finding a good h.** The gain-bias equations ``g + h(s) = r(s) + sum_s' P(s, s') h(s')`` with
``h(s0) = 0`` of a DTMC (or of a scheduler's DTMC) are solved by a sparse LU factorisation
(scipy's SuperLU). For an MDP, policy iteration (Howard): evaluate the scheduler, switch every
state to its best choice for that ``h``, until the certified interval is narrow or the scheduler
stops changing. It starts from a scheduler Storm computed (its default solver, fast but not
sound), so one evaluation usually certifies it. Every scheduler of the models of
:mod:`formal.prism` has one recurrent class (with no arrivals for long enough, every queue empties
and every worker goes idle), where policy iteration is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = [
    "CertifiedAverage",
    "certified_long_run_averages",
    "certified_optimum",
    "choice_matrix",
]


@dataclass(frozen=True)
class CertifiedAverage:
    """A long-run average per tick within its certified interval ``[low, high]``.

    :ivar iterations: policy evaluations it took (1 for a DTMC).
    """

    low: float
    high: float
    iterations: int = 1

    @property
    def value(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)


@dataclass(frozen=True)
class ChoiceMatrix:
    """A Storm sparse model as scipy data: ``matrix`` (choices x states, CSR) and ``groups``
    (``groups[s]:groups[s + 1]`` are the choices of state s)."""

    matrix: sp.csr_matrix
    groups: np.ndarray
    start: int

    @property
    def n_states(self) -> int:
        return self.matrix.shape[1]

    def owner(self) -> np.ndarray:
        """State of every choice."""
        return np.repeat(np.arange(self.n_states), np.diff(self.groups))


def choice_matrix(model: Any) -> ChoiceMatrix:
    """The transition matrix of a Storm sparse DTMC or MDP (:class:`ChoiceMatrix`)."""
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
    if matrix.has_trivial_row_grouping:
        groups = np.arange(n + 1)
    else:
        groups = np.asarray([matrix.get_row_group_start(s) for s in range(n)] + [matrix.nr_rows])
    csr = sp.csr_matrix((np.asarray(vals), np.asarray(cols), np.asarray(indptr)), shape=(matrix.nr_rows, n))
    return ChoiceMatrix(csr, groups, int(model.initial_states[0]))


def _reward_vector(model: Any, name: str) -> np.ndarray:
    """Expected reward of every choice in one tick (state rewards plus the choice's reward)."""
    rewards = model.reward_models[name]
    vector = np.zeros(model.nr_choices)
    if rewards.has_state_rewards:
        state = np.asarray(rewards.state_rewards, dtype=float)
        matrix = model.transition_matrix
        counts = np.diff([matrix.get_row_group_start(s) for s in range(model.nr_states)] + [matrix.nr_rows])
        vector += np.repeat(state, counts)
    if rewards.has_state_action_rewards:
        vector += np.asarray(rewards.state_action_rewards, dtype=float)
    if rewards.has_transition_rewards:
        raise ValueError(f"reward structure {name!r} has transition rewards, which are not supported")
    return vector


class _Evaluator:
    """The gain-bias equations of one scheduler (a choice per state), factorised once."""

    def __init__(self, m: ChoiceMatrix, rows: np.ndarray) -> None:
        n = m.n_states
        self.p = m.matrix[rows]
        self.start = m.start
        system = (sp.identity(n, format="csc") - self.p.tocsc()).tolil()
        system[:, self.start] = np.ones((n, 1))  # the column of h(start) = 0 carries the gain
        self.lu = splu(system.tocsc(), permc_spec="COLAMD")

    def bias(self, r: np.ndarray) -> np.ndarray:
        h = self.lu.solve(r)
        h[self.start] = 0.0
        return h


def certified_long_run_averages(model: Any, names: list[str]) -> dict[str, CertifiedAverage]:
    """Long-run average per tick of each reward structure of ``names`` of a Storm sparse DTMC
    (one choice per state), each with its certified interval (module docstring)."""
    if model.nr_choices != model.nr_states:
        raise ValueError("certified_long_run_averages needs a DTMC (one choice per state)")
    m = choice_matrix(model)
    evaluator = _Evaluator(m, np.arange(m.n_states))
    out: dict[str, CertifiedAverage] = {}
    for name in names:
        r = _reward_vector(model, name)
        h = evaluator.bias(r)
        d = r + evaluator.p @ h - h
        out[name] = CertifiedAverage(float(d.min()), float(d.max()))
    return out


def certified_optimum(
    model: Any,
    name: str,
    maximise: bool,
    initial: np.ndarray | None = None,
    *,
    matrix: ChoiceMatrix | None = None,
    tolerance: float = 1e-9,
    max_iterations: int = 30,
) -> CertifiedAverage:
    """``Rmax`` (``maximise``) or ``Rmin`` of the long-run average of reward ``name`` over every
    scheduler of a Storm sparse MDP, as a certified interval, by policy iteration.

    :param initial: a first scheduler, the local choice index of every state (e.g. Storm's);
        default the first choice everywhere.
    :param matrix: the model's :func:`choice_matrix`, when already extracted.
    :param tolerance: stop once the interval is narrower than ``tolerance * max(1, |value|)``.
    :param max_iterations: at most this many policy evaluations; the interval is certified
        whatever the number.
    """
    m = matrix or choice_matrix(model)
    r = _reward_vector(model, name)
    owner = m.owner()
    local = np.zeros(m.n_states, dtype=int) if initial is None else np.asarray(initial, dtype=int)
    rows = m.groups[:-1] + local
    sign = 1.0 if maximise else -1.0
    best_low, best_high = -np.inf, np.inf
    iterations = 0
    for step in range(1, max_iterations + 1):
        iterations = step
        evaluator = _Evaluator(m, rows)
        h = evaluator.bias(r[rows])
        q = r + m.matrix @ h  # the value of every choice
        d_all = q - h[owner]
        d_own = d_all[rows]
        if maximise:  # Rmax in [this scheduler's low, max over every choice]
            best_low, best_high = max(best_low, float(d_own.min())), min(best_high, float(d_all.max()))
        else:  # Rmin in [min over every choice, this scheduler's high]
            best_low, best_high = max(best_low, float(d_all.min())), min(best_high, float(d_own.max()))
        if best_high - best_low <= tolerance * max(1.0, abs(best_high)):
            break
        # improve: in every state the best choice for this h, keeping the current one on ties
        scaled = sign * q
        group_best = np.maximum.reduceat(scaled, m.groups[:-1])
        slack = 1e-12 * max(1.0, float(np.abs(scaled).max()))
        better = scaled[rows] < group_best - slack
        if not better.any():
            break
        candidates = np.flatnonzero(scaled >= group_best[owner] - slack)
        first = np.full(m.n_states, -1)
        first[owner[candidates[::-1]]] = candidates[::-1]  # the first best choice of each state
        rows = np.where(better, first, rows)
    return CertifiedAverage(best_low, best_high, iterations)
