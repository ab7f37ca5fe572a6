"""batchenv: learning and verifying dynamic batching schedulers for LLM inference servers.

The system (``SystemConfig``), its exact event-driven simulator (``Simulator``) and its
Gymnasium environment (``DynamicBatchingEnv``), registered as ``batchenv/DynamicBatching-v0``
and one id per packaged scenario (``batchenv/DynamicBatching-HighLoad-v0``, ...).
"""

import warnings

from gymnasium.envs.registration import parse_env_id, register, registry
from gymnasium.error import Error as GymnasiumError

from batchenv.config import ConfigError, SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import EpisodeMetrics, compute_metrics
from batchenv.scenarios import SCENARIO_DIR, env_id, list_scenarios, load_scenario
from batchenv.sim import Simulator

__all__ = [
    "ConfigError",
    "DynamicBatchingEnv",
    "EpisodeMetrics",
    "Simulator",
    "SystemConfig",
    "compute_metrics",
    "env_id",
    "list_scenarios",
    "load_scenario",
]
__version__ = "0.1.0"


def _register_envs() -> None:
    """Register one Gymnasium id per scenario: the packaged ones first, so that a scenario of
    ``$BATCHENV_SCENARIO_PATH`` never takes over a packaged id. A scenario whose id is taken by
    another name (``multi_gpu4`` beside ``multi_gpu_4``) or is not a valid id (a space in its
    name) is not registered, with a warning; it still loads by name or path."""
    packaged = {path.stem for path in SCENARIO_DIR.glob("*.yaml")}
    ordered = sorted(packaged) + [name for name in list_scenarios() if name not in packaged]
    for scenario in ordered:
        gym_id = env_id(scenario)
        taken_by = registry[gym_id].kwargs.get("config") if gym_id in registry else None
        if taken_by == scenario:
            continue
        try:
            parse_env_id(gym_id)
            reason = None if taken_by is None else f"{gym_id} is scenario {taken_by!r}'s"
        except GymnasiumError:
            reason = f"{gym_id!r} is not a valid id"
        if reason is not None:
            warnings.warn(
                f"scenario {scenario!r} has no Gymnasium id: {reason}; load it with "
                "gymnasium.make('batchenv/DynamicBatching-v0', config=name or path)",
                stacklevel=2,
            )
            continue
        register(id=gym_id, entry_point="batchenv.env:DynamicBatchingEnv", kwargs={"config": scenario})


_register_envs()
