"""Named scenarios: the YAML files in ``batchenv/configs/``.

``load_scenario("default")`` reads ``batchenv/configs/default.yaml``; any other argument ending in
``.yaml``/``.yml`` (or naming an existing file) is read as a path.
"""

from __future__ import annotations

from pathlib import Path

from batchenv.config import ConfigError, SystemConfig

__all__ = ["SCENARIO_DIR", "env_id", "list_scenarios", "load_scenario"]

SCENARIO_DIR = Path(__file__).resolve().parent / "configs"


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
        raise ConfigError("scenario", f"unknown scenario {text!r}; known: {list_scenarios()} or a YAML path")
    return SystemConfig.from_yaml(candidate)


def env_id(scenario: str) -> str:
    """Gymnasium id of a packaged scenario: ``default`` -> ``batchenv/DynamicBatching-v0``,
    ``high_load`` -> ``batchenv/DynamicBatching-HighLoad-v0``."""
    if scenario == "default":
        return "batchenv/DynamicBatching-v0"
    camel = "".join(part.capitalize() for part in scenario.split("_"))
    return f"batchenv/DynamicBatching-{camel}-v0"
