"""The learning benchmark's assessment: the scenarios and their fresh seeds, the references
(greedy, the tuned timeout, the optimum, the proposed scheduler), one agent's episodes, the
shipping gate, and the gaps of every trained model across the scenarios."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import BASELINES
from agents.checkpoint_safety import sha256_of
from agents.registry import AgentSpecError, make_agent
from agents.tuned_params import config_fingerprint, load_tuned, tuning_target
from batchenv.fileio import write_json_atomic
from batchenv.metrics import compute_metrics
from batchenv.scenarios import SUITE, load_scenario, trace_scenarios
from batchenv.sim import Simulator, simulate
from benchmarks.learning_gate import gate
from benchmarks.learning_parts import REPO, RESULTS
from evaluation.plan import seeds_for_requests
from evaluation.stats import mean_ci95
from evaluation.tuning import tune_scenario
from execution.backends import LocalBackend
from execution.run import run_tasks


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
