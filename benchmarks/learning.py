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
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchenv.fileio import write_atomic, write_json_atomic  # noqa: E402
from batchenv.seeds import parse_seeds  # noqa: E402
from benchmarks.learning_parts import RESULTS  # noqa: E402
from benchmarks.learning_parts.assessment import (  # noqa: E402
    MIN_REQUESTS,
    SHIPPED,
    assess,
    assessment_scenarios,
    shipping_gates,
)
from benchmarks.learning_parts.experiments import ABLATIONS, DEFAULT_EXPERIMENTS, EXPERIMENTS  # noqa: E402
from benchmarks.learning_parts.plot import plot  # noqa: E402
from benchmarks.learning_parts.runs import (  # noqa: E402
    kept_at_step,
    kept_evaluation,
    sweep_commands,
    target_curves,
    target_seeds,
    train_experiment,
    trained_models,
    trained_steps,
    training_curves,
    training_evaluation_at,
)
from benchmarks.learning_parts.summary import RL_DOC_BEGIN, RL_DOC_END, replace_block, summary_lines  # noqa: E402
from benchmarks.learning_parts.tables import markdown  # noqa: E402


def _shown(path: Path) -> str:
    """``path`` as the results name it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


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
