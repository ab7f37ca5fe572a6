"""The timing table and the models: :class:`TimingTable` (the ``timing`` section) and
:class:`ModelProfile` (one entry of ``models``), checked, with their defaults read from the
brief's table in :data:`BRIEF_SYSTEM_PATH`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchenv.config_fields import ConfigError, _integer, _non_negative, _number, _number_list, short_repr
from batchenv.safe_yaml import load_yaml

__all__ = [
    "BRIEF_SYSTEM_PATH",
    "MAX_BATCH_SIZE",
    "MAX_TABLE_ROWS",
    "MAX_TIME_MS",
    "MIN_TIME_MS",
    "TIMING_MODES",
    "ModelProfile",
    "TimingTable",
]

TIMING_MODES = ("interp", "pad")
MAX_TABLE_ROWS = 32
MAX_BATCH_SIZE = 65_536
MIN_TIME_MS = 1e-6
"""Shortest inference time of a table entry (ms): a service time must not round to zero."""
MAX_TIME_MS = 3_600_000.0
"""Longest time of a timing-table entry (ms; one hour): pre- and post-processing, communication
and inference times of a batch."""


def _time_ms(path: str, value: float) -> float:
    """A time of the timing table (ms), already a number: ConfigError naming ``path`` above
    :data:`MAX_TIME_MS`."""
    if value > MAX_TIME_MS:
        raise ConfigError(path, f"must be <= {MAX_TIME_MS:g} ms (one hour), got {short_repr(value)}")
    return value


@dataclass(frozen=True)
class ModelProfile:
    """One deployable model.

    :param name: unique name, e.g. ``"LLM-1"``.
    :param quality: answer quality in (0, 1]; the reward for serving one request on this model.
    :param inference_ms: inference time of a batch (ms), one entry per ``TimingTable.batch_sizes``.
    """

    name: str
    quality: float
    inference_ms: tuple[float, ...]

    def validate(self, path: str) -> ModelProfile:
        """The profile, checked; ConfigError naming the field under ``path`` otherwise."""
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{path}.name", f"must be a non-empty string, got {short_repr(self.name)}")
        quality = _number(f"{path}.quality", self.quality)
        if not 0 < quality <= 1:
            raise ConfigError(f"{path}.quality", f"must be in (0, 1], got {short_repr(quality)}")
        inference = _number_list(f"{path}.inference_ms", self.inference_ms)
        if len(inference) > MAX_TABLE_ROWS:
            raise ConfigError(
                f"{path}.inference_ms", f"at most {MAX_TABLE_ROWS} entries, got {len(inference)}"
            )
        for i, v in enumerate(inference):
            if v < MIN_TIME_MS:
                raise ConfigError(
                    f"{path}.inference_ms[{i}]", f"must be >= {MIN_TIME_MS:g} ms, got {short_repr(v)}"
                )
            _time_ms(f"{path}.inference_ms[{i}]", v)
        _check_non_decreasing(f"{path}.inference_ms", inference)
        return dataclasses.replace(self, quality=quality, inference_ms=inference)


def _check_non_decreasing(path: str, values: Sequence[float]) -> None:
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            raise ConfigError(
                f"{path}[{i}]",
                f"must be non-decreasing in batch size ({values[i - 1]!r} then {values[i]!r})",
            )


BRIEF_SYSTEM_PATH = Path(__file__).resolve().parent / "configs" / "default.yaml"
"""The default scenario, where the brief's timing table is written: ``timing`` (batch sizes, comm,
pre- and post-processing times) and ``models`` (quality, inference times). It is written nowhere
else: the defaults of :class:`TimingTable` and :class:`SystemConfig` are read from this file."""


def _brief_table() -> dict[str, Any]:
    """The ``timing`` and ``models`` sections of :data:`BRIEF_SYSTEM_PATH`, as plain data."""
    data = load_yaml(BRIEF_SYSTEM_PATH)
    return {"timing": data["timing"], "models": data["models"]}


_BRIEF = _brief_table()


def _default_models() -> tuple[ModelProfile, ...]:
    """The brief's models and their inference times (ms) per table batch size, from
    :data:`BRIEF_SYSTEM_PATH`."""
    return tuple(
        ModelProfile(m["name"], float(m["quality"]), tuple(float(x) for x in m["inference_ms"]))
        for m in _BRIEF["models"]
    )


@dataclass(frozen=True)
class TimingTable:
    """The brief's per-batch timing model (all times in ms).

    ``service(b, m) = t_pre_ms + comm(b) + inference(m, b) + t_post_ms``; sizes between table rows
    are linearly interpolated (``mode="interp"``) or run as the next table size (``mode="pad"``).
    The defaults are the brief's table, read from :data:`BRIEF_SYSTEM_PATH`.

    :param batch_sizes: strictly increasing table batch sizes, starting at 1.
    :param comm_ms: communication time per batch (ms), one entry per batch size.
    :param t_pre_ms: preprocessing time per batch (ms).
    :param t_post_ms: postprocessing time per batch (ms).
    :param mode: ``"interp"`` or ``"pad"``.
    """

    batch_sizes: tuple[int, ...] = tuple(int(b) for b in _BRIEF["timing"]["batch_sizes"])
    comm_ms: tuple[float, ...] = tuple(float(x) for x in _BRIEF["timing"]["comm_ms"])
    t_pre_ms: float = float(_BRIEF["timing"]["t_pre_ms"])
    t_post_ms: float = float(_BRIEF["timing"]["t_post_ms"])
    mode: str = str(_BRIEF["timing"]["mode"])

    def validate(self, path: str) -> TimingTable:
        """The table, checked and normalised; ConfigError naming the field under ``path`` otherwise."""
        sizes = self.batch_sizes
        if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or not sizes:
            raise ConfigError(f"{path}.batch_sizes", f"must be a non-empty list, got {short_repr(sizes)}")
        if len(sizes) > MAX_TABLE_ROWS:
            raise ConfigError(f"{path}.batch_sizes", f"at most {MAX_TABLE_ROWS} entries, got {len(sizes)}")
        sizes = tuple(_integer(f"{path}.batch_sizes[{i}]", b, 1, MAX_BATCH_SIZE) for i, b in enumerate(sizes))
        if sizes[0] != 1:
            raise ConfigError(f"{path}.batch_sizes[0]", f"must be 1, got {sizes[0]}")
        for i in range(1, len(sizes)):
            if sizes[i] <= sizes[i - 1]:
                raise ConfigError(
                    f"{path}.batch_sizes[{i}]",
                    f"must be strictly increasing ({sizes[i - 1]} then {sizes[i]})",
                )
        comm = _number_list(f"{path}.comm_ms", self.comm_ms)
        if len(comm) != len(sizes):
            raise ConfigError(
                f"{path}.comm_ms",
                f"must have {len(sizes)} entries (one per batch size), got {len(comm)}",
            )
        for i, v in enumerate(comm):
            if v < 0:
                raise ConfigError(f"{path}.comm_ms[{i}]", f"must be >= 0, got {short_repr(v)}")
            _time_ms(f"{path}.comm_ms[{i}]", v)
        _check_non_decreasing(f"{path}.comm_ms", comm)
        if self.mode not in TIMING_MODES:
            raise ConfigError(
                f"{path}.mode", f"must be one of {list(TIMING_MODES)}, got {short_repr(self.mode)}"
            )
        return dataclasses.replace(
            self,
            batch_sizes=sizes,
            comm_ms=comm,
            t_pre_ms=_time_ms(f"{path}.t_pre_ms", _non_negative(f"{path}.t_pre_ms", self.t_pre_ms)),
            t_post_ms=_time_ms(f"{path}.t_post_ms", _non_negative(f"{path}.t_post_ms", self.t_post_ms)),
        )
