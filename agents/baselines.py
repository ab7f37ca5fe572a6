"""Baseline schedulers: today's practice, each a :class:`~agents.base.Scheduler`.

==============  =============================================================================
greedy          dispatch everything waiting (up to max_batch_size) at once, on a fixed model
static(B)       dispatch exactly B requests once B wait, or what waits at the system timeout
timeout(B, T)   Triton / TorchServe dynamic batcher: dispatch when B requests wait
                (``preferred_batch_size``) or the oldest has waited T ms (``max_queue_delay_ms``)
aimd            Clipper: dispatch at once with a batch cap; the cap grows additively while batch
                processing latency stays within the SLO and shrinks multiplicatively on a miss
util_switch     timeout(B, T) whose model steps down LLM-1 -> LLM-2 -> LLM-3 as queue length or
                utilisation cross thresholds, and back up with hysteresis
==============  =============================================================================

All of them decide from the raw simulator state in a few attribute reads (the fast path,
``batchenv.sim.simulate(config, scheduler, seed)``) and through a bound environment with
:meth:`predict` (SB3's signature). Timed policies wait with a timer (a float decision, see
:mod:`batchenv.sim`), so they wake up exactly when their queue delay expires; every baseline
dispatches by itself at ``max_wait_ms`` at the latest, so it is never a forced dispatch.

The environment's actions have no timer: through :meth:`predict`, a timed wait is action 0 (wait
for the next event), so a timed policy acts at the first event after its delay there. Its
decisions equal the fast path's whenever its delay is ``max_wait_ms`` (the simulator's own
wake-up) or it never waits. A dispatch goes through the env's action space too: the whole queue,
or with ``env.batch_choice`` a table batch size (rounded up), so ``static(B)`` matches its fast
path with ``batch_choice`` and B a table size, and ``aimd``'s caps are rounded up to a table size.

Parameter names follow Triton's ``dynamic_batching`` block; times are in ms in parameters and
in s inside the simulator. Every scheduler's :meth:`params` returns keyword arguments of its
constructor, so ``type(s)(config, **s.params())`` rebuilds it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

from agents.base import Scheduler
from batchenv.batch_rules import batch_due
from batchenv.config import SystemConfig
from batchenv.estimators import EwmaRate
from batchenv.sim import Decision, Simulator

__all__ = ["BASELINES", "Aimd", "Baseline", "Greedy", "Static", "Timeout", "UtilSwitch"]


class Baseline(Scheduler):
    """Base of the baselines (today's practice), as opposed to the optimum and learned agents."""


def _best_model(config: SystemConfig) -> str:
    """Name of the highest-quality model (the first one on ties)."""
    qualities = config.qualities
    return config.model_names[qualities.index(max(qualities))]


def _model_index(config: SystemConfig, model: str | int) -> int:
    """Index of ``model`` given by name (``"LLM-2"``) or by index."""
    if isinstance(model, bool):
        raise ValueError(f"model must be a model name or index, got {model!r}")
    if isinstance(model, int):
        if not 0 <= model < config.n_models:
            raise ValueError(f"model index must be in [0, {config.n_models - 1}], got {model}")
        return model
    if model not in config.model_names:
        raise ValueError(f"unknown model {model!r}; known: {list(config.model_names)}")
    return config.model_names.index(model)


def _batch_size(config: SystemConfig, name: str, value: Any) -> int:
    """A batch size in [1, max_batch_size]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not 1 <= value <= config.max_batch_size:
        raise ValueError(f"{name} must be in [1, {config.max_batch_size}] (max_batch_size), got {value}")
    return value


def _delay_ms(config: SystemConfig, name: str, value: Any) -> float:
    """A queue delay in [0, max_wait_ms] (ms)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of ms, got {value!r}")
    value = float(value)
    if not 0.0 <= value <= config.max_wait_ms:
        raise ValueError(
            f"{name} must be in [0, {config.max_wait_ms:g}] ms (the system's max_wait_ms), got {value:g}"
        )
    return value


class Greedy(Baseline):
    """Dispatch everything that waits (up to ``max_batch_size``) as soon as a worker is idle.

    :param config: the system.
    :param model: model name (or index); default the highest-quality model.
    """

    name = "greedy"

    def __init__(self, config: SystemConfig, model: str | int | None = None) -> None:
        super().__init__(config)
        self.model = _model_index(config, _best_model(config) if model is None else model)
        self._decision = (self.model, config.max_batch_size)

    def decide(self, sim: Simulator) -> Decision:
        """Dispatch everything waiting (up to ``max_batch_size``) on the model."""
        return self._decision

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this scheduler."""
        return {"model": self.config.model_names[self.model]}


class Static(Baseline):
    """Fixed batch size: dispatch exactly ``batch_size`` requests once that many wait; when the
    oldest has waited ``max_wait_ms`` (the system timeout), dispatch what waits (at most
    ``batch_size``).

    :param config: the system.
    :param batch_size: the batch size B, in [1, max_batch_size]; default 8.
    :param model: model name (or index); default the highest-quality model.
    """

    name = "static"

    def __init__(self, config: SystemConfig, batch_size: int = 8, model: str | int | None = None) -> None:
        super().__init__(config)
        self.batch_size = _batch_size(config, "batch_size", batch_size)
        self.model = _model_index(config, _best_model(config) if model is None else model)
        self._decision = (self.model, self.batch_size)
        self._timeout_s = config.max_wait_ms / 1000.0  # the simulator's own max_wait_s

    def decide(self, sim: Simulator) -> Decision:
        """Dispatch B requests once B wait or the oldest has waited ``max_wait_ms``; else wait."""
        if batch_due(sim.queue_len, self.batch_size, sim.now_s, sim.oldest_arrival_s + self._timeout_s):
            return self._decision
        return None  # the simulator wakes up at max_wait_ms by itself

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this scheduler."""
        return {"batch_size": self.batch_size, "model": self.config.model_names[self.model]}


class Timeout(Baseline):
    """Triton's dynamic batcher (TorchServe's ``batch_size`` / ``max_batch_delay``): when a worker
    is idle, dispatch everything waiting (up to ``max_batch_size``) as soon as
    ``preferred_batch_size`` requests wait or the oldest has waited ``max_queue_delay_ms``.

    While a worker is idle, no request waits longer than ``max_queue_delay_ms``: the policy waits
    with a timer that wakes it when the oldest request has waited that long.

    :param config: the system.
    :param preferred_batch_size: B, queued requests that trigger a dispatch; default 8.
    :param max_queue_delay_ms: T (ms) in [0, max_wait_ms]; default 10.
    :param model: model name (or index); default the highest-quality model.
    :param max_batch_size: largest batch (default the system's max_batch_size).
    """

    name = "timeout"

    def __init__(
        self,
        config: SystemConfig,
        preferred_batch_size: int = 8,
        max_queue_delay_ms: float = 10.0,
        model: str | int | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(config)
        self.preferred_batch_size = _batch_size(config, "preferred_batch_size", preferred_batch_size)
        self.max_queue_delay_ms = _delay_ms(config, "max_queue_delay_ms", max_queue_delay_ms)
        self.model = _model_index(config, _best_model(config) if model is None else model)
        cap = config.max_batch_size if max_batch_size is None else max_batch_size
        self.max_batch_size = _batch_size(config, "max_batch_size", cap)
        if self.preferred_batch_size > self.max_batch_size:
            raise ValueError(
                f"preferred_batch_size ({self.preferred_batch_size}) must be <= max_batch_size "
                f"({self.max_batch_size})"
            )
        self._delay_s = self.max_queue_delay_ms / 1000.0
        self._decision = (self.model, self.max_batch_size)

    def due(self, sim: Simulator) -> bool:
        """True when the batch is due: B requests wait or the oldest has waited T."""
        return batch_due(
            sim.queue_len, self.preferred_batch_size, sim.now_s, sim.oldest_arrival_s + self._delay_s
        )

    def decide(self, sim: Simulator) -> Decision:
        """Dispatch once the batch is due (:meth:`due`), else wait with a timer of T."""
        return self._decision if self.due(sim) else self._delay_s

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this scheduler."""
        return {
            "preferred_batch_size": self.preferred_batch_size,
            "max_queue_delay_ms": self.max_queue_delay_ms,
            "model": self.config.model_names[self.model],
            "max_batch_size": self.max_batch_size,
        }


class Aimd(Baseline):
    """Clipper's adaptive batching: dispatch at once (no waiting) up to a batch cap that is tuned
    by additive increase / multiplicative decrease (AIMD).

    Feedback, as in Clipper, is the *processing* latency of a batch (its service time, ms),
    compared with ``batch_slo_ms``. A real server learns it when the batch completes, so each
    completed batch is observed at the first decision epoch at or after its completion time
    (not at its dispatch, although the simulator's service times are deterministic): within the
    objective the cap grows by ``additive_increase``; above it, the cap is multiplied by
    ``multiplicative_decrease``. The cap stays in [1, max_batch_size]; a batch holds
    ``min(queue, floor(cap))`` requests.

    :param config: the system.
    :param model: model name (or index); default the highest-quality model.
    :param batch_slo_ms: objective for the processing latency of a batch (ms); default the
        system's ``slo_ms``.
    :param additive_increase: cap increase per batch within the objective (requests); default 1.
    :param multiplicative_decrease: cap factor per batch above the objective, in (0, 1);
        default 0.9 (Clipper's 10 % back-off).
    :param initial_batch_size: cap at the start of an episode; default 1.
    """

    name = "aimd"

    def __init__(
        self,
        config: SystemConfig,
        model: str | int | None = None,
        batch_slo_ms: float | None = None,
        additive_increase: float = 1.0,
        multiplicative_decrease: float = 0.9,
        initial_batch_size: int = 1,
    ) -> None:
        super().__init__(config)
        self.model = _model_index(config, _best_model(config) if model is None else model)
        slo = config.slo_ms if batch_slo_ms is None else batch_slo_ms
        if isinstance(slo, bool) or not isinstance(slo, int | float) or not slo > 0:
            raise ValueError(f"batch_slo_ms must be a number of ms > 0, got {slo!r}")
        if isinstance(additive_increase, bool) or not additive_increase > 0:
            raise ValueError(f"additive_increase must be > 0, got {additive_increase!r}")
        if isinstance(multiplicative_decrease, bool) or not 0 < multiplicative_decrease < 1:
            raise ValueError(f"multiplicative_decrease must be in (0, 1), got {multiplicative_decrease!r}")
        self.batch_slo_ms = float(slo)
        self.additive_increase = float(additive_increase)
        self.multiplicative_decrease = float(multiplicative_decrease)
        self.initial_batch_size = _batch_size(config, "initial_batch_size", initial_batch_size)
        self._max_cap = float(config.max_batch_size)
        self._slo_s = self.batch_slo_ms / 1000.0
        self.cap = float(self.initial_batch_size)
        self._running: list[tuple[float, float]] = []  # heap of (completion_s, service_s)

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: the cap restarts at ``initial_batch_size``."""
        self.cap = float(self.initial_batch_size)
        self._running = []

    def observe(self, processing_s: float) -> None:
        """Update the cap with the processing latency (s) of one completed batch."""
        if processing_s <= self._slo_s:
            self.cap = min(self.cap + self.additive_increase, self._max_cap)
        else:
            self.cap = max(self.cap * self.multiplicative_decrease, 1.0)

    def decide(self, sim: Simulator) -> Decision:
        """Observe the batches completed by now, then dispatch up to the cap at once."""
        now = sim.now_s
        running = self._running
        while running and running[0][0] <= now:
            self.observe(heapq.heappop(running)[1])
        size = min(int(self.cap), sim.queue_len)
        service = sim.service_s(self.model, size)
        heapq.heappush(running, (now + service, service))
        return (self.model, size)

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this scheduler."""
        return {
            "model": self.config.model_names[self.model],
            "batch_slo_ms": self.batch_slo_ms,
            "additive_increase": self.additive_increase,
            "multiplicative_decrease": self.multiplicative_decrease,
            "initial_batch_size": self.initial_batch_size,
        }


def _thresholds(name: str, values: Any, count: int, upper: float | None) -> tuple[float | None, ...]:
    """``count`` non-decreasing thresholds (None = that step is never triggered by this signal)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) != count:
        raise ValueError(f"{name} must be a list of {count} thresholds (one per step), got {values!r}")
    out: list[float | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} entries must be numbers >= 0 or null, got {value!r}")
        if upper is not None and value > upper:
            raise ValueError(f"{name} entries must be <= {upper:g}, got {value!r}")
        out.append(value if isinstance(value, int) else float(value))
    finite = [v for v in out if v is not None]
    if finite != sorted(finite):
        raise ValueError(f"{name} must be non-decreasing (a later step needs more load), got {values!r}")
    return tuple(out)


class UtilSwitch(Timeout):
    """A :class:`Timeout` batcher that picks the model by load: it steps down LLM-1 -> LLM-2 ->
    LLM-3 (model order of the config) as the queue length or the utilisation cross thresholds,
    and steps back up with hysteresis.

    Step ``k`` (to model ``k``, k = 1..M-1) is due when ``queue >= queue_thresholds[k-1]`` or
    ``utilisation >= util_thresholds[k-1]``; the level is the highest due step. The level falls
    back (upgrade) only to the highest step still due with every threshold scaled by
    ``hysteresis``. The utilisation is an EWMA (time constant ``util_tau_s``) of the busy fraction
    of all workers; the level is updated at every decision epoch and starts at 0 (the best
    model) each episode. A threshold of ``null`` disables that signal for that step.

    :param config: the system.
    :param preferred_batch_size: B (see :class:`Timeout`); default 8.
    :param max_queue_delay_ms: T (ms); default 10.
    :param queue_thresholds: M-1 queue lengths (requests); default (32, 128).
    :param util_thresholds: M-1 utilisations in [0, 1]; default all null.
    :param hysteresis: factor in (0, 1] on the thresholds for stepping back up; default 0.5.
    :param util_tau_s: time constant of the utilisation EWMA (s); default 1.
    :param max_batch_size: largest batch (default the system's max_batch_size).
    """

    name = "util_switch"

    def __init__(
        self,
        config: SystemConfig,
        preferred_batch_size: int = 8,
        max_queue_delay_ms: float = 10.0,
        queue_thresholds: Sequence[float | None] | None = None,
        util_thresholds: Sequence[float | None] | None = None,
        hysteresis: float = 0.5,
        util_tau_s: float = 1.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(config, preferred_batch_size, max_queue_delay_ms, 0, max_batch_size)
        steps = config.n_models - 1
        if queue_thresholds is None:
            queue_thresholds = [32 * 4**k for k in range(steps)]
        if util_thresholds is None:
            util_thresholds = [None] * steps
        self.queue_thresholds = _thresholds("queue_thresholds", queue_thresholds, steps, None)
        self.util_thresholds = _thresholds("util_thresholds", util_thresholds, steps, 1.0)
        if isinstance(hysteresis, bool) or not isinstance(hysteresis, int | float) or not 0 < hysteresis <= 1:
            raise ValueError(f"hysteresis must be in (0, 1], got {hysteresis!r}")
        if isinstance(util_tau_s, bool) or not isinstance(util_tau_s, int | float) or not util_tau_s > 0:
            raise ValueError(f"util_tau_s must be > 0 (s), got {util_tau_s!r}")
        self.hysteresis = float(hysteresis)
        self.util_tau_s = float(util_tau_s)
        inf = math.inf
        self._q_down = [inf if v is None else v for v in self.queue_thresholds]
        self._u_down = [inf if v is None else v for v in self.util_thresholds]
        self._q_up = [v * self.hysteresis for v in self._q_down]
        self._u_up = [v * self.hysteresis for v in self._u_down]
        self._use_util = any(v is not None for v in self.util_thresholds)
        self._inv_workers = 1.0 / config.n_workers
        self._busy = EwmaRate(self.util_tau_s)
        self._decisions = [(m, self.max_batch_size) for m in range(config.n_models)]
        self.level = 0

    def reset(self, sim: Simulator) -> None:
        """Start of an episode: the best model, a fresh utilisation estimate."""
        self.level = 0
        self._busy.reset(t_s=sim.now_s, count=sim.busy_time_s())

    @staticmethod
    def _steps(q: int, u: float, q_limits: list[float], u_limits: list[float]) -> int:
        """Highest step k (1-based) whose queue or utilisation threshold is reached; 0 if none."""
        for k in range(len(q_limits), 0, -1):
            if q >= q_limits[k - 1] or u >= u_limits[k - 1]:
                return k
        return 0

    def update_level(self, sim: Simulator) -> int:
        """Move the level with the current queue length and utilisation; returns the level."""
        q = sim.queue_len
        u = self._busy.update(sim.now_s, sim.busy_time_s()) * self._inv_workers if self._use_util else 0.0
        down = self._steps(q, u, self._q_down, self._u_down)
        if down > self.level:
            self.level = down
        else:
            up = self._steps(q, u, self._q_up, self._u_up)
            if up < self.level:
                self.level = up
        return self.level

    def utilisation(self) -> float:
        """Current utilisation estimate in [0, 1] (only tracked when a util threshold is set)."""
        return self._busy.value * self._inv_workers

    def decide(self, sim: Simulator) -> Decision:
        """Update the level, then dispatch on its model once due, else wait with a timer."""
        level = self.update_level(sim)
        return self._decisions[level] if self.due(sim) else self._delay_s

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this scheduler."""
        return {
            "preferred_batch_size": self.preferred_batch_size,
            "max_queue_delay_ms": self.max_queue_delay_ms,
            "queue_thresholds": list(self.queue_thresholds),
            "util_thresholds": list(self.util_thresholds),
            "hysteresis": self.hysteresis,
            "util_tau_s": self.util_tau_s,
            "max_batch_size": self.max_batch_size,
        }


BASELINES: dict[str, type[Baseline]] = {cls.name: cls for cls in (Greedy, Static, Timeout, Aimd, UtilSwitch)}
"""Baseline scheduler classes by name."""
