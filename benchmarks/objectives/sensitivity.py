"""Do the suite's conclusions survive other cost weights? (``python benchmarks/sensitivity.py``)

The headline comparisons of the scenario suite (docs/results/proposed.md) are rerun under other
latency weights and quality profiles (:data:`SETTINGS`), each a different score
``quality(m) - w * latency``:

- the timeout and util_switch baselines are retuned for every setting on the training seeds (the
  same grid search as ``python -m apps.tune``, for the setting's cost: their trajectories do not
  read the weights, so the memoised candidate episodes serve every setting,
  :class:`evaluation.tuning.CostObjective`);
- the optimum and the proposed scheduler are solved for every setting (their tables depend on it);
- the learned agents (``checkpoints/*.zip``) keep the policy they were trained with (latency
  weight 1, the default qualities); their cost under a setting follows from their episodes'
  score terms. They are not retrained.

Every agent runs on the evaluation seeds of the suite (0..N-1, each scenario's horizon); the gap
is :func:`evaluation.stats.paired_gap` to the scenario's reference (the optimum where it applies,
else the retuned timeout), as in the suite.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchenv.config import RewardConfig, SystemConfig
from batchenv.scenarios import SUITE, scenario_config
from benchmarks.objectives.common import AgentRun, Cell, run_cells, tuning_runs
from evaluation.candidates import CandidateEpisode
from evaluation.stats import mean_ci95, paired_gap
from evaluation.tuning import CostObjective, tune_for_objective
from execution.backends import Backend

__all__ = ["NON_POISSON", "POISSON_ONE_WORKER", "SETTINGS", "Setting", "run_study"]


@dataclass(frozen=True)
class Setting:
    """A cost: the latency weight (per second) and the models' qualities (None: the scenario's)."""

    label: str
    w_latency_per_s: float
    qualities: tuple[float, ...] | None = None

    def reward(self, config: SystemConfig) -> RewardConfig:
        return dataclasses.replace(config.reward, w_latency_per_s=self.w_latency_per_s)

    def apply(self, config: SystemConfig) -> SystemConfig:
        """``config`` scored by this setting."""
        models = config.models
        if self.qualities is not None:
            models = tuple(
                dataclasses.replace(m, quality=q) for m, q in zip(models, self.qualities, strict=True)
            )
        return config.replace(reward=self.reward(config), models=models)

    def qualities_of(self, config: SystemConfig) -> tuple[float, ...]:
        return self.qualities or config.qualities


SETTINGS: tuple[Setting, ...] = (
    Setting("w = 1 (reported)", 1.0),
    Setting("w = 0.1", 0.1),
    Setting("w = 0.3", 0.3),
    Setting("w = 3", 3.0),
    Setting("w = 10", 10.0),
    Setting("qualities 1/0.99/0.95", 1.0, (1.0, 0.99, 0.95)),
    Setting("qualities 1/0.90/0.80", 1.0, (1.0, 0.90, 0.80)),
)
"""The reported cost (w = 1 per second, qualities 1.00/0.97/0.92), four other latency weights and
two other quality profiles (at w = 1)."""


def _one_worker_poisson(name: str) -> bool:
    """Stationary Poisson arrivals at a fixed rate on one worker: where the optimum applies."""
    config = scenario_config(name)
    arrivals = config.arrivals
    return config.n_workers == 1 and arrivals.process == "poisson" and arrivals.rate_range_per_s is None


POISSON_ONE_WORKER = tuple(n for n in SUITE if _one_worker_poisson(n))
"""The suite's scenarios where the optimum applies (the reference of conclusion C1)."""
NON_POISSON = tuple(
    n for n in SUITE if not _one_worker_poisson(n) and scenario_config(n).arrivals.rate_range_per_s is None
)
"""The suite's scenarios with changing load, traces or several workers (conclusions C2, C3)."""


def _costs_of_episodes(
    episodes: Sequence[CandidateEpisode], setting: Setting, config: SystemConfig
) -> list[float]:
    qualities, reward = setting.qualities_of(config), setting.reward(config)
    return [e.terms.cost_per_request(qualities, reward) for e in episodes]


def _costs_of_run(run: AgentRun, setting: Setting, config: SystemConfig) -> list[float]:
    return run.costs(setting.qualities_of(config), setting.reward(config))


def _entry(
    costs: list[float], reference: list[float] | None, p99: list[float], quality: list[float]
) -> dict[str, Any]:
    return {
        "cost": list(mean_ci95(costs)),
        "gap": list(paired_gap(costs, reference)) if reference is not None else [math.nan, math.nan],
        "p99_ms": mean_ci95(p99)[0],
        "quality": mean_ci95(quality)[0],
    }


def run_study(
    scenarios: Sequence[str],
    settings: Sequence[Setting],
    seeds: Sequence[int],
    checkpoints: Sequence[Path],
    backend: Backend,
    horizon_s: float | None = None,
    log: Any = print,
    console: Any = None,
) -> dict[str, Any]:
    """Every agent of the headline comparisons on ``scenarios`` under every setting; returns
    JSON-ready data: per scenario and setting, per agent, the cost, the gap to the reference, the
    p99 latency and the quality, and the retuned parameters. ``horizon_s``: simulated seconds of
    every episode (None: each scenario's)."""
    tuned: dict[tuple[str, str], dict[str, Any]] = {}
    for name in scenarios:
        config = scenario_config(name, horizon_s)
        runs = tuning_runs(config, backend)
        for setting in settings:
            log(f"{name}: retuning timeout and util_switch for {setting.label}")
            objective = CostObjective(setting.qualities_of(config), setting.reward(config))
            tuned[(name, setting.label)] = tune_for_objective(runs, objective)
    cells = []
    for name in scenarios:
        config = scenario_config(name, horizon_s)
        for setting in settings:
            for spec in ("optimal", "proposed"):
                cells.append(Cell((name, setting.label, spec), spec, setting.apply(config), tuple(seeds)))
        for path in checkpoints:
            cells.append(Cell((name, "-", str(path)), str(path), config, tuple(seeds)))
    log(f"{len(cells)} cells of the optimum, the proposed scheduler and the learned agents")
    results = run_cells(backend, cells, console)
    out: dict[str, Any] = {}
    for name in scenarios:
        config = scenario_config(name, horizon_s)
        evaluation = tuning_runs(config, backend, seeds)
        out[name] = {}
        for setting in settings:
            agents: dict[str, tuple[list[float], list[float], list[float]]] = {}
            for spec in ("timeout", "util_switch"):
                params = tuned[(name, setting.label)][spec]["params"]
                (episodes,) = evaluation.episodes(spec, [params])
                agents[spec] = (
                    _costs_of_episodes(episodes, setting, config),
                    [e.latency_p99_ms for e in episodes],
                    [e.terms.mean_quality(setting.qualities_of(config)) for e in episodes],
                )
            runs: dict[str, AgentRun | str] = {
                spec: results[(name, setting.label, spec)] for spec in ("optimal", "proposed")
            }
            runs.update({Path(p).stem: results[(name, "-", str(p))] for p in checkpoints})
            for label, run in runs.items():
                if isinstance(run, AgentRun):
                    quality = [t.mean_quality(setting.qualities_of(config)) for t in run.terms()]
                    agents[label] = (
                        _costs_of_run(run, setting, config),
                        run.values("latency_p99_ms"),
                        quality,
                    )
            reference = "optimal" if "optimal" in agents else "timeout"
            ref_costs = agents[reference][0]
            out[name][setting.label] = {
                "reference": reference,
                "proposed_vs_util_switch": list(paired_gap(agents["proposed"][0], agents["util_switch"][0]))
                if "proposed" in agents
                else [math.nan, math.nan],
                "agents": {k: _entry(c, ref_costs, p, q) for k, (c, p, q) in agents.items()},
                "tuned": {k: v["params"] for k, v in tuned[(name, setting.label)].items()},
            }
    return {"scenarios": out}
