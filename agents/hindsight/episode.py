"""The hindsight bound of an evaluation episode, from its (config, seed) alone.

:func:`episode_arrivals` draws the arrivals exactly as :meth:`batchenv.sim.Simulator.reset` does
for ``simulate(config, policy, seed)`` (:func:`batchenv.sim.episode_arrivals_s`): a generator
``numpy.random.default_rng(seed)``, first the SLO objective when ``reward.slo_probability`` > 0,
then the episode's mean rate (a draw only with ``arrivals.rate_range_per_s``), then the stream,
cut at the horizon. Every agent evaluated on (config, seed) meets these arrivals, so its cost per request and
:func:`hindsight_cost_per_request` are comparable term by term.

An episode that draws its own SLO objective (``reward.slo_probability`` > 0) is charged with it:
its bound and penalty (:func:`episode_objective`, the simulator's own draw) replace the config's
in the bound, as in the agents' cost.
"""

from __future__ import annotations

import numpy as np

from agents.hindsight.bound import HindsightBound, hindsight_bound
from agents.hindsight.workers import DEFAULT_BEAM
from batchenv.arrivals import ArrivalProcess, make_arrival_process
from batchenv.config import SystemConfig
from batchenv.sim import Simulator, episode_arrivals_s

__all__ = ["episode_arrivals", "episode_bound", "episode_objective", "hindsight_cost_per_request"]


def episode_arrivals(
    config: SystemConfig,
    seed: int,
    *,
    horizon_s: float | None = None,
    arrival_process: ArrivalProcess | None = None,
) -> np.ndarray:
    """Arrival times (s) of the episode ``simulate(config, policy, seed)`` sees, before the
    horizon (:func:`batchenv.sim.episode_arrivals_s`). Shape (N,), sorted.

    :param seed: the episode's seed (as given to ``simulate`` or ``DynamicBatchingEnv.reset``).
    :param horizon_s: episode length (s); default ``config.horizon_s``.
    :param arrival_process: reuse an already built process (e.g. a loaded trace).
    """
    return episode_arrivals_s(config, seed, horizon_s, arrival_process=arrival_process)


def episode_objective(
    config: SystemConfig,
    seed: int,
    *,
    horizon_s: float | None = None,
    arrival_process: ArrivalProcess | None = None,
) -> tuple[float, float] | None:
    """The SLO bound (s) and penalty the episode ``simulate(config, policy, seed)`` is charged
    with, ``(sim.slo_s, sim.w_slo)`` as the simulator draws them at its start; None when the
    config draws no objective (``reward.slo_probability`` = 0: its own ``slo_ms`` and ``w_slo``)."""
    if config.reward.slo_probability <= 0.0:
        return None
    sim = Simulator(config, arrival_process=arrival_process)
    sim.reset(seed, horizon_s=horizon_s)
    return float(sim.slo_s), float(sim.w_slo)


def episode_bound(
    config: SystemConfig,
    seed: int,
    *,
    horizon_s: float | None = None,
    beam: int = DEFAULT_BEAM,
    projection: str = "sum",
) -> HindsightBound:
    """:func:`agents.hindsight.hindsight_bound` of the episode (config, seed); ``beam`` and
    ``projection``: with several workers, the states the schedule search keeps per request index
    and the fronts it keeps them on. An episode that draws its own SLO objective gets the bound
    under it (:func:`episode_objective`).

    :raises AssertionError: the bound above the schedule found, or a schedule found that breaks
        a rule (a bug; the message names the episode).
    """
    process = make_arrival_process(config)
    arrivals = episode_arrivals(config, seed, horizon_s=horizon_s, arrival_process=process)
    objective = episode_objective(config, seed, horizon_s=horizon_s, arrival_process=process)
    try:
        return hindsight_bound(
            config, arrivals, horizon_s=horizon_s, beam=beam, projection=projection, objective=objective
        )
    except AssertionError as exc:  # a bug of the programmes: say which episode shows it
        raise AssertionError(f"{config.name}, seed {seed}: {exc}") from exc


def hindsight_cost_per_request(config: SystemConfig, seed: int, *, horizon_s: float | None = None) -> float:
    """The hindsight lower bound of the episode (config, seed), per arrived request: no policy's
    ``EpisodeMetrics.cost_per_request`` on that episode is below it (best quality - total
    reward / arrived requests). NaN if nothing arrives.

    :param config: the scenario, with the horizon the episode runs (``config.horizon_s``).
    :param seed: the episode's seed.
    :param horizon_s: override ``config.horizon_s`` (as ``simulate(..., horizon_s=...)``).
    """
    return episode_bound(config, seed, horizon_s=horizon_s).lower_cost_per_request
