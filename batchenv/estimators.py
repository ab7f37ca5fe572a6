"""Online estimates a real server can make: exponentially weighted rates from running counters."""

from __future__ import annotations

import math

__all__ = ["EwmaRate"]


class EwmaRate:
    """Exponentially weighted moving average of a rate, fed with a cumulative counter.

    Each :meth:`update` observes the counter at time ``t_s``; the increment since the previous
    update, divided by the elapsed time, is averaged with weight ``1 - exp(-dt / tau_s)``, so an
    interval's weight grows with its length (the estimate does not depend on how often it is
    updated within a constant-rate stretch). Starts at ``initial``.

    :param tau_s: time constant (s).
    :param initial: estimate before the first interval (units of the counter per second).
    """

    __slots__ = ("_count", "_t_s", "inv_tau", "value")

    def __init__(self, tau_s: float, initial: float = 0.0) -> None:
        if not tau_s > 0:
            raise ValueError(f"tau_s must be > 0, got {tau_s!r}")
        self.inv_tau = 1.0 / tau_s
        self.reset(initial)

    def reset(self, initial: float = 0.0, t_s: float = 0.0, count: float = 0.0) -> None:
        self.value = initial
        self._t_s = t_s
        self._count = count

    def update(self, t_s: float, count: float) -> float:
        """Observe the cumulative ``count`` at time ``t_s`` (s); returns the new estimate."""
        dt = t_s - self._t_s
        if dt > 0.0:
            weight = 1.0 - math.exp(-dt * self.inv_tau)
            self.value += weight * ((count - self._count) / dt - self.value)
            self._t_s = t_s
            self._count = count
        return self.value
