"""Metrics card of a shipped checkpoint: what it is, how it was trained, and how it scores.

For each checkpoint the card (``<checkpoint>.md`` next to it) holds the training config, the
training command and timesteps from the checkpoint's own metadata, and the table of
``evaluate.py`` comparing it with the baselines, the proposed scheduler and the optimum on the
default scenario and a few loads, with the evaluation command that produced it.

Every scenario is measured on at least :data:`benchmarks.learning.MIN_REQUESTS` requests, the
rule of the learning assessment (``evaluate.py --min-requests``): ten 60 s episodes of a quiet or
spiky scenario hold a few hundred to a few thousand requests, and on ``bursty_low`` (about 1,500
requests in some 60 bursts) ten seeds put the shipped mixture models and the proposed scheduler
anywhere from -16% to +17% from the tuned timeout (docs/results/learning_bursts.md).

Usage::

    python benchmarks/checkpoint_card.py checkpoints/ppo_default.zip checkpoints/dqn_default.zip
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HINDSIGHT_CACHE = REPO / "results" / ".hindsight_cache"
"""Where the cards' hindsight bounds are cached: evaluate.py's default with its default --out."""

from agents.checkpoint import load_checkpoint  # noqa: E402
from batchenv.config import ArrivalConfig  # noqa: E402
from batchenv.fileio import write_atomic  # noqa: E402
from benchmarks.learning import MIN_REQUESTS  # noqa: E402

SCENARIOS = (
    "poisson_rate_1,poisson_rate_10,bursty_low,default,default_randomised,poisson_25,poisson_50,high_load,bursty,"
    "azure_trace,azure_trace_native_test,mooncake_conv_test,mooncake_conv_30_test,azure_trace_60_test"
)
AGENTS = "greedy,timeout,util_switch,optimal,proposed"


def describe_arrivals(arrivals: ArrivalConfig) -> str:
    """One line on what an agent was trained on: the process, its rate or rate range, and for a
    mixture each component with its weight."""
    if arrivals.process == "mixture":
        components = arrivals.components or ()
        total = sum(c.weight for c in components)
        parts = [f"{c.weight / total:.0%} {describe_arrivals(c.arrivals)}" for c in components]
        return "a mixture drawn per episode: " + "; ".join(parts)
    window = f", trace window {list(arrivals.trace_window)}" if arrivals.trace_window else ""
    source = f" ({arrivals.trace_path}{window})" if arrivals.process == "trace" else ""
    if arrivals.rate_range_per_s is None:
        return f"{arrivals.process}{source} at {arrivals.mean_rate_per_s:.4g} requests/s"
    low, high = arrivals.rate_range_per_s
    scale = "log-uniform" if arrivals.rate_range_scale == "log" else "uniform"
    return f"{arrivals.process}{source} at a mean rate drawn {scale} from {low:g}-{high:g} requests/s"


def card(path: Path, scenarios: str, n_seeds: int, jobs: int, min_requests: int = MIN_REQUESTS) -> Path:
    """Write ``<checkpoint>.md`` next to ``path``: its training, and ``evaluate.py``'s table on
    ``scenarios`` (seeds 0..``n_seeds``-1, more for a scenario whose episodes hold fewer than
    ``min_requests`` requests); returns the card's path."""
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "table.md"
        command = [
            "python",
            "evaluate.py",
            "--agents",
            f"{AGENTS},{path.as_posix()}",
            "--scenarios",
            scenarios,
            "--n-seeds",
            str(n_seeds),
            "--min-requests",
            str(min_requests),
            "--jobs",
            str(jobs),
            "--no-plots",
            "--out",
            tmp,
            "--report",
            str(report),
            # the bounds outlive the temporary --out: the cards and evaluate.py's default share them
            "--hindsight-cache",
            str(HINDSIGHT_CACHE),
        ]
        subprocess.run([sys.executable, *command[1:]], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        # evaluate.py's report minus its title and command (the card states both, without the
        # temporary output paths)
        table = report.read_text()
        table = table[table.index("Seeds ") :]
    shown = " ".join(command[: command.index("--out")])
    hyperparams = json.dumps(meta.get("hyperparams", {}), sort_keys=True)
    normalised = "yes" if meta.get("observation_normalization") else "no"
    text = f"""# {path.name}: metrics card

- **Algorithm**: {meta["algo"]} (Stable-Baselines3), {meta["timesteps"]:,} environment steps.
- **Trained on**: scenario `{checkpoint.config.name}`: {describe_arrivals(checkpoint.config.arrivals)}.
- **Training command**: `{meta.get("command", "n/a")}`
- **Hyperparameters**: `{hyperparams}`
- **Observation normalisation** stored in the checkpoint: {normalised}.
- **Load it**: `python evaluate.py --agents {path.as_posix()}` or
  `agents.checkpoint.RLScheduler("{path.as_posix()}")`.

## Scores

Produced by `{shown}` (cost per request = best quality - score, lower is better;
gap relative to the optimum where it applies, else the tuned timeout; on a trace's `_test`
half the timeout and util_switch are tuned on its `_train` half).

{table}
"""
    out = path.with_suffix(".md")
    write_atomic(out, text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint .zip files")
    parser.add_argument("--scenarios", default=SCENARIOS, help=f"evaluation scenarios (default: {SCENARIOS})")
    parser.add_argument("--n-seeds", type=int, default=10, help="evaluation seeds 0..N-1 (default: 10)")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=MIN_REQUESTS,
        help="a scenario whose episodes hold fewer requests on average gets the seeds that follow "
        f"too, up to this many, as evaluate.py --min-requests (default: {MIN_REQUESTS:,}, the learning "
        "assessment's; 0: the same seeds everywhere)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="evaluation processes (default: 2)")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        print(f"wrote {card(path, args.scenarios, args.n_seeds, args.jobs, args.min_requests)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
