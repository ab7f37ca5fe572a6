"""The YAML form of a config: a scenario file read with its ``extends`` chain merged in, and the
plain mapping :meth:`~batchenv.config.SystemConfig.to_dict` writes back (optional fields left out
while at their defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchenv.config_fields import ConfigError, short_repr
from batchenv.safe_yaml import YamlError, load_yaml

__all__ = [
    "MAX_EXTENDS",
]

MAX_EXTENDS = 16
"""Longest chain of ``extends`` between scenario files."""


def _read_yaml_tree(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping of a YAML config with its ``extends`` chain merged in."""
    if not path.is_file():
        raise ConfigError("", f"config file not found: {path}")
    if path in seen:
        raise ConfigError("extends", f"cycle of extends: {' -> '.join(map(str, (*seen, path)))}")
    if len(seen) >= MAX_EXTENDS:
        raise ConfigError("extends", f"a chain of more than {MAX_EXTENDS} files (from {seen[0]})")
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise ConfigError("", f"{path}: {exc}") from None
    if data is None:
        raise ConfigError("", f"{path} is empty: a scenario file needs at least one field (e.g. name)")
    if not isinstance(data, Mapping):
        raise ConfigError("", f"{path} must hold a mapping of fields, got {_yaml_kind(data)}")
    data = dict(data)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError("extends", f"must be a scenario name or a YAML path, got {short_repr(parent)}")
    if parent.endswith((".yaml", ".yml")):
        parent_path = (path.parent / parent).resolve()
    else:
        parent_path = Path(__file__).resolve().parent / "configs" / f"{parent}.yaml"
        if not parent_path.is_file():
            raise ConfigError("extends", f"unknown scenario {parent!r} in {path}")
    merged = _read_yaml_tree(parent_path, (*seen, path))
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _yaml_kind(data: Any) -> str:
    """What a YAML document holds, in YAML's words (a list, a string, ...), for messages."""
    kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    return next((word for kind, word in kinds.items() if isinstance(data, kind)), type(data).__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_LEFT_OUT_AT_DEFAULT: dict[str, dict[str, Any]] = {
    "arrivals": {"trace_window": None, "rate_range_scale": "linear", "components": None},
    "env": {
        "rate_scale": "linear",
        "extra_rate_taus_s": (),
        "rate_ewma_unbiased": False,
        "observe_slo": False,
        "observe_slo_wait": "always",
    },
    "reward": {"slo_probability": 0.0, "slo_ms_range": None, "w_slo_range": None},
}
"""Optional fields that :meth:`SystemConfig.to_dict` leaves out while at their default, so that
a config written before they existed keeps its YAML form (and the fingerprint of its tuned files)."""


def _leave_out_defaults(section: dict[str, Any], defaults: dict[str, Any]) -> None:
    for name, default in defaults.items():
        value = section.get(name)
        if name in section and (value == default or (isinstance(value, list) and tuple(value) == default)):
            del section[name]
