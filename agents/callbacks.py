"""Training callbacks: atomic checkpoints, and evaluation on the simulator with domain metrics in
TensorBoard (score and cost per request, latency, SLO attainment, throughput, utilisation, model
mix, drops, the gap to the best of greedy, the timeout and the proposed scheduler, and the gap to
the exact optimum where it applies)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.checkpoint import Checkpoint, RLScheduler, observation_normalization, save_checkpoint
from agents.optimal import OptimalScheduler
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_json_atomic
from batchenv.metrics import EpisodeMetrics, compute_metrics
from batchenv.sim import Simulator, simulate

__all__ = ["REFERENCE_AGENTS", "CheckpointEveryCallback", "DomainEvalCallback", "optimal_scheduler"]

REFERENCE_AGENTS = ("greedy", "timeout", "proposed")
"""The evaluation's reference on every target is the best of these (by mean cost per request):
no tuning on the target is needed (``timeout`` takes its tuned parameters where
``agents/tuned/<target>.yaml`` has them), and ``proposed`` adapts to any arrivals."""


def optimal_scheduler(config: SystemConfig, action_set: str = "any"):
    """The exact optimum (agents.optimal) as a scheduler for a fixed-rate config the solver
    applies to (Poisson, one worker, ``w_slo = 0``); None otherwise. Solutions are cached by
    agents.smdp."""
    arrivals = config.arrivals
    if arrivals.rate_range_per_s is not None:
        return None
    try:
        return OptimalScheduler(config, arrivals.rate_per_s, action_set=action_set)
    except ConfigError:  # the solver's scope is checked in one place, agents.smdp.check_supported
        return None


class CheckpointEveryCallback(BaseCallback):
    """Save a self-contained checkpoint every ``save_freq`` environment steps (all envs counted).

    :param save_freq: environment steps between checkpoints.
    :param directory: where ``step_{timesteps}.zip`` files go.
    :param config: the training SystemConfig (stored in each checkpoint).
    :param algo: the algorithm name.
    :param extra: more metadata for every checkpoint (e.g. the training command).
    """

    def __init__(self, save_freq: int, directory: Path, config: SystemConfig, algo: str, extra: dict) -> None:
        super().__init__()
        self.save_freq = save_freq
        self.directory = Path(directory)
        self.config = config
        self.algo = algo
        self.extra = extra
        self._next = save_freq

    def _on_training_start(self) -> None:
        # a resumed model starts at its own timestep count: the next checkpoint is save_freq on
        self._next = self.num_timesteps + self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.save_freq
            path = self.directory / f"step_{self.num_timesteps}.zip"
            save_checkpoint(
                self.model,
                path,
                self.config,
                algo=self.algo,
                vecnormalize=self.model.get_vec_normalize_env(),
                extra=self.extra,
            )
            if self.verbose:
                print(f"checkpoint: {path}")
        return True


class DomainEvalCallback(BaseCallback):
    """Every ``eval_freq`` environment steps, run the current policy deterministically on the
    simulator for each evaluation target and seed (common random numbers: the same seeds every
    time), log the domain metrics to TensorBoard under ``eval/``, append them to
    ``evaluations.json``, and keep the best model as ``best_model.zip``.

    :param targets: ``(label, config)`` pairs to evaluate on: the training config at fixed rates
        (``rate_50``, ...), the training config itself (``scenario``), or named scenarios.
    :param seeds: evaluation seeds (keep them apart from the training seeds).
    :param horizon_s: simulated time per evaluation episode (s).
    :param listeners: called with each evaluation's record (e.g. to report it to Ray Tune).

    On every target the reference is the best of :data:`REFERENCE_AGENTS` (``timeout`` with its
    tuned parameters when ``agents/tuned/<target>.yaml`` has them), run once on the same seeds:
    ``gap_to_reference`` = (cost - reference cost) / reference cost, per target and averaged
    over the targets (the objective: the best model has the lowest mean). Where the exact
    optimum applies (Poisson, one worker, fixed rate), the optimal scheduler runs on the same
    seeds too and ``gap_to_optimal`` = (cost - optimal cost) / optimal cost
    (docs/design.md, "Metrics"); ``gap_to_optimal_env_actions`` compares with the optimum over
    the env's own actions (whole-queue batches, or the table sizes with ``batch_choice``).
    The optimal scheduler minimises the long-run average cost, so on short evaluation episodes
    (``--eval-horizon-s``, 20 s by default) a policy can cost a little less than it on the same
    arrivals: a gap slightly below zero is noise of the episodes' length, not a better policy.
    """

    def __init__(
        self,
        eval_freq: int,
        run_dir: Path,
        config: SystemConfig,
        algo: str,
        *,
        targets: list[tuple[str, SystemConfig]],
        seeds: list[int],
        horizon_s: float,
        extra: dict,
        listeners: list[Callable[[dict[str, Any]], None]] | None = None,
    ) -> None:
        super().__init__()
        self.eval_freq = eval_freq
        self.run_dir = Path(run_dir)
        self.config = config
        self.algo = algo
        self.extra = extra
        self.seeds = seeds
        self.horizon_s = horizon_s
        self.labels = [label for label, _ in targets]
        self.configs = [target for _, target in targets]
        self.listeners = list(listeners or [])
        self.best_gap = math.inf
        self.history: list[dict[str, Any]] = []
        self._references: dict[str, dict[str, float]] = {}
        self._next = eval_freq

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps + self.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()

    def _run(self, scheduler: Any, config: SystemConfig, sim: Simulator) -> dict[str, float]:
        episodes = [
            compute_metrics(simulate(config, scheduler, seed, horizon_s=self.horizon_s, sim=sim))
            for seed in self.seeds
        ]
        return _summarise(episodes, config)

    def _reference(self, label: str, config: SystemConfig, sim: Simulator) -> dict[str, float]:
        """Costs per request of the references on this target (computed once, then cached)."""
        if label not in self._references:
            from agents.registry import make_agent

            costs = {
                name: self._run(make_agent(name, config), config, sim)["cost_per_request"]
                for name in REFERENCE_AGENTS
            }
            env_actions = "table" if self.config.env.batch_choice else "whole"
            for suffix, action_set in (("", "any"), ("_env_actions", env_actions)):
                optimal = optimal_scheduler(config, action_set)
                if optimal is not None:
                    costs[f"optimal{suffix}"] = self._run(optimal, config, sim)["cost_per_request"]
            self._references[label] = costs
        return self._references[label]

    def evaluate(self) -> dict[str, Any]:
        """Evaluate the current model now; returns the logged record."""
        model: Any = self.model  # an SB3 model with a Box observation and Discrete action space
        checkpoint = Checkpoint(
            path=self.run_dir / "current.zip",
            model=model,
            config=self.config,
            meta={
                "algo": self.algo,
                "n_observations": int(np.prod(model.observation_space.shape)),
                "n_actions": int(model.action_space.n),
                "observation_normalization": _current_normalization(self.model),
            },
        )
        record: dict[str, Any] = {"timesteps": int(self.num_timesteps), "per_rate": {}}
        scores, gaps, reference_gaps = [], [], []
        for label, config in zip(self.labels, self.configs, strict=True):
            sim = Simulator(config, record=True)
            summary = self._run(RLScheduler(checkpoint, config), config, sim)
            references = self._reference(label, config, sim)
            cost = summary["cost_per_request"]
            reference = min(references[name] for name in REFERENCE_AGENTS)
            summary["reference_cost_per_request"] = reference
            summary["gap_to_reference"] = (cost - reference) / reference
            # the exact optimum on the same arrivals (common random numbers): a low-noise gap
            for suffix in ("", "_env_actions"):
                optimum = references.get(f"optimal{suffix}")
                if optimum is not None:
                    summary[f"optimal_cost_per_request{suffix}"] = optimum
                    summary[f"gap_to_optimal{suffix}"] = (cost - optimum) / optimum
            if "gap_to_optimal" in summary:
                gaps.append(summary["gap_to_optimal"])
            reference_gaps.append(summary["gap_to_reference"])
            record["per_rate"][label] = summary
            scores.append(summary["score_per_request"])
            for key, value in summary.items():
                self.logger.record(f"eval/{label}/{key}", value)
        record["score_per_request"] = float(np.mean(scores))
        record["gap_to_reference"] = float(np.mean(reference_gaps))
        record["worst_gap_to_reference"] = float(np.max(reference_gaps))
        self.logger.record("eval/score_per_request", record["score_per_request"])
        self.logger.record("eval/gap_to_reference", record["gap_to_reference"])
        self.logger.record("eval/worst_gap_to_reference", record["worst_gap_to_reference"])
        if gaps:
            record["gap_to_optimal"] = float(np.mean(gaps))
            self.logger.record("eval/gap_to_optimal", record["gap_to_optimal"])
        self.logger.dump(self.num_timesteps)
        self.history.append(record)
        write_json_atomic(self.run_dir / "evaluations.json", self.history)
        if record["gap_to_reference"] < self.best_gap:
            self.best_gap = record["gap_to_reference"]
            save_checkpoint(
                self.model,
                self.run_dir / "best_model.zip",
                self.config,
                algo=self.algo,
                vecnormalize=self.model.get_vec_normalize_env(),
                extra={**self.extra, "eval": record},
            )
        if self.verbose:
            gap = f", gap to optimum {record['gap_to_optimal']:+.2%}" if gaps else ""
            print(
                f"eval @ {self.num_timesteps}: gap to reference {record['gap_to_reference']:+.2%} "
                f"(worst {record['worst_gap_to_reference']:+.2%}){gap}"
            )
        for listener in self.listeners:
            listener(record)
        return record


def _current_normalization(model: Any) -> dict[str, Any] | None:
    return observation_normalization(model.get_vec_normalize_env())


def _summarise(runs: list[EpisodeMetrics], config: SystemConfig) -> dict[str, float]:
    """Mean over seeds of the scalar metrics, plus the model mix."""
    keys = [
        "score_per_request",
        "cost_per_request",
        "latency_mean_ms",
        "latency_p99_ms",
        "slo_attainment",
        "throughput_per_s",
        "goodput_per_s",
        "utilisation",
        "drop_rate",
        "mean_quality",
        "mean_batch_size",
        "n_forced",
    ]
    summary = {key: float(np.mean([getattr(r, key) for r in runs])) for key in keys}
    for name in config.model_names:
        summary[f"model_mix/{name}"] = float(np.mean([r.model_mix[name] for r in runs]))
    return summary
