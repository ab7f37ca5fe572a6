"""The agent's observation of the simulator: what a real server knows, normalised to about [0, 1].

One :class:`ObservationBuilder` per episode stream: it keeps the EWMA estimates of the arrival
rate and utilisation, so call it exactly once per decision epoch (the environment does; an agent
running on the simulator directly does the same and sees identical observations).

{table}
"max throughput" is the largest sustainable rate, ``n_workers * max(b / service(b, m))``
(requests/s); W = n_workers; the entries ``7 + W + k`` exist only when ``env.extra_rate_taus_s``
lists time constants, the last two only with ``env.observe_slo`` (the SLO objective of the
episode: its penalty per late request and its bound, which ``reward.slo_probability`` may draw
per episode). With ``env.rate_scale: log`` every rate entry is ``log(1 + rate x 1 s) /
log(1 + 2 x max throughput x 1 s)`` instead (in [0, 1]; 1/s and 10/s as far apart as 100/s and
1000/s). The rate and utilisation estimates start at 0 each episode, or without that bias with
``env.rate_ewma_unbiased`` (:class:`~batchenv.estimators.EwmaRate`). The log-scaled queue length
resolves small queues (where the optimal policy's thresholds lie) and still reaches the
capacity.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from batchenv.config import SystemConfig
from batchenv.estimators import EwmaRate
from batchenv.sim import Simulator
from batchenv.timing import ServiceTable

__all__ = ["OBSERVATION_NAMES", "OBSERVATION_TABLE", "ObservationBuilder"]

OBSERVATION_TABLE = """\
| index  | observation                                                    | min | max |
|--------|----------------------------------------------------------------|-----|-----|
| 0      | queue length / max_batch_size, clipped                         | 0   | 1   |
| 1      | log(1 + queue length) / log(1 + queue_capacity)                | 0   | 1   |
| 2      | wait of the oldest request / max_wait_ms, clipped              | 0   | 2   |
| 3      | mean wait of the waiting requests / max_wait_ms, clipped       | 0   | 2   |
| 4      | arrival rate EWMA (tau = env.rate_ewma_tau_s) / max throughput | 0   | 2   |
| 5      | utilisation EWMA (busy fraction of all workers)                | 0   | 1   |
| 6      | time since the last dispatch / max_wait_ms, clipped            | 0   | 2   |
| 7 + w  | remaining busy time of worker w / longest service time         | 0   | 1   |
| 7 + W + k | arrival rate EWMA (tau = env.extra_rate_taus_s[k]), scaled as 4 | 0 | 2 |
| last 2 | SLO weight w_slo / (w_slo + w_latency_per_s x max_wait_s)   | 0 | 1 |
|        | wait of the oldest request / the episode's SLO bound, clipped (*) | 0 | 2 |

(*) 0 in an episode without an SLO penalty when ``env.observe_slo_wait`` is ``penalised``.
"""
"""The observation vector, index by index (a Markdown table; also in the env's docstring)."""

__doc__ = __doc__.replace("{table}", OBSERVATION_TABLE)

OBSERVATION_NAMES = (
    "queue_fill_batch",
    "queue_log_fill",
    "oldest_wait",
    "mean_wait",
    "arrival_rate",
    "utilisation",
    "since_dispatch",
)
"""Names of the observation entries before the per-worker ``busy_remaining_{w}`` entries."""

WAIT_CLIP = 2.0
"""Waits, the rate and the time since the last dispatch are reported up to twice their scale."""


class ObservationBuilder:
    """Builds the float32 observation vector, shape ``(7 + n_workers + len(env.extra_rate_taus_s)
    (+ 2 with env.observe_slo),)``, from a simulator.

    :param config: the system (scales: max batch, capacity, max wait, throughput, service).
    :param service_table: the config's service table, if already built.
    """

    def __init__(self, config: SystemConfig, service_table: ServiceTable | None = None) -> None:
        table = service_table or ServiceTable(config)
        n_workers = config.n_workers
        env = config.env
        extra_taus = env.extra_rate_taus_s
        high = np.array(
            [1.0, 1.0, WAIT_CLIP, WAIT_CLIP, WAIT_CLIP, 1.0, WAIT_CLIP]
            + [1.0] * n_workers
            + [WAIT_CLIP] * len(extra_taus)
            + ([1.0, WAIT_CLIP] if env.observe_slo else []),
            dtype=np.float32,
        )
        self.space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.names = (
            *OBSERVATION_NAMES,
            *(f"busy_remaining_{w}" for w in range(n_workers)),
            *(f"arrival_rate_tau_{tau:g}s" for tau in extra_taus),
            *(("slo_weight", "oldest_wait_slo") if env.observe_slo else ()),
        )
        self._observe_slo = env.observe_slo
        self._slo_wait_always = env.observe_slo_wait == "always"
        self._latency_cost_of_max_wait = config.reward.w_latency_per_s * config.max_wait_ms / 1000.0
        self.max_throughput_per_s = table.max_throughput_per_s(n_workers)
        self._inv_batch = 1.0 / config.max_batch_size
        self._inv_log_capacity = 1.0 / math.log1p(config.queue_capacity)
        self._inv_wait = 1000.0 / config.max_wait_ms
        self._log_rate = env.rate_scale == "log"
        self._inv_rate = (
            1.0 / math.log1p(WAIT_CLIP * self.max_throughput_per_s)
            if self._log_rate
            else 1.0 / self.max_throughput_per_s
        )
        self._inv_service = 1.0 / table.max_service_s
        self._inv_workers = 1.0 / n_workers
        unbiased = env.rate_ewma_unbiased
        self._rate = EwmaRate(env.rate_ewma_tau_s, unbiased=unbiased)
        self._busy = EwmaRate(env.rate_ewma_tau_s, unbiased=unbiased)
        self._extra_rates = [EwmaRate(tau, unbiased=unbiased) for tau in extra_taus]

    def reset(self) -> None:
        """Forget the estimates (start of an episode)."""
        self._rate.reset()
        self._busy.reset()
        for estimate in self._extra_rates:
            estimate.reset()

    def _scaled_rate(self, rate_per_s: float) -> float:
        """A rate estimate (requests/s) as the observation reports it (linear or log scale)."""
        scaled = (math.log1p(rate_per_s) if self._log_rate else rate_per_s) * self._inv_rate
        return scaled if scaled < WAIT_CLIP else WAIT_CLIP

    def prime(self, sim: Simulator, rate_per_s: float, utilisation: float) -> None:
        """Set the estimates as if the system had long run at ``rate_per_s`` (requests/s) with
        busy fraction ``utilisation`` (of all workers, in [0, 1]) up to ``sim``'s present; the
        next observation at this instant reports exactly these values. Used to probe a
        scheduler in one isolated state (formal distillation), where the estimates would
        otherwise see only the probe's own few arrivals."""
        now, _, _, _, n_arrived, busy = sim.observe()
        self._rate.reset(rate_per_s, now, n_arrived, warm=True)
        self._busy.reset(utilisation * sim.config.n_workers, now, busy, warm=True)
        for estimate in self._extra_rates:
            estimate.reset(rate_per_s, now, n_arrived, warm=True)

    def __call__(self, sim: Simulator) -> np.ndarray:
        """The observation at the simulator's current epoch (updates the estimates)."""
        now, q, oldest, mean, n_arrived, busy = sim.observe()
        inv_wait = self._inv_wait
        clip = WAIT_CLIP
        oldest_s = oldest
        oldest *= inv_wait
        mean = mean * inv_wait if mean > 0.0 else 0.0
        rate = self._rate.update(now, n_arrived)
        rate = (math.log1p(rate) if self._log_rate else rate) * self._inv_rate
        utilisation = self._busy.update(now, busy) * self._inv_workers
        since = (now - sim.last_dispatch_s) * inv_wait
        fill = q * self._inv_batch
        obs = [
            fill if fill < 1.0 else 1.0,
            math.log1p(q) * self._inv_log_capacity,
            oldest if oldest < clip else clip,
            mean if mean < clip else clip,
            rate if rate < clip else clip,
            utilisation if utilisation < 1.0 else 1.0,
            since if since < clip else clip,
        ]
        inv_service = self._inv_service
        for f in sim.free_at_s:
            remaining = (f - now) * inv_service if f > now else 0.0
            obs.append(remaining if remaining < 1.0 else 1.0)
        for estimate in self._extra_rates:
            obs.append(self._scaled_rate(estimate.update(now, n_arrived)))
        if self._observe_slo:
            w_slo = sim.w_slo
            scale = w_slo + self._latency_cost_of_max_wait
            late = oldest_s / sim.slo_s if self._slo_wait_always or w_slo > 0.0 else 0.0
            obs.append(w_slo / scale if scale > 0.0 else 0.0)
            obs.append(late if late < clip else clip)
        return np.array(obs, dtype=np.float32)
