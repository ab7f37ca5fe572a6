"""Service time of a batch, from the brief's timing model.

``service_ms(b, m) = T_pre + T_comm(b) + T_inf(m, b) + T_post``, all per batch, in milliseconds.
Batch sizes between table rows are linearly interpolated (``interp``) or run as the next table
size (``pad``, like TF Serving's ``allowed_batch_sizes``).

The brief's worked example (b = 8 on LLM-1 with 80 ms of accumulation) is reproduced by
:func:`brief_latency_ms` and :func:`brief_throughput_per_s`: 127 ms and 63 requests/s.
"""

from __future__ import annotations

import bisect

import numpy as np

from batchenv.config import SystemConfig, TimingTable

__all__ = [
    "ServiceTable",
    "brief_latency_ms",
    "brief_throughput_per_s",
    "comm_ms",
    "inference_ms",
    "model_capacity_per_s",
    "service_ms",
]


def _table_lookup(timing: TimingTable, values: tuple[float, ...], batch_size: int) -> float:
    """Value of a per-batch-size table column at ``batch_size`` under the table's mode."""
    sizes = timing.batch_sizes
    if not 1 <= batch_size <= sizes[-1]:
        raise ValueError(f"batch_size must be in [1, {sizes[-1]}], got {batch_size}")
    i = bisect.bisect_left(sizes, batch_size)
    if sizes[i] == batch_size or timing.mode == "pad":
        return values[i]
    lo, hi = sizes[i - 1], sizes[i]
    frac = (batch_size - lo) / (hi - lo)
    return values[i - 1] + frac * (values[i] - values[i - 1])


def comm_ms(config: SystemConfig, batch_size: int) -> float:
    """Communication time (ms) of a batch of ``batch_size`` requests."""
    return _table_lookup(config.timing, config.timing.comm_ms, batch_size)


def inference_ms(config: SystemConfig, model: int, batch_size: int) -> float:
    """Inference time (ms) of a batch of ``batch_size`` requests on model index ``model``."""
    return _table_lookup(config.timing, config.models[model].inference_ms, batch_size)


def service_ms(config: SystemConfig, model: int, batch_size: int) -> float:
    """Time (ms) one worker is busy with a batch: T_pre + T_comm(b) + T_inf(m, b) + T_post."""
    timing = config.timing
    return (
        timing.t_pre_ms
        + comm_ms(config, batch_size)
        + inference_ms(config, model, batch_size)
        + timing.t_post_ms
    )


class ServiceTable:
    """Precomputed service times for every (model, batch size) of a config.

    :ivar service_s: ``service_s[m][b]`` = service time in seconds of a batch of b on model m,
        as nested Python lists (fast scalar indexing in the simulator); ``b`` in 0..max_batch_size,
        entry 0 is 0.0.
    :ivar service_ms: the same in milliseconds as a float64 array of shape (M, max_batch_size + 1).
    """

    def __init__(self, config: SystemConfig) -> None:
        n_b = config.max_batch_size
        table = np.zeros((config.n_models, n_b + 1))
        for m in range(config.n_models):
            for b in range(1, n_b + 1):
                table[m, b] = service_ms(config, m, b)
        self.service_ms = table
        self.service_s: list[list[float]] = (table / 1000.0).tolist()
        self.max_service_s = float(table.max() / 1000.0)

    def model_throughput_per_s(self, model: int) -> float:
        """Largest sustainable rate (requests/s) of one worker that runs only ``model`` (an index
        into ``config.models``): max over b of b / service."""
        n_b = self.service_ms.shape[1] - 1
        sizes = np.arange(1, n_b + 1)
        return float((sizes / (self.service_ms[model, 1:] / 1000.0)).max())

    def max_throughput_per_s(self, n_workers: int = 1) -> float:
        """Largest sustainable rate (requests/s): n_workers * max over (m, b) of b / service."""
        per_worker = max(self.model_throughput_per_s(m) for m in range(self.service_ms.shape[0]))
        return float(n_workers * per_worker)


def model_capacity_per_s(config: SystemConfig, model: str) -> float:
    """Largest sustainable rate (requests/s) of one worker of ``config`` that runs only the model
    named ``model`` (e.g. ``"LLM-3"``, whose capacity sets the trace scenarios' 30% and 60% loads)."""
    return ServiceTable(config).model_throughput_per_s(config.model_index(model))


def brief_latency_ms(config: SystemConfig, model: int, batch_size: int, accumulation_ms: float) -> float:
    """The brief's per-request latency: accumulation + pre + comm + inference + post (ms)."""
    return accumulation_ms + service_ms(config, model, batch_size)


def brief_throughput_per_s(
    config: SystemConfig, model: int, batch_size: int, accumulation_ms: float
) -> float:
    """The brief's throughput: batch size / latency (requests/s)."""
    return batch_size / (brief_latency_ms(config, model, batch_size, accumulation_ms) / 1000.0)
