"""Scheduling policies of the discrete-time model, as pure functions of its state.

A policy of the model decides at ticks where a worker is idle and requests wait. It sees the
queue length ``q`` and the oldest request's age ``a`` in ticks (see :mod:`formal.discrete`) and
returns a :data:`batchenv.sim.Decision`: ``None`` (wait) or ``(model, batch_size)`` (dispatch the
``min(q, batch_size, max_batch_size)`` oldest requests on that model). The timeout shield is
applied on top (:func:`shielded_decision`): a wait at ``a >= max_age_ticks`` becomes a dispatch of
``min(q, max_batch_size)`` on the policy's ``forced_model``.

The baseline families live here as pure functions so that the formal models do not depend on
``agents/``: greedy, static(B), timeout(B, T) (with optional queue thresholds that switch to
faster models, the brief's "choose the model depending on utilisation"), and table policies
(any policy evaluated on every state, e.g. one distilled from a :class:`agents.base.Scheduler`
with :func:`distill`, or the optimal scheduler computed by Storm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from batchenv.batch_rules import batch_due
from batchenv.config import ConfigError, SystemConfig
from batchenv.sim import Decision, Simulator
from formal.discrete import TickModel

__all__ = [
    "DiscretePolicy",
    "GreedyPolicy",
    "StaticPolicy",
    "TablePolicy",
    "TimeoutPolicy",
    "decision_states",
    "distill",
    "policy_table",
    "raw_decision",
    "shielded_decision",
]


def _check_model(config: SystemConfig, field_name: str, model: int) -> int:
    if isinstance(model, bool) or not isinstance(model, int) or not 0 <= model < config.n_models:
        raise ConfigError(field_name, f"must be a model index in [0, {config.n_models - 1}], got {model!r}")
    return model


def _check_batch(config: SystemConfig, field_name: str, batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= config.max_batch_size:
        raise ConfigError(
            field_name, f"must be an integer in [1, {config.max_batch_size}] (requests), got {batch!r}"
        )
    return batch


class DiscretePolicy:
    """Base class: a deterministic policy over (queue length, oldest age in ticks).

    :ivar name: short name for tables.
    :ivar forced_model: model the timeout shield dispatches on when the policy waits too long.
    """

    name = "policy"
    forced_model = 0

    def decide(self, queue: int, age_ticks: int, model: TickModel) -> Decision:
        """Decision at a tick with an idle worker and ``queue >= 1`` waiting requests."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class GreedyPolicy(DiscretePolicy):
    """Dispatch everything waiting as soon as a worker is idle, on one model."""

    model: int = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"greedy(m={self.model})"

    @property
    def forced_model(self) -> int:  # type: ignore[override]
        return self.model

    def decide(self, queue: int, age_ticks: int, model: TickModel) -> Decision:
        return (self.model, model.max_batch)


@dataclass(frozen=True)
class StaticPolicy(DiscretePolicy):
    """Fixed batch size (as :class:`agents.baselines.Static`): dispatch ``batch`` requests once
    that many wait; when the oldest has waited max_wait (``a >= max_age_ticks``), dispatch what
    waits (at most ``batch``)."""

    batch: int = 8
    model: int = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"static(B={self.batch},m={self.model})"

    @property
    def forced_model(self) -> int:  # type: ignore[override]
        return self.model

    def decide(self, queue: int, age_ticks: int, model: TickModel) -> Decision:
        if batch_due(queue, self.batch, age_ticks, model.max_age_ticks):
            return (self.model, self.batch)
        return None


@dataclass(frozen=True)
class TimeoutPolicy(DiscretePolicy):
    """Triton's dynamic batcher (as :class:`agents.baselines.Timeout`): once ``batch`` requests
    wait or the oldest has waited ``timeout_ms``, dispatch everything waiting, up to
    ``max_batch``.

    :param batch: B, the number of waiting requests that triggers a dispatch
        (``preferred_batch_size``).
    :param timeout_ms: T (ms), compared with the age in whole ticks (``max_queue_delay_ms``).
    :param models: model indices; ``models[i]`` is used when ``thresholds[i-1] <= q <
        thresholds[i]`` (one model and no thresholds: a fixed model).
    :param thresholds: increasing queue lengths at which the next model of ``models`` is used
        (the brief's "choose the model depending on utilisation", without hysteresis).
    :param max_batch: largest batch; None = the system's ``max_batch_size``.
    """

    batch: int = 8
    timeout_ms: float = 10.0
    models: tuple[int, ...] = (0,)
    thresholds: tuple[int, ...] = ()
    max_batch: int | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        models = ",".join(str(m) for m in self.models)
        switch = f",q>={'/'.join(str(t) for t in self.thresholds)}" if self.thresholds else ""
        cap = f",max={self.max_batch}" if self.max_batch is not None else ""
        return f"timeout(B={self.batch},T={self.timeout_ms:g}ms,m={models}{switch}{cap})"

    @property
    def forced_model(self) -> int:  # type: ignore[override]
        return self.models[0]

    def validate(self, config: SystemConfig) -> TimeoutPolicy:
        """Check the parameters against ``config``; ConfigError naming the field otherwise."""
        _check_batch(config, "timeout.batch", self.batch)
        if self.max_batch is not None:
            _check_batch(config, "timeout.max_batch", self.max_batch)
            if self.max_batch < self.batch:
                raise ConfigError(
                    "timeout.max_batch", f"must be >= batch ({self.batch}), got {self.max_batch}"
                )
        timeout = self.timeout_ms
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 <= timeout <= config.max_wait_ms
        ):
            raise ConfigError(
                "timeout.timeout_ms", f"must be in [0, {config.max_wait_ms:g}] (ms), got {timeout!r}"
            )
        if not self.models or len(self.models) != len(self.thresholds) + 1:
            raise ConfigError(
                "timeout.models",
                f"must have one more entry than thresholds ({len(self.thresholds)}), got {self.models!r}",
            )
        for i, m in enumerate(self.models):
            _check_model(config, f"timeout.models[{i}]", m)
        for i, t in enumerate(self.thresholds):
            low = self.thresholds[i - 1] + 1 if i else 1
            if isinstance(t, bool) or not isinstance(t, int) or t < low:
                raise ConfigError(f"timeout.thresholds[{i}]", f"must be an integer >= {low}, got {t!r}")
        return self

    def model_for(self, queue: int) -> int:
        return self.models[sum(1 for t in self.thresholds if queue >= t)]

    def decide(self, queue: int, age_ticks: int, model: TickModel) -> Decision:
        if batch_due(queue, self.batch, age_ticks, model.ticks_of(self.timeout_ms)):
            cap = model.max_batch if self.max_batch is None else self.max_batch
            return (self.model_for(queue), cap)
        return None


@dataclass(frozen=True)
class TablePolicy(DiscretePolicy):
    """A policy given by its decision in every (queue, age) state of a model; states missing from
    the table wait.

    :param label: name for tables.
    :param table: ``{(q, a): decision}``.
    :param forced: model the shield uses.
    """

    label: str
    table: Mapping[tuple[int, int], Decision] = field(repr=False)
    forced: int = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def forced_model(self) -> int:  # type: ignore[override]
        return self.forced

    def decide(self, queue: int, age_ticks: int, model: TickModel) -> Decision:
        return self.table.get((queue, age_ticks))


def decision_states(model: TickModel) -> Iterator[tuple[int, int]]:
    """Every (queue, age) where a policy of ``model`` can be asked to decide (q >= 1, age up to
    the shield's limit)."""
    for q in range(1, model.queue_cap + 1):
        for a in range(model.max_age_ticks + 1):
            yield q, a


def shielded_decision(policy: DiscretePolicy, queue: int, age_ticks: int, model: TickModel) -> Decision:
    """The policy's decision with the timeout shield applied, normalised to ``(model, b)`` with
    ``b = min(queue, batch, max_batch)`` the batch actually dispatched, or None."""
    decision = policy.decide(queue, age_ticks, model)
    if decision is None:
        if age_ticks < model.max_age_ticks:
            return None
        decision = (policy.forced_model, model.max_batch)
    m, b = decision
    if not 0 <= m < model.n_models or b < 1:
        raise ValueError(f"{policy.name}: invalid decision {decision!r} at q={queue}, a={age_ticks}")
    return (m, min(queue, b, model.max_batch))


def raw_decision(policy: DiscretePolicy, queue: int, age_ticks: int, model: TickModel) -> Decision:
    """The policy's own decision, without the shield, normalised as in :func:`shielded_decision`;
    at ``a = max_age_ticks + 1`` (after a violation, outside every table) the shield's dispatch."""
    if age_ticks > model.max_age_ticks:
        return shielded_decision(policy, queue, model.max_age_ticks, model) or (
            policy.forced_model,
            min(queue, model.max_batch),
        )
    decision = policy.decide(queue, age_ticks, model)
    if decision is None:
        return None
    m, b = decision
    if not 0 <= m < model.n_models or b < 1:
        raise ValueError(f"{policy.name}: invalid decision {decision!r} at q={queue}, a={age_ticks}")
    return (m, min(queue, b, model.max_batch))


def policy_table(
    policy: DiscretePolicy, model: TickModel, *, shield: bool = True
) -> dict[tuple[int, int], Decision]:
    """The decision of ``policy`` in every decision state of ``model``: shielded (default), or
    its raw table (:func:`raw_decision`), which also covers ``a = max_age_ticks + 1``."""
    if shield:
        return {(q, a): shielded_decision(policy, q, a, model) for q, a in decision_states(model)}
    states = [*decision_states(model), *((q, model.max_age_ticks + 1) for q in range(1, model.queue_cap + 1))]
    return {(q, a): raw_decision(policy, q, a, model) for q, a in states}


_PROBE_HORIZON_S = 1e9
"""A probe's episode never ends on its own: it stops at the probe state."""


def _probe_arrivals(times: list[float]) -> Iterator[np.ndarray]:
    yield np.asarray(times, dtype=float)
    while True:
        yield np.array([1e12])


def steady_state_utilisation(
    policy: Callable[[Simulator], Decision], config: SystemConfig, rate_per_s: float, horizon_s: float = 30.0
) -> float:
    """Utilisation (busy fraction, [0, 1]) of ``policy`` over one simulated episode of
    ``horizon_s`` seconds of Poisson arrivals at ``rate_per_s`` (seed 0)."""
    from batchenv.metrics import compute_metrics
    from batchenv.sim import simulate

    episode = config.at_rate(rate_per_s).replace(horizon_s=horizon_s)
    return float(compute_metrics(simulate(episode, policy, 0)).utilisation)


def distill(
    policy: Callable[[Simulator], Decision],
    model: TickModel,
    name: str | None = None,
    *,
    forced_model: int | None = None,
) -> TablePolicy:
    """Turn a scheduler over the simulator (:data:`batchenv.sim.Policy`, e.g. an
    :class:`agents.base.Scheduler`) into a :class:`TablePolicy` over the model's states.

    Each decision state (q, a) is probed on a fresh simulator (one worker, idle) holding ``q``
    requests, the oldest ``a`` ticks old and the others spread evenly up to now, with the episode
    rate set to the model's rate. A scheduler with a ``reset(sim)`` method is reset before each
    probe. A scheduler whose observation keeps running estimates (``prime_estimates(sim, rate,
    utilisation)``, e.g. a trained agent's arrival-rate and utilisation EWMAs) has them set to
    the model's rate and to the utilisation the scheduler itself reaches at that rate
    (:func:`steady_state_utilisation`): in a probe they would otherwise see only the probe's few
    arrivals. Batch sizes are kept; a decision the simulator would reject raises ValueError.

    :param policy: the scheduler.
    :param model: the discrete model (one worker).
    :param name: table name; default the scheduler's ``describe()`` or class name.
    :param forced_model: model of the shield's forced dispatches; default the model the table
        uses most.
    """
    if model.n_workers != 1:
        raise ConfigError("n_workers", f"distill supports 1 worker, got {model.n_workers}")
    sim = Simulator(model.config, record=False)
    reset = getattr(policy, "reset", None)
    prime = getattr(policy, "prime_estimates", None)
    utilisation = steady_state_utilisation(policy, model.config, model.rate_per_s) if callable(prime) else 0.0
    table: dict[tuple[int, int], Decision] = {}
    counts = [0] * model.n_models
    tick_s = model.tick_s
    for q, a in decision_states(model):
        span = min(a * tick_s, sim.max_wait_s)
        times = [span * i / (q - 1) for i in range(q - 1)] + [span] if q > 1 else [0.0]
        sim.reset(arrivals=_probe_arrivals(times), horizon_s=_PROBE_HORIZON_S)
        # Wait (with a timer at `span`, for one request that has waited that long) until the
        # probe state is reached.
        while not sim.done and (sim.queue_len < q or sim.now_s < span - 1e-12):
            sim.wait(span)
        if sim.queue_len != q or abs(sim.oldest_wait_s - span) > 1e-9 or sim.n_served:
            raise RuntimeError(f"probe failed to reach q={q}, a={a}")
        sim.episode_rate_per_s = model.rate_per_s
        if callable(reset):
            reset(sim)
        if callable(prime):
            prime(sim, model.rate_per_s, utilisation)
        decision = policy(sim)
        if isinstance(decision, float):  # a timed wait
            decision = None
        if decision is not None:
            m, b = int(decision[0]), int(decision[1])
            if not 0 <= m < model.n_models or b < 1:
                raise ValueError(f"{name or policy!r}: invalid decision {decision!r} at q={q}, a={a}")
            decision = (m, min(b, model.max_batch))
            counts[m] += 1
        table[(q, a)] = decision
    if name is None:
        describe = getattr(policy, "describe", None)
        name = describe() if callable(describe) else type(policy).__name__
    forced = int(np.argmax(counts)) if forced_model is None else forced_model
    return TablePolicy(f"{name} (table)", table, forced)
