"""Seed conventions and seed lists typed on command lines.

Evaluation uses seeds 0..N-1; tuning (the baselines' grid search, the proposed scheduler's design
choices) uses :data:`TRAINING_SEEDS`, from 1000 up, so that nothing is tuned on the seeds it is
evaluated on.
"""

from __future__ import annotations

__all__ = ["CALIBRATION_SEED", "MAX_SEEDS", "TRAINING_SEEDS", "parse_seeds"]

TRAINING_SEEDS: tuple[int, ...] = (1000, 1001, 1002, 1003)
"""Seeds of the tuning episodes; evaluation seeds are 0..N-1 and must stay below 1000."""

CALIBRATION_SEED = 40_000
"""Seed of the Poisson episodes that calibrate a latency target offline (``agents.slo_target``):
one long episode per (rate, latency scale), apart from evaluation and tuning seeds."""

MAX_SEEDS = 100_000
"""Most seeds a seed list may hold (a longer one is a typing slip, not a plan)."""


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-9"``, ``"0,3,7"`` or ``"0-4,10-12"`` (ranges inclusive), in order given.

    :raises ValueError: with a message saying what was wrong.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"empty item in seed list {text!r}")
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(f"bad seed {part!r} in {text!r}: use integers like 0-9 or 0,3,7") from None
        if first < 0 or last < first:
            raise ValueError(f"bad seed range {part!r}: need 0 <= first <= last")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ValueError(f"too many seeds in {text!r}: at most {MAX_SEEDS}")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated seeds in {text!r}")
    return seeds
