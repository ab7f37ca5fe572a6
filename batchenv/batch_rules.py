"""Batching rules shared by the schedulers of :mod:`agents.baselines` and the discrete-time
policies of :mod:`formal.policies`, so that both decide by the same rule."""

from __future__ import annotations

__all__ = ["batch_due"]


def batch_due(queue_len: int, batch_size: int, clock: float, deadline: float) -> bool:
    """Is the batch due: ``batch_size`` requests wait, or the clock has reached the deadline?

    The rule of Triton's dynamic batcher (``preferred_batch_size``, ``max_queue_delay``) and of
    a static batch size with a timeout. The deadline is the moment the oldest waiting request
    has waited the queue delay, in the clock's units: in the simulator ``oldest_arrival_s +
    delay_s`` (s; the very sum the simulator wakes a timed wait at, so the comparison is exact),
    in the discrete-time model the delay in ticks, with the oldest request's age as the clock.

    :param queue_len: requests waiting.
    :param batch_size: requests that make a batch due (B).
    :param clock: the current time (s), or the oldest request's age (ticks).
    :param deadline: when the oldest request has waited the queue delay, in the same units.
    """
    return queue_len >= batch_size or clock >= deadline
