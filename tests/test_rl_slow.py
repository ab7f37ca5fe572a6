"""Learning to near-optimality (long: run with ``pytest -m slow``; about 15 min on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.checkpoint import RLScheduler, load_checkpoint
from agents.optimal import OptimalScheduler
from apps import train
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate


@pytest.mark.slow
def test_ppo_learns_within_two_percent_of_the_optimum_at_200_per_s(tmp_path: Path) -> None:
    argv = [
        "--algo",
        "ppo",
        "--env",
        "default",
        "--rate",
        "200",
        "-n",
        "400000",
        "--eval-freq",
        "100000",
        "--save-freq",
        "0",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
        "--verbose",
        "0",
    ]
    assert train.main(argv) == 0
    config = load_scenario("default").at_rate(200.0)
    agent = RLScheduler(load_checkpoint(tmp_path / "ppo_default_rate200_1" / "best_model.zip"), config)
    optimum = OptimalScheduler(config, 200.0)
    learned, best = [], []
    for seed in range(40_000, 40_006):  # fresh seeds, common to both
        learned.append(compute_metrics(simulate(config, agent, seed)).cost_per_request)
        best.append(compute_metrics(simulate(config, optimum, seed)).cost_per_request)
    gap = (np.mean(learned) - np.mean(best)) / np.mean(best)
    assert gap < 0.02, f"gap to the optimum {gap:+.2%}"
