"""batchenv: learning and verifying dynamic batching schedulers for LLM inference servers.

The system (``SystemConfig``), its exact event-driven simulator (``Simulator``) and its
Gymnasium environment (``DynamicBatchingEnv``), registered as ``batchenv/DynamicBatching-v0``
and one id per packaged scenario (``batchenv/DynamicBatching-HighLoad-v0``, ...).
"""

from gymnasium.envs.registration import register, registry

from batchenv.config import ConfigError, SystemConfig
from batchenv.env import DynamicBatchingEnv
from batchenv.metrics import EpisodeMetrics, compute_metrics
from batchenv.scenarios import env_id, list_scenarios, load_scenario
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
    for scenario in list_scenarios():
        gym_id = env_id(scenario)
        if gym_id not in registry:
            register(
                id=gym_id,
                entry_point="batchenv.env:DynamicBatchingEnv",
                kwargs={"config": scenario},
            )


_register_envs()
