"""The workload a replay sends: the simulator's arrival times for a seed, and request texts.

Nothing here needs the server's dependencies, so the simulator side of a comparison can use it.
"""

from __future__ import annotations

import numpy as np

from batchenv.sim import episode_arrivals_s  # the simulator's arrivals for a seed (re-exported)

__all__ = ["DEFAULT_DRAIN_TIMEOUT_S", "DEFAULT_MAX_REQUESTS", "episode_arrivals_s", "request_texts"]

DEFAULT_MAX_REQUESTS = 200_000
"""A replay refuses an episode with more arrivals than this (the load generator's default)."""
DEFAULT_DRAIN_TIMEOUT_S = 60.0
"""After the last arrival, a replay waits this long (s) for the answers (the default)."""

_VOCABULARY = (
    "batch queue model token latency server request answer window timeout worker stream "
    "sequence layer encoder attention prompt result quality budget"
)
"""The words request texts are made of (space-separated)."""


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
