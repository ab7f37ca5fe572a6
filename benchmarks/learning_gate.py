"""The shipping gate of ``benchmarks/learning.py``: the thresholds of
``tests/test_checkpoints.py`` applied to any checkpoint, so that a retrained agent replaces a
shipped one only if it passes the tests the shipped one passes.

Three checks, on the tests' seeds (0-5) and 60 s episodes, every scheduler on the same arrivals:

- ``randomised``: on ``default_randomised`` the mean cost is below half of greedy's and no seed
  costs more than 1.01 x greedy's on that seed;
- ``rate_200`` and ``rate_300``: on the default system at 200 and 300 requests/s the mean cost is
  at most :data:`NEAR_OPTIMUM` x the optimum's, and every seed costs less than 0.6 x greedy's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import Greedy
from agents.checkpoint import RLScheduler, load_checkpoint
from agents.optimal import OptimalScheduler
from batchenv.config import SystemConfig
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate

__all__ = ["NEAR_OPTIMUM", "SEEDS", "gate"]

SEEDS = range(6)
"""The seeds of tests/test_checkpoints.py."""
NEAR_OPTIMUM = {200.0: 1.06, 300.0: 1.01}
"""Largest mean cost, as a multiple of the optimum's, per arrival rate (requests/s), as in
tests/test_checkpoints.py."""
HORIZON_S = 60.0


def _costs(config: SystemConfig, scheduler: Any) -> np.ndarray:
    """Cost per request on :data:`SEEDS`, shape (6,)."""
    return np.array([compute_metrics(simulate(config, scheduler, seed)).cost_per_request for seed in SEEDS])


def _references() -> dict[str, dict[str, Any]]:
    """Greedy's (and the optimum's) costs for every check, computed once per process."""
    randomised = load_scenario("default_randomised").replace(horizon_s=HORIZON_S)
    refs: dict[str, dict[str, Any]] = {
        "randomised": {"config": randomised, "greedy": _costs(randomised, Greedy(randomised))}
    }
    for rate in NEAR_OPTIMUM:
        config = load_scenario("default").at_rate(rate).replace(horizon_s=HORIZON_S)
        refs[f"rate_{rate:g}"] = {
            "config": config,
            "greedy": _costs(config, Greedy(config)),
            "optimal": _costs(config, OptimalScheduler(config)),
        }
    return refs


_REFERENCES: dict[str, dict[str, Any]] = {}


def gate(path: str | Path) -> dict[str, Any]:
    """The checks of the checkpoint at ``path``: per check its ratios and whether it passes,
    and ``passes`` (all of them)."""
    if not _REFERENCES:
        _REFERENCES.update(_references())
    checkpoint = load_checkpoint(Path(path))
    out: dict[str, Any] = {}
    ref = _REFERENCES["randomised"]
    learned = _costs(ref["config"], RLScheduler(checkpoint, ref["config"]))
    ratio, worst = float(learned.mean() / ref["greedy"].mean()), float(np.max(learned / ref["greedy"]))
    out["randomised"] = {
        "mean_over_greedy": ratio,
        "worst_seed_over_greedy": worst,
        "passes": ratio < 0.5 and worst <= 1.01,
    }
    for rate, limit in NEAR_OPTIMUM.items():
        ref = _REFERENCES[f"rate_{rate:g}"]
        learned = _costs(ref["config"], RLScheduler(checkpoint, ref["config"]))
        over = float(learned.mean() / ref["optimal"].mean())
        below_greedy = bool(np.all(learned < 0.6 * ref["greedy"]))
        out[f"rate_{rate:g}"] = {
            "mean_over_optimal": over,
            "limit": limit,
            "below_0.6_greedy": below_greedy,
            "passes": over <= limit and below_greedy,
        }
    out["passes"] = all(check["passes"] for check in out.values() if isinstance(check, dict))
    return out
