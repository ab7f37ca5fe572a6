"""The shipped checkpoints load, carry their metrics card, and schedule well on the default system.

Both are trained on ``default_randomised`` (the default system with a rate drawn from 10-500
requests/s per episode). On that scenario they must beat greedy by a wide margin (greedy does not
batch, so it overloads above ~110 requests/s). Against the exact optimum they are tested where
batching and the model choice matter: at 200 requests/s (the optimum sends LLM-1, LLM-2 or LLM-3
by queue length) and 300 requests/s (it waits for a second request and batches on LLM-3); at
100 requests/s greedy alone is within 0.1% of the optimum, which would test nothing.

Measured with this file's settings (6 seeds x 60 s, the same arrivals for every scheduler), cost
per request over the optimum's: PPO +3.79% and DQN +2.36% at 200/s, PPO +0.42% and DQN +0.51% at
300/s; greedy costs +98% at 200/s and 32 times the optimum at 300/s. The bounds below hold these
figures with a margin; at 200/s they are wider than the 2% learning goal of docs/rl.md, which the
shipped checkpoints do not reach there.

The two checkpoints trained on the workload mixture (``*_default_mixture.zip``) are held to that
learning goal instead: within 2% of the better of greedy and the tuned timeout (:data:`MIXTURE`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from agents.baselines import Greedy
from agents.checkpoint import RLScheduler, load_checkpoint
from agents.optimal import OptimalScheduler
from agents.registry import NotApplicableError, make_agent
from batchenv.metrics import compute_metrics
from batchenv.scenarios import load_scenario
from batchenv.sim import simulate

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = ("ppo_default.zip", "dqn_default.zip")
SEEDS = range(6)


def _costs(config, scheduler) -> np.ndarray:
    """Cost per request (lower is better) of ``scheduler`` on seeds ``SEEDS``, shape (len(SEEDS),)."""
    return np.array([compute_metrics(simulate(config, scheduler, seed)).cost_per_request for seed in SEEDS])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_is_complete(name: str) -> None:
    path = CHECKPOINTS / name
    checkpoint = load_checkpoint(path)
    assert checkpoint.config.name == "default_randomised"
    assert checkpoint.config.arrivals.rate_range_per_s == (10.0, 500.0)
    assert checkpoint.meta["timesteps"] >= 500_000
    card = path.with_suffix(".md")
    assert card.is_file(), "every shipped checkpoint has its metrics card"
    assert f"{checkpoint.meta['timesteps']:,}" in card.read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_beats_greedy_on_the_randomised_default(name: str) -> None:
    config = load_scenario("default_randomised").replace(horizon_s=60.0)
    agent = RLScheduler(load_checkpoint(CHECKPOINTS / name), config)
    learned, greedy = _costs(config, agent), _costs(config, Greedy(config))
    # same seeds, same rates and arrivals: lower cost than greedy on average, never much worse
    assert learned.mean() < 0.5 * greedy.mean(), (learned, greedy)
    assert np.all(learned <= greedy * 1.01), (learned, greedy)


NEAR_OPTIMUM = {200.0: 1.06, 300.0: 1.01}
"""Largest cost of a shipped checkpoint, as a multiple of the optimum's, per arrival rate (1/s)."""


@pytest.mark.parametrize("rate", sorted(NEAR_OPTIMUM))
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_is_near_the_optimum_where_decisions_matter(name: str, rate: float) -> None:
    config = load_scenario("default").at_rate(rate).replace(horizon_s=60.0)
    agent = RLScheduler(load_checkpoint(CHECKPOINTS / name), config)
    learned, optimum = _costs(config, agent), _costs(config, OptimalScheduler(config))
    greedy = _costs(config, Greedy(config))
    assert learned.mean() <= NEAR_OPTIMUM[rate] * optimum.mean(), (learned.mean(), optimum.mean())
    # greedy never waits and stays on LLM-1: the learned policy batches and switches models
    assert np.all(learned < 0.6 * greedy), (learned, greedy)


MIXTURE = ("ppo_default_mixture.zip", "dqn_default_mixture.zip")
"""The checkpoints trained on the workload mixture (``default_mixture``: log-uniform rates, MMPP and
trace segments of the training halves); docs/rl.md says how each was chosen among three seeds."""


@pytest.mark.parametrize("name", MIXTURE)
def test_mixture_checkpoint_is_complete_and_listed(name: str) -> None:
    path = CHECKPOINTS / name
    checkpoint = load_checkpoint(path)
    assert checkpoint.config.name == "default_mixture"
    assert checkpoint.config.arrivals.process == "mixture"
    assert checkpoint.meta["timesteps"] >= 500_000
    card = path.with_suffix(".md")
    assert card.is_file(), "every shipped checkpoint has its metrics card"
    assert f"{checkpoint.meta['timesteps']:,}" in card.read_text()
    listed = (CHECKPOINTS / "SHA256SUMS").read_text().split()
    assert name in listed, "verify.py and the loaders trust only the files the manifest lists"


@pytest.mark.parametrize("scenario", ["poisson_rate_10", "default", "poisson_50", "bursty"])
@pytest.mark.parametrize("name", MIXTURE)
def test_mixture_checkpoint_is_within_two_percent_of_the_baselines(name: str, scenario: str) -> None:
    """The learning goal (docs/rl.md): never more than 2% above the better of greedy and the tuned
    timeout, here at a low rate, the default load, 288 requests/s and on bursts (6 seeds x 60 s;
    measured: PPO +0.00%, +0.82%, -0.24%, -9.93%; DQN +0.00%, +0.78%, -0.16%, -10.45%)."""
    config = load_scenario(scenario).replace(horizon_s=60.0)
    agent = RLScheduler(load_checkpoint(CHECKPOINTS / name), config)
    baseline = min(_costs(config, make_agent(a, config)).mean() for a in ("greedy", "timeout"))
    assert _costs(config, agent).mean() <= 1.02 * baseline


@pytest.mark.parametrize("name", [*MIXTURE, *SHIPPED])
def test_a_card_measures_every_scenario_on_as_many_requests_as_the_assessment(name: str) -> None:
    """A card's scores come from ``evaluate.py --min-requests`` with at least the learning
    assessment's number of requests, and say which scenarios got more seeds: ten 60 s episodes of
    ``bursty_low`` (about 1,500 requests) put a learned model or `proposed` from -16% to +17% off the tuned
    timeout (docs/results/learning_bursts.md), so a card never quotes a figure from so few."""
    from benchmarks.learning import MIN_REQUESTS

    text = (CHECKPOINTS / name).with_suffix(".md").read_text()
    (command,) = re.findall(r"Produced by `(python evaluate\.py [^`]*)`", text)
    argv = shlex.split(command)
    assert "--min-requests" in argv, command
    min_requests = int(argv[argv.index("--min-requests") + 1])
    assert min_requests >= MIN_REQUESTS
    rate = load_scenario("bursty_low").arrivals.mean_rate_per_s
    episodes = math.ceil(min_requests / (rate * load_scenario("bursty_low").horizon_s))
    assert f"bursty_low 0-{episodes - 1} ({episodes} per cell)" in text


def test_a_one_worker_checkpoint_does_not_apply_to_two_workers() -> None:
    with pytest.raises(NotApplicableError, match=r"trained with 8 observations .* 'multi_gpu' has 9"):
        make_agent(str(CHECKPOINTS / "ppo_default.zip"), load_scenario("multi_gpu"))


def test_the_agent_observes_with_its_own_env_options() -> None:
    """The rate-estimate time constant is part of the agent (the checkpoint's config), not of the
    scenario it is evaluated on: the same arrivals give the same decisions."""
    checkpoint = load_checkpoint(CHECKPOINTS / "ppo_default.zip")
    config = load_scenario("default").replace(horizon_s=10.0)
    other = config.replace(env=dataclasses.replace(config.env, rate_ewma_tau_s=8.0))
    runs = [compute_metrics(simulate(c, RLScheduler(checkpoint, c), 3)) for c in (config, other)]
    assert runs[0].cost_per_request == runs[1].cost_per_request
    assert runs[0].n_batches == runs[1].n_batches
