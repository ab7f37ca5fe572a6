"""The staggered-workers SMDP: the batching SMDP of several workers behind one queue, as if
the workers were perfectly staggered (the model behind the proposed scheduler's tables with
several workers, docs/algorithm.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from agents.smdp.model import SMDPModel, build_smdp, default_queue_cap
from batchenv.config import ArrivalConfig, EnvConfig, SystemConfig
from batchenv.timing import ServiceTable

__all__ = ["solver_system", "staggered_model"]


def solver_system(config: SystemConfig, model: int | None = None) -> SystemConfig:
    """The one-worker, Poisson, ``w_slo = 0`` system the SMDP solver accepts.

    Everything else (models, timing, rewards, ``max_batch_size``, ``queue_capacity``) is as in
    ``config``; the fields the SMDP does not read are set to fixed values, so that one system
    gives one cache entry.

    :param config: any system.
    :param model: keep only this model index (None: all models).
    """
    changes: dict[str, Any] = {
        "name": "proposed-table",
        "n_workers": 1,
        "arrivals": ArrivalConfig(),
        "reward": dataclasses.replace(config.reward, w_slo=0.0),
        "env": EnvConfig(),
        "horizon_s": 1.0,
        "max_wait_ms": 100.0,  # the SMDP has no request ages: its policy does not depend on it
        "latency_target": None,  # nor on an operator's target (agents.slo_target reads it)
    }
    if model is not None:
        changes["models"] = (config.models[model],)
    return dataclasses.replace(config, source_path=None, **changes)


def _scaled_timing(config: SystemConfig, factor: float) -> SystemConfig:
    """``config`` with every per-batch time (pre, comm, inference, post) multiplied by ``factor``."""
    timing = config.timing
    return config.replace(
        timing=dataclasses.replace(
            timing,
            comm_ms=tuple(c * factor for c in timing.comm_ms),
            t_pre_ms=timing.t_pre_ms * factor,
            t_post_ms=timing.t_post_ms * factor,
        ),
        models=tuple(
            dataclasses.replace(m, inference_ms=tuple(x * factor for x in m.inference_ms))
            for m in config.models
        ),
    )


def staggered_model(
    config: SystemConfig, rate_per_s: float, n_workers: int, action_set: str = "any"
) -> SMDPModel:
    """Build the batching SMDP of ``n_workers`` workers behind one queue, perfectly staggered.

    Each worker frees up ``1 / n`` of a service time after the previous one. A dispatch of b on
    model m, service s, then leads to the next decision epoch after ``s / n`` (not s), with
    ``Poisson(rate * s / n)`` arrivals in between; the leftover and the new arrivals wait
    ``s / n`` for the next worker; the batch's own requests still take s.

    This is the one-worker SMDP of :func:`agents.smdp.build_smdp` with every service time divided
    by n (sojourns, arrival counts and waiting areas) and the batch's own latency term corrected
    back to s: ``- w_lat * b * s * (1 - 1 / n)`` per dispatch. With n = 1 it is exactly the
    one-worker SMDP.

    :param config: the system (its ``n_workers`` is ignored; models, timing and rewards used).
    :param rate_per_s: total arrival rate (requests/s).
    :param n_workers: number of workers n >= 1.
    :returns: the :class:`~agents.smdp.SMDPModel` of the scaled system with the corrected
        rewards.
    """
    base = solver_system(config)
    scaled = _scaled_timing(base, 1.0 / n_workers)
    cap = default_queue_cap(scaled, rate_per_s)
    model = build_smdp(scaled, rate_per_s, cap, action_set)
    service_s = ServiceTable(base).service_ms[:, 1:].reshape(-1) / 1000.0
    batch = np.tile(np.arange(1, base.max_batch_size + 1), base.n_models)
    correction = base.reward.w_latency_per_s * batch * service_s * (1.0 - 1.0 / n_workers)
    reward = model.reward.copy()
    reward[:, 1:] -= correction[None, :]
    return dataclasses.replace(model, reward=reward)
