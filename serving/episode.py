"""A replayed episode's answers in the shape :mod:`batchenv.metrics` reads from a simulator, so a
real server's run gets exactly the simulator's metrics (:func:`batchenv.metrics.compute_metrics`).

The rules are the simulator's, at the horizon ``H``: a request whose batch was dispatched before
``H`` is *served* with its full latency (completion - arrival, as measured by the server); an
admitted request not dispatched by ``H`` is *waiting* (censored); a request answered 429 is
*dropped*. A request that reaches the server at or after ``H`` (sent late by a starved client)
is left out (``n_after_horizon``), as the simulator has no arrival after ``H``. Utilisation counts
each worker's measured busy time in [0, H]. Times are the server's, in s from the start of its
episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from batchenv.config import SystemConfig
from batchenv.metrics import request_scores, request_table
from batchenv.sim import Batch

__all__ = ["MeasuredEpisode"]


class MeasuredEpisode:
    """The records and running totals of a :class:`batchenv.sim.Simulator` (``record=True``)
    after an episode of ``horizon_s``, built from a server's answers.

    :param config: the system served (qualities, reward weights, SLO).
    :param horizon_s: the episode's horizon H (s).
    :param answers: the 200 answers of :mod:`serving.server` (dicts with ``seq``,
        ``arrival_s``, ``batch``), one per admitted request, in any order.
    :param drop_times_s: arrival times (s) of the requests answered 429.
    """

    record = True

    def __init__(
        self,
        config: SystemConfig,
        horizon_s: float,
        answers: Sequence[dict[str, Any]],
        drop_times_s: Sequence[float],
    ) -> None:
        self.config = config
        self.n_workers = config.n_workers
        # a request sent before the horizon may reach the server after it (a late client): it is
        # not part of the episode [0, H), whose arrivals the simulator stops at H
        self.n_after_horizon = sum(a["arrival_s"] >= horizon_s for a in answers) + sum(
            t >= horizon_s for t in drop_times_s
        )
        answers = [a for a in answers if a["arrival_s"] < horizon_s]
        drop_times_s = [t for t in drop_times_s if t < horizon_s]
        self.now_s = float(horizon_s)
        self.slo_s = config.slo_ms / 1000.0  # a served episode keeps the system's SLO objective
        self.w_slo = config.reward.w_slo
        batches: dict[int, dict[str, Any]] = {}
        members: dict[int, list[dict[str, Any]]] = {}
        for answer in answers:
            batch = answer["batch"]
            batches.setdefault(batch["id"], batch)
            members.setdefault(batch["id"], []).append(answer)
        served_ids = sorted(
            (i for i, b in batches.items() if b["dispatch_s"] < horizon_s),
            key=lambda i: (batches[i]["dispatch_s"], i),
        )
        arrivals: list[float] = []
        self.batches: list[Batch] = []
        self.busy_s = [0.0] * config.n_workers
        self.free_at_s = [0.0] * config.n_workers
        self.served_per_model = [0] * config.n_models
        self.n_forced = 0
        for i in served_ids:
            batch, group = batches[i], sorted(members[i], key=lambda a: a["seq"])
            service = batch["completion_s"] - batch["dispatch_s"]
            model, worker = batch["model_index"], batch["worker"]
            self.batches.append(Batch(batch["dispatch_s"], service, model, len(group), worker, len(arrivals)))
            arrivals.extend(a["arrival_s"] for a in group)
            self.busy_s[worker] += service
            self.free_at_s[worker] = max(self.free_at_s[worker], batch["completion_s"])
            self.served_per_model[model] += len(group)
            self.n_forced += bool(batch["forced"])
        self.n_served = len(arrivals)
        waiting = sorted(
            (a for i, b in batches.items() if b["dispatch_s"] >= horizon_s for a in members[i]),
            key=lambda a: a["seq"],
        )
        arrivals.extend(a["arrival_s"] for a in waiting)
        self.admitted_arrivals_s = arrivals
        self.drop_times_s = sorted(float(t) for t in drop_times_s)
        self.n_dropped = len(self.drop_times_s)
        self.n_batches = len(self.batches)
        self.queue_len = len(waiting)
        self.n_arrived = len(arrivals) + self.n_dropped
        table = request_table(self)  # type: ignore[arg-type]
        latency = table.latency_s
        self.sum_latency_s = float(latency.sum())
        self.sum_quality = float(np.asarray(config.qualities)[table.model].sum())
        self.n_slo_misses = int(np.sum(table.arrival_s < table.completion_s - self.slo_s))
        self.total_reward = float(request_scores(self, table).sum())  # type: ignore[arg-type]
