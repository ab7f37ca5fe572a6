"""The agent's actions: wait, or dispatch on a model (optionally with a batch size).

``Discrete(1 + M)`` with ``M`` models: ``0`` = wait, ``k`` = dispatch ``min(queue,
max_batch_size)`` oldest requests on model ``k - 1``. With ``env.batch_choice`` the space is
``Discrete(1 + M * S)`` over the sizes ``table sizes below max_batch_size, then max_batch_size``:
action ``1 + m * S + s`` dispatches ``min(sizes[s], queue)`` requests on model ``m``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from batchenv.config import SystemConfig
from batchenv.sim import Decision, Simulator

__all__ = ["ActionCodec"]


class ActionCodec:
    """Maps action indices to simulator decisions and back, and gives the valid-action mask."""

    def __init__(self, config: SystemConfig) -> None:
        table_sizes = [b for b in config.timing.batch_sizes if b < config.max_batch_size]
        self.batch_choice = config.env.batch_choice
        self.batch_sizes: tuple[int, ...] = (*table_sizes, config.max_batch_size)
        if self.batch_choice:
            self.decisions: list[Decision] = [
                None,
                *((m, b) for m in range(config.n_models) for b in self.batch_sizes),
            ]
        else:
            self.decisions = [None, *((m, config.max_batch_size) for m in range(config.n_models))]
        self.space = spaces.Discrete(len(self.decisions))

    def decision(self, action: int) -> Decision:
        """The decision ``None`` (wait) or ``(model, batch_size)`` that ``action`` stands for."""
        return self.decisions[action]

    def action_of(self, decision: Decision) -> int:
        """The action for ``decision``; a batch size is rounded up to the next action's size, and
        a timed wait (a float) is a plain wait, since the actions have no timer."""
        if decision is None or isinstance(decision, float):
            return 0
        model, size = decision
        if not self.batch_choice:
            return 1 + model
        sizes = self.batch_sizes
        index = next((i for i, b in enumerate(sizes) if b >= size), len(sizes) - 1)
        return 1 + model * len(sizes) + index

    def masks(self, sim: Simulator) -> np.ndarray:
        """Valid actions at the simulator's current epoch, shape (n_actions,), dtype bool: wait is
        invalid under the timeout shield; sizes beyond the first one that holds the whole queue
        are invalid."""
        mask = np.ones(self.space.n, dtype=bool)
        mask[0] = not sim.shielded
        if self.batch_choice:
            q = sim.queue_len
            sizes = self.batch_sizes
            n_sizes = len(sizes)
            for s in range(1, n_sizes):
                if sizes[s - 1] >= q:  # a smaller size already holds the whole queue
                    mask[1 + s :: n_sizes] = False
        return mask
