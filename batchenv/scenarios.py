"""Named scenarios: the YAML files in ``batchenv/configs/``.

``load_scenario("default")`` reads ``batchenv/configs/default.yaml``; any other argument ending in
``.yaml``/``.yml`` (or naming an existing file) is read as a path.

Trace scenarios come with a time split: ``<name>_train`` replays the first half of the trace of
``<name>`` (``arrivals.trace_window: [0.0, 0.5]``) and ``<name>_test`` the second half, so that
whatever is tuned or trained on a trace (timeouts, thresholds, RL agents) is evaluated on traffic
it has not seen. :func:`trace_scenarios` lists the trace scenarios that have both halves;
:func:`train_split_of` and :func:`eval_split_of` (or :func:`split_of`) name them.
"""

from __future__ import annotations

from pathlib import Path

from batchenv.config import ConfigError, SystemConfig

__all__ = [
    "SCENARIO_DIR",
    "SPLIT_WINDOWS",
    "SUITE",
    "env_id",
    "eval_split_of",
    "list_scenarios",
    "load_scenario",
    "scenario_config",
    "split_of",
    "trace_scenarios",
    "train_split_of",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "configs"
SPLIT_WINDOWS: dict[str, tuple[float, float]] = {"train": (0.0, 0.5), "test": (0.5, 1.0)}
"""The ``arrivals.trace_window`` of the ``_train`` and ``_test`` variant of a trace scenario."""

SUITE: tuple[str, ...] = (
    "default",
    "poisson_05",
    "poisson_25",
    "poisson_50",
    "poisson_75",
    "poisson_95",
    "high_load",
    "bursty",
    "diurnal",
    "azure_trace",
    "azure_trace_low",
    "azure_trace_medium",
    "azure_trace_high",
    "multi_gpu",
    "multi_gpu_4",
    "default_randomised",
)
"""The scenario suite (``--scenarios suite`` of ``evaluate.py`` and ``python -m apps.tune``)."""


def list_scenarios() -> list[str]:
    """Names of the packaged scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> SystemConfig:
    """A packaged scenario by name, or a scenario YAML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.is_file():
        return SystemConfig.from_yaml(path)
    candidate = SCENARIO_DIR / f"{text}.yaml"
    if not candidate.is_file():
        names = list_scenarios()  # 50 names: too long for a one-line error, so the first few
        more = f" and {len(names) - 8} more in batchenv/configs/" if len(names) > 8 else ""
        raise ConfigError("scenario", f"unknown scenario {text!r}; known: {names[:8]}{more}, or a YAML path")
    return SystemConfig.from_yaml(candidate)


def scenario_config(name_or_path: str | Path, horizon_s: float | None = None) -> SystemConfig:
    """The scenario ``name_or_path`` (see :func:`load_scenario`), its horizon replaced by
    ``horizon_s`` (s) unless that is None."""
    config = load_scenario(name_or_path)
    return config if horizon_s is None else config.replace(horizon_s=horizon_s)


def env_id(scenario: str) -> str:
    """Gymnasium id of a packaged scenario: ``default`` -> ``batchenv/DynamicBatching-v0``,
    ``high_load`` -> ``batchenv/DynamicBatching-HighLoad-v0``."""
    if scenario == "default":
        return "batchenv/DynamicBatching-v0"
    camel = "".join(part.capitalize() for part in scenario.split("_"))
    return f"batchenv/DynamicBatching-{camel}-v0"


def trace_scenarios() -> list[str]:
    """Packaged trace scenarios that have a ``_train`` and a ``_test`` variant, sorted (the
    variants themselves are not listed): tune on :func:`train_split_of`, evaluate on
    :func:`eval_split_of`."""
    names = set(list_scenarios())
    return sorted(
        name
        for name in names
        if f"{name}_train" in names
        and f"{name}_test" in names
        and load_scenario(name).arrivals.process == "trace"
    )


def split_of(name: str, part: str) -> str:
    """The packaged scenario replaying one part of trace scenario ``name``'s trace: ``part`` is
    ``"train"`` (the first half) or ``"test"`` (the second half), e.g. ``split_of("mooncake_conv_30",
    "test")`` -> ``"mooncake_conv_30_test"``; ConfigError if there is none."""
    if part not in SPLIT_WINDOWS:
        raise ConfigError("part", f"must be one of {sorted(SPLIT_WINDOWS)}, got {part!r}")
    known = trace_scenarios()
    if name not in known:
        raise ConfigError(
            "scenario", f"{name!r} has no packaged {part} split; trace scenarios with splits: {known}"
        )
    return f"{name}_{part}"


def train_split_of(name: str) -> str:
    """``split_of(name, "train")``: the first half of the trace, for tuning and training."""
    return split_of(name, "train")


def eval_split_of(name: str) -> str:
    """``split_of(name, "test")``: the second half of the trace, for evaluation."""
    return split_of(name, "test")
