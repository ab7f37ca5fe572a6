"""Spikes on a quiet server: which decisions make a learned agent lose to greedy on ``bursty_low``.

For every model (by default the best model of each training seed of the experiments in
``benchmarks/results/learning.json``, and the shipped checkpoints) and greedy, on the same
arrivals (``--seeds``, ``--horizon-s``): the gap of the mean cost per request to greedy's, the
spread of the per-episode gaps (a 60 s episode of ``bursty_low`` holds about 150 requests in
some six bursts, so one episode's gap is mostly noise), the share of requests served by the
distilled models (LLM-2, LLM-3), and that share by the size of the batch dispatched: whether the
agent sends the queue that a burst leaves to a smaller model, and from which queue length on.

Then how many episodes a gap needs here (:func:`sample_spread`): for the proposed scheduler and
the shipped mixture checkpoints (:data:`SAMPLE_AGENTS`), the gap to the tuned timeout (the
reference of ``evaluate.py`` and of the checkpoint cards) with its 95% CI over ten seeds, the
sample of a card made without ``--min-requests`` (``--sample-seeds``, seeds 0-9), next to the
same gap over every episode of ``--seeds`` and over each disjoint block of ten of them: how far
a ten-episode figure strays, and how often its interval misses the figure of all the episodes.

Usage::

    python benchmarks/learning_bursts.py                       # bursty_low, seeds 30000-30199
    python benchmarks/learning_bursts.py --models checkpoints/ppo_default.zip --seeds 0-9

Writes ``docs/results/learning_bursts.md`` and ``benchmarks/results/learning_bursts.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents.baselines import Greedy  # noqa: E402
from agents.checkpoint import CheckpointError, RLScheduler, load_checkpoint  # noqa: E402
from agents.registry import make_agent  # noqa: E402
from batchenv.config import ConfigError, SystemConfig  # noqa: E402
from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.metrics import compute_metrics  # noqa: E402
from batchenv.scenarios import load_scenario  # noqa: E402
from batchenv.seeds import parse_seeds  # noqa: E402
from batchenv.sim import Simulator, simulate  # noqa: E402
from evaluation.stats import paired_gap  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BATCH_BUCKETS = ((1, 1), (2, 3), (4, 7), (8, 11), (12, 15), (16, 23), (24, 64))
"""Batch sizes (inclusive ranges) of the table of the distilled models' share."""
SAMPLE_AGENTS = ("proposed", "checkpoints/ppo_default_mixture.zip", "checkpoints/dqn_default_mixture.zip")
"""Agents of the sample-size table (agent specs of :mod:`agents.registry`)."""
SAMPLE_SIZE = 10
"""Episodes of one sample: the seeds 0-9 of a checkpoint card made without ``--min-requests``."""


def default_models(learning_json: Path) -> list[str]:
    """The assessed models of ``learning_json`` (every experiment's models, then the shipped
    checkpoints), as paths relative to the repository."""
    if not learning_json.is_file():
        raise SystemExit(
            f"learning_bursts.py: {learning_json} not found: run benchmarks/learning.py or pass --models"
        )
    data = json.loads(learning_json.read_text())
    models = [m for e in data["experiments"].values() if e.get("assessed", True) for m in e["models"]]
    return models + list(data.get("shipped", []))


def episode_rows(config: SystemConfig, scheduler: Any, seeds: Sequence[int]) -> dict[str, Any]:
    """Per-seed cost per request, and the number of batches and requests per (model, batch size)
    over all seeds: ``{"costs": (n_seeds,), "batches": {model index: {size: count}}}``."""
    sim = Simulator(config, record=True)
    costs, batches = [], {}
    for seed in seeds:
        simulate(config, scheduler, seed, sim=sim)
        costs.append(compute_metrics(sim).cost_per_request)
        for batch in sim.batches:
            per_model = batches.setdefault(int(batch.model), {})
            per_model[int(batch.size)] = per_model.get(int(batch.size), 0) + 1
    return {"costs": costs, "batches": batches}


def summarise(rows: dict[str, Any], greedy_costs: Sequence[float]) -> dict[str, Any]:
    """Gap to greedy (of the mean cost, and per episode), the distilled models' share of the
    requests, and that share per :data:`BATCH_BUCKETS`."""
    costs, greedy = np.asarray(rows["costs"]), np.asarray(greedy_costs)
    per_episode = (costs - greedy) / greedy
    requests = {m: sum(size * n for size, n in sizes.items()) for m, sizes in rows["batches"].items()}
    total = sum(requests.values())
    buckets = []
    for low, high in BATCH_BUCKETS:
        served = {
            m: sum(size * n for size, n in sizes.items() if low <= size <= high)
            for m, sizes in rows["batches"].items()
        }
        n = sum(served.values())
        buckets.append(
            {"sizes": [low, high], "requests": n, "distilled": (n - served.get(0, 0)) / n if n else None}
        )
    return {
        "gap_to_greedy": float((costs.mean() - greedy.mean()) / greedy.mean()),
        "episode_gap_min": float(per_episode.min()),
        "episode_gap_max": float(per_episode.max()),
        "episodes_worse_than_2pct": int(np.sum(per_episode > 0.02)),
        "distilled_share": (total - requests.get(0, 0)) / total if total else 0.0,
        "by_batch_size": buckets,
    }


def _costs(config: SystemConfig, spec: str, seeds: Sequence[int]) -> np.ndarray:
    """Cost per request of the agent ``spec`` (tuned timeout and util_switch) per seed."""
    return np.array(episode_rows(config, make_agent(spec, config), seeds)["costs"])


def sample_spread(config: SystemConfig, spec: str, seeds: Sequence[int], sample_seeds: Sequence[int]) -> dict:
    """The gap of ``spec`` to the tuned timeout (:func:`evaluation.stats.paired_gap`, as
    ``evaluate.py`` reports it) on ``sample_seeds``, on all of ``seeds`` and on each disjoint block
    of :data:`SAMPLE_SIZE` of ``seeds``; ``covered``: the blocks whose 95% CI holds the gap over
    all of ``seeds``."""
    timeout, costs = _costs(config, "timeout", seeds), _costs(config, spec, seeds)
    whole, whole_ci = paired_gap(costs, timeout)
    blocks = [
        paired_gap(costs[i : i + SAMPLE_SIZE], timeout[i : i + SAMPLE_SIZE])
        for i in range(0, len(seeds) - SAMPLE_SIZE + 1, SAMPLE_SIZE)
    ]
    sample, sample_ci = paired_gap(
        _costs(config, spec, sample_seeds), _costs(config, "timeout", sample_seeds)
    )
    gaps = [g for g, _ in blocks]
    return {
        "gap": whole,
        "ci95": whole_ci,
        "sample_gap": sample,
        "sample_ci95": sample_ci,
        "block_gaps": gaps,
        "block_min": float(min(gaps)),
        "block_median": float(np.median(gaps)),
        "block_max": float(max(gaps)),
        "covered": int(sum(g - h <= whole <= g + h for g, h in blocks)),
    }


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    seeds = meta["seeds"]
    lines = [
        f"# Spikes on a quiet server: the learned agents' decisions on {meta['scenario']}",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} (`benchmarks/results/learning_bursts.json`). "
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} episodes of {meta['horizon_s']:g} s), every "
        "scheduler on the same arrivals. Gap = (mean cost - greedy's mean cost) / greedy's; the "
        "per-episode gaps show how much one episode's figure varies; distilled = the share of "
        "requests served by LLM-2 or LLM-3 (greedy serves all on LLM-1).",
        "",
        "| model | gap to greedy | per-episode gap (min, max) | episodes > +2% | distilled share |",
        "|---|---|---|---|---|",
    ]
    for model, s in result["models"].items():
        spread = f"{s['episode_gap_min']:+.1%}, {s['episode_gap_max']:+.1%}"
        lines.append(
            f"| `{model}` | {s['gap_to_greedy']:+.2%} | {spread} | "
            f"{s['episodes_worse_than_2pct']} of {len(seeds)} | {s['distilled_share']:.3f} |"
        )
    heads = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in BATCH_BUCKETS]
    lines += [
        "",
        "Share of the requests sent to a distilled model, by the size of the batch dispatched "
        "(the queue when the decision was taken; requests in such batches in brackets):",
        "",
        "| model | " + " | ".join(f"batch {h}" for h in heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for model, s in result["models"].items():
        cells = [
            "-" if b["distilled"] is None else f"{b['distilled']:.2f} ({b['requests']})"
            for b in s["by_batch_size"]
        ]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    spread = result.get("sample_spread") or {}
    if spread:
        sample = meta["sample_seeds"]
        n_blocks = len(next(iter(spread.values()))["block_gaps"])
        lines += [
            "",
            f"How many episodes a gap needs here: the gap to the tuned timeout (the reference of "
            f"evaluate.py and of the checkpoint cards; ± the 95% CI of the seed-paired differences) "
            f"over seeds {sample[0]}-{sample[-1]} ({len(sample)} episodes, what a card measured without "
            f"--min-requests), over all {len(seeds)} episodes above, and over each of their {n_blocks} "
            f"disjoint blocks of {SAMPLE_SIZE} episodes (CI holds = blocks whose 95% CI holds the gap "
            "over all the episodes):",
            "",
            f"| agent | seeds {sample[0]}-{sample[-1]} | all {len(seeds)} episodes | "
            f"blocks of {SAMPLE_SIZE}: min, median, max | CI holds |",
            "|---|---|---|---|---|",
        ]
        for agent, r in spread.items():
            lines.append(
                f"| `{agent}` | {r['sample_gap']:+.2%} ± {r['sample_ci95']:.2%} | "
                f"{r['gap']:+.2%} ± {r['ci95']:.2%} | "
                f"{r['block_min']:+.2%}, {r['block_median']:+.2%}, {r['block_max']:+.2%} | "
                f"{r['covered']} of {n_blocks} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario", default="bursty_low", help="scenario name or YAML (default: bursty_low)"
    )
    parser.add_argument("--seeds", default="30000-30199", help="episode seeds (default: 30000-30199)")
    parser.add_argument("--horizon-s", type=float, default=60.0, help="seconds per episode (default: 60)")
    parser.add_argument(
        "--sample-seeds",
        default="0-9",
        help="the ten-episode sample of the sample-size table (default: 0-9: a card's seeds "
        "without --min-requests)",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated checkpoints (default: the assessed models of benchmarks/results/learning.json)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "learning_bursts.json", help="JSON output")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO / "docs" / "results" / "learning_bursts.md",
        help="Markdown report",
    )
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    try:
        seeds = parse_seeds(args.seeds)
        sample_seeds = parse_seeds(args.sample_seeds)
        config = load_scenario(args.scenario).replace(horizon_s=args.horizon_s)
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))
    if not 0 < args.horizon_s <= 3600:
        parser.error(f"--horizon-s must be in (0, 3600] seconds, got {args.horizon_s:g}")
    models = args.models.split(",") if args.models else default_models(RESULTS / "learning.json")
    greedy = episode_rows(config, Greedy(config), seeds)["costs"]
    out: dict[str, Any] = {}
    for model in models:
        try:
            scheduler = RLScheduler(
                load_checkpoint(REPO / model if not Path(model).is_absolute() else model), config
            )
        except (CheckpointError, OSError) as exc:
            parser.error(f"--models: {model}: {exc}")
        out[model] = summarise(episode_rows(config, scheduler, seeds), greedy)
        print(f"{model}: gap to greedy {out[model]['gap_to_greedy']:+.2%}", flush=True)
    spread = {}
    if len(seeds) >= 2 * SAMPLE_SIZE:
        for agent in SAMPLE_AGENTS:
            spread[agent] = sample_spread(config, agent, seeds, sample_seeds)
            r = spread[agent]
            print(
                f"{agent}: gap to the timeout {r['gap']:+.2%}, on {args.sample_seeds} {r['sample_gap']:+.2%}"
            )
    result = {
        "models": out,
        "sample_spread": spread,
        "greedy_cost_per_request": float(np.mean(greedy)),
        "meta": {
            "command": "python benchmarks/learning_bursts.py" + "".join(" " + shlex.quote(a) for a in given),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "scenario": config.name,
            "seeds": seeds,
            "sample_seeds": sample_seeds,
            "horizon_s": args.horizon_s,
        },
    }
    write_json_atomic(args.out, result)
    write_atomic(args.markdown, markdown(result))
    print(f"wrote {args.markdown} and {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
