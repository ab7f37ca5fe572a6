"""The workload a replay sends: the simulator's arrival times for a seed, and request texts.

Nothing here needs the server's dependencies, so the simulator side of a comparison can use it.
"""

from __future__ import annotations

import numpy as np

from batchenv.arrivals import episode_rate_per_s, make_arrival_process
from batchenv.config import SystemConfig

__all__ = ["episode_arrivals_s", "request_texts"]

_VOCABULARY = (
    "batch queue model token latency server request answer window timeout worker stream "
    "sequence layer encoder attention prompt result quality budget"
)
"""The words request texts are made of (space-separated)."""


def episode_arrivals_s(
    config: SystemConfig, seed: int, horizon_s: float, max_count: int | None = None
) -> np.ndarray:
    """Arrival times (s) in [0, horizon_s) of episode ``seed``: the simulator's
    (:meth:`batchenv.sim.Simulator.reset` draws the episode's rate, then the stream, from
    ``numpy.random.default_rng(seed)``; so does this).

    :param max_count: stop drawing as soon as there are more arrivals than this (memory).
    :raises ValueError: more than ``max_count`` arrivals in [0, horizon_s).
    """
    rng = np.random.default_rng(seed)
    rate = episode_rate_per_s(config, rng)
    chunks, count = [], 0
    for chunk in make_arrival_process(config).stream(rng, rate):
        chunks.append(chunk[chunk < horizon_s])
        count += len(chunks[-1])
        if max_count is not None and count > max_count:
            raise ValueError(f"episode {seed} has more than {max_count} arrivals in {horizon_s:g} s")
        if chunk[-1] >= horizon_s:
            break
    return np.concatenate(chunks)


def request_texts(seed: int, count: int) -> list[str]:
    """``count`` request texts (4 to 40 words) drawn from their own generator for ``seed``, not
    the arrivals' one, so the arrivals stay the simulator's."""
    vocabulary = _VOCABULARY.split()
    rng = np.random.default_rng([seed, 7])
    lengths = rng.integers(4, 41, count)
    words = rng.integers(0, len(vocabulary), int(lengths.sum()))
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(vocabulary[w] for w in words[start : start + length]))
        start += length
    return texts
