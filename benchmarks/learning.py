"""Learning benchmark: RL agents trained with several seeds, assessed on fresh seeds against
greedy, the tuned timeout and the exact optimum on every one-worker scenario of the suite, the
low rates and the held-out halves of the traces; every figure is a mean with its 95% confidence
interval over the training seeds.

Each experiment (:data:`EXPERIMENTS`) is one ``train.py`` command whose flags this script owns;
it is trained once per seed as Ray Tune trials (``train.py --seeds``, the ``dist`` extra) into
``<runs-dir>/<experiment>/`` (relative to the repository), which also holds the sweep's
``aggregate.json`` (the training-time evaluations). Then every seed's model is assessed on
:func:`assessment_scenarios` with fresh seeds (never used for training or model selection;
a quiet scenario gets more of them, up to :data:`MIN_REQUESTS` requests), paired with
the references on the same arrivals (``--model best``, the default, assesses each seed's
``best_model.zip``, selected by the training evaluation on training-side scenarios only):

- ``greedy`` (everything at once on LLM-1) and the ``timeout`` baseline tuned by grid search on
  training seeds (:mod:`evaluation.tuning`): on a trace's ``_test`` half the timeout is tuned on its
  ``_train`` half, elsewhere on the scenario itself (``agents/tuned/`` when it has it); the
  goal is a cost within 2% of the better of the two everywhere;
- the exact optimum (``agents.optimal``) where it applies (Poisson, one worker), and the
  proposed scheduler, for information.

Gaps are (cost - reference cost) / reference cost of the mean cost per request over the
assessment seeds (docs/design.md, "Metrics"); per experiment and scenario the table gives the
mean of the per-seed gaps with the 95% CI (Student t) across training seeds, and the worst seed.
The shipped checkpoints (``checkpoints/*.zip``) are assessed the same way (one model each).

Usage::

    python benchmarks/learning.py                    # train what is missing (seeds 0-2), assess, write
    python benchmarks/learning.py --collect-only     # assess finished runs only
    python benchmarks/learning.py --experiments ppo_mixture --seeds 0-4 --jobs 2
    python benchmarks/learning_bursts.py             # the agents' decisions on spikes (bursty_low)

Writes ``docs/results/learning.md``, ``benchmarks/results/learning.json`` and the learning curves
``benchmarks/results/learning.png``. The tuned timeouts are cached in
``benchmarks/results/learning_timeouts.json`` (recomputed when a scenario changes).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.baselines import BASELINES  # noqa: E402
from agents.checkpoint_safety import sha256_of  # noqa: E402
from agents.hyperparameters import load_hyperparams  # noqa: E402
from agents.registry import AgentSpecError, make_agent  # noqa: E402
from agents.tuned_params import config_fingerprint, load_tuned, tuning_target  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.scenarios import SUITE, load_scenario, trace_scenarios  # noqa: E402
from batchenv.seeds import parse_seeds  # noqa: E402
from batchenv.sim import Simulator, simulate  # noqa: E402
from benchmarks.learning_gate import gate  # noqa: E402
from evaluation.plan import seeds_for_requests  # noqa: E402
from evaluation.stats import mean_ci95  # noqa: E402
from evaluation.tuning import tune_scenario  # noqa: E402
from execution.backends import LocalBackend  # noqa: E402
from execution.run import run_tasks  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"

TRAINING_EVALUATION = (
    "poisson_rate_1,poisson_rate_10,default,poisson_50,high_load,bursty,"
    "azure_trace_native_train,mooncake_conv_30_train,azure_trace_60_train"
)
"""What the runs evaluate on while training (model selection): Poisson at 1 to 400/s, the bursty
MMPP and the *training* halves of three trace scenarios; never a ``_test`` half."""
SLO_EVALUATION = f"{TRAINING_EVALUATION},azure_trace_slo_train"
"""The training evaluation of the experiments across objectives: :data:`TRAINING_EVALUATION` and
the first half of the SLO scenario (``azure_trace_slo``: 0.2 per request over 80 ms)."""
WIDE_LAYERS = "policy_kwargs:{net_arch: [256, 256]}"
"""The ``--hyperparams`` override of the wide experiments: two hidden layers of 256 units in the
policy and the value networks (64 in agents/hyperparams/ppo.yml)."""

ENTROPY_BONUS = "ent_coef:0.01"
"""The ``--hyperparams`` override of the entropy experiment: SB3's entropy coefficient (0 in
agents/hyperparams/ppo.yml)."""
SMALL_ENTROPY_BONUS = "ent_coef:0.001"
"""The override of the small-entropy experiment: a tenth of :data:`ENTROPY_BONUS`."""


@dataclass(frozen=True)
class Experiment:
    """One training setup: ``train.py --algo <algo> <flags>``, trained once per seed."""

    name: str
    algo: str
    flags: tuple[str, ...]
    description: str

    def command(self, seeds: str, runs_dir: str, jobs: int) -> list[str]:
        """The train.py command line that trains every seed of the experiment."""
        return [
            "python",
            "train.py",
            "--algo",
            self.algo,
            *self.flags,
            "--seeds",
            seeds,
            "--jobs",
            str(jobs),
            "-f",
            runs_dir,
            "--run-name",
            self.name,
            "--no-progress",
        ]


def _mixture_flags(
    steps: int,
    *hyperparams: str,
    env: str = "default_mixture",
    eval_scenarios: str = TRAINING_EVALUATION,
) -> tuple[str, ...]:
    flags = (
        "--env",
        env,
        "-n",
        str(steps),
        "--eval-freq",
        "100000",
        "--eval-scenarios",
        eval_scenarios,
        "--eval-horizon-s",
        "30",
        "--save-freq",
        "250000",
    )
    return (*flags, "--hyperparams", *hyperparams) if hyperparams else flags


def _entry_overrides(algo: str, entry: str = "default_mixture") -> tuple[str, ...]:
    """``--hyperparams`` overrides (``KEY:VALUE``, sorted by key) that give a run on another env
    file, which train.py looks up under ``default``, the hyperparameters of ``entry`` of
    ``agents/hyperparams/<algo>.yml``: the keys where the two entries differ."""
    default, own = load_hyperparams(algo, "default"), load_hyperparams(algo, entry)
    return tuple(
        f"{key}:{str(value).lower() if isinstance(value, bool) else value}"
        for key, value in sorted(own.items())
        if default.get(key) != value
    )


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            "ppo_mixture",
            "ppo",
            _mixture_flags(1_000_000),
            "PPO on default_mixture (agents/hyperparams/ppo.yml, entry default_mixture: reward per "
            "request, 1 s time discount, no centring), 1M steps",
        ),
        Experiment(
            "dqn_mixture",
            "dqn",
            _mixture_flags(1_000_000),
            "DQN on default_mixture (agents/hyperparams/dqn.yml, entry default_mixture: reward per "
            "request, 1 s time discount, no centring), 1M steps",
        ),
        Experiment(
            "ppo_mixture_plain_reward",
            "ppo",
            _mixture_flags(300_000, "reward_per_request:false"),
            "ablation: ppo_mixture without the reward per request (the plain regret), 300k steps "
            "(compared with ppo_mixture's training evaluation at the same step)",
        ),
        Experiment(
            "ppo_mixture_observation",
            "ppo",
            _mixture_flags(
                300_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_observation.yaml",
            ),
            "ablation: ppo_mixture with rates on a log scale, 50 ms and 10 s rate estimates and "
            "unbiased estimates (benchmarks/configs/default_mixture_observation.yaml), 300k steps "
            "(compared with ppo_mixture's training evaluation at the same step)",
        ),
        Experiment(
            "ppo_mixture_spikes",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_spikes.yaml",
            ),
            "ppo_mixture trained on default_mixture plus a sixth component, sharp spikes on a quiet "
            "server (400x bursts of 100 ms every 5 s on average, mean 1-30 requests/s; "
            "benchmarks/configs/default_mixture_spikes.yaml; the hyperparameters of the "
            "default_mixture entry), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high.yaml",
            ),
            "ppo_mixture trained on default_mixture plus a sixth component, Poisson at 150-600 "
            "requests/s drawn uniformly (25% of the episodes above 250/s instead of 12%; "
            "benchmarks/configs/default_mixture_high.yaml; the hyperparameters of the "
            "default_mixture entry), 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high across objectives: 30% of the episodes draw an SLO bound (50-250 ms) "
            "and a penalty per late request (0.05-0.5), and the observation shows the episode's "
            "objective (benchmarks/configs/default_mixture_slo.yaml); the training evaluation "
            "adds azure_trace_slo_train (the SLO scenario's first half); the hyperparameters of "
            "the default_mixture entry; 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo_low",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo_low.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_slo with 15% of the episodes drawing an SLO objective instead of 30% "
            "(benchmarks/configs/default_mixture_slo_low.yaml), 1M steps",
        ),
        Experiment(
            "ppo_mixture_slo_gated",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_slo_gated.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_slo with the oldest-wait entry of the objective read only in the episodes "
            "with an SLO penalty, 0 in the others (env.observe_slo_wait: penalised; "
            "benchmarks/configs/default_mixture_slo_gated.yaml), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_observed",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_observed.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_slo without the SLO episodes (its observation and training "
            "evaluation on default_mixture_high; benchmarks/configs/default_mixture_high_observed.yaml), "
            "1M steps",
        ),
        Experiment(
            "ppo_mixture_high_blank",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_blank.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_high_observed with both entries of the objective reading 0 "
            "(env.observe_slo_wait: penalised, no SLO episode; "
            "benchmarks/configs/default_mixture_high_blank.yaml): what ppo_mixture_high_slo_eval "
            "sees, on a network with two more inputs, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_slo_eval",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ablation: ppo_mixture_high with the SLO scenario's first half in its training "
            "evaluation, nothing else changed (ppo_mixture_high_observed without the observation "
            "entries), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_short",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                env="benchmarks/configs/default_mixture_high_short.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with 10 s training episodes instead of 60 s, six times as "
            "many draws of the workload per step (benchmarks/configs/default_mixture_high_short.yaml), "
            "1M steps",
        ),
        Experiment(
            "ppo_mixture_high_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with two hidden layers of 256 units instead of 64 in the "
            "policy and the value networks, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_short_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high_short.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_short and ppo_mixture_high_wide together: 10 s training episodes and "
            "two hidden layers of 256 units, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                ENTROPY_BONUS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_slo_eval with an entropy bonus (ent_coef 0.01 instead of 0): the "
            "policy keeps trying the other models and batch choices for longer, 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy_small",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                SMALL_ENTROPY_BONUS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_entropy with a tenth of its bonus (ent_coef 0.001), 1M steps",
        ),
        Experiment(
            "ppo_mixture_high_entropy_wide",
            "ppo",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("ppo"),
                ENTROPY_BONUS,
                WIDE_LAYERS,
                env="benchmarks/configs/default_mixture_high.yaml",
                eval_scenarios=SLO_EVALUATION,
            ),
            "ppo_mixture_high_entropy and ppo_mixture_high_wide together: the entropy bonus 0.01 and "
            "two hidden layers of 256 units, 1M steps",
        ),
        Experiment(
            "dqn_mixture_high",
            "dqn",
            _mixture_flags(
                1_000_000,
                *_entry_overrides("dqn"),
                env="benchmarks/configs/default_mixture_high.yaml",
            ),
            "dqn_mixture trained on default_mixture_high (ppo_mixture_high's mixture: 25% of the "
            "episodes above 250/s; the hyperparameters of the default_mixture entry), 1M steps",
        ),
    )
}
DEFAULT_EXPERIMENTS = ("ppo_mixture", "dqn_mixture", "ppo_mixture_spikes")
ABLATIONS = ("ppo_mixture_plain_reward", "ppo_mixture_observation")
"""Experiments compared with ``ppo_mixture`` by their training evaluation only (not assessed)."""
RL_DOC_BEGIN = "<!-- benchmarks/learning.py: begin -->"
RL_DOC_END = "<!-- benchmarks/learning.py: end -->"
LOW_RATES = (
    "poisson_rate_1",
    "poisson_rate_3",
    "poisson_rate_10",
    "bursty_low",
    "azure_trace_native_test",
    "mooncake_conv_test",
)
"""Assessment scenarios below 10 requests/s (mean rate): the quiet servers of the summary."""
MODEL_CHOICE = {
    "best": "`best_model.zip`: the lowest mean gap to the reference of the training evaluation, on "
    "training-side scenarios only",
    "final": "`final_model.zip`: at the end of training",
}


def assessment_scenarios() -> list[str]:
    """Every one-worker scenario of the suite, three low rates and spikes on a quiet server
    (``bursty_low``), and the held-out (``_test``) half of every trace scenario."""
    one_worker = [name for name in SUITE if load_scenario(name).n_workers == 1]
    low = ["poisson_rate_1", "poisson_rate_3", "poisson_rate_10", "bursty_low"]
    return [*one_worker, *low, *(f"{name}_test" for name in trace_scenarios())]


SHIPPED = (
    "checkpoints/ppo_default.zip",
    "checkpoints/dqn_default.zip",
    "checkpoints/ppo_default_mixture.zip",
    "checkpoints/dqn_default_mixture.zip",
)
MIN_REQUESTS = 30_000
"""Least number of requests (expected: mean rate x horizon x episodes) that a scenario's
assessment holds, that of the default scenario's (five 60 s episodes at 100 requests/s): five
episodes of a quiet server hold a few hundred requests (bursty_low: about 750 in some 30 bursts,
whose sizes decide the gap), too few to tell a 2% gap from noise."""


def scenario_seeds(scenario: str, seeds: Sequence[int], horizon_s: float, min_requests: int) -> list[int]:
    """The assessment seeds of ``scenario``: ``seeds``, then the seeds that follow the last one,
    until the episodes hold at least ``min_requests`` requests on average (mean arrival rate x
    ``horizon_s`` each; :func:`evaluation.plan.seeds_for_requests`, the rule of ``evaluate.py
    --min-requests``). Busy scenarios keep ``seeds``; quiet ones get more episodes."""
    per_episode = load_scenario(scenario).arrivals.mean_rate_per_s * horizon_s
    return seeds_for_requests(seeds, per_episode, min_requests)


# --------------------------------------------------------------------------------------------
# References: the timeout tuned where it should be (the training half for a _test half)
# --------------------------------------------------------------------------------------------


def _tune_one(name: str) -> dict[str, Any]:
    config = tuning_target(load_scenario(name))
    record = load_tuned(config)
    if record is not None and "timeout" in record.agents:
        entry, source = record.agents["timeout"], f"agents/tuned/{config.name}.yaml"
    else:
        entry, source = tune_scenario(config, agents=["timeout"])["timeout"], "python -m apps.tune (grid)"
    return {
        "tuned_on": config.name,
        "fingerprint": config_fingerprint(config),
        "params": entry["params"],
        "training_cost_per_request": entry["cost_per_request"],
        "source": source,
    }


def tuned_timeouts(names: Sequence[str], cache: Path, jobs: int) -> dict[str, dict[str, Any]]:
    """The tuned timeout of every scenario (from ``cache`` when its training config is unchanged)."""
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    stale = [
        n
        for n in names
        if n not in known or known[n]["fingerprint"] != config_fingerprint(tuning_target(load_scenario(n)))
    ]
    if stale:
        print(f"tuning the timeout for {len(stale)} scenarios: {', '.join(stale)}", flush=True)
        with LocalBackend(jobs) as backend:
            outcomes = run_tasks(backend, _tune_one, [(name,) for name in stale])
        for name, outcome in zip(stale, outcomes, strict=True):
            known[name] = outcome.unwrap()
        write_json_atomic(cache, dict(sorted(known.items())))
    return {n: known[n] for n in names}


# --------------------------------------------------------------------------------------------
# Assessment: one agent on one scenario, every assessment seed
# --------------------------------------------------------------------------------------------


def _episodes(agent_spec: str, scenario: str, seeds: Sequence[int], horizon_s: float, timeout: dict) -> dict:
    """Per-seed metrics of one agent (a spec, ``timeout_tuned`` or a checkpoint path)."""
    import torch

    torch.set_num_threads(1)
    config = load_scenario(scenario).replace(horizon_s=horizon_s)
    try:
        if agent_spec == "timeout_tuned":
            agent = BASELINES["timeout"](config, **timeout["params"])
        else:
            agent = make_agent(agent_spec, config, tuned=False)
    except AgentSpecError as exc:  # not applicable (e.g. optimal on a trace)
        return {"not_applicable": str(exc)}
    sim = Simulator(config, record=True)
    rows = []
    for seed in seeds:
        m = compute_metrics(simulate(config, agent, seed, sim=sim))
        rows.append(
            {
                "seed": seed,
                "cost_per_request": m.cost_per_request,
                "latency_mean_ms": m.latency_mean_ms,
                "latency_p99_ms": m.latency_p99_ms,
                "slo_attainment": m.slo_attainment,
                "mean_quality": m.mean_quality,
                "model_mix": dict(m.model_mix),
            }
        )
    return {"per_seed": rows}


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _gap(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> float:
    """(mean cost - mean reference cost) / mean reference cost, on the same seeds."""
    ref = _mean(reference, "cost_per_request")
    return (_mean(rows, "cost_per_request") - ref) / ref


def shipping_gates(models: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """The shipping gate (:mod:`benchmarks.learning_gate`) of every model, by path."""
    print(f"shipping gate of {sum(map(len, models.values()))} models", flush=True)
    return {path: gate(REPO / path) for paths in models.values() for path in paths}


def gate_lines(result: dict[str, Any]) -> list[str]:
    """The shipping gate as a Markdown table (empty without one)."""
    gates = result.get("shipping_gate") or {}
    if not gates:
        return []
    lines = [
        "| model | default_randomised: mean / greedy (worst seed) | 200/s: mean / optimum | "
        "300/s: mean / optimum | passes |",
        "|---|---|---|---|---|",
    ]
    for path, g in gates.items():
        r = g["randomised"]
        lines.append(
            f"| `{path}` | {r['mean_over_greedy']:.4f} ({r['worst_seed_over_greedy']:.4f}) | "
            f"{g['rate_200']['mean_over_optimal']:.4f} | {g['rate_300']['mean_over_optimal']:.4f} | "
            f"{'yes' if g['passes'] else 'no'} |"
        )
    return lines


def _task_key(
    agent: str, scenario: str, seeds: Sequence[int], horizon_s: float, timeout: dict, hashes: dict[str, str]
) -> str:
    """What one assessment task's result depends on: the agent (a checkpoint by the SHA-256 of
    its bytes), the scenario's whole YAML, the seeds, the horizon and the tuned timeout."""
    if agent.endswith(".zip"):
        if agent not in hashes:
            hashes[agent] = sha256_of(REPO / agent)
        agent = f"checkpoint:{hashes[agent]}"
    text = json.dumps(
        [agent, load_scenario(scenario).to_yaml(), list(seeds), horizon_s, timeout["params"]], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def assess(
    models: dict[str, list[str]],
    scenarios: list[str],
    seeds: list[int],
    horizon_s: float,
    jobs: int,
    cache: Path | None = None,
    min_requests: int = MIN_REQUESTS,
) -> dict[str, Any]:
    """Assess ``models`` (label -> checkpoint paths, one per training seed) and the references on
    every scenario, on :func:`scenario_seeds` (``seeds``, more for a quiet scenario); returns per
    scenario the seeds, the references and, per label, the per-model gaps and their mean and CI
    across models. ``cache``: a JSON file of finished (agent, scenario) results,
    keyed by :func:`_task_key`, read first and written after every scenario (an interrupted or
    extended assessment computes only what is missing; the results do not depend on it)."""
    timeouts = tuned_timeouts(scenarios, RESULTS / "learning_timeouts.json", jobs)
    references = ("greedy", "timeout_tuned", "optimal", "proposed")
    done: dict[tuple[str, str], Any] = {}
    known = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    hashes: dict[str, str] = {}
    n_tasks = len(scenarios) * (len(references) + sum(len(paths) for paths in models.values()))
    print(f"assessing {n_tasks} (agent, scenario) pairs on seeds {seeds[0]}-{seeds[-1]}", flush=True)
    with LocalBackend(jobs) as backend:  # the execution layer's process pool
        for name in scenarios:  # one scenario at a time, saved to the cache after each
            own = scenario_seeds(name, seeds, horizon_s, min_requests)
            tasks = [(ref, name) for ref in references]
            tasks += [(path, name) for paths in models.values() for path in paths]
            keys = {t: _task_key(t[0], name, own, horizon_s, timeouts[name], hashes) for t in tasks}
            missing = [t for t in tasks if keys[t] not in known]
            outcomes = run_tasks(
                backend, _episodes, [(a, s, own, horizon_s, timeouts[s]) for a, s in missing]
            )
            for task, outcome in zip(missing, outcomes, strict=True):
                known[keys[task]] = outcome.unwrap()
            done.update({t: known[keys[t]] for t in tasks})
            if cache is not None and missing:
                write_json_atomic(cache, known)
    out: dict[str, Any] = {}
    for name in scenarios:
        refs = {ref: done[(ref, name)] for ref in references}
        greedy, timeout = refs["greedy"]["per_seed"], refs["timeout_tuned"]["per_seed"]
        best = greedy if _mean(greedy, "cost_per_request") <= _mean(timeout, "cost_per_request") else timeout
        entry: dict[str, Any] = {
            "seeds": [row["seed"] for row in greedy],
            "timeout": timeouts[name],
            "references": {
                ref: (
                    {k: _mean(r["per_seed"], k) for k in ("cost_per_request", "latency_p99_ms")}
                    if "per_seed" in r
                    else {"not_applicable": r["not_applicable"]}
                )
                for ref, r in refs.items()
            },
            "agents": {},
        }
        for label, paths in models.items():
            per_model = []
            for path in paths:
                rows = done[(path, name)]["per_seed"]
                row = {
                    "model": path,
                    "gap_to_baselines": _gap(rows, best),
                    "gap_to_greedy": _gap(rows, greedy),
                    "gap_to_timeout": _gap(rows, timeout),
                    **{k: _mean(rows, k) for k in ("cost_per_request", "latency_mean_ms", "latency_p99_ms")},
                    **{k: _mean(rows, k) for k in ("slo_attainment", "mean_quality")},
                    "model_mix": {
                        m: float(np.mean([r["model_mix"][m] for r in rows])) for m in rows[0]["model_mix"]
                    },
                }
                if "per_seed" in refs["optimal"]:
                    row["gap_to_optimal"] = _gap(rows, refs["optimal"]["per_seed"])
                per_model.append(row)
            summary = {}
            for key in ("gap_to_baselines", "gap_to_greedy", "gap_to_timeout", "gap_to_optimal"):
                values = [m[key] for m in per_model if key in m]
                if values:
                    mean, half = mean_ci95(values)
                    summary[key] = {"mean": mean, "ci95": half, "worst": max(values), "n": len(values)}
            for key in ("latency_mean_ms", "latency_p99_ms", "slo_attainment", "mean_quality"):
                summary[key] = {"mean": float(np.mean([m[key] for m in per_model]))}
            entry["agents"][label] = {"models": per_model, "summary": summary}
        out[name] = entry
    return out


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train_experiment(experiment: Experiment, args: argparse.Namespace) -> None:
    """Train every seed of ``experiment`` that has not finished (train.py --seeds; Ray Tune): all
    of them into ``<runs-dir>/<name>/``, or, when that sweep exists, the missing ones into a
    continuation sweep ``<runs-dir>/<name>+seeds<list>/``."""
    seeds = parse_seeds(args.seeds)
    finished = {_seed_of(p.parent) for p in _seed_runs(experiment, args.runs_dir, "final_model.zip")}
    missing = [seed for seed in seeds if seed not in finished]
    if not missing:
        print(f"{experiment.name}: every seed has finished", flush=True)
        return
    command = experiment.command(args.seeds, args.runs_dir, args.jobs)
    if (REPO / args.runs_dir / experiment.name).exists():
        text = ",".join(map(str, missing))
        name = f"{experiment.name}+seeds{text.replace(',', '_')}"
        if (REPO / args.runs_dir / name).exists():
            raise SystemExit(
                f"learning.py: {args.runs_dir}/{name} exists but seeds {text} have not finished there "
                "(an interrupted sweep): move it away to train them again"
            )
        command[command.index("--seeds") + 1] = text
        command[command.index("--run-name") + 1] = name
    print(f"{experiment.name}: {shlex.join(command)}", flush=True)
    subprocess.run([sys.executable, *command[1:]], cwd=REPO, check=True)


def sweep_folders(experiment: Experiment, runs_dir: str) -> list[Path]:
    """The sweep folders of ``experiment``: ``<runs-dir>/<name>/`` and any continuation
    ``<runs-dir>/<name>+<suffix>/`` (a sweep that trains the seeds an interrupted one did not
    finish, with the command in its ``command.txt``)."""
    folder = REPO / runs_dir / experiment.name
    return [f for f in (folder, *sorted(folder.parent.glob(f"{experiment.name}+*"))) if f.is_dir()]


def _seed_runs(
    experiment: Experiment, runs_dir: str, name: str, seeds: Collection[int] | None = None
) -> list[Path]:
    """The file ``name`` of every finished seed's run folder (one with ``final_model.zip``: an
    interrupted or running seed is left out), in seed order; only the ``seeds`` given, if any (the
    folders may hold more seeds than a command asks for, trained by another command)."""
    found = [
        run / name
        for folder in sweep_folders(experiment, runs_dir)
        for run in folder.glob(f"{experiment.algo}_*_seed*")
        if (run / "final_model.zip").is_file()
        and (run / name).is_file()
        and (seeds is None or _seed_of(run) in seeds)
    ]
    return sorted(found, key=lambda p: _seed_of(p.parent))


def trained_models(
    experiment: Experiment, runs_dir: str, which: str, seeds: Collection[int] | None = None
) -> list[str]:
    """Every finished seed's ``best_model.zip`` (lowest mean gap of the training evaluation, on
    the training-side scenarios) or ``final_model.zip`` (relative paths), in seed order; only the
    ``seeds`` given, if any."""
    runs = [p.parent for p in _seed_runs(experiment, runs_dir, "final_model.zip", seeds)]
    return [str((run / f"{which}_model.zip").relative_to(REPO)) for run in runs]


def sweep_commands(experiment: Experiment, runs_dir: str, models: Sequence[str] | None = None) -> list[str]:
    """The commands that trained the experiment's sweep folders (their ``command.txt``); with
    ``models`` (relative paths), only those of the folders that hold one of them."""
    used = None if models is None else {(REPO / m).parent.parent for m in models}
    return [
        (f / "command.txt").read_text().strip()
        for f in sweep_folders(experiment, runs_dir)
        if (f / "command.txt").is_file() and (used is None or f in used)
    ]


def trained_steps(model: str) -> int:
    """Environment steps of the run that holds ``model`` (its last training evaluation)."""
    history = json.loads((REPO / model).parent.joinpath("evaluations.json").read_text())
    return int(history[-1]["timesteps"]) if history else 0


def kept_evaluation(model: str) -> dict[str, Any]:
    """The training evaluation ``model`` was saved at: for ``best_model.zip`` the one it was kept
    at (the first with the lowest mean gap, as the run keeps it), else the last one (the end of
    the run); ``{}`` without evaluations."""
    history = json.loads((REPO / model).parent.joinpath("evaluations.json").read_text())
    if not history:
        return {}
    if Path(model).name != "best_model.zip":
        return history[-1]
    return min(history, key=lambda h: h["gap_to_reference"])


def kept_at_step(model: str) -> int:
    """Environment steps at which ``model`` was saved (:func:`kept_evaluation`)."""
    return int(kept_evaluation(model).get("timesteps", 0))


def _seed_of(run: Path) -> int:
    return int(run.name.rsplit("seed", 1)[1])


def training_evaluation_at(
    experiment: Experiment, runs_dir: str, step: int, seeds: Collection[int] | None = None
) -> dict[str, Any] | None:
    """Every target's gap to the reference in the training evaluation at ``step`` (mean and 95%
    CI across seeds; only the ``seeds`` given, if any), or None when not every seed has an
    evaluation there."""
    records = []
    for path in _seed_runs(experiment, runs_dir, "evaluations.json", seeds):
        record = next((h for h in json.loads(path.read_text()) if h["timesteps"] == step), None)
        if record is None:
            return None
        records.append(record)
    if not records:
        return None
    out: dict[str, Any] = {}
    for label in records[0]["per_rate"]:
        mean, half = mean_ci95([r["per_rate"][label]["gap_to_reference"] for r in records])
        out[label] = {"mean": mean, "ci95": half, "n": len(records)}
    mean, half = mean_ci95([r["gap_to_reference"] for r in records])
    out["mean over targets"] = {"mean": mean, "ci95": half, "n": len(records)}
    return out


def training_curves(
    experiment: Experiment, runs_dir: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per evaluation step: the mean gap to the reference over the training evaluations of every
    seed (only the ``seeds`` given, if any; mean and 95% CI across seeds)."""
    runs = _seed_runs(experiment, runs_dir, "evaluations.json", seeds)
    histories = [json.loads(p.read_text()) for p in runs]
    steps = sorted({h["timesteps"] for history in histories for h in history})
    curve = []
    for step in steps:
        values = [h["gap_to_reference"] for history in histories for h in history if h["timesteps"] == step]
        if len(values) == len(histories):
            mean, half = mean_ci95(values)
            curve.append({"timesteps": step, "mean": mean, "ci95": half, "n": len(values)})
    return curve


def target_curves(
    experiment: Experiment, runs_dir: str, target: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per evaluation step, one target of the training evaluation across seeds (only the ``seeds``
    given, if any): its gap to the reference (mean and 95% CI) and the mean share of requests
    each model served (``model_mix/<name>`` of the evaluation). Steps that not every seed reached
    are left out; empty when the target is not evaluated."""
    runs = _seed_runs(experiment, runs_dir, "evaluations.json", seeds)
    histories = [json.loads(p.read_text()) for p in runs]
    steps = sorted({h["timesteps"] for history in histories for h in history})
    curve = []
    for step in steps:
        cells = [
            h["per_rate"][target]
            for history in histories
            for h in history
            if h["timesteps"] == step and target in h["per_rate"]
        ]
        if not cells or len(cells) != len(histories):
            continue
        mean, half = mean_ci95([c["gap_to_reference"] for c in cells])
        mix = sorted(k for k in cells[0] if k.startswith("model_mix/"))
        shares = {k.removeprefix("model_mix/"): float(np.mean([c[k] for c in cells])) for k in mix}
        curve.append({"timesteps": step, "mean": mean, "ci95": half, "n": len(cells), "model_mix": shares})
    return curve


def target_seeds(
    experiment: Experiment, runs_dir: str, target: str, seeds: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per seed, one target of the training evaluation: its gap to the reference at the step the
    run kept (the first step with the lowest mean gap over the targets, as the run's callback keeps
    ``best_model.zip``), at the step where the target itself was lowest, and at the last step.
    Would a model kept on this target alone have been better? Empty when it is not evaluated."""
    rows = []
    for path in _seed_runs(experiment, runs_dir, "evaluations.json", seeds):
        history = [h for h in json.loads(path.read_text()) if target in h["per_rate"]]
        if not history:
            continue
        points = {
            "kept": min(history, key=lambda h: h["gap_to_reference"]),
            "best": min(history, key=lambda h: h["per_rate"][target]["gap_to_reference"]),
            "last": history[-1],
        }
        row: dict[str, Any] = {"seed": _seed_of(path.parent)}
        for which, h in points.items():
            row[f"{which}_step"] = int(h["timesteps"])
            row[f"{which}_gap"] = float(h["per_rate"][target]["gap_to_reference"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _gap_cell(summary: dict[str, Any], key: str) -> str:
    if key not in summary:
        return "n/a"
    s = summary[key]
    ci = "" if not math.isfinite(s["ci95"]) else f" ± {s['ci95']:.2%}"
    return f"{_pct(s['mean'])}{ci}"


def _assessed_labels(result: dict[str, Any]) -> list[str]:
    """The assessed experiments, then the shipped checkpoints (the columns of the tables)."""
    names = [n for n, e in result["experiments"].items() if e.get("assessed", True)]
    return names + [Path(p).stem for p in result.get("shipped", [])]


def _steps_text(trained: int | None, kept: int | None) -> str:
    """`` (kept at 300,000 of 1,007,616 steps)``, or `` (1,007,616 steps)`` for the last model."""
    if trained is None:
        return ""
    if kept is None or kept == trained:
        return f" ({trained:,} steps)"
    return f" (kept at {kept:,} of {trained:,} steps)"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def comparison_lines(result: dict[str, Any], heading: str) -> list[str]:
    """The table of the experiments' own training evaluation at a common step (the ablations),
    under a ``heading`` title (``"##"``, ``"###"``); empty when fewer than two have it."""
    lines: list[str] = []
    at_step = result.get("training_evaluation_at") or {}
    compared = {name: table for name, table in at_step.get("experiments", {}).items() if table}
    if len(compared) > 1:
        names = list(compared)
        targets = list(next(iter(compared.values())))
        lines += [
            f"{heading} Training evaluation at {at_step['step']:,} steps: what each change does",
            "",
            "The runs' own evaluation (training-side scenarios only, seeds "
            "10000-10001, 30 s) at the same step: gap to the best of greedy, the timeout and the "
            "proposed scheduler, mean ± 95% CI across training seeds.",
            "",
            "| target | "
            + " | ".join(f"{n} ({_seeds(compared[n]['mean over targets']['n'])})" for n in names)
            + " |",
            "|---|" + "---|" * len(names),
        ]
        for target in targets:
            cells = []
            for name in names:
                cell = compared[name].get(target)
                ci = "" if cell is None or not math.isfinite(cell["ci95"]) else f" ± {cell['ci95']:.2%}"
                cells.append("n/a" if cell is None else f"{_pct(cell['mean'])}{ci}")
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def target_curve_lines(result: dict[str, Any]) -> list[str]:
    """One table per target of ``--curve-targets``: the training evaluation at every step, per
    experiment (gap to the reference, mean ± 95% CI across seeds, and the share of requests on
    the first model); empty without such targets."""
    lines: list[str] = []
    for target in result["meta"].get("curve_targets", []):
        curves = {
            name: experiment["target_curves"][target]
            for name, experiment in result["experiments"].items()
            if experiment.get("target_curves", {}).get(target)
        }
        if not curves:
            continue
        names = list(curves)
        first_model = next(iter(next(iter(curves.values()))[0]["model_mix"]), None)
        steps = sorted({row["timesteps"] for curve in curves.values() for row in curve})
        lines += [
            f"## Over training: {target}",
            "",
            f"The runs' own evaluation of {target} (seeds 10000-10001, 30 s) at every evaluation step: "
            "gap to the reference (the best of greedy, the timeout and the proposed scheduler), mean "
            f"± 95% CI across training seeds, and in brackets the mean share of requests sent to "
            f"{first_model}. Every seed's model at that step, whichever the run kept.",
            "",
            "| steps | " + " | ".join(f"{n} ({_seeds(curves[n][0]['n'])})" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for step in steps:
            cells = []
            for name in names:
                row = next((r for r in curves[name] if r["timesteps"] == step), None)
                if row is None:
                    cells.append("n/a")
                    continue
                ci = "" if not math.isfinite(row["ci95"]) else f" ± {row['ci95']:.2%}"
                share = row["model_mix"].get(first_model, float("nan"))
                cells.append(f"{_pct(row['mean'])}{ci} [{share:.0%}]")
            lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def target_seed_lines(result: dict[str, Any]) -> list[str]:
    """One table per target of ``--curve-targets``: per seed and experiment, the target's gap at
    the step the run kept, at the step where the target was lowest, and at the last step; empty
    without such targets."""
    lines: list[str] = []
    for target in result["meta"].get("curve_targets", []):
        per_seed = {
            name: {row["seed"]: row for row in experiment["target_seeds"][target]}
            for name, experiment in result["experiments"].items()
            if experiment.get("target_seeds", {}).get(target)
        }
        if not per_seed:
            continue
        names = list(per_seed)
        lines += [
            f"## Per seed: {target}",
            "",
            f"The runs' own evaluation of {target} (seeds 10000-10001, 30 s): its gap to the reference "
            "at the step the run kept (lowest mean over the training evaluation's targets), at the "
            "step where this target alone was lowest, and at the last step (steps in thousands).",
            "",
            "| seed | " + " | ".join(f"{n}: kept / lowest / last" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for seed in sorted({seed for rows in per_seed.values() for seed in rows}):
            cells = []
            for name in names:
                row = per_seed[name].get(seed)
                cells.append(
                    "n/a"
                    if row is None
                    else f"{_pct(row['kept_gap'])} ({row['kept_step'] // 1000}k) / "
                    f"{_pct(row['best_gap'])} ({row['best_step'] // 1000}k) / {_pct(row['last_gap'])}"
                )
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def episodes_text(result: dict[str, Any]) -> str:
    """The sentence that names the scenarios assessed on more than the assessment seeds (a quiet
    scenario: :func:`scenario_seeds`), each with its number of episodes; empty when none is."""
    meta = result["meta"]
    base = len(meta["assess_seeds"])
    more = {
        name: len(entry["seeds"])
        for name, entry in result["assessment"].items()
        if len(entry.get("seeds", ())) > base
    }
    if not more:
        return ""
    listed = ", ".join(f"{name} {n}" for name, n in more.items())
    return (
        f"A scenario whose {base} episodes hold fewer than {meta['assess_min_requests']:,} requests on "
        f"average is assessed on the seeds that follow too, up to that many requests: {listed} episodes."
    )


def model_lines(result: dict[str, Any]) -> list[str]:
    """Per assessed model: its own training evaluation where it was kept (what chooses among
    the seeds without the assessment), its worst scenario and the scenarios where it is over 2%."""
    kept = {
        m: g
        for e in result["experiments"].values()
        for m, g in zip(e["models"], e.get("kept_gap") or [None] * len(e["models"]), strict=True)
    }
    per_model: dict[str, list[tuple[float, str]]] = {}
    for scenario, entry in result["assessment"].items():
        for agent in entry["agents"].values():
            for row in agent["models"]:
                per_model.setdefault(row["model"], []).append((row["gap_to_baselines"], scenario))
    lines = [
        "## Per model: its training evaluation, its worst scenario, where it is over 2%",
        "",
        "The training evaluation's mean gap (training-side scenarios, seeds 10000-10001) where the "
        "model was kept ranks the seeds of an experiment without the assessment.",
        "",
        "| model | training evaluation | worst scenario (gap to the baselines) | over 2% on |",
        "|---|---|---|---|",
    ]
    for model, gaps in per_model.items():
        worst = max(gaps)
        over = ", ".join(f"{name} ({_pct(g)})" for g, name in gaps if g > 0.02) or "none"
        lines.append(f"| `{model}` | {_pct(kept.get(model))} | {worst[1]} ({_pct(worst[0])}) | {over} |")
    return lines


def _shown(path: Path) -> str:
    """``path`` as the results name it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    out = meta.get("out", "benchmarks/results/learning.json")
    curves = meta.get("plot", "benchmarks/results/learning.png")
    files = f"`{out}`, learning curves `{curves}`" if curves else f"`{out}`; no learning curves"
    if result["experiments"]:
        models = (
            "Each experiment is trained once per seed by the command listed under it (Ray Tune "
            f"trials, `train.py --seeds`); every seed's {meta['model']} model "
            f"({MODEL_CHOICE[meta['model']]}) is"
        )
    else:
        models = "No experiment: the shipped checkpoints (`checkpoints/*.zip`), one model each, are"
    lines = [
        "# Learning: RL agents across training seeds, on the suite, low rates and held-out traces",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} ({files}). {models} "
        f"assessed on seeds {meta['assess_seeds'][0]}-{meta['assess_seeds'][-1]} "
        f"({meta['assess_horizon_s']:g} s "
        "episodes, never used for training or model selection), paired with the references on the same "
        "arrivals. Gap = (cost - reference cost) / reference cost of the mean cost per request; "
        "**baselines** = the better of greedy and the timeout tuned on training seeds (on a trace's "
        "`_test` half: tuned on its `_train` half); mean ± 95% CI across training seeds (Student t), "
        "and the worst seed. Scope: the default system (one worker, three models, "
        "w_latency = 1 per s, no SLO penalty), each scenario at its own rate and horizon. "
        + episodes_text(result),
        "",
    ]
    for name, experiment in result["experiments"].items():
        assessed = experiment.get("assessed", True)
        title = name if assessed else f"{name} (compared by its training evaluation only)"
        lines += [f"## {title}", "", experiment["description"] + ".", ""]
        lines += [f"Training command: `{experiment['command']}`", ""]
        trained_by = experiment.get("trained_by", [])
        if trained_by and trained_by != [experiment["command"]]:
            lines += ["Trained by (the sweep folders' `command.txt`):", ""]
            lines += [f"- `{command}`" for command in trained_by] + [""]
        if not experiment["models"]:
            lines += ["Not trained.", ""]
            continue
        asked, found = experiment.get("seeds_asked"), len(experiment["models"])
        if asked and found < asked:
            lines += [
                f"Finished seeds: {found} of {asked}; the others did not finish (`python "
                "benchmarks/learning.py` trains what is missing, into a continuation sweep). No claim "
                "rests on fewer than three seeds.",
                "",
            ]
        steps = experiment.get("steps") or [None] * len(experiment["models"])
        kept = experiment.get("kept_at") or steps
        lines += [
            "Models: "
            + ", ".join(
                f"`{m}`" + _steps_text(n, k)
                for m, n, k in zip(experiment["models"], steps, kept, strict=True)
            )
            + ".",
            "",
        ]
    lines += comparison_lines(result, "##")
    lines += target_curve_lines(result)
    lines += target_seed_lines(result)
    labels = _assessed_labels(result)
    lines += [
        "## Gap to the baselines (the better of greedy and the tuned timeout) per scenario",
        "",
        "Mean ± 95% CI across training seeds (worst seed in brackets); a shipped checkpoint is one model.",
        "",
        "| scenario | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    worst: dict[str, float] = {}
    for scenario, entry in result["assessment"].items():
        cells = []
        for label in labels:
            agent = entry["agents"].get(label)
            if agent is None:
                cells.append("n/a")
                continue
            s = agent["summary"]["gap_to_baselines"]
            worst[label] = max(worst.get(label, -math.inf), s["worst"])
            cell = _gap_cell(agent["summary"], "gap_to_baselines")
            cells.append(cell if s["n"] == 1 else f"{cell} [{_pct(s['worst'])}]")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("| **worst** | " + " | ".join(_pct(worst.get(label)) for label in labels) + " |")
    lines += ["", *model_lines(result)]
    lines += [
        "",
        "## Gap to the exact optimum (Poisson scenarios) and to the tuned timeout alone",
        "",
        "| scenario | agent | gap to optimum | gap to tuned timeout | gap to greedy | p99 ms | quality |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, entry in result["assessment"].items():
        for label in labels:
            agent = entry["agents"].get(label)
            if agent is None:
                continue
            s = agent["summary"]
            lines.append(
                f"| {scenario} | {label} | {_gap_cell(s, 'gap_to_optimal')} | "
                f"{_gap_cell(s, 'gap_to_timeout')} | {_gap_cell(s, 'gap_to_greedy')} | "
                f"{s['latency_p99_ms']['mean']:.1f} | "
                f"{s['mean_quality']['mean']:.4f} |"
            )
        lines += _timeout_row(scenario, entry["references"])
    if result.get("shipping_gate"):
        lines += [
            "",
            "## Shipping gate: tests/test_checkpoints.py's thresholds",
            "",
            "The regression gate of the checkpoints trained on default_randomised, which a model must "
            "pass to replace one of them; the mixture checkpoints ship beside them and are held to the "
            "2% goal instead (docs/rl.md, tests/test_checkpoints.py) (benchmarks/learning_gate.py: "
            "seeds 0-5, 60 s; default_randomised: mean below 0.5 x greedy's and every seed at most 1.01 x; "
            "200/s and 300/s: mean at most 1.06 and 1.01 x the optimum's, every seed below 0.6 x greedy's).",
            "",
            *gate_lines(result),
        ]
    lines += [
        "",
        "## Tuned timeouts (the reference)",
        "",
        "| scenario | tuned on | parameters | source |",
        "|---|---|---|---|",
    ]
    for scenario, entry in result["assessment"].items():
        t = entry["timeout"]
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        lines.append(f"| {scenario} | {t['tuned_on']} | {params} | {t['source']} |")
    return "\n".join(lines) + "\n"


def _timeout_row(scenario: str, references: dict[str, Any]) -> list[str]:
    """The tuned timeout's own row of the optimum table, where the optimum applies: how far the
    reference itself is from the optimum (empty elsewhere)."""
    timeout, optimal, greedy = (references.get(k, {}) for k in ("timeout_tuned", "optimal", "greedy"))
    if "cost_per_request" not in optimal or "cost_per_request" not in timeout:
        return []
    cost = timeout["cost_per_request"]
    to_greedy = _pct((cost - greedy["cost_per_request"]) / greedy["cost_per_request"])
    to_optimal = _pct((cost - optimal["cost_per_request"]) / optimal["cost_per_request"])
    return [
        f"| {scenario} | timeout (tuned) | {to_optimal} | +0.00% | {to_greedy} | "
        f"{timeout['latency_p99_ms']:.1f} | n/a |"
    ]


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The summary that :func:`replace_block` puts in docs/rl.md: per agent, how many assessment
    scenarios it is within 2% of the baselines on, its worst scenario and the quiet servers."""
    meta = result["meta"]
    labels = _assessed_labels(result)
    assessment = result["assessment"]
    seeds = meta["assess_seeds"]
    lines = [
        f"Produced by `{meta['command']}` ({meta['date']}; every table of "
        "[results/learning.md](results/learning.md)). Assessment seeds "
        f"{seeds[0]}-{seeds[-1]}, {meta['assess_horizon_s']:g} s episodes, {len(assessment)} scenarios; "
        "gap to the better of greedy and the tuned timeout, mean ± 95% CI across training seeds "
        "(a shipped checkpoint is one model, no CI). " + episodes_text(result),
        "",
        "| agent | models | mean within 2% | a seed over 2% on | worst scenario (its mean gap) | mean gap |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        gaps = {
            name: entry["agents"][label]["summary"]["gap_to_baselines"]
            for name, entry in assessment.items()
            if label in entry["agents"]
        }
        if not gaps:
            continue
        experiment = result["experiments"].get(label)
        if experiment is None:
            models = "1 (shipped)"
        else:
            steps = sorted(set(experiment.get("steps") or []))
            models = f"{_seeds(len(experiment['models']))}, {'/'.join(f'{k:,}' for k in steps)} steps"
        within = sum(1 for g in gaps.values() if g["mean"] <= 0.02)
        over = [f"{name} ({_pct(g['worst'])})" for name, g in gaps.items() if g["worst"] > 0.02]
        worst = max(gaps, key=lambda n: gaps[n]["mean"])
        mean = float(np.mean([g["mean"] for g in gaps.values()]))
        lines.append(
            f"| {label} | {models} | {within} of {len(gaps)} | {', '.join(over) or 'none'} | {worst} "
            f"({_gap_cell({'g': gaps[worst]}, 'g')}) | {_pct(mean)} |"
        )
    quiet = [name for name in LOW_RATES if name in assessment]
    if quiet:
        lines += [
            "",
            "Below 10 requests/s (gap to the better of greedy and the tuned timeout):",
            "",
            "| scenario | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for name in quiet:
            agents = assessment[name]["agents"]
            cells = [
                _gap_cell(agents[label]["summary"], "gap_to_baselines") if label in agents else "n/a"
                for label in labels
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    gates = gate_lines(result)
    if gates:
        lines += [
            "",
            "Shipping gate (the thresholds of tests/test_checkpoints.py, benchmarks/learning_gate.py):",
            "",
        ]
        lines += gates
    compared = comparison_lines(result, "###")
    return lines + (["", *compared[:-1]] if compared else [])


def replace_block(text: str, block: str) -> str:
    """``text`` with the lines between :data:`RL_DOC_BEGIN` and :data:`RL_DOC_END` replaced by
    ``block``.

    :raises SystemExit: the markers are missing or out of order.
    """
    begin, end = text.find(RL_DOC_BEGIN), text.find(RL_DOC_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"learning.py: --rl-doc needs the lines {RL_DOC_BEGIN} and {RL_DOC_END}")
    return text[: begin + len(RL_DOC_BEGIN)] + "\n" + block + "\n" + text[end:]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, experiment in result["experiments"].items():
        curve = experiment.get("curve") or []
        if not curve:
            continue
        steps = np.array([c["timesteps"] for c in curve])
        mean = np.array([c["mean"] for c in curve]) * 100
        half = np.nan_to_num(np.array([c["ci95"] for c in curve]) * 100)
        ax.plot(steps, mean, marker="o", ms=3, label=f"{name} ({_seeds(curve[0]['n'])})")
        ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean gap to the reference (%)")
    ax.set_title("Training evaluations (mean, 95% CI across seeds)")
    ax.set_yscale("symlog", linthresh=5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    write_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiments",
        default=",".join(DEFAULT_EXPERIMENTS),
        help=f"comma-separated experiments among {', '.join(EXPERIMENTS)} "
        f"(default: {','.join(DEFAULT_EXPERIMENTS)})",
    )
    parser.add_argument(
        "--compare",
        default=",".join(ABLATIONS),
        help="experiments compared by their training evaluation only (at 300,000 steps), not assessed "
        f"(default: {','.join(ABLATIONS)}); their finished seeds are used",
    )
    parser.add_argument("--seeds", default="0-2", help="training seeds of every experiment (default: 0-2)")
    parser.add_argument("--jobs", type=int, default=2, help="training runs / assessment processes at once")
    parser.add_argument(
        "--runs-dir", default="runs/learning", help="parent of the sweep folders, relative to the repo"
    )
    parser.add_argument("--collect-only", action="store_true", help="do not train; assess the finished runs")
    parser.add_argument("--train-only", action="store_true", help="train what is missing, do not assess")
    parser.add_argument("--assess-seeds", default="30000-30004", help="fresh seeds of the assessment")
    parser.add_argument("--assess-horizon-s", type=float, default=60.0, help="seconds per assessment episode")
    parser.add_argument(
        "--assess-min-requests",
        type=int,
        default=MIN_REQUESTS,
        help="a scenario whose assessment episodes hold fewer requests (mean rate x horizon) gets the "
        f"following seeds too, up to this many (default: {MIN_REQUESTS:,}; 0: the assessment seeds only)",
    )
    parser.add_argument(
        "--scenarios", default=None, help="assessment scenarios (default: see assessment_scenarios)"
    )
    parser.add_argument(
        "--model",
        choices=("best", "final"),
        default="best",
        help="which model of each seed to assess: best (the lowest mean gap of the training evaluation, "
        "on training-side scenarios only) or final (default: best)",
    )
    parser.add_argument(
        "--curve-targets",
        default="",
        help="comma-separated targets of the training evaluation (e.g. poisson_50) whose every step is "
        "tabulated per experiment: gap and model mix across seeds; and per seed, the gap at the kept "
        "step, at the target's own lowest step and at the last (default: none)",
    )
    parser.add_argument("--no-shipped", action="store_true", help="do not assess checkpoints/*.zip")
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="skip the shipping gate (tests/test_checkpoints.py's thresholds)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "learning.json", help="JSON output")
    parser.add_argument("--plot", type=Path, default=RESULTS / "learning.png", help="learning curves")
    parser.add_argument(
        "--markdown", type=Path, default=REPO / "docs" / "results" / "learning.md", help="Markdown report"
    )
    parser.add_argument(
        "--rl-doc",
        type=Path,
        default=REPO / "docs" / "rl.md",
        help=f"document whose block between {RL_DOC_BEGIN} and {RL_DOC_END} is replaced by the summary "
        "(default: docs/rl.md; none: leave it)",
    )
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    names = [n for n in args.experiments.split(",") if n]
    compare = [n for n in args.compare.split(",") if n and n not in names]
    unknown = [n for n in (*names, *compare) if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"--experiments: unknown {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}")
    try:
        parse_seeds(args.seeds)
        assess_seeds = parse_seeds(args.assess_seeds)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.assess_horizon_s > 0:
        parser.error(f"--assess-horizon-s must be > 0 seconds, got {args.assess_horizon_s:g}")
    if not 0 <= args.assess_min_requests <= 10_000_000:
        parser.error(f"--assess-min-requests must be in [0, 10000000], got {args.assess_min_requests}")
    if Path(args.runs_dir).is_absolute():
        parser.error("--runs-dir must be relative to the repository (results name their run folders)")
    scenarios = [s for s in args.scenarios.split(",") if s] if args.scenarios else assessment_scenarios()
    curve_targets = [t for t in args.curve_targets.split(",") if t]
    if args.collect_only and args.train_only:
        parser.error("--collect-only and --train-only exclude each other")
    if not args.collect_only:
        for name in names:
            train_experiment(EXPERIMENTS[name], args)
    if args.train_only:
        return 0
    experiments: dict[str, Any] = {}
    models: dict[str, list[str]] = {}
    asked = parse_seeds(args.seeds)
    seeds = set(asked)  # the run folders may hold more seeds than asked for
    for name in (*names, *compare):
        experiment = EXPERIMENTS[name]
        found = trained_models(experiment, args.runs_dir, args.model, seeds)
        experiments[name] = {
            "description": experiment.description,
            "command": shlex.join(experiment.command(args.seeds, args.runs_dir, args.jobs)),
            "trained_by": sweep_commands(experiment, args.runs_dir, found),
            "models": found,
            "steps": [trained_steps(m) for m in found],
            "kept_at": [kept_at_step(m) for m in found],
            "kept_gap": [kept_evaluation(m).get("gap_to_reference") for m in found],
            "curve": training_curves(experiment, args.runs_dir, seeds),
            "target_curves": {t: target_curves(experiment, args.runs_dir, t, seeds) for t in curve_targets},
            "target_seeds": {t: target_seeds(experiment, args.runs_dir, t, seeds) for t in curve_targets},
            "assessed": name in names,
            "seeds_asked": len(asked),
        }
        if name in names:
            models[name] = found
    compare_step = 300_000
    at_step = {
        "step": compare_step,
        "experiments": {
            name: training_evaluation_at(EXPERIMENTS[name], args.runs_dir, compare_step, seeds)
            for name in (*names, *compare)
        },
    }
    has_curves = any(experiment["curve"] for experiment in experiments.values())
    shipped = [] if args.no_shipped else [p for p in SHIPPED if (REPO / p).is_file()]
    for path in shipped:
        models[Path(path).stem] = [path]
    assessed = {label: paths for label, paths in models.items() if paths}
    result = {
        "experiments": experiments,  # the compared ones too, with "assessed": false
        "shipped": shipped,
        "training_evaluation_at": at_step,
        "shipping_gate": {} if args.no_gate else shipping_gates(assessed),
        "assessment": assess(
            assessed,
            scenarios,
            assess_seeds,
            args.assess_horizon_s,
            args.jobs,
            cache=REPO / args.runs_dir / "assessment_cache.json",
            min_requests=args.assess_min_requests,
        ),
        "meta": {
            "command": "python benchmarks/learning.py" + "".join(" " + a for a in map(shlex.quote, given)),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "assess_seeds": assess_seeds,
            "assess_horizon_s": args.assess_horizon_s,
            "assess_min_requests": args.assess_min_requests,
            "model": args.model,
            "curve_targets": curve_targets,
            "out": _shown(args.out),
            "plot": _shown(args.plot) if has_curves else None,
        },
    }
    write_json_atomic(args.out, result)
    write_atomic(args.markdown, markdown(result))
    if has_curves:
        plot(result, args.plot)
        print(f"wrote {args.markdown}, {args.out} and {args.plot}")
    else:
        print(f"wrote {args.markdown} and {args.out} (no training curve to plot)")
    if str(args.rl_doc) != "none":
        write_atomic(args.rl_doc, replace_block(args.rl_doc.read_text(), "\n".join(summary_lines(result))))
        print(f"updated the summary in {args.rl_doc}")
    for line in summary_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
